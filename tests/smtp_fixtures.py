"""Real SMTP servers on loopback (aiosmtpd) that catch what fleetstat sends.

``smtp_server``: plain SMTP, no TLS, no AUTH (a local relay on port 25).
``smtp_tls_server``: STARTTLS and AUTH both required, with a self-signed
certificate made here with ``cryptography``; one user, ``USER``/``PASSWORD``.
Both are started per test on a free port; ``stop()`` and ``start()`` again on the
same port simulate a relay that goes down and comes back.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetstat.config import Smtp
from fleetstat.simfleet import free_port

USER = "fleetstat"
PASSWORD = "correct horse"


@dataclass(frozen=True)
class Caught:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return str(self.message.get_content()).replace("\r\n", "\n")


@dataclass
class Sink:
    """aiosmtpd handler: keeps every message; refuses the addresses in ``refuse``
    with ``answer``."""

    messages: list[Caught] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    # What a refused address gets: permanent (5xx) by default, or e.g. a 4xx.
    answer: str = "550 5.1.1 mailbox unavailable"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address in self.refuse:
            return self.answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Caught(envelope.mail_from, tuple(envelope.rcpt_tos), message))
        return "250 2.0.0 accepted"


class Authenticator:
    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USER.encode()
            and auth_data.password == PASSWORD.encode()
        )
        # handled=False: aiosmtpd answers 535 itself (handled=True would mean "already answered").
        return AuthResult(success=ok, handled=False)


@dataclass
class SmtpServer:
    """A loopback SMTP server; ``smtp()`` is the matching ``<smtp>`` config value."""

    port: int
    sink: Sink = field(default_factory=Sink)
    tls: tuple[Path, Path] | None = None  # (cert, key): STARTTLS and AUTH required
    controller: Controller | None = None

    @property
    def messages(self) -> list[Caught]:
        return self.sink.messages

    @property
    def cafile(self) -> Path | None:
        return self.tls[0] if self.tls else None

    def start(self) -> SmtpServer:
        options: dict[str, Any] = {}
        if self.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            options = {
                "tls_context": context,
                "require_starttls": True,
                "auth_required": True,
                "authenticator": Authenticator(),
            }
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()
        return self

    def stop(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    def smtp(self, **overrides: Any) -> Smtp:
        values: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": self.port,
            "sender": "fleetstat@example.com",
            "timeout": 5.0,
        }
        if self.tls is not None:
            values |= {
                "starttls": True,
                "username": USER,
                "password": PASSWORD,
                "password_env": "FLEETSTAT_SMTP_PASSWORD",
                "cafile": self.cafile,
            }
        return Smtp(**(values | overrides))

    def xml(self) -> str:
        """The ``<smtp>`` element for a config file (plain servers only)."""
        return (
            f'<smtp host="127.0.0.1" port="{self.port}" starttls="false" '
            'from="fleetstat@example.com" timeout="5s"/>'
        )


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetstat test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def smtp_tls_server(smtp_certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    server = SmtpServer(free_port(), tls=smtp_certificate).start()
    yield server
    server.stop()
