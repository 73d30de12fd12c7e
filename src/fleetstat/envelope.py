"""The wire format between probe and server (docs/envelope.md, version 1).

The probe prints ``FLEETSTAT/1 <base64url(E || nonce || ciphertext)>`` where ``E``
is an ephemeral X25519 public key, the payload key is
``HKDF-SHA256(ikm=X25519(e, S_pub), salt=E || S_pub, info="fleetstat/1 payload")``
and the ciphertext is ChaCha20-Poly1305 (tag appended) with
``aad = "fleetstat/1" || challenge``. Here the server opens it with
``cryptography``; ``fleetstat.probe.seal`` is the probe's standard-library twin
(nothing here imports it: the probe is a leaf that only gets packaged).

Also the server's key files: ``fleetstat keygen`` writes the private key as PKCS8
PEM (mode 0600) and ``<key>.pub`` with the raw public key in base64url.

Every failure to open a line or decode its document raises
:class:`~fleetstat.errors.EnvelopeError` (stored as status ``bad_payload``); key
file problems raise :class:`~fleetstat.errors.KeyFileError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import stat
import zlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetstat.errors import EnvelopeError, KeyFileError
from fleetstat.files import write_atomically

__all__ = [
    "DEFAULT_MAX_DOCUMENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "MAGIC",
    "b64url_decode",
    "b64url_encode",
    "check_key_permissions",
    "decode_document",
    "generate_keypair",
    "inflate",
    "load_private_key",
    "open_line",
    "public_key_b64",
    "public_key_bytes",
    "seal_line",
]

MAGIC = "FLEETSTAT/1"
_PREFIX = MAGIC + " "
_AAD_PREFIX = b"fleetstat/1"
_HKDF_INFO = b"fleetstat/1 payload"
_KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_OVERHEAD = _KEY_SIZE + _NONCE_SIZE + _TAG_SIZE

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
# decode_document's default (tests and tools); the server's limit is per client.
DEFAULT_MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
INFLATE_STEP = 64 * 1024
# A PKCS8 PEM X25519 key is 119 bytes; anything far bigger is not our key file.
_MAX_KEY_FILE_BYTES = 64 * 1024

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")
_AUTH_FAILED = "payload failed authentication (tampered, replayed or sealed for another key)"


def b64url_encode(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Strict inverse of :func:`b64url_encode`: unpadded, canonical; ``ValueError`` otherwise.

    Strict on purpose: ``base64.urlsafe_b64decode`` skips characters outside the
    alphabet and ignores the unused low bits of the last character, so two
    different lines could decode to the same bytes. Here exactly one text encodes
    each value, so a changed character is always a changed payload.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError("not base64url: non-ASCII bytes") from exc
    if not _B64URL_RE.fullmatch(text):
        raise ValueError("not base64url: unexpected character")
    if len(text) % 4 == 1:
        raise ValueError("not base64url: impossible length")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:  # pragma: no cover - the checks above catch these
        raise ValueError(f"not base64url: {exc}") from exc
    if b64url_encode(data) != text:
        raise ValueError("not base64url: non-canonical final character")
    return data


def _payload_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=_HKDF_INFO,
    )
    return hkdf.derive(shared)


def public_key_bytes(key: X25519PublicKey | X25519PrivateKey) -> bytes:
    """The raw 32-byte X25519 public key (of a private key: its public half)."""
    if isinstance(key, X25519PrivateKey):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_b64(key: X25519PublicKey | X25519PrivateKey) -> str:
    """The raw public key in base64url without padding: the probe's ``--recipient``."""
    return b64url_encode(public_key_bytes(key))


