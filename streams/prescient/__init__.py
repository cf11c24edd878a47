"""Churn risk learned from outcomes: ``training`` (``preempt train``, scikit-learn, offline),
``report`` (``make prescient-report``: train on one simulated history, evaluate on another) and
``oracle`` (the report's upper bound: what a rule can expect to catch on a simulated history)."""
