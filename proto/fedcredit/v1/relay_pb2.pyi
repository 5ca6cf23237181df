from fedcredit.proto.v1 import envelope_pb2 as _envelope_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SendRequest(_message.Message):
    __slots__ = ("envelope", "chunk")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    chunk: bytes
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class SendResponse(_message.Message):
    __slots__ = ("message_id", "received_bytes")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    received_bytes: int
    def __init__(self, message_id: _Optional[str] = ..., received_bytes: _Optional[int] = ...) -> None: ...

class ReceiveRequest(_message.Message):
    __slots__ = ("job_id", "sender", "step", "sequence", "wait_ms")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    sender: str
    step: str
    sequence: int
    wait_ms: int
    def __init__(self, job_id: _Optional[str] = ..., sender: _Optional[str] = ..., step: _Optional[str] = ..., sequence: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ReceiveResponse(_message.Message):
    __slots__ = ("envelope", "chunk")
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    envelope: _envelope_pb2.Envelope
    chunk: bytes
    def __init__(self, envelope: _Optional[_Union[_envelope_pb2.Envelope, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...