def seal_line(plaintext: bytes, public_key: X25519PublicKey | bytes, challenge: bytes) -> str:
    """Seal ``plaintext`` for ``public_key`` exactly as the probe does; return the line.

    The server never seals; this twin of ``fleetstat.probe.seal`` exists for
    tests and tools, and proves the format with a second implementation.
    """
    if isinstance(public_key, bytes | bytearray):
        if len(public_key) != _KEY_SIZE:
            raise ValueError("an X25519 public key is 32 raw bytes")
        public_key = X25519PublicKey.from_public_bytes(bytes(public_key))
    recipient_public = public_key_bytes(public_key)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_public = public_key_bytes(ephemeral)
    shared = ephemeral.exchange(public_key)
    key = _payload_key(shared, ephemeral_public, recipient_public)
    nonce = os.urandom(_NONCE_SIZE)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, bytes(plaintext), _AAD_PREFIX + challenge)
    return _PREFIX + b64url_encode(ephemeral_public + nonce + ciphertext)


def open_line(
    line: str | bytes,
    private_key: X25519PrivateKey,
    challenge: bytes,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> bytes:
    """Open one probe output line with the server key and this run's challenge.

    Surrounding whitespace (the trailing newline, a CR from Windows) is ignored.
    Returns the plaintext (the zlib-compressed document, see
    :func:`decode_document`). Raises :class:`EnvelopeError` for anything else:
    not a ``FLEETSTAT/1`` line, longer than ``max_line_bytes``, bad base64url,
    truncated, or failing authentication (tampered, a replay carrying another
    run's challenge, or sealed for another server key).
    """
    # Bound first, before any copy or decode proportional to the input.
    if len(line) > max_line_bytes:
        raise EnvelopeError(f"output line is longer than the limit of {max_line_bytes} bytes")
    if isinstance(line, bytes | bytearray):
        try:
            line = bytes(line).decode("ascii")
        except UnicodeDecodeError:
            raise EnvelopeError(f"output is not a {MAGIC} line (non-ASCII bytes)") from None
    line = line.strip()
    if not line.startswith(_PREFIX):
        raise EnvelopeError(f"output is not a {MAGIC} line")
    try:
        sealed = b64url_decode(line[len(_PREFIX) :])
    except ValueError as exc:
        raise EnvelopeError(f"{MAGIC} payload is not valid base64url ({exc})") from None
    if len(sealed) < _OVERHEAD:
        raise EnvelopeError(
            f"{MAGIC} payload is truncated ({len(sealed)} bytes, at least {_OVERHEAD} expected)"
        )
    ephemeral_public = sealed[:_KEY_SIZE]
    nonce = sealed[_KEY_SIZE : _KEY_SIZE + _NONCE_SIZE]
    ciphertext = sealed[_KEY_SIZE + _NONCE_SIZE :]
    try:
        # cryptography refuses an all-zero shared secret (a low-order E, RFC 7748
        # section 6.1) with ValueError: such a payload could be sealed by anyone.
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError:
        raise EnvelopeError(_AUTH_FAILED) from None
    key = _payload_key(shared, ephemeral_public, public_key_bytes(private_key))
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, _AAD_PREFIX + bytes(challenge))
    except InvalidTag:
        raise EnvelopeError(_AUTH_FAILED) from None


def inflate(plaintext: bytes, max_bytes: int) -> bytes:
    """Decompress an opened payload, stopping after ``max_bytes`` of output.

    The output is produced in steps of at most ``INFLATE_STEP`` bytes, each
    bounded, so a zlib bomb (a few KB that would expand a thousandfold) costs at
    most ``max_bytes`` of memory and the CPU to produce them, never the whole
    expansion. ``max_bytes`` comes from the client's limits
    (``fleetstat.document.Limits``). Raises :class:`EnvelopeError` for a larger,
    truncated or trailing-garbage stream.
    """
    decompressor = zlib.decompressobj()
    out = bytearray()
    pending = plaintext
    try:
        while not decompressor.eof:
            # One byte over the limit tells "too big" apart from "exactly the limit".
            room = max_bytes + 1 - len(out)
            chunk = decompressor.decompress(pending, min(room, INFLATE_STEP))
            out += chunk
            if len(out) > max_bytes:
                raise EnvelopeError(f"payload expands beyond the limit of {max_bytes} bytes")
            tail = decompressor.unconsumed_tail
            if not chunk and len(tail) == len(pending):
                break  # no input left to make output from: truncated
            pending = tail
    except zlib.error as exc:
        raise EnvelopeError(f"payload is not zlib data ({exc})") from None
    if not decompressor.eof:
        raise EnvelopeError("payload is a truncated zlib stream")
    if decompressor.unused_data:
        raise EnvelopeError("payload has trailing bytes after the zlib stream")
    return bytes(out)


