"""Every error the API returns is JSON: ``{"error": "<code>", "detail": "<for people>"}``.

The code is stable (clients branch on it), the detail says what to do. Nothing
from the inside reaches a body: a database error is 503 with a generic detail
(the real message, passwords masked, goes to the server's log), any other
exception is 500 and logged as one line (its traceback only with ``-v``).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleetstat.errors import StoreError
from fleetstat.units import strict_json
from fleetstat.watch import logfmt

log = logging.getLogger("fleetstat.api")

_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}
BEARER = {"WWW-Authenticate": "Bearer"}


class ApiError(Exception):
    """Raised by routes and dependencies; becomes the JSON error response."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


class StrictJSONResponse(JSONResponse):
    """A JSON body as RFC 8259 has it: a NaN or an infinity is null.

    For the bodies the API builds by hand (errors, /health's 503); Starlette's own
    refuses them with a ValueError, a 500 instead of the answer. The routes'
    response models are written by pydantic, which writes null too
    (``models.Model``).
    """

    def render(self, content: Any) -> bytes:
        return strict_json(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return StrictJSONResponse(
        {"error": error, "detail": detail}, status_code=status, headers=headers
    )


def emit(level: int, **fields: object) -> None:
    if log.isEnabledFor(level):  # a line per request: skip the formatting when unused
        log.log(level, "%s", logfmt(**fields), extra={"logfmt": True})


def install(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        code = _CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, detail, getattr(exc, "headers", None))

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # loc and msg only: pydantic's "input" would echo what was sent (a password).
        problems = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
            for error in exc.errors()
        ]
        return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        emit(logging.ERROR, event="database_error", path=request.url.path, error=str(exc))
        return error_response(
            503, "database_unavailable", "the database did not answer; the server log says why"
        )

    handlers: dict[Any, Any] = {
        ApiError: api_error,
        StarletteHTTPException: http_error,
        RequestValidationError: validation_error,
        StoreError: store_error,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
