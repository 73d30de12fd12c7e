"""``POST /api/v1/login`` (OAuth2 password form) and ``POST /api/v1/logout``."""

from __future__ import annotations

import logging
import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from fleetstat import auth
from fleetstat.api import models
from fleetstat.api.deps import Context, ServerContext, User, client_address
from fleetstat.api.errors import BEARER, ApiError, emit

router = APIRouter(tags=["auth"])


@router.post(
    "/login",
    response_model=models.Token,
    responses={401: {"model": models.Error}, 429: {"model": models.Error}},
)
def login(
    request: Request,
    context: Context,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
) -> models.Token:
    """Trade a user's name and password (form fields ``username``, ``password``) for a
    bearer token that expires (12 h by default); send it as ``Authorization: Bearer``."""
    issued = attempt_login(request, context, form.username, form.password)
    return models.Token(access_token=issued.token, expires_at=issued.expires_at)


def attempt_login(
    request: Request, context: ServerContext, username: str, password: str
) -> auth.IssuedToken:
    """A session token for a right password; ApiError 429 while throttled, 401 otherwise.

    The one login path: the API's form and the dashboard's login page both call it,
    so both share the throttle and the log lines.
    """
    address = client_address(request)
    user = username[: auth.NAME_MAX]  # for the log; a longer one cannot exist
    wait = context.throttle.retry_after(address)
    if wait > 0:
        emit(logging.WARNING, event="login_throttled", user=user, client=address)
        seconds = str(math.ceil(wait))
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins from this address: try again in {seconds} s",
            {"Retry-After": seconds},
        )
    try:
        issued = auth.login(context.store, username, password, lifetime=context.session_lifetime)
    except auth.AuthError as exc:
        context.throttle.failed(address)
        emit(logging.WARNING, event="login_failed", user=user, client=address, reason=exc.reason)
        raise ApiError(401, "not_authenticated", "wrong user name or password", BEARER) from None
    emit(logging.INFO, event="login", user=user, client=address)
    return issued


@router.post("/logout", status_code=204, responses={401: {"model": models.Error}})
def logout(context: Context, user: User) -> Response:
    """Revoke the token this request carries."""
    auth.logout(context.store, user)
    return Response(status_code=204)
