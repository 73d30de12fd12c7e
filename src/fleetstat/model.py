"""Values shared by the parts of a round: a host's status and its result."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from fleetstat.config import Client
    from fleetstat.document import Document


class Status(StrEnum):
    """How one host's attempt ended. Stored as text in ``attempts.status``."""

    OK = "ok"
    UNREACHABLE = "unreachable"  # nothing listening, no route, DNS failure, reset before auth
    AUTH_FAILED = "auth_failed"  # the server said no to every credential we have
    HOST_KEY_MISMATCH = "host_key_mismatch"  # unknown or changed host key under the policy
    NO_PYTHON = "no_python"  # neither python3 nor python on the host
    TIMEOUT = "timeout"  # connect or run deadline passed
    PROBE_ERROR = "probe_error"  # the probe ran and failed (non-zero exit, no line)
    BAD_PAYLOAD = "bad_payload"  # output present but not a valid sealed envelope
    # <cluster> only (fleetstat.cluster): the host was not collected this round.
    ZONE_UNAVAILABLE = "zone_unavailable"  # no live worker of the host's zone took it
    SHARD_LOST = "shard_lost"  # its shard was not committed within the round's deadline

    @property
    def collected(self) -> bool:
        """False when nobody tried the host (a cluster round that could not place it):
        such a result says nothing about the host, and its alerts are not evaluated."""
        return self not in (Status.ZONE_UNAVAILABLE, Status.SHARD_LOST)


# What happened to an alert, said by alerts (the state machine) and rendered by mail:
# it started firing, it is still firing and its repeat interval passed, it resolved.
NoticeKind = Literal["firing", "repeat", "resolved"]


@dataclass(frozen=True)
class HostResult:
    """One host's outcome in one round: ok with a document, or a classified failure."""

    client: Client
    status: Status
    started_at: datetime  # UTC, timezone-aware
    duration_seconds: float
    error: str | None = None  # a sentence a person can act on; None when ok
    document: Document | None = None  # the checked probe document when ok (fleetstat.document)
    retries: int = 0  # transient connection failures retried inside the deadline
    stderr: str | None = None  # bounded excerpt of the probe's stderr, for diagnosis

    @property
    def ok(self) -> bool:
        return self.status is Status.OK


def new_round_uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class RoundResult:
    """Every configured host's result for one round.

    ``uuid`` names the round for its whole life: stored in ``rounds.uuid`` (unique)
    in the round's own transaction, so a round written again from the spool after
    a crash is recognised and stored once (:mod:`fleetstat.spool`).
    """

    started_at: datetime
    finished_at: datetime
    results: tuple[HostResult, ...] = field(default_factory=tuple)
    # Hosts never started because the round was interrupted (Ctrl-C on collect):
    # they have no result, and the round is stored without them.
    not_started: int = 0
    uuid: str = field(default_factory=new_round_uuid)

    @property
    def ok_count(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed_count(self) -> int:
        return len(self.results) - self.ok_count

    @property
    def retries(self) -> int:
        return sum(r.retries for r in self.results)
