import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from servicedesk.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoutingStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTING_STRATEGY_UNSPECIFIED: _ClassVar[RoutingStrategy]
    ROUTING_STRATEGY_LEAST_LOADED: _ClassVar[RoutingStrategy]
    ROUTING_STRATEGY_ROUND_ROBIN: _ClassVar[RoutingStrategy]
ROUTING_STRATEGY_UNSPECIFIED: RoutingStrategy
ROUTING_STRATEGY_LEAST_LOADED: RoutingStrategy
ROUTING_STRATEGY_ROUND_ROBIN: RoutingStrategy

class GetDeskStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateAgentRequest(_message.Message):
    __slots__ = ("name", "tier", "specialties", "capacity", "kind")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    name: str
    tier: str
    specialties: _containers.RepeatedScalarFieldContainer[str]
    capacity: int
    kind: _types_pb2.AgentKind
    def __init__(self, name: _Optional[str] = ..., tier: _Optional[str] = ..., specialties: _Optional[_Iterable[str]] = ..., capacity: _Optional[int] = ..., kind: _Optional[_Union[_types_pb2.AgentKind, str]] = ...) -> None: ...

class UpdateAgentRequest(_message.Message):
    __slots__ = ("agent_id", "availability", "capacity", "specialties", "update_specialties")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    availability: _types_pb2.AgentAvailability
    capacity: int
    specialties: _containers.RepeatedScalarFieldContainer[str]
    update_specialties: bool
    def __init__(self, agent_id: _Optional[str] = ..., availability: _Optional[_Union[_types_pb2.AgentAvailability, str]] = ..., capacity: _Optional[int] = ..., specialties: _Optional[_Iterable[str]] = ..., update_specialties: _Optional[bool] = ...) -> None: ...

class DeleteAgentRequest(_message.Message):
    __slots__ = ("agent_id",)
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    def __init__(self, agent_id: _Optional[str] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("tier", "page_size", "page_token")
    TIER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tier: str
    page_size: int
    page_token: str
    def __init__(self, tier: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents", "next_page_token", "sequence")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[_types_pb2.Agent]
    next_page_token: str
    sequence: int
    def __init__(self, agents: _Optional[_Iterable[_Union[_types_pb2.Agent, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class CreateReviewerRequest(_message.Message):
    __slots__ = ("reviewer_id", "name", "specialties", "max_concurrent")
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    reviewer_id: str
    name: str
    specialties: _containers.RepeatedScalarFieldContainer[str]
    max_concurrent: int
    def __init__(self, reviewer_id: _Optional[str] = ..., name: _Optional[str] = ..., specialties: _Optional[_Iterable[str]] = ..., max_concurrent: _Optional[int] = ...) -> None: ...

class UpdateReviewerRequest(_message.Message):
    __slots__ = ("reviewer_id", "name", "max_concurrent", "specialties", "update_specialties")
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    UPDATE_SPECIALTIES_FIELD_NUMBER: _ClassVar[int]
    reviewer_id: str
    name: str
    max_concurrent: int
    specialties: _containers.RepeatedScalarFieldContainer[str]
    update_specialties: bool
    def __init__(self, reviewer_id: _Optional[str] = ..., name: _Optional[str] = ..., max_concurrent: _Optional[int] = ..., specialties: _Optional[_Iterable[str]] = ..., update_specialties: _Optional[bool] = ...) -> None: ...

class DeleteReviewerRequest(_message.Message):
    __slots__ = ("reviewer_id",)
    REVIEWER_ID_FIELD_NUMBER: _ClassVar[int]
    reviewer_id: str
    def __init__(self, reviewer_id: _Optional[str] = ...) -> None: ...

class ListReviewersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReviewersResponse(_message.Message):
    __slots__ = ("reviewers", "next_page_token", "sequence")
    REVIEWERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    reviewers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Reviewer]
    next_page_token: str
    sequence: int
    def __init__(self, reviewers: _Optional[_Iterable[_Union[_types_pb2.Reviewer, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("client_id", "client_name", "permissions")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    client_name: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_id: _Optional[str] = ..., client_name: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "key")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    key: _types_pb2.ApiKey
    def __init__(self, api_key: _Optional[str] = ..., key: _Optional[_Union[_types_pb2.ApiKey, _Mapping]] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "show_revoked")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHOW_REVOKED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    show_revoked: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., show_revoked: _Optional[bool] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("keys", "next_page_token")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[_types_pb2.ApiKey]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[_Union[_types_pb2.ApiKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("key_id",)
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    def __init__(self, key_id: _Optional[str] = ...) -> None: ...

class GetConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeskConfig(_message.Message):
    __slots__ = ("routing_strategy", "escalation_timeout", "max_review_reassignments", "queue_timeout", "assignment_timeout")
    ROUTING_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MAX_REVIEW_REASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    routing_strategy: RoutingStrategy
    escalation_timeout: _duration_pb2.Duration
    max_review_reassignments: int
    queue_timeout: _duration_pb2.Duration
    assignment_timeout: _duration_pb2.Duration
    def __init__(self, routing_strategy: _Optional[_Union[RoutingStrategy, str]] = ..., escalation_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_review_reassignments: _Optional[int] = ..., queue_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., assignment_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class UpdateConfigRequest(_message.Message):
    __slots__ = ("config", "update_mask")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    config: DeskConfig
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, config: _Optional[_Union[DeskConfig, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("after_sequence", "kinds")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    kinds: _containers.RepeatedScalarFieldContainer[_types_pb2.DeskEventKind]
    def __init__(self, after_sequence: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[_types_pb2.DeskEventKind, str]]] = ...) -> None: ...
