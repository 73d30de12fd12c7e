"""Failing per host, never per round, after the hosts have answered.

The transport already fails per host: a host that hangs, refuses the login or
sends garbage is one classified result. Past it, turning a host's result into
rows, alert state and mail runs once per round for every host together (one
transaction, one multi-row INSERT per table: that is what keeps a 500-host
round cheap). A failure there for one host (a value a database refuses, a bug
that one odd document reaches) must not lose the round for the others. Each step
after collection therefore runs per host where it is pure, and where it writes,
as a batch that falls back to one host at a time when the database refuses it
(``Store.write_round``, ``alerts.evaluate``): the host that failed is
:func:`demote`-d, the others go on.

A demoted host is ``bad_payload`` with the step named in its attempt row
(``"alerts failed: TypeError: ..."``), no sample is stored for it, and one log
line names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace

from fleetstat.model import HostResult, RoundResult, Status
from fleetstat.text import clean

log = logging.getLogger("fleetstat.round")

REASON_CHARS = 500


def describe(exc: BaseException) -> str:
    """An exception as one clean line: its type and message, bounded."""
    return clean(f"{type(exc).__name__}: {exc}", REASON_CHARS)[0]


def demote(result: HostResult, stage: str, reason: str | BaseException) -> HostResult:
    """``result`` as a failure of ``stage`` (``bad_payload``), logged with the host named."""
    why = describe(reason) if isinstance(reason, BaseException) else reason
    client = result.client
    log.warning(
        "host %s (%s): %s failed, the rest of the round goes on: %s",
        client.label, client.address, stage, why,
    )  # fmt: skip
    return replace(
        result,
        status=Status.BAD_PAYLOAD,
        error=f"{client.address}: {stage} failed: {why}",
        document=None,
    )


def each_host(
    round: RoundResult, stage: str, step: Callable[[HostResult], HostResult]
) -> RoundResult:
    """``step`` applied to every host's result; a host whose step raises is demoted."""
    results = []
    for result in round.results:
        try:
            results.append(step(result))
        except Exception as exc:  # one host's failure is that host's
            results.append(demote(result, stage, exc))
    return replace(round, results=tuple(results))


def with_failures(
    round: RoundResult, stage: str, failures: Mapping[tuple[str, int], str]
) -> RoundResult:
    """``round`` with the hosts in ``failures`` (``(ip, port) -> reason``) demoted."""
    if not failures:
        return round
    results = tuple(
        demote(r, stage, failures[(r.client.ip, r.client.port)])
        if (r.client.ip, r.client.port) in failures
        else r
        for r in round.results
    )
    return replace(round, results=results)
