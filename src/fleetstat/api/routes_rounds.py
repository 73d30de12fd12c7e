"""``/api/v1/rounds`` (newest first) and ``/api/v1/events`` (security events)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from fleetstat.api import models
from fleetstat.api.deps import Context, User
from fleetstat.api.params import MOMENT_HELP, moment
from fleetstat.api.routes_hosts import resolve
from fleetstat.store.browse import recent_rounds, security_event_page

router = APIRouter(tags=["rounds"], responses={401: {"model": models.Error}})


@router.get("/rounds", response_model=models.RoundPage)
def rounds(
    context: Context,
    _user: User,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    before: Annotated[int | None, Query(ge=1, description="only rounds older than this id")] = None,
) -> dict[str, Any]:
    """The latest rounds, newest first: when, how long, hosts ok and failed, retries."""
    rows = recent_rounds(context.store, limit=limit, before=before)
    return {
        "items": [dict(row._mapping) for row in rows],
        "next_before": rows[-1].id if len(rows) == limit else None,
    }


@router.get("/events", response_model=models.EventPage)
def events(
    context: Context,
    _user: User,
    host: Annotated[
        str | None, Query(description="a configured host's name, ip or ip:port")
    ] = None,
    since: Annotated[str | None, Query(description=f"occurred since: {MOMENT_HELP}")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[int | None, Query(ge=0, description="only events after this id")] = None,
) -> dict[str, Any]:
    """Security events (Windows Security log, journal, auth.log), oldest first."""
    names = {(c.ip, c.port): c.label for c in context.config.clients}
    hosts = None
    if host is not None:
        ref = resolve(context, host)
        hosts = [(ref.client_ip, ref.client_port)]
    start = moment(since, "since", datetime.now(UTC))
    rows = security_event_page(context.store, hosts=hosts, since=start, limit=limit, after=after)
    items = [
        {
            **row._mapping,
            "host": names.get((row.client_ip, row.client_port), row.client_ip),
            "ip": row.client_ip,
            "port": row.client_port,
        }
        for row in rows
    ]
    return {"items": items, "next_after": rows[-1].id if len(rows) == limit else None}
