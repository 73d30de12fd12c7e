"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Against ``fleetstat serve`` over a simulated fleet (a real sshd: two healthy
hosts with 90 days of history written the way rounds write it, one whose probe
fails, one whose host sends HTML in every text field), the tests log in, open
every page, check that the charts drew (blue line pixels on their canvases),
that the filters, the sort and the window picker work, that the fleet page
takes a new round's rows without reloading, that the hostile host's
``<script>`` is text and runs nothing, and that a logged-out visit lands on the
login page. One browser for the suite; never a downloaded one: Chromium is
``/usr/bin/chromium`` (``scripts/setup`` installs it). Missing, the tests skip
locally and fail under ``CI``.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_helpers import client, rule
from serve_fixtures import PASSWORD, Served, add_user, serve_config
from web_fixtures import write_history

from fleetstat.simfleet import SimFleet, SimFleetError
from fleetstat.store import Store

CHROMIUM = "/usr/bin/chromium"
# What works as root on this kind of machine: no sandbox (root), no GPU, and none of
# Chromium's own calls home (the network is closed; each would be refused).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OK_A, OK_B, FAILING, HOSTILE = range(4)
# Counts pixels of the charts' line colour (Okabe-Ito blue, #0072B2) on every chart's
# canvas, or on the canvases given.
BLUE_PIXELS = """(given) => Array.from(given || document.querySelectorAll('.plot canvas')).map(c=>{
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i] < 60 && d[i+1] > 80 && d[i+1] < 150 && d[i+2] > 140) n++;
  return n; })"""


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why}; CI runs the browser tests", pytrace=False)
    pytest.skip(why)


# Module-scoped (all the browser tests are here, so still one browser for the
# suite): while Playwright's sync API runs, its event loop counts as running in
# this thread, and later tests' asyncio.run() would refuse to start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"no {CHROMIUM} (scripts/setup installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (scripts/setup installs it)")
    with sync_playwright() as playwright:
        # launch() starts from a fresh, empty user-data-dir of its own each time.
        found = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield found
        found.close()


@dataclass
class Dashboard:
    served: Served
    fleet: SimFleet
    url: str


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    if os.geteuid() != 0:
        _unavailable("the simulated fleet needs root (run scripts/test as root)")
    folder = tmp_path_factory.mktemp("dashboard")
    fleet = SimFleet(
        folder / "fleet", count=4, behaviours={FAILING: "fail", HOSTILE: "hostile:html"}
    )
    try:
        fleet.start()
    except (SimFleetError, OSError) as exc:
        fleet.stop()
        _unavailable(f"cannot start sshd: {exc}")
    try:
        config = serve_config(
            folder,
            fleet,
            [OK_A, OK_B, FAILING, HOSTILE],
            inside={HOSTILE: '<events enabled="true"/>'},  # its events carry markup too
        )
        with Store(f"sqlite:///{folder / 'fleetstat.db'}") as store:
            store.upgrade()
            healthy = [
                client(
                    *([rule("memory", 1)] if i == OK_A else []),
                    ip=fleet.hosts[i].address,
                    port=fleet.port,
                    name=f"sim-{i:03d}",
                )
                for i in (OK_A, OK_B)
            ]
            write_history(
                store,
                healthy,
                spans=[
                    (timedelta(days=90), timedelta(hours=12)),
                    (timedelta(days=1), timedelta(minutes=30)),
                ],
            )
        add_user(config)
        served = Served(config, "--every", "1h")
        try:
            served.wait_for("event=round ", timeout=120)
            yield Dashboard(served, fleet, served.url)
        finally:
            served.stop()
    finally:
        fleet.stop()


