"""The API's response bodies: the contract, as /openapi.json describes it.

Times are ISO 8601 in UTC; figures keep the units in their names (``_percent``
0-100, ``_bytes``, ``_seconds``) as the CLI's ``--json`` output does. A figure
that is NaN or infinite in the store (PostgreSQL's float8 takes both) is null:
the tokens Python would write are not JSON (tests/test_api_finite.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    """Every body: pydantic writes a NaN or an infinity as null (its default for
    JSON, said here because the API's strictness depends on it). FastAPI writes
    a response model's JSON with pydantic since 0.130 (the floor in pyproject);
    before, it went through json.dumps and a NaN was a 500."""

    model_config = ConfigDict(ser_json_inf_nan="null")


class Error(Model):
    error: str = Field(description="a stable code: not_authenticated, not_found, ...")
    detail: str = Field(description="what went wrong and what to do, for people")


class Token(Model):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime | None


class Host(Model):
    """A configured host's latest state (``fleetstat report``)."""

    host: str
    ip: str
    port: int
    status: str = Field(description="the last attempt's status; 'never' before the first")
    last_attempt_at: datetime | None
    error: str | None
    sample_at: datetime | None
    sample_age_seconds: float | None
    hostname: str | None
    cpu_percent: float | None
    cpu_interval_percent: float | None
    memory_percent: float | None
    swap_percent: float | None
    disk_max_percent: float | None
    disk_max_mount: str | None
    load1: float | None
    load5: float | None
    load15: float | None
    uptime_seconds: float | None
    alerts: list[str] = Field(description="rule keys firing now")


class HostPage(Model):
    items: list[Host]
    total: int
    offset: int
    limit: int
    next_offset: int | None = Field(description="pass as offset= for the next page")


class HostDocument(Model):
    host: str
    ip: str
    port: int
    status: str
    last_attempt_at: datetime | None
    error: str | None
    sample_at: datetime | None = Field(description="when the document reached us")
    collected_at: datetime | None = Field(description="the host's own clock")
    document: dict[str, Any] | None = Field(description="the probe's document as stored")


class Process(Model):
    pid: int | None = None
    name: str | None = None
    user: str | None = None
    cpu_percent: float | None = None
    rss_bytes: int | None = None


class Processes(Model):
    host: str
    sample_at: datetime | None
    top_cpu: list[Process] | None
    top_memory: list[Process] | None
    reason: str | None = Field(description="why the lists are empty or absent, when they are")


class Stat(Model):
    min: float | None
    avg: float | None
    max: float | None


class Series(Model):
    bucket_seconds: int
    cpu: list[float | None]
    memory: list[float | None]


class Stats(Model):
    """Figures over a window (``fleetstat history``), computed in SQL."""

    host: str
    ip: str
    port: int
    since: datetime
    until: datetime
    samples: int
    first_sample_at: datetime | None
    last_sample_at: datetime | None
    attempts: int
    failed_attempts: int
    cpu: Stat
    cpu_interval: Stat
    memory: Stat
    swap: Stat
    disk: Stat = Field(description="the fullest local filesystem, percent")
    load: Stat = Field(description="the 1-minute load average")
    series: Series


class Alert(Model):
    host: str
    ip: str
    port: int
    rule: str
    metric: str
    state: str
    value: float | None
    limit: float | None
    since: datetime | None
    last_notified_at: datetime | None
    last_evaluated_at: datetime | None


class AlertList(Model):
    items: list[Alert]


class Round(Model):
    id: int
    started_at: datetime
    finished_at: datetime
    hosts_total: int
    hosts_ok: int
    hosts_failed: int
    retries: int
    duration_seconds: float


class RoundPage(Model):
    items: list[Round]
    next_before: int | None = Field(description="pass as before= for older rounds")


class Event(Model):
    id: int
    host: str
    ip: str
    port: int
    source: str
    record_id: int | None
    occurred_at: datetime | None
    event_id: int | None
    level: str | None
    provider: str | None
    computer: str | None
    account: str | None
    source_address: str | None
    logon_type: int | None
    summary: str | None
    round_id: int | None


class EventPage(Model):
    items: list[Event]
    next_after: int | None = Field(description="pass as after= for the next page")


class MonitoringState(Model):
    running: bool


class Monitoring(Model):
    running: bool = Field(description="rounds are scheduled (false: paused)")
    rounds_here: bool = Field(description="this server runs the rounds (false: --no-watch)")
    in_round: bool
    every_seconds: float | None


class Health(Model):
    status: str = Field(description="ok, or degraded when the database does not answer")
    database: str
    last_round_at: datetime | None
    last_round_age_seconds: float | None
    monitoring: bool
    uptime_seconds: float
    spool_rounds: int | None = Field(
        None, description="rounds waiting in the local spool for the database (0: none)"
    )
    spool_dropped: int | None = Field(
        None, description="rounds the spool's size bound dropped, since the counter began"
    )
    spool_oldest: datetime | None = Field(None, description="start of the oldest spooled round")
