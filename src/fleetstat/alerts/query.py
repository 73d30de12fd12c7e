"""Reading alert states back: what is firing now (``fleetstat alerts``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from fleetstat.config import Config
from fleetstat.store import Store
from fleetstat.store.schema import alert_states


@dataclass(frozen=True)
class AlertView:
    """One alert that is not ok, as ``fleetstat alerts`` shows it."""

    host: str  # the client's name, else its IP
    client_ip: str
    client_port: int
    rule: str  # rule key: "cpu", "disk:/var", "disk:*"
    metric: str
    state: str  # "firing" or "pending"
    value: float | None
    limit: float | None
    since: datetime | None
    last_notified_at: datetime | None
    last_evaluated_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment is not None else None

        return {
            "host": self.host,
            "ip": self.client_ip,
            "port": self.client_port,
            "rule": self.rule,
            "metric": self.metric,
            "state": self.state,
            "value": self.value,
            "limit": self.limit,
            "since": when(self.since),
            "last_notified_at": when(self.last_notified_at),
            "last_evaluated_at": when(self.last_evaluated_at),
        }


def active_alerts(
    store: Store, config: Config | None = None, *, pending: bool = False
) -> list[AlertView]:
    """Firing alerts (and pending ones with ``pending``), oldest first.

    With ``config``, only clients and rules it still has, named as it names them.
    """
    states = ["firing", "pending"] if pending else ["firing"]
    query = (
        sa.select(alert_states)
        .where(alert_states.c.state.in_(states))
        .order_by(alert_states.c.first_breached_at, alert_states.c.id)
    )
    with store.errors("read the alert states"), store.engine.connect() as conn:
        rows = conn.execute(query).all()
    names: dict[tuple[str, int], str] = {}
    rules: dict[tuple[str, int], set[str]] = {}
    if config is not None:
        for client in config.clients:
            names[(client.ip, client.port)] = client.label
            rules[(client.ip, client.port)] = {rule.key for rule in client.alerts}
    views = []
    for row in rows:
        host = (row.client_ip, row.client_port)
        if config is not None and row.rule_key not in rules.get(host, set()):
            continue
        views.append(
            AlertView(
                host=names.get(host, row.client_ip),
                client_ip=row.client_ip,
                client_port=row.client_port,
                rule=row.rule_key,
                metric=row.metric,
                state=row.state,
                value=row.last_value,
                limit=row.limit_value,
                since=row.first_breached_at,
                last_notified_at=row.last_notified_at,
                last_evaluated_at=row.last_evaluated_at,
            )
        )
    return views
