"""Contracts at Preempt's boundaries: events, accounts, alerts, feedback, outcomes; the decoder and
its edge bounds; the JSON Schema export; the exception root; the YAML dialect of config files and the
words alerts use for numbers, durations and dates (``formatting``) and the bounded Jinja2 sandbox
their templates render in (``template_sandbox``), which rules and alerts share.

Every other package may import this one; it imports nothing else of ours.
"""
