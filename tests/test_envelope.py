"""The envelope, both sides: the probe's pure-Python sealing and the server's opening.

The pure primitives are checked against the RFC test vectors and against
``cryptography`` byte for byte; the two implementations of the format must open
each other's output; every kind of damage to a line must raise EnvelopeError.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import subprocess
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.poly1305 import Poly1305

from fleetstat import comb, envelope
from fleetstat.envelope import (
    MAGIC,
    b64url_decode,
    b64url_encode,
    check_key_permissions,
    decode_document,
    generate_keypair,
    load_private_key,
    open_line,
    public_key_b64,
    public_key_bytes,
    seal_line,
)
from fleetstat.errors import EnvelopeError, KeyFileError
from fleetstat.probe import _chacha, _x25519, seal

PROBE_DIR = Path(seal.__file__).parent
CHALLENGE = bytes(range(16))
SUNSCREEN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
# Lengths around the 16-byte Poly1305 block, the 64-byte ChaCha20 block and the
# 1024-block batch of the pure keystream.
LENGTHS = [0, 1, 15, 16, 17, 63, 64, 65, 127, 1000, 20_000, 64 * 1024 + 3]


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


@pytest.fixture(scope="module")
def server_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def raw_private(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )


# --- RFC test vectors -------------------------------------------------------------


@pytest.mark.parametrize(
    ("scalar", "u", "expected"),
    [
        (  # RFC 7748 section 5.2, first vector
            "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
            "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
            "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
        ),
        (  # RFC 7748 section 5.2, second vector (its u has bit 255 set: must be masked)
            "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
            "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
            "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
        ),
    ],
)
def test_x25519_rfc7748_scalar_mult_vectors(scalar: str, u: str, expected: str) -> None:
    assert _x25519.x25519(h(scalar), h(u)) == h(expected)


@pytest.mark.parametrize(
    ("iterations", "expected"),
    [
        (1, "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"),
        (1000, "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"),
        # 1,000,000 iterations: 7c3911e0..., about 20 minutes in pure Python; skipped.
    ],
)
def test_x25519_rfc7748_iterated(iterations: int, expected: str) -> None:
    # RFC 7748 section 5.2: k = u = 9; repeat k, u = X25519(k, u), k.
    k = u = _x25519.BASE_POINT
    for _ in range(iterations):
        k, u = _x25519.x25519(k, u), k
    assert k == h(expected)


def test_x25519_rfc7748_diffie_hellman() -> None:
    # RFC 7748 section 6.1.
    alice = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    alice_pub = _x25519.x25519_base(alice)
    bob_pub = _x25519.x25519_base(bob)
    assert alice_pub == h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert bob_pub == h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    shared = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert _x25519.x25519(alice, bob_pub) == shared
    assert _x25519.x25519(bob, alice_pub) == shared


def comb_table() -> list[tuple[int, int, int]]:
    """The probe's fixed-base table, derived here from first principles: the
    Ed25519 base point (y = 4/5, x even; RFC 8032 section 5.1), doubling by the
    complete addition law, and sum(2^(64 i) B for the set bits i of j)."""
    p = _x25519.P
    d = -121665 * pow(121666, p - 2, p) % p
    y = 4 * pow(5, p - 2, p) % p
    xx = (y * y - 1) * pow(d * y * y + 1, p - 2, p) % p
    x = pow(xx, (p + 3) // 8, p)
    if (x * x - xx) % p:
        x = x * pow(2, (p - 1) // 4, p) % p
    x = p - x if x & 1 else x

    def add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, int, int, int]:
        # Affine twisted Edwards addition (a = -1): RFC 8032 section 5.1.4's law.
        (x1, y1), (x2, y2) = a[:2], b[:2]
        t = d * x1 * x2 * y1 * y2 % p
        x3 = (x1 * y2 + x2 * y1) * pow(1 + t, p - 2, p) % p
        y3 = (y1 * y2 + x1 * x2) * pow(1 - t, p - 2, p) % p
        return x3, y3, 1, x3 * y3 % p

    teeth = [(x, y, 1, x * y % p)]
    for _ in range(3):
        point = teeth[-1]
        for _ in range(64):
            point = add(point, point)
        teeth.append(point)
    table = []
    for j in range(16):
        acc: tuple[int, ...] = (0, 1, 1, 0)
        for i in range(4):
            if j >> i & 1:
                acc = add(acc, teeth[i])
        ax, ay = acc[0], acc[1]
        table.append(((ay + ax) % p, (ay - ax) % p, 2 * d * ax * ay % p))
    return table


def test_fixed_base_comb_table_is_the_base_points_multiples() -> None:
    assert list(_x25519._COMB) == comb_table()
    p = _x25519.P
    assert 2 * (-121665 * pow(121666, p - 2, p)) % p == _x25519._D2


def test_the_servers_comb_code_makes_the_probes_base_table() -> None:
    """comb.py, run on u = 9, gives the probe's built-in table exactly."""
    assert comb.edwards_point(9)[1] == 4 * pow(5, comb.P - 2, comb.P) % comb.P
    assert comb.comb_table(comb.edwards_point(9)) == comb_table()
    assert comb.D * 2 % comb.P == _x25519._D2


