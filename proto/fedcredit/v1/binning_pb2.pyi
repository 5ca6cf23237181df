from fedcredit.proto.v1 import hetero_lr_pb2 as _hetero_lr_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LabelKey(_message.Message):
    __slots__ = ("public_key", "n_rows")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    N_ROWS_FIELD_NUMBER: _ClassVar[int]
    public_key: _hetero_lr_pb2.PaillierPublicKey
    n_rows: int
    def __init__(self, public_key: _Optional[_Union[_hetero_lr_pb2.PaillierPublicKey, _Mapping]] = ..., n_rows: _Optional[int] = ...) -> None: ...

class BinRows(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, rows: _Optional[_Iterable[int]] = ...) -> None: ...

class BinLayout(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[BinRows]
    def __init__(self, features: _Optional[_Iterable[_Union[BinRows, _Mapping]]] = ...) -> None: ...

class LayoutDecision(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    def __init__(self, accepted: _Optional[bool] = ...) -> None: ...

class BinCiphertexts(_message.Message):
    __slots__ = ("key_fingerprint", "count", "width", "ciphertexts")
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    key_fingerprint: bytes
    count: int
    width: int
    ciphertexts: bytes
    def __init__(self, key_fingerprint: _Optional[bytes] = ..., count: _Optional[int] = ..., width: _Optional[int] = ..., ciphertexts: _Optional[bytes] = ...) -> None: ...

class MaskedCounts(_message.Message):
    __slots__ = ("count", "width", "values")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    count: int
    width: int
    values: bytes
    def __init__(self, count: _Optional[int] = ..., width: _Optional[int] = ..., values: _Optional[bytes] = ...) -> None: ...

class FeatureIv(_message.Message):
    __slots__ = ("name", "iv")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IV_FIELD_NUMBER: _ClassVar[int]
    name: str
    iv: float
    def __init__(self, name: _Optional[str] = ..., iv: _Optional[float] = ...) -> None: ...

class SharedIv(_message.Message):
    __slots__ = ("iv",)
    IV_FIELD_NUMBER: _ClassVar[int]
    iv: _containers.RepeatedCompositeFieldContainer[FeatureIv]
    def __init__(self, iv: _Optional[_Iterable[_Union[FeatureIv, _Mapping]]] = ...) -> None: ...

class EncryptedLabels(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: BinCiphertexts
    def __init__(self, body: _Optional[_Union[BinCiphertexts, _Mapping]] = ...) -> None: ...

class MaskedBinSums(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: BinCiphertexts
    def __init__(self, body: _Optional[_Union[BinCiphertexts, _Mapping]] = ...) -> None: ...
