"""ChaCha20, Poly1305 and the ChaCha20-Poly1305 AEAD (RFC 8439), standard library only.

Runs on the monitored host under Python 3.6+, so it keeps to 3.6 syntax. Speed
comes from doing as little per-byte Python work as possible: ChaCha20 computes
many blocks at once in big integers (see ``_blocks``), the keystream is XORed onto
the data as one big integer, and Poly1305 works on 16-byte blocks as big integers.

Not constant-time (nothing in pure Python is); see ``seal.py`` for why that is
acceptable for a one-shot ephemeral sealed box.
"""

try:
    # The C module behind struct: struct.py itself costs ~0.2 ms per probe start.
    from _struct import pack, unpack
except ImportError:  # pragma: no cover - an interpreter without the accelerator
    from struct import pack, unpack

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16

# Blocks computed per batch by ``_blocks``: 64 KiB of keystream, bounding the size
# of the big integers while keeping per-operation overhead negligible.
_BATCH_BLOCKS = 1024
# "expand 32-byte k" as four little-endian words (RFC 8439 section 2.3).
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)
# Poly1305 prime 2^130 - 5 and the "r" clamp (RFC 8439 section 2.5).
_P1305 = (1 << 130) - 5
_R_CLAMP = 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
_HIBIT = 1 << 128
_MASK128 = (1 << 128) - 1


class AuthenticationError(ValueError):
    """The Poly1305 tag does not match: tampered data, wrong key, nonce or AAD."""


def chacha20_keystream(key, counter, nonce, nblocks):
    """Return ``nblocks`` 64-byte ChaCha20 blocks starting at block ``counter``."""
    if len(key) != KEY_SIZE:
        raise ValueError("ChaCha20 key must be 32 bytes")
    if len(nonce) != NONCE_SIZE:
        raise ValueError("ChaCha20 nonce must be 12 bytes")
    # The block counter is 32 bits in the RFC 8439 variant (section 2.3); running
    # past it would repeat keystream, so refuse instead (256 GiB per nonce).
    if counter < 0 or counter + nblocks > 1 << 32:
        raise ValueError("ChaCha20 block counter out of range")
    parts = []
    for first in range(counter, counter + nblocks, _BATCH_BLOCKS):
        parts.append(_blocks(key, first, nonce, min(_BATCH_BLOCKS, counter + nblocks - first)))
    return b"".join(parts)


