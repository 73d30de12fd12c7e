"""The outermost layer of every request: tokens in URLs refused, crashes contained, a log line.

A pure ASGI middleware (no BaseHTTPMiddleware: it would buffer every response).

- A token in the query string (``?access_token=``, ``?token=``, or any value that
  looks like a fleetstat token) is refused with 400 before any route runs: URLs
  end up in proxies' logs and browsers' histories.
- An exception no route handled becomes a 500 JSON body here, logged as one
  line: Starlette would otherwise hand it to the server, which logs the traceback.
- One logfmt line per request at INFO when it failed (status >= 400), at DEBUG
  otherwise: method, path (never the query string), status, duration, client.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl

from fleetstat.api.errors import emit, log
from fleetstat.auth import TOKEN_PREFIX

TOKEN_PARAMETERS = {"access_token", "token", "api_key", "apikey", "bearer", "authorization"}
TOKEN_IN_QUERY = (
    "a token in the URL ends up in logs and browser history: send it in the "
    "Authorization header instead ('Authorization: Bearer <token>')"
)


def _token_in_query(query_string: bytes) -> bool:
    if not query_string:
        return False
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return any(
        name.lower() in TOKEN_PARAMETERS or value.startswith(TOKEN_PREFIX) for name, value in pairs
    )


class Guard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0

        async def send_and_watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if _token_in_query(scope.get("query_string", b"")):
                await _json(send_and_watch, 400, "token_in_query", TOKEN_IN_QUERY)
            else:
                await self.app(scope, receive, send_and_watch)
        except Exception as exc:
            emit(logging.ERROR, event="http_internal_error", method=scope.get("method"),
                 path=scope.get("path"), error=type(exc).__name__)  # fmt: skip
            log.debug("traceback", exc_info=True)
            if status == 0:  # nothing sent yet: the client gets a clean 500
                await _json(send_and_watch, 500, "internal_error", "see the server log")
        finally:
            client = scope.get("client")
            emit(
                logging.INFO if status >= 400 or status == 0 else logging.DEBUG,
                event="http",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration=time.perf_counter() - t0,
                client=client[0] if client else None,
            )


async def _json(send: Any, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
