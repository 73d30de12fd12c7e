"""The database's own health: one mail to the admin when it has been down a while,
one when it is back.

The outage is kept in the spool directory (``database.json``: since when, the
last error, when the admin was told), so ``collect`` run from cron, one process
per round, mails once per outage like ``watch`` does. The mail goes straight to
the SMTP server (``<smtp>``), never through the outbox: the outbox is a table in
the database that is down. It goes to ``<smtp admin="...">``, else to the first
owner in the config (the first client's first address).

- :meth:`DatabaseHealth.failed`: the database did not take a round. The first
  failure starts the outage; once it has lasted ``<database alert-after>`` (5
  minutes by default), the DOWN mail is sent, once. A relay that refuses is
  tried again at the next failure.
- :meth:`DatabaseHealth.recovered`: a round reached the database again. If the
  admin was told it was down, the BACK mail says for how long and what the
  spool wrote; then the outage is forgotten.

Sent at least once: a crash between the relay's acceptance and the state file
update sends it again, with the same ``Message-ID``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

from fleetstat.config import Config
from fleetstat.errors import MailError, StoreError
from fleetstat.spool.codec import iso, parse_iso
from fleetstat.spool.directory import Spool
from fleetstat.units import format_duration, format_size

log = logging.getLogger(__name__)

STATE = "database.json"
# As the outbox's messages: a Subject stays on one line (RFC 5322's limit is 998).
_POLICY = SMTP_POLICY.clone(max_line_length=998)


@dataclass(frozen=True)
class Outage:
    """The database's outage as kept in ``database.json``."""

    since: datetime
    error: str
    mailed_at: datetime | None = None  # the DOWN mail was accepted then

    def as_json(self) -> dict[str, str | None]:
        return {"since": iso(self.since), "error": self.error, "mailed_at": iso(self.mailed_at)}


