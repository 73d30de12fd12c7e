"""The dashboard's routes: login, fleet, host, alerts, rounds; logout and pause/resume.

Each page reads through ``fleetstat.store``'s queries (no SQL here) in a worker
thread (plain ``def`` routes), renders a template and sends it compressed. A
request without a live session is sent to ``/login?next=<where it wanted to go>``;
a POST without the right CSRF token is refused with 403 and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from markupsafe import Markup

from fleetstat import auth
from fleetstat.alerts import active_alerts
from fleetstat.api.deps import ServerContext, context_of
from fleetstat.api.errors import ApiError, emit
from fleetstat.api.routes_auth import attempt_login
from fleetstat.api.routes_hosts import resolve
from fleetstat.api.routes_monitoring import set_running, stored_running
from fleetstat.app import host_refs
from fleetstat.errors import StoreError
from fleetstat.store import dashboard
from fleetstat.store.browse import latest_sample, recent_rounds
from fleetstat.store.reports import HostRef, host_states
from fleetstat.web import session, views
from fleetstat.web.render import Renderer
from fleetstat.web.series import SeriesCache
from fleetstat.web.sparks import SparkCache

ROUNDS_PER_PAGE = 50


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    pass


@dataclass(frozen=True)
class FleetRows:
    """The fleet page's rows as rendered for one round (``version``) and host list."""

    version: str
    refs: tuple[HostRef, ...]
    body: Markup
    counts: views.Counts
    shown: int


class FleetRowsCache:
    """The unfiltered fleet page's rows, rendered once per round instead of on every
    view and every refresh: with 500 hosts that was most of the server's time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # pages render in worker threads
        self._kept: FleetRows | None = None

    def get(self, version: str, refs: tuple[HostRef, ...]) -> FleetRows | None:
        with self._lock:
            kept = self._kept
        if kept is not None and kept.version == version and kept.refs == refs:
            return kept
        return None

    def put(self, rows: FleetRows) -> None:
        with self._lock:
            self._kept = rows


class Web:
    """What the pages share: the renderer (templates, assets) and the caches."""

    def __init__(self) -> None:
        self.renderer = Renderer()
        self.sparks = SparkCache()
        self.fleet_rows = FleetRowsCache()
        self.series = SeriesCache()


def web_of(request: Request) -> Web:
    found: Web = request.app.state.fleetstat_web
    return found


class PageRoute(APIRoute):
    """Errors become pages: login wanted -> redirect, StoreError -> 503, ApiError -> its status."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return RedirectResponse(f"/login?next={_next_of(request)}", status_code=303)
            except Forbidden:
                return _error(request, 403, "The form was stale or came from another site: "
                              "reload the page and try again.")  # fmt: skip
            except ApiError as exc:
                return _error(request, exc.status, exc.detail)
            except StoreError as exc:
                emit(logging.ERROR, event="database_error", path=request.url.path, error=str(exc))
                return _error(request, 503, "The database did not answer; the server log says why.")

        return route


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _error(request: Request, status: int, message: str) -> Response:
    return web_of(request).renderer.page(
        request, "error.html", status, code=status, message=message, user=None, csrf=""
    )


def _next_of(request: Request) -> str:
    from urllib.parse import quote

    return quote(request.url.path, safe="/")


