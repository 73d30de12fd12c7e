"""The dashboard over HTTP, without a browser: the real ``fleetstat serve`` on loopback.

Login and session cookie, CSRF on every state change, redirects to the login
page, escaping of host text, bounded chart series, assets. The browser itself
(charts drawn, filters, a hostile host in a real page) is tests/test_web_browser.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from alert_helpers import T0, checked, client, document, round_of, rule
from serve_fixtures import PASSWORD, Served, add_user, self_signed
from web_fixtures import write_history

from fleetstat.alerts import evaluate_round
from fleetstat.model import HostResult, Status
from fleetstat.simhostile import HTML
from fleetstat.store import Store
from fleetstat.web.sparks import POINTS, Spark, spark

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "src" / "fleetstat" / "web" / "templates"
WEB = client(rule("memory", 1), ip="10.0.0.5", name="web-01")
DB = client(ip="10.0.0.6", name="db-01")
EVIL = client(ip="10.0.0.7", name="evil-01")
NEW = client(ip="10.0.0.8", name="new-01")


@dataclass
class Site:
    served: Served
    store_url: str


def write_config(folder: Path, url: str, http: str = "") -> Path:
    clients = "\n".join(
        f'  <client ip="{c.ip}" username="monitor" password="not-used-here" name="{c.name}">'
        + ('<alert type="memory" limit="1%"/>' if c is WEB else "")
        + "</client>"
        for c in (WEB, DB, EVIL, NEW)
    )
    path = folder / "fleetstat.xml"
    path.write_text(
        f'<fleetstat>\n  <database url="{url}"/>\n  <key path="{folder / "server.key"}"/>\n'
        f"  {http}\n{clients}\n</fleetstat>\n"
    )
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("web")
    url = f"sqlite:///{folder / 'fleetstat.db'}"
    config = write_config(folder, url)
    store = Store(url)
    store.upgrade()
    # 90 days a round a day, then the last 6 hours every 10 minutes.
    write_history(
        store,
        [WEB, DB],
        spans=[
            (timedelta(days=90), timedelta(days=1)),
            (timedelta(hours=6), timedelta(minutes=10)),
        ],
    )
    raw = document(
        disks=[
            {
                "mount": HTML,
                "device": HTML,
                "fstype": "ext4",
                "used_percent": 99.0,
                "total_bytes": 1,
                "used_bytes": 1,
                "free_bytes": 0,
            }
        ]
    )
    raw["host"].update(hostname=HTML, os=HTML)
    evil = round_of(HostResult(EVIL, Status.OK, T0, 1.0, document=checked(raw)))
    store.record_round(evil)
    evaluate_round(store, evil, now=evil.finished_at)
    store.close()
    add_user(config)
    served = Served(config, "--no-watch")
    yield Site(served, url)
    served.stop()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def post_login(http: httpx.Client, next_page: str = "/") -> httpx.Response:
    """The login form filled in as a browser does: its CSRF token, alice's password."""
    form = http.get("/login")
    return http.post(
        "/login",
        data={
            "username": "alice",
            "password": PASSWORD,
            "csrf": csrf_of(form.text),
            "next": next_page,
        },
    )


@contextlib.contextmanager
def logged_in(site: Site) -> Iterator[httpx.Client]:
    with site.served.client(follow_redirects=False) as http:
        answer = post_login(http)
        assert answer.status_code == 303, answer.text
        yield http


def test_a_logged_out_request_is_sent_to_the_login_page(site: Site) -> None:
    with site.served.client(follow_redirects=False) as http:
        for path, target in (
            ("/", "/login?next=/"),
            ("/hosts/web-01", "/login?next=/hosts/web-01"),
            ("/alerts", "/login?next=/alerts"),
            ("/rounds", "/login?next=/rounds"),
        ):
            answer = http.get(path)
            assert (answer.status_code, answer.headers["location"]) == (303, target), path
        assert http.get("/fleet/version").status_code == 401
        page = http.get("/login?next=/alerts")
        assert page.status_code == 200 and 'name="next" value="/alerts"' in page.text
        assert "fleetstat_session" not in page.headers.get("set-cookie", "")
        # A dead session cookie is no session.
        http.cookies.set("fleetstat_session", "fst_not-a-token")
        assert http.get("/").status_code == 303


