"""Tests for fedcredit.runtime.codec: every protocol payload round-trips through protobuf, bad input is refused."""

from __future__ import annotations

import random

import gmpy2
import numpy as np
import pytest

from fedcredit.proto.v1 import hetero_lr_pb2 as lr_pb
from fedcredit.proto.v1 import psi_pb2
from fedcredit.runtime.codec import decode_payload, encode_payload, payload_type_name, registered_types
from fedcredit.runtime.security.sealing import SealHello, SealStep
from fedcredit.protocols.core import Aggregate, Ciphertext, Classification, Masked, Plaintext, Public
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.hetero_lr import protocol as lr
from fedcredit.protocols.paillier import Encryptor, generate_keypair, ops
from fedcredit.protocols.psi.ecdh import blind, hash_to_point, random_scalar
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.rlwe import scheme as rl
from fedcredit.protocols.psi import protocol as psi
from fedcredit.protocols.psi import unbalanced as ub
from fedcredit.protocols.psi.ot import protocol as ot
from fedcredit.protocols.scoring import messages as sc
from fedcredit.protocols.binning import protocol as bn
from fedcredit.protocols.psi.protocol import BlindedPoints, MatchedPositions, PsiStep
from helpers import paillier_keypair

SALT = bytes(range(16))


@pytest.fixture(scope="module")
def keypair():
    return paillier_keypair(1024, 99)


