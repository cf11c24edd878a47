"""The PREEMPT_KAFKA_* settings: validated together, turned into each client library's configuration."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol
from pydantic import ValidationError

from schemas.errors import ConfigError
from streams.runtime.kafka_clients import (
    aiokafka_config,
    faust_credentials,
    host_and_port,
    kafka_python_config,
    ssl_context,
    unreachable_reason,
)
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


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("127.0.0.1:19092", ("127.0.0.1", 19092)),
        ("localhost", ("localhost", 9092)),
        ("[::1]:9093", ("::1", 9093)),
        ("[::1]", ("::1", 9092)),
    ],
)
def test_a_bootstrap_server_without_a_port_is_on_kafkas_default_port(server: str, expected: tuple[str, int]) -> None:
    """``kafka://localhost`` means port 9092, as the Kafka clients read it (the access check crashed on it)."""
    assert host_and_port(server) == expected


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


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_a_scram_user_name_with_a_comma_or_equals_sign_logs_in_from_every_client(mechanism: str) -> None:
    """SCRAM sends ',' and '=' of a user name as '=2C' and '=3D' (RFC 5802). aiokafka does so itself;
    kafka-python sent the name raw, so such a user (accepted at start by the aiokafka access check) was
    refused to publish, simulate, the dead-letter readers and topic creation, reported as "cannot reach
    Kafka … start the broker". The kafka-python configuration now carries the escaped name."""
    from kafka.net.sasl.scram import SaslMechanismScram

    settings = _settings(**{**SASL, "kafka_sasl_mechanism": mechanism, "kafka_sasl_username": "svc,ops=1"})
    first = SaslMechanismScram(**kafka_python_config(settings)).auth_bytes()
    assert first.startswith(b"n,,n=svc=2Cops=3D1,r="), first
    assert aiokafka_config(settings)["sasl_plain_username"] == "svc,ops=1"  # aiokafka escapes it itself
    plain = _settings(**{**SASL, "kafka_sasl_mechanism": "PLAIN", "kafka_sasl_username": "svc,ops=1"})
    assert kafka_python_config(plain)["sasl_plain_username"] == "svc,ops=1"  # PLAIN sends the name as it is


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


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and a client certificate + encrypted key."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca", "-keyout", "ca-key.pem",
        "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server-key.pem", "-out",
        "server.csr")  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days",
        "2", "-extfile", "server.ext", "-out", "server.pem")  # fmt: skip
    run("req", "-x509", "-newkey", "rsa:2048", "-days", "2", "-subj", "/CN=c", "-keyout", "client-key.pem",
        "-out", "client.pem", "-passout", "pass:keypass")  # fmt: skip
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=o", "-keyout", "other-key.pem",
        "-out", "other.pem")  # fmt: skip
    # A server certificate that expired at once (-days 0), and one for another host name.
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days",
        "0", "-extfile", "server.ext", "-out", "expired.pem")  # fmt: skip
    (d / "other-host.ext").write_text("subjectAltName=DNS:kafka.example.com\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial", "-days",
        "2", "-extfile", "other-host.ext", "-out", "other-host.pem")  # fmt: skip
    names = ("ca", "server", "server-key", "client", "client-key", "other-key", "expired", "other-host")
    return {name: d / f"{name}.pem" for name in names}


def test_an_encrypted_client_key_without_its_password_is_refused_without_a_prompt(
    tls_files: dict[str, Path],
) -> None:
    """An encrypted client key and no PREEMPT_KAFKA_SSL_KEY_PASSWORD is one error naming the setting
    (OpenSSL would otherwise ask for a pass phrase on the terminal and wait)."""
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cert_file=tls_files["client"],
        kafka_ssl_key_file=tls_files["client-key"],
    )
    with pytest.raises(ConfigError, match="is encrypted; set PREEMPT_KAFKA_SSL_KEY_PASSWORD"):
        ssl_context(settings)


def test_a_key_of_another_certificate_is_named_as_such(tls_files: dict[str, Path]) -> None:
    """A client key that does not belong to the client certificate says so (not an OpenSSL code)."""
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_cert_file=tls_files["client"],
        kafka_ssl_key_file=tls_files["other-key"],
    )
    with pytest.raises(ConfigError, match="does not belong to the certificate"):
        ssl_context(settings)


