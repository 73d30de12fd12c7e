"""Entry point of the probe: collect, compress, seal, print one line.

    python3 -I -S probe.pyz --recipient <b64url X25519 public key, 32 bytes>
        --challenge <b64url 16 bytes> [--since JSON] [--top N] [--top-when LIMITS]
        [--cpu-window SECONDS] [--events MAX] [--recipient-comb B64URL]

stdout carries exactly one line, ``FLEETSTAT/1 <sealed>``; diagnostics go to
stderr. Exit 0 when the line was printed, 2 on bad arguments, 1 when sealing
failed. Standard library only, Python 3.6+ (see docs/contracts.md).
"""

import binascii
import sys
import zlib

from .common import Context
from .registry import build_document

RECIPIENT_BYTES = 32  # raw X25519 public key (RFC 7748)
CHALLENGE_BYTES = 16
MAX_CPU_WINDOW = 10.0
MAX_TOP = 100
MAX_EVENTS = 100000
USAGE = (
    "usage: python3 probe.pyz --recipient B64URL --challenge B64URL"
    " [--since JSON] [--top N] [--top-when LIMITS] [--cpu-window SECONDS] [--events MAX]"
    " [--recipient-comb B64URL]\n"
)
HELP = """
fleetstat probe: collect this machine's statistics and print them sealed.

  --recipient B64URL      the server's X25519 public key (32 bytes)
  --challenge B64URL      16 random bytes chosen by the server for this run
  --since JSON            bookmark for event collectors (passed through)
  --events MAX            read at most MAX security events (0: none); default
                          500 on Windows, none elsewhere
  --top N                 processes per top list (default 5)
  --top-when LIMITS       read the process table only when the document
                          reaches one of these, e.g. cpu=20,memory=50
                          (also cpu-core=, load= per core, swap=,
                          cgroup-memory=); none: never;
                          default: always
  --cpu-window SECONDS    CPU sampling window (default 0.25)
  --recipient-comb B64URL the server's precomputed table for --recipient
                          (1440 bytes): sealing costs less CPU with it

Prints one line, FLEETSTAT/1 <sealed>; exit 0 when printed, 2 on bad
arguments, 1 when sealing failed.
"""
# Not argparse: on the host, argparse (with the gettext catalogue lookup and
# shutil it pulls in when building the parser) costs about 6 ms of CPU per run,
# a tenth of the probe, measured with python3.11 -X importtime.
OPTIONS = (
    "--recipient", "--challenge", "--since", "--top", "--top-when", "--cpu-window", "--events",
    "--recipient-comb",
)  # fmt: skip
COMB_BYTES = 15 * 3 * 32  # _x25519.COMB_BYTES, without importing it to parse
TOP_WHEN_NAMES = ("cgroup-memory", "cpu", "cpu-core", "load", "memory", "swap")
_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class UsageError(Exception):
    pass


class HelpRequested(Exception):
    pass


def b64url_bytes(text, length, what):
    """Decode unpadded base64url and insist on ``length`` bytes."""
    if not text or not _B64URL_ALPHABET.issuperset(text):
        raise UsageError("%s is not base64url" % what)
    padded = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
    try:
        raw = binascii.a2b_base64(padded.encode("ascii"))
    except (binascii.Error, ValueError):
        raise UsageError("%s is not base64url" % what) from None
    if len(raw) != length:
        raise UsageError("%s must be %d bytes, got %d" % (what, length, len(raw)))
    return raw


def split_options(argv):
    """``{"--name": "value"}`` from ``--name value`` or ``--name=value``.

    A value is always the next word, even when it starts with "-": base64url
    keys and challenges do, one time in 64.
    """
    values = {}
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in ("-h", "--help"):
            raise HelpRequested()
        if name not in OPTIONS:
            raise UsageError("unrecognized argument %r" % argv[i])
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError("%s needs a value" % name)
            i += 1
            value = argv[i]
        values[name] = value
        i += 1
    return values


def _number(values, name, kind, default):
    if name not in values:
        return default
    try:
        return kind(values[name])
    except ValueError:
        raise UsageError("%s must be a number, got %r" % (name, values[name])) from None


