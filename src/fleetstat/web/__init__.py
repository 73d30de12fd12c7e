"""The dashboard: server-rendered pages for people, served by ``fleetstat serve``.

Jinja2 templates (autoescaped) over ``fleetstat.store``'s queries, uPlot (vendored
under ``static/vendor/uplot/``) for the charts and a little plain JavaScript; no
build step and nothing loaded from another origin. People log in with the same
users and session tokens as the API (``api.routes_auth.attempt_login``); the
browser keeps the token in an HttpOnly, SameSite=Strict cookie (``session.py``).

``install(app)`` adds the pages to the API's FastAPI app; the API never imports
this package, so it can be served without pages.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI

from fleetstat.api.errors import emit
from fleetstat.errors import FleetstatError
from fleetstat.web.pages import Web, fleet_rows_of, router


def install(app: FastAPI) -> None:
    app.state.fleetstat_web = Web()
    app.include_router(router)


def warm(app: FastAPI) -> None:
    """Read and render the fleet page's rows once, as a first view would.

    ``fleetstat serve`` calls it in a thread as it starts: the 24-hour lines of 500
    hosts (720,000 samples at one a minute) take seconds to average, which the
    first person to open the page would otherwise wait for. A database that does
    not answer is left to the page to report.
    """
    web, context = app.state.fleetstat_web, app.state.fleetstat
    started = time.monotonic()
    try:
        rows = fleet_rows_of(web, context)
    except FleetstatError as exc:
        emit(logging.INFO, event="dashboard_warm", error=str(exc))
        return
    emit(logging.INFO, event="dashboard_warm", hosts=rows.counts.total,
         seconds=round(time.monotonic() - started, 2))  # fmt: skip


__all__ = ["install", "warm"]
