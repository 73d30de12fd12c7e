"""The Dramatiq broker for ``<cluster>``: RabbitMQ (``amqp://``) or Redis (``redis://``).

Middleware, chosen rather than Dramatiq's defaults (which also start a
Prometheus exporter in the worker, and retry 20 times over hours):

- ``AsyncIO``: the shard actor is a coroutine; Dramatiq runs it on its event
  loop thread, so a worker's SSH connections live in one asyncio loop.
- ``AgeLimit``: a shard message older than its round's deadline is dropped
  (the coordinator has marked its hosts by then).
- ``TimeLimit``: a shard that runs past the round's deadline is interrupted.
- ``Retries``: a shard that raised (the database refused it) is tried again a
  few times, seconds apart, within the deadline.

A message is acknowledged only after the actor returned: RabbitMQ's consumer
acks in ``post_process_message``, after the actor; a worker killed mid-shard
never acked, its connection closes and RabbitMQ requeues the message (and the
coordinator sends the shard to another live worker when the heartbeat stops).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import dramatiq
from dramatiq.middleware import AgeLimit, Retries, ShutdownNotifications, TimeLimit
from dramatiq.middleware.asyncio import AsyncIO

from fleetstat.cluster.placement import ACTOR_NAME
from fleetstat.config import Cluster
from fleetstat.errors import BrokerError

RETRIES = 3
MIN_BACKOFF_MS = 1000
MAX_BACKOFF_MS = 5000


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def shown(url: str) -> str:
    """The broker's URL with its password masked, for messages."""
    return _PASSWORD.sub(r"\1***@", url)


@contextlib.contextmanager
def broker_errors(cluster: Cluster, doing: str) -> Iterator[None]:
    """The one boundary for the broker's errors: Dramatiq's (a connection it could not
    open or lost), pika's and redis's become :class:`BrokerError`, password masked."""
    import pika.exceptions
    import redis.exceptions

    try:
        yield
    except (dramatiq.DramatiqError, pika.exceptions.AMQPError, redis.exceptions.RedisError,
            OSError) as exc:  # fmt: skip
        reason = str(exc).replace(cluster.broker, shown(cluster.broker)) or type(exc).__name__
        raise BrokerError(
            f"message broker {shown(cluster.broker)}: cannot {doing}: {reason}"
        ) from None


def make_broker(cluster: Cluster) -> dramatiq.Broker:
    middleware = [
        AgeLimit(),
        TimeLimit(),
        ShutdownNotifications(),
        Retries(max_retries=RETRIES, min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS),
        AsyncIO(),
    ]
    broker: dramatiq.Broker
    if cluster.kind == "redis":
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=cluster.broker, namespace=cluster.queue_prefix,
                             middleware=middleware)  # fmt: skip
    else:
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=cluster.broker, middleware=middleware)
    return broker


def register_actor(
    broker: dramatiq.Broker, fn: Callable[..., Any], queue: str
) -> dramatiq.Actor[Any, Any]:
    """The shard actor on ``broker``, consuming ``queue`` (a worker's own)."""
    return dramatiq.Actor(
        fn, broker=broker, actor_name=ACTOR_NAME, queue_name=queue, priority=0,
        options={"max_retries": RETRIES},
    )  # fmt: skip


def shard_message(queue: str, body: dict[str, Any], max_age_ms: int) -> dramatiq.Message[Any]:
    """A shard as a message for ``queue``: ids only, the worker reads the rest."""
    return dramatiq.Message(
        queue_name=queue, actor_name=ACTOR_NAME, args=(), kwargs=body,
        options={"max_age": max_age_ms, "time_limit": max_age_ms},
    )  # fmt: skip
