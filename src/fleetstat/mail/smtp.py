"""One SMTP session: connect, TLS, AUTH, send; smtplib, ssl and socket errors stop here.

Two kinds of failure, because they call for different handling by the outbox:

- :class:`~fleetstat.errors.MailError`: the *session* failed (server unreachable,
  TLS or login refused, connection lost). Nothing more can be sent in this flush.
- :class:`MessageRefused` (a ``MailError`` too): the server answered, and said
  no to *this* message (sender or recipients refused, data rejected). The
  session goes on with the next message. ``permanent`` when every answer was a
  5xx (RFC 5321 section 4.2.1: "the SMTP client SHOULD NOT repeat the exact
  request"); a 4xx is transient and worth another try later.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from types import TracebackType

from fleetstat.config import Smtp
from fleetstat.errors import MailError


@dataclass(frozen=True)
class Refusal:
    """One recipient refused while others were accepted: what the server said."""

    answer: str
    permanent: bool  # a 5xx answer


class MessageRefused(MailError):
    """The server refused one message; ``answer`` is what it said, ``permanent`` a 5xx."""

    def __init__(self, answer: str, *, permanent: bool = False) -> None:
        self.answer = answer
        self.permanent = permanent
        super().__init__(answer)


class SmtpSession:
    """``with SmtpSession(smtp) as session: session.send(...)``; connects on enter."""

    def __init__(self, smtp: Smtp) -> None:
        self.smtp = smtp
        self._client: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"SMTP server {self.smtp.host}:{self.smtp.port}"

    def __enter__(self) -> SmtpSession:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        smtp = self.smtp
        context = tls_context(smtp) if (smtp.tls or smtp.starttls) else None
        try:
            if smtp.tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    smtp.host, smtp.port, timeout=smtp.timeout, context=context
                )
            else:
                client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"cannot connect to {self.where}: {describe(exc)}") from exc
        self._client = client
        try:
            client.ehlo_or_helo_if_needed()
            if smtp.starttls:
                if not client.has_extn("starttls"):
                    raise MailError(
                        f'{self.where} does not offer STARTTLS; set starttls="false" '
                        'only for a trusted local relay, or use tls="true" (port 465)'
                    )
                client.starttls(context=context)
                client.ehlo()
            if smtp.username:
                client.login(smtp.username, smtp.password or "")
        except MailError:
            self.close()
            raise
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            source = (
                f"check password-env {smtp.password_env}"
                if smtp.password_env
                else "check password= in <smtp>"
            )
            raise MailError(
                f"{self.where} refused the login for user {smtp.username}: {source} "
                f"(server said: {_answer(exc.smtp_code, exc.smtp_error)})"
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            self.close()
            raise MailError(
                f"{self.where} does not offer AUTH on this connection ({exc}); "
                'AUTH usually needs starttls="true" or tls="true"'
            ) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise MailError(f"{self.where}: {describe(exc)}") from exc

    def send(self, sender: str, recipients: list[str], data: bytes) -> dict[str, Refusal]:
        """Send one message; the recipients the server refused (others were accepted).

        Raises :class:`MessageRefused` when the server refused the message as a
        whole, :class:`MailError` when the session broke.
        """
        if self._client is None:
            raise MailError(f"{self.where}: not connected")
        try:
            refused = self._client.sendmail(sender, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            permanent = all(_permanent(code) for code, _ in exc.recipients.values())
            raise MessageRefused(_refusals(exc.recipients), permanent=permanent) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise MessageRefused(
                f"sender {exc.sender} refused: {_answer(exc.smtp_code, exc.smtp_error)}",
                permanent=_permanent(exc.smtp_code),
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            self._client = None
            raise MailError(f"{self.where} closed the connection: {describe(exc)}") from exc
        except smtplib.SMTPResponseException as exc:  # SMTPDataError and other codes
            answer = _answer(exc.smtp_code, exc.smtp_error)
            raise MessageRefused(answer, permanent=_permanent(exc.smtp_code)) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self._client = None
            raise MailError(f"{self.where}: {describe(exc)}") from exc
        return {
            rcpt: Refusal(_answer(code, text), _permanent(code))
            for rcpt, (code, text) in refused.items()
        }

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()  # the server went away first: nothing left to say


def tls_context(smtp: Smtp) -> ssl.SSLContext:
    """Certificate and host name checked against the system CAs, or ``cafile``."""
    try:
        return ssl.create_default_context(cafile=str(smtp.cafile) if smtp.cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise MailError(f"cannot read cafile {smtp.cafile}: {describe(exc)}") from exc


def describe(exc: BaseException) -> str:
    """A sentence for an smtplib, ssl or socket error, with a hint where one helps."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate not trusted ({exc.verify_message}); for a private CA set "
            'cafile="/path/ca.pem" in <smtp>'
        )
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, and is the port right?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out (raise <smtp timeout=...> if the server is just slow)"
    if isinstance(exc, socket.gaierror):
        return f"host name not found ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return _answer(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _permanent(code: int) -> bool:
    return 500 <= code <= 599


def _answer(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}".strip()


def _refusals(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{rcpt}: {_answer(code, text)}" for rcpt, (code, text) in recipients.items())