def parse_top_when(text):
    """``"cpu=20,memory=50"`` -> ``{"cpu": 20.0, "memory": 50.0}``; ``"none"`` -> ``{}``."""
    if text.strip().lower() == "none":
        return {}
    limits = {}
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        if name not in TOP_WHEN_NAMES or not eq:
            raise UsageError(
                "--top-when takes NAME=LIMIT,... with NAME one of %s, or none; got %r"
                % (", ".join(TOP_WHEN_NAMES), part)
            )
        try:
            limit = float(value)
        except ValueError:
            raise UsageError("--top-when %s= must be a number, got %r" % (name, value)) from None
        if not limit >= 0:  # also refuses nan
            raise UsageError("--top-when %s= must be at least 0" % name)
        limits[name] = limit
    return limits


def parse_args(argv):
    """(recipient, challenge, since, top, cpu_window, events, top_when, comb);
    raises UsageError/HelpRequested."""
    values = split_options(argv)
    for required in ("--recipient", "--challenge"):
        if required not in values:
            raise UsageError("%s is required" % required)
    recipient = b64url_bytes(values["--recipient"], RECIPIENT_BYTES, "--recipient")
    challenge = b64url_bytes(values["--challenge"], CHALLENGE_BYTES, "--challenge")
    since = None
    if "--since" in values:
        import json  # only event collectors take a bookmark; see encode_document

        try:
            since = json.loads(values["--since"])
        except ValueError:
            raise UsageError("--since is not valid JSON") from None
    top = _number(values, "--top", int, 5)
    if not 0 <= top <= MAX_TOP:
        raise UsageError("--top must be between 0 and %d" % MAX_TOP)
    cpu_window = _number(values, "--cpu-window", float, 0.25)
    if not 0 <= cpu_window <= MAX_CPU_WINDOW:  # also refuses nan
        raise UsageError("--cpu-window must be between 0 and %g seconds" % MAX_CPU_WINDOW)
    events = _number(values, "--events", int, None)
    if events is not None and not 0 <= events <= MAX_EVENTS:
        raise UsageError("--events must be between 0 and %d" % MAX_EVENTS)
    top_when = parse_top_when(values["--top-when"]) if "--top-when" in values else None
    comb = None
    if "--recipient-comb" in values:
        comb = b64url_bytes(values["--recipient-comb"], COMB_BYTES, "--recipient-comb")
    return recipient, challenge, since, top, cpu_window, events, top_when, comb


def _unserializable(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


def dumps(doc):
    """``json.dumps(doc, separators=(",", ":"))``, without importing json.

    The json package imports re (and with it enum, functools, collections):
    about 5 ms of CPU at every probe start, for one call. Its C encoder, the
    ``_json`` extension that json.dumps itself uses, is called directly with
    the arguments json.encoder passes it (unchanged from 3.6 to 3.13); any
    surprise (no ``_json`` in this build, another signature) falls back to json.
    """
    try:
        import _json

        encode = _json.make_encoder(
            None, _unserializable, _json.encode_basestring_ascii, None, ":", ",",
            False, False, True,
        )  # fmt: skip
        return "".join(encode(doc, 0))
    except Exception:
        import json

        return json.dumps(doc, separators=(",", ":"))


_SMALL_DOCUMENT = 8192


def encode_document(doc):
    """The plaintext before sealing: zlib(compact UTF-8 JSON).

    A typical Linux document is 3-5 KB of JSON. zlib's defaults (32 KiB window,
    memLevel 8) allocate and clear about 270 KB of state for it, 0.2-0.3 ms of the
    host's CPU; an 8 KiB window with memLevel 4 compresses it as well. Larger
    documents (security events) get the defaults. Any window is plain zlib to
    the server's decompressor.
    """
    data = dumps(doc).encode("utf-8")
    if len(data) > _SMALL_DOCUMENT:
        return zlib.compress(data)
    packer = zlib.compressobj(6, zlib.DEFLATED, 13, 4)
    return packer.compress(data) + packer.flush()


def main(argv=None):
    try:
        recipient, challenge, since, top, cpu_window, events, top_when, comb = parse_args(
            sys.argv[1:] if argv is None else list(argv)
        )
    except HelpRequested:
        sys.stdout.write(USAGE + HELP)
        return 0
    except UsageError as exc:
        sys.stderr.write(USAGE + "probe: error: %s\n" % exc)
        return 2

    ctx = Context(top=top, since=since, cpu_window=cpu_window, events_max=events, top_when=top_when)
    plaintext = encode_document(build_document(ctx))

    try:
        from .seal import format_line, seal

        line = format_line(seal(plaintext, recipient, challenge, recipient_comb=comb))
    except Exception as exc:
        sys.stderr.write("probe: sealing failed: %s: %s\n" % (type(exc).__name__, exc))
        return 1
    sys.stdout.write(line.rstrip("\n") + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
