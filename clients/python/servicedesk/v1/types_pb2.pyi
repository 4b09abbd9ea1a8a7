import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TicketStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATUS_UNSPECIFIED: _ClassVar[TicketStatus]
    TICKET_STATUS_QUEUED: _ClassVar[TicketStatus]
    TICKET_STATUS_ASSIGNED: _ClassVar[TicketStatus]
    TICKET_STATUS_AWAITING_REVIEW: _ClassVar[TicketStatus]
    TICKET_STATUS_RESOLVED: _ClassVar[TicketStatus]
    TICKET_STATUS_REJECTED: _ClassVar[TicketStatus]
    TICKET_STATUS_FAILED: _ClassVar[TicketStatus]

class PathOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PATH_OUTCOME_UNSPECIFIED: _ClassVar[PathOutcome]
    PATH_OUTCOME_RESOLVED: _ClassVar[PathOutcome]
    PATH_OUTCOME_ESCALATED: _ClassVar[PathOutcome]
    PATH_OUTCOME_REVIEW_REQUESTED: _ClassVar[PathOutcome]
    PATH_OUTCOME_HANDED_ON: _ClassVar[PathOutcome]

class TicketEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_EVENT_TYPE_UNSPECIFIED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_CREATED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_CLASSIFIED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_ASSIGNED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_AGENT_REPLIED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_TIER_ESCALATED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_REVIEW_REQUESTED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_REVIEWER_ASSIGNED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_APPROVED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_REJECTED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_EXPIRED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_RESOLVED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_FAILED: _ClassVar[TicketEventType]
    TICKET_EVENT_TYPE_QUEUED: _ClassVar[TicketEventType]

class EscalationPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_PRIORITY_UNSPECIFIED: _ClassVar[EscalationPriority]
    ESCALATION_PRIORITY_LOW: _ClassVar[EscalationPriority]
    ESCALATION_PRIORITY_MEDIUM: _ClassVar[EscalationPriority]
    ESCALATION_PRIORITY_HIGH: _ClassVar[EscalationPriority]
    ESCALATION_PRIORITY_URGENT: _ClassVar[EscalationPriority]

class EscalationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_STATE_UNSPECIFIED: _ClassVar[EscalationState]
    ESCALATION_STATE_PENDING: _ClassVar[EscalationState]
    ESCALATION_STATE_APPROVED: _ClassVar[EscalationState]
    ESCALATION_STATE_REJECTED: _ClassVar[EscalationState]
    ESCALATION_STATE_EXPIRED: _ClassVar[EscalationState]

class EscalationEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ESCALATION_EVENT_TYPE_UNSPECIFIED: _ClassVar[EscalationEventType]
    ESCALATION_EVENT_TYPE_CREATED: _ClassVar[EscalationEventType]
    ESCALATION_EVENT_TYPE_ASSIGNED: _ClassVar[EscalationEventType]
    ESCALATION_EVENT_TYPE_APPROVED: _ClassVar[EscalationEventType]
    ESCALATION_EVENT_TYPE_REJECTED: _ClassVar[EscalationEventType]
    ESCALATION_EVENT_TYPE_EXPIRED: _ClassVar[EscalationEventType]
    ESCALATION_EVENT_TYPE_REASSIGNED: _ClassVar[EscalationEventType]

