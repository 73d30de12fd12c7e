"""Where a round's hosts go (pure: no broker, no SQL).

A host names a zone (``zone="dc2"``; ``default`` otherwise) and only workers of
that zone take it. Within a zone each host goes to the live worker with the
highest rendezvous score ``sha256(worker | host)`` (highest random weight, Thaler
and Ravishankar 1998): the same worker round after round while it lives, and when
one dies only its own hosts move, each to the next in its order. A worker's hosts
are cut into shards of at most ``shard_size``: one message each.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fleetstat.config import Client

ACTOR_NAME = "fleetstat_shard"


@dataclass(frozen=True)
class Shard:
    """Part of a round for one worker: ``hosts`` as ``(ip, port)``."""

    number: int
    zone: str
    worker: str
    hosts: tuple[tuple[str, int], ...]


def score(worker: str, key: str) -> bytes:
    return hashlib.sha256(f"{worker}|{key}".encode()).digest()


def pick(workers: Iterable[str], key: str) -> str | None:
    """The worker with the highest score for ``key``; None when there is none."""
    return max(workers, key=lambda worker: score(worker, key), default=None)


def host_key(ip: str, port: int) -> str:
    return f"{ip}:{port}"


def plan_shards(
    clients: Sequence[Client], live: Mapping[str, Sequence[str]], shard_size: int
) -> tuple[list[Shard], dict[str, list[Client]]]:
    """The round's shards, numbered from 0, and per zone the clients no live worker
    can take. ``live``: zone -> names of its live workers."""
    by_worker: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    unplaced: dict[str, list[Client]] = defaultdict(list)
    for client in clients:
        worker = pick(live.get(client.zone, ()), host_key(client.ip, client.port))
        if worker is None:
            unplaced[client.zone].append(client)
        else:
            by_worker[(client.zone, worker)].append((client.ip, client.port))
    shards: list[Shard] = []
    for (zone, worker), hosts in sorted(by_worker.items()):
        for start in range(0, len(hosts), shard_size):
            chunk = tuple(hosts[start : start + shard_size])
            shards.append(Shard(len(shards), zone, worker, chunk))
    return shards, dict(unplaced)


_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def clean_name(text: str) -> str:
    """A worker name that fits in a queue name (``worker --name``, the host name)."""
    name = _NAME.sub("-", text).strip("-.") or "worker"
    return name if name[0].isalpha() else f"w{name}"


def queue_name(prefix: str, zone: str, worker: str) -> str:
    """The queue of one worker: ``<prefix>.<zone>.<worker>``."""
    return f"{prefix}.{zone}.{worker}"
