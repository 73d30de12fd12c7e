"""``fleetstat serve``'s API: the real server on loopback, read with httpx.

Acceptance 1: against SQLite, PostgreSQL and MariaDB, log in and read every
endpoint; a wrong password and an expired, revoked or missing token get 401, and
no body or log line holds a stack trace, SQL or a secret.
"""

from __future__ import annotations

import re
import ssl
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from serve_fixtures import PASSWORD, Served, add_user, run_cli, self_signed, serve_config

from fleetstat.simfleet import SimFleet

LEAKS = re.compile(
    r"Traceback|SELECT |INSERT |UPDATE |sqlalchemy\.|psycopg\.|pymysql\.|File \"", re.I
)


def assert_clean(text: str, *secrets: str) -> None:
    assert not LEAKS.search(text), text
    for secret in secrets:
        assert secret not in text


def error_of(answer: httpx.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    return str(body["detail"])


@pytest.mark.sshd
def test_every_endpoint_and_every_refusal(tmp_path: Path, sim_fleet: SimFleet, db_url: str) -> None:
    config = serve_config(tmp_path, sim_fleet, [0, 1], database_url=db_url)
    add_user(config)
    program = run_cli("token", "create", "--name", "grafana", "-c", str(config))
    assert program.returncode == 0, program.stderr
    program_token = program.stdout.strip()
    short = run_cli("token", "create", "--name", "short", "--expires", "1s", "-c", str(config))
    short_token = short.stdout.strip()

    served = Served(config, "--every", "1h")
    bodies: list[str] = []
    try:
        served.wait_for("event=round ")
        token = served.login()
        with served.client(token) as http:

            def get(path: str, **params: object) -> dict:  # type: ignore[type-arg]
                answer = http.get(path, params=params)  # type: ignore[arg-type]
                bodies.append(answer.text)
                assert answer.status_code == 200, answer.text
                return answer.json()  # type: ignore[no-any-return]

            hosts = get("/api/v1/hosts")
            assert hosts["total"] == 2 and hosts["next_offset"] is None
            first, second = hosts["items"]
            assert (first["host"], first["status"]) == ("sim-000", "ok")
            assert 0 < first["memory_percent"] <= 100 and first["alerts"] == ["memory"]
            page = get("/api/v1/hosts", limit=1)
            assert [h["host"] for h in page["items"]] == ["sim-000"] and page["next_offset"] == 1
            assert get("/api/v1/hosts", limit=1, offset=1)["items"][0]["host"] == "sim-001"

            one = get(f"/api/v1/hosts/{first['ip']}:{first['port']}")
            assert one["host"] == "sim-000" and one["document"]["schema"] == 1
            assert one["document"]["memory"]["total_bytes"] > 0
            assert get("/api/v1/hosts/sim-001")["ip"] == second["ip"]

            top = get("/api/v1/hosts/sim-000/processes")
            assert isinstance(top["top_cpu"], list)  # empty when nothing used CPU in the window
            assert top["top_memory"] and all(p["pid"] and p["name"] for p in top["top_memory"])

            stats = get("/api/v1/hosts/sim-000/stats", since="1h", buckets=12)
            assert stats["samples"] == 1 and stats["attempts"] == 1
            assert stats["memory"]["max"] == pytest.approx(first["memory_percent"])
            assert stats["load"]["min"] is not None and len(stats["series"]["cpu"]) == 12
            since = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
            assert get("/api/v1/hosts/sim-000/stats", since=since)["samples"] == 1

            alerts = get("/api/v1/alerts")["items"]
            assert [(a["host"], a["rule"], a["state"]) for a in alerts] == [
                ("sim-000", "memory", "firing")
            ]
            rounds = get("/api/v1/rounds", limit=5)
            assert [r["hosts_ok"] for r in rounds["items"]] == [2]
            assert rounds["next_before"] is None
            assert get("/api/v1/events", host="sim-000", since="1d") == {
                "items": [],
                "next_after": None,
            }
            assert get("/api/v1/monitoring")["running"] is True
            metrics = http.get("/metrics")
            assert metrics.status_code == 200
            assert 'fleetstat_host_up{host="sim-000"} 1.0' in metrics.text
            schema = http.get("/openapi.json")
            assert "/api/v1/hosts/{host}/stats" in schema.json()["paths"]

            # Errors are JSON with a code and a detail.
            bodies.append(error_of(http.get("/api/v1/hosts/nope"), 404, "unknown_host"))
            bodies.append(error_of(http.get("/api/v1/hosts/sim-000/stats", params={"since": "x"}),
                                   422, "invalid_request"))  # fmt: skip
            bodies.append(error_of(http.get("/api/v1/rounds", params={"limit": 0}),
                                   422, "invalid_request"))  # fmt: skip
            bodies.append(error_of(http.get("/api/v1/nothing"), 404, "not_found"))
            bodies.append(error_of(http.get("/api/v1/hosts", params={"access_token": token}),
                                   400, "token_in_query"))  # fmt: skip
            assert "Authorization header" in bodies[-1]

        with served.client(program_token) as grafana:  # a program's token
            assert grafana.get("/api/v1/hosts").status_code == 200

        # 401s: wrong password, missing, expired, revoked (logout), garbage.
        with served.client() as anonymous:
            wrong = anonymous.post("/api/v1/login", data={"username": "alice",
                                                          "password": "not-it"})  # fmt: skip
            bodies.append(error_of(wrong, 401, "not_authenticated"))
            assert wrong.headers["www-authenticate"] == "Bearer"
            bodies.append(error_of(anonymous.get("/api/v1/hosts"), 401, "not_authenticated"))
            bodies.append(error_of(anonymous.get("/metrics"), 401, "not_authenticated"))
            health = anonymous.get("/api/v1/health")  # no token needed
            assert health.status_code == 200 and health.json()["database"] == "ok"
            assert health.json()["last_round_age_seconds"] >= 0
        time.sleep(1.1)  # the short token's second passes
        with served.client(short_token) as expired:
            bodies.append(error_of(expired.get("/api/v1/hosts"), 401, "not_authenticated"))
        with served.client(token) as http:
            assert http.post("/api/v1/logout").status_code == 204
            bodies.append(error_of(http.get("/api/v1/hosts"), 401, "not_authenticated"))
        with served.client("fst_" + "x" * 43) as forged:
            bodies.append(error_of(forged.get("/api/v1/alerts"), 401, "not_authenticated"))
        code = served.stop()
    finally:
        served.kill()
    assert code == 0, served.log
    for text in [*bodies, served.log]:
        assert_clean(text, PASSWORD, token, program_token)
    # The log says which refusal was which; the bodies never do.
    assert 'event=login_failed user=alice client=127.0.0.1 reason="wrong password"' in served.log
    for reason in ("expired token", "revoked token", "unknown token"):
        assert served.count(f'reason="{reason}') >= 1, served.log
    assert served.count("event=http method=GET path=/api/v1/hosts status=401") >= 3
    assert "access_token" not in served.log


FAILED = "event=login_failed user=alice client=127.0.0.1"
THROTTLED = "event=login_throttled user=alice client=127.0.0.1"


@pytest.mark.sshd
def test_failed_logins_are_throttled_per_address(tmp_path: Path, sim_fleet: SimFleet) -> None:
    config = serve_config(tmp_path, sim_fleet, [0])
    add_user(config)
    served = Served(config, "--no-watch")
    try:
        with served.client() as http:
            for _ in range(5):
                answer = http.post("/api/v1/login", data={"username": "alice", "password": "no"})
                assert answer.status_code == 401
            # The sixth is refused before the password is looked at, even the right one.
            right = http.post("/api/v1/login", data={"username": "alice", "password": PASSWORD})
            detail = error_of(right, 429, "too_many_attempts")
            assert 0 < int(right.headers["retry-after"]) <= 300 and "try again" in detail
        # The server logs each line before it answers, but the test reads its stderr
        # in a thread of its own: a line may still be in the pipe when the answer is
        # here. Wait for them (bounded), then count once the server is gone and its
        # stderr read to the end: exactly five failures and one refusal.
        served.wait_for(FAILED, times=5)
        served.wait_for(THROTTLED)
        assert served.stop() == 0
    finally:
        served.kill()
    assert served.count(FAILED) == 5, served.log
    assert served.count(THROTTLED) == 1, served.log
    assert_clean(served.log, PASSWORD)


@pytest.mark.sshd
def test_tls_from_the_config(tmp_path: Path, sim_fleet: SimFleet) -> None:
    cert, key = self_signed(tmp_path)
    config = serve_config(tmp_path, sim_fleet, [0], http=(
        f'<http certfile="{cert}" keyfile="{key}" metrics-public="true" watch="false"/>'
    ))  # fmt: skip
    served = Served(config)
    try:
        assert served.url.startswith("https://127.0.0.1:")
        with served.client(verify=ssl.create_default_context(cafile=str(cert))) as https:
            assert https.get("/api/v1/health").json()["monitoring"] is False  # watch="false"
            assert https.get("/metrics").status_code == 200  # metrics-public: no token
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not spoken on a TLS port
            httpx.get(served.url.replace("https", "http") + "/api/v1/health", timeout=10)
        assert served.stop() == 0
    finally:
        served.kill()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "fleetstat.xml"
    path.write_text('<fleetstat><client ip="127.0.0.1" username="u" password="p"/></fleetstat>')
    path.chmod(0o600)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run_cli("serve", "-c", str(path), "--listen", f"127.0.0.1:{port}", "--no-watch")
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--listen" in done.stderr
    bad = run_cli("serve", "-c", str(path), "--listen", "127.0.0.1:http")
    assert bad.returncode == 2 and "--listen" in bad.stderr


def test_user_and_token_commands(tmp_path: Path) -> None:
    path = tmp_path / "fleetstat.xml"
    path.write_text('<fleetstat><client ip="127.0.0.1" username="u" password="p"/></fleetstat>')
    path.chmod(0o600)
    config = str(path)
    add_user(path, "alice")
    again = run_cli("user", "add", "alice", "-c", config, "--password-env", "FS_PW",
                    env={"FS_PW": PASSWORD})  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr
    short = run_cli("user", "add", "bob", "-c", config, "--password-env", "FS_PW",
                    env={"FS_PW": "short"})  # fmt: skip
    assert short.returncode == 2 and "too short" in short.stderr
    unset = run_cli("user", "add", "bob", "-c", config, "--password-env", "FS_UNSET_PW")
    assert unset.returncode == 2 and "FS_UNSET_PW" in unset.stderr
    assert "alice" in run_cli("user", "list", "-c", config).stdout
    assert run_cli("user", "remove", "alice", "-c", config).returncode == 0
    assert run_cli("user", "remove", "alice", "-c", config).returncode == 1

    created = run_cli("token", "create", "--name", "ci", "--expires", "90d", "-c", config)
    assert created.returncode == 0 and created.stdout.startswith("fst_")
    assert "not shown again" in created.stderr
    listed = run_cli("token", "list", "-c", config).stdout
    assert "ci" in listed and "expires" in listed and created.stdout.strip() not in listed
    assert run_cli("token", "revoke", "--name", "ci", "-c", config).returncode == 0
    assert "revoked" in run_cli("token", "list", "-c", config).stdout
    assert run_cli("token", "revoke", "--name", "ci", "-c", config).returncode == 1
    bad = run_cli("token", "create", "--name", "x", "--expires", "soon", "-c", config)
    assert bad.returncode == 2 and "--expires" in bad.stderr