def test_a_ca_file_that_is_not_pem_names_the_setting(tmp_path: Path) -> None:
    """A CA file holding no certificate is refused with the setting's name."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"PREEMPT_KAFKA_SSL_CA_FILE=.*not a PEM bundle"):
        ssl_context(_settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=garbage))


def _ssl_context_error_as_another_user(settings: Settings) -> str:
    """The ConfigError ``ssl_context(settings)`` raises in a child process running as ``nobody`` ("" if none).

    Root reads any file, so a file closed to the process is only closed to it under another user id: the
    child drops root before building the context (the modules are imported already); a test run by
    another user than root has its own id, for which the caller's ``chmod 000`` is enough."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery from here on, only os._exit
        code = 0
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            try:
                ssl_context(settings)
            except ConfigError as exc:
                os.write(write, str(exc).encode())
        except BaseException:  # reported as the exit status; the parent fails the test
            code = 3
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child process failed"
    return message


@pytest.mark.parametrize(
    ("setting", "name"),
    [
        ("PREEMPT_KAFKA_SSL_CA_FILE", "ca"),
        ("PREEMPT_KAFKA_SSL_CERT_FILE", "cert"),
        ("PREEMPT_KAFKA_SSL_KEY_FILE", "key"),
    ],
)
def test_a_tls_file_the_process_may_not_read_is_named_as_unreadable_not_as_bad_pem(
    tls_files: dict[str, Path], setting: str, name: str
) -> None:
    """A CA, certificate or key file the process's user may not read (a Secret mounted 0400 for root, the
    container running as uid 10001) is one line saying it cannot be read and by whom; it said "not a PEM
    bundle of CA certificates (Permission denied)" or, for the client's files, "PEM files expected"."""
    with tempfile.TemporaryDirectory(prefix="preempt-tls-") as folder:  # pytest's own tmp folders are 0700
        shared = Path(folder)
        shared.chmod(0o755)
        files = {"ca": shared / "ca.pem", "cert": shared / "client.pem", "key": shared / "client.key"}
        for key, source in (("ca", "ca"), ("cert", "client"), ("key", "client-key")):
            files[key].write_bytes(tls_files[source].read_bytes())
            files[key].chmod(0o644)
        files[name].chmod(0o000)
        settings = _settings(
            kafka_security_protocol="SSL",
            kafka_ssl_ca_file=files["ca"],
            kafka_ssl_cert_file=files["cert"],
            kafka_ssl_key_file=files["key"],
            kafka_ssl_key_password="keypass",
        )
        message = _ssl_context_error_as_another_user(settings)
    assert message.startswith(f"{setting}={files[name]}: cannot read it (Permission denied); "), message
    assert "make it readable by the user this process runs as (uid " in message
    assert "PEM" not in message


@contextlib.contextmanager
def _listening(respond: Callable[[socket.socket], None]) -> Iterator[int]:
    """A local listener whose connections ``respond`` handles (in a thread); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                respond(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def _serve_and_check(settings_fields: dict[str, Any], respond: Callable[[socket.socket], None]) -> str:
    """Run ``check_access`` against a local listener whose connections ``respond`` handles (in a thread);
    returns the access error's line, or "" when access was granted."""
    from streams.runtime.kafka_clients import KafkaAccessError, check_access

    with _listening(respond) as port:
        try:
            check_access(_settings(broker=f"kafka://127.0.0.1:{port}", **settings_fields), timeout_s=5)
        except KafkaAccessError as exc:
            return str(exc)
    return ""


def _requiring_a_certificate(tls_files: dict[str, Path]) -> Callable[[socket.socket], None]:
    """A TLS listener's handler with mutual TLS that refuses a client without a certificate."""
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls_files["ca"]))
    server_ssl.load_cert_chain(str(tls_files["server"]), str(tls_files["server-key"]))
    server_ssl.verify_mode = ssl.CERT_REQUIRED

    def require_a_certificate(conn: socket.socket) -> None:
        tls = server_ssl.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with contextlib.suppress(ssl.SSLError, OSError):
            tls.do_handshake()  # fails: sends the "certificate required" alert
        tls.shutdown(socket.SHUT_WR)  # let the client read the alert before the connection goes
        tls.settimeout(3)
        with contextlib.suppress(ssl.SSLError, OSError):
            while tls.recv(4096):
                pass

    return require_a_certificate


