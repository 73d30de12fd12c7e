"""Seal the probe's document for the server: the envelope of docs/envelope.md, version 1.

A sealed box: the probe holds only the server's public key ``S_pub``.

1. ephemeral X25519 pair ``(e, E)``; ``s = X25519(e, S_pub)`` (RFC 7748)
2. ``key = HKDF-SHA256(ikm=s, salt=E || S_pub, info="fleetstat/1 payload", L=32)`` (RFC 5869)
3. ``nonce`` = 12 random bytes; ``aad = "fleetstat/1" || challenge``
4. ``ChaCha20-Poly1305(key, nonce, plaintext, aad)``, tag appended (RFC 8439)
5. output ``E || nonce || ciphertext``; on the wire ``FLEETSTAT/1 <base64url, no padding>``

Standard library only and Python 3.6 syntax: this file runs on the monitored
host, copied into the zipapp as ``fleetstat_probe`` (relative imports only). When
the host's Python happens to have a working ``cryptography``, it is used for X25519
and the AEAD; otherwise the pure-Python primitives in ``_x25519`` and ``_chacha``.

The pure path is not constant-time. That is acceptable here: the only secret it
handles is the ephemeral scalar ``e``, used for one multiplication and thrown
away, so a timing observer gets one trace of a key that protects one payload; the
server's long-term key never runs through this code (the server uses
``cryptography``).
"""

import binascii
import sys

from . import _chacha, _x25519
from . import _os as os  # the os functions without import os: see _os.py

# Start-up cost matters here: the interpreter's start is most of the probe's CPU
# on the host, and hashlib (which loads OpenSSL's libcrypto), hmac, base64 and re
# cost about 8 ms of it together. SHA-256 comes from the interpreter's built-in
# module (``_sha256`` up to 3.11, ``_sha2`` from 3.12), HMAC is the few lines of
# RFC 2104 below and base64url is binascii plus a translation table.
try:
    from _sha256 import sha256
except ImportError:
    try:
        from _sha2 import sha256
    except ImportError:  # a build without the built-in module
        from hashlib import sha256
from ._chacha import AuthenticationError

MAGIC = "FLEETSTAT/1"
AAD_PREFIX = b"fleetstat/1"
HKDF_INFO = b"fleetstat/1 payload"
PUBLIC_KEY_SIZE = 32
NONCE_SIZE = _chacha.NONCE_SIZE
TAG_SIZE = _chacha.TAG_SIZE
# E || nonce || tag: the smallest sealed value (empty plaintext).
OVERHEAD = PUBLIC_KEY_SIZE + NONCE_SIZE + TAG_SIZE

BACKENDS = ("auto", "pure", "cryptography")

__all__ = [
    "BACKENDS",
    "MAGIC",
    "OVERHEAD",
    "AuthenticationError",
    "b64url_decode",
    "b64url_encode",
    "backend_in_use",
    "format_line",
    "hkdf_sha256",
    "open_sealed",
    "seal",
]

_B64URL_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
# RFC 2104 section 2: the key XORed with ipad and opad, as translation tables.
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def b64url_encode(data):
    """base64url without padding (RFC 4648 section 5), as text."""
    encoded = binascii.b2a_base64(bytes(data), newline=False)
    return encoded.translate(_TO_URLSAFE).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    """Inverse of :func:`b64url_encode`; padding optional. ``ValueError`` when malformed."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    text = text.strip()
    body = text.rstrip("=")
    # a2b_base64 silently drops characters outside the alphabet: refuse them,
    # and more than two "=" of padding.
    if len(text) - len(body) > 2 or not _B64URL_ALPHABET.issuperset(body):
        raise ValueError("not base64url")
    if len(body) % 4 == 1:
        raise ValueError("not base64url: impossible length")
    padded = body + "=" * (-len(body) % 4)
    return binascii.a2b_base64(padded.encode("ascii").translate(_FROM_URLSAFE))


def hmac_sha256(key, message):
    """HMAC-SHA256 (RFC 2104 section 2): the same bytes as the stdlib's hmac module."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = bytes(key).ljust(64, b"\x00")
    inner = sha256(key.translate(_IPAD) + message).digest()
    return sha256(key.translate(_OPAD) + inner).digest()


