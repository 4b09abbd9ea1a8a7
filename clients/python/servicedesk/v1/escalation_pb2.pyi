from servicedesk.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListEscalationsRequest(_message.Message):
    __slots__ = ("state", "reviewer_id", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.EscalationState
    reviewer_id: str
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[_types_pb2.EscalationState, str]] = ..., reviewer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEscalationsResponse(_message.Message):
    __slots__ = ("escalations", "next_page_token", "sequence")
    ESCALATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    escalations: _containers.RepeatedCompositeFieldContainer[_types_pb2.Escalation]
    next_page_token: str
    sequence: int
    def __init__(self, escalations: _Optional[_Iterable[_Union[_types_pb2.Escalation, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetEscalationRequest(_message.Message):
    __slots__ = ("escalation_id",)
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    escalation_id: str
    def __init__(self, escalation_id: _Optional[str] = ...) -> None: ...

class ApproveEscalationRequest(_message.Message):
    __slots__ = ("escalation_id", "comments", "response", "reviewer_id")
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    escalation_id: str
    comments: str
    response: str
    reviewer_id: str
    def __init__(self, escalation_id: _Optional[str] = ..., comments: _Optional[str] = ..., response: _Optional[str] = ..., reviewer_id: _Optional[str] = ...) -> None: ...

class RejectEscalationRequest(_message.Message):
    __slots__ = ("escalation_id", "reason", "reviewer_id")
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    escalation_id: str
    reason: str
    reviewer_id: str
    def __init__(self, escalation_id: _Optional[str] = ..., reason: _Optional[str] = ..., reviewer_id: _Optional[str] = ...) -> None: ...

class AssignEscalationRequest(_message.Message):
    __slots__ = ("escalation_id", "reviewer_id")
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    escalation_id: str
    reviewer_id: str
    def __init__(self, escalation_id: _Optional[str] = ..., reviewer_id: _Optional[str] = ...) -> None: ...

class WatchEscalationsRequest(_message.Message):
    __slots__ = ("reviewer_id", "after_sequence")
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    reviewer_id: str
    after_sequence: int
    def __init__(self, reviewer_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class GetEscalationStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
