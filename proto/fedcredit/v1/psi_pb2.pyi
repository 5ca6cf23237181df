from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class BlindedPoints(_message.Message):
    __slots__ = ("count", "points")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    count: int
    points: bytes
    def __init__(self, count: _Optional[int] = ..., points: _Optional[bytes] = ...) -> None: ...

class MatchedPositions(_message.Message):
    __slots__ = ("count", "positions")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    count: int
    positions: bytes
    def __init__(self, count: _Optional[int] = ..., positions: _Optional[bytes] = ...) -> None: ...

class SetSize(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class IntersectionCount(_message.Message):
    __slots__ = ("count", "meets_minimum")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEETS_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    count: int
    meets_minimum: bool
    def __init__(self, count: _Optional[int] = ..., meets_minimum: _Optional[bool] = ...) -> None: ...

class UnshuffleKey(_message.Message):
    __slots__ = ("meets_minimum", "key")
    MEETS_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    meets_minimum: bool
    key: bytes
    def __init__(self, meets_minimum: _Optional[bool] = ..., key: _Optional[bytes] = ...) -> None: ...

class CacheDigest(_message.Message):
    __slots__ = ("key_id", "set_digest", "count", "salt")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SET_DIGEST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    key_id: bytes
    set_digest: bytes
    count: int
    salt: bytes
    def __init__(self, key_id: _Optional[bytes] = ..., set_digest: _Optional[bytes] = ..., count: _Optional[int] = ..., salt: _Optional[bytes] = ...) -> None: ...

class CacheStatus(_message.Message):
    __slots__ = ("have",)
    HAVE_FIELD_NUMBER: _ClassVar[int]
    have: bool
    def __init__(self, have: _Optional[bool] = ...) -> None: ...

class CachedDigests(_message.Message):
    __slots__ = ("count", "width", "values")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    count: int
    width: int
    values: bytes
    def __init__(self, count: _Optional[int] = ..., width: _Optional[int] = ..., values: _Optional[bytes] = ...) -> None: ...