def test_a_recipient_comb_gives_the_ladders_shared_secret() -> None:
    """For random server keys and scalars (plus edge scalars), the comb of the
    server's key and the ladder agree, and so does cryptography."""
    edge = [b"\x00" * 32, b"\xff" * 32, b"\x08" + b"\x00" * 31]
    for _ in range(12):
        server = X25519PrivateKey.generate()
        public = public_key_bytes(server)
        raw = comb.recipient_comb(public)
        assert len(raw) == _x25519.COMB_BYTES == 1440
        table = _x25519.decode_comb(raw)
        assert _x25519.comb_matches(table, public)
        for k in [os.urandom(32) for _ in range(8)] + edge:
            assert _x25519.x25519_comb(k, table) == _x25519.x25519(k, public), k.hex()
        k = os.urandom(32)
        ephemeral = X25519PrivateKey.from_private_bytes(k)
        assert _x25519.x25519_comb(k, table) == ephemeral.exchange(server.public_key())


def test_a_comb_for_another_key_or_of_the_wrong_size_is_refused() -> None:
    ours, theirs = (public_key_bytes(X25519PrivateKey.generate()) for _ in range(2))
    table = _x25519.decode_comb(comb.recipient_comb(theirs))
    assert not _x25519.comb_matches(table, ours)
    with pytest.raises(ValueError, match="1440"):
        _x25519.decode_comb(b"\x00" * 96)
    with pytest.raises(ValueError, match="32 raw bytes"):
        comb.recipient_comb(b"short")


def test_a_u_on_the_twist_has_no_comb() -> None:
    """About half of all u-coordinates are points of the quadratic twist, which no
    X25519 key pair has as its public key: the server refuses them."""
    refused = 0
    for u in range(2, 40):
        try:
            x, y = comb.edwards_point(u)
        except ValueError:
            refused += 1
            continue
        # On the curve: -x^2 + y^2 = 1 + d x^2 y^2.
        assert (-x * x + y * y - 1 - comb.D * x * x * y * y) % comb.P == 0
    assert 5 < refused < 33
    with pytest.raises(ValueError, match="-1"):
        comb.edwards_point(comb.P - 1)


@pytest.mark.parametrize("length", [0, 5000])
def test_a_seal_with_the_recipient_comb_opens_on_the_server(length: int, server_key) -> None:
    plaintext = os.urandom(length)
    raw = comb.recipient_comb(public_key_bytes(server_key))
    sealed = seal.seal(
        plaintext, public_key_bytes(server_key), CHALLENGE, backend="pure", recipient_comb=raw
    )
    assert open_line(seal.format_line(sealed), server_key, CHALLENGE) == plaintext


def test_a_seal_given_another_keys_comb_uses_the_ladder_and_says_so(
    server_key, capsys: pytest.CaptureFixture[str]
) -> None:
    other = comb.recipient_comb(public_key_bytes(X25519PrivateKey.generate()))
    recipient = public_key_bytes(server_key)
    for wrong, note in ((other, "not the table of --recipient"), (other[:-1], "1440 bytes")):
        sealed = seal.seal(b"x", recipient, CHALLENGE, backend="pure", recipient_comb=wrong)
        assert open_line(seal.format_line(sealed), server_key, CHALLENGE) == b"x"
        assert note in capsys.readouterr().err