def hkdf_sha256(ikm, salt, info, length):
    """HKDF-SHA256 extract-then-expand (RFC 5869 section 2)."""
    if length > 255 * 32:
        raise ValueError("HKDF-SHA256 output is at most 8160 bytes")
    # Extract (section 2.2): PRK = HMAC-Hash(salt, IKM); an empty salt means zeros.
    prk = hmac_sha256(salt or b"\x00" * 32, ikm)
    # Expand (section 2.3): T(i) = HMAC-Hash(PRK, T(i-1) || info || i).
    blocks = []
    previous = b""
    for counter in range(1, (length + 31) // 32 + 1):
        previous = hmac_sha256(prk, previous + info + bytes([counter]))
        blocks.append(previous)
    return b"".join(blocks)[:length]


def _payload_key(shared, ephemeral_public, recipient_public):
    # RFC 7748 section 6.1: an all-zero shared secret means the peer's key is a
    # low-order point; sealing to it would use a key anyone can compute.
    if not any(bytearray(shared)):
        raise ValueError("recipient public key is a low-order point")
    return hkdf_sha256(shared, ephemeral_public + recipient_public, HKDF_INFO, 32)


def _check_inputs(plaintext, recipient_public, challenge):
    if not isinstance(plaintext, (bytes, bytearray, memoryview)):
        raise TypeError("plaintext must be bytes")
    if not isinstance(challenge, (bytes, bytearray)):
        raise TypeError("challenge must be bytes")
    if not isinstance(recipient_public, (bytes, bytearray)) or len(recipient_public) != 32:
        raise ValueError("recipient public key must be 32 raw bytes")
    return bytes(plaintext), bytes(recipient_public), bytes(challenge)


def _seal_pure(
    plaintext, recipient_public, challenge, ephemeral_private=None, nonce=None, recipient_comb=None
):
    """Seal with the pure-Python primitives. ``ephemeral_private``/``nonce`` are for
    tests; ``recipient_comb`` is the server's table for its key (see ``seal``)."""
    plaintext, recipient_public, challenge = _check_inputs(plaintext, recipient_public, challenge)
    e = os.urandom(32) if ephemeral_private is None else bytes(ephemeral_private)
    nonce = os.urandom(NONCE_SIZE) if nonce is None else bytes(nonce)
    ephemeral_public = _x25519.x25519_base(e)
    table = _recipient_table(recipient_comb, recipient_public)
    if table is not None:
        shared = _x25519.x25519_comb(e, table)  # the server's precomputed multiples
    else:
        shared = _x25519.x25519(e, recipient_public)
    key = _payload_key(shared, ephemeral_public, recipient_public)
    sealed = _chacha.aead_encrypt(key, nonce, plaintext, AAD_PREFIX + challenge)
    return ephemeral_public + nonce + sealed


def _recipient_table(recipient_comb, recipient_public):
    """The decoded comb when it is the recipient's, else None (the ladder is used)."""
    if recipient_comb is None:
        return None
    try:
        table = _x25519.decode_comb(bytes(recipient_comb))
    except ValueError as exc:
        sys.stderr.write("probe: --recipient-comb ignored: %s\n" % exc)
        return None
    if not _x25519.comb_matches(table, recipient_public):
        sys.stderr.write("probe: --recipient-comb ignored: it is not the table of --recipient\n")
        return None
    return table


_NOT_CHECKED = object()
_cryptography_classes = _NOT_CHECKED


def _cryptography():
    """The host's ``cryptography`` classes when they work here, else None (checked once)."""
    global _cryptography_classes
    if _cryptography_classes is _NOT_CHECKED:
        _cryptography_classes = _load_cryptography() if _cryptography_on_path() else None
    return _cryptography_classes


def _cryptography_on_path():
    """Whether a ``cryptography`` package directory is on sys.path at all.

    Under ``python3 -I -S`` (how the probe runs) site-packages are not on the
    path, so this is almost always False; a few stat calls spare the failed
    import and the ``warnings`` module.
    """
    return any(os.isdir(os.join(entry or ".", "cryptography")) for entry in sys.path)


def _load_cryptography():
    try:
        import warnings

        with warnings.catch_warnings():
            # Old cryptography releases warn at import about old Pythons; the
            # probe's stderr is for its own diagnostics.
            warnings.simplefilter("ignore")
            from cryptography.hazmat.primitives.asymmetric.x25519 import (
                X25519PrivateKey,
                X25519PublicKey,
            )
            from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

            # Builds against an OpenSSL without X25519 or ChaCha20 import fine and
            # fail on first use (UnsupportedAlgorithm), so exercise both once.
            X25519PrivateKey.generate()
            ChaCha20Poly1305(b"\x00" * 32).encrypt(b"\x00" * NONCE_SIZE, b"", b"")
    except Exception:
        # Any failure (missing, half-installed, binary mismatch) means "not here":
        # the pure path produces the same bytes.
        return None
    return X25519PrivateKey, X25519PublicKey, ChaCha20Poly1305


def _raw_public(public_key):
    try:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    except (AttributeError, TypeError):
        # cryptography < 2.5 had no Encoding.Raw and a no-argument public_bytes().
        return public_key.public_bytes()


def _seal_cryptography(plaintext, recipient_public, challenge, ephemeral_private=None, nonce=None):
    """Seal with the host's ``cryptography``; same bytes as :func:`_seal_pure`."""
    classes = _cryptography()
    if classes is None:
        raise RuntimeError("cryptography is not usable on this host")
    private_cls, public_cls, aead_cls = classes
    plaintext, recipient_public, challenge = _check_inputs(plaintext, recipient_public, challenge)
    if ephemeral_private is None:
        e = private_cls.generate()
    else:
        e = private_cls.from_private_bytes(bytes(ephemeral_private))
    nonce = os.urandom(NONCE_SIZE) if nonce is None else bytes(nonce)
    ephemeral_public = _raw_public(e.public_key())
    shared = e.exchange(public_cls.from_public_bytes(recipient_public))
    key = _payload_key(shared, ephemeral_public, recipient_public)
    sealed = aead_cls(key).encrypt(nonce, plaintext, AAD_PREFIX + challenge)
    return ephemeral_public + nonce + sealed


def backend_in_use():
    """``"cryptography"`` when :func:`seal` will use it on this host, else ``"pure"``."""
    return "cryptography" if _cryptography() is not None else "pure"


def seal(plaintext, recipient_public, challenge, backend="auto", recipient_comb=None):
    """Return ``E || nonce || ciphertext_with_tag`` for the server key ``recipient_public``.

    ``recipient_public`` is the server's raw 32-byte X25519 public key and
    ``challenge`` the bytes the server sent for this run. ``backend`` is
    ``"auto"`` (``cryptography`` when usable, else pure Python), ``"pure"`` or
    ``"cryptography"``. ``recipient_comb``, the server's precomputed table for
    its key (``_x25519.COMB_BYTES``), halves the pure path's shared-secret step;
    one that is not the recipient's is ignored with a note on stderr.
    """
    if backend not in BACKENDS:
        raise ValueError("backend must be one of %s" % ", ".join(BACKENDS))
    if backend == "pure" or (backend == "auto" and _cryptography() is None):
        return _seal_pure(plaintext, recipient_public, challenge, recipient_comb=recipient_comb)
    return _seal_cryptography(plaintext, recipient_public, challenge)


def open_sealed(sealed, recipient_private, challenge):
    """Open :func:`seal` output with the raw 32-byte private key, in pure Python.

    The server opens with ``cryptography`` (``fleetstat.envelope``); this twin
    exists so tests can prove the two paths agree in both directions. Raises
    :class:`AuthenticationError` when the tag does not verify, ``ValueError`` when
    the input is too short or the ephemeral key is a low-order point.
    """
    sealed = bytes(sealed)
    if len(sealed) < OVERHEAD:
        raise ValueError("sealed value is shorter than %d bytes" % OVERHEAD)
    ephemeral_public = sealed[:PUBLIC_KEY_SIZE]
    nonce = sealed[PUBLIC_KEY_SIZE : OVERHEAD - TAG_SIZE]
    recipient_public = _x25519.x25519_base(recipient_private)
    shared = _x25519.x25519(recipient_private, ephemeral_public)
    key = _payload_key(shared, ephemeral_public, recipient_public)
    return _chacha.aead_decrypt(
        key, nonce, sealed[OVERHEAD - TAG_SIZE :], AAD_PREFIX + bytes(challenge)
    )


def format_line(sealed):
    """The probe's one stdout line (without newline): ``FLEETSTAT/1 <base64url>``."""
    return MAGIC + " " + b64url_encode(sealed)
