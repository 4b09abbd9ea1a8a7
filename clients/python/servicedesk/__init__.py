"""Python client of servicedesk, a gRPC customer service desk.

The generated protobuf and gRPC modules are in :mod:`servicedesk.v1`; :mod:`servicedesk.client`
adds a connection helper that sends the API key with every call and a readable error formatter::

    from servicedesk import connect, describe_error
    from servicedesk.v1 import desk_pb2
"""

from servicedesk.client import (
    DEFAULT_TARGET,
    AsyncDesk,
    ConfigurationError,
    Desk,
    ErrorDetails,
    connect,
    connect_async,
    describe_error,
    error_details,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TARGET",
    "AsyncDesk",
    "ConfigurationError",
    "Desk",
    "ErrorDetails",
    "connect",
    "connect_async",
    "describe_error",
    "error_details",
    "__version__",
]
