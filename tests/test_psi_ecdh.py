"""fedcredit.protocols.psi.ecdh: X25519 blinding, hashing ids onto the curve proper (never the twist), low-order points."""

from __future__ import annotations

import hashlib
import random

import pytest

from fedcredit.protocols.errors import CryptoError
from fedcredit.protocols.psi.ecdh import blind, hash_to_point, is_on_curve, random_scalar

SALT = bytes(range(16))


def test_blinding_commutes_and_rejects_low_order() -> None:
    rng = random.Random(7)
    a, b = random_scalar(rng), random_scalar(rng)
    pts = [hash_to_point(SALT, f"ID{i}") for i in range(50)]
    assert all(len(p) == 32 for p in pts)
    assert blind(a, blind(b, pts)) == blind(b, blind(a, pts))
    assert blind(a, []) == []
    with pytest.raises(CryptoError):
        blind(a, [bytes(32)])  # u = 0, low order
    with pytest.raises(CryptoError):
        blind(a, [(1).to_bytes(32, "little")])  # u = 1, low order
    with pytest.raises(CryptoError):
        blind(a, [b"\x09" * 31])
    with pytest.raises(CryptoError):
        blind(b"short", pts[:1])


def test_hash_to_point_salt_is_length_prefixed() -> None:
    assert hash_to_point(b"ab", "C") != hash_to_point(b"a", "BC")
    assert hash_to_point(SALT, "X") == hash_to_point(SALT, "X")


P25519 = 2**255 - 19


def _euler_on_curve(u: int) -> bool:
    """Independent curve test: v = u^3 + A u^2 + u is a nonzero square (Euler's criterion)."""
    v = (pow(u, 3, P25519) + 486662 * u * u + u) % P25519
    return v != 0 and pow(v, (P25519 - 1) // 2, P25519) == 1


def _old_hash(salt: bytes, x: str) -> bytes:
    """The previous hash_to_point: raw SHA-512 bytes, about half on the twist."""
    return hashlib.sha512(len(salt).to_bytes(8, "big") + salt + x.encode()).digest()[:32]


def _reference_hash_to_point(salt: bytes, x: str) -> tuple[bytes, int]:
    """The documented try-and-increment, written out independently; returns (point, counter)."""
    for counter in range(64):
        data = b"fedcredit/v1/psi-h2c" + len(salt).to_bytes(8, "big") + salt
        data += counter.to_bytes(4, "big") + x.encode("utf-8")
        u = int.from_bytes(hashlib.sha512(data).digest()[:32], "little") % 2**255 % P25519
        if _euler_on_curve(u):
            return u.to_bytes(32, "little"), counter
    raise AssertionError("no curve point in 64 tries")


def test_hash_to_point_lands_on_curve_only() -> None:
    # Fails on a plain hash: about half of all 32-byte strings are twist points,
    # and that bit is public and survives blinding.
    ids = [f"91350100M{i:09d}" for i in range(1000)]
    assert sum(is_on_curve(hash_to_point(SALT, x)) for x in ids) / len(ids) == 1.0
    old = sum(is_on_curve(_old_hash(SALT, x)) for x in ids) / len(ids)
    assert 0.4 < old < 0.6


def test_hash_to_point_matches_reference() -> None:
    counters = []
    for salt in (SALT, b"another-salt-16b", b"ab"):
        for i in range(100):
            x = f"ID{i}-９Ａ" if i % 7 == 0 else f"ID{i}"  # some non-ASCII ids too
            expected, counter = _reference_hash_to_point(salt, x)
            got = hash_to_point(salt, x)
            assert got == expected
            assert int.from_bytes(got, "little") < P25519  # canonical encoding
            counters.append(counter)
    # Try-and-increment really is exercised: roughly half need a second try.
    assert 0 in counters and max(counters) >= 2
    assert 0.35 < sum(c > 0 for c in counters) / len(counters) < 0.65


def test_is_on_curve() -> None:
    assert is_on_curve((9).to_bytes(32, "little"))  # the X25519 base point
    assert is_on_curve((1).to_bytes(32, "little"))  # order 4: on the curve, but low order
    assert not is_on_curve((P25519 - 1).to_bytes(32, "little"))  # order 4 on the twist
    assert not is_on_curve(bytes(32))  # u = 0: v = 0, shared by curve and twist
    assert not is_on_curve(b"\x09" * 31)
    assert not is_on_curve("9" * 32)  # type: ignore[arg-type]
    # Bit 255 is masked and u is reduced mod p, as X25519 does.
    nine_high = (9 + 2**255).to_bytes(32, "little")
    assert is_on_curve(nine_high)
    assert is_on_curve((9 + P25519).to_bytes(32, "little"))
    for i in range(200):
        u = _old_hash(SALT, f"X{i}")
        assert is_on_curve(u) == _euler_on_curve(int.from_bytes(u, "little") % 2**255 % P25519)


def test_curve_twist_bit_survives_blinding() -> None:
    """Why the hash must avoid the twist: blinding keeps a point's curve/twist side."""
    rng = random.Random(13)
    a = random_scalar(rng)
    raw = [_old_hash(SALT, f"T{i}") for i in range(100)]
    assert [is_on_curve(p) for p in blind(a, raw)] == [is_on_curve(p) for p in raw]
    assert not all(is_on_curve(p) for p in raw)


def test_blinded_hashes_stay_on_curve() -> None:
    rng = random.Random(17)
    a, b = random_scalar(rng), random_scalar(rng)
    pts = [hash_to_point(SALT, f"91440300{i:010d}") for i in range(500)]
    once = blind(a, pts)
    twice = blind(b, once)
    for group in (pts, once, twice):
        assert all(is_on_curve(p) for p in group)
    assert twice == blind(a, blind(b, pts))
    assert len(set(pts)) == len(set(once)) == len(set(twice)) == 500


def test_low_order_curve_points_rejected_by_blind() -> None:
    """The three low-order curve points hash_to_point skips really are low order."""
    from fedcredit.protocols.psi.ecdh import _LOW_ORDER_ON_CURVE

    a = random_scalar(random.Random(19))
    for u in _LOW_ORDER_ON_CURVE:
        point = u.to_bytes(32, "little")
        assert is_on_curve(point)
        with pytest.raises(CryptoError):
            blind(a, [point])

