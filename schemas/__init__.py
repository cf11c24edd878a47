"""Contracts at Preempt's boundaries: events, accounts, alerts, feedback, settings.

Every other package depends on this one and on nothing else of ours, so the
shared observability setup (metrics, logging) and the exception root live here too.
"""
