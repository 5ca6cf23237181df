from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class OtHostSetup(_message.Message):
    __slots__ = ("count", "code_key", "count_first", "base_ot_setup")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CODE_KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIRST_FIELD_NUMBER: _ClassVar[int]
    BASE_OT_SETUP_FIELD_NUMBER: _ClassVar[int]
    count: int
    code_key: bytes
    count_first: bool
    base_ot_setup: bytes
    def __init__(self, count: _Optional[int] = ..., code_key: _Optional[bytes] = ..., count_first: _Optional[bool] = ..., base_ot_setup: _Optional[bytes] = ...) -> None: ...

class OtGuestSetup(_message.Message):
    __slots__ = ("count", "bins", "cuckoo_seed", "count_first")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    BINS_FIELD_NUMBER: _ClassVar[int]
    CUCKOO_SEED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIRST_FIELD_NUMBER: _ClassVar[int]
    count: int
    bins: int
    cuckoo_seed: bytes
    count_first: bool
    def __init__(self, count: _Optional[int] = ..., bins: _Optional[int] = ..., cuckoo_seed: _Optional[bytes] = ..., count_first: _Optional[bool] = ...) -> None: ...

class BaseOtElements(_message.Message):
    __slots__ = ("elements",)
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    elements: bytes
    def __init__(self, elements: _Optional[bytes] = ...) -> None: ...

class CorrectionRows(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: bytes
    def __init__(self, rows: _Optional[bytes] = ...) -> None: ...

class OprfValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: bytes
    def __init__(self, values: _Optional[bytes] = ...) -> None: ...
