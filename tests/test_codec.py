"""Tests for federated.codec: every protocol payload round-trips through protobuf, bad input is refused."""

from __future__ import annotations

import math
import random

import gmpy2
import numpy as np
import pytest

from fedcredit.v1 import hetero_lr_pb2 as lr_pb
from fedcredit.v1 import psi_pb2
from federated.codec import decode_payload, encode_payload, payload_type_name, registered_types
from protocols.core import Aggregate, Ciphertext, Classification, Masked, Plaintext, Public
from protocols.errors import ProtocolError
from protocols.hetero_lr import protocol as lr
from protocols.hetero_lr.params import HeteroLRParams, plan_budget
from protocols.paillier import Encryptor, generate_keypair, ops
from protocols.psi.ecdh import blind, hash_to_point, random_scalar
from protocols.hetero_lr import ckks_protocol as ck
from protocols.hetero_lr.ckks_protocol import CkksLRStep
from protocols.hetero_lr import two_party as tp
from protocols.psi import protocol as psi
from protocols.psi import unbalanced as ub
from protocols.psi.ot import protocol as ot
from protocols.psi.protocol import BlindedPoints, MatchedPositions, PsiStep

SALT = bytes(range(16))


@pytest.fixture(scope="module")
def keypair():
    return generate_keypair(1024, random.Random(99))


