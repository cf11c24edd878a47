"""Fakes for the notifier's outside world, shared by tests/ and bench/ (like ``structlog.testing``).

* ``slack_server.FakeSlack`` — a local HTTP server speaking Slack's Web API and webhooks.
* ``smtp_server.FakeSMTP`` — a local aiosmtpd server (needs the dev extra).
* ``factories.build_alert`` / ``hostile_alert`` — alerts with sensible defaults.

Nothing in the notifier's runtime imports this package.
"""
