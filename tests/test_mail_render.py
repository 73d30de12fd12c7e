"""Alert mail text for the probe's newer figures: the busiest core, and the top
process lists (ranked over the window and by CPU time since start; why a list
is empty when it is). Pure rendering: a result and notices in, text out."""

from __future__ import annotations

from alert_helpers import T0, client, ok, rule

from fleetstat.alerts.metrics import measure
from fleetstat.mail import Notice, render_message


def _render(rule_, result):  # type: ignore[no-untyped-def]
    found = measure(rule_, result)
    assert found is not None
    notice = Notice("firing", rule_, found.value, T0, since=T0, detail=found.detail)
    return render_message(result, [notice])


def test_a_cpu_core_alert_names_the_core_and_lists_the_cpu_consumers() -> None:
    core = rule("cpu-core", 95)
    result = ok(
        client(core),
        cpu={"used_percent": 3.2, "busiest_core": 17, "busiest_core_percent": 100.0},
    )
    message = _render(core, result)
    assert message.subject == "[fleetstat] FIRING cpu-core cpu17 100% > 95% on web-01 (10.0.0.5)"
    assert "FIRING  cpu-core cpu17\n  value:  100% busiest CPU core busy\n" in message.body
    assert "  limit:  95%\n" in message.body
    assert "Top CPU consumers:" in message.body and "nginx" in message.body


def test_the_top_lists_show_window_share_and_cpu_time_since_start() -> None:
    cpu = rule("cpu", 10)
    body = _render(cpu, ok(client(cpu))).body
    assert "Processes: 187 (1 zombie)\n" in body
    assert "  (CPU% over the probe's 0.25 s window, TIME since the process started)\n" in body
    assert "      PID  USER           CPU%       TIME        RSS  COMMAND\n" in body
    assert "      812  www-data        8.0   30:32.40   10.0 MiB  nginx\n" in body
    assert "        1  root            0.0    1:35.10   12.0 MiB  systemd\n" in body
    assert "Top memory consumers:" not in body


def _processes(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"count": 40, "zombies": 0, "top_cpu": [], "top_memory": []}
    return {**base, **fields}


def test_an_empty_list_says_why() -> None:
    cpu, memory = rule("cpu", 10), rule("memory", 50)
    host = client(cpu, memory)
    not_read = _processes(top_cpu=None, top_memory=None, reason="below cpu 20")
    body = _render(cpu, ok(host, processes=not_read)).body
    assert "Top CPU consumers:\n  none: the probe did not read the process table on this run" in (
        body
    )
    assert "(below cpu 20); it reads it when its own short sample reaches" in body
    body = _render(cpu, ok(host, processes=_processes())).body
    assert "  none: no process the probe could read had used any CPU time\n" in body
    body = _render(memory, ok(host, processes=_processes())).body
    assert "  none: no process the probe could read had resident memory\n" in body
    failed = ok(host, processes=None, errors={"processes": "PermissionError: \x1b[31mdenied\n"})
    body = _render(cpu, failed).body
    # The host's error text is shown as the boundary cleaned it: no escape, no line break.
    shown = "PermissionError: \u241b[31mdenied\u240a"
    assert f"  none: the probe could not read the process table ({shown})\n" in body
    assert "Processes:" not in body
    windows = ok(host, processes=None, errors={})
    assert "  none: this host's probe does not report processes\n" in _render(cpu, windows).body


def test_cpu_time_reads_like_tops() -> None:
    from fleetstat.mail.render import _cpu_time

    assert [_cpu_time(s) for s in (0, 5.2, 95.1, 3599.99, 3600, 94385.7)] == [
        "0:00.00",
        "0:05.20",
        "1:35.10",
        "59:59.99",
        "1:00:00",
        "26:13:05",
    ]


def test_a_cgroup_memory_alert_says_whose_limit() -> None:
    cgroup = rule("memory", 60, scope="cgroup")
    limited = {"version": 2, "path": "/docker/abc", "limit_bytes": 2**29, "used_percent": 70.0}
    message = _render(cgroup, ok(client(cgroup), cgroup=limited))
    assert message.subject == "[fleetstat] FIRING memory (cgroup) 70% > 60% on web-01 (10.0.0.5)"
    assert "  value:  70% memory used of the limit of cgroup /docker/abc\n" in message.body
    assert "Top memory consumers:" in message.body
    unlimited = _render(cgroup, ok(client(cgroup), cgroup=None)).body
    assert "  value:  42.5% memory used of the host's (no cgroup limit below its RAM)\n" in (
        unlimited
    )