def test_fixed_base_comb_equals_the_ladder_on_random_and_edge_scalars() -> None:
    scalars = [os.urandom(32) for _ in range(200)]
    scalars += [b"\x00" * 32, b"\xff" * 32, b"\x08" + b"\x00" * 31, b"\x00" * 31 + b"\x40"]
    for k in scalars:
        assert _x25519.x25519_base(k) == _x25519.x25519(k, _x25519.BASE_POINT), k.hex()


def test_chacha20_rfc8439_encryption_vector() -> None:
    # RFC 8439 section 2.4.2.
    key = bytes(range(32))
    nonce = h("000000000000004a00000000")
    expected = h(
        "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
        "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
        "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
        "5af90bbf74a35be6b40b8eedf2785e42874d"
    )
    assert _chacha.chacha20_xor(key, 1, nonce, SUNSCREEN) == expected
    assert _chacha.chacha20_xor(key, 1, nonce, expected) == SUNSCREEN


def test_poly1305_rfc8439_vector() -> None:
    # RFC 8439 section 2.5.2.
    key = h("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    tag = _chacha.poly1305(key, b"Cryptographic Forum Research Group")
    assert tag == h("a8061dc1305136c6c22b8baf0c0127a9")


def test_aead_rfc8439_vector() -> None:
    # RFC 8439 section 2.8.2.
    key = bytes(range(0x80, 0xA0))
    nonce = h("070000004041424344454647")
    aad = h("50515253c0c1c2c3c4c5c6c7")
    ciphertext = h(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
        "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
        "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
        "3ff4def08e4b7a9de576d26586cec64b6116"
    )
    tag = h("1ae10b594f09e26a7e902ecbd0600691")
    assert _chacha.aead_encrypt(key, nonce, SUNSCREEN, aad) == ciphertext + tag
    assert _chacha.aead_decrypt(key, nonce, ciphertext + tag, aad) == SUNSCREEN


def test_hkdf_rfc5869_case_1() -> None:
    okm = seal.hkdf_sha256(bytes([0x0B] * 22), bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm == h(
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


# --- pure primitives against cryptography, byte for byte ----------------------------


@pytest.mark.parametrize("length", LENGTHS)
def test_chacha20_matches_cryptography(length: int) -> None:
    key, nonce, data = os.urandom(32), os.urandom(12), os.urandom(length)
    counter = 7
    # cryptography's ChaCha20 takes the 16-byte IV of RFC 7539: counter || nonce.
    iv = counter.to_bytes(4, "little") + nonce
    expected = Cipher(algorithms.ChaCha20(key, iv), mode=None).encryptor().update(data)
    assert _chacha.chacha20_xor(key, counter, nonce, data) == expected


@pytest.mark.parametrize("length", LENGTHS)
def test_poly1305_matches_cryptography(length: int) -> None:
    key, data = os.urandom(32), os.urandom(length)
    assert _chacha.poly1305(key, data) == Poly1305.generate_tag(key, data)


@pytest.mark.parametrize("length", LENGTHS)
def test_aead_matches_cryptography(length: int) -> None:
    key, nonce, data, aad = os.urandom(32), os.urandom(12), os.urandom(length), os.urandom(27)
    sealed = ChaCha20Poly1305(key).encrypt(nonce, data, aad)
    assert _chacha.aead_encrypt(key, nonce, data, aad) == sealed
    assert _chacha.aead_decrypt(key, nonce, sealed, aad) == data


def test_aead_decrypt_rejects_any_flipped_bit() -> None:
    key, nonce, aad = os.urandom(32), os.urandom(12), b"aad"
    sealed = _chacha.aead_encrypt(key, nonce, b"twenty bytes of text", aad)
    for i in range(len(sealed) * 8):
        damaged = bytearray(sealed)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(_chacha.AuthenticationError):
            _chacha.aead_decrypt(key, nonce, bytes(damaged), aad)
    with pytest.raises(_chacha.AuthenticationError):
        _chacha.aead_decrypt(key, nonce, sealed, b"other aad")


def test_chacha20_refuses_counter_overflow() -> None:
    with pytest.raises(ValueError, match="counter"):
        _chacha.chacha20_keystream(bytes(32), 2**32 - 1, bytes(12), 2)


@pytest.mark.parametrize("_", range(8))
def test_x25519_matches_cryptography(_: int) -> None:
    a, b = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    assert _x25519.x25519_base(raw_private(a)) == public_key_bytes(a)
    assert _x25519.x25519(raw_private(a), public_key_bytes(b)) == a.exchange(b.public_key())


@pytest.mark.parametrize("length", [1, 32, 42, 100])
def test_hkdf_matches_cryptography(length: int) -> None:
    ikm, salt, info = os.urandom(32), os.urandom(64), b"fleetstat/1 payload"
    expected = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)
    assert seal.hkdf_sha256(ikm, salt, info, length) == expected


# --- the sealed format, both implementations ------------------------------------------


@pytest.mark.parametrize("length", LENGTHS)
def test_pure_and_cryptography_seal_identical_bytes(length: int, server_key) -> None:
    plaintext, e, nonce = os.urandom(length), os.urandom(32), os.urandom(12)
    recipient = public_key_bytes(server_key)
    pure = seal._seal_pure(plaintext, recipient, CHALLENGE, ephemeral_private=e, nonce=nonce)
    fast = seal._seal_cryptography(
        plaintext, recipient, CHALLENGE, ephemeral_private=e, nonce=nonce
    )
    assert pure == fast
    assert len(pure) == seal.OVERHEAD + length


@pytest.mark.parametrize("backend", ["pure", "cryptography", "auto"])
@pytest.mark.parametrize("length", [0, 1, 5000])
def test_probe_seal_opens_on_server(backend: str, length: int, server_key) -> None:
    plaintext = os.urandom(length)
    sealed = seal.seal(plaintext, public_key_bytes(server_key), CHALLENGE, backend=backend)
    line = seal.format_line(sealed)
    assert line.startswith("FLEETSTAT/1 ")
    assert "=" not in line
    assert open_line(line, server_key, CHALLENGE) == plaintext
    assert open_line(line.encode("ascii") + b"\r\n", server_key, CHALLENGE) == plaintext


@pytest.mark.parametrize("length", [0, 1, 5000])
def test_server_seal_opens_with_pure_path(length: int, server_key) -> None:
    plaintext = os.urandom(length)
    line = seal_line(plaintext, server_key.public_key(), CHALLENGE)
    sealed = b64url_decode(line.removeprefix(MAGIC + " "))
    assert seal.open_sealed(sealed, raw_private(server_key), CHALLENGE) == plaintext
    # seal_line also takes the raw public key.
    line = seal_line(plaintext, public_key_bytes(server_key), CHALLENGE)
    assert open_line(line, server_key, CHALLENGE) == plaintext


def test_pure_open_rejects_wrong_challenge_and_key(server_key) -> None:
    sealed = seal.seal(b"x", public_key_bytes(server_key), CHALLENGE, backend="pure")
    with pytest.raises(seal.AuthenticationError):
        seal.open_sealed(sealed, raw_private(server_key), b"another challenge")
    with pytest.raises(seal.AuthenticationError):
        seal.open_sealed(sealed, os.urandom(32), CHALLENGE)


def test_seal_refuses_bad_arguments(server_key) -> None:
    with pytest.raises(ValueError, match="32 raw bytes"):
        seal.seal(b"x", b"short", CHALLENGE)
    with pytest.raises(ValueError, match="backend"):
        seal.seal(b"x", public_key_bytes(server_key), CHALLENGE, backend="openssl")
    # A low-order point (here 0) would give an all-zero, publicly known key.
    for backend in ("pure", "cryptography"):
        with pytest.raises(ValueError):
            seal.seal(b"x", bytes(32), CHALLENGE, backend=backend)


def test_auto_backend_uses_cryptography_when_present() -> None:
    assert seal.backend_in_use() == "cryptography"


def test_pure_seal_runs_on_python36(tmp_path: Path, server_key) -> None:
    """The oldest supported Python seals a payload the server opens.

    The three files are copied as package ``fleetstat_probe``, the way the zipapp
    ships them, and run with ``-I -S`` so the host's site-packages (and any
    ``cryptography`` there) stay out.
    """
    python = _find_python36()
    if python is None:
        pytest.skip("no Python 3.6 interpreter (set FLEETSTAT_PY36)")
    package = tmp_path / "fleetstat_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("seal.py", "_chacha.py", "_x25519.py", "_os.py"):
        shutil.copy(PROBE_DIR / name, package / name)
    plaintext = zlib.compress(json.dumps({"schema": 1, "pad": "x" * 20_000}).encode())
    (tmp_path / "payload.bin").write_bytes(plaintext)
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from fleetstat_probe import seal;"
        "data = open(sys.argv[2], 'rb').read();"
        "key = seal.b64url_decode(sys.argv[3]); challenge = seal.b64url_decode(sys.argv[4]);"
        "table = seal.b64url_decode(sys.argv[5]);"
        "print(seal.backend_in_use(), seal.format_line(seal.seal(data, key, challenge)),"
        " seal.format_line(seal.seal(data, key, challenge, recipient_comb=table)))"
    )
    result = subprocess.run(
        [
            python,
            "-I",
            "-S",
            "-c",
            script,
            str(tmp_path),
            str(tmp_path / "payload.bin"),
            public_key_b64(server_key),
            b64url_encode(CHALLENGE),
            b64url_encode(comb.recipient_comb(public_key_bytes(server_key))),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    backend, *lines = result.stdout.strip().split(" ")
    assert backend == "pure"
    assert len(lines) == 4  # two lines, each "FLEETSTAT/1 <sealed>": ladder, then comb
    for line in (" ".join(lines[:2]), " ".join(lines[2:])):
        assert decode_document(open_line(line, server_key, CHALLENGE))["schema"] == 1
    assert result.stderr == ""  # the comb was taken, not ignored


def _find_python36() -> str | None:
    candidates = [os.environ.get("FLEETSTAT_PY36", "")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.6*/bin/python3.6"))
    candidates.append(shutil.which("python3.6") or "")
    for candidate in filter(None, candidates):
        # A pyenv shim exists even when 3.6 is not selected: check that it runs.
        probe = subprocess.run(
            [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 6)"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode == 0:
            return candidate
    return None


# --- open_line failures -------------------------------------------------------------


@pytest.fixture(scope="module")
def short_line(server_key) -> str:
    return seal.format_line(
        seal.seal(b"a short payload", public_key_bytes(server_key), CHALLENGE, backend="pure")
    )


def test_every_flipped_character_is_rejected(short_line: str, server_key) -> None:
    for i in range(len(short_line)):
        damaged = short_line[:i] + chr(ord(short_line[i]) ^ 1) + short_line[i + 1 :]
        with pytest.raises(EnvelopeError):
            open_line(damaged, server_key, CHALLENGE)


def test_every_flipped_bit_of_the_sealed_bytes_is_rejected(short_line: str, server_key) -> None:
    # Including bit 255 of E, which X25519 itself ignores (RFC 7748 section 5):
    # E is in the HKDF salt, so the key changes anyway.
    sealed = b64url_decode(short_line.removeprefix(MAGIC + " "))
    for i in range(len(sealed) * 8):
        damaged = bytearray(sealed)
        damaged[i // 8] ^= 1 << (i % 8)
        with pytest.raises(EnvelopeError, match="authentication"):
            open_line(seal.format_line(bytes(damaged)), server_key, CHALLENGE)


def test_wrong_challenge_is_rejected(short_line: str, server_key) -> None:
    with pytest.raises(EnvelopeError, match="replayed"):
        open_line(short_line, server_key, bytes(16))


def test_wrong_private_key_is_rejected(short_line: str) -> None:
    with pytest.raises(EnvelopeError, match="another key"):
        open_line(short_line, X25519PrivateKey.generate(), CHALLENGE)


def test_truncated_lines_are_rejected(short_line: str, server_key) -> None:
    for cut in range(1, len(short_line)):
        with pytest.raises(EnvelopeError):
            open_line(short_line[:cut], server_key, CHALLENGE)


def test_short_payload_says_truncated(server_key) -> None:
    with pytest.raises(EnvelopeError, match="truncated"):
        open_line(seal.format_line(bytes(59)), server_key, CHALLENGE)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "hello world",
        "Traceback (most recent call last):",
        "FLEETSTAT/2 AAAA",
        "fleetstat/1 AAAA",
        "FLEETSTAT/1",
        b"\xff\xfe FLEETSTAT/1 AAAA",
    ],
)
def test_non_fleetstat_lines_are_rejected(line: str | bytes, server_key) -> None:
    with pytest.raises(EnvelopeError, match="not a FLEETSTAT/1 line"):
        open_line(line, server_key, CHALLENGE)


@pytest.mark.parametrize("suffix", ["=", "==", "!", " extra", "+", "/"])
def test_bad_base64_is_rejected(short_line: str, suffix: str, server_key) -> None:
    with pytest.raises(EnvelopeError, match="base64url"):
        open_line(short_line + suffix, server_key, CHALLENGE)


def test_overlong_line_is_rejected_before_decoding(short_line: str, server_key) -> None:
    with pytest.raises(EnvelopeError, match="longer than"):
        open_line(short_line, server_key, CHALLENGE, max_line_bytes=len(short_line) - 1)
    assert open_line(short_line, server_key, CHALLENGE, max_line_bytes=len(short_line))


def test_low_order_ephemeral_key_is_rejected(server_key) -> None:
    # E = 0 gives an all-zero shared secret (RFC 7748 section 6.1): anyone could
    # have sealed it.
    with pytest.raises(EnvelopeError, match="authentication"):
        open_line(seal.format_line(bytes(32 + 12 + 16)), server_key, CHALLENGE)


def test_b64url_is_strict_and_round_trips() -> None:
    for length in range(0, 40):
        data = os.urandom(length)
        text = b64url_encode(data)
        assert "=" not in text
        assert b64url_decode(text) == data
        assert seal.b64url_decode(text) == data
    for bad in ["A", "AB=", "A+B/", "AB C", "AB\n", "AF"]:  # "AF": non-zero unused bits
        with pytest.raises(ValueError):
            b64url_decode(bad)


# --- decode_document ---------------------------------------------------------------


def test_decode_document_round_trip() -> None:
    doc = {"schema": 1, "host": {"hostname": "web-01"}, "text": "é"}
    assert decode_document(zlib.compress(json.dumps(doc).encode("utf-8"))) == doc


def test_decode_document_rejects_a_zlib_bomb() -> None:
    # 65 MiB of zeros, compressed in pieces: about 65 KiB on the wire.
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(bytes(1 << 20)) for _ in range(65)]
    bomb = b"".join(chunks) + compressor.flush()
    assert len(bomb) < 100_000
    with pytest.raises(EnvelopeError, match="expands beyond"):
        decode_document(bomb)


def test_decode_document_limit_is_inclusive() -> None:
    body = json.dumps({"schema": 1, "pad": "x" * 100}).encode()
    assert decode_document(zlib.compress(body), max_bytes=len(body))["schema"] == 1
    with pytest.raises(EnvelopeError, match="expands beyond"):
        decode_document(zlib.compress(body), max_bytes=len(body) - 1)


@pytest.mark.parametrize(
    ("plaintext", "message"),
    [
        (b"not zlib at all", "not zlib"),
        (zlib.compress(b'{"schema": 1}')[:-3], "truncated"),
        (zlib.compress(b'{"schema": 1}') + b"junk", "trailing"),
        (zlib.compress(b'{"schema": 1, "x": "\xff"}'), "UTF-8"),
        (zlib.compress(b"{schema: 1}"), "not JSON"),
        (zlib.compress(b"[1, 2]"), "not an object"),
        (zlib.compress(b'{"host": {}}'), "schema"),
        (zlib.compress(b'{"schema": "1"}'), "schema"),
        (zlib.compress(b'{"schema": true}'), "schema"),
        (zlib.compress(b"[" * 100_000 + b"]" * 100_000), "nested|not JSON"),
    ],
)
def test_decode_document_rejects_bad_documents(plaintext: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode_document(plaintext)


# --- key files ----------------------------------------------------------------------


def test_generate_keypair_writes_private_0600_and_public(tmp_path: Path) -> None:
    path = tmp_path / "fleetstat.key"
    old_umask = os.umask(0)  # a careless umask must not widen the key file
    try:
        public = generate_keypair(path)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    pub_text = (tmp_path / "fleetstat.key.pub").read_text()
    assert pub_text == public_key_b64(public) + "\n"
    assert len(b64url_decode(pub_text.strip())) == 32
    loaded = load_private_key(path)
    assert public_key_bytes(loaded) == public_key_bytes(public)
    assert check_key_permissions(path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleetstat.key", "fleetstat.key.pub"]


def test_generate_keypair_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "fleetstat.key"
    first = generate_keypair(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="--force"):
        generate_keypair(path)
    assert path.read_bytes() == before
    second = generate_keypair(path, force=True)
    assert public_key_bytes(second) != public_key_bytes(first)
    assert public_key_bytes(load_private_key(path)) == public_key_bytes(second)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_generate_keypair_refuses_when_only_pub_exists(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("something\n")
    with pytest.raises(KeyFileError, match="--force"):
        generate_keypair(tmp_path / "k")
    assert not (tmp_path / "k").exists()


def test_generate_keypair_makes_a_missing_folder_private(tmp_path: Path) -> None:
    generate_keypair(tmp_path / "nope" / "fleetstat.key")
    assert stat.S_IMODE((tmp_path / "nope").stat().st_mode) == 0o700
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(KeyFileError, match="cannot write"):
        generate_keypair(blocker / "fleetstat.key")


def test_keygen_output_works_end_to_end(tmp_path: Path) -> None:
    public = generate_keypair(tmp_path / "k")
    recipient = b64url_decode((tmp_path / "k.pub").read_text().strip())
    line = seal.format_line(seal.seal(b"payload", recipient, CHALLENGE, backend="pure"))
    assert open_line(line, load_private_key(tmp_path / "k"), CHALLENGE) == b"payload"
    assert recipient == public_key_bytes(public)


def test_load_private_key_missing(tmp_path: Path) -> None:
    path = tmp_path / "absent.key"
    with pytest.raises(KeyFileError, match="not found") as info:
        load_private_key(path)
    assert str(path) in str(info.value)
    assert "fleetstat keygen" in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a PEM private key"),
        (b"garbage\n", "not a PEM private key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a PEM"),
        (b"x" * 70_000, "too large"),
    ],
)
def test_load_private_key_malformed(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message) as info:
        load_private_key(path)
    assert str(path) in str(info.value)


def test_load_private_key_wrong_type_and_encrypted(tmp_path: Path) -> None:
    ed = tmp_path / "ed.key"
    ed.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match="not X25519"):
        load_private_key(ed)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(KeyFileError, match="encrypted"):
        load_private_key(encrypted)


def test_load_private_key_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="directory"):
        load_private_key(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_load_private_key_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "k"
    generate_keypair(path)
    path.chmod(0)
    with pytest.raises(KeyFileError, match="permission denied"):
        load_private_key(path)


def test_check_key_permissions_warns_when_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "k"
    generate_keypair(path)
    path.chmod(0o644)
    warning = check_key_permissions(path)
    assert warning is not None
    assert "chmod 600" in warning


def test_public_key_helpers_agree() -> None:
    key = X25519PrivateKey.generate()
    raw = public_key_bytes(key)
    assert raw == public_key_bytes(key.public_key())
    assert b64url_decode(public_key_b64(key)) == raw
    assert X25519PublicKey.from_public_bytes(raw).public_bytes_raw() == raw
    assert envelope.MAGIC == seal.MAGIC == "FLEETSTAT/1"


def test_envelope_does_not_import_the_probe() -> None:
    # The probe is a leaf the server only packages (DESIGN.md); the server-side
    # twin must stand on its own.
    tree = ast.parse(Path(envelope.__file__).read_text())
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert imported
    assert not [name for name in imported if name.startswith("fleetstat.probe")]
