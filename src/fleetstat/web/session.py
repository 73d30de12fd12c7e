"""The browser's session: a cookie holding an API session token, and CSRF tokens.

- The cookie ``fleetstat_session`` carries the very token ``POST /api/v1/login``
  would return (``auth.login``: the same store, lifetime, revocation and log lines),
  marked ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
  page sends it) and ``Secure`` when the server speaks TLS. The API never reads
  cookies, so the cookie cannot be used against it from another site either.
- State-changing requests (logout, pause/resume, the login form itself) carry a
  CSRF token in a form field. A session's CSRF secret is an HMAC of its token, so
  nothing more is stored and a logout ends both. Before login the secret is a
  random value in a short-lived ``fleetstat_login`` cookie (double submit), so
  another site cannot log a browser in as someone else.
- The token written into a page is masked with a fresh random pad each time
  (as Django does): pages are compressed, and a secret that repeats byte for
  byte beside text a host chose could be guessed from the compressed sizes
  (BREACH).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request, Response

from fleetstat import auth
from fleetstat.api.deps import client_address, context_of
from fleetstat.api.errors import emit

SESSION_COOKIE = "fleetstat_session"
LOGIN_COOKIE = "fleetstat_login"
LOGIN_COOKIE_SECONDS = 3600
CSRF_FIELD = "csrf"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def csrf_secret(token: str) -> bytes:
    return hmac.new(token.encode("utf-8"), b"fleetstat/1 csrf", hashlib.sha256).digest()


def mask(secret: bytes) -> str:
    """``pad || pad XOR secret``: a different string for the same secret every time."""
    pad = secrets.token_bytes(len(secret))
    return _b64(pad + bytes(a ^ b for a, b in zip(pad, secret, strict=True)))


def csrf_matches(masked: str | None, secret: bytes) -> bool:
    if not masked or len(masked) > 200:
        return False
    try:
        raw = _unb64(masked)
    except ValueError:
        return False
    if len(raw) != 2 * len(secret):
        return False
    pad, body = raw[: len(secret)], raw[len(secret) :]
    return hmac.compare_digest(bytes(a ^ b for a, b in zip(pad, body, strict=True)), secret)


@dataclass(frozen=True)
class Session:
    principal: auth.Principal
    token: str

    def csrf(self) -> str:
        return mask(csrf_secret(self.token))

    def csrf_ok(self, masked: str | None) -> bool:
        return csrf_matches(masked, csrf_secret(self.token))


def current_session(request: Request) -> Session | None:
    """The logged-in session of this request, or None (no cookie, or a dead token)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        principal = auth.authenticate(context_of(request).store, token)
    except auth.AuthError as exc:
        emit(logging.INFO, event="session_refused", client=client_address(request),
             path=request.url.path, reason=exc.reason)  # fmt: skip
        return None
    return Session(principal, token)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def start_session(request: Request, response: Response, issued: auth.IssuedToken) -> None:
    max_age = None
    if issued.expires_at is not None:
        max_age = max(0, int((issued.expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=max_age,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")


def end_session(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )


def login_secret(request: Request) -> tuple[bytes, bool]:
    """The pre-login CSRF secret: the cookie's, or a new one (True: set it on the page)."""
    existing = request.cookies.get(LOGIN_COOKIE)
    try:
        secret = _unb64(existing) if existing else b""
    except ValueError:
        secret = b""
    if len(secret) == 32:
        return secret, False
    return secrets.token_bytes(32), True


def set_login_cookie(request: Request, response: Response, secret: bytes) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        _b64(secret),
        max_age=LOGIN_COOKIE_SECONDS,
        path="/login",
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def login_csrf_ok(request: Request, masked: str | None) -> bool:
    existing = request.cookies.get(LOGIN_COOKIE)
    if not existing:
        return False
    try:
        secret = _unb64(existing)
    except ValueError:
        return False
    return len(secret) == 32 and csrf_matches(masked, secret)