def _samples(pk, sk) -> dict[type, list]:
    """Realistic instances of every payload type (several per type, including edge cases)."""
    params = HeteroLRParams(key_bits=1024)
    enc = Encryptor(pk, random.Random(5))
    rng = np.random.default_rng(0)
    n = 20
    u_h = rng.normal(size=n)
    u_g = rng.normal(size=n)
    y = 2.0 * rng.integers(0, 2, size=n) - 1.0
    x = rng.normal(size=(n, 3))
    scores = lr.host_encrypt_scores(pk, enc, u_h, params)
    resid = lr.guest_residuals(pk, enc, scores, u_g, y, params)
    grad = lr.encrypted_gradient(pk, resid, lr.quantize(x, params.feature_frac_bits), params.feature_frac_bits)
    plan = plan_budget(params, n_train=n, max_abs_feature=float(np.max(np.abs(x))))
    masked, masks = lr.mask_gradient(pk, enc, grad, plan, random.Random(6))
    fp = pk.fingerprint()
    # a vector mixing full-width ciphertexts with very short ones (leading zero bytes when fixed-width)
    mixed = lr.EncryptedVector(fp, 48, (gmpy2.mpz(1), resid.residuals.values[0], ops.dot(pk, [resid.residuals.values[1]], [0]), gmpy2.mpz(256)))
    empty = lr.EncryptedVector(fp, 32, ())
    loss = lr.EncryptedLoss(lr.EncryptedVector(fp, 48, (enc.rerandomize(scores.eighth_square_sum.values[0]),)))
    points = blind(random_scalar(random.Random(1)), [hash_to_point(SALT, f"ID{i}") for i in range(5)])
    pk2, _ = generate_keypair(2048, random.Random(7))
    return {
        BlindedPoints: [BlindedPoints(()), BlindedPoints((points[0],)), BlindedPoints(tuple(points))],
        MatchedPositions: [MatchedPositions(()), MatchedPositions((0,)), MatchedPositions((4, 0, 2, 2**31 + 5))],
        lr.PublicKeyMessage: [lr.PublicKeyMessage(pk), lr.PublicKeyMessage(pk2)],
        lr.TrainingPlan: [lr.TrainingPlan(455, 114, 7), lr.TrainingPlan(10**7, 0, 1), lr.TrainingPlan(0, 0, 0)],
        lr.EncryptedScores: [scores, lr.EncryptedScores(empty, scores.eighth_square_sum)],
        lr.EncryptedResiduals: [resid, lr.EncryptedResiduals(mixed), lr.EncryptedResiduals(empty)],
        lr.EncryptedMaskedGradient: [masked, lr.EncryptedMaskedGradient(empty)],
        lr.MaskedGradient: [
            lr.decrypt_masked(sk, masked),
            lr.MaskedGradient((0, -1, 1, -(2**200) - 7, 2**300 + 1, 255, -256), 48),
            lr.MaskedGradient((), 0),
            lr.MaskedGradient((masks[0], -masks[1]), -5),
        ],
        lr.EncryptedLoss: [loss],
        lr.EpochDecision: [lr.EpochDecision(1, 0.6931471805599453, False, ""),
                           lr.EpochDecision(5, 0.123456789012345, True, "loss changed by 1e-05 < tol — ünïcode")],
        lr.HostTestScores: [lr.HostTestScores(()), lr.HostTestScores((0.0, -1.5, 3.14159e-300, 1e300, -0.1))],
        lr.EvaluationMetrics: [lr.EvaluationMetrics(0.9993606138107417, 0.985, 114, 68), lr.EvaluationMetrics(0.5, 0.0, 0, 0)],
        # CKKS payloads carry opaque serialized bytes: the codec must move them unchanged.
        ck.CkksPublicContext: [ck.CkksPublicContext(b""), ck.CkksPublicContext(bytes(range(256)) * 3)],
        ck.CkksEncryptedScores: [ck.CkksEncryptedScores(b"f" * 16, b"\x00q" * 50, b"s")],
        ck.CkksEncryptedResiduals: [ck.CkksEncryptedResiduals(b"f" * 16, b"r" * 99), ck.CkksEncryptedResiduals(b"", b"")],
        ck.CkksMaskedCiphertexts: [ck.CkksMaskedCiphertexts(b"f" * 16, 512, 512, 14, (b"a" * 10, b"", b"\xff" * 3)),
                                   ck.CkksMaskedCiphertexts(b"f" * 16, 0, 0, 0, ())],
        ck.CkksEpochLoss: [ck.CkksEpochLoss(0.6931471805599453), ck.CkksEpochLoss(-0.0)],
        psi.SetSize: [psi.SetSize(0), psi.SetSize(2**20)],
        ub.CacheDigest: [ub.CacheDigest(b"k" * 32, b"d" * 32, 1 << 20, b"s" * 32), ub.CacheDigest(b"k" * 32, b"d" * 32, 0, b"s" * 16)],
        ub.CacheStatus: [ub.CacheStatus(True), ub.CacheStatus(False)],
        ub.CachedDigests: [ub.CachedDigests(()), ub.CachedDigests(tuple(bytes([i]) * 16 for i in range(5)))],
        ot.OtHostSetup: [ot.OtHostSetup(1 << 20, b"k" * 16), ot.OtHostSetup(0, b"k" * 16)],
        ot.OtGuestSetup: [ot.OtGuestSetup(1000, 2048, b"s" * 16, b"\x01" * 384)],
        ot.BaseOtElements: [ot.BaseOtElements(b"\x02" * 384 * 3)],
        ot.CorrectionRows: [ot.CorrectionRows(b"\x03" * 56 * 10)],
        ot.OprfValues: [ot.OprfValues(b"\x04" * 11 * 6)],
        # two-party mode: ciphertext vectors and ring residues of fixed width
        tp.PartySetup: [tp.PartySetup(pk, 11, 455, 114), tp.PartySetup(pk2, 0, 0, 0)],
        tp.EncryptedShares: [tp.EncryptedShares(resid.residuals), tp.EncryptedShares(empty)],
        tp.MaskedConversion: [tp.MaskedConversion(mixed, 20, 301, 6), tp.MaskedConversion(empty, 0, 1, 1)],
        tp.EncryptedResidualShare: [tp.EncryptedResidualShare(resid.residuals)],
        tp.MaskedGradientShare: [tp.MaskedGradientShare(masked.values)],
        tp.MaskedLoss: [tp.MaskedLoss(loss.value)],
        tp.MaskedLossReply: [tp.MaskedLossReply(0, 160), tp.MaskedLossReply(2**160 - 1, 160), tp.MaskedLossReply(5, 64)],
        tp.ScoreShares: [tp.ScoreShares((5, 2**160 - 1), 160), tp.ScoreShares((), 160)],
        tp.WeightShare: [tp.WeightShare((0, 1, 2**160 - 1), 160), tp.WeightShare((), 192)],
    }