def test_a_broker_that_wants_a_client_certificate_is_named_in_one_line(tls_files: dict[str, Path]) -> None:
    """A listener with mutual TLS that refuses the client (no certificate) is one error saying which settings
    to set — not 'closed the connection, check the protocol' (TLS 1.3 reports it only after the handshake)."""
    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": tls_files["ca"]}
    message = _serve_and_check(fields, _requiring_a_certificate(tls_files))
    assert "refused this client's TLS certificate (TLS alert: certificate required)" in message
    assert "PREEMPT_KAFKA_SSL_CERT_FILE and PREEMPT_KAFKA_SSL_KEY_FILE" in message


def test_the_broker_watch_reports_a_refusal_of_this_client_as_the_refusal(tls_files: dict[str, Path]) -> None:
    """A running process whose broker starts refusing it (client certificates now required, or its own
    expired, a rotated CA or password) gets the start-up check's line as the broker watch's reason, so
    /readyz and the ERROR line say what to fix; they said "KafkaConnectionError: Connection at … closed"."""
    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": tls_files["ca"]}
    with _listening(_requiring_a_certificate(tls_files)) as port:
        settings = _settings(broker=f"kafka://127.0.0.1:{port}", **fields)
        reason = asyncio.run(unreachable_reason(settings, 5.0))
    assert reason == (
        f"Kafka at 127.0.0.1:{port} refused this client's TLS certificate (TLS alert: certificate required); "
        "the listener wants a client certificate: set PREEMPT_KAFKA_SSL_CERT_FILE and PREEMPT_KAFKA_SSL_KEY_FILE"
    )


def test_the_broker_watch_names_a_broker_certificate_this_client_no_longer_trusts(
    tls_files: dict[str, Path],
) -> None:
    """A broker whose certificate changed to one this client does not trust (its CA rotated) is reported by
    the watch with the line that says which setting fixes it, not an SSL error's repr."""
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(str(tls_files["other-host"]), str(tls_files["server-key"]))

    def serve_tls(conn: socket.socket) -> None:
        tls = server_ssl.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with contextlib.suppress(ssl.SSLError, OSError):
            tls.do_handshake()  # the client refuses the certificate

    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": tls_files["ca"]}
    with _listening(serve_tls) as port:
        reason = asyncio.run(unreachable_reason(_settings(broker=f"kafka://127.0.0.1:{port}", **fields), 5.0))
    assert reason is not None
    assert reason.startswith(f"Kafka at 127.0.0.1:{port}: the broker's TLS certificate is not for '127.0.0.1'"), reason
    assert reason.endswith("write in PREEMPT_BROKER a host name the certificate names"), reason


