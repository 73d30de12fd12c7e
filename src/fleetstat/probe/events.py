"""Security events: the shape every source shares and the collector that picks one.

The document's ``security_events`` is ``{"source", "events", "bookmark",
"truncated", "warning"}``; each event is ``{event_key, source, record_id,
occurred_at, event_id, level, provider, computer, account, source_address,
logon_type, summary, data}`` (missing values null), whether it came from the
Windows Security log (windows_events.py) or the systemd journal / auth.log
(linux_events.py), so storage, mail and reports treat them alike.

When it runs: on Windows always (the assignment mails Windows security events
on every run), unless the server passes ``--events 0``; elsewhere only when the
server passes ``--events MAX`` (the client has ``<events enabled="true"/>``).
``--since`` carries the bookmark the server derived from the events it stored;
without one, the last 24 hours are read, newest first.
"""

from .common import Collector

DEFAULT_MAX = 500
FIRST_RUN_SECONDS = 24 * 3600
FIELDS = (
    "event_key",
    "source",
    "record_id",
    "occurred_at",
    "event_id",
    "level",
    "provider",
    "computer",
    "account",
    "source_address",
    "logon_type",
    "summary",
    "data",
)


def make_event(**values):
    """An event with every field present: what was not given is null."""
    event = dict.fromkeys(FIELDS)
    event.update(values)
    if event["data"] is None:
        event["data"] = {}
    return event


def events_family(source, events, bookmark, truncated, warning=None):
    return {
        "security_events": {
            "source": source,
            "events": events,
            "bookmark": bookmark,
            "truncated": bool(truncated),
            "warning": warning,
        }
    }


def max_events(ctx, platform):
    """How many events this run may return; 0 when they are not wanted."""
    wanted = getattr(ctx, "events_max", None)
    if wanted is None:
        return DEFAULT_MAX if platform == "windows" else 0
    return max(0, int(wanted))


def bookmark_for(ctx, source):
    """The server's bookmark when it is for ``source``, else None (read as a first run)."""
    since = getattr(ctx, "since", None)
    if isinstance(since, dict) and since.get("source") == source:
        return since
    return None


def events_collector(platform, ctx):
    """The security_events collector when this run wants events, else None."""
    if platform not in ("windows", "linux") or not max_events(ctx, platform):
        return None

    def collect(ctx, started=None):
        limit = max_events(ctx, platform)
        if platform == "windows":
            from .windows_events import collect_windows_events

            return collect_windows_events(ctx, limit)
        from .linux_events import collect_linux_events

        return collect_linux_events(ctx, limit)

    return Collector("security_events", [platform], ["security_events"], collect)