class DatabaseHealth:
    """The outage state of one config's database, shared by its processes."""

    def __init__(self, config: Config, spool: Spool, database: str) -> None:
        self.config = config
        self.spool = spool
        self.database = database  # shown in the mail: the URL with its password masked
        self._lock = threading.Lock()  # the round's thread and the between-rounds check

    def outage(self) -> Outage | None:
        raw = self.spool.read_json(STATE)
        since = parse_iso(raw.get("since")) if isinstance(raw, dict) else None
        if since is None or not isinstance(raw, dict):
            return None
        return Outage(since, str(raw.get("error") or ""), parse_iso(raw.get("mailed_at")))

    def failed(self, error: str, now: datetime | None = None) -> Outage:
        """The database did not answer (or refused): note it, mail the admin when due."""
        now = now or datetime.now(UTC)
        with self._lock:
            outage = self.outage() or Outage(now, error)
            outage = Outage(outage.since, error, outage.mailed_at)
            due = outage.mailed_at is None and self.due(outage, now)
            if due and self._send(self._down_mail(outage, now)):
                outage = Outage(outage.since, error, now)
            self.spool.write_json(STATE, outage.as_json())
            return outage

    def due(self, outage: Outage, now: datetime) -> bool:
        return (now - outage.since).total_seconds() >= self.config.database_alert_after

    def recovered(self, written: int, now: datetime | None = None) -> Outage | None:
        """A round reached the database: the BACK mail if the admin heard of the outage.

        ``written``: rounds the spool wrote on the way. Returns the outage that
        ended (None when there was none). When the BACK mail cannot be sent the
        outage stays on file and the next round tries again.
        """
        now = now or datetime.now(UTC)
        with self._lock:
            outage = self.outage()
            if outage is None:
                return None
            if outage.mailed_at is not None and not self._send(
                self._back_mail(outage, written, now)
            ):
                return None
            self.spool.delete(STATE)
            return outage

    # -- mail -----------------------------------------------------------------------------

    def _send(self, message: EmailMessage) -> bool:
        """Straight to the SMTP server; True when it accepted the message."""
        from fleetstat.mail.smtp import SmtpSession

        smtp = self.config.smtp
        recipients = list(self.config.admin_addresses)
        subject = str(message["Subject"])
        if smtp is None or not recipients:
            why = "no <smtp> in the config" if smtp is None else "no admin address"
            log.warning("not mailed (%s): %s", why, subject)
            return False
        message["From"] = smtp.sender
        message["To"] = ", ".join(recipients)
        try:
            with SmtpSession(smtp) as session:
                refused = session.send(smtp.sender, recipients, message.as_bytes())
        except MailError as exc:
            log.warning("cannot mail the admin (%s): %s; trying again later", exc, subject)
            return False
        if refused:
            log.warning("the admin mail was refused for %s: %s", ", ".join(refused), subject)
        return len(refused) < len(recipients)

    def _message(self, subject: str, body: str, key: str, now: datetime) -> EmailMessage:
        message = EmailMessage(policy=_POLICY)
        domain = (self.config.smtp.sender if self.config.smtp else "").rpartition("@")[2]
        message["Subject"] = subject
        message["Date"] = format_datetime(now)
        # The same ID on every try of one notification: a duplicate can be spotted.
        message["Message-ID"] = f"<fleetstat.database.{key}@{domain or 'localhost'}>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        message.set_content(body)
        return message

    def _down_mail(self, outage: Outage, now: datetime) -> EmailMessage:
        lasted = _lasted(outage.since, now)
        status = self.spool.status()
        body = "\n".join(
            [
                f"fleetstat has had no working database for {lasted}.",
                "",
                f"Database: {self.database}",
                f"Since:    {_when(outage.since)}",
                f"Error:    {outage.error}",
                "",
                "Rounds go on and are kept in the local spool until the database",
                "answers again; then they are written in order, with their own times,",
                "and the alerts they hold are mailed (late, and saying so).",
                "",
                f"Spool:    {self.spool.directory}",
                f"          {status.rounds} round(s) waiting, "
                f"{format_size(status.bytes)} of {format_size(status.max_bytes)}"
                + (f", {status.dropped} dropped so far" if status.dropped else ""),
                "",
                "-- ",
                "fleetstat: one mail when the database is down, one when it is back.",
            ]
        )
        subject = f"[fleetstat] DATABASE DOWN for {lasted}: {self.database}"
        return self._message(subject, body + "\n", f"down.{int(outage.since.timestamp())}", now)

    def _back_mail(self, outage: Outage, written: int, now: datetime) -> EmailMessage:
        lasted = _lasted(outage.since, now)
        status = self.spool.status()
        body = "\n".join(
            [
                f"fleetstat's database works again, after {lasted}.",
                "",
                f"Database: {self.database}",
                f"Down:     {_when(outage.since)} to {_when(now)}",
                f"Written:  {written} spooled round(s), with their own times",
                f"Waiting:  {status.rounds} round(s) still in the spool",
                f"Dropped:  {status.dropped} round(s) the spool's bound could not keep"
                + (f" (last {_when(status.last_dropped_at)})" if status.last_dropped_at else ""),
                "",
                "-- ",
                "fleetstat: one mail when the database is down, one when it is back.",
            ]
        )
        subject = f"[fleetstat] DATABASE BACK after {lasted}: {self.database}"
        return self._message(subject, body + "\n", f"back.{int(outage.since.timestamp())}", now)


def _lasted(since: datetime, now: datetime) -> str:
    return format_duration(max(0.0, round((now - since).total_seconds())))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def display_url(url: str) -> str:
    """A database URL with its password masked, for messages (the URL may be invalid)."""
    from fleetstat.store.errors import parse_url

    try:
        return parse_url(url).render_as_string(hide_password=True)
    except StoreError:
        return "the configured database (its URL does not parse)"


def check_database_health(config: Config, database_url: str | None = None) -> Outage | None:
    """Between two rounds (``watch``): when an outage's DOWN mail is due, try the
    database and mail the admin if it still fails. Costs one small file read
    when the database is fine; the outage (if any) is returned."""
    from fleetstat.store import Store

    spool = Spool.for_config(config)
    url = database_url or config.database_url
    health = DatabaseHealth(config, spool, display_url(url))
    outage = health.outage()
    if outage is None or outage.mailed_at is not None:
        return outage
    if not health.due(outage, datetime.now(UTC)):
        return outage
    try:
        with Store(url) as store:
            store.ensure_schema()
    except StoreError as exc:
        return health.failed(str(exc))
    return outage  # it answers again: the next round writes the spool and says so
