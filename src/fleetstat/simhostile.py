"""Hostile hosts for the simulated fleet: validly sealed documents with hostile content.

A monitored host that is compromised (or broken) can send anything, sealed for
the round's ``--recipient`` and ``--challenge``: the server's public key is on
every probe's command line. Each *class* here is one way such a document attacks
the server: it is what the fake ``python3`` of a ``hostile:<class>`` host in
:mod:`fleetstat.simfleet` prints, and what the tests feed the collector.

This file is also copied onto the simulated hosts and run there as a script by
the host's own ``python3 -I -S`` (standard library only, Python 3.6 syntax): it
takes the probe zipapp from stdin like the real bootstrap does, seals with the
probe's own sealing code from that zipapp, and prints one ``FLEETSTAT/1`` line::

    python3 -I -S simhostile.py CLASS [the probe's arguments ...] < probe.pyz

The classes (``CLASSES``), by what they attack:

- ``strings``: NUL, unpaired surrogates (text no database can encode), terminal
  escapes (window title, clear screen, OSC 8 links, a C1 CSI), bidi overrides and
  CR/LF header injection, in every text field a person or a mail header sees;
- ``markup``: printable text that is markup or a formula elsewhere: rich markup
  (``[link=...]``, ``[blink]``, a stray ``[/]``) and spreadsheet formulas;
- ``html``: HTML that would run in a browser (``<script>``, an ``onerror``
  handler, a ``javascript:`` link) in every text field a page shows;
- ``numbers``: integers too large for a float or a column, NaN and infinities,
  1e308 (an average of two overflows), negative sizes, percentages of 250;
- ``timestamps``: times whose UTC conversion overflows, years 1 and 9999, junk;
- ``deep``: a NaN nested 900 levels down (parses, then breaks recursive code);
- ``deeper``: nesting beyond what a JSON parser takes (a ``bad_payload``);
- ``bomb``: about 60 KB that inflate to tens of MB of tiny JSON objects;
- ``flood``: hundreds of thousands of security events nobody asked for;
- ``events``: 300 small events, within the size limit, not asked for;
- ``wide``: lists, maps and strings far longer than any real host sends;
- ``types``: a family of the wrong kind (a ``bad_payload`` naming the field);
- ``schema``: a schema the server does not speak;
- ``stderr``: a probe that fails with escapes and markup on stderr;
- ``garbage``: no envelope at all, escapes and markup on stdout;
- ``endless``: stdout without an end (``ENDLESS_BYTES``, far more than any
  document may take): the transport stops reading at the client's limit.
"""

import json
import sys
import zlib

CLASSES = (
    "strings",
    "markup",
    "html",
    "numbers",
    "timestamps",
    "deep",
    "deeper",
    "bomb",
    "flood",
    "events",
    "wide",
    "types",
    "schema",
    "stderr",
    "garbage",
    "endless",
)
# Classes whose document the server stores (sanitised); the others end as a failed row.
STORED = ("strings", "markup", "html", "numbers", "timestamps", "deep", "events", "wide")
# Classes that send no sealed document at all.
NO_DOCUMENT = ("stderr", "garbage", "endless")
# What an endless host writes at most (it stops sooner when the channel closes):
# more than the transport's own 16 MiB ceiling.
ENDLESS_BYTES = 64 * 1024 * 1024
# Sequences a terminal would act on: set the window title, clear the screen,
# an OSC 8 hyperlink, a C1 CSI (8-bit) clearing the screen, a bell.
ESCAPES = (
    "\x1b]0;PWNED-TITLE\x07",
    "\x1b[2J\x1b[H",
    "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "\x9b2J",
    "\x07",
)
MARKUP = ("[link=https://evil.example/]click[/link]", "[blink]BLINK[/blink]", "[/]", "[bold red]x")
FORMULAS = ('=HYPERLINK("https://evil.example/","x")', "+1+1", "-2+3", "@SUM(1)", "\t=1+1")
# Sets window.fleetstatPwned if a page ever runs it (the browser tests look).
HTML = (
    '<script>window.fleetstatPwned=1</script><img src=x onerror="window.fleetstatPwned=2">'
    '<a href="javascript:window.fleetstatPwned=3">x</a>&amp;'
)
HEADER_INJECTION = "\r\nBcc: victim@evil.example\r\nX-Injected: yes"
NASTY = "".join(ESCAPES) + "\x00nul\ud800lone\u202ereversed\u2028sep" + HEADER_INJECTION


