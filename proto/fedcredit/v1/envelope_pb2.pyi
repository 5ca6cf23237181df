from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Envelope(_message.Message):
    __slots__ = ("job_id", "message_id", "sender", "receiver", "step", "sequence", "payload_type", "payload_size", "payload_sha256", "sealed", "classification", "sent_unix_ms", "signature")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    SENT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    message_id: str
    sender: str
    receiver: str
    step: str
    sequence: int
    payload_type: str
    payload_size: int
    payload_sha256: bytes
    sealed: bool
    classification: str
    sent_unix_ms: int
    signature: bytes
    def __init__(self, job_id: _Optional[str] = ..., message_id: _Optional[str] = ..., sender: _Optional[str] = ..., receiver: _Optional[str] = ..., step: _Optional[str] = ..., sequence: _Optional[int] = ..., payload_type: _Optional[str] = ..., payload_size: _Optional[int] = ..., payload_sha256: _Optional[bytes] = ..., sealed: _Optional[bool] = ..., classification: _Optional[str] = ..., sent_unix_ms: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...
