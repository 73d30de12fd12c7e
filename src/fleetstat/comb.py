"""The comb table of the server's public key, sent to the probe as ``--recipient-comb``.

The probe's shared secret is X25519(e, S_pub) for a fresh ``e`` and the server's
fixed ``S_pub``. A point that does not change can be precomputed once, as the
probe already does for the base point (``probe/_x25519.py``): with a 4-tooth
comb of 16 multiples of ``S_pub`` the multiplication is 64 doublings and at most
64 additions instead of 255 ladder steps, half the host's CPU for that step.

The table is made here, once per process and key, from nothing but the public
key: the Montgomery u-coordinate is mapped to the birationally equivalent
Edwards25519 point (RFC 7748 section 4.1; the sign of x does not matter, since
k * P and k * -P have the same u), and the multiples are added with the
complete Edwards formulas in extended coordinates (RFC 8032 section 5.1.4).
Wire form: entries 1 to 15, each as y + x, y - x and 2 d x y mod p, 32 bytes
little-endian apiece (1,440 bytes).

A wrong table cannot weaken anything: the probe checks that entry 1 is
``--recipient`` itself and otherwise uses the ladder; a table that passes that
check but is wrong elsewhere gives a secret the server cannot open with (a
``bad_payload`` row), never a payload readable by anyone else.
"""

from __future__ import annotations

import functools

P = (1 << 255) - 19
D = -121665 * pow(121666, P - 2, P) % P  # edwards25519's d (RFC 8032 section 5.1)
TEETH = 4
SPACING = 64

Point = tuple[int, int]  # affine (x, y)


def _inverse(value: int) -> int:
    return pow(value % P, P - 2, P)


def edwards_point(u: int) -> Point:
    """The Edwards25519 point (x even) whose Montgomery u-coordinate is ``u``.

    Raises ValueError for a u that is not on the curve (a point of the twist,
    which no X25519 key pair has as its public key) or has no Edwards image.
    """
    u %= P
    if (u + 1) % P == 0:
        raise ValueError("u = -1 has no Edwards25519 image")
    y = (u - 1) * _inverse(u + 1) % P
    xx = (y * y - 1) * _inverse(D * y * y + 1) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * pow(2, (P - 1) // 4, P) % P  # times sqrt(-1)
    if (x * x - xx) % P:
        raise ValueError("u is not the coordinate of a curve25519 point")
    return (P - x if x & 1 else x), y


Extended = tuple[int, int, int, int]  # (X, Y, Z, T): x = X/Z, y = Y/Z, x y = T/Z


def _add(a: Extended, b: Extended) -> Extended:
    """Extended-coordinate addition, a = -1 (RFC 8032 section 5.1.4): complete."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = t1 * 2 * D * t2 % P
    dd = z1 * 2 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return e * f % P, g * h % P, f * g % P, e * h % P


# The same formulas as the probe's _x25519._comb_u: the server does not import the
# probe (a leaf: docs/probe.md), and tests check that this code gives the probe's base table.
def _double(a: Extended) -> Extended:
    x1, y1, z1, _ = a
    aa = x1 * x1 % P
    bb = y1 * y1 % P
    cc = 2 * z1 * z1 % P
    h = aa + bb
    e = h - (x1 + y1) * (x1 + y1) % P
    g = aa - bb
    f = cc + g
    return e * f % P, g * h % P, f * g % P, e * h % P


def comb_table(point: Point) -> list[tuple[int, int, int]]:
    """Entry j = the sum of 2^(64 i) * point over the set bits i of j, j < 16, as
    (y + x, y - x, 2 d x y): the layout of the probe's ``_COMB``. Sums in extended
    coordinates, one inversion per entry at the end: about 4 ms here."""
    x, y = point
    teeth = [(x, y, 1, x * y % P)]
    for _ in range(TEETH - 1):
        tooth = teeth[-1]
        for _ in range(SPACING):
            tooth = _double(tooth)
        teeth.append(tooth)
    table = []
    for j in range(1 << TEETH):
        acc: Extended = (0, 1, 1, 0)
        for i in range(TEETH):
            if j >> i & 1:
                acc = _add(acc, teeth[i])
        inverse = _inverse(acc[2])
        ax, ay = acc[0] * inverse % P, acc[1] * inverse % P
        table.append(((ay + ax) % P, (ay - ax) % P, 2 * D * ax * ay % P))
    return table


@functools.lru_cache(maxsize=8)
def recipient_comb(public_key: bytes) -> bytes:
    """The ``--recipient-comb`` bytes for a raw 32-byte X25519 public key."""
    if len(public_key) != 32:
        raise ValueError("an X25519 public key is 32 raw bytes")
    u = int.from_bytes(public_key, "little") & ((1 << 255) - 1)
    table = comb_table(edwards_point(u))
    return b"".join(value.to_bytes(32, "little") for entry in table[1:] for value in entry)