def base_document(name, collected_at="2026-11-22T10:00:00Z"):
    """A plausible Linux document: every family present, memory at 91 % (alerts fire)."""
    return {
        "schema": 1,
        "probe_version": "0.1.0",
        "collected_at": collected_at,
        "platform": "linux",
        "host": {"hostname": name, "os": "Debian GNU/Linux 12 (bookworm)",
                 "kernel": "6.1.0-18-amd64", "arch": "x86_64", "python": "3.11.2"},
        "memory": {"total_bytes": 8 << 30, "available_bytes": 755914244, "used_bytes": 7834020924,
                   "used_percent": 91.2},
        "swap": {"total_bytes": 1 << 30, "used_bytes": 0, "free_bytes": 1 << 30,
                 "used_percent": 0.0},
        "cpu": {"count": 2, "used_percent": 12.5, "window_seconds": 0.25,
                "counters": {"user_seconds": 100.0, "idle_seconds": 900.0},
                "total_seconds": 1000.0, "busy_seconds": 100.0},
        "uptime_seconds": 1000.0,
        "boot_time": "2026-11-22T09:43:20Z",
        "load": {"avg1": 0.5, "avg5": 0.4, "avg15": 0.3, "per_core1": 0.25},
        "disks": [{"mount": "/", "device": "/dev/vda1", "fstype": "ext4",
                   "total_bytes": 40 << 30, "used_bytes": 10 << 30, "free_bytes": 30 << 30,
                   "used_percent": 25.0}],
        "processes": {"top_cpu": [], "top_memory": [
            {"pid": 4242, "name": "hog", "user": "root", "cpu_percent": 1.0,
             "rss_bytes": 6 << 30}], "window_seconds": 0.25, "reason": "memory 91.2 >= 1"},
        "security_events": None,
        "collectors": {"memory": {"ok": True, "duration_seconds": 0.0001}},
        "errors": {},
    }  # fmt: skip


def _event(key, text):
    return {"event_key": key, "source": "authlog", "record_id": 1, "event_id": 4625,
            "occurred_at": "2026-11-22T09:59:00Z", "level": "warning", "provider": text,
            "computer": text, "account": text, "source_address": text, "logon_type": 3,
            "summary": text, "data": {"kind": "ssh_failed", "message": text}}  # fmt: skip


def _texts(doc, text):
    """Put ``text`` in every field a table, a report or a mail shows."""
    doc["host"].update(hostname=text, os=text, kernel=text)
    doc["disks"].append(
        {
            "mount": text,
            "device": text,
            "fstype": "ext4",
            "total_bytes": 1 << 30,
            "used_bytes": 1 << 29,
            "free_bytes": 1 << 29,
            "used_percent": 99.0,
        }
    )
    doc["processes"]["top_memory"][0].update(name=text, user=text)
    doc["errors"] = {text: text}
    doc["security_events"] = {"source": "authlog", "events": [_event("authlog:1:1", text)],
                              "bookmark": {"source": "authlog", "note": text},
                              "truncated": False, "warning": text}  # fmt: skip
    return doc


