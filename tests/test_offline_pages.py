"""Nothing ``fleetstat serve`` sends loads anything from another origin.

The project's rule: no page fetches a script, a style, a font or an image from
the Internet (a monitoring server often has no route to it, and a CDN is a party
that sees who looks and can change what runs). FastAPI's Swagger UI at ``/docs``
loads its script and style from a CDN, so it is switched off (docs/api.md says
why); ``/openapi.json`` stays. Every page of the dashboard, every asset a page
names, and the OpenAPI description are read here from a real ``serve``, and
none names another origin in an attribute, a CSS ``url()`` or ``@import``.
(The browser tests also watch a real browser's requests: tests/test_web_browser.py.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from alert_helpers import client, rule
from serve_fixtures import Served, add_user
from web_fixtures import dashboard_session, history_config

WEB = client(rule("memory", 1), ip="10.0.0.5", name="web-01")
DB = client(ip="10.0.0.6", name="db-01")
PAGES = ("/", "/hosts/web-01", "/hosts/db-01?window=7d", "/alerts", "/rounds")
# An attribute that makes a browser fetch or go somewhere, and what CSS fetches.
ATTRIBUTE = re.compile(r"""\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]+)""", re.I)
CSS_URL = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])([^"')\s]+)""", re.I)


def external(reference: str) -> bool:
    """A reference that leaves this server: a scheme other than data:, or //host."""
    reference = reference.strip().lower()
    if reference.startswith("//"):
        return True
    scheme = re.match(r"([a-z][a-z0-9+.-]*):", reference)
    return scheme is not None and scheme.group(1) != "data"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("offline")
    config = history_config(folder, f"sqlite:///{folder / 'fleetstat.db'}", [WEB, DB])
    add_user(config)
    server = Served(config, "--no-watch")
    try:
        yield server
    finally:
        server.kill()


def test_the_reference_checks_see_what_they_look_for() -> None:
    page = '<script src="https://cdn.example/x.js"></script><a href="/alerts">'
    assert [external(r) for r in ATTRIBUTE.findall(page)] == [True, False]
    assert external("//cdn.example/x.css") and not external("data:image/png;base64,AA")
    css = "a{background:url('https://x.example/a.png')} @import 'https://x.example/b.css';"
    assert all(external(r) for r in CSS_URL.findall(css)) and len(CSS_URL.findall(css)) == 2


def test_no_page_asset_or_description_names_another_origin(served: Served) -> None:
    with served.client() as anonymous:
        assert anonymous.get("/docs").status_code == 404  # Swagger UI: from a CDN
        assert anonymous.get("/docs/oauth2-redirect").status_code == 404
        assert anonymous.get("/redoc").status_code == 404
        schema = anonymous.get("/openapi.json")
        assert schema.status_code == 200 and "/api/v1/hosts" in schema.json()["paths"]
        assert "http://" not in schema.text and "https://" not in schema.text
        login = anonymous.get("/login")
    texts = {"/login": login}
    with dashboard_session(served) as browser:
        for path in PAGES:
            texts[path] = browser.get(path)
        assets: set[str] = set()
        for path, answer in texts.items():
            assert answer.status_code == 200, (path, answer.text[:300])
            assert "default-src 'self'" in answer.headers["content-security-policy"]
            references = ATTRIBUTE.findall(answer.text)
            assert references, path  # the check reads something
            assert not [r for r in references if external(r)], path
            assets |= {r.split("?")[0] for r in references if r.startswith("/static/")}
        assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
        for asset in sorted(assets):
            answer = browser.get(asset)
            assert answer.status_code == 200, asset
            if asset.endswith(".css"):
                assert not [r for r in CSS_URL.findall(answer.text) if external(r)], asset
            if asset.endswith(".js"):
                assert not re.search(r"""\bimport\s*\(\s*["'](?:https?:)?//""", answer.text)
                assert "importScripts(" not in answer.text and "@import" not in answer.text
