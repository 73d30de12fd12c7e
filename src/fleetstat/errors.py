"""Every error fleetstat raises on purpose derives from :class:`FleetstatError`.

The tree::

    FleetstatError
    ├── UsageError             a command or call was given an argument it cannot use
    ├── ConfigError            the XML config is unusable; carries every issue found
    ├── KeyFileError           the server key pair is missing, unreadable or malformed
    ├── EnvelopeError          a probe's output line cannot be opened (status bad_payload)
    │   └── DocumentError      its document cannot be made sane; ``field`` names where
    ├── TransportError         one host's SSH session failed; ``status`` classifies it
    ├── StoreError             the database refused or is unreachable
    │   ├── NoDatabaseError    a read found no database or an old schema (exit 2)
    │   └── RoundLockedError   another round holds the round lock (exit 75)
    ├── MailError              the SMTP server refused or is unreachable
    └── BrokerError            <cluster>: the message broker refused or is unreachable (exit 69)

Third-party exceptions stop at one boundary each: asyncssh errors in
``transport``, SQLAlchemy, driver and Alembic errors in ``store`` (``store/errors.py``,
through ``Store.errors``), smtplib errors in ``mail`` (``mail/smtp.py``),
Dramatiq's, pika's and redis's in ``cluster/broker.py`` (``broker_errors``). The CLI
turns a ``FleetstatError`` into a message and an exit code (``exit_code``: 2 for
usage and config errors, 1 otherwise), in one place (``fleetstat.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetstat.model import Status


class FleetstatError(Exception):
    """Base of every error fleetstat raises on purpose."""

    exit_code = 1


class UsageError(FleetstatError):
    """The caller asked for something that cannot be done as asked: a client name that
    names no client, an empty time window, a missing argument. Exit code 2."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: where, what, and what to write instead."""

    file: str
    line: int | None
    message: str
    fix: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class ConfigError(FleetstatError):
    """The config file cannot be used. ``issues`` lists every problem found at once."""

    exit_code = 2

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class KeyFileError(FleetstatError):
    """The server key pair cannot be read or written."""


class EnvelopeError(FleetstatError):
    """A probe's output cannot be opened: tampered, replayed, truncated or not ours."""

    status = Status.BAD_PAYLOAD


class DocumentError(EnvelopeError):
    """A probe document that cannot be made sane (``fleetstat.document``); ``field``
    names where (``None``: the document as a whole)."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        where = f"document field {field}" if field else "document"
        super().__init__(f"{where}: {reason}")


class TransportError(FleetstatError):
    """One host's SSH session failed. ``status`` is the classification stored."""

    def __init__(
        self,
        status: Status,
        message: str,
        *,
        host: str | None = None,
        exit_status: int | None = None,
        stderr: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.status = status
        self.host = host
        self.exit_status = exit_status
        self.stderr = stderr
        self.retryable = retryable
        super().__init__(message)


class StoreError(FleetstatError):
    """The database refused a statement or cannot be reached."""


class NoDatabaseError(StoreError):
    """A command that only reads found no database, or one without fleetstat's current
    schema: it creates and migrates nothing (``fleetstat db upgrade`` does). Exit 2."""

    exit_code = 2


class RoundLockedError(StoreError):
    """Another round holds the database's round lock: this one stops before storing
    anything. ``holder`` says who (command, pid, machine) and since when, when known.
    Exit code 75 (EX_TEMPFAIL from sysexits.h: try again later)."""

    exit_code = 75

    def __init__(self, message: str, holder: str | None = None) -> None:
        self.holder = holder
        super().__init__(message)


class MailError(FleetstatError):
    """The SMTP server refused a message or cannot be reached."""


class BrokerError(FleetstatError):
    """``<cluster>``: the message broker (RabbitMQ, Redis) refused or cannot be reached.
    Exit code 69 (sysexits.h EX_UNAVAILABLE: a service is unavailable)."""

    exit_code = 69
