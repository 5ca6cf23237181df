"""The OT-PSI's bulk AES hashing (fedcredit.protocols.psi.ot.aes_hash) against one-row-at-a-time references."""

from __future__ import annotations

import random

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fedcredit.protocols.psi.ot.aes_hash import cbc_mac_ids, derive_key, mmo_rows
from fedcredit.protocols.psi.ot.cuckoo import id_digests

KEY = derive_key(b"test", b"k" * 16)


def _aes(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(block) + enc.finalize()


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def _cbc_mac_reference(key: bytes, ident: str) -> bytes:
    raw = ident.encode("utf-8")
    msg = len(raw).to_bytes(8, "little") + raw
    msg += bytes(-len(msg) % 16)
    h = bytes(16)
    for i in range(0, len(msg), 16):
        h = _aes(key, _xor(h, msg[i : i + 16]))
    return h


def _mmo_reference(key: bytes, j: int, row: bytes, out_len: int) -> bytes:
    row += bytes(-len(row) % 16)
    out = b""
    for lane in range(2):
        h = j.to_bytes(8, "little") + (int.from_bytes(b"fc-rowh\x01", "little") + lane).to_bytes(8, "little")
        for i in range(0, len(row), 16):
            z = _xor(h, row[i : i + 16])
            h = _xor(_aes(key, z), z)
        out += h
    return out[:out_len]


def test_id_macs_match_the_reference_for_every_length_and_script() -> None:
    ids = ["", "A", "9135" * 2, "x" * 7, "x" * 8, "y" * 23, "y" * 24, "z" * 40, "企业", "Ωmega-é", "12345678901234567X"]
    got = cbc_mac_ids(KEY, ids)
    assert [bytes(r) for r in got] == [_cbc_mac_reference(KEY, s) for s in ids]


def test_id_digests_are_injective_on_lookalikes_and_depend_on_the_salt() -> None:
    ids = ["A", "A\x00", "\x00A", "AA", "A" * 8, "A" * 9, "", " ", "a", "企", "企业"]
    d = id_digests(b"s" * 16, ids)
    assert len({bytes(r) for r in d}) == len(ids)
    assert not np.any(np.all(d == id_digests(b"t" * 16, ids), axis=1))
    # a row does not depend on its neighbours (bulk grouping by length, chunking)
    many = [f"id{i}" * (1 + i % 5) for i in range(3000)]
    bulk = id_digests(b"s" * 16, many)
    assert all(np.array_equal(bulk[i], id_digests(b"s" * 16, [many[i]])[0]) for i in range(0, 3000, 97))


@pytest.mark.parametrize("width,out_len", [(56, 11), (56, 16), (64, 20), (16, 5), (128, 32)])
def test_row_hash_matches_the_reference(width: int, out_len: int) -> None:
    rng = random.Random(width * 100 + out_len)
    k = 37
    rows = np.frombuffer(rng.randbytes(k * width), dtype=np.uint8).reshape(k, width)
    bins = np.array([rng.randrange(1 << 40) for _ in range(k)])
    got = mmo_rows(KEY, bins, rows, out_len)
    assert [bytes(r) for r in got] == [_mmo_reference(KEY, int(j), rows[i].tobytes(), out_len) for i, j in enumerate(bins)]


def test_row_hash_separates_bins_rows_and_keys() -> None:
    rows = np.zeros((4, 56), dtype=np.uint8)
    rows[3, 55] = 1  # one bit in the last block changes the value
    h = mmo_rows(KEY, np.array([0, 1, 2, 0]), rows, 16)
    assert len({bytes(r) for r in h}) == 4
    assert not np.array_equal(h, mmo_rows(derive_key(b"test", b"j" * 16), np.array([0, 1, 2, 0]), rows, 16))
    with pytest.raises(ValueError):
        mmo_rows(KEY, np.array([0]), rows[:1], 33)
