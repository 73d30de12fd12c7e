"""``<cluster>``: rounds shared by worker processes (fleetstat.cluster), and ``zone=``.

Read here, used only by ``fleetstat.cluster``: a config without ``<cluster>``
never imports the broker code.
"""

from __future__ import annotations

from fleetstat.config.model import Cluster
from fleetstat.config.reader import Reader
from fleetstat.config.source import Node
from fleetstat.config.validate import (
    check_broker,
    check_queue_prefix,
    parse_int,
    parse_seconds,
)

SHARED_DATABASE_FIX = (
    'use a database every worker reaches: <database url="postgresql://fleetstat@db.example.com/'
    'fleetstat"/> (or "mysql://..." for MariaDB), or remove <cluster> to collect from here alone'
)


def build_cluster(reader: Reader, node: Node, database_url: str) -> Cluster | None:
    """The checked ``<cluster>``; SQLite is refused (a file only this machine reads)."""
    broker = reader.require(node, "broker", 'broker="amqp://guest:guest@127.0.0.1:5672/"')
    broker = reader.get(node, "broker", check_broker, None) if broker else None
    base = Cluster(broker="")
    shard_size = reader.get(node, "shard-size", lambda r: parse_int(r, 1, 10_000), base.shard_size)
    deadline = reader.get(node, "deadline", parse_seconds, base.deadline)
    heartbeat = reader.get(node, "heartbeat", parse_seconds, base.heartbeat)
    prefix = reader.get(node, "queue-prefix", check_queue_prefix, base.queue_prefix)
    if database_url.startswith("sqlite"):
        reader.issue(
            node.line,
            "<cluster> needs a database the workers share, and SQLite is a file on this machine",
            SHARED_DATABASE_FIX,
        )
    if deadline is not None and deadline <= 3 * heartbeat:
        reader.issue(
            node.attr_line("deadline"),
            f"<cluster> deadline {deadline:g}s is not longer than 3 heartbeats "
            f"({3 * heartbeat:g}s): a dead worker could not even be noticed in it",
            "give a deadline of a few minutes, or leave it out (2 x the host deadline)",
        )
    if broker is None:
        return None
    return Cluster(broker, shard_size, deadline, heartbeat, prefix)
