"""Churn risk learned from outcomes: ``training`` (``preempt train``, scikit-learn, offline),
``report`` (``make prescient-report``: train on one simulated history, evaluate on another) and
``ceiling`` (the report's upper bound: what any rule could catch on a simulated history)."""