def test_the_session_is_an_api_token_in_a_strict_httponly_cookie(site: Site) -> None:
    with site.served.client(follow_redirects=False) as http:
        form = http.get("/login")
        assert "samesite=strict" in form.headers["set-cookie"].lower()
        login = {"username": "alice", "password": PASSWORD, "next": "/rounds"}
        # Without the form's token (another site's form), nothing happens.
        assert http.post("/login", data={**login, "csrf": "x"}).status_code == 403
        wrong = http.post(
            "/login", data={**login, "password": "nope-nope", "csrf": csrf_of(form.text)}
        )
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        answer = http.post("/login", data={**login, "csrf": csrf_of(form.text)})
        assert (answer.status_code, answer.headers["location"]) == (303, "/rounds")
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "fleetstat_session" in c)
        token = re.search(r"fleetstat_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain HTTP here; TLS below
        # The same token store as the API: the cookie's token is a session token there.
        with site.served.client(token) as api:
            assert api.get("/api/v1/hosts").status_code == 200
        page = http.get("/")
        assert page.status_code == 200 and "web-01" in page.text
        # Logging out needs the page's CSRF token; with it, the token is revoked.
        assert http.post("/logout", data={"csrf": "nope"}).status_code == 403
        assert http.get("/").status_code == 200
        done = http.post("/logout", data={"csrf": csrf_of(page.text)})
        assert (done.status_code, done.headers["location"]) == (303, "/login")
        assert 'fleetstat_session=""' in done.headers["set-cookie"]
        with site.served.client(token) as api:
            assert api.get("/api/v1/hosts").status_code == 401
        http.cookies.set("fleetstat_session", token)
        assert http.get("/").status_code == 303


def test_a_login_never_redirects_off_the_site(site: Site) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        with site.served.client(follow_redirects=False) as http:
            answer = post_login(http, target)
            assert (answer.status_code, answer.headers["location"]) == (303, "/"), target


def test_pause_and_resume_need_the_csrf_token(site: Site) -> None:
    with logged_in(site) as http:
        token = site.served.login()
        page = http.get("/")
        assert http.post("/monitoring", data={"running": "false"}).status_code == 403
        with site.served.client(token) as api:
            assert api.get("/api/v1/monitoring").json()["running"] is True
            answer = http.post("/monitoring", data={"running": "false", "csrf": csrf_of(page.text)})
            assert answer.status_code == 303
            assert api.get("/api/v1/monitoring").json()["running"] is False
            assert "Rounds paused" in http.get("/").text
            again = http.post("/monitoring", data={"running": "true", "csrf": csrf_of(page.text)})
            assert again.status_code == 303
            assert api.get("/api/v1/monitoring").json()["running"] is True


def test_every_page_renders_and_host_text_stays_text(site: Site) -> None:
    # serve read the fleet page's rows as it started, so the first view is quick.
    warm = site.served.wait_for("event=dashboard_warm ")
    assert "hosts=4 " in warm and "error=" not in warm, warm
    with logged_in(site) as http:
        pages = {
            path: http.get(path)
            for path in (
                "/",
                "/hosts/evil-01",
                "/hosts/web-01",
                "/alerts",
                "/rounds",
                "/hosts/10.0.0.6",
            )
        }
        for path, page in pages.items():
            assert page.status_code == 200, path
            headers = page.headers
            assert "script-src 'self'" in headers["content-security-policy"], path
            assert headers["cache-control"] == "no-store"
            assert "fleetstatPwned" not in page.text or "&lt;script&gt;" in page.text, path
            assert "<script>window.fleetstatPwned" not in page.text, path
            assert "onerror=" not in page.text.replace("onerror=&#34;", ""), path
        fleet = pages["/"].text
        assert "&lt;script&gt;window.fleetstatPwned=1&lt;/script&gt;" in fleet
        assert re.search(
            r"4 hosts:.*3 ok.*0 failed.*1 never tried.*1 with firing alerts", fleet, re.S
        )
        evil = pages["/hosts/evil-01"].text
        assert evil.count("&lt;script&gt;window.fleetstatPwned=1&lt;/script&gt;") >= 3
        assert "memory" in pages["/alerts"].text and "web-01" in pages["/alerts"].text
        assert http.get("/hosts/nobody").status_code == 404
        assert not http.get("/fleet/version").json()["version"].startswith("0-")


def test_a_host_page_gets_at_most_1000_points_per_series(site: Site) -> None:
    with logged_in(site) as http:
        for window, least in (("90d", 90), ("6h", 30), ("1h", 5)):
            page = http.get(f"/hosts/web-01?window={window}").text
            found = re.search(
                r'<script type="application/json" id="chart-data">(.*?)</script>', page, re.S
            )
            data = json.loads(found.group(1))["data"]  # type: ignore[union-attr]
            assert least <= len(data["t"]) <= 1000, window
            assert {len(v) for v in data.values()} == {len(data["t"])}
            assert all(v is None or 0 <= v <= 100 for v in data["cpu"])
            assert f'aria-current="true">{window}<' in page


def test_assets_are_package_data_served_compressed_and_cached(site: Site) -> None:
    with site.served.client() as http:
        page = http.get("/login").text
        css = re.search(r'href="(/static/fleetstat\.css\?v=\w+)"', page).group(1)  # type: ignore[union-attr]
        answer = http.get(css, headers={"Accept-Encoding": "gzip"})
        assert answer.status_code == 200 and answer.headers["content-encoding"] == "gzip"
        assert "immutable" in answer.headers["cache-control"]
        uplot = http.get("/static/vendor/uplot/uPlot.iife.min.js")
        assert uplot.status_code == 200 and "uPlot" in uplot.text
        assert http.get("/static/../pages.py").status_code == 404
        assert http.get("/static/vendor/uplot/LICENSE").status_code == 404  # not an asset
    licence = ROOT / "src" / "fleetstat" / "web" / "static" / "vendor" / "uplot" / "LICENSE"
    assert "Leon Sorokin" in licence.read_text()


def test_no_template_lets_markup_through() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"\|\s*safe\b|autoescape\s+false|Markup\(", text), template.name