def _samples(pk, sk) -> dict[type, list]:
    """Realistic instances of every payload type (several per type, including edge cases)."""
    enc = Encryptor(pk, random.Random(5))
    fp = pk.fingerprint()
    cts = tuple(enc.encrypt_raw(v) for v in (0, 1, 2**500, 12345))
    vec = lr.EncryptedVector(fp, 0, cts)
    # a vector mixing full-width ciphertexts with very short ones (leading zero bytes when fixed-width)
    mixed = lr.EncryptedVector(fp, 48, (gmpy2.mpz(1), cts[0], ops.dot(pk, [cts[1]], [0]), gmpy2.mpz(256)))
    empty = lr.EncryptedVector(fp, 32, ())
    rp = rl.plan_rlwe(ring_bits=160, sigma=40, max_value_bits=50, plain_bits=21, max_products=64, degree=2048 * 8)
    rsk = rl.keygen(rp, random.Random(8))
    layout = rl.plan_layout(6, 3, rp.limbs, rp.degree)
    operand = rl.encrypt_operand(rsk, [1, 2, 3], layout, random.Random(9))
    rmasked, _ = rl.mask(rsk.public, rl.multiply(rsk.public, operand, np.ones((6, 3), dtype=np.int64), layout), random.Random(10))
    points = blind(random_scalar(random.Random(1)), [hash_to_point(SALT, f"ID{i}") for i in range(5)])
    pk2, _ = generate_keypair(2048, random.Random(7))
    return {
        BlindedPoints: [BlindedPoints(()), BlindedPoints((points[0],)), BlindedPoints(tuple(points))],
        MatchedPositions: [MatchedPositions(()), MatchedPositions((0,)), MatchedPositions((4, 0, 2, 2**31 + 5))],
        lr.EpochDecision: [lr.EpochDecision(1, 0.6931471805599453, False, ""),
                           lr.EpochDecision(5, 0.123456789012345, True, "loss changed by 1e-05 < tol — ünïcode")],
        lr.HostTestScores: [lr.HostTestScores(()), lr.HostTestScores((0.0, -1.5, 3.14159e-300, 1e300, -0.1))],
        psi.SetSize: [psi.SetSize(0), psi.SetSize(2**20)],
        psi.IntersectionCount: [psi.IntersectionCount(0, False), psi.IntersectionCount(2**32, True), psi.IntersectionCount(7, True)],
        psi.UnshuffleKey: [psi.UnshuffleKey(True, bytes(range(32))), psi.UnshuffleKey(False, b"")],
        ub.CacheDigest: [ub.CacheDigest(b"k" * 32, b"d" * 32, 1 << 20, b"s" * 32), ub.CacheDigest(b"k" * 32, b"d" * 32, 0, b"s" * 16)],
        ub.CacheStatus: [ub.CacheStatus(True), ub.CacheStatus(False)],
        ub.CachedDigests: [ub.CachedDigests(()), ub.CachedDigests(tuple(bytes([i]) * 16 for i in range(5)))],
        sc.ModelVersion: [sc.ModelVersion(b"v" * 32)],
        sc.TableDigest: [sc.TableDigest(b"k" * 32, b"t" * 32, 1 << 20, b"s" * 16), sc.TableDigest(b"k" * 32, b"t" * 32, 0, b"s" * 32)],
        sc.TableStatus: [sc.TableStatus(True), sc.TableStatus(False)],
        sc.SealedEntries: [sc.SealedEntries(()), sc.SealedEntries(tuple(bytes([i]) * sc.ENTRY_BYTES for i in range(3)))],
        sc.PlainIds: [sc.PlainIds(()), sc.PlainIds(("91110000MA01ABCD1X", "统一"))],
        sc.PlainPartials: [sc.PlainPartials((True, False), (-1.25, 0.0))],
        ot.OtHostSetup: [ot.OtHostSetup(1 << 20, b"k" * 16), ot.OtHostSetup(0, b"k" * 16), ot.OtHostSetup(5, b"k" * 16, True),
                         ot.OtHostSetup(9, b"k" * 16, False, b"\x01" * 384)],
        ot.OtGuestSetup: [ot.OtGuestSetup(1000, 2048, b"s" * 16), ot.OtGuestSetup(1, 8, b"s" * 16, True)],
        ot.BaseOtElements: [ot.BaseOtElements(b"\x02" * 384 * 3)],
        ot.CorrectionRows: [ot.CorrectionRows(b"\x03" * 56 * 10)],
        ot.OprfValues: [ot.OprfValues(b"\x04" * 11 * 6)],
        # two-party mode: ciphertext vectors and ring residues of fixed width
        tp.PartySetup: [tp.PartySetup(pk, 11, 455, 114), tp.PartySetup(pk2, 0, 0, 0), tp.PartySetup(rsk.public, 3, 10, 2)],
        tp.EncryptedShares: [tp.EncryptedShares(vec), tp.EncryptedShares(empty), tp.EncryptedShares(operand)],
        tp.MaskedConversion: [tp.MaskedConversion(mixed, 20, 301, 6), tp.MaskedConversion(empty, 0, 1, 1),
                              tp.MaskedConversion(rmasked, 6, 0, 0)],
        tp.EncryptedResidualShare: [tp.EncryptedResidualShare(vec), tp.EncryptedResidualShare(operand)],
        tp.MaskedGradientShare: [tp.MaskedGradientShare(mixed), tp.MaskedGradientShare(rmasked)],
        tp.MaskedLoss: [tp.MaskedLoss(lr.EncryptedVector(fp, 0, cts[:1])), tp.MaskedLoss(rmasked)],
        tp.MaskedLossReply: [tp.MaskedLossReply(0, 160), tp.MaskedLossReply(2**160 - 1, 160), tp.MaskedLossReply(5, 64)],
        tp.ScoreShares: [tp.ScoreShares((5, 2**160 - 1), 160), tp.ScoreShares((), 160)],
        tp.ValidationScoreShares: [tp.ValidationScoreShares((5, 2**160 - 1), 160), tp.ValidationScoreShares((), 192)],
        tp.ValidationDecision: [tp.ValidationDecision(3, 2, False), tp.ValidationDecision(9, 7, True)],
        tp.MaskedWeightedResidual: [tp.MaskedWeightedResidual(lr.EncryptedVector(fp, 0, cts[:2]))],
        tp.WeightShare: [tp.WeightShare((0, 1, 2**160 - 1), 160), tp.WeightShare((), 192)],
        # scorecard binning (#15): the bank's labels under its own key, masked per-bin sums
        bn.LabelKey: [bn.LabelKey(pk, 30_000), bn.LabelKey(pk2, 0)],
        bn.BinLayout: [bn.BinLayout(()), bn.BinLayout(((100, 250, 2**40), (7,), ()))],
        bn.LayoutDecision: [bn.LayoutDecision(True), bn.LayoutDecision(False)],
        bn.EncryptedLabels: [bn.EncryptedLabels(fp, cts), bn.EncryptedLabels(fp, ()), bn.EncryptedLabels(fp, (gmpy2.mpz(1), cts[0]))],
        bn.MaskedBinSums: [bn.MaskedBinSums(fp, cts[:2]), bn.MaskedBinSums(fp, ())],
        bn.MaskedCounts: [bn.MaskedCounts(()), bn.MaskedCounts((0, 1, 2**95 + 3))],
        bn.SharedIv: [bn.SharedIv(()), bn.SharedIv((("x5", 0.848), ("收入", 0.0)))],
        # the sealing layer's ephemeral key exchange
        SealHello: [SealHello("psi", b"\x09" * 32, b"\x07" * 64), SealHello("lr2", bytes(32), bytes(64))],
    }


def _same_rlwe(a, b) -> bool:
    return (a.key_fingerprint, a.degree, a.n_primes, a.seeds) == (b.key_fingerprint, b.degree, b.n_primes, b.seeds) \
        and np.array_equal(a.c0, b.c0) and ((a.c1 is None and b.c1 is None) or np.array_equal(a.c1, b.c1))


