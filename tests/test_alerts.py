"""Alert rules: what they measure, the state machine, and evaluation in the store.

The evaluation tests run on SQLite, PostgreSQL and MariaDB (``db_url``) with the
same script of rounds and the same expected outcome: acceptance line 5.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alert_helpers import ROUND, T0, client, document, failed, ok, round_of, rule

from fleetstat.alerts import (
    AlertState,
    Limits,
    active_alerts,
    evaluate_round,
    limits_for,
    metric_value,
    step,
)
from fleetstat.alerts.metrics import Measurement, measure
from fleetstat.config import Defaults
from fleetstat.model import Status
from fleetstat.store import Store
from fleetstat.store.schema import alert_states, mail_outbox

# --- what a rule measures ----------------------------------------------------------------


def test_metric_values_come_from_the_document() -> None:
    host = client()
    result = ok(host)
    assert metric_value(rule("memory", 50), result) == 42.5
    assert metric_value(rule("swap", 50), result) == 12.5
    assert metric_value(rule("cpu", 20), result) == 12.5
    assert metric_value(rule("cpu-core", 95), result) == 24.0  # the busiest core
    assert measure(rule("cpu-core", 95), result) == Measurement(24.0, detail="cpu1")
    assert metric_value(rule("load", 1.5), result) == pytest.approx(0.31 / 2)  # per core
    assert metric_value(rule("disk", 80, mount="/var"), result) == 79.0
    assert metric_value(rule("disk", 80, mount="/var/"), result) == 79.0
    assert metric_value(rule("disk", 80), result) == 79.0  # the fullest filesystem
    assert metric_value(rule("disk", 80, mount="/srv"), result) is None  # not mounted
    assert metric_value(rule("unreachable"), result) == 0.0


def test_cpu_interval_window_falls_back_to_the_short_window() -> None:
    interval = rule("cpu", 20, window="interval")
    assert metric_value(interval, ok(client())) == 12.5
    assert metric_value(interval, ok(client(), cpu={"interval_percent": 61.0})) == 61.0
    assert metric_value(rule("cpu", 20), ok(client(), cpu={"interval_percent": 61.0})) == 12.5


def test_missing_data_is_none_not_zero() -> None:
    host = client()
    down = failed(host)
    for kind in ("memory", "swap", "cpu", "cpu-core", "load", "disk"):
        assert metric_value(rule(kind, 50), down) is None, kind
    assert metric_value(rule("unreachable"), down) == 1.0
    broken = ok(host, memory=None, disks=None, cpu={"count": None, "used_percent": None})
    assert metric_value(rule("memory", 50), broken) is None
    assert metric_value(rule("disk", 50), broken) is None
    assert metric_value(rule("cpu", 50), broken) is None
    assert metric_value(rule("cpu-core", 50), ok(host, cpu=None)) is None  # cpu failed
    older = ok(host, cpu={"busiest_core": None, "busiest_core_percent": None})
    assert metric_value(rule("cpu-core", 50), older) is None
    # Without a CPU count the probe's own per-core figure stands in.
    assert metric_value(rule("load", 1), broken) == 0.155


def test_a_cgroup_memory_rule_uses_the_limit_when_one_applies_else_the_host() -> None:
    host = client()
    limited = {"version": 2, "path": "/docker/abc", "limit_bytes": 2**29, "used_percent": 70.0}
    cgroup = rule("memory", 50, scope="cgroup")
    assert measure(cgroup, ok(host, cgroup=limited)) == Measurement(70.0, "/docker/abc")
    assert metric_value(rule("memory", 50), ok(host, cgroup=limited)) == 42.5  # host scope
    # No limit below the host's RAM: the host's memory is the limit.
    assert measure(cgroup, ok(host, cgroup=None)) == Measurement(42.5, "host")
    # The family failed: unknown, not the host's figure.
    failed = ok(host, cgroup=None, errors={"cgroup": "PermissionError: denied"})
    assert metric_value(cgroup, failed) is None


# --- the state machine -------------------------------------------------------------------

LIMITS = Limits(limit=80.0, clear=70.0, for_rounds=1, repeat_seconds=3600)


def run(values: list[float | None], limits: Limits = LIMITS) -> list[tuple[str, str | None]]:
    state, seen = AlertState(), []
    for i, value in enumerate(values):
        state, notice = step(state, value, limits, T0 + i * ROUND)
        seen.append((state.state, notice))
    return seen


def test_fires_once_then_repeats_after_the_interval_and_resolves_below_clear() -> None:
    values = [50, 90, 95, 75, *[90] * 10, 69]
    seen = run(values)
    assert seen[0] == ("ok", None)
    assert seen[1] == ("firing", "firing")
    assert seen[2] == ("firing", None)
    assert seen[3] == ("firing", None)  # 75: under the limit, above clear: still firing
    assert [n for _, n in seen[4:13]] == [None] * 9
    assert seen[13] == ("firing", "repeat")  # 12 rounds x 5 min = the 1 h interval
    assert seen[14] == ("ok", "resolved")


def test_for_waits_for_consecutive_breaches() -> None:
    limits = replace(LIMITS, for_rounds=3)
    assert run([90, 90, 50, 90, 90, 90], limits) == [
        ("pending", None),
        ("pending", None),
        ("ok", None),  # the count starts afresh
        ("pending", None),
        ("pending", None),
        ("firing", "firing"),
    ]


def test_no_data_changes_nothing_and_repeat_zero_mails_every_round() -> None:
    limits = replace(LIMITS, repeat_seconds=0, notify_resolved=False)
    assert run([90, None, 90, None, 10], limits) == [
        ("firing", "firing"),
        ("firing", None),  # a failed attempt is not "resolved"
        ("firing", "repeat"),
        ("firing", None),
        ("ok", None),  # resolved="false": no mail
    ]


def test_first_breach_time_and_notification_time_are_kept() -> None:
    limits = replace(LIMITS, for_rounds=2)
    state, _ = step(AlertState(), 90, limits, T0)
    state, notice = step(state, 91, limits, T0 + ROUND)
    assert notice == "firing"
    assert (state.first_breached_at, state.last_notified_at) == (T0, T0 + ROUND)
    assert (state.breach_count, state.last_value, state.limit_value) == (2, 91, 80)


def test_limits_default_to_the_rule_and_the_defaults() -> None:
    defaults = Defaults(repeat_seconds=7200)
    assert limits_for(rule("cpu", 20), defaults) == Limits(20, 20, 1, 7200, True)
    assert limits_for(rule("cpu", 90, clear=70, repeat_seconds=0, for_rounds=3), defaults) == (
        Limits(90, 70, 3, 0, True)
    )
    unreachable = limits_for(rule("unreachable", notify_resolved=False), defaults)
    assert unreachable.limit < 1 and unreachable.clear > 0 and not unreachable.notify_resolved


# --- evaluation in the store, on every backend ---------------------------------------------


def outbox(store: Store) -> list[tuple[str, str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(mail_outbox.c.recipients, mail_outbox.c.subject, mail_outbox.c.body)
            .where(mail_outbox.c.sent_at.is_(None))
            .order_by(mail_outbox.c.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def states(store: Store) -> dict[tuple[str, str], tuple[str, int, float | None]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(alert_states))
        return {
            (row.client_ip, row.rule_key): (row.state, row.breach_count, row.last_value)
            for row in rows
        }


@pytest.fixture
def store(db_url: str) -> Store:
    store = Store(db_url)
    store.ensure_schema()
    yield store
    store.close()


def test_a_script_of_rounds_evaluates_identically_on_every_backend(store: Store) -> None:
    web = client(
        rule("cpu", 20),
        rule("memory", 50, clear=40, for_rounds=2),
        rule("disk", 85, mount="/var"),
        rule("unreachable", notify_resolved=False),
    )
    db = client(rule("disk", 70), ip="10.0.0.7", name="db-02", mail=("dba@example.com",))
    defaults = Defaults(repeat_seconds=3600)

    def evaluate(minute: int, *results):  # type: ignore[no-untyped-def]
        at = T0 + timedelta(minutes=minute)
        return evaluate_round(store, round_of(*results), defaults=defaults, now=at)

    # 10:00 web: cpu 93 fires, memory 55 is pending (for=2); db: /var 79 > 70 fires.
    first = evaluate(0, ok(web, cpu={"used_percent": 93.0}, memory={"used_percent": 55.0}), ok(db))
    assert (first.messages, first.firing) == (2, 2)
    assert [subject for _, subject, _ in outbox(store)] == [
        "[fleetstat] FIRING cpu 93% > 20% on web-01 (10.0.0.5)",
        "[fleetstat] FIRING disk /var 79% > 70% on db-02 (10.0.0.7)",
    ]
    assert states(store) == {
        ("10.0.0.5", "cpu"): ("firing", 1, 93.0),
        ("10.0.0.5", "memory"): ("pending", 1, 55.0),
        ("10.0.0.7", "disk:*"): ("firing", 1, 79.0),
    }
    # 10:05 memory fires (second breach); cpu within the interval: one message, one alert.
    evaluate(5, ok(web, cpu={"used_percent": 95.0}, memory={"used_percent": 45.0}), ok(db))
    # 45 is below the limit but not below clear=40: it was pending, so it is back to ok.
    assert len(outbox(store)) == 2
    evaluate(10, ok(web, cpu={"used_percent": 95.0}, memory={"used_percent": 60.0}))
    evaluate(15, ok(web, cpu={"used_percent": 95.0}, memory={"used_percent": 61.0}))
    third = outbox(store)[2]
    assert third[1] == "[fleetstat] FIRING memory 61% > 50% on web-01 (10.0.0.5)"
    # 10:20 web does not answer: unreachable fires, metric alerts keep their state.
    evaluate(20, failed(web, status=Status.UNREACHABLE))
    assert outbox(store)[3][1] == (
        "[fleetstat] FIRING unreachable (unreachable) on web-01 (10.0.0.5)"
    )
    assert states(store)[("10.0.0.5", "cpu")] == ("firing", 4, 95.0)
    # 11:05 back: cpu 10 resolves; memory 45 (above clear=40) still fires, but was
    # mailed 50 min ago; unreachable resolves without mail (resolved="false").
    evaluate(65, ok(web, cpu={"used_percent": 10.0}, memory={"used_percent": 45.0}))
    fifth = outbox(store)[4]
    assert fifth[1] == "[fleetstat] RESOLVED cpu 10% < 20% on web-01 (10.0.0.5)"
    # 11:15: memory's hour has passed: a repeat.
    evaluate(75, ok(web, cpu={"used_percent": 10.0}, memory={"used_percent": 45.0}))
    assert outbox(store)[5][1] == "[fleetstat] FIRING memory 45% > 50% on web-01 (10.0.0.5)"
    assert "STILL FIRING  memory" in outbox(store)[5][2]
    assert states(store) == {
        ("10.0.0.5", "cpu"): ("ok", 0, 10.0),
        ("10.0.0.5", "memory"): ("firing", 4, 45.0),  # 10:10, 10:15, 11:05, 11:15
        ("10.0.0.5", "unreachable"): ("ok", 0, 0.0),
        ("10.0.0.7", "disk:*"): ("firing", 2, 79.0),
    }
    recipients = [r for r, _, _ in outbox(store)]
    assert recipients == ["ops@example.com", "dba@example.com"] + ["ops@example.com"] * 4
    listed = active_alerts(store)
    assert [(v.client_ip, v.rule, v.value, v.limit) for v in listed] == [
        ("10.0.0.7", "disk:*", 79.0, 70.0),
        ("10.0.0.5", "memory", 45.0, 50.0),
    ]


def test_state_survives_a_new_process_and_no_second_mail_goes_out(db_url: str) -> None:
    host = client(rule("memory", 10))
    defaults = Defaults()  # 4 h
    for minutes in (0, 5):
        store = Store(db_url)  # a new process: nothing in memory
        store.ensure_schema()
        evaluate_round(
            store, round_of(ok(host)), defaults=defaults, now=T0 + timedelta(minutes=minutes)
        )
        store.close()
    store = Store(db_url)
    assert len(outbox(store)) == 1
    evaluate_round(store, round_of(ok(host)), defaults=defaults, now=T0 + timedelta(hours=4))
    assert len(outbox(store)) == 2
    store.close()


def test_a_rule_taken_out_of_the_config_is_forgotten(store: Store) -> None:
    evaluate_round(store, round_of(ok(client(rule("memory", 10), rule("cpu", 5)))), now=T0)
    assert set(states(store)) == {("10.0.0.5", "memory"), ("10.0.0.5", "cpu")}
    evaluate_round(store, round_of(ok(client(rule("cpu", 5)))), now=T0 + ROUND)
    assert set(states(store)) == {("10.0.0.5", "cpu")}
    assert len(outbox(store)) == 1  # no mail about the removed rule


def test_a_host_without_mail_address_changes_state_but_queues_nothing(store: Store) -> None:
    host = client(rule("memory", 10), mail=())
    evaluation = evaluate_round(store, round_of(ok(host)), now=T0)
    assert evaluation.unaddressed == ("10.0.0.5:22",)
    assert (evaluation.messages, evaluation.firing, outbox(store)) == (0, 1, [])


def test_document_helper_overrides_only_what_is_given() -> None:
    doc = document(cpu={"used_percent": 99.0})
    assert doc["cpu"]["used_percent"] == 99.0 and doc["cpu"]["count"] == 2


def test_a_stored_round_is_evaluated_once_and_a_late_one_says_so(store: Store) -> None:
    """``once``: of two evaluations of one stored round (a crash, then its replay from
    the spool), only the first writes states and queues mail. ``late``: the states
    move at the round's own time, the message says it is late and is queued then."""
    host = client(rule("memory", 10))
    late_round = round_of(ok(host))
    store.record_round(late_round)
    sent_at = T0 + timedelta(minutes=42)
    first = evaluate_round(store, late_round, now=T0, once=True, late=sent_at)
    again = evaluate_round(store, late_round, now=T0, once=True, late=sent_at)
    assert (first.messages, first.firing) == (1, 1)
    assert (again.messages, again.notices) == (0, ())
    ((_, subject, body),) = outbox(store)
    assert subject.startswith("[fleetstat] FIRING memory")
    assert "Checked:  2026-11-22 10:00:00 UTC" in body
    assert "Late:     sent 42m after the check, at 2026-11-22 10:42:00 UTC" in body
    with store.engine.connect() as conn:
        created = conn.execute(sa.select(mail_outbox.c.created_at)).scalar_one()
        evaluated_at = conn.execute(sa.select(alert_states.c.last_evaluated_at)).scalar_one()
    assert (created, evaluated_at) == (sent_at, T0)
    assert store.round_state(late_round.uuid).alerts_at == sent_at  # type: ignore[union-attr]
