"""Checks for single attribute values. Each returns the clean value or raises :class:`Invalid`.

Pure functions on strings (no file system, no network), so each rule is tested
on its own and the element builders in ``parse.py`` stay short.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from fleetstat.units import parse_duration, parse_size


class Invalid(ValueError):
    """A value is wrong: ``message`` says how, ``fix`` what to write instead."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message)


def suggest(name: str, valid: Iterable[str]) -> str | None:
    """The closest valid spelling of ``name`` (case-insensitive), if one is close enough."""
    options = {option.lower(): option for option in valid}
    wanted = name.lower().replace("_", "-")
    if wanted in options:
        return options[wanted]
    matches = difflib.get_close_matches(wanted, list(options), n=1, cutoff=0.6)
    return options[matches[0]] if matches else None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise Invalid(f"{text!r} is not true or false", 'write "true" or "false"')


def parse_int(text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise Invalid(f"{text!r} is not a whole number", f"write a number such as {low}") from None
    if value < low or (high is not None and value > high):
        wanted = f"in {low}..{high}" if high is not None else f"of {low} or more"
        raise Invalid(f"{value} is out of range", f"use a number {wanted}")
    return value


def parse_seconds(text: str, *, allow_zero: bool = False) -> float:
    """A duration (``30s``, ``5m``, ``4h``, ``90``) in seconds; > 0 unless ``allow_zero``."""
    try:
        value = parse_duration(text)
    except ValueError:
        raise Invalid(f"{text!r} is not a duration", "write 30s, 5m, 4h, 7d or seconds") from None
    if value == 0 and not allow_zero:
        raise Invalid(f"{text!r} is zero", "give a duration greater than zero, such as 30s")
    return value


# keep-connections="on" (or "true", "yes"): the default duration of ``watch`` and ``serve``.
DEFAULT_KEEP_CONNECTIONS = 600.0


def parse_keep(text: str) -> float:
    """``keep-connections``: how long an idle connection is kept; ``off`` (0) keeps none."""
    value = text.strip().lower()
    if value in _FALSE:
        return 0.0
    if value in _TRUE:
        return DEFAULT_KEEP_CONNECTIONS
    try:
        return parse_seconds(text, allow_zero=True)
    except Invalid:
        raise Invalid(
            f"{text!r} is neither a duration nor off",
            'write a duration such as "10m", or "off" to log in afresh every round',
        ) from None


def parse_listen(text: str, default_port: int = 8760) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` or ``:PORT`` (all interfaces) as (host, port)."""
    raw = text.strip()
    fix = "write 127.0.0.1:8760, [::1]:8760, 0.0.0.0:8760 or :8760"
    if not raw:
        raise Invalid("empty listen address", fix)
    host, port_text = raw, ""
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0 or (raw[end + 1 :] and not raw[end + 1 :].startswith(":")):
            raise Invalid(f"{text!r} is not a listen address", fix)
        host, port_text = raw[1:end], raw[end + 2 :]
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    elif raw.count(":") > 1:  # a bare IPv6 address
        host = raw
    if port_text:
        try:  # 0: a free port the kernel picks (tests; the log names it)
            port = parse_int(port_text, 0, 65535)
        except Invalid as exc:
            raise Invalid(f"{text!r}: {exc.message}", fix) from None
    else:
        port = default_port
    try:
        host = check_host(host or "0.0.0.0")
    except Invalid:
        raise Invalid(f"{text!r} is not a listen address", fix) from None
    return host, port


def parse_percent(text: str) -> float:
    """``"50%"``, ``"50"`` or ``"12.5%"`` as a number in 0..100."""
    number = text.strip().removesuffix("%").strip()
    try:
        value = float(number)
    except ValueError:
        raise Invalid(f"{text!r} is not a percentage", 'write a percentage such as "80%"') from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise Invalid(f"{text!r} is not within 0-100%", 'write a percentage such as "80%"')
    return value


def parse_load(text: str) -> float:
    """A per-core load average such as ``"1.5"``: a plain number greater than zero."""
    if "%" in text:
        raise Invalid(
            f"{text!r}: a load limit is a load average per CPU core, not a percentage",
            'write a number such as "1.5" (load 1.5 on each core)',
        )
    try:
        value = float(text.strip())
    except ValueError:
        raise Invalid(f"{text!r} is not a number", 'write a per-core load such as "1.5"') from None
    if not math.isfinite(value) or value <= 0:
        raise Invalid(f"{text!r} must be greater than 0", 'write a per-core load such as "1.5"')
    return value


# RFC 1123 section 2.1: letters, digits and hyphens, 1-63 per label, no hyphen at the ends.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_host(text: str) -> str:
    """An IPv4/IPv6 address (returned in canonical form) or an RFC 1123 host name."""
    value = text.strip()
    fix = 'write an IP address such as "10.0.0.5" or "fd00::5", or a host name such as "web-01"'
    if value.startswith("[") and value.endswith("]"):
        raise Invalid(f"{text!r}: no brackets around an IPv6 address", f'write ip="{value[1:-1]}"')
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not value:
        raise Invalid("empty address", fix)
    if re.fullmatch(r"[\d.]+", value):
        # Looks like IPv4 but is not one (10.0.0.256, 10.0.5); RFC 3696 section 2
        # also rules out an all-numeric top-level label, so it is no host name either.
        raise Invalid(f"{text!r} is not a valid IPv4 address", fix)
    if ":" in value:
        raise Invalid(f"{text!r} is not a valid IPv6 address (the port goes in port=)", fix)
    name = value.removesuffix(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise Invalid(f"{text!r} is neither an IP address nor a valid host name", fix)
    return name.lower()


def check_port(text: str) -> int:
    try:
        return parse_int(text, 1, 65535)
    except Invalid as exc:
        raise Invalid(exc.message, 'use a port in 1..65535, usually "22"') from None


# Practical, not RFC 5322 in full: dot-atom local part, and a domain with a dot
# (RFC 1123 labels, alphabetic or punycode TLD) unless it is "localhost".
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:(?!-)[A-Za-z0-9-]{1,63}(?<!-)\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
_MAIL = re.compile(rf"{_LOCAL}@(?:{_DOMAIN}|localhost)", re.IGNORECASE)
MAIL_FIX = 'write addresses such as "ops@example.com", several separated by commas'


def check_mail(address: str) -> str:
    if len(address) > 254 or not _MAIL.fullmatch(address):
        raise Invalid(f"{address!r} is not a valid mail address", MAIL_FIX)
    return address


def split_mail(text: str) -> list[str]:
    """Addresses separated by commas, spaces (or semicolons, as Outlook writes them)."""
    addresses = [part for part in re.split(r"[,;\s]+", text) if part]
    if not addresses:
        raise Invalid("no mail address given", MAIL_FIX)
    bad = [address for address in addresses if len(address) > 254 or not _MAIL.fullmatch(address)]
    if bad:
        listed = ", ".join(repr(address) for address in bad)
        raise Invalid(f"not a valid mail address: {listed}", MAIL_FIX)
    return addresses


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise Invalid(
            f"{name!r} is not an environment variable name",
            'use letters, digits and _, such as password-env="WEB01_PASSWORD"',
        )
    return name


# A spool smaller than this cannot hold one round of a few hundred hosts.
MIN_SPOOL_BYTES = 1024**2


def parse_spool_size(text: str) -> int:
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise Invalid(str(exc), 'write max-size="1GB" (binary units: 1GB = 1024 MB)') from None
    if size < MIN_SPOOL_BYTES:
        raise Invalid(f"{text!r} is under 1MB", 'write max-size="1GB" or at least "1MB"')
    return size


def default_spool_directory(config_file: Path, env: Mapping[str, str]) -> Path:
    """Where a config's spool lives when ``<spool dir>`` is not given.

    Under the state directory systemd gives the service (``StateDirectory=`` sets
    ``$STATE_DIRECTORY``), else the XDG state directory (``$XDG_STATE_HOME``,
    default ``~/.local/state``), in ``fleetstat/spool-<config name>-<8 hex>``: the
    hex digits are a digest of the config's absolute path, so two configs (two
    databases) never share a spool.
    """
    base_text = (env.get("STATE_DIRECTORY") or "").split(":")[0]
    if base_text:
        base = Path(base_text)
    else:
        xdg = env.get("XDG_STATE_HOME") or ""
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()
        state = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".local" / "state"
        base = state / "fleetstat"
    digest = hashlib.sha256(str(config_file).encode("utf-8", "surrogateescape")).hexdigest()
    return base / f"spool-{config_file.stem}-{digest[:8]}"


_ZONE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
ZONE_FIX = 'a name of letters, digits, "-", "_" or "." (up to 64), such as zone="dc2"'


def check_zone(text: str) -> str:
    """A zone's name (``zone="dc2"``, ``worker --zone dc2``): it goes into queue names."""
    value = text.strip()
    if not _ZONE.fullmatch(value):
        raise Invalid(f"{text!r} is not a zone name", f"write {ZONE_FIX}")
    return value


BROKER_SCHEMES = ("amqp", "amqps", "redis", "rediss")
BROKER_FIX = (
    'write broker="amqp://user:password@rabbitmq.example.com:5672/" (RabbitMQ) '
    'or broker="redis://redis.example.com:6379/0" (Redis)'
)


def check_broker(text: str) -> str:
    """The message broker's URL: RabbitMQ (``amqp://``) or Redis (``redis://``)."""
    from urllib.parse import urlsplit

    value = text.strip()
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise Invalid(f"{text!r} is not a URL ({exc})", BROKER_FIX) from None
    if parts.scheme not in BROKER_SCHEMES:
        raise Invalid(
            f"the broker's scheme {parts.scheme or '(none)'!r} is not one fleetstat speaks",
            BROKER_FIX,
        )
    if not parts.hostname:
        raise Invalid(f"{text!r} names no host", BROKER_FIX)
    return value


_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_queue_prefix(text: str) -> str:
    value = text.strip()
    if not _PREFIX.fullmatch(value):
        raise Invalid(
            f"{text!r} is not a queue prefix",
            'write letters, digits, "-", "_" or "." (up to 64), such as queue-prefix="fleetstat"',
        )
    return value