def _blocks(key, counter, nonce, nblocks):
    # All ``nblocks`` blocks are computed at once, "SIMD within a register": each
    # of the 16 state words is one big integer holding that word of every block,
    # block j in bits [64j, 64j + 32). The 32 spare bits above each lane absorb an
    # addition's carry and the bits a shift pushes out of the lane; masking with
    # ``lanes`` after every step clears them, so lanes never mix. Every Python
    # operation thus does the work of ``nblocks`` block functions in C, about 20
    # times faster than a per-block loop over 16 locals.
    one_per_lane = int.from_bytes(b"\x01\x00\x00\x00\x00\x00\x00\x00" * nblocks, "little")
    lanes = 0xFFFFFFFF * one_per_lane
    # Initial state (RFC 8439 section 2.3): constants, key, block counter, nonce.
    initial = [word * one_per_lane for word in _SIGMA]
    initial.extend(word * one_per_lane for word in unpack("<8I", key))
    counters = pack("<%dQ" % nblocks, *range(counter, counter + nblocks))
    initial.append(int.from_bytes(counters, "little"))
    initial.extend(word * one_per_lane for word in unpack("<3I", nonce))
    x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15 = initial
    # 20 rounds = 10 double rounds of quarter rounds (RFC 8439 sections 2.1, 2.3).
    for _ in range(10):
        # Column round: quarter rounds on (0,4,8,12) .. (3,7,11,15).
        x0 = (x0 + x4) & lanes
        x12 ^= x0
        x12 = (x12 << 16 | x12 >> 16) & lanes
        x8 = (x8 + x12) & lanes
        x4 ^= x8
        x4 = (x4 << 12 | x4 >> 20) & lanes
        x0 = (x0 + x4) & lanes
        x12 ^= x0
        x12 = (x12 << 8 | x12 >> 24) & lanes
        x8 = (x8 + x12) & lanes
        x4 ^= x8
        x4 = (x4 << 7 | x4 >> 25) & lanes
        x1 = (x1 + x5) & lanes
        x13 ^= x1
        x13 = (x13 << 16 | x13 >> 16) & lanes
        x9 = (x9 + x13) & lanes
        x5 ^= x9
        x5 = (x5 << 12 | x5 >> 20) & lanes
        x1 = (x1 + x5) & lanes
        x13 ^= x1
        x13 = (x13 << 8 | x13 >> 24) & lanes
        x9 = (x9 + x13) & lanes
        x5 ^= x9
        x5 = (x5 << 7 | x5 >> 25) & lanes
        x2 = (x2 + x6) & lanes
        x14 ^= x2
        x14 = (x14 << 16 | x14 >> 16) & lanes
        x10 = (x10 + x14) & lanes
        x6 ^= x10
        x6 = (x6 << 12 | x6 >> 20) & lanes
        x2 = (x2 + x6) & lanes
        x14 ^= x2
        x14 = (x14 << 8 | x14 >> 24) & lanes
        x10 = (x10 + x14) & lanes
        x6 ^= x10
        x6 = (x6 << 7 | x6 >> 25) & lanes
        x3 = (x3 + x7) & lanes
        x15 ^= x3
        x15 = (x15 << 16 | x15 >> 16) & lanes
        x11 = (x11 + x15) & lanes
        x7 ^= x11
        x7 = (x7 << 12 | x7 >> 20) & lanes
        x3 = (x3 + x7) & lanes
        x15 ^= x3
        x15 = (x15 << 8 | x15 >> 24) & lanes
        x11 = (x11 + x15) & lanes
        x7 ^= x11
        x7 = (x7 << 7 | x7 >> 25) & lanes
        # Diagonal round: (0,5,10,15), (1,6,11,12), (2,7,8,13), (3,4,9,14).
        x0 = (x0 + x5) & lanes
        x15 ^= x0
        x15 = (x15 << 16 | x15 >> 16) & lanes
        x10 = (x10 + x15) & lanes
        x5 ^= x10
        x5 = (x5 << 12 | x5 >> 20) & lanes
        x0 = (x0 + x5) & lanes
        x15 ^= x0
        x15 = (x15 << 8 | x15 >> 24) & lanes
        x10 = (x10 + x15) & lanes
        x5 ^= x10
        x5 = (x5 << 7 | x5 >> 25) & lanes
        x1 = (x1 + x6) & lanes
        x12 ^= x1
        x12 = (x12 << 16 | x12 >> 16) & lanes
        x11 = (x11 + x12) & lanes
        x6 ^= x11
        x6 = (x6 << 12 | x6 >> 20) & lanes
        x1 = (x1 + x6) & lanes
        x12 ^= x1
        x12 = (x12 << 8 | x12 >> 24) & lanes
        x11 = (x11 + x12) & lanes
        x6 ^= x11
        x6 = (x6 << 7 | x6 >> 25) & lanes
        x2 = (x2 + x7) & lanes
        x13 ^= x2
        x13 = (x13 << 16 | x13 >> 16) & lanes
        x8 = (x8 + x13) & lanes
        x7 ^= x8
        x7 = (x7 << 12 | x7 >> 20) & lanes
        x2 = (x2 + x7) & lanes
        x13 ^= x2
        x13 = (x13 << 8 | x13 >> 24) & lanes
        x8 = (x8 + x13) & lanes
        x7 ^= x8
        x7 = (x7 << 7 | x7 >> 25) & lanes
        x3 = (x3 + x4) & lanes
        x14 ^= x3
        x14 = (x14 << 16 | x14 >> 16) & lanes
        x9 = (x9 + x14) & lanes
        x4 ^= x9
        x4 = (x4 << 12 | x4 >> 20) & lanes
        x3 = (x3 + x4) & lanes
        x14 ^= x3
        x14 = (x14 << 8 | x14 >> 24) & lanes
        x9 = (x9 + x14) & lanes
        x4 ^= x9
        x4 = (x4 << 7 | x4 >> 25) & lanes
    # Add the initial state back in, then serialize: block j's word i goes to bytes
    # [64j + 4i, 64j + 4i + 4), little-endian (RFC 8439 section 2.3).
    state = (x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15)
    out = bytearray(64 * nblocks)
    width = 8 * nblocks
    for i in range(16):
        word = ((state[i] + initial[i]) & lanes).to_bytes(width, "little")
        for b in range(4):
            out[4 * i + b :: 64] = word[b::8]
    return bytes(out)