def test_tls_to_a_plaintext_listener_is_a_protocol_mismatch_not_an_unreachable_broker(
    tls_files: dict[str, Path],
) -> None:
    """A listener without TLS that resets the TLS hello is reported as a protocol mismatch at once; it was
    taken for "broker not reachable yet" and ended, 5 s later, as "cannot reach Kafka … start the broker"."""

    def reset(conn: socket.socket) -> None:  # what a broker does with a frame size it cannot accept
        conn.recv(5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": tls_files["ca"]}
    message = _serve_and_check(fields, reset)
    assert "closed the connection during the SSL handshake" in message
    assert "PREEMPT_KAFKA_SECURITY_PROTOCOL" in message


@pytest.mark.parametrize(
    ("certificate", "message"),
    [
        (
            "expired",
            "the broker's TLS certificate is out of its validity period (certificate has expired); "
            "it must be renewed on the broker",
        ),
        ("other-host", "the broker's TLS certificate is not for '127.0.0.1'"),
    ],
)
def test_an_expired_or_misnamed_broker_certificate_says_what_fixes_it(
    tls_files: dict[str, Path], certificate: str, message: str
) -> None:
    """A broker certificate that expired, or names another host, is one line saying so — not "set
    PREEMPT_KAFKA_SSL_CA_FILE", which cannot help."""
    time.sleep(1.1)  # the "expired" certificate's end is the second it was made
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(str(tls_files[certificate]), str(tls_files["server-key"]))

    def serve_tls(conn: socket.socket) -> None:
        tls = server_ssl.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        with contextlib.suppress(ssl.SSLError, OSError):
            tls.do_handshake()  # the client refuses the certificate

    fields = {"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": tls_files["ca"]}
    error = _serve_and_check(fields, serve_tls)
    assert message in error
    assert "PREEMPT_KAFKA_SSL_CA_FILE" not in error


def test_a_refused_handshake_is_only_the_error_line_at_info_level(
    tls_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The check's retry of a cut handshake logs at debug only: a worker refused this way prints its one
    Error line, not two warnings before it."""
    from streams.runtime.logs import configure_logging

    configure_logging("json", "INFO")

    def reset(conn: socket.socket) -> None:
        conn.recv(5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    message = _serve_and_check({"kafka_security_protocol": "SSL", "kafka_ssl_ca_file": tls_files["ca"]}, reset)
    assert "closed the connection during the SSL handshake" in message
    assert "kafka access check" not in capsys.readouterr().err


def test_the_kafka_consumers_can_decompress_every_codec_producers_use() -> None:
    """aiokafka (both Faust apps, gap repair) has snappy, lz4 and zstd (cramjam): a batch in a codec it
    cannot decode crashed the worker's fetcher, and again after every restart."""
    from aiokafka import codec

    assert codec.has_gzip()
    assert codec.has_snappy()
    assert codec.has_lz4()
    assert codec.has_zstd()


def test_kafka_python_bootstrap_leaves_out_a_server_that_gave_the_check_no_answer() -> None:
    """No bootstrap server answered the access check: one took the connection and said nothing (a hung broker), one
    refused it (a broker still starting). kafka-python clients get the one that refused (they retry it until it is
    up), not the silent one, whose TLS handshake kafka-python would wait for without end; before, they got both.
    When every server was silent, they get every one."""
    from streams.runtime.kafka_clients import check_access, kafka_python_bootstrap

    with socket.socket() as silent, socket.socket() as closed:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # never accepted: the kernel takes the connection, nobody answers
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        quiet, starting = (f"127.0.0.1:{s.getsockname()[1]}" for s in (silent, closed))
        settings = _settings(broker=f"kafka://{quiet};{starting}")
        unreachable = check_access(settings, timeout_s=1.0)
        assert set(unreachable) == {quiet, starting}
        assert kafka_python_bootstrap(settings) == [starting]

        only_silent = _settings(broker=f"kafka://{quiet}")
        check_access(only_silent, timeout_s=0.5)
        assert kafka_python_bootstrap(only_silent) == [quiet]


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"security_protocol": "PLAINTEXT"},
        {"security_protocol": "SSL", "ssl_check_hostname": False},
        {"security_protocol": "SASL_SSL", "ssl_context": object(), "sasl_mechanism": "PLAIN"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": object()},
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": "u"},
    ],
)
def test_the_sdks_access_check_leaves_alone_what_it_cannot_reproduce(
    arguments: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain Publisher's check of kafka-python arguments connects only for TLS/SASL set-ups it can make as the
    client would: never for plain text, a client's own ssl_context or TLS options (ssl_check_hostname=False: the
    check would refuse a certificate the client accepts), another SASL mechanism, or missing credentials."""
    from streams.runtime import kafka_clients

    def connect(*_: object, **__: object) -> None:
        raise AssertionError("the check connected")

    monkeypatch.setattr(kafka_clients, "check_access", connect)
    kafka_clients.check_kafka_python_access("127.0.0.1:1", arguments, timeout_s=1.0)


def test_the_sdks_access_check_names_the_arguments_not_the_settings(
    pem_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the check finds is said in the words of the arguments given (sasl_plain_password, ssl_cafile), with
    the values it was given; the password never."""
    from streams.runtime import kafka_clients

    seen: list[Settings] = []

    def refuse(settings: Settings, timeout_s: float) -> None:
        seen.append(settings)
        raise kafka_clients.KafkaAccessError(
            "Kafka at 127.0.0.1:1 refused the login of user 'svc' (SCRAM-SHA-256 over SASL_SSL): no; check "
            "PREEMPT_KAFKA_SASL_USERNAME, PREEMPT_KAFKA_SASL_PASSWORD and PREEMPT_KAFKA_SASL_MECHANISM; "
            "PREEMPT_KAFKA_SSL_CA_FILE, PREEMPT_BROKER"
        )

    monkeypatch.setattr(kafka_clients, "check_access", refuse)
    arguments = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw-93ad",
        "ssl_cafile": str(pem_files["ca"]),
    }
    with pytest.raises(kafka_clients.KafkaAccessError) as refused:
        kafka_clients.check_kafka_python_access(["127.0.0.1:1"], arguments, timeout_s=1.0)
    assert str(refused.value).endswith(
        "check sasl_plain_username, sasl_plain_password and sasl_mechanism; ssl_cafile, bootstrap_servers"
    )
    [settings] = seen
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() == "pw-93ad"
    assert (settings.kafka_ssl_ca_file, settings.bootstrap_servers) == (pem_files["ca"], ["127.0.0.1:1"])