def _assert_same(a, b):
    assert type(a) is type(b)
    vals = getattr(a, "values", None)
    if isinstance(vals, rl.RlweCiphertexts):
        assert _same_rlwe(vals, b.values)
        assert all(getattr(a, f) == getattr(b, f) for f in a.__dataclass_fields__ if f != "values")
        return
    if isinstance(vals, lr.EncryptedVector):
        assert vals.key_fingerprint == b.values.key_fingerprint and vals.exponent == b.values.exponent
        assert [int(c) for c in vals.values] == [int(c) for c in b.values.values]
    if isinstance(a, tp.PartySetup):
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
            _assert_same(decode_payload(name, data), msg)  # without the expected-type check too
            # deterministic encoding
            assert encode_payload(msg) == (name, data)


def test_decoded_ciphertexts_still_decrypt(keypair):
    pk, sk = keypair
    msg = _samples(pk, sk)[tp.EncryptedResidualShare][0]
    back = decode_payload(*encode_payload(msg), expected=tp.EncryptedResidualShare)
    assert sk.decrypt_raw_many(list(back.values.values)) == sk.decrypt_raw_many(list(msg.values.values)) == [0, 1, 2**500, 12345]


def test_decoded_rlwe_ciphertexts_still_open(keypair):
    rp = rl.plan_rlwe(ring_bits=160, sigma=40, max_value_bits=50, plain_bits=21, max_products=64)
    sk = rl.keygen(rp, random.Random(8))
    layout = rl.plan_layout(6, 3, rp.limbs, rp.degree)
    op = decode_payload(*encode_payload(tp.EncryptedShares(rl.encrypt_operand(sk, [1, 2, 3], layout, random.Random(9)))))
    masked, mine = rl.mask(sk.public, rl.multiply(sk.public, op.values, np.full((6, 3), 2, dtype=np.int64), layout), random.Random(3))
    back = decode_payload(*encode_payload(tp.MaskedConversion(masked, 6, 0, 0)))
    assert [(a + b) % 2**160 for a, b in zip(rl.open_masked(sk, back.values, layout), mine)] == [12] * 6


# --------------------------------------------------------------------------- refusals


def test_wrong_expected_type_raises_protocol_error():
    name, data = encode_payload(lr.EpochDecision(1, 0.5, False, ""))
    with pytest.raises(ProtocolError):
        decode_payload(name, data, expected=lr.HostTestScores)
    name, data = encode_payload(tp.WeightShare((1, 2), 160))
    with pytest.raises(ProtocolError):
        decode_payload(name, data, expected=tp.ScoreShares)


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
        decode_payload("fedcredit.v1.EncryptedResidualShare", lr_pb.EncryptedResidualShare(values=vec).SerializeToString())
    vec = lr_pb.EncryptedVector(count=2, width=0, ciphertexts=b"")
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.MaskedLoss", lr_pb.MaskedLoss(values=vec).SerializeToString())
    with pytest.raises(ProtocolError):  # neither Paillier nor RLWE ciphertexts
        decode_payload("fedcredit.v1.MaskedLoss", lr_pb.MaskedLoss().SerializeToString())


def test_malformed_rlwe_payloads_raise_protocol_error():
    from fedcredit.proto.v1 import rlwe_pb2
    ct = rlwe_pb2.RlweCiphertexts(key_fingerprint=b"f" * 16, degree=16384, n_primes=2, count=1, c0=b"\x00" * 12, c1=b"")
    with pytest.raises(ProtocolError):  # c0 shorter than its shape
        decode_payload("fedcredit.v1.MaskedLoss", lr_pb.MaskedLoss(rlwe=ct).SerializeToString())
    for width in (0, 16385):  # a masked ciphertext's c0 holds 1..degree target coefficients
        ct = rlwe_pb2.RlweCiphertexts(key_fingerprint=b"f" * 16, degree=16384, n_primes=1, count=1, c0=b"\x00" * 4 * width,
                                      c1=b"\x00" * 4 * 16384, c0_width=width)
        with pytest.raises(ProtocolError):
            decode_payload("fedcredit.v1.MaskedLoss", lr_pb.MaskedLoss(rlwe=ct).SerializeToString())
    ct = rlwe_pb2.RlweCiphertexts(key_fingerprint=b"f" * 16, degree=16384, n_primes=1, count=1, c0=b"\x00" * 4 * 70,
                                  c1=b"\x00" * 4 * 16384, c0_width=71)
    with pytest.raises(ProtocolError):  # c0 shorter than its declared width
        decode_payload("fedcredit.v1.MaskedLoss", lr_pb.MaskedLoss(rlwe=ct).SerializeToString())
    ct = rlwe_pb2.RlweCiphertexts(key_fingerprint=b"f", degree=1000, n_primes=1, count=1, c0=b"\x00" * 4000)
    with pytest.raises(ProtocolError):  # not a power of two
        decode_payload("fedcredit.v1.MaskedLoss", lr_pb.MaskedLoss(rlwe=ct).SerializeToString())
    weak = rlwe_pb2.RlwePublicKey(params=rlwe_pb2.RlweParams(degree=16384, n_primes=20, delta_bits=100, mask_bits=100,
                                                             flood_bits=90, limb_bits=20, ring_bits=160), seed=b"s" * 32, b=b"")
    with pytest.raises(ProtocolError):  # log Q above the 128-bit bound
        decode_payload("fedcredit.v1.PartySetup", lr_pb.PartySetup(rlwe_key=weak, n_features=1).SerializeToString())


