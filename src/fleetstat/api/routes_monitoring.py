"""``/api/v1/monitoring`` (pause and resume the rounds) and ``/api/v1/health``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from fleetstat.api import models
from fleetstat.api.deps import MONITORING_STATE, Context, ServerContext, User
from fleetstat.api.errors import StrictJSONResponse, emit
from fleetstat.config import Config
from fleetstat.errors import StoreError
from fleetstat.store.accounts import read_state, write_state
from fleetstat.store.browse import last_round, ping

router = APIRouter(tags=["monitoring"])


def stored_running(context: ServerContext) -> bool:
    """The persisted state: rounds run unless someone paused them."""
    return read_state(context.store, MONITORING_STATE) != "false"


def _view(context: ServerContext, running: bool) -> dict[str, Any]:
    watcher = context.watcher
    return {
        "running": running,
        "rounds_here": watcher is not None,
        "in_round": bool(watcher and watcher.in_round),
        "every_seconds": watcher.every if watcher else None,
    }


@router.get(
    "/monitoring", response_model=models.Monitoring, responses={401: {"model": models.Error}}
)
async def monitoring(context: Context, _user: User) -> dict[str, Any]:
    """Whether rounds are scheduled (``running``) or paused, and whether one is in flight."""
    if context.watcher is not None:
        return _view(context, context.watcher.running)
    return _view(context, await run_in_threadpool(stored_running, context))


@router.post(
    "/monitoring", response_model=models.Monitoring, responses={401: {"model": models.Error}}
)
async def set_monitoring(
    context: Context, user: User, state: models.MonitoringState
) -> dict[str, Any]:
    """``{"running": false}`` pauses the rounds (one in flight completes), ``true``
    resumes them at once; the state is stored and survives a restart."""
    await set_running(context, state.running, user.name)
    return _view(context, state.running)


async def set_running(context: ServerContext, running: bool, by: str) -> None:
    """Store the state and tell this process's watcher (the API's and the pages' path)."""
    value = "true" if running else "false"
    await run_in_threadpool(write_state, context.store, MONITORING_STATE, value,
                            datetime.now(UTC), by)  # fmt: skip
    # In the loop's thread (the callers are async routes): the watcher is not thread-safe.
    if context.watcher is not None:
        if running:
            context.watcher.resume()
        else:
            context.watcher.pause()
    emit(logging.INFO, event="monitoring", running=value, by=by)


@router.get("/health", response_model=models.Health, responses={503: {"model": models.Health}})
def health(context: Context) -> Any:
    """No token needed: the process is up, the database answers, the last round's age."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "status": "ok",
        "database": "ok",
        "last_round_at": None,
        "last_round_age_seconds": None,
        "monitoring": context.watcher.running if context.watcher else False,
        "uptime_seconds": round((now - context.started_at).total_seconds(), 3),
        **_spool_depth(context.config),
    }
    try:
        ping(context.store)
        latest = last_round(context.store)
    except StoreError as exc:
        emit(logging.ERROR, event="health_database_error", error=str(exc))
        body.update(status="degraded", database="unreachable")
        return StrictJSONResponse(models.Health(**body).model_dump(mode="json"), status_code=503)
    if latest is not None:
        body["last_round_at"] = latest.finished_at
        body["last_round_age_seconds"] = round((now - latest.finished_at).total_seconds(), 3)
    return body


def _spool_depth(config: Config) -> dict[str, Any]:
    """Rounds waiting in the spool for the database, and those its bound dropped.

    Read from the spool directory only: it answers with the database down.
    """
    from fleetstat.spool import SpoolError, spool_status

    try:
        status = spool_status(config)
    except SpoolError as exc:
        emit(logging.ERROR, event="health_spool_error", error=str(exc))
        return {"spool_rounds": None, "spool_dropped": None, "spool_oldest": None}
    return {
        "spool_rounds": status.rounds,
        "spool_dropped": status.dropped,
        "spool_oldest": status.oldest,
    }
