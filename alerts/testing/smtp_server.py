"""A real SMTP server (aiosmtpd) for integration tests, with scriptable failures.

``smtp_server.script_rcpt("451 4.3.0 Try again later", times=2)`` answers the next two RCPT commands with
451; ``script_data("550 5.7.1 Rejected")`` does the same for DATA, ``script_mail`` for MAIL (``times=None``:
every time). Every
accepted message is recorded (time, envelope, raw bytes, parsed message); every reply to RCPT/DATA is in
``attempts``. AUTH LOGIN/PLAIN is offered without TLS and the logins are recorded; ``password`` (settable at
any time: a rotation) makes a login with another password fail with 535 (``failed_logins`` has each, and
``failed_login_sessions`` counts their connections: aiosmtplib tries every mechanism offered), and
``auth_required=True`` answers MAIL of a session without a login with 530.

Use the ``smtp_server`` fixture: ``from alerts.testing.smtp_server import smtp_server  # noqa: F401``.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from streams.runtime.testing import free_port


class _LegacyLoginDataWarning(logging.Filter):
    """Drop aiosmtpd's own "Session.login_data is deprecated" warning.

    aiosmtpd 1.4 sets the deprecated attribute itself after every successful AUTH, so the warning
    says nothing about our code and buried the chaos report under one line per login.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_LegacyLoginDataWarning())


@dataclass(frozen=True)
class ReceivedMail:
    """One message the server accepted."""

    time: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool = False  # the session was upgraded with STARTTLS

    @property
    def message(self) -> EmailMessage:
        """The parsed message (``email.policy.default``)."""
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class SmtpAttempt:
    """One RCPT or DATA command and the reply the server gave."""

    time: float
    stage: str  # "MAIL", "RCPT" or "DATA"
    reply: str


class FakeSMTP:
    """The aiosmtpd handler plus its controller; start it with the ``smtp_server`` fixture."""

    def __init__(
        self, host: str = "127.0.0.1", tls_context: ssl.SSLContext | None = None, *, auth_required: bool = False
    ) -> None:
        self.host = host
        self._tls_context = tls_context
        self._auth_required = auth_required
        self.password: str | None = None  # None: any password logs in
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.attempts: list[SmtpAttempt] = []
        self.logins: list[str] = []
        self.failed_logins: list[str] = []
        self.failed_login_sessions = 0  # connections with a failed login (a client may try each mechanism)
        self._rcpt: deque[str] = deque()
        self._data: deque[str] = deque()
        self._rcpt_always: str | None = None
        self._mail_always: str | None = None
        self._data_always: str | None = None
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # -- scripting ---------------------------------------------------------------------------------
    def script_rcpt(self, reply: str, times: int | None = 1) -> None:
        """Answer the next ``times`` RCPT commands with ``reply`` (``None``: every one)."""
        with self._lock:
            if times is None:
                self._rcpt_always = reply
            else:
                self._rcpt.extend([reply] * times)

    def script_mail(self, reply: str | None) -> None:
        """Answer every MAIL command with ``reply`` (a sender refused); None: take them again."""
        with self._lock:
            self._mail_always = reply

    def script_data(self, reply: str, times: int | None = 1) -> None:
        """Answer the next ``times`` DATA commands with ``reply`` (``None``: every one)."""
        with self._lock:
            if times is None:
                self._data_always = reply
            else:
                self._data.extend([reply] * times)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[ReceivedMail]:
        """Poll (bounded) until ``count`` messages arrived; fail with the attempts otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} emails, got {len(self.messages)}; attempts: {self.attempts}")

    # -- aiosmtpd handler hooks --------------------------------------------------------------------
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any) -> str:
        if self._auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        with self._lock:
            refused = self._mail_always
            if refused is not None:
                self.attempts.append(SmtpAttempt(time.monotonic(), "MAIL", refused))
                return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        with self._lock:
            reply = self._rcpt.popleft() if self._rcpt else (self._rcpt_always or "250 OK")
            self.attempts.append(SmtpAttempt(time.monotonic(), "RCPT", reply))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            reply = self._data.popleft() if self._data else (self._data_always or "250 Message accepted")
            self.attempts.append(SmtpAttempt(time.monotonic(), "DATA", reply))
            if reply.startswith("250"):
                data = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
                tls = getattr(session, "ssl", None) is not None
                self.messages.append(
                    ReceivedMail(time.monotonic(), str(envelope.mail_from), tuple(envelope.rcpt_tos), data, tls)
                )
        return reply

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            with self._lock:
                if self.password is not None and auth_data.password.decode() != self.password:
                    self.failed_logins.append(auth_data.login.decode())
                    if not getattr(session, "preempt_login_failed", False):
                        session.preempt_login_failed = True
                        self.failed_login_sessions += 1
                    return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8
                self.logins.append(auth_data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on ``host:port`` in aiosmtpd's own thread."""
        self._controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            auth_required=False,  # aiosmtpd's own warns without TLS: handle_MAIL answers 530 instead
            tls_context=self._tls_context,
            require_starttls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_server() -> Iterator[FakeSMTP]:
    """A running aiosmtpd server for this test; stopped at teardown."""
    server = FakeSMTP()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_blackhole() -> Iterator[tuple[str, int]]:
    """``(host, port)`` of a server that takes every connection and never says a word (a hung relay, a
    firewall that lets the handshake through): each SMTP attempt to it lasts until the client's timeout."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    try:
        yield "127.0.0.1", int(listener.getsockname()[1])
    finally:
        listener.close()


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away certificate and key for ``host`` (openssl CLI); the certificate is its own CA."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={host}",
            "-addext",
            f"subjectAltName=IP:{host}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def smtp_tls_server(tmp_path: Path) -> Iterator[tuple[FakeSMTP, Path]]:
    """A running aiosmtpd server offering STARTTLS with a self-signed certificate, and that certificate."""
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = FakeSMTP(tls_context=context)
    server.start()
    try:
        yield server, cert
    finally:
        server.stop()


__all__ = [
    "FakeSMTP",
    "ReceivedMail",
    "SmtpAttempt",
    "self_signed_certificate",
    "smtp_blackhole",
    "smtp_server",
    "smtp_tls_server",
]
