"""Quickstart: ask the desk one question and print its answer.

    export SERVICEDESK_TARGET=127.0.0.1:50051      # where `servicedesk serve --dev` listens
    export SERVICEDESK_API_KEY=test-key-123         # any key with `customer_service`
    python examples/quickstart.py
"""

from __future__ import annotations

import sys

import grpc

from servicedesk import ConfigurationError, connect, describe_error
from servicedesk.v1 import desk_pb2, types_pb2

INQUIRY = "How do I reset my password?"


def main() -> int:
    try:
        sd = connect()
    except ConfigurationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with sd:
        print(f"Asking the desk at {sd.target}: {INQUIRY!r}")
        try:
            reply = sd.desk.HandleInquiry(
                desk_pb2.HandleInquiryRequest(customer_id="quickstart_customer", inquiry=INQUIRY),
                timeout=30,
            )
        except grpc.RpcError as err:
            print(f"error: {describe_error(err)}", file=sys.stderr)
            return 1
    status = types_pb2.TicketStatus.Name(reply.ticket.status).removeprefix("TICKET_STATUS_")
    print()
    print(f"Answer:    {reply.response}")
    print(f"Agent:     {reply.agent} (tier {reply.tier})")
    print(f"Escalated: {'yes' if reply.escalated else 'no'}")
    print(f"Ticket:    {reply.ticket.ticket_id}, {status}, topic {reply.ticket.topic}")
    if reply.escalation_id:
        print(f"Review:    {reply.escalation_id} (a person will decide)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
