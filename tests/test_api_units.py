"""Pieces of ``fleetstat serve`` without a server: the /metrics figures of an odd
document, the login throttle, log lines that cannot drive a terminal."""

from __future__ import annotations

from datetime import UTC, datetime

from fleetstat.api.errors import StrictJSONResponse
from fleetstat.api.metrics import MAX_FILESYSTEMS, MAX_LABEL, _series
from fleetstat.api.middleware import _token_in_query
from fleetstat.api.throttle import LoginThrottle
from fleetstat.store.browse import HostFigures
from fleetstat.watch import logfmt

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def figures(document: dict | None, status: str = "ok") -> HostFigures:  # type: ignore[type-arg]
    return HostFigures("10.0.0.5", 22, status, T0, 1 if document else None, T0, document)


def test_metrics_take_only_finite_numbers_from_a_document() -> None:
    hostile = {
        "memory": {"total_bytes": 1000, "used_bytes": 250, "used_percent": "lots"},
        "swap": {"total_bytes": 0, "used_bytes": True, "used_percent": float("nan")},
        "cpu": {"used_percent": 150.0, "count": "2"},
        "load": {"avg1": float("inf"), "avg5": 0.5},
        "disks": [
            {"mount": "/", "total_bytes": 100, "used_bytes": 40},
            {"mount": "/", "total_bytes": 1, "used_bytes": 1},  # a second "/" is dropped
            {"mount": "x" * 1000, "used_percent": 50},
            {"mount": 7, "used_bytes": 1},
            "not a disk",
            *({"mount": f"/m{i}", "used_percent": 1} for i in range(2 * MAX_FILESYSTEMS)),
        ],
    }
    found = _series("web-01", figures(hostile))
    assert found.up == 1.0 and found.last_success == T0.timestamp()
    assert found.values == {
        "memory_total_bytes": 1000.0,
        "memory_used_bytes": 250.0,
        "swap_total_bytes": 0.0,
        "load5": 0.5,
        "memory_used_ratio": 0.25,
        "cpu_busy_ratio": 1.0,  # clamped to 0-1
    }
    assert found.disks[0] == ("/", 40.0, 100.0, 0.4)
    assert found.disks[1] == ("x" * MAX_LABEL, None, None, 0.5)
    assert len(found.disks) <= MAX_FILESYSTEMS
    assert all(isinstance(mount, str) for mount, *_ in found.disks)


def test_a_failed_host_without_a_sample_is_down_and_has_no_figures() -> None:
    found = _series("db-01", figures(None, "timeout"))
    assert (found.up, found.last_success, found.values, found.disks) == (
        0.0,
        T0.timestamp(),
        {},
        [],
    )


def test_throttle_counts_failures_per_address_within_the_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        now[0] += 1
    assert throttle.retry_after("10.0.0.1") == 57  # the first failure leaves at t=60
    assert throttle.retry_after("10.0.0.2") == 0  # another address is not held
    now[0] = 60.5
    assert throttle.retry_after("10.0.0.1") == 0


def test_tokens_in_query_strings_are_recognised() -> None:
    assert _token_in_query(b"access_token=abc")
    assert _token_in_query(b"limit=5&Token=x")
    assert _token_in_query(b"q=fst_AAAA")
    assert not _token_in_query(b"limit=5&since=7d")
    assert not _token_in_query(b"")


def test_log_values_never_carry_control_characters() -> None:
    line = logfmt(user="\x1b]0;owned\x07", path="/api/v1/hosts/a b", ok="alice", note="é")
    assert "\x1b" not in line and "\x07" not in line
    assert line == 'user="\\u001b]0;owned\\u0007" path="/api/v1/hosts/a b" ok=alice note=é'


def test_bodies_built_by_hand_write_nan_and_infinity_as_null() -> None:
    """Errors and /health's 503 (Starlette's JSONResponse would raise: a 500)."""
    body = StrictJSONResponse({"a": float("nan"), "b": [float("-inf"), 1.5], "c": "é"}).body
    assert body == '{"a":null,"b":[null,1.5],"c":"é"}'.encode()
