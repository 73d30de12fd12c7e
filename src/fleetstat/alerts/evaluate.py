"""A round against the rules: alert states and outbox rows, in one transaction.

One host's failure is its own (fleetstat.hostfail): its rules are evaluated in a
plan of its own, and the plans are written together in a savepoint that falls
back to one host at a time when the database refuses the batch.

Reading the states, writing the new ones and inserting the messages happen in a
single database transaction, so a crash either loses the whole evaluation (the
next round evaluates again, from the old states) or keeps all of it: a message
is never queued twice for one state change, and never lost after one.

Writes stay small on a healthy fleet: a host whose alert is ok and stays ok
writes nothing; a row appears with the first breach and is updated on every round
while it is pending or firing, and once more when it returns to ok.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from fleetstat.alerts.machine import AlertState, Limits, step
from fleetstat.alerts.metrics import measure
from fleetstat.config import AlertRule, Defaults
from fleetstat.hostfail import describe
from fleetstat.mail import Message, Notice, enqueue, render_message
from fleetstat.model import HostResult, RoundResult
from fleetstat.store import Store, claim_round_alerts
from fleetstat.store.errors import each_in_savepoint
from fleetstat.store.schema import alert_states

_STATE_FIELDS = (
    "state",
    "breach_count",
    "first_breached_at",
    "last_value",
    "limit_value",
    "last_evaluated_at",
    "last_notified_at",
    "resolved_at",
)
_IN_CHUNK = 500  # addresses per IN (...) list


@dataclass(frozen=True)
class Evaluation:
    """What evaluating one round did."""

    notices: tuple[Notice, ...]  # every alert that fired, repeated or resolved
    messages: int  # outbox rows written (one per host with something to say)
    firing: int  # alerts firing after this round, among the hosts of the round
    unaddressed: tuple[str, ...] = ()  # hosts with something to say and no mail address
    # Hosts left out because their evaluation failed, and why (fleetstat.hostfail).
    failures: dict[tuple[str, int], str] = field(default_factory=dict)


def limits_for(rule: AlertRule, defaults: Defaults) -> Limits:
    repeat = rule.repeat_seconds if rule.repeat_seconds is not None else defaults.repeat_seconds
    if rule.type == "unreachable":
        # The metric is 1.0 (no answer) or 0.0 (answered).
        return Limits(0.0, 0.5, rule.for_rounds, repeat, rule.notify_resolved)
    limit = rule.limit if rule.limit is not None else 100.0
    clear = rule.clear if rule.clear is not None else limit
    return Limits(limit, clear, rule.for_rounds, repeat, rule.notify_resolved)


def evaluate_round(
    store: Store,
    round: RoundResult,
    *,
    defaults: Defaults | None = None,
    now: datetime | None = None,
    once: bool = False,
    late: datetime | None = None,
) -> Evaluation:
    """Evaluate every host of ``round`` against its client's rules; queue the mail.

    Per host (fleetstat.hostfail): a host whose rules cannot be evaluated or whose
    message cannot be rendered is left out, as is one whose rows the database
    refuses when the round's rows are written together (then each host is written
    in a savepoint of its own); they are in ``Evaluation.failures`` with the
    reason, for the caller to mark, and the other hosts are evaluated and mailed.

    ``once``: the round is stored (``rounds.uuid``) and its alerts are evaluated
    only if no evaluation of it committed before (``rounds.alerts_at``, claimed
    in this transaction); otherwise nothing is written and nothing queued.
    ``late``: the round ran at ``now`` but is evaluated only at ``late`` (written
    from the spool after a database outage): the states move with the round's
    own time, and its messages say they are late and are queued at ``late``.
    """
    defaults = defaults or Defaults()
    now = now or datetime.now(UTC)
    failures: dict[tuple[str, int], str] = {}
    with store.errors("evaluate alerts"), store.engine.begin() as conn:
        if once and not claim_round_alerts(conn, round.uuid, late or now):
            return Evaluation(notices=(), messages=0, firing=0)
        known = _load(conn, round.results)
        plans: list[tuple[tuple[str, int], _Plan]] = []
        for result in round.results:
            key = (result.client.ip, result.client.port)
            plan = _Plan(late)
            try:
                plan.host(result, known, defaults, now)
            except Exception as exc:  # this host's alerts only
                failures[key] = describe(exc)
                continue
            plans.append((key, plan))

        def write(conn: Connection, batch: Sequence[tuple[tuple[str, int], _Plan]]) -> None:
            merged = _Plan.merge(plan for _, plan in batch)
            _write(conn, merged)
            enqueue(conn, merged.messages, now=late or now)

        for index, why in each_in_savepoint(conn, store.url, plans, write).items():
            failures[plans[index][0]] = why
    done = _Plan.merge(plan for key, plan in plans if key not in failures)
    return Evaluation(
        notices=tuple(done.notices),
        messages=len(done.messages),
        firing=done.firing,
        unaddressed=tuple(done.unaddressed),
        failures=failures,
    )


_Key = tuple[str, int, str]  # client_ip, client_port, rule_key


class _Plan:
    """The writes and messages one evaluation decided on."""

    def __init__(self, late: datetime | None = None) -> None:
        self.late = late
        self.inserts: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.deletes: list[int] = []
        self.messages: list[tuple[Message, str, int]] = []
        self.notices: list[Notice] = []
        self.unaddressed: list[str] = []
        self.firing = 0

    @classmethod
    def merge(cls, plans: Iterable[_Plan]) -> _Plan:
        merged = cls()
        for plan in plans:
            merged.inserts += plan.inserts
            merged.updates += plan.updates
            merged.deletes += plan.deletes
            merged.messages += plan.messages
            merged.notices += plan.notices
            merged.unaddressed += plan.unaddressed
            merged.firing += plan.firing
        return merged

    def host(
        self,
        result: HostResult,
        known: dict[_Key, tuple[int, AlertState]],
        defaults: Defaults,
        now: datetime,
    ) -> None:
        client = result.client
        notices: list[Notice] = []
        keys = set()
        for rule in client.alerts:
            keys.add(rule.key)
            row = known.get((client.ip, client.port, rule.key))
            previous = row[1] if row else AlertState()
            found = measure(rule, result)
            limits = limits_for(rule, defaults)
            new, kind = step(previous, found.value if found else None, limits, now)
            new = replace(new, limit_value=rule.limit) if new is not previous else new
            self.firing += new.state == "firing"
            if kind is not None:
                since = previous.first_breached_at if kind == "resolved" else new.first_breached_at
                notices.append(
                    Notice(
                        kind=kind,
                        rule=rule,
                        value=new.last_value,
                        at=now,
                        since=since,
                        rounds=new.breach_count if kind != "resolved" else previous.breach_count,
                        detail=found.detail if found else None,
                        repeat_seconds=limits.repeat_seconds,
                    )
                )
            values = {name: getattr(new, name) for name in _STATE_FIELDS}
            if row is None:
                if new.state != "ok":
                    self.inserts.append(
                        {
                            "client_ip": client.ip,
                            "client_port": client.port,
                            "rule_key": rule.key,
                            "metric": rule.type,
                            **values,
                        }
                    )
            elif new is not previous and not (previous.state == new.state == "ok"):
                self.updates.append({"_id": row[0], **values})
        # A rule taken out of the config: forget its state (no mail about it).
        self.deletes += [
            row_id
            for (ip, port, key), (row_id, _) in known.items()
            if (ip, port) == (client.ip, client.port) and key not in keys
        ]
        if not notices:
            return
        self.notices += notices
        if client.mail:
            message = render_message(result, notices, late=self.late)
            self.messages.append((message, client.ip, client.port))
        else:
            self.unaddressed.append(client.address)


def _load(conn: Connection, results: Sequence[HostResult]) -> dict[_Key, tuple[int, AlertState]]:
    hosts = {(r.client.ip, r.client.port) for r in results}
    ips = sorted({ip for ip, _ in hosts})
    known: dict[_Key, tuple[int, AlertState]] = {}
    for start in range(0, len(ips), _IN_CHUNK):
        query = (
            sa.select(alert_states)
            .where(alert_states.c.client_ip.in_(ips[start : start + _IN_CHUNK]))
            .order_by(alert_states.c.id)
            # Two evaluations at once (a `watch` and a manual `collect`) take turns on
            # PostgreSQL and MariaDB; SQLite has one writer at a time anyway.
            .with_for_update()
        )
        for row in conn.execute(query):
            if (row.client_ip, row.client_port) not in hosts:
                continue
            state = AlertState(**{name: getattr(row, name) for name in _STATE_FIELDS})
            known[(row.client_ip, row.client_port, row.rule_key)] = (int(row.id), state)
    return known


def _write(conn: Connection, plan: _Plan) -> None:
    if plan.deletes:
        conn.execute(sa.delete(alert_states).where(alert_states.c.id.in_(plan.deletes)))
    if plan.inserts:
        conn.execute(sa.insert(alert_states), plan.inserts)
    if plan.updates:
        # executemany: SET is taken from the keys of the parameter dicts.
        conn.execute(
            sa.update(alert_states).where(alert_states.c.id == sa.bindparam("_id")),
            plan.updates,
        )
