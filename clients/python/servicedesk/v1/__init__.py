"""Generated gRPC and protobuf modules of the servicedesk.v1 API (see generate.sh).

Import the modules you need, e.g. ``from servicedesk.v1 import desk_pb2, desk_pb2_grpc``.
"""
