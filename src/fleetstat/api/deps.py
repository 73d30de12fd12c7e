"""The dependencies routes declare: the server's context, its store, the caller."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from fleetstat import auth
from fleetstat.api.cache import BodyCache
from fleetstat.api.errors import BEARER, ApiError, emit
from fleetstat.api.throttle import LoginThrottle

if TYPE_CHECKING:
    from fleetstat.config import Config
    from fleetstat.store import Store
    from fleetstat.watch import Watcher

MONITORING_STATE = "monitoring.running"


@dataclass
class ServerContext:
    """What every request may need, made once by ``fleetstat serve`` (or a test)."""

    config: Config
    store: Store
    watcher: Watcher | None = None  # None: --no-watch (no rounds in this process)
    session_lifetime: timedelta = timedelta(hours=12)
    metrics_public: bool = False
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    bodies: BodyCache = field(default_factory=BodyCache)  # /metrics, /hosts per generation


def context_of(request: Request) -> ServerContext:
    context: ServerContext = request.app.state.fleetstat
    return context


async def get_context(request: Request) -> ServerContext:
    # async: FastAPI runs a plain-def dependency in a worker thread, a hop that
    # costs more than this attribute lookup.
    return context_of(request)


Context = Annotated[ServerContext, Depends(get_context)]

# auto_error=False: a missing token is our JSON 401, not FastAPI's. The scheme
# also documents the login in the OpenAPI description (/openapi.json).
_bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/login", auto_error=False)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def current_user(
    request: Request, context: Context, token: Annotated[str | None, Depends(_bearer)]
) -> auth.Principal:
    """The caller, from ``Authorization: Bearer <token>``; 401 otherwise."""
    if not token:
        raise ApiError(
            401,
            "not_authenticated",
            "send a token as 'Authorization: Bearer <token>' (POST /api/v1/login gives one)",
            BEARER,
        )
    try:
        return auth.authenticate(context.store, token)
    except auth.AuthError as exc:
        emit(logging.WARNING, event="auth_failed", client=client_address(request),
             path=request.url.path, reason=exc.reason)  # fmt: skip
        raise ApiError(
            401, "not_authenticated", "the token is not valid (unknown, expired or revoked)", BEARER
        ) from None


User = Annotated[auth.Principal, Depends(current_user)]
