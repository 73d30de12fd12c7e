"""``<cluster>``: a round shared by worker processes over a message broker.

Imported only when the config has ``<cluster>`` (``watch``, ``serve`` and
``collect`` then coordinate; ``fleetstat worker`` runs a worker): without it,
nothing of this package, Dramatiq, pika or redis is loaded.

- ``placement``: shards of a round (pure): hosts by zone, then rendezvous
  hashing onto the zone's live workers, so a host stays on its worker.
- ``broker``: the Dramatiq broker (RabbitMQ or Redis) and the shard actor.
- ``worker``: ``fleetstat worker``: heartbeats, and each shard run with the
  collector and committed in one transaction with its ``(round, shard)`` key.
- ``coordinator``: a round: open it, send the shards, give a dead worker's
  shards to a live one, close it at the deadline, evaluate alerts once.

Design and its reasons: docs/cluster.md.
"""
