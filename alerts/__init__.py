"""The notifier app preempt-notify: its runtime, routing, grouping, silences, Slack, email, delivery log."""
