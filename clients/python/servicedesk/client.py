"""A thin, typed convenience layer over the generated servicedesk.v1 stubs.

Typical use::

    from servicedesk import connect
    from servicedesk.v1 import desk_pb2

    with connect() as sd:                      # SERVICEDESK_TARGET, SERVICEDESK_API_KEY
        reply = sd.desk.HandleInquiry(
            desk_pb2.HandleInquiryRequest(customer_id="cust_1", inquiry="How do I reset my password?"),
            timeout=30,
        )
        print(reply.agent, reply.response)

Every call made through a :class:`Desk` carries the API key as ``x-api-key`` metadata (added by a
client interceptor, for unary and streaming calls alike), so the generated stubs can be used
as they are. :func:`describe_error` turns a failed call into one readable message, including the
``google.rpc.BadRequest`` field violations and ``google.rpc.ErrorInfo`` the server attaches.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2

from servicedesk.v1 import admin_pb2_grpc, agent_pb2_grpc, desk_pb2_grpc, escalation_pb2_grpc

__all__ = [
    "DEFAULT_TARGET",
    "ConfigurationError",
    "Desk",
    "AsyncDesk",
    "connect",
    "connect_async",
    "describe_error",
    "error_details",
    "ErrorDetails",
]

#: Where the server listens by default (``servicedesk serve``).
DEFAULT_TARGET = "127.0.0.1:50051"

#: The metadata key the API key travels in.
API_KEY_HEADER = "x-api-key"

_STATUS_DETAILS_KEY = "grpc-status-details-bin"

Metadata = Sequence[Tuple[str, Union[str, bytes]]]


class ConfigurationError(RuntimeError):
    """The client is not configured well enough to connect (e.g. no API key)."""


# --------------------------------------------------------------------------------------------
# Interceptors: add the API key to every call.
# --------------------------------------------------------------------------------------------


class _CallDetails(
    NamedTuple(
        "_CallDetails",
        [
            ("method", str),
            ("timeout", Optional[float]),
            ("metadata", Optional[Metadata]),
            ("credentials", Optional[grpc.CallCredentials]),
            ("wait_for_ready", Optional[bool]),
            ("compression", Any),
        ],
    ),
    grpc.ClientCallDetails,
):
    """A concrete :class:`grpc.ClientCallDetails` the interceptor can rebuild."""


def _with_key(metadata: Optional[Metadata], api_key: str) -> list:
    """The call's metadata with ``x-api-key`` set (an explicit one on the call wins)."""
    items = list(metadata or ())
    if not any(key.lower() in (API_KEY_HEADER, "authorization") for key, _ in items):
        items.append((API_KEY_HEADER, api_key))
    return items


class _ApiKeyInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``x-api-key`` to the metadata of every call on a synchronous channel."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            _with_key(details.metadata, self._api_key),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(
        self, continuation: Callable, details: Any, request_iterator: Iterator[Any]
    ) -> Any:
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Callable, details: Any, request_iterator: Iterator[Any]
    ) -> Any:
        return continuation(self._details(details), request_iterator)


