from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SealHello(_message.Message):
    __slots__ = ("phase", "ephemeral", "signature")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    phase: str
    ephemeral: bytes
    signature: bytes
    def __init__(self, phase: _Optional[str] = ..., ephemeral: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...
