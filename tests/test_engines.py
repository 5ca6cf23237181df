"""The phe back end and the fast engine compute the same plaintexts (the benchmark compares like with like)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedcredit.protocols.hetero_lr.engines import make_engine
from fedcredit.protocols.paillier import from_residue, to_residue
from helpers import paillier_keypair


@pytest.fixture(scope="module")
def keys():
    return paillier_keypair(1024, 3)


@pytest.mark.parametrize("name", ["fast", "phe"])
def test_engine_arithmetic(keys, name: str) -> None:
    pk, sk = keys
    rng = random.Random(9)
    eng = make_engine(name, pk, rng)
    ms = [0, 1, -1, 123456789, -(2**60), 2**100]
    cs = eng.encrypt_raw_many([to_residue(pk, m) for m in ms])
    assert [from_residue(pk, sk.decrypt_raw(c)) for c in cs] == ms
    assert from_residue(pk, sk.decrypt_raw(eng.rerandomize(cs[3]))) == ms[3]
    assert eng.rerandomize(cs[3]) != cs[3]
    x = np.random.default_rng(1).integers(-(2**20), 2**20, size=(len(ms), 3))
    got = [from_residue(pk, sk.decrypt_raw(c)) for c in eng.matvec_t(cs, x)]
    assert got == [sum(int(m) * int(v) for m, v in zip(ms, x[:, j])) for j in range(3)]
    assert from_residue(pk, sk.decrypt_raw(eng.dot(cs, [2, 0, -3, 1, 1, -1]))) == 2 * 0 + -3 * -1 + 123456789 - 2**60 - 2**100


def test_unknown_engine_is_refused(keys) -> None:
    with pytest.raises(ValueError):
        make_engine("heu", keys[0], random.Random(1))
