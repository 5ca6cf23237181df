"""Protocol messages <-> protobuf payloads. One explicit encode/decode pair per type.

Nothing is pickled. Each protocol payload type maps to exactly one
``fedcredit.v1`` message; the envelope's ``payload_type`` names it, and the
receiver checks it against the step's declared type before decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gmpy2
import numpy as np
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as PbMessage

from fedcredit.proto.v1 import binning_pb2 as bin_pb
from fedcredit.proto.v1 import hetero_lr_pb2 as lr_pb
from fedcredit.proto.v1 import psi_ot_pb2, psi_pb2
from fedcredit.proto.v1 import rlwe_pb2
from fedcredit.proto.v1 import scoring_pb2
from fedcredit.proto.v1 import seal_pb2
from fedcredit.protocols.binning import protocol as binning
from fedcredit.protocols.core import Message
from fedcredit.protocols.errors import ProtocolError
from fedcredit.protocols.hetero_lr import protocol as lr
from fedcredit.protocols.hetero_lr import two_party as tp
from fedcredit.protocols.paillier import PaillierPublicKey
from fedcredit.protocols.psi import protocol as psi
from fedcredit.protocols.psi import unbalanced as ub
from fedcredit.protocols.psi.ot import protocol as ot
from fedcredit.protocols.rlwe import scheme as rlwe
from fedcredit.protocols.scoring import messages as sc

from .security.sealing import SealHello

__all__ = ["encode_payload", "decode_payload", "payload_type_name", "registered_types"]


@dataclass(frozen=True)
class _Codec:
    message_type: type[Message]
    pb_type: type[PbMessage]
    encode: Callable[[Any], PbMessage]
    decode: Callable[[Any], Message]


_BY_TYPE: dict[type, _Codec] = {}
_BY_NAME: dict[str, _Codec] = {}


def _register(message_type: type, pb_type: type, encode: Callable[[Any], Any], decode: Callable[[Any], Any]) -> None:
    codec = _Codec(message_type, pb_type, encode, decode)
    _BY_TYPE[message_type] = codec
    _BY_NAME[pb_type.DESCRIPTOR.full_name] = codec


def payload_type_name(message_type: type) -> str:
    return _BY_TYPE[message_type].pb_type.DESCRIPTOR.full_name


def registered_types() -> list[type]:
    return list(_BY_TYPE)


def encode_payload(msg: Message) -> tuple[str, bytes]:
    """Return ``(payload_type, serialized bytes)`` for a protocol message."""
    codec = _BY_TYPE.get(type(msg))
    if codec is None:
        raise ProtocolError(f"no wire encoding for {type(msg).__name__}")
    return codec.pb_type.DESCRIPTOR.full_name, codec.encode(msg).SerializeToString(deterministic=True)


def decode_payload(payload_type: str, data: bytes, expected: type[Message] | None = None) -> Message:
    """Decode bytes named ``payload_type``; if ``expected`` is given the type must match it."""
    codec = _BY_NAME.get(payload_type)
    if codec is None:
        raise ProtocolError(f"unknown payload type {payload_type!r}")
    if expected is not None and codec.message_type is not expected:
        raise ProtocolError(f"expected {expected.__name__}, got payload {payload_type}")
    pb = codec.pb_type()
    try:
        pb.ParseFromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"malformed {payload_type} payload: {exc}") from None
    return codec.decode(pb)


# --------------------------------------------------------------------------- PSI


def _points_pb(m: psi.BlindedPoints) -> psi_pb2.BlindedPoints:
    return psi_pb2.BlindedPoints(count=len(m.points), points=b"".join(m.points))


def _points_msg(pb: psi_pb2.BlindedPoints) -> psi.BlindedPoints:
    data = pb.points
    if len(data) != 32 * pb.count:
        raise ProtocolError("BlindedPoints: byte length does not match count")
    return psi.BlindedPoints(tuple(data[i : i + 32] for i in range(0, len(data), 32)))


_register(psi.BlindedPoints, psi_pb2.BlindedPoints, _points_pb, _points_msg)
_register(psi.SetSize, psi_pb2.SetSize, lambda m: psi_pb2.SetSize(count=m.count), lambda pb: psi.SetSize(int(pb.count)))


def _cached_pb(m: ub.CachedDigests) -> psi_pb2.CachedDigests:
    width = len(m.values[0]) if m.values else 16
    return psi_pb2.CachedDigests(count=len(m.values), width=width, values=b"".join(m.values))


def _cached_msg(pb: psi_pb2.CachedDigests) -> ub.CachedDigests:
    w, data = pb.width, pb.values
    if (w == 0 and pb.count) or len(data) != w * pb.count:
        raise ProtocolError("CachedDigests: byte length does not match count * width")
    return ub.CachedDigests(tuple(data[i : i + w] for i in range(0, len(data), w)) if w else ())


_register(
    ub.CacheDigest,
    psi_pb2.CacheDigest,
    lambda m: psi_pb2.CacheDigest(key_id=m.key_id, set_digest=m.set_digest, count=m.count, salt=m.salt),
    lambda pb: ub.CacheDigest(bytes(pb.key_id), bytes(pb.set_digest), int(pb.count), bytes(pb.salt)),
)
_register(ub.CacheStatus, psi_pb2.CacheStatus, lambda m: psi_pb2.CacheStatus(have=m.have), lambda pb: ub.CacheStatus(bool(pb.have)))
_register(ub.CachedDigests, psi_pb2.CachedDigests, _cached_pb, _cached_msg)
def _positions_msg(pb: psi_pb2.MatchedPositions) -> psi.MatchedPositions:
    if len(pb.positions) != 4 * pb.count:
        raise ProtocolError("MatchedPositions: byte length does not match count")
    return psi.MatchedPositions(tuple(int(v) for v in np.frombuffer(pb.positions, dtype="<u4")))


_register(
    psi.MatchedPositions,
    psi_pb2.MatchedPositions,
    lambda m: psi_pb2.MatchedPositions(count=len(m.positions), positions=np.asarray(m.positions, dtype="<u4").tobytes()),
    _positions_msg,
)


def _count_msg(pb: psi_pb2.IntersectionCount) -> psi.IntersectionCount:
    if not (pb.HasField("count") and pb.HasField("meets_minimum")):
        raise ProtocolError("IntersectionCount: the count and the verdict are both required")
    return psi.IntersectionCount(int(pb.count), bool(pb.meets_minimum))


def _unshuffle_msg(pb: psi_pb2.UnshuffleKey) -> psi.UnshuffleKey:
    if not pb.HasField("meets_minimum"):
        raise ProtocolError("UnshuffleKey: the verdict is required")
    return psi.UnshuffleKey(bool(pb.meets_minimum), bytes(pb.key))


# Count-first PSI (#12): the count message has a fixed size whatever the count; the host's reply carries the
# 32-byte key only when both minimums are met, so its size shows the relay the verdict, which the job's
# public outcome (its MIN_INTERSECTION failure) tells the coordinator anyway.
_register(psi.IntersectionCount, psi_pb2.IntersectionCount,
          lambda m: psi_pb2.IntersectionCount(count=m.count, meets_minimum=m.meets_minimum), _count_msg)
_register(psi.UnshuffleKey, psi_pb2.UnshuffleKey,
          lambda m: psi_pb2.UnshuffleKey(meets_minimum=m.meets_minimum, key=m.key), _unshuffle_msg)


# --------------------------------------------------------------------------- vertical LR


def _round_up(n: int, block: int) -> int:
    return max(block, -(-n // block) * block)


def _vec_pb(v: lr.EncryptedVector) -> lr_pb.EncryptedVector:
    # Rounded to 64 bytes: a 2048-bit key's ciphertexts always take 512 bytes, whatever
    # their value, so sizes on the wire never depend on data (checked in the leakage tests).
    width = _round_up(max((int(c).bit_length() + 7) // 8 for c in v.values), 64) if v.values else 64
    return lr_pb.EncryptedVector(
        key_fingerprint=v.key_fingerprint,
        exponent=v.exponent,
        count=len(v.values),
        width=width,
        ciphertexts=b"".join(int(c).to_bytes(width, "big") for c in v.values),
    )


def _vec_msg(pb: lr_pb.EncryptedVector) -> lr.EncryptedVector:
    w, data = pb.width, pb.ciphertexts
    if w == 0:
        if pb.count or data:
            raise ProtocolError("EncryptedVector: zero width")
        return lr.EncryptedVector(bytes(pb.key_fingerprint), int(pb.exponent), ())
    if len(data) != w * pb.count:
        raise ProtocolError("EncryptedVector: byte length does not match count * width")
    values = tuple(gmpy2.mpz(int.from_bytes(data[i : i + w], "big")) for i in range(0, len(data), w))
    return lr.EncryptedVector(bytes(pb.key_fingerprint), int(pb.exponent), values)


def _paillier_key(pb: lr_pb.PaillierPublicKey) -> PaillierPublicKey:
    n = int.from_bytes(pb.n, "big")
    if n.bit_length() < 1024:
        raise ProtocolError("public key modulus too small")
    try:
        return PaillierPublicKey(gmpy2.mpz(n))
    except ValueError as exc:
        raise ProtocolError(f"invalid public key: {exc}") from None


_register(
    lr.EpochDecision,
    lr_pb.EpochDecision,
    lambda m: lr_pb.EpochDecision(epoch=m.epoch, loss=m.loss, stop=m.stop, reason=m.reason),
    lambda pb: lr.EpochDecision(int(pb.epoch), float(pb.loss), bool(pb.stop), pb.reason),
)
_register(
    lr.HostTestScores,
    lr_pb.HostTestScores,
    lambda m: lr_pb.HostTestScores(scores=list(m.scores)),
    lambda pb: lr.HostTestScores(tuple(float(s) for s in pb.scores)),
)


# --------------------------------------------------------------------------- vertical LR, two-party mode


def _ring_pb(values: tuple[int, ...], ring_bits: int) -> lr_pb.RingVector:
    width = (ring_bits + 7) // 8
    if any(not 0 <= int(v) < (1 << ring_bits) for v in values):
        raise ProtocolError("RingVector: a value is not a residue mod 2^ring_bits")
    return lr_pb.RingVector(ring_bits=ring_bits, count=len(values), data=b"".join(int(v).to_bytes(width, "big") for v in values))


def _ring_msg(pb: lr_pb.RingVector) -> tuple[tuple[int, ...], int]:
    bits = int(pb.ring_bits)
    if not 64 <= bits <= 512:
        raise ProtocolError("RingVector: ring_bits out of range")
    w, data = (bits + 7) // 8, pb.data
    if len(data) != w * pb.count:
        raise ProtocolError("RingVector: byte length does not match count * width")
    vals = tuple(int.from_bytes(data[i : i + w], "big") for i in range(0, len(data), w))
    if any(v >> bits for v in vals):
        raise ProtocolError("RingVector: a value is not a residue mod 2^ring_bits")
    return vals, bits


def _u32(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<u4").tobytes()


def _rlwe_params_pb(p: rlwe.RlweParams) -> rlwe_pb2.RlweParams:
    return rlwe_pb2.RlweParams(degree=p.degree, n_primes=p.n_primes, delta_bits=p.delta_bits, mask_bits=p.mask_bits,
                               flood_bits=p.flood_bits, limb_bits=p.limb_bits, ring_bits=p.ring_bits)


def _rlwe_params_msg(pb: rlwe_pb2.RlweParams) -> rlwe.RlweParams:
    p = rlwe.RlweParams(int(pb.degree), int(pb.n_primes), int(pb.delta_bits), int(pb.mask_bits), int(pb.flood_bits),
                        int(pb.limb_bits), int(pb.ring_bits))
    try:
        p.check()
    except Exception as exc:  # BudgetError: the peer proposes parameters no party may use
        raise ProtocolError(f"RLWE parameters are unusable: {exc}") from None
    return p


def _residues(data: bytes, count: int, what: str) -> np.ndarray:
    if len(data) != 4 * count:
        raise ProtocolError(f"{what}: byte length does not match its shape")
    return np.frombuffer(data, dtype="<u4").astype(np.uint64)


def _rlwe_key_pb(k: rlwe.RlwePublicKey) -> rlwe_pb2.RlwePublicKey:
    return rlwe_pb2.RlwePublicKey(params=_rlwe_params_pb(k.params), seed=k.seed, b=_u32(k.b))


def _rlwe_key_msg(pb: rlwe_pb2.RlwePublicKey) -> rlwe.RlwePublicKey:
    p = _rlwe_params_msg(pb.params)
    b = _residues(pb.b, p.n_primes * p.degree, "RlwePublicKey").reshape(p.n_primes, p.degree)
    if len(pb.seed) != 32:
        raise ProtocolError("RlwePublicKey: the seed is 32 bytes")
    return rlwe.RlwePublicKey(p, bytes(pb.seed), b)


def _rlwe_ct_pb(c: rlwe.RlweCiphertexts) -> rlwe_pb2.RlweCiphertexts:
    return rlwe_pb2.RlweCiphertexts(key_fingerprint=c.key_fingerprint, degree=c.degree, n_primes=c.n_primes, count=len(c),
                                    seeds=b"".join(c.seeds), c0=_u32(c.c0), c1=b"" if c.c1 is None else _u32(c.c1),
                                    c0_width=0 if c.c1 is None else int(c.c0.shape[2]))


def _rlwe_ct_msg(pb: rlwe_pb2.RlweCiphertexts) -> rlwe.RlweCiphertexts:
    n, p, count = int(pb.degree), int(pb.n_primes), int(pb.count)
    if not (count and n and p) or n & (n - 1) or n > 1 << 16 or p > 64:
        raise ProtocolError("RlweCiphertexts: malformed header")
    shape = (count, p, n)
    if pb.seeds:
        if len(pb.seeds) != 32 * count or pb.c1 or pb.c0_width:
            raise ProtocolError("RlweCiphertexts: a seeded ciphertext carries one 32-byte seed each and no c1")
        c0 = _residues(pb.c0, count * p * n, "RlweCiphertexts").reshape(shape)
        return rlwe.RlweCiphertexts(bytes(pb.key_fingerprint), n, p, c0, tuple(pb.seeds[i:i + 32] for i in range(0, len(pb.seeds), 32)))
    width = int(pb.c0_width)
    if not 1 <= width <= n:
        raise ProtocolError("RlweCiphertexts: a masked ciphertext carries 1 to degree coefficients of c0")
    c0 = _residues(pb.c0, count * p * width, "RlweCiphertexts").reshape(count, p, width)
    return rlwe.RlweCiphertexts(bytes(pb.key_fingerprint), n, p, c0, (), _residues(pb.c1, count * p * n, "RlweCiphertexts").reshape(shape))


def _body_pb(values: Any) -> dict[str, Any]:
    """The ``oneof body`` of a ciphertext-carrying two-party message."""
    if isinstance(values, rlwe.RlweCiphertexts):
        return {"rlwe": _rlwe_ct_pb(values)}
    return {"values": _vec_pb(values)}


def _body_msg(pb: Any) -> Any:
    which = pb.WhichOneof("body")
    if which == "rlwe":
        return _rlwe_ct_msg(pb.rlwe)
    if which == "values":
        return _vec_msg(pb.values)
    raise ProtocolError(f"{pb.DESCRIPTOR.name}: no ciphertexts")


def _setup_pb(m: tp.PartySetup) -> lr_pb.PartySetup:
    k = m.public_key
    key = {"rlwe_key": _rlwe_key_pb(k)} if isinstance(k, rlwe.RlwePublicKey) else \
        {"public_key": lr_pb.PaillierPublicKey(n=int(k.n).to_bytes((k.bits + 7) // 8, "big"))}
    return lr_pb.PartySetup(n_features=m.n_features, n_train=m.n_train, n_test=m.n_test, **key)


def _setup_msg(pb: lr_pb.PartySetup) -> tp.PartySetup:
    which = pb.WhichOneof("key")
    if which == "rlwe_key":
        key: Any = _rlwe_key_msg(pb.rlwe_key)
    elif which == "public_key":
        key = _paillier_key(pb.public_key)
    else:
        raise ProtocolError("PartySetup: no public key")
    return tp.PartySetup(key, int(pb.n_features), int(pb.n_train), int(pb.n_test))


def _loss_reply_msg(pb: lr_pb.MaskedLossReply) -> tp.MaskedLossReply:
    vals, bits = _ring_msg(pb.value)
    if len(vals) != 1:
        raise ProtocolError("MaskedLossReply carries one value")
    return tp.MaskedLossReply(vals[0], bits)


_register(tp.PartySetup, lr_pb.PartySetup, _setup_pb, _setup_msg)
for _cls, _pb in ((tp.EncryptedShares, lr_pb.EncryptedShares), (tp.EncryptedResidualShare, lr_pb.EncryptedResidualShare),
                  (tp.MaskedGradientShare, lr_pb.MaskedGradientShare), (tp.MaskedLoss, lr_pb.MaskedLoss),
                  (tp.MaskedWeightedResidual, lr_pb.MaskedWeightedResidual)):
    _register(_cls, _pb, lambda m, _pb=_pb: _pb(**_body_pb(m.values)), lambda pb, _cls=_cls: _cls(_body_msg(pb)))
_register(
    tp.MaskedConversion,
    lr_pb.MaskedConversion,
    lambda m: lr_pb.MaskedConversion(rows=m.rows, slot_bits=m.slot_bits, slots=m.slots, **_body_pb(m.values)),
    lambda pb: tp.MaskedConversion(_body_msg(pb), int(pb.rows), int(pb.slot_bits), int(pb.slots)),
)
_register(
    tp.MaskedLossReply,
    lr_pb.MaskedLossReply,
    lambda m: lr_pb.MaskedLossReply(value=_ring_pb((m.value,), m.ring_bits)),
    _loss_reply_msg,
)
_register(
    tp.ScoreShares,
    lr_pb.ScoreShares,
    lambda m: lr_pb.ScoreShares(values=_ring_pb(m.values, m.ring_bits)),
    lambda pb: tp.ScoreShares(*_ring_msg(pb.values)),
)
_register(
    tp.ValidationScoreShares,
    lr_pb.ValidationScoreShares,
    lambda m: lr_pb.ValidationScoreShares(values=_ring_pb(m.values, m.ring_bits)),
    lambda pb: tp.ValidationScoreShares(*_ring_msg(pb.values)),
)
_register(
    tp.ValidationDecision,
    lr_pb.ValidationDecision,
    lambda m: lr_pb.ValidationDecision(epoch=m.epoch, best_epoch=m.best_epoch, stop=m.stop),
    lambda pb: tp.ValidationDecision(int(pb.epoch), int(pb.best_epoch), bool(pb.stop)),
)
_register(
    tp.WeightShare,
    lr_pb.WeightShare,
    lambda m: lr_pb.WeightShare(values=_ring_pb(m.values, m.ring_bits)),
    lambda pb: tp.WeightShare(*_ring_msg(pb.values)),
)


# --------------------------------------------------------------------------- OT-extension PSI

_register(ot.OtHostSetup, psi_ot_pb2.OtHostSetup,
          lambda m: psi_ot_pb2.OtHostSetup(count=m.count, code_key=m.code_key, count_first=m.count_first,
                                           base_ot_setup=m.base_ot_setup),
          lambda pb: ot.OtHostSetup(int(pb.count), bytes(pb.code_key), bool(pb.count_first), bytes(pb.base_ot_setup)))
_register(ot.OtGuestSetup, psi_ot_pb2.OtGuestSetup,
          lambda m: psi_ot_pb2.OtGuestSetup(count=m.count, bins=m.bins, cuckoo_seed=m.cuckoo_seed, count_first=m.count_first),
          lambda pb: ot.OtGuestSetup(int(pb.count), int(pb.bins), bytes(pb.cuckoo_seed), bool(pb.count_first)))
_register(ot.BaseOtElements, psi_ot_pb2.BaseOtElements, lambda m: psi_ot_pb2.BaseOtElements(elements=m.elements),
          lambda pb: ot.BaseOtElements(bytes(pb.elements)))
_register(ot.CorrectionRows, psi_ot_pb2.CorrectionRows, lambda m: psi_ot_pb2.CorrectionRows(rows=m.rows),
          lambda pb: ot.CorrectionRows(bytes(pb.rows)))
_register(ot.OprfValues, psi_ot_pb2.OprfValues, lambda m: psi_ot_pb2.OprfValues(values=m.values),
          lambda pb: ot.OprfValues(bytes(pb.values)))


# --------------------------------------------------------------------------- scoring


def _sealed_msg(pb: scoring_pb2.SealedEntries) -> sc.SealedEntries:
    w, data = sc.ENTRY_BYTES, pb.entries
    if len(data) != w * pb.count:
        raise ProtocolError("SealedEntries: byte length does not match count")
    return sc.SealedEntries(tuple(data[i : i + w] for i in range(0, len(data), w)))


def _status_msg(pb: scoring_pb2.TableStatus) -> sc.TableStatus:
    if not pb.HasField("have"):
        raise ProtocolError("TableStatus: the answer is required")
    return sc.TableStatus(bool(pb.have))


_register(sc.ModelVersion, scoring_pb2.ModelVersion, lambda m: scoring_pb2.ModelVersion(version=m.version),
          lambda pb: sc.ModelVersion(bytes(pb.version)))
_register(sc.TableDigest, scoring_pb2.TableDigest,
          lambda m: scoring_pb2.TableDigest(key_id=m.key_id, table_id=m.table_id, count=m.count, salt=m.salt),
          lambda pb: sc.TableDigest(bytes(pb.key_id), bytes(pb.table_id), int(pb.count), bytes(pb.salt)))
_register(sc.TableStatus, scoring_pb2.TableStatus, lambda m: scoring_pb2.TableStatus(have=m.have), _status_msg)
_register(sc.SealedEntries, scoring_pb2.SealedEntries,
          lambda m: scoring_pb2.SealedEntries(count=len(m.entries), entries=b"".join(m.entries)), _sealed_msg)
_register(sc.PlainIds, scoring_pb2.PlainIds, lambda m: scoring_pb2.PlainIds(ids=list(m.ids)),
          lambda pb: sc.PlainIds(tuple(str(i) for i in pb.ids)))
_register(sc.PlainPartials, scoring_pb2.PlainPartials,
          lambda m: scoring_pb2.PlainPartials(found=list(m.found), values=list(m.values)),
          lambda pb: sc.PlainPartials(tuple(bool(f) for f in pb.found), tuple(float(v) for v in pb.values)))


# --------------------------------------------------------------------------- sealing

_register(SealHello, seal_pb2.SealHello,
          lambda m: seal_pb2.SealHello(phase=m.phase, ephemeral=m.ephemeral, signature=m.signature),
          lambda pb: SealHello(str(pb.phase), bytes(pb.ephemeral), bytes(pb.signature)))


# --------------------------------------------------------------------------- scorecard binning (#15)


def _bin_ct_pb(fingerprint: bytes, values: tuple[Any, ...]) -> bin_pb.BinCiphertexts:
    # the same fixed width as the LR's vectors: sizes on the wire never depend on values
    width = _round_up(max((int(c).bit_length() + 7) // 8 for c in values), 64) if values else 64
    return bin_pb.BinCiphertexts(key_fingerprint=fingerprint, count=len(values), width=width,
                                 ciphertexts=b"".join(int(c).to_bytes(width, "big") for c in values))


def _bin_ct_msg(pb: bin_pb.BinCiphertexts, what: str) -> tuple[bytes, tuple[Any, ...]]:
    w, data = pb.width, pb.ciphertexts
    if w == 0 or len(data) != w * pb.count:
        raise ProtocolError(f"{what}: byte length does not match count * width")
    return bytes(pb.key_fingerprint), tuple(gmpy2.mpz(int.from_bytes(data[i : i + w], "big")) for i in range(0, len(data), w))


def _label_key_msg(pb: bin_pb.LabelKey) -> binning.LabelKey:
    if not pb.HasField("public_key"):
        raise ProtocolError("LabelKey: no public key")
    return binning.LabelKey(_paillier_key(pb.public_key), int(pb.n_rows))


def _decision_msg(pb: bin_pb.LayoutDecision) -> binning.LayoutDecision:
    if not pb.HasField("accepted"):
        raise ProtocolError("LayoutDecision: the answer is required")
    return binning.LayoutDecision(bool(pb.accepted))


def _counts_pb(m: binning.MaskedCounts) -> bin_pb.MaskedCounts:
    if any(int(v) < 0 for v in m.values):
        raise ProtocolError("MaskedCounts: a negative value")
    width = _round_up(max((int(v).bit_length() + 7) // 8 for v in m.values), 16) if m.values else 16
    return bin_pb.MaskedCounts(count=len(m.values), width=width, values=b"".join(int(v).to_bytes(width, "big") for v in m.values))


def _counts_msg(pb: bin_pb.MaskedCounts) -> binning.MaskedCounts:
    w, data = pb.width, pb.values
    if w == 0 or len(data) != w * pb.count:
        raise ProtocolError("MaskedCounts: byte length does not match count * width")
    return binning.MaskedCounts(tuple(int.from_bytes(data[i : i + w], "big") for i in range(0, len(data), w)))


_register(binning.LabelKey, bin_pb.LabelKey,
          lambda m: bin_pb.LabelKey(public_key=lr_pb.PaillierPublicKey(n=int(m.public_key.n).to_bytes((m.public_key.bits + 7) // 8, "big")),
                                    n_rows=m.n_rows),
          _label_key_msg)
_register(binning.BinLayout, bin_pb.BinLayout,
          lambda m: bin_pb.BinLayout(features=[bin_pb.BinRows(rows=list(f)) for f in m.bin_rows]),
          lambda pb: binning.BinLayout(tuple(tuple(int(v) for v in f.rows) for f in pb.features)))
_register(binning.LayoutDecision, bin_pb.LayoutDecision, lambda m: bin_pb.LayoutDecision(accepted=m.accepted), _decision_msg)
_register(binning.EncryptedLabels, bin_pb.EncryptedLabels,
          lambda m: bin_pb.EncryptedLabels(body=_bin_ct_pb(m.key_fingerprint, m.values)),
          lambda pb: binning.EncryptedLabels(*_bin_ct_msg(pb.body, "EncryptedLabels")))
_register(binning.MaskedBinSums, bin_pb.MaskedBinSums,
          lambda m: bin_pb.MaskedBinSums(body=_bin_ct_pb(m.key_fingerprint, m.values)),
          lambda pb: binning.MaskedBinSums(*_bin_ct_msg(pb.body, "MaskedBinSums")))
_register(binning.MaskedCounts, bin_pb.MaskedCounts, _counts_pb, _counts_msg)
_register(binning.SharedIv, bin_pb.SharedIv,
          lambda m: bin_pb.SharedIv(iv=[bin_pb.FeatureIv(name=n, iv=v) for n, v in m.iv]),
          lambda pb: binning.SharedIv(tuple((str(f.name), float(f.iv)) for f in pb.iv)))
