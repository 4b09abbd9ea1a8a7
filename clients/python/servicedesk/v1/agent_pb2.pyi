import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from servicedesk.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttachRequest(_message.Message):
    __slots__ = ("agent_id", "name", "tier", "specialties", "capacity")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    tier: str
    specialties: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[str] = ..., specialties: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ...) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("attached", "assignment", "revoked")
    ATTACHED_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    attached: Attached
    assignment: Assignment
    revoked: Revoked
    def __init__(self, attached: _Optional[_Union[Attached, _Mapping]] = ..., assignment: _Optional[_Union[Assignment, _Mapping]] = ..., revoked: _Optional[_Union[Revoked, _Mapping]] = ...) -> None: ...

class Attached(_message.Message):
    __slots__ = ("agent_id", "agent", "assignment_timeout")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent: _types_pb2.Agent
    assignment_timeout: _duration_pb2.Duration
    def __init__(self, agent_id: _Optional[str] = ..., agent: _Optional[_Union[_types_pb2.Agent, _Mapping]] = ..., assignment_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("assignment_id", "agent_id", "ticket", "deadline", "draft", "instructions")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    agent_id: str
    ticket: _types_pb2.Ticket
    deadline: _timestamp_pb2.Timestamp
    draft: str
    instructions: str
    def __init__(self, assignment_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., ticket: _Optional[_Union[_types_pb2.Ticket, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., draft: _Optional[str] = ..., instructions: _Optional[str] = ...) -> None: ...

class Revoked(_message.Message):
    __slots__ = ("assignment_id", "reason")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    reason: str
    def __init__(self, assignment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReplyRequest(_message.Message):
    __slots__ = ("assignment_id", "resolve", "escalate", "request_review")
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_REVIEW_FIELD_NUMBER: _ClassVar[int]
    assignment_id: str
    resolve: Resolve
    escalate: Escalate
    request_review: RequestReview
    def __init__(self, assignment_id: _Optional[str] = ..., resolve: _Optional[_Union[Resolve, _Mapping]] = ..., escalate: _Optional[_Union[Escalate, _Mapping]] = ..., request_review: _Optional[_Union[RequestReview, _Mapping]] = ...) -> None: ...

class Resolve(_message.Message):
    __slots__ = ("response",)
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    response: str
    def __init__(self, response: _Optional[str] = ...) -> None: ...

class Escalate(_message.Message):
    __slots__ = ("reason", "draft")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    draft: str
    def __init__(self, reason: _Optional[str] = ..., draft: _Optional[str] = ...) -> None: ...

class RequestReview(_message.Message):
    __slots__ = ("reason", "draft", "priority")
    REASON_FIELD_NUMBER: _ClassVar[int]
    DRAFT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    draft: str
    priority: _types_pb2.EscalationPriority
    def __init__(self, reason: _Optional[str] = ..., draft: _Optional[str] = ..., priority: _Optional[_Union[_types_pb2.EscalationPriority, str]] = ...) -> None: ...

class ReplyResponse(_message.Message):
    __slots__ = ("ticket",)
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ticket: _types_pb2.Ticket
    def __init__(self, ticket: _Optional[_Union[_types_pb2.Ticket, _Mapping]] = ...) -> None: ...
