"""The notifier app's Faust configuration: built-in table/router pages off, Kafka security from settings."""

from __future__ import annotations

import uuid
from pathlib import Path

from faust.auth import SSLCredentials

from alerts.app import create_app
from streams.runtime.settings import Settings


def test_notifier_app_serves_no_table_or_router_pages_and_uses_tls(tmp_path: Path) -> None:
    """Faust's /table and /router pages are off; an SSL protocol becomes TLS credentials for the app."""
    settings = Settings(
        topic_prefix=f"ut{uuid.uuid4().hex[:8]}", store="memory://", data_dir=tmp_path, kafka_security_protocol="SSL"
    )
    app = create_app(settings)
    assert app.conf.web_tables_enabled is False
    assert app.conf.web_router_enabled is False
    assert isinstance(app.conf.broker_credentials, SSLCredentials)
