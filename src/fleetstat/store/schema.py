"""The tables of ``docs/contracts.md`` ("Store tables"), as SQLAlchemy Core.

This is the model the code reads and writes through; the DDL that creates it is
the Alembic revisions ``migrations/versions/0001_initial.py``, ``0002_*.py`` ...,
written out by hand so that they never change once shipped. ``tests/test_store.py``
compares the two.

Portability notes: every indexed string has a length (MySQL cannot index an
unbounded one; 255 utf8mb4 characters is 1,020 bytes, and the widest key here,
the events' unique key, stays under InnoDB's 3,072); byte counts are
``BigInteger``; fractions are ``Double`` (MySQL's ``FLOAT`` is single precision).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from fleetstat.store.types import UTCDateTime, big_id, document, long_text

# Lengths shared with ``headline`` (which truncates to them: strict SQL modes reject
# the whole statement, i.e. the whole round, when one value is too long).
HOST_LEN = 255  # client_ip holds an IP or a DNS name (RFC 1035: 253 characters)
NAME_LEN = 255
MOUNT_LEN = 1024

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}

# On MySQL/MariaDB the migrations create every table with ENGINE=InnoDB and
# CHARSET=utf8mb4 (non-ASCII hostnames and messages even when the server's default
# is latin1 or the 3-byte utf8). The tables here do not repeat those options:
# SQLAlchemy checks them against its MySQL dialect, whose import (~10 ms) every
# round into SQLite or PostgreSQL then paid; nothing creates tables from here.

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# What `fleetstat history` aggregates; key columns of the covering index below.
HISTORY_COLUMNS = (
    "cpu_percent",
    "cpu_interval_percent",
    "memory_percent",
    "swap_percent",
    "disk_max_percent",
    "load1",  # revision 0004: the API's /stats gives min/avg/max of the load too
)
# Named by hand: the convention's name would pass PostgreSQL's 63-character limit.
SAMPLES_HISTORY_INDEX = "ix_samples_host_history"
ATTEMPTS_HISTORY_INDEX = "ix_attempts_host_started_covering"


def _id() -> sa.Column[int]:
    return sa.Column("id", big_id(), primary_key=True, autoincrement=True)


def _host() -> list[sa.Column[Any]]:
    return [
        sa.Column("client_ip", sa.String(HOST_LEN), nullable=False),
        sa.Column("client_port", sa.Integer, nullable=False),
    ]


rounds = sa.Table(
    "rounds",
    metadata,
    _id(),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=False),
    sa.Column("hosts_total", sa.Integer, nullable=False),
    sa.Column("hosts_ok", sa.Integer, nullable=False),
    sa.Column("hosts_failed", sa.Integer, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    sa.Column("duration_seconds", sa.Double, nullable=False),
    # Revision 0007: the round's identity (RoundResult.uuid), unique, so a round
    # written again from the spool (fleetstat.spool) is stored once; when its
    # alerts were evaluated (set once, by the evaluation's transaction); when it
    # was written from the spool (null: stored as it ran).
    sa.Column("uuid", sa.String(36)),
    sa.Column("alerts_at", UTCDateTime),
    sa.Column("replayed_at", UTCDateTime),
    sa.Index(None, "uuid", unique=True),
)

attempts = sa.Table(
    "attempts",
    metadata,
    _id(),
    sa.Column("round_id", sa.BigInteger, sa.ForeignKey("rounds.id"), nullable=False),
    *_host(),
    sa.Column("client_name", sa.String(NAME_LEN)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error", long_text()),
    sa.Column("stderr", long_text()),
    sa.Column("duration_seconds", sa.Double, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("retries", sa.Integer, nullable=False),
    # Revision 0002 added status to the (client_ip, client_port, started_at) index:
    # `fleetstat history` counts a host's failed attempts from the index alone.
    sa.Index(ATTEMPTS_HISTORY_INDEX, "client_ip", "client_port", "started_at", "status"),
    sa.Index(None, "round_id"),
)

samples = sa.Table(
    "samples",
    metadata,
    _id(),
    sa.Column("round_id", sa.BigInteger, sa.ForeignKey("rounds.id"), nullable=False),
    # Nullable and SET NULL: attempts may be pruned sooner than samples (issue 5's
    # retention), and the sample must outlive the attempt row that produced it.
    sa.Column("attempt_id", sa.BigInteger, sa.ForeignKey("attempts.id", ondelete="SET NULL")),
    *_host(),
    sa.Column("collected_at", UTCDateTime),  # the probe's clock; null when unparseable
    sa.Column("received_at", UTCDateTime, nullable=False),  # ours
    sa.Column("hostname", sa.String(NAME_LEN)),
    sa.Column("os", sa.String(NAME_LEN)),
    sa.Column("kernel", sa.String(NAME_LEN)),
    sa.Column("cpu_percent", sa.Double),
    sa.Column("cpu_interval_percent", sa.Double),
    sa.Column("cpu_count", sa.Integer),
    sa.Column("memory_total_bytes", sa.BigInteger),
    sa.Column("memory_used_bytes", sa.BigInteger),
    sa.Column("memory_available_bytes", sa.BigInteger),
    sa.Column("memory_percent", sa.Double),
    sa.Column("swap_total_bytes", sa.BigInteger),
    sa.Column("swap_used_bytes", sa.BigInteger),
    sa.Column("swap_percent", sa.Double),
    sa.Column("load1", sa.Double),
    sa.Column("load5", sa.Double),
    sa.Column("load15", sa.Double),
    sa.Column("uptime_seconds", sa.Double),
    sa.Column("disk_max_percent", sa.Double),
    sa.Column("disk_max_mount", sa.String(MOUNT_LEN)),
    sa.Column("document", document(), nullable=False),
    # Revision 0002 widened the (client_ip, client_port, received_at) index into a
    # covering one: `fleetstat history` reads a host's window from the index alone
    # (an index-only scan on PostgreSQL), never the wide rows. See docs/reports.md.
    # Revision 0004 added load1 (and renamed it: the new one is built before the
    # old one is dropped).
    sa.Index(SAMPLES_HISTORY_INDEX, "client_ip", "client_port", "received_at", *HISTORY_COLUMNS),
    sa.Index(None, "round_id"),
    sa.Index(None, "attempt_id"),  # PostgreSQL does not index FKs; deleting attempts needs it
)

security_events = sa.Table(
    "security_events",
    metadata,
    _id(),
    *_host(),
    sa.Column("event_key", sa.String(255), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # windows / journal / authlog
    sa.Column("record_id", sa.BigInteger),
    sa.Column("occurred_at", UTCDateTime),
    sa.Column("event_id", sa.Integer),
    sa.Column("level", sa.String(32)),
    sa.Column("provider", sa.String(NAME_LEN)),
    sa.Column("computer", sa.String(NAME_LEN)),
    sa.Column("account", sa.String(NAME_LEN)),
    sa.Column("source_address", sa.String(HOST_LEN)),
    sa.Column("logon_type", sa.Integer),
    sa.Column("summary", long_text()),
    sa.Column("data", document(none_as_null=True)),
    sa.Column("round_id", sa.BigInteger, sa.ForeignKey("rounds.id")),
    sa.UniqueConstraint("client_ip", "client_port", "event_key"),
    # A host's newest events first (the dashboard's host page; revision 0008).
    sa.Index("ix_security_events_host", "client_ip", "client_port", "id"),
)

alert_states = sa.Table(
    "alert_states",
    metadata,
    _id(),
    *_host(),
    sa.Column("rule_key", sa.String(255), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # ok / pending / firing
    sa.Column("breach_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("first_breached_at", UTCDateTime),
    sa.Column("last_value", sa.Double),
    sa.Column("limit_value", sa.Double),
    sa.Column("last_evaluated_at", UTCDateTime),
    sa.Column("last_notified_at", UTCDateTime),
    sa.Column("resolved_at", UTCDateTime),
    sa.UniqueConstraint("client_ip", "client_port", "rule_key"),
)

mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    _id(),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # alert / events
    sa.Column("client_ip", sa.String(HOST_LEN)),
    sa.Column("client_port", sa.Integer),
    sa.Column("recipients", long_text(), nullable=False),  # comma-joined
    sa.Column("subject", long_text(), nullable=False),
    sa.Column("body", long_text(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_attempt_at", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("last_error", long_text()),
    sa.Column("sent_at", UTCDateTime),  # null until the SMTP server accepted it
    # Revision 0005: set when the outbox gave up on the message (it cannot be built,
    # or the server refused it permanently MAX_PERMANENT_REFUSALS times).
    sa.Column("failed_at", UTCDateTime),
    # Revision 0006: the sender that took the message for sending, and until when
    # (store/outbox.py claim()); null when nobody holds it.
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", UTCDateTime),
    sa.Index(None, "sent_at", "next_attempt_at"),
    # A host's latest alert mail (the dashboard's host page; revision 0008).
    sa.Index("ix_mail_outbox_host", "client_ip", "client_port", "kind", "id"),
)

# One row per host (revision 0002): its last attempt and its last good sample, kept
# up to date by `Store.record_round`. `fleetstat report` reads 500 rows here instead
# of a latest-per-host search over tens of millions of samples; the previous CPU
# counters for the interval CPU come from here in one query; retention never
# deletes the rows it points to (the foreign keys make sure of it).
host_latest = sa.Table(
    "host_latest",
    metadata,
    *_host(),
    sa.Column("last_attempt_id", sa.BigInteger, sa.ForeignKey("attempts.id"), nullable=False),
    sa.Column("last_attempt_at", UTCDateTime, nullable=False),
    sa.Column("last_status", sa.String(32), nullable=False),
    sa.Column("sample_id", sa.BigInteger, sa.ForeignKey("samples.id")),
    sa.Column("sample_received_at", UTCDateTime),
    # The cumulative CPU counters of that sample (seconds since boot) and the boot
    # time, for the next round's interval CPU (fleetstat.metrics).
    sa.Column("cpu_total_seconds", sa.Double),
    sa.Column("cpu_busy_seconds", sa.Double),
    sa.Column("boot_time", UTCDateTime),
    sa.PrimaryKeyConstraint("client_ip", "client_port"),
    sa.Index(None, "last_attempt_id"),
    sa.Index(None, "sample_id"),
)

# `fleetstat serve` (revision 0003). People who may log in to the API; the
# password as a self-describing scrypt hash (fleetstat.auth), never the password.
users = sa.Table(
    "users",
    metadata,
    _id(),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_login_at", UTCDateTime),
    sa.UniqueConstraint("name"),
)

# Bearer tokens: a login's (kind "session", with its user) or a program's (kind
# "api", `fleetstat token create`). Only the SHA-256 of the token is kept: the
# token is 32 random bytes, so a fast hash is enough, and a stolen table holds
# nothing that logs in. No expiry is null (programs' tokens may live forever).
api_tokens = sa.Table(
    "api_tokens",
    metadata,
    _id(),
    sa.Column("token_hash", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # session / api
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE")),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("last_used_at", UTCDateTime),
    sa.UniqueConstraint("token_hash"),
    sa.Index(None, "user_id"),
)

# Small named settings the server changes at run time and must remember across a
# restart: `monitoring.running` ("true"/"false", POST /api/v1/monitoring).
server_state = sa.Table(
    "server_state",
    metadata,
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(255)),
    sa.PrimaryKeyConstraint("name"),
)

# <cluster> (revision 0009, fleetstat.cluster). A worker's heartbeat row: the
# coordinator places hosts on the workers whose last_seen is recent.
cluster_workers = sa.Table(
    "cluster_workers",
    metadata,
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("hostname", sa.String(NAME_LEN)),
    sa.Column("pid", sa.Integer),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime),  # a clean stop: its shards go elsewhere at once
    sa.Column("shards_done", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_shard_at", UTCDateTime),
    sa.Column("last_shard_seconds", sa.Double),
    sa.PrimaryKeyConstraint("name"),
)

# One row per committed shard of a round, written in the shard's own transaction
# (by a worker: outcome "stored"; by the coordinator when the round's deadline
# passed: "missed", with its hosts' failed attempts). The primary key is what
# makes a shard's commit happen once: a redelivered shard finds its row and is
# dropped. No foreign key to rounds: retention deletes old rounds, and their
# shard rows with them (store/retention.py).
cluster_shards = sa.Table(
    "cluster_shards",
    metadata,
    sa.Column("round_id", sa.BigInteger, nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("zone", sa.String(64), nullable=False),
    sa.Column("worker", sa.String(128)),  # null: missed
    sa.Column("outcome", sa.String(16), nullable=False),  # stored / missed
    sa.Column("hosts", sa.Integer, nullable=False),
    sa.Column("committed_at", UTCDateTime, nullable=False),
    sa.Column("seconds", sa.Double),  # the shard's run on its worker
    sa.PrimaryKeyConstraint("round_id", "shard"),
    sa.Index(None, "committed_at"),
)

# Revision 0010 (store/hourly.py): per host and UTC hour, what long history windows
# read instead of the raw samples: how many samples, the first and last
# received_at, and per figure of HOURLY_FIGURES the count of non-null values, their
# sum, min and max (avg = sum / count, exact min/max over whole hours); for the
# charts' CPU (the interval figure where known, else the short window) the count
# and sum. Kept up to date by each round's (or shard's) own transaction.
HOURLY_FIGURES = ("cpu", "cpu_interval", "memory", "swap", "disk", "load")


def _figure(name: str) -> list[sa.Column[Any]]:
    return [
        sa.Column(f"{name}_n", sa.Integer, nullable=False),
        sa.Column(f"{name}_sum", sa.Double),
        sa.Column(f"{name}_min", sa.Double),
        sa.Column(f"{name}_max", sa.Double),
    ]


samples_hourly = sa.Table(
    "samples_hourly",
    metadata,
    *_host(),
    sa.Column("hour", UTCDateTime, nullable=False),  # the hour's start, UTC
    sa.Column("sample_count", sa.Integer, nullable=False),
    sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("last_at", UTCDateTime, nullable=False),
    *(column for name in HOURLY_FIGURES for column in _figure(name)),
    sa.Column("chart_cpu_n", sa.Integer, nullable=False),
    sa.Column("chart_cpu_sum", sa.Double),
    sa.PrimaryKeyConstraint("client_ip", "client_port", "hour"),
    sa.Index(None, "hour"),  # retention deletes the oldest hours of every host
)

TABLE_NAMES = tuple(metadata.tables)