def _assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, (lr.EncryptedScores, lr.EncryptedResiduals, lr.EncryptedMaskedGradient, lr.EncryptedLoss,
                      tp.EncryptedShares, tp.EncryptedResidualShare, tp.MaskedGradientShare, tp.MaskedLoss)):
        for f in a.__dataclass_fields__:
            va, vb = getattr(a, f), getattr(b, f)
            assert va.key_fingerprint == vb.key_fingerprint
            assert va.exponent == vb.exponent
            assert [int(c) for c in va.values] == [int(c) for c in vb.values]
    elif isinstance(a, lr.PublicKeyMessage):
        assert int(a.public_key.n) == int(b.public_key.n)
        assert a.public_key.fingerprint() == b.public_key.fingerprint()
    assert a == b


def test_samples_cover_every_registered_type(keypair):
    samples = _samples(*keypair)
    assert set(samples) == set(registered_types())
    assert len(registered_types()) == len(set(registered_types()))


def test_round_trip_every_registered_type(keypair):
    for t, instances in _samples(*keypair).items():
        for msg in instances:
            name, data = encode_payload(msg)
            assert name == payload_type_name(t)
            assert isinstance(data, bytes)
            back = decode_payload(name, data, expected=t)
            _assert_same(msg, back)
            assert decode_payload(name, data) == msg  # without the expected-type check too
            # deterministic encoding
            assert encode_payload(msg) == (name, data)


def test_decoded_ciphertexts_still_decrypt(keypair):
    pk, sk = keypair
    samples = _samples(pk, sk)
    masked = samples[lr.EncryptedMaskedGradient][0]
    back = decode_payload(*encode_payload(masked), expected=lr.EncryptedMaskedGradient)
    assert lr.decrypt_masked(sk, back) == lr.decrypt_masked(sk, masked)


def test_masked_gradient_keeps_sign_and_magnitude():
    msg = lr.MaskedGradient((-(2**521) + 3, 2**521 - 3, 0), 48)
    back = decode_payload(*encode_payload(msg))
    assert back.values == msg.values and back.exponent == 48
    assert all(type(v) is int for v in back.values)


def test_evaluation_metrics_nan_round_trip():
    back = decode_payload(*encode_payload(lr.EvaluationMetrics(float("nan"), float("nan"), 3, 0)))
    assert math.isnan(back.auc) and math.isnan(back.ks) and back.n_test == 3 and back.positives == 0


# --------------------------------------------------------------------------- refusals


def test_wrong_expected_type_raises_protocol_error():
    name, data = encode_payload(lr.TrainingPlan(10, 2, 1))
    with pytest.raises(ProtocolError):
        decode_payload(name, data, expected=lr.EpochDecision)
    name, data = encode_payload(lr.MaskedGradient((1, 2), 3))
    with pytest.raises(ProtocolError):
        decode_payload(name, data, expected=lr.EncryptedMaskedGradient)


def test_unknown_payload_type_raises_protocol_error():
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.NoSuchMessage", b"")
    with pytest.raises(ProtocolError):
        decode_payload("", b"")


def test_unencodable_type_raises_protocol_error():
    with pytest.raises(ProtocolError):
        encode_payload(lr.EncryptedVector(b"x" * 32, 0, ()))  # a field type, not a payload


