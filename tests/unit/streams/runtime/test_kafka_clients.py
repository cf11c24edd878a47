"""The PREEMPT_KAFKA_* settings: validated together, turned into each client library's configuration."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol
from pydantic import ValidationError

from schemas.errors import ConfigError
from streams.runtime.kafka_clients import aiokafka_config, faust_credentials, kafka_python_config, ssl_context
from streams.runtime.settings import Settings


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A self-signed CA and a client certificate + encrypted key made with openssl."""
    d = tmp_path_factory.mktemp("pem")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=t", "-keyout", "ca-key.pem",
        "-out", "ca.pem")  # fmt: skip
    run("req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", "/CN=c", "-keyout", "client-key.pem",
        "-out", "client.pem", "-passout", "pass:keypass")  # fmt: skip
    return {"ca": d / "ca.pem", "cert": d / "client.pem", "key": d / "client-key.pem"}


def _settings(**fields: Any) -> Settings:
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


SASL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "preempt",
    "kafka_sasl_password": "s3cret",
}


def test_plaintext_by_default_adds_nothing_but_the_protocol() -> None:
    """Without security settings every client connects in plain text, and Faust gets no credentials."""
    settings = _settings()
    assert kafka_python_config(settings) == {"security_protocol": "PLAINTEXT"}
    assert aiokafka_config(settings) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings) is None
    assert ssl_context(settings) is None


def test_sasl_ssl_config_for_every_library(pem_files: dict[str, Path]) -> None:
    """SASL_SSL gives kafka-python and aiokafka the mechanism, the credentials and a verifying TLS context,
    and Faust SASLCredentials over the same kind of context."""
    settings = _settings(**SASL, kafka_ssl_ca_file=pem_files["ca"])
    for config in (kafka_python_config(settings), aiokafka_config(settings)):
        assert config["security_protocol"] == "SASL_SSL"
        assert config["sasl_mechanism"] == "SCRAM-SHA-512"
        assert config["sasl_plain_username"] == "preempt"
        assert config["sasl_plain_password"] == "s3cret"
        context = config["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname
        assert context.verify_mode == ssl.CERT_REQUIRED
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert (credentials.username, credentials.password) == ("preempt", "s3cret")
    assert "s3cret" not in repr(credentials)


def test_sasl_plaintext_has_no_tls() -> None:
    """SASL_PLAINTEXT (PLAIN mechanism) sends credentials without a TLS context."""
    settings = _settings(**{**SASL, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN"})
    assert "ssl_context" not in kafka_python_config(settings)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT


def test_mutual_tls_loads_the_encrypted_client_key(pem_files: dict[str, Path]) -> None:
    """SSL with a client certificate and an encrypted key (its password a secret) gives Faust SSLCredentials."""
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=pem_files["ca"],
        kafka_ssl_cert_file=pem_files["cert"],
        kafka_ssl_key_file=pem_files["key"],
        kafka_ssl_key_password="keypass",
    )
    assert isinstance(faust_credentials(settings), SSLCredentials)
    assert "sasl_mechanism" not in aiokafka_config(settings)
    assert "keypass" not in repr(settings)


def test_wrong_key_password_is_a_config_error_without_the_password(pem_files: dict[str, Path]) -> None:
    """A key that cannot be decrypted is a ConfigError naming the files, never the password."""
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cert_file=pem_files["cert"],
        kafka_ssl_key_file=pem_files["key"],
        kafka_ssl_key_password="wrong-pass",
    )
    with pytest.raises(ConfigError, match=r"client-key\.pem") as info:
        kafka_python_config(settings)
    assert "wrong-pass" not in str(info.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs PREEMPT_KAFKA_SASL_MECHANISM, PREEMPT_KAFKA_SASL_USERNAME"),
        ({**SASL, "kafka_sasl_password": ""}, "needs PREEMPT_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_username": "preempt"}, "does not use SASL"),
        ({**SASL, "kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_key_password": "x"}, "does not use TLS"),
        ({"kafka_security_protocol": "SASL_MAGIC"}, "kafka_security_protocol"),
        ({**SASL, "kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
    ids=[
        "sasl-no-credentials",
        "sasl-empty-password",
        "sasl-fields-on-plaintext",
        "tls-fields-without-tls",
        "unknown-protocol",
        "unsupported-mechanism",
    ],
)
def test_inconsistent_security_settings_are_one_clear_error(fields: dict[str, Any], message: str) -> None:
    """A security set-up that cannot work (or would be silently ignored) fails validation, saying what to set."""
    with pytest.raises(ValidationError, match=message):
        _settings(**fields)


def test_cert_without_key_is_refused(pem_files: dict[str, Path]) -> None:
    """A client certificate without its key (or the reverse) is refused at start."""
    with pytest.raises(ValidationError, match="go together"):
        _settings(kafka_security_protocol="SSL", kafka_ssl_cert_file=pem_files["cert"])


def test_missing_ca_file_is_refused(tmp_path: Path) -> None:
    """A CA file that does not exist is refused at start, not at the first connection."""
    with pytest.raises(ValidationError, match="kafka_ssl_ca_file"):
        _settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=tmp_path / "nope.pem")


def test_sasl_password_is_a_secret() -> None:
    """The SASL password never shows in the settings' repr."""
    assert "s3cret" not in repr(_settings(**SASL))


def test_the_kafka_consumers_can_decompress_every_codec_producers_use() -> None:
    """aiokafka (both Faust apps, gap repair) has snappy, lz4 and zstd (cramjam): a batch in a codec it
    cannot decode crashed the worker's fetcher, and again after every restart."""
    from aiokafka import codec

    assert codec.has_gzip()
    assert codec.has_snappy()
    assert codec.has_lz4()
    assert codec.has_zstd()
