from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobRole(_message.Message):
    __slots__ = ("role", "node", "dataset")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    role: str
    node: str
    dataset: str
    def __init__(self, role: _Optional[str] = ..., node: _Optional[str] = ..., dataset: _Optional[str] = ...) -> None: ...

class JobApproval(_message.Message):
    __slots__ = ("node", "approved", "by", "reason", "spec_sha256", "signature", "unix_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SPEC_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    node: str
    approved: bool
    by: str
    reason: str
    spec_sha256: str
    signature: bytes
    unix_ms: int
    def __init__(self, node: _Optional[str] = ..., approved: _Optional[bool] = ..., by: _Optional[str] = ..., reason: _Optional[str] = ..., spec_sha256: _Optional[str] = ..., signature: _Optional[bytes] = ..., unix_ms: _Optional[int] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("job_id", "kind", "state", "stage", "spec_json", "spec_sha256", "roles", "progress_json", "result_json", "error", "created_unix_ms", "updated_unix_ms", "psi_salt_hex", "approvals", "purpose")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    SPEC_SHA256_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    PSI_SALT_HEX_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: str
    state: str
    stage: str
    spec_json: str
    spec_sha256: str
    roles: _containers.RepeatedCompositeFieldContainer[JobRole]
    progress_json: str
    result_json: str
    error: str
    created_unix_ms: int
    updated_unix_ms: int
    psi_salt_hex: str
    approvals: _containers.RepeatedCompositeFieldContainer[JobApproval]
    purpose: str
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., stage: _Optional[str] = ..., spec_json: _Optional[str] = ..., spec_sha256: _Optional[str] = ..., roles: _Optional[_Iterable[_Union[JobRole, _Mapping]]] = ..., progress_json: _Optional[str] = ..., result_json: _Optional[str] = ..., error: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., psi_salt_hex: _Optional[str] = ..., approvals: _Optional[_Iterable[_Union[JobApproval, _Mapping]]] = ..., purpose: _Optional[str] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("spec_json",)
    SPEC_JSON_FIELD_NUMBER: _ClassVar[int]
    spec_json: str
    def __init__(self, spec_json: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit",)
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    limit: int
    def __init__(self, limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "reason")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    reason: str
    def __init__(self, job_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class ApproveJobRequest(_message.Message):
    __slots__ = ("approval", "job_id")
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    approval: JobApproval
    job_id: str
    def __init__(self, approval: _Optional[_Union[JobApproval, _Mapping]] = ..., job_id: _Optional[str] = ...) -> None: ...

class ApproveJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class PollAssignmentsRequest(_message.Message):
    __slots__ = ("wait_ms", "ack_job_ids", "ack_pending_job_ids")
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    ACK_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    ACK_PENDING_JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    wait_ms: int
    ack_job_ids: _containers.RepeatedScalarFieldContainer[str]
    ack_pending_job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, wait_ms: _Optional[int] = ..., ack_job_ids: _Optional[_Iterable[str]] = ..., ack_pending_job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PollAssignmentsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class ReportProgressRequest(_message.Message):
    __slots__ = ("job_id", "stage", "done", "total", "detail_json")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    stage: str
    done: int
    total: int
    detail_json: str
    def __init__(self, job_id: _Optional[str] = ..., stage: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., detail_json: _Optional[str] = ...) -> None: ...

class ReportProgressResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class ReportRoleResultRequest(_message.Message):
    __slots__ = ("job_id", "ok", "error", "error_code", "result_json")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    ok: bool
    error: str
    error_code: str
    result_json: str
    def __init__(self, job_id: _Optional[str] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., result_json: _Optional[str] = ...) -> None: ...

class ReportRoleResultResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...