def test_other_inconsistent_payloads_raise_protocol_error():
    bad_points = psi_pb2.BlindedPoints(count=2, points=b"\x09" * 33).SerializeToString()
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.BlindedPoints", bad_points)
    small_key = lr_pb.PaillierPublicKey(n=(2**511 + 1).to_bytes(64, "big"))
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.PartySetup", lr_pb.PartySetup(public_key=small_key, n_features=1).SerializeToString())
    even = lr_pb.PaillierPublicKey(n=(2**1100).to_bytes(139, "big"))
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.PartySetup", lr_pb.PartySetup(public_key=even, n_features=1).SerializeToString())


# --------------------------------------------------------------------------- step tables


_BASES = (Ciphertext, Masked, Public, Aggregate, Plaintext)


@pytest.mark.parametrize("step", list(PsiStep) + list(ub.UnbalancedStep) + list(ot.OtPsiStep) + list(tp.TwoPartyStep) + list(bn.BinningStep)
                         + list(SealStep),
                         ids=lambda s: s.wire)
def test_every_step_payload_has_a_codec_and_a_classification(step):
    payload = step.spec.payload
    assert payload in registered_types()
    assert payload_type_name(payload).startswith("fedcredit.v1.")
    assert payload.classification in set(Classification)
    assert isinstance(payload.classification, Classification)
    assert sum(issubclass(payload, b) for b in _BASES) == 1


def test_binning_ciphertexts_have_a_fixed_width_and_refuse_bad_lengths(keypair):
    pk, _ = keypair
    fp = pk.fingerprint()
    short, full = encode_payload(bn.EncryptedLabels(fp, (gmpy2.mpz(1),)))[1], encode_payload(bn.EncryptedLabels(fp, (gmpy2.mpz(2**2000),)))[1]
    assert len(short) == len(encode_payload(bn.EncryptedLabels(fp, (gmpy2.mpz(2**500),)))[1])  # 64-byte blocks, whatever the value
    assert len(full) > len(short)
    from fedcredit.proto.v1 import binning_pb2
    bad = binning_pb2.EncryptedLabels(body=binning_pb2.BinCiphertexts(key_fingerprint=fp, count=2, width=64, ciphertexts=b"\x01" * 64))
    with pytest.raises(ProtocolError):
        decode_payload(payload_type_name(bn.EncryptedLabels), bad.SerializeToString(), expected=bn.EncryptedLabels)
    with pytest.raises(ProtocolError):
        decode_payload(payload_type_name(bn.LayoutDecision), b"", expected=bn.LayoutDecision)
    # the masked counts fill a fixed width whatever their values (their masks make them ~90 bits)
    sizes = {len(encode_payload(bn.MaskedCounts((2**90 + c, 2**89 + 7 * c)))[1]) for c in (0, 1, 5000)}
    assert len(sizes) == 1
    bad_counts = binning_pb2.MaskedCounts(count=3, width=16, values=b"\x00" * 40)
    with pytest.raises(ProtocolError):
        decode_payload(payload_type_name(bn.MaskedCounts), bad_counts.SerializeToString(), expected=bn.MaskedCounts)
    with pytest.raises(ProtocolError):
        decode_payload(payload_type_name(bn.LabelKey), binning_pb2.LabelKey(n_rows=5).SerializeToString(), expected=bn.LabelKey)


def test_ring_vectors_have_a_fixed_width_and_refuse_non_residues():
    small = encode_payload(tp.WeightShare((0, 0, 1), 160))[1]
    big = encode_payload(tp.WeightShare((2**160 - 1, 2**159, 2**158 + 3), 160))[1]
    assert len(small) == len(big)  # sizes never depend on the values
    with pytest.raises(ProtocolError):
        encode_payload(tp.WeightShare((2**160,), 160))
    bad = lr_pb.WeightShare(values=lr_pb.RingVector(ring_bits=64, count=1, data=b"\xff" * 7)).SerializeToString()
    with pytest.raises(ProtocolError):
        decode_payload("fedcredit.v1.WeightShare", bad)