@pytest.mark.parametrize("garbage", [b"\x0a\xff", b"\xff\xff\xff\xff", b"\x08", b"\x12\x05abc"])
def test_garbage_bytes_raise_protocol_error(garbage):
    for t in registered_types():
        with pytest.raises(ProtocolError):
            decode_payload(payload_type_name(t), garbage, expected=t)


def test_encrypted_vector_count_width_mismatch_raises_protocol_error():
    vec = lr_pb.EncryptedVector(key_fingerprint=b"\x01" * 32, exponent=32, count=3, width=4, ciphertexts=b"\x01" * 11)
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.EncryptedResiduals", lr_pb.EncryptedResiduals(residuals=vec).SerializeToString())
    vec = lr_pb.EncryptedVector(key_fingerprint=b"\x01" * 32, exponent=32, count=2, width=4, ciphertexts=b"\x01" * 12)
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.EncryptedMaskedGradient", lr_pb.EncryptedMaskedGradient(values=vec).SerializeToString())
    vec = lr_pb.EncryptedVector(count=2, width=0, ciphertexts=b"")
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.EncryptedLoss", lr_pb.EncryptedLoss(value=vec).SerializeToString())


def test_other_inconsistent_payloads_raise_protocol_error():
    bad_points = psi_pb2.BlindedPoints(count=2, points=b"\x09" * 33).SerializeToString()
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.BlindedPoints", bad_points)
    bad_ints = lr_pb.MaskedGradient(values=lr_pb.IntVector(exponent=1, count=2, width=32, data=b"\x01" * 40))
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.MaskedGradient", bad_ints.SerializeToString())
    small_key = lr_pb.PaillierPublicKey(n=(2**511 + 1).to_bytes(64, "big")).SerializeToString()
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.PaillierPublicKey", small_key)


def test_encrypted_vector_zero_width_zero_count_is_not_a_crash():
    vec = lr_pb.EncryptedVector(key_fingerprint=b"\x01" * 32, exponent=32, count=0, width=0, ciphertexts=b"")
    data = lr_pb.EncryptedResiduals(residuals=vec).SerializeToString()
    try:
        msg = decode_payload("fedcredit.v1.EncryptedResiduals", data, expected=lr.EncryptedResiduals)
    except ProtocolError:
        return
    assert msg.residuals.values == ()


def test_even_public_key_modulus_raises_protocol_error():
    even = lr_pb.PaillierPublicKey(n=(2**1100).to_bytes(139, "big")).SerializeToString()
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.PaillierPublicKey", even, expected=lr.PublicKeyMessage)


# --------------------------------------------------------------------------- step tables


_BASES = (Ciphertext, Masked, Public, Aggregate, Plaintext)


@pytest.mark.parametrize("step", list(PsiStep) + list(ub.UnbalancedStep) + list(ot.OtPsiStep) + list(lr.LRStep) + list(CkksLRStep) + list(tp.TwoPartyStep), ids=lambda s: s.wire)
def test_every_step_payload_has_a_codec_and_a_classification(step):
    payload = step.spec.payload
    assert payload in registered_types()
    assert payload_type_name(payload).startswith("fedcredit.v1.")
    assert payload.classification in set(Classification)
    assert isinstance(payload.classification, Classification)
    assert sum(issubclass(payload, b) for b in _BASES) == 1


def test_ring_vectors_have_a_fixed_width_and_refuse_non_residues():
    small = encode_payload(tp.WeightShare((0, 0, 1), 160))[1]
    big = encode_payload(tp.WeightShare((2**160 - 1, 2**159, 2**158 + 3), 160))[1]
    assert len(small) == len(big)  # sizes never depend on the values
    with pytest.raises(ProtocolError):
        encode_payload(tp.WeightShare((2**160,), 160))
    bad = lr_pb.WeightShare(values=lr_pb.RingVector(ring_bits=64, count=1, data=b"\xff" * 7)).SerializeToString()
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.WeightShare", bad)