class AgentAvailability(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_AVAILABILITY_UNSPECIFIED: _ClassVar[AgentAvailability]
    AGENT_AVAILABILITY_AVAILABLE: _ClassVar[AgentAvailability]
    AGENT_AVAILABILITY_PAUSED: _ClassVar[AgentAvailability]
    AGENT_AVAILABILITY_OFFLINE: _ClassVar[AgentAvailability]

class AgentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_KIND_UNSPECIFIED: _ClassVar[AgentKind]
    AGENT_KIND_BUILTIN: _ClassVar[AgentKind]
    AGENT_KIND_REMOTE: _ClassVar[AgentKind]

class DeskEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DESK_EVENT_KIND_UNSPECIFIED: _ClassVar[DeskEventKind]
    DESK_EVENT_KIND_TICKET: _ClassVar[DeskEventKind]
    DESK_EVENT_KIND_ESCALATION: _ClassVar[DeskEventKind]
    DESK_EVENT_KIND_AGENT: _ClassVar[DeskEventKind]
    DESK_EVENT_KIND_REVIEWER: _ClassVar[DeskEventKind]
TICKET_STATUS_UNSPECIFIED: TicketStatus
TICKET_STATUS_QUEUED: TicketStatus
TICKET_STATUS_ASSIGNED: TicketStatus
TICKET_STATUS_AWAITING_REVIEW: TicketStatus
TICKET_STATUS_RESOLVED: TicketStatus
TICKET_STATUS_REJECTED: TicketStatus
TICKET_STATUS_FAILED: TicketStatus
PATH_OUTCOME_UNSPECIFIED: PathOutcome
PATH_OUTCOME_RESOLVED: PathOutcome
PATH_OUTCOME_ESCALATED: PathOutcome
PATH_OUTCOME_REVIEW_REQUESTED: PathOutcome
PATH_OUTCOME_HANDED_ON: PathOutcome
TICKET_EVENT_TYPE_UNSPECIFIED: TicketEventType
TICKET_EVENT_TYPE_CREATED: TicketEventType
TICKET_EVENT_TYPE_CLASSIFIED: TicketEventType
TICKET_EVENT_TYPE_ASSIGNED: TicketEventType
TICKET_EVENT_TYPE_AGENT_REPLIED: TicketEventType
TICKET_EVENT_TYPE_TIER_ESCALATED: TicketEventType
TICKET_EVENT_TYPE_REVIEW_REQUESTED: TicketEventType
TICKET_EVENT_TYPE_REVIEWER_ASSIGNED: TicketEventType
TICKET_EVENT_TYPE_APPROVED: TicketEventType
TICKET_EVENT_TYPE_REJECTED: TicketEventType
TICKET_EVENT_TYPE_EXPIRED: TicketEventType
TICKET_EVENT_TYPE_RESOLVED: TicketEventType
TICKET_EVENT_TYPE_FAILED: TicketEventType
TICKET_EVENT_TYPE_QUEUED: TicketEventType
ESCALATION_PRIORITY_UNSPECIFIED: EscalationPriority
ESCALATION_PRIORITY_LOW: EscalationPriority
ESCALATION_PRIORITY_MEDIUM: EscalationPriority
ESCALATION_PRIORITY_HIGH: EscalationPriority
ESCALATION_PRIORITY_URGENT: EscalationPriority
ESCALATION_STATE_UNSPECIFIED: EscalationState
ESCALATION_STATE_PENDING: EscalationState
ESCALATION_STATE_APPROVED: EscalationState
ESCALATION_STATE_REJECTED: EscalationState
ESCALATION_STATE_EXPIRED: EscalationState
ESCALATION_EVENT_TYPE_UNSPECIFIED: EscalationEventType
ESCALATION_EVENT_TYPE_CREATED: EscalationEventType
ESCALATION_EVENT_TYPE_ASSIGNED: EscalationEventType
ESCALATION_EVENT_TYPE_APPROVED: EscalationEventType
ESCALATION_EVENT_TYPE_REJECTED: EscalationEventType
ESCALATION_EVENT_TYPE_EXPIRED: EscalationEventType
ESCALATION_EVENT_TYPE_REASSIGNED: EscalationEventType
AGENT_AVAILABILITY_UNSPECIFIED: AgentAvailability
AGENT_AVAILABILITY_AVAILABLE: AgentAvailability
AGENT_AVAILABILITY_PAUSED: AgentAvailability
AGENT_AVAILABILITY_OFFLINE: AgentAvailability
AGENT_KIND_UNSPECIFIED: AgentKind
AGENT_KIND_BUILTIN: AgentKind
AGENT_KIND_REMOTE: AgentKind
DESK_EVENT_KIND_UNSPECIFIED: DeskEventKind
DESK_EVENT_KIND_TICKET: DeskEventKind
DESK_EVENT_KIND_ESCALATION: DeskEventKind
DESK_EVENT_KIND_AGENT: DeskEventKind
DESK_EVENT_KIND_REVIEWER: DeskEventKind

class PathStep(_message.Message):
    __slots__ = ("agent_id", "agent_name", "tier", "outcome", "time", "confidence", "detail")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    agent_name: str
    tier: str
    outcome: PathOutcome
    time: _timestamp_pb2.Timestamp
    confidence: float
    detail: str
    def __init__(self, agent_id: _Optional[str] = ..., agent_name: _Optional[str] = ..., tier: _Optional[str] = ..., outcome: _Optional[_Union[PathOutcome, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., confidence: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("ticket_id", "customer_id", "inquiry", "context", "topic", "priority", "status", "assigned_agent_id", "escalation_count", "resolution", "resolution_path", "escalation_id", "create_time", "update_time", "resolve_time", "policy_rules")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_PATH_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    POLICY_RULES_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    customer_id: str
    inquiry: str
    context: _containers.ScalarMap[str, str]
    topic: str
    priority: int
    status: TicketStatus
    assigned_agent_id: str
    escalation_count: int
    resolution: str
    resolution_path: _containers.RepeatedCompositeFieldContainer[PathStep]
    escalation_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    resolve_time: _timestamp_pb2.Timestamp
    policy_rules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ticket_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., inquiry: _Optional[str] = ..., context: _Optional[_Mapping[str, str]] = ..., topic: _Optional[str] = ..., priority: _Optional[int] = ..., status: _Optional[_Union[TicketStatus, str]] = ..., assigned_agent_id: _Optional[str] = ..., escalation_count: _Optional[int] = ..., resolution: _Optional[str] = ..., resolution_path: _Optional[_Iterable[_Union[PathStep, _Mapping]]] = ..., escalation_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_rules: _Optional[_Iterable[str]] = ...) -> None: ...

class TicketEvent(_message.Message):
    __slots__ = ("sequence", "ticket_id", "time", "type", "detail", "ticket")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    ticket_id: str
    time: _timestamp_pb2.Timestamp
    type: TicketEventType
    detail: str
    ticket: Ticket
    def __init__(self, sequence: _Optional[int] = ..., ticket_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[TicketEventType, str]] = ..., detail: _Optional[str] = ..., ticket: _Optional[_Union[Ticket, _Mapping]] = ...) -> None: ...

class Escalation(_message.Message):
    __slots__ = ("escalation_id", "ticket_id", "customer_id", "title", "description", "topic", "priority", "state", "assigned_reviewer_id", "requested_by", "proposed_response", "create_time", "expire_time", "decide_time", "decided_by", "resolution", "comments", "reassign_count")
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    REASSIGN_COUNT_FIELD_NUMBER: _ClassVar[int]
    escalation_id: str
    ticket_id: str
    customer_id: str
    title: str
    description: str
    topic: str
    priority: EscalationPriority
    state: EscalationState
    assigned_reviewer_id: str
    requested_by: str
    proposed_response: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    decide_time: _timestamp_pb2.Timestamp
    decided_by: str
    resolution: str
    comments: str
    reassign_count: int
    def __init__(self, escalation_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., topic: _Optional[str] = ..., priority: _Optional[_Union[EscalationPriority, str]] = ..., state: _Optional[_Union[EscalationState, str]] = ..., assigned_reviewer_id: _Optional[str] = ..., requested_by: _Optional[str] = ..., proposed_response: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_by: _Optional[str] = ..., resolution: _Optional[str] = ..., comments: _Optional[str] = ..., reassign_count: _Optional[int] = ...) -> None: ...

class EscalationEvent(_message.Message):
    __slots__ = ("sequence", "time", "type", "escalation", "previous_reviewer_id")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    type: EscalationEventType
    escalation: Escalation
    previous_reviewer_id: str
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[_Union[EscalationEventType, str]] = ..., escalation: _Optional[_Union[Escalation, _Mapping]] = ..., previous_reviewer_id: _Optional[str] = ...) -> None: ...

class Agent(_message.Message):
    __slots__ = ("agent_id", "name", "tier", "specialties", "capacity", "load", "availability", "kind", "handled_count")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    HANDLED_COUNT_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    name: str
    tier: str
    specialties: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    load: int
    availability: AgentAvailability
    kind: AgentKind
    handled_count: int
    def __init__(self, agent_id: _Optional[str] = ..., name: _Optional[str] = ..., tier: _Optional[str] = ..., specialties: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., load: _Optional[int] = ..., availability: _Optional[_Union[AgentAvailability, str]] = ..., kind: _Optional[_Union[AgentKind, str]] = ..., handled_count: _Optional[int] = ...) -> None: ...

class Reviewer(_message.Message):
    __slots__ = ("reviewer_id", "name", "specialties", "max_concurrent", "load", "decided_count")
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    DECIDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    reviewer_id: str
    name: str
    specialties: _containers.RepeatedScalarFieldContainer[str]
    max_concurrent: int
    load: int
    decided_count: int
    def __init__(self, reviewer_id: _Optional[str] = ..., name: _Optional[str] = ..., specialties: _Optional[_Iterable[str]] = ..., max_concurrent: _Optional[int] = ..., load: _Optional[int] = ..., decided_count: _Optional[int] = ...) -> None: ...

class TierStatus(_message.Message):
    __slots__ = ("name", "agents", "confidence_threshold")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    name: str
    agents: _containers.RepeatedCompositeFieldContainer[Agent]
    confidence_threshold: float
    def __init__(self, name: _Optional[str] = ..., agents: _Optional[_Iterable[_Union[Agent, _Mapping]]] = ..., confidence_threshold: _Optional[float] = ...) -> None: ...

class EscalationStats(_message.Message):
    __slots__ = ("total", "active", "approved", "rejected", "expired", "approval_rate", "avg_time_to_decision", "reviewers", "unassigned")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    APPROVED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_RATE_FIELD_NUMBER: _ClassVar[int]
    AVG_TIME_TO_DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    UNASSIGNED_FIELD_NUMBER: _ClassVar[int]
    total: int
    active: int
    approved: int
    rejected: int
    expired: int
    approval_rate: float
    avg_time_to_decision: _duration_pb2.Duration
    reviewers: _containers.RepeatedCompositeFieldContainer[Reviewer]
    unassigned: int
    def __init__(self, total: _Optional[int] = ..., active: _Optional[int] = ..., approved: _Optional[int] = ..., rejected: _Optional[int] = ..., expired: _Optional[int] = ..., approval_rate: _Optional[float] = ..., avg_time_to_decision: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reviewers: _Optional[_Iterable[_Union[Reviewer, _Mapping]]] = ..., unassigned: _Optional[int] = ...) -> None: ...

class DeskStatus(_message.Message):
    __slots__ = ("desk_name", "total_handled", "escalation_rate", "avg_resolution_time", "utilization", "open_tickets", "tiers", "escalation_stats", "auth_enabled", "registered_clients", "queued_tickets", "sequence", "leader")
    DESK_NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_HANDLED_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_RATE_FIELD_NUMBER: _ClassVar[int]
    AVG_RESOLUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    OPEN_TICKETS_FIELD_NUMBER: _ClassVar[int]
    TIERS_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_STATS_FIELD_NUMBER: _ClassVar[int]
    AUTH_ENABLED_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_CLIENTS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_TICKETS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    desk_name: str
    total_handled: int
    escalation_rate: float
    avg_resolution_time: _duration_pb2.Duration
    utilization: float
    open_tickets: int
    tiers: _containers.RepeatedCompositeFieldContainer[TierStatus]
    escalation_stats: EscalationStats
    auth_enabled: bool
    registered_clients: int
    queued_tickets: int
    sequence: int
    leader: DeskLeader
    def __init__(self, desk_name: _Optional[str] = ..., total_handled: _Optional[int] = ..., escalation_rate: _Optional[float] = ..., avg_resolution_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., utilization: _Optional[float] = ..., open_tickets: _Optional[int] = ..., tiers: _Optional[_Iterable[_Union[TierStatus, _Mapping]]] = ..., escalation_stats: _Optional[_Union[EscalationStats, _Mapping]] = ..., auth_enabled: _Optional[bool] = ..., registered_clients: _Optional[int] = ..., queued_tickets: _Optional[int] = ..., sequence: _Optional[int] = ..., leader: _Optional[_Union[DeskLeader, _Mapping]] = ...) -> None: ...

class DeskLeader(_message.Message):
    __slots__ = ("address", "epoch", "holder")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    address: str
    epoch: int
    holder: str
    def __init__(self, address: _Optional[str] = ..., epoch: _Optional[int] = ..., holder: _Optional[str] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("key_id", "client_id", "client_name", "permissions", "create_time", "last_used_time", "revoked")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USED_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    client_id: str
    client_name: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    last_used_time: _timestamp_pb2.Timestamp
    revoked: bool
    def __init__(self, key_id: _Optional[str] = ..., client_id: _Optional[str] = ..., client_name: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_used_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoked: _Optional[bool] = ...) -> None: ...

class DeskEvent(_message.Message):
    __slots__ = ("sequence", "time", "ticket", "escalation", "agent", "reviewer", "detail")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TICKET_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    time: _timestamp_pb2.Timestamp
    ticket: TicketEvent
    escalation: EscalationEvent
    agent: Agent
    reviewer: Reviewer
    detail: str
    def __init__(self, sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ticket: _Optional[_Union[TicketEvent, _Mapping]] = ..., escalation: _Optional[_Union[EscalationEvent, _Mapping]] = ..., agent: _Optional[_Union[Agent, _Mapping]] = ..., reviewer: _Optional[_Union[Reviewer, _Mapping]] = ..., detail: _Optional[str] = ...) -> None: ...
