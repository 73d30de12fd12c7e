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

from fastapi import FastAPI

from fleetstat.web.pages import Web, router


def install(app: FastAPI) -> None:
    app.state.fleetstat_web = Web()
    app.include_router(router)


__all__ = ["install"]