def decode_document(
    plaintext: bytes, max_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES
) -> dict[str, Any]:
    """Decompress and parse an opened payload into the probe's raw document.

    For tests and tools that want the probe's JSON as it was sent. The server does
    not use it: the collector inflates with the client's limits and checks the
    JSON into a typed document at ``fleetstat.document.parse``. The result must be
    a JSON object with an integer ``schema``. Raises :class:`EnvelopeError` otherwise.
    """
    data = inflate(plaintext, max_bytes)
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise EnvelopeError("payload document is not UTF-8") from None
    except RecursionError:
        raise EnvelopeError("payload document is nested too deeply") from None
    except ValueError as exc:
        raise EnvelopeError(f"payload document is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise EnvelopeError(f"payload document is a JSON {type(document).__name__}, not an object")
    schema = document.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise EnvelopeError("payload document has no integer 'schema'")
    return document


def _pub_path(path: Path) -> Path:
    return path.with_name(path.name + ".pub")


def generate_keypair(path: Path, *, force: bool = False) -> X25519PublicKey:
    """Write a new server key pair: ``path`` (PKCS8 PEM, 0600) and ``path.pub``.

    A missing folder is made, mode 0700 (missing parents above it as `mkdir -p` would).

    ``path.pub`` holds the raw public key in base64url and a newline. Refuses to
    replace an existing file unless ``force``: the old key would be gone for good.
    """
    path = Path(path)
    pub_path = _pub_path(path)
    if not force:
        for existing in (path, pub_path):
            if existing.exists():
                raise KeyFileError(
                    f"{existing} already exists; use --force to replace the key pair"
                )
    private_key = X25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_key = private_key.public_key()
    try:
        # A folder made here holds only the key pair: private to its owner, as ~/.ssh.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(path, pem, 0o600)
        write_atomically(pub_path, (public_key_b64(public_key) + "\n").encode("ascii"), 0o644)
    except OSError as exc:
        raise KeyFileError(f"cannot write {path}: {exc.strerror or exc}") from None
    return public_key


def load_private_key(path: Path) -> X25519PrivateKey:
    """Read the server's private key; :class:`KeyFileError` says what is wrong and the fix."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(
            f"{path}: key file not found (create one with `fleetstat keygen {path}`)"
        ) from None
    except PermissionError:
        raise KeyFileError(
            f"{path}: permission denied reading the key file "
            "(run as the user that owns it, or fix its owner)"
        ) from None
    except IsADirectoryError:
        raise KeyFileError(f"{path}: is a directory, not a key file") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror or exc}") from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large to be a key file (is it the right file?)")
    regenerate = f"regenerate with `fleetstat keygen --force {path}`"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError for an encrypted key without a password.
        raise KeyFileError(
            f"{path}: the private key is encrypted; fleetstat needs an unencrypted key "
            f"({regenerate})"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyFileError(
            f"{path}: not a PEM private key ({regenerate}, or point the config at the right file)"
        ) from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(
            f"{path}: holds a {type(key).__name__.lstrip('_')} key, not X25519 ({regenerate})"
        )
    return key


def check_key_permissions(path: Path) -> str | None:
    """A warning when the private key file is readable or writable by others, else None.

    Returned, never printed: the caller (the CLI) decides how to show it.
    """
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (
            f"{path} is accessible by other users (mode {stat.S_IMODE(mode):04o}); "
            f"anyone who reads it can open every payload (fix: chmod 600 {path})"
        )
    return None
