"""Which collectors run on this platform, and running them into one document.

Each platform module (``linux.py``, ``windows.py``) exposes a
``COLLECTORS`` tuple of :class:`~.common.Collector`; ``common.COLLECTORS`` run
everywhere. The platform module is imported only on its own platform, so a
Linux host never loads (or, on another Python version than the server's,
compiles) Windows code.

Running (:func:`build_document`), node_exporter style: every collector is timed
into ``collectors``; one that raises gets ``errors[name] = "Type: message"``
and its keys set to null, and the others still run. Collectors marked ``final``
(the process lists) run last and see the document so far.
"""

import time

from . import common


def platform_collectors(platform):
    """The platform module's COLLECTORS, or None when the platform has none yet."""
    if platform == "linux":
        from . import linux

        return linux.COLLECTORS
    if platform == "windows":  # sys.platform "win32", see common.platform_name
        from . import windows

        return windows.COLLECTORS
    return None


def collectors_for(platform):
    """(collectors, error) for ``platform``; error is text when it is unsupported."""
    try:
        specific = platform_collectors(platform)
    except ImportError as exc:
        # A round sends each kind of host its own variant of this archive (the
        # server's probe_bundle.PLATFORM_ONLY): a Windows host that its server
        # took for a POSIX one has no Windows module here.
        return list(common.COLLECTORS), (
            "no collectors for platform %r in this probe (%s): if this host runs "
            'Windows, set os="windows" on its client' % (platform, exc)
        )
    if specific is None:
        return list(common.COLLECTORS), "no collectors for platform %r yet" % (platform,)
    # A platform's collector replaces the common one of the same name (windows "host").
    names = set(c.name for c in specific)
    found = [c for c in common.COLLECTORS if c.name not in names] + list(specific)
    return [c for c in found if c.applies_to(platform)], None


def build_document(ctx, platform=None, collectors=None, sleep=None):
    """Run the collectors and return the schema 1 document (a dict).

    The CPU window overlaps the other collectors: the ``begin`` halves (first
    /proc/stat and per-process snapshots) run first, then every one-shot
    collector, then only what is left of ``ctx.cpu_window`` is slept before the
    second snapshots. The probe's wall time is max(window, work), not their sum.
    ``final`` collectors run last, with the document so far. ``sleep`` defaults
    to ``ctx.sleep``.
    """
    sleep = sleep or ctx.sleep
    platform = platform or common.platform_name()
    errors = {}
    if collectors is None:
        collectors, unsupported = collectors_for(platform)
        if unsupported:
            errors["platform"] = unsupported
        if platform == "windows" or getattr(ctx, "events_max", None):
            from .events import events_collector  # compiled only when events may be wanted

            wanted = events_collector(platform, ctx)
            if wanted is not None:
                collectors.append(wanted)
    doc = {
        "schema": common.SCHEMA,
        "probe_version": common.PROBE_VERSION,
        "collected_at": common.utc_iso(ctx.now()),
        "platform": platform,
    }
    for key in common.FAMILY_KEYS:
        doc[key] = None
    timings = {}
    started = {}

    def attempt(collector, step, *args):
        t0 = time.monotonic()
        try:
            return True, step(ctx, *args)
        except Exception as exc:  # one family failing must never stop the rest
            errors[collector.name] = common.error_text(exc)
            for key in collector.keys:
                doc[key] = None
            return False, None
        finally:
            timings[collector.name] = timings.get(collector.name, 0.0) + (time.monotonic() - t0)

    window_start = time.monotonic()
    for c in collectors:
        if c.begin is not None:
            ok, state = attempt(c, c.begin)
            if ok:
                started[c.name] = state
    for c in collectors:
        if c.begin is None and not c.final:
            ok, values = attempt(c, c.collect, None)
            if ok:
                doc.update(values)
    remaining = ctx.cpu_window - (time.monotonic() - window_start)
    if started and remaining > 0:
        sleep(remaining)
    for c in collectors:
        if c.name in started and not c.final:
            ok, values = attempt(c, c.collect, started[c.name])
            if ok:
                doc.update(values)
    for c in collectors:
        if c.final and (c.begin is None or c.name in started):
            ok, values = attempt(c, c.collect, started.get(c.name), doc)
            if ok:
                doc.update(values)

    doc["collectors"] = {
        c.name: {"ok": c.name not in errors, "duration_seconds": round(timings[c.name], 6)}
        for c in collectors
    }
    doc["errors"] = errors
    return doc