@pytest.fixture
def page(browser: Any, dashboard: Dashboard) -> Iterator[Any]:
    # bypass_csp: the page's Content-Security-Policy forbids eval, which Playwright's
    # wait_for_function needs; it also means the hostile-host test proves the escaping
    # alone, without the CSP's second line of defence.
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=dashboard.url, bypass_csp=True
    )
    found = context.new_page()
    errors: list[str] = []
    found.on("pageerror", lambda exc: errors.append(str(exc)))
    requested: list[str] = []
    found.on("request", lambda request: requested.append(request.url))
    log_in(found)
    yield found
    context.close()
    assert errors == [], errors  # no script error on any page
    # Nothing loaded from anywhere else: every request went to fleetstat serve.
    assert requested and all(u.startswith(dashboard.url + "/") for u in requested), requested


def log_in(page: Any, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{next_path}")


def test_a_logged_out_visit_lands_on_the_login_page(browser: Any, dashboard: Dashboard) -> None:
    context = browser.new_context(base_url=dashboard.url)
    page = context.new_page()
    page.goto("/hosts/sim-001?window=7d")
    assert page.url.endswith("/login?next=/hosts/sim-001")
    assert page.locator("h1").inner_text() == "Log in to fleetstat"
    page.fill("#username", "alice")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert "Wrong user name or password" in page.locator(".message").inner_text()
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/hosts/sim-001")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies["fleetstat_session"]["httpOnly"] is True
    assert cookies["fleetstat_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read the session
    page.click("text=Log out")
    page.wait_for_url("**/login")
    page.goto("/")
    assert "/login" in page.url
    context.close()


def test_the_fleet_page_counts_filters_and_sorts(page: Any) -> None:
    page.goto("/")
    rows = page.locator("#hosts tbody tr")
    assert rows.count() == 4
    summary = page.locator("#counts .summary").inner_text()
    assert "4 hosts" in summary and "3 ok" in summary and "1 failed (1 probe_error)" in summary
    assert "1 with firing alerts" in summary
    failing = page.locator("#hosts tbody tr", has_text="sim-002")
    assert "probe_error" in failing.locator("td").first.inner_text()
    # Status is a word and a shape, never colour alone (the shape is CSS decoration).
    shape = "e => getComputedStyle(e, '::before').content"
    assert "✕" in failing.locator(".status").evaluate(shape)
    assert "✓" in page.locator("#hosts tbody tr", has_text="sim-001").locator(".status").evaluate(
        shape
    )
    assert "▲" in page.locator("#hosts tbody tr", has_text="sim-000").locator(".firing").evaluate(
        shape
    )
    # The healthy hosts have 24 h of history: a drawn sparkline; status has words.
    for name, least, most in (("sim-001", 100, None), ("sim-002", 0, 0)):
        spark = page.locator("#hosts tbody tr", has_text=name).locator("canvas.spark")
        spark.and_(page.locator("[data-drawn]")).wait_for()
        drawn = spark.evaluate(f"c => ({BLUE_PIXELS})([c])[0]")
        assert drawn >= least and (most is None or drawn <= most), (name, drawn)
    # The last round as an age (the script's), the UTC time the server sent as its tooltip.
    last = page.locator("#hosts tbody tr", has_text="sim-001").locator("td.last")
    assert re.fullmatch(r"\d+ (s|min) ago", last.inner_text()), last.inner_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", last.get_attribute("title") or "")
    page.select_option("#f-status", "failed")
    assert visible_names(page) == ["sim-002"]
    assert "status=failed" in page.url
    page.select_option("#f-status", "")
    page.check("#f-firing")
    assert visible_names(page) == ["sim-000"]
    page.uncheck("#f-firing")
    page.fill("#f-name", "SIM-00")
    assert len(visible_names(page)) == 4
    page.fill("#f-name", "003")
    assert visible_names(page) == ["sim-003"]
    assert page.locator("#shown").inner_text() == "1 of 4 shown"
    page.fill("#f-name", "")
    page.click("a.sort[data-key=name]")
    page.click("a.sort[data-key=name]")
    assert visible_names(page) == ["sim-003", "sim-002", "sim-001", "sim-000"]
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("Host")
    # Reloaded with the state in the URL, the server sorts and filters the same way.
    page.goto("/?status=ok&sort=name:desc")
    assert visible_names(page) == ["sim-003", "sim-001", "sim-000"]
    assert page.locator("#shown").inner_text() == "3 of 4 shown"
    # The rows the URL's filter left out are in the page, hidden: clearing it shows them.
    page.select_option("#f-status", "")
    assert visible_names(page) == ["sim-003", "sim-002", "sim-001", "sim-000"]
    page.click("a.sort[data-key=status]")  # the worst first
    assert visible_names(page)[0] == "sim-002"


def visible_names(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#hosts tbody tr:not([hidden]) th a", "links => links.map(a => a.textContent)"
    )


def test_the_fleet_page_takes_a_new_round_without_reloading(
    page: Any, dashboard: Dashboard
) -> None:
    page.goto("/")
    before = page.locator("#counts").get_attribute("data-version")
    page.evaluate("window.notReloaded = true")
    token = dashboard.served.login()
    rounds = dashboard.served.count("event=round ")
    with dashboard.served.client(token) as api:  # resuming starts a round at once
        assert api.post("/api/v1/monitoring", json={"running": False}).status_code == 200
        assert api.post("/api/v1/monitoring", json={"running": True}).status_code == 200
    dashboard.served.wait_for("event=round ", times=rounds + 1, timeout=120)
    # The page polls every 10 s; a tab coming back into view asks at once.
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    page.wait_for_function(f"document.getElementById('counts').dataset.version !== '{before}'")
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#hosts tbody tr").count() == 4


def test_the_host_page_draws_every_chart_and_the_window_picker_works(page: Any) -> None:
    page.goto("/hosts/sim-000")
    page.wait_for_function("document.documentElement.dataset.chartsDrawn === '5'")
    assert all(n > 50 for n in page.evaluate(BLUE_PIXELS)), page.evaluate(BLUE_PIXELS)
    assert page.locator(".windows a[aria-current=true]").inner_text() == "24h"
    for section in (
        "Filesystems",
        "Top processes",
        "Recent attempts",
        "Alerts",
        "Recent security events",
    ):
        assert page.locator("h2", has_text=section).count() == 1, section
    assert page.locator("#h-attempts + .table-wrap tbody tr").count() >= 1
    day = page.locator("p.note").first.inner_text()
    page.click(".windows a[data-window='90d']")
    page.wait_for_url("**/hosts/sim-000?window=90d")
    page.wait_for_function("document.documentElement.dataset.chartsDrawn === '5'")
    assert page.locator(".windows a[aria-current=true]").inner_text() == "90d"
    assert page.locator("p.note").first.inner_text() != day
    assert all(n > 50 for n in page.evaluate(BLUE_PIXELS))
    page.click(".windows a[data-window='1h']")
    page.wait_for_url("**window=1h")
    assert "over the last 1h" in page.locator("p.note").first.inner_text()


def test_a_failing_host_page_shows_its_attempts_errors(page: Any) -> None:
    page.goto("/hosts/sim-002")
    assert "probe_error" in page.locator(".facts").inner_text()
    attempts = page.locator("#h-attempts + .table-wrap tbody tr").first
    assert "probe_error" in attempts.inner_text()
    assert "exited with status 3" in attempts.inner_text()
    attempts.locator("summary", has_text="stderr").click()
    assert "probe crashed on purpose" in attempts.locator("pre").inner_text()
    # No sample yet: the charts say so instead of drawing nothing silently.
    assert "no samples in this window" in page.locator("#chart-cpu figcaption").inner_text()


# A tick label on the time axis: "HH:MM", the first one and each new day's with the date
# under it, or a date alone for day-sized steps.
TICK = re.compile(r"^(?:(?P<hh>[01]\d|2[0-3]):(?P<mm>[0-5]\d)(?:\n[A-Z][a-z]{2} \d{1,2})?"
                  r"|[A-Z][a-z]{2} \d{1,2})$")  # fmt: skip


@pytest.mark.parametrize("window", ["1h", "6h", "24h", "7d", "90d"])
def test_the_time_axis_is_utc_on_a_24_hour_clock(
    browser: Any, dashboard: Dashboard, window: str
) -> None:
    # A browser far from UTC, whose own clock would say "9:00 PM" where the page says 02:00.
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=dashboard.url, bypass_csp=True,
        timezone_id="America/New_York", locale="en-US",
    )  # fmt: skip
    page = context.new_page()
    log_in(page, f"/hosts/sim-000?window={window}")
    page.wait_for_function("document.documentElement.dataset.chartsDrawn === '5'")
    ticks = page.locator("#chart-cpu").get_attribute("data-x-ticks").split("|")
    context.close()
    assert 3 <= len(ticks) <= 10, ticks  # at least 64 px apart on a ~590 px chart
    assert all(TICK.match(t) for t in ticks), ticks  # no "12:47am", no "12/2/26"
    assert len(set(ticks)) == len(ticks), ticks
    clocks = [TICK.match(t) for t in ticks]
    if clocks[0]["hh"] is None:  # day-sized steps: dates only
        assert all(c["hh"] is None for c in clocks), ticks
        return
    assert "\n" in ticks[0], ticks  # the first tick says which day
    minutes = [int(c["hh"]) * 60 + int(c["mm"]) for c in clocks]
    steps = {(b - a) % 1440 for a, b in itertools.pairwise(minutes)}
    assert len(steps) == 1, ticks
    # Ticks fall on multiples of their step counted from UTC midnight (New York's
    # midnight would put 3-hour ticks on 02:00, 05:00, ...).
    step = steps.pop()
    assert all(m % step == 0 for m in minutes), ticks


def test_a_hostile_host_shows_its_markup_as_text_and_runs_nothing(page: Any) -> None:
    script = "<script>window.fleetstatPwned=1</script>"
    for path in ("/", "/hosts/sim-003"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.fleetstatPwned") == "undefined", path
        assert script in page.locator("main").inner_text(), path
        # Only our own scripts are elements; the host's became text.
        sources = page.eval_on_selector_all("script", "s => s.map(e => e.src || e.type)")
        assert all(s.startswith(("http", "application/json")) for s in sources), sources
        assert page.locator("img").count() == 0 and page.locator("a[href^=javascript]").count() == 0
    # Its security events (it was asked for them) are stored and shown, as text too.
    events = page.locator("#h-events + .table-wrap tbody tr").first
    assert script in events.inner_text()
    assert events.locator("script").count() == 0


def test_alerts_and_rounds_pages(page: Any) -> None:
    page.goto("/alerts")
    firing = page.locator("#h-active + .table-wrap tbody tr", has_text="sim-000")
    assert "firing" in firing.inner_text() and "memory" in firing.inner_text()
    page.goto("/rounds")
    first = page.locator("table.rounds tbody tr").first.inner_text()
    assert "✕ 1" in first  # the newest round: 4 hosts, the failing one failed


def test_usable_on_a_phone_and_from_the_keyboard(browser: Any, dashboard: Dashboard) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        base_url=dashboard.url,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    log_in(page)
    for path in ("/", "/hosts/sim-000", "/alerts", "/rounds"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)  # wide tables scroll inside their box
    page.goto("/")
    reached = []
    for _ in range(30):
        page.keyboard.press("Tab")
        reached.append(
            page.evaluate(
                "(() => { const e = document.activeElement;"
                " return e.id || e.dataset.key || e.textContent.trim(); })()"
            )
        )
    assert {"f-status", "f-name", "f-firing", "name", "sim-000"} <= set(reached), reached
    context.close()


def test_chromium_is_debians(browser: Any) -> None:
    assert shutil.which("chromium") == CHROMIUM
    assert browser.version.split(".")[0].isdigit()