def chacha20_xor(key, counter, nonce, data):
    """Encrypt or decrypt ``data`` with ChaCha20 starting at block ``counter``."""
    length = len(data)
    if not length:
        return b""
    stream = chacha20_keystream(key, counter, nonce, (length + 63) // 64)
    # One big-integer XOR instead of a Python loop over bytes: CPython does it in C.
    mixed = int.from_bytes(data, "little") ^ int.from_bytes(stream[:length], "little")
    return mixed.to_bytes(length, "little")


def poly1305(key, message):
    """Poly1305 one-time authenticator (RFC 8439 section 2.5)."""
    if len(key) != 32:
        raise ValueError("Poly1305 key must be 32 bytes")
    r = int.from_bytes(key[:16], "little") & _R_CLAMP
    s = int.from_bytes(key[16:32], "little")
    p = _P1305
    hibit = _HIBIT
    from_bytes = int.from_bytes
    acc = 0
    length = len(message)
    whole = length - length % 16
    for i in range(0, whole, 16):
        # Each full block gets a 1 bit appended above its top byte (2^128).
        acc = (acc + from_bytes(message[i : i + 16], "little") + hibit) * r % p
    if whole != length:
        # A short final block gets the 0x01 byte right after its last byte.
        acc = (acc + from_bytes(message[whole:] + b"\x01", "little")) * r % p
    return ((acc + s) & _MASK128).to_bytes(16, "little")


def _pad16(length):
    return b"\x00" * (-length % 16)


def _aead_tag(key, nonce, ciphertext, aad):
    # One-time Poly1305 key: the first 32 bytes of block 0 (RFC 8439 section 2.6);
    # the payload itself is encrypted from block 1 on (section 2.8).
    otk = chacha20_keystream(key, 0, nonce, 1)[:32]
    mac_data = b"".join(
        (
            aad,
            _pad16(len(aad)),
            ciphertext,
            _pad16(len(ciphertext)),
            pack("<QQ", len(aad), len(ciphertext)),
        )
    )
    return poly1305(otk, mac_data)


def aead_encrypt(key, nonce, plaintext, aad):
    """ChaCha20-Poly1305 (RFC 8439 section 2.8): return ciphertext with the tag appended."""
    ciphertext = chacha20_xor(key, 1, nonce, plaintext)
    return ciphertext + _aead_tag(key, nonce, ciphertext, aad)


def aead_decrypt(key, nonce, data, aad):
    """Check the tag, then decrypt. Raise :class:`AuthenticationError` on any mismatch."""
    if len(data) < TAG_SIZE:
        raise AuthenticationError("ciphertext shorter than its tag")
    ciphertext, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    # Verify before decrypting and compare in constant time (RFC 8439 section 4).
    # Imported here: only the server-side tests decrypt, and the probe's start-up
    # should not pay for hmac (and the hashlib it pulls in).
    import hmac

    if not hmac.compare_digest(_aead_tag(key, nonce, ciphertext, aad), tag):
        raise AuthenticationError("Poly1305 tag mismatch")
    return chacha20_xor(key, 1, nonce, ciphertext)
