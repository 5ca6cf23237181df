from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CkksPublicContext(_message.Message):
    __slots__ = ("context",)
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    context: bytes
    def __init__(self, context: _Optional[bytes] = ...) -> None: ...

class CkksEncryptedScores(_message.Message):
    __slots__ = ("key_fingerprint", "quarter_scores", "eighth_square_sum")
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    QUARTER_SCORES_FIELD_NUMBER: _ClassVar[int]
    EIGHTH_SQUARE_SUM_FIELD_NUMBER: _ClassVar[int]
    key_fingerprint: bytes
    quarter_scores: bytes
    eighth_square_sum: bytes
    def __init__(self, key_fingerprint: _Optional[bytes] = ..., quarter_scores: _Optional[bytes] = ..., eighth_square_sum: _Optional[bytes] = ...) -> None: ...

class CkksEncryptedResiduals(_message.Message):
    __slots__ = ("key_fingerprint", "residuals")
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    RESIDUALS_FIELD_NUMBER: _ClassVar[int]
    key_fingerprint: bytes
    residuals: bytes
    def __init__(self, key_fingerprint: _Optional[bytes] = ..., residuals: _Optional[bytes] = ...) -> None: ...

class CkksMaskedCiphertexts(_message.Message):
    __slots__ = ("key_fingerprint", "rows", "block", "n_values", "ciphertexts")
    KEY_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    N_VALUES_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    key_fingerprint: bytes
    rows: int
    block: int
    n_values: int
    ciphertexts: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, key_fingerprint: _Optional[bytes] = ..., rows: _Optional[int] = ..., block: _Optional[int] = ..., n_values: _Optional[int] = ..., ciphertexts: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CkksEpochLoss(_message.Message):
    __slots__ = ("loss",)
    LOSS_FIELD_NUMBER: _ClassVar[int]
    loss: float
    def __init__(self, loss: _Optional[float] = ...) -> None: ...
