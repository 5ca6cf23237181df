from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("seal_cert_pem", "software_version", "datasets", "sign_cert_pem", "instance_id")
    SEAL_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    SIGN_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    seal_cert_pem: bytes
    software_version: str
    datasets: _containers.RepeatedScalarFieldContainer[str]
    sign_cert_pem: bytes
    instance_id: str
    def __init__(self, seal_cert_pem: _Optional[bytes] = ..., software_version: _Optional[str] = ..., datasets: _Optional[_Iterable[str]] = ..., sign_cert_pem: _Optional[bytes] = ..., instance_id: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("node", "coordinator", "heartbeat_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    node: str
    coordinator: str
    heartbeat_ms: int
    def __init__(self, node: _Optional[str] = ..., coordinator: _Optional[str] = ..., heartbeat_ms: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("instance_id",)
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    instance_id: str
    def __init__(self, instance_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("server_unix_ms",)
    SERVER_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    server_unix_ms: int
    def __init__(self, server_unix_ms: _Optional[int] = ...) -> None: ...

class GetPeerRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPeerResponse(_message.Message):
    __slots__ = ("name", "seal_cert_pem", "online", "sign_cert_pem")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEAL_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    SIGN_CERT_PEM_FIELD_NUMBER: _ClassVar[int]
    name: str
    seal_cert_pem: bytes
    online: bool
    sign_cert_pem: bytes
    def __init__(self, name: _Optional[str] = ..., seal_cert_pem: _Optional[bytes] = ..., online: _Optional[bool] = ..., sign_cert_pem: _Optional[bytes] = ...) -> None: ...
