from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelVersion(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: bytes
    def __init__(self, version: _Optional[bytes] = ...) -> None: ...

class TableDigest(_message.Message):
    __slots__ = ("key_id", "table_id", "count", "salt")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    key_id: bytes
    table_id: bytes
    count: int
    salt: bytes
    def __init__(self, key_id: _Optional[bytes] = ..., table_id: _Optional[bytes] = ..., count: _Optional[int] = ..., salt: _Optional[bytes] = ...) -> None: ...

class TableStatus(_message.Message):
    __slots__ = ("have",)
    HAVE_FIELD_NUMBER: _ClassVar[int]
    have: bool
    def __init__(self, have: _Optional[bool] = ...) -> None: ...

class SealedEntries(_message.Message):
    __slots__ = ("count", "entries")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    count: int
    entries: bytes
    def __init__(self, count: _Optional[int] = ..., entries: _Optional[bytes] = ...) -> None: ...

class PlainIds(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PlainPartials(_message.Message):
    __slots__ = ("found", "values")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedScalarFieldContainer[bool]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, found: _Optional[_Iterable[bool]] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class ScoreApplicantRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ApplicantScore(_message.Message):
    __slots__ = ("id", "found", "probability", "points")
    ID_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    found: bool
    probability: float
    points: float
    def __init__(self, id: _Optional[str] = ..., found: _Optional[bool] = ..., probability: _Optional[float] = ..., points: _Optional[float] = ...) -> None: ...

class ScoreApplicantResponse(_message.Message):
    __slots__ = ("model_id", "model_version", "scores")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: str
    scores: _containers.RepeatedCompositeFieldContainer[ApplicantScore]
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[ApplicantScore, _Mapping]]] = ...) -> None: ...
