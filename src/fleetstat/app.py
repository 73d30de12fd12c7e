"""What the CLI commands do, as library calls (the CLI only parses and prints)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetstat import envelope
from fleetstat.alerts import AlertView, active_alerts, evaluate_round
from fleetstat.collector import Progress, collect_round, plan_round
from fleetstat.errors import MailError
from fleetstat.mail import FlushReport, flush_outbox, outbox_backlog
from fleetstat.model import RoundResult
from fleetstat.probe_bundle import build_probe
from fleetstat.store import Store

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from fleetstat.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CollectOutcome:
    round: RoundResult
    round_id: int
    database: str
    mail_sent: int = 0  # accepted by the SMTP server in this run
    mail_queued: int = 0  # still in the outbox afterwards (new, refused, or no SMTP)
    mail_failed: int = 0  # attempted in this run and not accepted
    mail_error: str | None = None  # why nothing could be sent, when that is the case
    alerts_firing: int = 0  # alerts firing after this round


def load_or_create_key(path: Path) -> X25519PrivateKey:
    """The server's private key; created (0600) on first use so a first run just works."""
    if not path.exists():
        envelope.generate_keypair(path)
        log.warning("created server key pair %s (+ .pub); keep the private key safe", path)
    return envelope.load_private_key(path)


def open_store(config: Config, url: str | None = None) -> Store:
    store = Store(url or config.database_url)
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store


def collect_once(
    config: Config,
    *,
    progress: Progress | None = None,
    database_url: str | None = None,
    now: datetime | None = None,
) -> CollectOutcome:
    """One round: probe every host, store every result, evaluate alerts, send the mail.

    The round is stored before alerts are evaluated, and alerts are queued before
    anything is sent: an SMTP server that is down costs neither data nor mail.
    ``now`` stands in for the clock of the alert and mail steps (tests).
    """
    key = load_or_create_key(config.key_path)
    with open_store(config, database_url) as store:
        plan = plan_round(config, key, build_probe())
        result = asyncio.run(collect_round(config, plan, progress=progress))
        round_id = store.record_round(result)
        evaluation = evaluate_round(store, result, defaults=config.defaults, now=now)
        for address in evaluation.unaddressed:
            log.warning("alert for %s not mailed: the client has no mail address", address)
        outcome = CollectOutcome(
            round=result,
            round_id=round_id,
            database=store.display_url,
            alerts_firing=evaluation.firing,
        )
        return replace(outcome, **deliver_mail(config, store, now=now))


def deliver_mail(config: Config, store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """Flush the outbox when the config has ``<smtp>``; the ``mail_*`` outcome fields."""
    if config.smtp is None:
        pending, _ = outbox_backlog(store, now)
        note = "no <smtp> in the config: messages stay queued" if pending else None
        return {"mail_queued": pending, "mail_error": note}
    report = flush_outbox(store, config.smtp, now)
    return {
        "mail_sent": len(report.sent),
        "mail_queued": report.pending,
        "mail_failed": len(report.failed),
        "mail_error": str(report.error) if report.error else None,
    }


def flush_mail(
    config: Config, *, database_url: str | None = None, everything: bool = True
) -> FlushReport:
    """``fleetstat mail flush``: send what the outbox holds now (``everything``: ignore backoff)."""
    if config.smtp is None:
        raise MailError(
            f"{config.path} has no <smtp>: add "
            '<smtp host="mail.example.com" from="fleetstat@example.com"/> to send mail'
        )
    with open_store(config, database_url) as store:
        return flush_outbox(store, config.smtp, everything=everything)


def list_alerts(
    config: Config, *, database_url: str | None = None, pending: bool = False
) -> list[AlertView]:
    """``fleetstat alerts``: the alerts firing now for the clients in ``config``."""
    with open_store(config, database_url) as store:
        return active_alerts(store, config, pending=pending)