class _AioKey:
    """Adds ``x-api-key`` to the call details of a :mod:`grpc.aio` call."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key

    def _details(self, d: Any) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*_with_key(tuple(d.metadata or ()), self._api_key))
        return grpc.aio.ClientCallDetails(
            d.method, d.timeout, metadata, d.credentials, d.wait_for_ready
        )


class _AioUnaryUnary(_AioKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any,
                                    request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioUnaryStream(_AioKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any,
                                     request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioStreamUnary(_AioKey, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, client_call_details: Any,
                                     request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _AioStreamStream(_AioKey, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, client_call_details: Any,
                                      request_iterator: Any) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def _aio_interceptors(api_key: str) -> list:
    """The API key interceptors for :mod:`grpc.aio` channels (one object per call kind)."""
    return [cls(api_key) for cls in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary,
                                     _AioStreamStream)]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class _Settings(NamedTuple):
    target: str
    api_key: str
    credentials: Optional[grpc.ChannelCredentials]


def _settings(
    target: Optional[str], api_key: Optional[str], tls_ca: Optional[str], tls: Optional[bool]
) -> _Settings:
    target = (target or os.environ.get("SERVICEDESK_TARGET") or DEFAULT_TARGET).strip()
    api_key = api_key if api_key is not None else os.environ.get("SERVICEDESK_API_KEY")
    if not api_key or not api_key.strip():
        raise ConfigurationError(
            "no API key: set SERVICEDESK_API_KEY (e.g. export SERVICEDESK_API_KEY=test-key-123 "
            "against `servicedesk serve --dev`) or pass api_key="
        )
    tls_ca = tls_ca if tls_ca is not None else (os.environ.get("SERVICEDESK_TLS_CA") or None)
    use_tls = bool(tls)
    if target.startswith("https://"):
        use_tls, target = True, target[len("https://") :]
    elif target.startswith("http://"):
        target = target[len("http://") :]
    if tls_ca:
        use_tls = True if tls is None else use_tls
    target = target.rstrip("/")
    credentials = None
    if use_tls:
        root = None
        if tls_ca:
            try:
                with open(tls_ca, "rb") as f:
                    root = f.read()
            except OSError as err:
                raise ConfigurationError(
                    f"cannot read SERVICEDESK_TLS_CA {tls_ca!r}: {err}"
                ) from err
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return _Settings(target, api_key.strip(), credentials)


_CHANNEL_OPTIONS = [
    # Keep long-lived streams (watches, Attach) alive through idle NATs and notice dead peers.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


class Desk:
    """A connection to a servicedesk server with the four service stubs.

    Attributes:
        target: ``host:port`` the channel connects to.
        channel: The underlying :class:`grpc.Channel` (intercepted: it adds the API key).
        desk: ``DeskService`` stub (customers' side: HandleInquiry, GetTicket, WatchTicket...).
        escalations: ``EscalationService`` stub (reviewers: ListEscalations, Approve/Reject...).
        admin: ``AdminService`` stub (operators: GetDeskStatus, CreateReviewer, CreateApiKey...).
        agents: ``AgentService`` stub (remote agents: Attach, Reply).

    Use it as a context manager, or call :meth:`close` when done.
    """

    def __init__(
        self,
        target: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        tls_ca: Optional[str] = None,
        tls: Optional[bool] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        """Opens a channel (lazily: nothing is sent until the first call).

        Args:
            target: ``host:port``, ``http://host:port`` or ``https://host:port`` (TLS). Default:
                ``$SERVICEDESK_TARGET``, else ``127.0.0.1:50051``.
            api_key: The API key. Default: ``$SERVICEDESK_API_KEY``; none is a
                :class:`ConfigurationError`.
            tls_ca: PEM file of the CA that signed the server's certificate; implies TLS.
                Default: ``$SERVICEDESK_TLS_CA``.
            tls: Force TLS on (with the system roots unless ``tls_ca``) or off.
            options: Extra gRPC channel options.
        """
        settings = _settings(target, api_key, tls_ca, tls)
        self.target = settings.target
        self.api_key = settings.api_key
        opts = list(_CHANNEL_OPTIONS) + list(options or ())
        if settings.credentials is not None:
            raw = grpc.secure_channel(settings.target, settings.credentials, options=opts)
        else:
            raw = grpc.insecure_channel(settings.target, options=opts)
        self._raw_channel = raw
        self.channel: grpc.Channel = grpc.intercept_channel(raw, _ApiKeyInterceptor(self.api_key))
        self.desk = desk_pb2_grpc.DeskServiceStub(self.channel)
        self.escalations = escalation_pb2_grpc.EscalationServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.agents = agent_pb2_grpc.AgentServiceStub(self.channel)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected; raises ``grpc.FutureTimeoutError`` otherwise."""
        grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._raw_channel.close()

    def __enter__(self) -> "Desk":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Desk(target={self.target!r})"


class AsyncDesk:
    """The :mod:`grpc.aio` twin of :class:`Desk`: the same four stubs, awaitable.

    Use as ``async with connect_async() as sd: reply = await sd.desk.HandleInquiry(...)``.
    Create it inside a running event loop.
    """

    def __init__(
        self,
        target: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        tls_ca: Optional[str] = None,
        tls: Optional[bool] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        """Same arguments and defaults as :class:`Desk`."""
        settings = _settings(target, api_key, tls_ca, tls)
        self.target = settings.target
        self.api_key = settings.api_key
        opts = list(_CHANNEL_OPTIONS) + list(options or ())
        interceptors = _aio_interceptors(self.api_key)
        if settings.credentials is not None:
            self.channel = grpc.aio.secure_channel(
                settings.target, settings.credentials, options=opts, interceptors=interceptors
            )
        else:
            self.channel = grpc.aio.insecure_channel(
                settings.target, options=opts, interceptors=interceptors
            )
        self.desk = desk_pb2_grpc.DeskServiceStub(self.channel)
        self.escalations = escalation_pb2_grpc.EscalationServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)
        self.agents = agent_pb2_grpc.AgentServiceStub(self.channel)

    async def close(self) -> None:
        """Closes the channel."""
        await self.channel.close()

    async def __aenter__(self) -> "AsyncDesk":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncDesk(target={self.target!r})"


def connect(
    target: Optional[str] = None, api_key: Optional[str] = None, **kwargs: Any
) -> Desk:
    """Returns a :class:`Desk` configured from the arguments or the environment.

    ``SERVICEDESK_TARGET`` (default ``127.0.0.1:50051``), ``SERVICEDESK_API_KEY`` (required),
    ``SERVICEDESK_TLS_CA`` (optional, implies TLS). Raises :class:`ConfigurationError` without
    a key.
    """
    return Desk(target, api_key, **kwargs)


def connect_async(
    target: Optional[str] = None, api_key: Optional[str] = None, **kwargs: Any
) -> AsyncDesk:
    """Returns an :class:`AsyncDesk` (grpc.aio) configured like :func:`connect`."""
    return AsyncDesk(target, api_key, **kwargs)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class ErrorDetails(NamedTuple):
    """What a failed call said, decoded.

    Attributes:
        code: The status code, e.g. ``grpc.StatusCode.INVALID_ARGUMENT``.
        message: The server's one-sentence message.
        field_violations: ``(field, description)`` pairs of a ``google.rpc.BadRequest``.
        reason: ``google.rpc.ErrorInfo.reason`` (e.g. ``OVERLOADED``), or ``""``.
        metadata: ``google.rpc.ErrorInfo.metadata``.
    """

    code: Optional[grpc.StatusCode]
    message: str
    field_violations: Tuple[Tuple[str, str], ...]
    reason: str
    metadata: Tuple[Tuple[str, str], ...]


def _status_proto(err: Any) -> Optional[status_pb2.Status]:
    """The ``google.rpc.Status`` in the call's trailing metadata, if any."""
    try:
        trailers = err.trailing_metadata() or ()
    except Exception:  # not a call (e.g. a plain RpcError), or a cancelled one
        return None
    for key, value in trailers:
        if key == _STATUS_DETAILS_KEY:
            status = status_pb2.Status()
            try:
                status.ParseFromString(value)
            except Exception:
                return None
            return status
    return None


def error_details(err: BaseException) -> ErrorDetails:
    """Decodes a :class:`grpc.RpcError` (sync or :mod:`grpc.aio`) into :class:`ErrorDetails`."""
    code = None
    message = ""
    if callable(getattr(err, "code", None)):
        try:
            code = err.code()  # type: ignore[attr-defined]
        except Exception:
            code = None
    if callable(getattr(err, "details", None)):
        try:
            message = err.details() or ""  # type: ignore[attr-defined]
        except Exception:
            message = ""
    if not message:
        message = str(err)
    violations: list = []
    reason = ""
    metadata: Tuple[Tuple[str, str], ...] = ()
    status = _status_proto(err)
    if status is not None:
        if not message:
            message = status.message
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend((v.field, v.description) for v in bad.field_violations)
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
                metadata = tuple(sorted(info.metadata.items()))
    return ErrorDetails(code, message, tuple(violations), reason, metadata)


def describe_error(err: BaseException) -> str:
    """One readable message for a failed call, e.g.::

        INVALID_ARGUMENT: the request has invalid fields.
          - customer_id: must not be empty
          - priority: must be between 0 and 10

    Works with any exception: non-gRPC ones are shown as ``TypeName: message``.
    """
    if not isinstance(err, grpc.RpcError):
        return f"{type(err).__name__}: {err}"
    d = error_details(err)
    head = f"{d.code.name if d.code is not None else 'UNKNOWN'}: {d.message}"
    lines = [head]
    for field, description in d.field_violations:
        lines.append(f"  - {field}: {description}")
    if d.reason and (d.code is None or d.reason != d.code.name):
        extra = ", ".join(f"{k}={v}" for k, v in d.metadata)
        lines.append(f"  reason: {d.reason}" + (f" ({extra})" if extra else ""))
    elif d.metadata:
        lines.append("  " + ", ".join(f"{k}={v}" for k, v in d.metadata))
    return "\n".join(lines)