def test_under_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    url = f"sqlite:///{tmp_path / 'fleetstat.db'}"
    config = write_config(tmp_path, url, f'<http certfile="{cert}" keyfile="{key}"/>')
    add_user(config)
    served = Served(config, "--no-watch")
    try:
        assert served.url.startswith("https://")
        verify = ssl.create_default_context(cafile=str(cert))
        with served.client(verify=verify, follow_redirects=False) as https:
            form = https.get("/login")
            assert "; secure" in form.headers["set-cookie"].lower()
            answer = https.post("/login", data={"username": "alice", "password": PASSWORD,
                                                "csrf": csrf_of(form.text)})  # fmt: skip
            cookies = answer.headers.get_list("set-cookie")
            session = next(c for c in cookies if c.startswith("fleetstat_session="))
            flags = {part.strip().lower() for part in session.split(";")}
            assert {"secure", "httponly", "samesite=strict"} <= flags
        assert served.stop() == 0
    finally:
        served.kill()


def test_a_sparkline_is_whole_percents_with_gaps_and_a_label() -> None:
    assert spark([None] * 3) == Spark(",,", "no CPU figures in the last 24 h")
    drawn = spark([0.0, 99.6, None, 40.2, None, 120.0, -5.0])
    # Held to 0-100 (the line's box), empty where there was no sample; the words say
    # what the host sent.
    assert drawn.data == "0,100,,40,,100,0"
    assert drawn.label == "CPU over the last 24 h: average 51 %, highest 120 %"
    assert len(spark([55.5] * POINTS).data) < 150  # 500 rows of them make the page
