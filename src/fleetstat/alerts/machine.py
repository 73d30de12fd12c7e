"""The state machine of one alert (one host, one rule), as a pure function.

::

              breach            breach number for=
      ok ─────────────> pending ──────────────────> firing ──┐ above clear: mail again
      ^  <─────────────                               │ ^ ───┘ when the repeat interval
      │    no breach                                  │        has passed (0: every round)
      └───────────────────────────────────────────────┘
           below clear (default: the limit): RESOLVED mail

``for="1"`` (the default) goes from ok to firing in one step. A breach is
``value > limit``; an alert resolves when ``value < clear``; between the two it
keeps firing (hysteresis). ``None`` (no data: the attempt failed, or the probe
could not read that family) changes nothing at all: no data is not "resolved".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from fleetstat.model import NoticeKind

State = Literal["ok", "pending", "firing"]


@dataclass(frozen=True)
class AlertState:
    """One row of ``alert_states`` without its identity columns."""

    state: State = "ok"
    breach_count: int = 0
    first_breached_at: datetime | None = None
    last_value: float | None = None
    limit_value: float | None = None
    last_evaluated_at: datetime | None = None
    last_notified_at: datetime | None = None
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class Limits:
    """A rule's thresholds, in the unit of its metric."""

    limit: float
    clear: float  # resolve strictly below this; equals limit without hysteresis
    for_rounds: int = 1
    repeat_seconds: float = 4 * 3600  # 0: every round while firing
    notify_resolved: bool = True


def step(
    previous: AlertState, value: float | None, limits: Limits, now: datetime
) -> tuple[AlertState, NoticeKind | None]:
    """The next state after one evaluation at ``now``, and what to tell, if anything."""
    if value is None:
        return previous, None
    seen = replace(previous, last_value=value, limit_value=limits.limit, last_evaluated_at=now)
    if previous.state == "firing":
        if value < limits.clear:
            resolved = replace(seen, state="ok", breach_count=0, resolved_at=now)
            if limits.notify_resolved:
                return replace(resolved, last_notified_at=now), "resolved"
            return resolved, None
        firing = replace(seen, breach_count=previous.breach_count + 1)
        if _repeat_due(previous.last_notified_at, limits.repeat_seconds, now):
            return replace(firing, last_notified_at=now), "repeat"
        return firing, None
    if value <= limits.limit:
        # Below the limit again before for= was reached: start counting afresh.
        return replace(seen, state="ok", breach_count=0), None
    count = previous.breach_count + 1 if previous.state == "pending" else 1
    since = previous.first_breached_at if previous.state == "pending" else now
    breaching = replace(seen, breach_count=count, first_breached_at=since)
    if count < limits.for_rounds:
        return replace(breaching, state="pending"), None
    return replace(breaching, state="firing", last_notified_at=now), "firing"


def _repeat_due(last: datetime | None, repeat_seconds: float, now: datetime) -> bool:
    if repeat_seconds <= 0 or last is None:
        return True
    return now - last >= timedelta(seconds=repeat_seconds)
