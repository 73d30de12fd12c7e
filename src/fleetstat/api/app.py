"""The app factory: one FastAPI app per server, its routers, its error handling."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI

from fleetstat import __version__
from fleetstat.api import (
    errors,
    metrics,
    routes_alerts,
    routes_auth,
    routes_hosts,
    routes_monitoring,
    routes_rounds,
)
from fleetstat.api.deps import ServerContext
from fleetstat.api.middleware import Guard

API_PREFIX = "/api/v1"
DESCRIPTION = """Machine statistics collected over SSH by fleetstat.

Log in with `POST /api/v1/login` (form fields `username`, `password`) and send the
token it returns as `Authorization: Bearer <token>`. Programs use a token from
`fleetstat token create --name NAME`. Errors are JSON: `{"error": code, "detail": text}`.
"""


def create_app(context: ServerContext, extensions: Sequence[Callable[[FastAPI], None]] = ()) -> Any:
    """The ASGI app for ``context``: FastAPI wrapped in :class:`Guard`.

    ``extensions`` add routes of their own (``fleetstat.web.install``: the pages),
    after the API's, so the API never depends on them.
    """
    app = FastAPI(
        title="fleetstat",
        version=__version__,
        description=DESCRIPTION,
        # No Swagger UI: FastAPI's page loads its script and style from a CDN, and
        # nothing fleetstat serves loads anything from the Internet (docs/api.md).
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.fleetstat = context
    app.state.fleetstat_registry = metrics.registry_for(context)
    errors.install(app)
    api = APIRouter(prefix=API_PREFIX)
    for module in (routes_auth, routes_hosts, routes_alerts, routes_rounds, routes_monitoring):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(metrics.router)
    for extend in extensions:
        extend(app)
    return Guard(app)