def document(name):
    """The JSON text (before compression) a host of class ``name`` sends, or None."""
    if name == "strings":
        return json.dumps(_texts(base_document("evil"), "host" + NASTY))
    if name == "markup":
        doc = _texts(base_document("evil"), MARKUP[0] + MARKUP[1] + MARKUP[2] + MARKUP[3])
        doc["host"]["hostname"] = FORMULAS[0]
        doc["host"]["os"] = " ".join(MARKUP)
        doc["disks"][1]["mount"] = FORMULAS[1]
        return json.dumps(doc)
    if name == "html":
        return json.dumps(_texts(base_document("evil"), HTML))
    if name == "numbers":
        doc = base_document("numbers")
        text = json.dumps(doc)
        for old, new in (
            ('"total_bytes": 8589934592', '"total_bytes": 1' + "0" * 400),
            ('"used_percent": 12.5', '"used_percent": 1e999'),
            ('"avg1": 0.5', '"avg1": 1e308'),
            ('"avg5": 0.4', '"avg5": NaN'),
            ('"avg15": 0.3', '"avg15": -Infinity'),
            ('"count": 2', '"count": 1' + "0" * 30),
            ('"uptime_seconds": 1000.0', '"uptime_seconds": -1'),
            ('"used_percent": 91.2', '"used_percent": 250'),
        ):
            text = text.replace(old, new, 1)
        return text.replace('"used_bytes": 0', '"used_bytes": -5', 1)
    if name == "timestamps":
        doc = base_document("timestamps", collected_at="0001-01-01T00:00:00+05:00")
        doc["boot_time"] = "9999-12-31T23:59:59-05:00"
        doc["security_events"] = {
            "source": "authlog",
            "events": [
                dict(_event(f"authlog:1:{i}", "t"), occurred_at=when)
                for i, when in enumerate(
                    ("0001-01-01T00:00:00Z", "2026-13-45T99:99:99Z", "1e308", "9" * 5000)
                )
            ],
        }
        return json.dumps(doc)
    if name in ("deep", "deeper"):
        depth = 900 if name == "deep" else 5000
        text = json.dumps(base_document(name))
        return text[:-1] + ', "nested": ' + "[" * depth + "NaN" + "]" * depth + "}"
    if name == "flood":
        events = ",".join(f'{{"event_key":"k{i}"}}' for i in range(300000))
        family = '"security_events": {"source": "authlog", "events": [' + events + "]}"
        return json.dumps(base_document("flood")).replace('"security_events": null', family)
    if name == "events":
        doc = base_document("events")
        doc["security_events"] = {
            "source": "authlog",
            "events": [_event(f"authlog:9:{i}", "e") for i in range(300)],
        }
        return json.dumps(doc)
    if name == "wide":  # every cap passed, within the size a document may have
        doc = base_document("wide" + "w" * 20000)
        doc["disks"] = [dict(doc["disks"][0], mount=f"/m{i}") for i in range(600)]
        doc["processes"]["top_cpu"] = [{"pid": i, "name": "p"} for i in range(300)]
        doc["errors"] = {f"e{i}": "x" for i in range(200)}
        doc["unknown"] = list(range(3000))
        return json.dumps(doc)
    if name == "types":
        doc = base_document("types")
        doc["memory"] = [91.2]
        return json.dumps(doc)
    if name == "schema":
        return json.dumps(dict(base_document("schema"), schema="1"))
    return None


def payload(name):
    """The plaintext a ``name`` host seals: zlib of its JSON (the bomb is made to measure)."""
    if name == "bomb":
        # 60 MB of "[]," compress about 1000:1; json.loads would build 20 million lists.
        packer = zlib.compressobj(9)
        head = b'{"schema": 1, "host": {"hostname": "bomb"}, "x": ['
        chunk = b"[]," * 100000
        parts = [packer.compress(head)]
        parts += [packer.compress(chunk) for _ in range(200)]
        parts.append(packer.compress(b"[]]}"))
        parts.append(packer.flush())
        return b"".join(parts)
    text = document(name)
    if text is None:
        raise ValueError(f"no document for class {name!r}")
    return zlib.compress(text.encode("utf-8", "surrogatepass"))


def _argument(argv, name):
    index = argv.index(name)
    return argv[index + 1]


def _seal_with_the_probe(probe, plaintext, recipient, challenge):
    """Seal with ``fleetstat_probe.seal`` from the uploaded zipapp (the probe's own code)."""
    import os
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".pyz")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(probe)
        sys.path.insert(0, path)
        from fleetstat_probe import seal  # the probe's own, from the zipapp just written

        raw_key = seal.b64url_decode(recipient)
        return seal.format_line(seal.seal(plaintext, raw_key, seal.b64url_decode(challenge)))
    finally:
        os.unlink(path)


def _endless(out):
    """Write ``ENDLESS_BYTES`` of one long line, until the reader goes away."""
    chunk = b"A" * 65536
    try:
        for _ in range(ENDLESS_BYTES // len(chunk)):
            out.write(chunk)
        out.flush()
    except (BrokenPipeError, OSError):  # the server stopped reading and closed: expected
        return 0
    return 0


def main(argv):
    name, args = argv[0], argv[1:]
    probe = sys.stdin.buffer.read()  # the upload, as the real bootstrap takes it
    if name == "stderr":
        sys.stderr.write("probe: crashed " + NASTY + " " + " ".join(MARKUP) + "\n")
        return 3
    if name == "garbage":
        sys.stdout.write("hello " + "".join(ESCAPES) + " ".join(MARKUP) + "\n")
        return 0
    if name == "endless":
        return _endless(sys.stdout.buffer)
    line = _seal_with_the_probe(
        probe, payload(name), _argument(args, "--recipient"), _argument(args, "--challenge")
    )
    sys.stdout.write(line.rstrip("\n") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
