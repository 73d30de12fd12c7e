"""``<alert .../>`` elements to :class:`AlertRule` (issue 3: types, limits, hysteresis)."""

from __future__ import annotations

from typing import cast, get_args

from fleetstat.config.model import AlertRule, AlertScope, AlertType, AlertWindow
from fleetstat.config.reader import Reader
from fleetstat.config.source import Node
from fleetstat.config.validate import (
    parse_bool,
    parse_int,
    parse_load,
    parse_percent,
    parse_seconds,
    suggest,
)

ALERT_TYPES: tuple[str, ...] = get_args(AlertType)


def build_alert(reader: Reader, node: Node) -> AlertRule | None:
    kind = reader.require(node, "type", 'type="cpu"')
    if kind is not None and kind not in ALERT_TYPES:
        close = suggest(kind, ALERT_TYPES)
        hint = f'did you mean "{close}"? ' if close else ""
        reader.issue(
            node.attr_line("type"),
            f"unknown alert type {kind!r}",
            f"{hint}use one of {', '.join(ALERT_TYPES)}",
        )
        kind = None
    for_rounds = reader.get(node, "for", lambda r: parse_int(r, 1), 1)
    resolved = reader.get(node, "resolved", parse_bool, True)
    repeat = reader.get(node, "repeat", lambda r: parse_seconds(r, allow_zero=True), None)
    window = reader.choice(node, "window", get_args(AlertWindow), "short")
    scope = reader.choice(node, "scope", get_args(AlertScope), "host")
    if kind is None:
        return None
    if scope != "host" and kind != "memory":
        reader.issue(
            node.attr_line("scope"),
            f'scope="{scope}" applies to memory, not {kind}',
            "remove scope=",
        )
    if window == "interval" and kind != "cpu":
        reader.issue(
            node.attr_line("window"),
            f'window="interval" applies to cpu, not {kind}',
            "remove window=",
        )
    mount = node.attrib.get("mount")
    if mount is not None and kind != "disk":
        reader.issue(
            node.attr_line("mount"),
            f"mount= applies to disk alerts, not {kind}",
            'remove mount=, or use type="disk"',
        )
        mount = None
    elif mount is not None and not _is_mount(mount):
        reader.issue(
            node.attr_line("mount"),
            f"mount {mount!r} is not an absolute path",
            'write a mount point such as mount="/var" (or "C:" on Windows)',
        )
        mount = None
    limit, clear = _limits(reader, node, kind)
    return AlertRule(
        type=cast(AlertType, kind),
        limit=limit,
        mount=mount,
        for_rounds=for_rounds,
        clear=clear,
        notify_resolved=resolved,
        repeat_seconds=repeat,
        window=cast(AlertWindow, window),
        scope=cast(AlertScope, scope),
        line=node.line,
    )


def _limits(reader: Reader, node: Node, kind: str) -> tuple[float | None, float | None]:
    """``(limit, clear)`` for a rule, in the unit of its type."""
    if kind == "unreachable":
        for name in ("limit", "clear"):
            if name in node.attrib:
                reader.warn(
                    node.attr_line(name),
                    f"{name}= is ignored on an unreachable alert",
                    "remove it: the alert fires when the host does not answer",
                )
        return None, None
    parse = parse_load if kind == "load" else parse_percent
    example = 'limit="2"' if kind == "load" else 'limit="80%"'
    if reader.require(node, "limit", example) is None:
        return None, None
    limit = reader.get(node, "limit", parse, None)
    clear = reader.get(node, "clear", parse, None)
    if limit is not None and clear is not None and clear >= limit:
        reader.issue(
            node.attr_line("clear"),
            f"clear ({clear:g}) must be below the limit ({limit:g})",
            "set clear a little under the limit, or remove it to clear at the limit",
        )
        clear = None
    return limit, clear


def _is_mount(mount: str) -> bool:
    return mount.startswith("/") or (len(mount) >= 2 and mount[0].isalpha() and mount[1] == ":")
