"""X25519 (RFC 7748 section 5), standard library only, Python 3.6+.

Python big integers make the field arithmetic short; the whole scalar
multiplication is about 255 ladder steps of a dozen multiplications mod 2^255 - 19.
Not constant-time: see ``seal.py`` for why that is acceptable here.
"""

P = (1 << 255) - 19
# (486662 - 2) / 4, the curve constant the ladder uses (RFC 7748 section 5).
_A24 = 121665
_U_MASK = (1 << 255) - 1
BASE_POINT = b"\x09" + b"\x00" * 31


def clamp_scalar(k):
    """Decode a 32-byte scalar with the X25519 clamping (RFC 7748 section 5)."""
    if len(k) != 32:
        raise ValueError("X25519 scalar must be 32 bytes")
    b = bytearray(k)
    # Clear the 3 low bits (cofactor 8), clear bit 255, set bit 254.
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return int.from_bytes(bytes(b), "little")


def decode_u(u):
    """Decode a u-coordinate: mask bit 255, accept non-canonical values mod p (section 5)."""
    if len(u) != 32:
        raise ValueError("X25519 u-coordinate must be 32 bytes")
    return (int.from_bytes(u, "little") & _U_MASK) % P


def x25519(k, u):
    """Return X25519(k, u) as 32 bytes: the Montgomery ladder of RFC 7748 section 5."""
    scalar = clamp_scalar(k)
    x1 = decode_u(u)
    p = P
    a24 = _A24
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (scalar >> t) & 1
        swap ^= bit
        if swap:
            x2, x3 = x3, x2
            z2, z3 = z3, z2
        swap = bit
        a = x2 + z2
        aa = a * a % p
        b = x2 - z2
        bb = b * b % p
        e = aa - bb
        c = x3 + z3
        d = x3 - z3
        da = d * a % p
        cb = c * b % p
        t1 = da + cb
        x3 = t1 * t1 % p
        t2 = da - cb
        z3 = x1 * (t2 * t2 % p) % p
        x2 = aa * bb % p
        z2 = e * (aa + a24 * e) % p
    if swap:
        x2, x3 = x3, x2
        z2, z3 = z3, z2
    # x2 / z2 via Fermat: z^(p-2) is the inverse (0 maps to 0, as the RFC intends).
    return (x2 * pow(z2, p - 2, p) % p).to_bytes(32, "little")


def x25519_base(k):
    """Public key for private scalar ``k``: X25519(k, 9)."""
    return x25519(k, BASE_POINT)
