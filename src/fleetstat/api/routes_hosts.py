"""``/api/v1/hosts``: the fleet's latest state, one host's document, processes, stats."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from fleetstat.api import models
from fleetstat.api.deps import Context, User
from fleetstat.api.errors import ApiError
from fleetstat.api.params import MOMENT_HELP, moment
from fleetstat.app import host_refs
from fleetstat.errors import FleetstatError
from fleetstat.store.browse import generation, latest_sample
from fleetstat.store.reports import HostRef, host_history, host_states

router = APIRouter(tags=["hosts"], responses={401: {"model": models.Error}})
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": models.Error}}


def resolve(context: Context, host: str) -> HostRef:
    """The configured host named ``host`` (name, ip or ip:port); 404 or 409 otherwise."""
    try:
        refs = host_refs(context.config, [host])
    except FleetstatError:
        raise ApiError(
            404, "unknown_host", f"no configured host is named {host[:100]!r} (name, ip or ip:port)"
        ) from None
    if len(refs) > 1:
        raise ApiError(
            409, "ambiguous_host", f"{host[:100]!r} names {len(refs)} hosts: give ip:port"
        )
    return refs[0]


@dataclass(frozen=True)
class _RenderedHost:
    """One item of ``/hosts`` as JSON, but for its age, which the clock moves."""

    failing: bool
    sample_at: datetime | None
    before_age: bytes  # '{"host":...,"sample_at":...,"sample_age_seconds":'
    after_age: bytes  # ',"hostname":...,"alerts":[...]}'


_BEFORE_AGE = set(list(models.Host.model_fields)[: list(models.Host.model_fields).index(
    "sample_age_seconds")])  # fmt: skip
_AFTER_AGE = set(models.Host.model_fields) - _BEFORE_AGE - {"sample_age_seconds"}


def _rendered_hosts(context: Context) -> list[_RenderedHost]:
    """Every configured host's item, through the response model once per generation."""
    rendered = []
    for state in host_states(context.store, host_refs(context.config)):
        item = models.Host.model_validate(state.as_json())
        before = item.model_dump_json(include=_BEFORE_AGE).encode()
        after = item.model_dump_json(include=_AFTER_AGE).encode()
        rendered.append(_RenderedHost(
            state.failing, state.sample_at,
            before[:-1] + b',"sample_age_seconds":', b"," + after[1:]))  # fmt: skip
    return rendered


def _age(sample_at: datetime | None, now: datetime) -> bytes:
    if sample_at is None:
        return b"null"
    return json.dumps(round((now - sample_at).total_seconds(), 3)).encode()


@router.get("/hosts", response_model=models.HostPage)
def hosts(
    context: Context,
    _user: User,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
    failing: bool = False,
) -> Response:
    """Every configured host in config order with its latest figures, status, last
    error and firing alerts (``fleetstat report``); ``failing=true`` keeps the hosts
    whose last attempt failed."""
    # Rendered once per store generation (api/cache.py): a round stored by any
    # process moves it; only the ages are written per request.
    key = (generation(context.store), id(context.config))
    every: list[_RenderedHost] = context.bodies.get("hosts", key, lambda: _rendered_hosts(context))
    chosen = [host for host in every if host.failing] if failing else every
    total = len(chosen)
    now = datetime.now(UTC)
    items = b",".join(
        host.before_age + _age(host.sample_at, now) + host.after_age
        for host in chosen[offset : offset + limit]
    )
    following = offset + limit
    rest = {
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": following if following < total else None,
    }
    tail = json.dumps(rest, separators=(",", ":")).encode()
    return Response(b'{"items":[' + items + b"]," + tail[1:], media_type="application/json")


@router.get("/hosts/{host}", response_model=models.HostDocument, responses=NOT_FOUND)
def host_document(context: Context, _user: User, host: str) -> dict[str, Any]:
    """One host's latest document as stored (``{host}``: its name, ip or ip:port)."""
    ref = resolve(context, host)
    latest = latest_sample(context.store, ref.client_ip, ref.client_port)
    return {
        "host": ref.name,
        "ip": ref.client_ip,
        "port": ref.client_port,
        "status": latest.status if latest else "never",
        "last_attempt_at": latest.last_attempt_at if latest else None,
        "error": latest.error if latest else None,
        "sample_at": latest.received_at if latest else None,
        "collected_at": latest.collected_at if latest else None,
        "document": latest.document if latest else None,
    }


@router.get("/hosts/{host}/processes", response_model=models.Processes, responses=NOT_FOUND)
def processes(context: Context, _user: User, host: str) -> dict[str, Any]:
    """The top processes by CPU and by memory of the host's latest sample, and why
    the lists are empty or absent when they are."""
    ref = resolve(context, host)
    latest = latest_sample(context.store, ref.client_ip, ref.client_port)
    document = latest.document if latest else None
    found: dict[str, Any] = {"host": ref.name, "sample_at": latest.received_at if latest else None}
    lists: dict[str, list[dict[str, Any]] | None] = {"top_cpu": None, "top_memory": None}
    reason: str | None
    family = document.get("processes") if document is not None else None
    if document is None:
        never = latest is None or latest.sample_id is None
        reason = "no sample of this host yet" if never else "the stored document is unreadable"
    elif not isinstance(family, dict):
        errors = document.get("errors")
        error = errors.get("processes") if isinstance(errors, dict) else None
        reason = f"the probe could not read them: {error}" if error else "the probe sent none"
    else:
        lists = {name: _processes(family.get(name)) for name in lists}
        given = family.get("reason")
        reason = given if isinstance(given, str) else None
        if reason is None and not any(lists.values()):
            reason = "the probe found no processes"
    return {**found, **lists, "reason": reason}


def _processes(value: object) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    fields = models.Process.model_fields
    return [{key: entry.get(key) for key in fields} for entry in value if isinstance(entry, dict)]


@router.get(
    "/hosts/{host}/stats",
    response_model=models.Stats,
    responses={**NOT_FOUND, 422: {"model": models.Error}},
)
def stats(
    context: Context,
    _user: User,
    host: str,
    since: Annotated[str | None, Query(description=f"start: {MOMENT_HELP}; default 24h")] = None,
    until: Annotated[str | None, Query(description=f"end: {MOMENT_HELP}; default now")] = None,
    buckets: Annotated[int, Query(ge=1, le=1000)] = 48,
) -> dict[str, Any]:
    """Min/avg/max of CPU, memory, swap, load and the fullest disk over the window,
    and up to ``buckets`` averages of CPU and memory for charts (``fleetstat
    history``), computed in SQL."""
    ref = resolve(context, host)
    now = datetime.now(UTC)
    start = moment(since, "since", now) or now - timedelta(days=1)
    end = moment(until, "until", now) or now
    if end <= start:
        raise ApiError(422, "invalid_request", "the window is empty: since must be before until")
    return host_history(context.store, ref, start, end, buckets=buckets).as_json()
