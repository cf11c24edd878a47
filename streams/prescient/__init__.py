"""Churn risk learned from outcomes: ``training`` (``preempt train``, scikit-learn, offline) and
``report`` (``make prescient-report``: train on one simulated history, evaluate on another)."""
