from fedcredit.proto.v1 import rlwe_pb2 as _rlwe_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaillierPublicKey(_message.Message):
    __slots__ = ("n",)
    N_FIELD_NUMBER: _ClassVar[int]
    n: bytes
    def __init__(self, n: _Optional[bytes] = ...) -> None: ...

class EncryptedVector(_message.Message):
    __slots__ = ("key_fingerprint", "exponent", "count", "width", "ciphertexts")
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    EXPONENT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    key_fingerprint: bytes
    exponent: int
    count: int
    width: int
    ciphertexts: bytes
    def __init__(self, key_fingerprint: _Optional[bytes] = ..., exponent: _Optional[int] = ..., count: _Optional[int] = ..., width: _Optional[int] = ..., ciphertexts: _Optional[bytes] = ...) -> None: ...

class EpochDecision(_message.Message):
    __slots__ = ("epoch", "loss", "stop", "reason")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    loss: float
    stop: bool
    reason: str
    def __init__(self, epoch: _Optional[int] = ..., loss: _Optional[float] = ..., stop: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class HostTestScores(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, scores: _Optional[_Iterable[float]] = ...) -> None: ...

class RingVector(_message.Message):
    __slots__ = ("ring_bits", "count", "data")
    RING_BITS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ring_bits: int
    count: int
    data: bytes
    def __init__(self, ring_bits: _Optional[int] = ..., count: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PartySetup(_message.Message):
    __slots__ = ("public_key", "rlwe_key", "n_features", "n_train", "n_test")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    RLWE_KEY_FIELD_NUMBER: _ClassVar[int]
    N_FEATURES_FIELD_NUMBER: _ClassVar[int]
    N_TRAIN_FIELD_NUMBER: _ClassVar[int]
    N_TEST_FIELD_NUMBER: _ClassVar[int]
    public_key: PaillierPublicKey
    rlwe_key: _rlwe_pb2.RlwePublicKey
    n_features: int
    n_train: int
    n_test: int
    def __init__(self, public_key: _Optional[_Union[PaillierPublicKey, _Mapping]] = ..., rlwe_key: _Optional[_Union[_rlwe_pb2.RlwePublicKey, _Mapping]] = ..., n_features: _Optional[int] = ..., n_train: _Optional[int] = ..., n_test: _Optional[int] = ...) -> None: ...

class EncryptedShares(_message.Message):
    __slots__ = ("values", "rlwe")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RLWE_FIELD_NUMBER: _ClassVar[int]
    values: EncryptedVector
    rlwe: _rlwe_pb2.RlweCiphertexts
    def __init__(self, values: _Optional[_Union[EncryptedVector, _Mapping]] = ..., rlwe: _Optional[_Union[_rlwe_pb2.RlweCiphertexts, _Mapping]] = ...) -> None: ...

class MaskedConversion(_message.Message):
    __slots__ = ("values", "rlwe", "rows", "slot_bits", "slots")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RLWE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SLOT_BITS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    values: EncryptedVector
    rlwe: _rlwe_pb2.RlweCiphertexts
    rows: int
    slot_bits: int
    slots: int
    def __init__(self, values: _Optional[_Union[EncryptedVector, _Mapping]] = ..., rlwe: _Optional[_Union[_rlwe_pb2.RlweCiphertexts, _Mapping]] = ..., rows: _Optional[int] = ..., slot_bits: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class EncryptedResidualShare(_message.Message):
    __slots__ = ("values", "rlwe")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RLWE_FIELD_NUMBER: _ClassVar[int]
    values: EncryptedVector
    rlwe: _rlwe_pb2.RlweCiphertexts
    def __init__(self, values: _Optional[_Union[EncryptedVector, _Mapping]] = ..., rlwe: _Optional[_Union[_rlwe_pb2.RlweCiphertexts, _Mapping]] = ...) -> None: ...

class MaskedGradientShare(_message.Message):
    __slots__ = ("values", "rlwe")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RLWE_FIELD_NUMBER: _ClassVar[int]
    values: EncryptedVector
    rlwe: _rlwe_pb2.RlweCiphertexts
    def __init__(self, values: _Optional[_Union[EncryptedVector, _Mapping]] = ..., rlwe: _Optional[_Union[_rlwe_pb2.RlweCiphertexts, _Mapping]] = ...) -> None: ...

class MaskedWeightedResidual(_message.Message):
    __slots__ = ("values", "rlwe")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RLWE_FIELD_NUMBER: _ClassVar[int]
    values: EncryptedVector
    rlwe: _rlwe_pb2.RlweCiphertexts
    def __init__(self, values: _Optional[_Union[EncryptedVector, _Mapping]] = ..., rlwe: _Optional[_Union[_rlwe_pb2.RlweCiphertexts, _Mapping]] = ...) -> None: ...

class MaskedLoss(_message.Message):
    __slots__ = ("values", "rlwe")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RLWE_FIELD_NUMBER: _ClassVar[int]
    values: EncryptedVector
    rlwe: _rlwe_pb2.RlweCiphertexts
    def __init__(self, values: _Optional[_Union[EncryptedVector, _Mapping]] = ..., rlwe: _Optional[_Union[_rlwe_pb2.RlweCiphertexts, _Mapping]] = ...) -> None: ...

class MaskedLossReply(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: RingVector
    def __init__(self, value: _Optional[_Union[RingVector, _Mapping]] = ...) -> None: ...

class WeightShare(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: RingVector
    def __init__(self, values: _Optional[_Union[RingVector, _Mapping]] = ...) -> None: ...

class ScoreShares(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: RingVector
    def __init__(self, values: _Optional[_Union[RingVector, _Mapping]] = ...) -> None: ...

class ValidationScoreShares(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: RingVector
    def __init__(self, values: _Optional[_Union[RingVector, _Mapping]] = ...) -> None: ...

class ValidationDecision(_message.Message):
    __slots__ = ("epoch", "best_epoch", "stop")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    BEST_EPOCH_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    best_epoch: int
    stop: bool
    def __init__(self, epoch: _Optional[int] = ..., best_epoch: _Optional[int] = ..., stop: _Optional[bool] = ...) -> None: ...
