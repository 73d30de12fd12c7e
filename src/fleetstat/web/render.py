"""Templates, static assets and the response headers every page carries.

- Jinja2 with autoescaping on for every template (``autoescape=True``, not by
  file name) and ``StrictUndefined``; no template marks host data ``|safe``
  (``tests/test_web.py`` checks the templates for it).
- Assets are package data (``web/static/``), read once, served from memory with
  a content hash in the URL (so they can be cached for a year) and gzip when the
  browser takes it. Nothing is loaded from anywhere else: the Content-Security-
  Policy allows only this origin, and no inline script at all, so even a
  mistake in escaping could not run a host's ``<script>``.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from fleetstat.units import strict_json
from fleetstat.web.views import FILTERS, SPARK_BOX

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
MIN_GZIP = 1024  # smaller bodies gain less than the header costs


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str
    version: str


def _load_assets() -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    root = resources.files("fleetstat.web") / "static"

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                walk(entry, f"{name}/")
            elif entry.name.endswith((".js", ".css", ".svg")):
                body = entry.read_bytes()
                media = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
                if media.startswith("text/") or media.endswith("javascript"):
                    media += "; charset=utf-8"
                version = hashlib.sha256(body).hexdigest()[:12]
                found[name] = Asset(body, gzip.compress(body, 9, mtime=0), media, version)

    walk(root, "")
    return found


class Renderer:
    def __init__(self) -> None:
        self.assets = _load_assets()
        self.env = Environment(
            loader=PackageLoader("fleetstat.web", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(FILTERS)
        # |tojson feeds JSON.parse (the chart's data): a NaN or an infinity is null.
        self.env.policies["json.dumps_function"] = strict_json
        self.env.globals["asset"] = self.asset_url
        self.env.globals["spark_box"] = SPARK_BOX

    def asset_url(self, name: str) -> str:
        return f"/static/{name}?v={self.assets[name].version}"

    def fragment(self, template: str, **values: Any) -> Markup:
        """A part of a page rendered ahead, to be placed in a page as it is: the output
        of an autoescaped template (host text in it is already escaped), as Jinja's own
        ``{% include %}`` would place it."""
        return Markup(self.env.get_template(template).render(**values))

    def page(self, request: Request, template: str, status: int = 200, **values: Any) -> Response:
        html = self.env.get_template(template).render(request=request, **values)
        return compressed(request, html.encode("utf-8"), "text/html; charset=utf-8", status)

    def asset(self, request: Request, name: str) -> Response:
        found = self.assets.get(name)
        if found is None:
            return Response("not found\n", status_code=404, media_type="text/plain")
        headers = {
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
            "Vary": "Accept-Encoding",
        }
        if _accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
            return Response(found.gzipped, media_type=found.media_type, headers=headers)
        return Response(found.body, media_type=found.media_type, headers=headers)


def _accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def compressed(request: Request, body: bytes, media_type: str, status: int = 200) -> Response:
    headers = dict(PAGE_HEADERS, Vary="Accept-Encoding")
    if len(body) >= MIN_GZIP and _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body, 6, mtime=0)
    return Response(body, status_code=status, media_type=media_type, headers=headers)
