"""The notifier app preempt-notify: routing, grouping, silences, Slack, email, delivery log."""
