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

class HandleInquiryRequest(_message.Message):
    __slots__ = ("customer_id", "inquiry", "context", "priority", "topic", "idempotency_key")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    inquiry: str
    context: _containers.ScalarMap[str, str]
    priority: int
    topic: str
    idempotency_key: str
    def __init__(self, customer_id: _Optional[str] = ..., inquiry: _Optional[str] = ..., context: _Optional[_Mapping[str, str]] = ..., priority: _Optional[int] = ..., topic: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class HandleInquiryResponse(_message.Message):
    __slots__ = ("ticket", "response", "agent", "escalated", "resolution_time", "escalation_id", "tier", "replayed")
    TICKET_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    ticket: _types_pb2.Ticket
    response: str
    agent: str
    escalated: bool
    resolution_time: _duration_pb2.Duration
    escalation_id: str
    tier: str
    replayed: bool
    def __init__(self, ticket: _Optional[_Union[_types_pb2.Ticket, _Mapping]] = ..., response: _Optional[str] = ..., agent: _Optional[str] = ..., escalated: _Optional[bool] = ..., resolution_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., escalation_id: _Optional[str] = ..., tier: _Optional[str] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("ticket_id",)
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    def __init__(self, ticket_id: _Optional[str] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("customer_id", "status", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    status: _types_pb2.TicketStatus
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.TicketStatus, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTicketsResponse(_message.Message):
    __slots__ = ("tickets", "next_page_token", "sequence")
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tickets: _containers.RepeatedCompositeFieldContainer[_types_pb2.Ticket]
    next_page_token: str
    sequence: int
    def __init__(self, tickets: _Optional[_Iterable[_Union[_types_pb2.Ticket, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class WatchTicketRequest(_message.Message):
    __slots__ = ("ticket_id", "after_sequence")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    after_sequence: int
    def __init__(self, ticket_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class GetCustomerHistoryRequest(_message.Message):
    __slots__ = ("customer_id", "limit")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    limit: int
    def __init__(self, customer_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class CustomerHistoryEntry(_message.Message):
    __slots__ = ("ticket_id", "inquiry", "response", "agent", "status", "topic", "create_time", "resolve_time")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_TIME_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    inquiry: str
    response: str
    agent: str
    status: _types_pb2.TicketStatus
    topic: str
    create_time: _timestamp_pb2.Timestamp
    resolve_time: _timestamp_pb2.Timestamp
    def __init__(self, ticket_id: _Optional[str] = ..., inquiry: _Optional[str] = ..., response: _Optional[str] = ..., agent: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.TicketStatus, str]] = ..., topic: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CustomerHistory(_message.Message):
    __slots__ = ("customer_id", "entries", "total_tickets")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TICKETS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    entries: _containers.RepeatedCompositeFieldContainer[CustomerHistoryEntry]
    total_tickets: int
    def __init__(self, customer_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[CustomerHistoryEntry, _Mapping]]] = ..., total_tickets: _Optional[int] = ...) -> None: ...