def _safe_next(value: str | None) -> str:
    """Only a path on this server: no ``//host`` or ``/\\host`` (an open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


def _session(request: Request) -> session.Session:
    found = session.current_session(request)
    if found is None:
        raise LoginRequired
    return found


def _common(request: Request, found: session.Session, context: ServerContext) -> dict[str, Any]:
    watcher = context.watcher
    running = watcher.running if watcher is not None else stored_running(context)
    return {
        "user": found.principal.name,
        "csrf": found.csrf(),
        "monitoring": {
            "running": running,
            "here": watcher is not None,
            "every": watcher.every if watcher else None,
        },
        "now": datetime.now(UTC),
    }


# -- login and logout ----------------------------------------------------------------------


def _login_form(
    request: Request, status: int, next_path: str, message: str | None, username: str = ""
) -> Response:
    secret, new = session.login_secret(request)
    page = web_of(request).renderer.page(
        request, "login.html", status, csrf=session.mask(secret), next=_safe_next(next_path),
        message=message, user=None, username=username,
    )  # fmt: skip
    if new:
        session.set_login_cookie(request, page, secret)
    return page


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if session.current_session(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, 200, next or "/", None)


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    if not session.login_csrf_ok(request, csrf):
        raise Forbidden
    try:
        issued = attempt_login(request, context_of(request), username, password)
    except ApiError as exc:
        message = "Wrong user name or password." if exc.status == 401 else exc.detail
        return _login_form(request, exc.status, next, message, username)
    response = RedirectResponse(_safe_next(next), status_code=303)
    session.start_session(request, response, issued)
    return response


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form(max_length=200)] = "") -> Response:
    found = _session(request)
    if not found.csrf_ok(csrf):
        raise Forbidden
    auth.logout(context_of(request).store, found.principal)
    emit(logging.INFO, event="logout", user=found.principal.name)
    response = RedirectResponse("/login", status_code=303)
    session.end_session(request, response)
    return response


@router.post("/monitoring")
async def monitoring(
    request: Request,
    running: Annotated[str, Form(pattern="^(true|false)$")],
    csrf: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    from starlette.concurrency import run_in_threadpool

    found = await run_in_threadpool(_session, request)
    if not found.csrf_ok(csrf):
        raise Forbidden
    await set_running(context_of(request), running == "true", found.principal.name)
    return RedirectResponse("/", status_code=303)


# -- pages -------------------------------------------------------------------------------------


@router.get("/")
def fleet(
    request: Request,
    status: Annotated[str, Query(max_length=20)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    firing: bool = False,
    sort: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    found = _session(request)
    context = context_of(request)
    web = web_of(request)
    shown = fleet_rows_of(web, context, status=status, q=q, firing=firing, sort=sort)
    return web.renderer.page(
        request, "fleet.html", body=shown.body, counts=shown.counts, shown=shown.shown,
        version=shown.version, filters={"status": status, "q": q, "firing": firing, "sort": sort},
        **_common(request, found, context),
    )  # fmt: skip


def fleet_rows_of(
    web: Web, context: ServerContext, *, status: str = "", q: str = "", firing: bool = False,
    sort: str = "",
) -> FleetRows:  # fmt: skip
    """The fleet page's rows for these filters: kept from an earlier view of this round
    when unfiltered, else read and rendered (and kept, when unfiltered)."""
    version = dashboard.fleet_version(context.store)
    refs = tuple(host_refs(context.config))
    plain = not (status or q or firing or sort)  # what most views and every refresh ask
    cached = web.fleet_rows.get(version, refs) if plain else None
    if cached is None:
        states = host_states(context.store, list(refs))
        hosts = [(ref.client_ip, ref.client_port) for ref in refs]
        sparks = web.sparks.sparks(context.store, hosts, version)
        rows, counts = views.fleet_rows(states, sparks)
        shown = views.sort_and_filter(rows, status=status, name=q, firing=firing, sort=sort)
        body = web.renderer.fragment("_fleet_rows.html", rows=shown)
        cached = FleetRows(version, refs, body, counts, sum(row.shown for row in shown))
        if plain:
            web.fleet_rows.put(cached)
    return cached


@router.get("/fleet/version")
def fleet_version(request: Request) -> Response:
    """What the fleet page polls: it reloads its rows when the number moves."""
    if session.current_session(request) is None:
        return JSONResponse({"error": "not_authenticated"}, status_code=401)
    version = dashboard.fleet_version(context_of(request).store)
    return JSONResponse({"version": version}, headers={"Cache-Control": "no-store"})


@router.get("/hosts/{host:path}")
def host_page(
    request: Request, host: str, window: Annotated[str, Query(max_length=10)] = ""
) -> Response:
    found = _session(request)
    context = context_of(request)
    ref = resolve(context, host)
    name, seconds = views.window_of(window)
    now = datetime.now(UTC)
    width = views.bucket_width(seconds)
    points = web_of(request).series.series(
        context.store, ref.client_ip, ref.client_port, now - timedelta(seconds=seconds), now, width
    )
    data = views.chart_data(points, width)
    key = (ref.client_ip, ref.client_port)
    latest = latest_sample(context.store, *key)
    charts = [
        {"key": k, "title": title, "unit": unit, "summary": views.chart_summary(data[k], unit)}
        for k, title, unit in views.CHARTS
    ]
    return web_of(request).renderer.page(
        request, "host.html",
        ref=ref,
        state=host_states(context.store, [ref])[0],
        latest=latest,
        details=views.details(latest.document if latest else None),
        window=name, windows=list(views.WINDOWS), charts=charts,
        chart={"data": data, "window": seconds, "end": now.timestamp(),
               "charts": [[k, t, u] for k, t, u in views.CHARTS]},
        points=len(points),
        attempts=dashboard.recent_attempts(context.store, *key),
        alert_states=dashboard.host_alert_states(context.store, *key),
        alert_mail=dashboard.alert_mail(context.store, key),
        events=dashboard.recent_events(context.store, *key),
        **_common(request, found, context),
    )  # fmt: skip


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    found = _session(request)
    context = context_of(request)
    names = {(c.ip, c.port): c.label for c in context.config.clients}
    now = datetime.now(UTC)
    return web_of(request).renderer.page(
        request, "alerts.html",
        active=active_alerts(context.store, context.config, pending=True),
        resolved=dashboard.resolved_alerts(context.store, now - timedelta(days=7)),
        mail=dashboard.alert_mail(context.store, limit=50),
        names=names,
        **_common(request, found, context),
    )  # fmt: skip


@router.get("/rounds")
def rounds_page(request: Request, before: Annotated[int | None, Query(ge=1)] = None) -> Response:
    found = _session(request)
    context = context_of(request)
    rows = recent_rounds(context.store, limit=ROUNDS_PER_PAGE, before=before)
    return web_of(request).renderer.page(
        request, "rounds.html", rounds=rows,
        older=rows[-1].id if len(rows) == ROUNDS_PER_PAGE else None,
        **_common(request, found, context),
    )  # fmt: skip


@router.get("/static/{name:path}")
def static(request: Request, name: str) -> Response:
    return web_of(request).renderer.asset(request, name)
