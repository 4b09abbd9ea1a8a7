"""The desk's signature scenarios, end to end, against a running server.

1. a simple inquiry, answered by the first tier;
2. a double charge asking for a refund, which policy sends to a human review;
3. five inquiries at once, then the desk's status by tier;
4. a VIP complaint demanding a manager: an URGENT review, then the pending queue;
5. an operator adds a reviewer and gives them an API key;
6. Sarah (supervisor_1) approves the refund, and the customer gets the answer.

    export SERVICEDESK_TARGET=127.0.0.1:50051
    export SERVICEDESK_API_KEY=admin-key-456      # needs every permission (admin for 3 and 5)
    python examples/hero.py

It can run any number of times against the same server: new reviewers get unique ids.
"""

from __future__ import annotations

import secrets
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Dict

import grpc

from servicedesk import ConfigurationError, Desk, connect, describe_error
from servicedesk.v1 import admin_pb2, desk_pb2, escalation_pb2, types_pb2

TIMEOUT = 30.0


def enum_name(enum, value: int, prefix: str) -> str:
    """`TICKET_STATUS_RESOLVED` -> `RESOLVED`."""
    return enum.Name(value).removeprefix(prefix)


def status(ticket: types_pb2.Ticket) -> str:
    return enum_name(types_pb2.TicketStatus, ticket.status, "TICKET_STATUS_")


def priority(escalation: types_pb2.Escalation) -> str:
    return enum_name(types_pb2.EscalationPriority, escalation.priority, "ESCALATION_PRIORITY_")


def heading(text: str) -> None:
    print()
    print(f"== {text} " + "=" * max(0, 74 - len(text)))


def short(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_path(ticket: types_pb2.Ticket) -> None:
    print("  path through the tiers:")
    for number, step in enumerate(ticket.resolution_path, 1):
        outcome = enum_name(types_pb2.PathOutcome, step.outcome, "PATH_OUTCOME_")
        print(
            f"    {number}. {step.agent_name} ({step.tier}) -> {outcome}, "
            f"confidence {step.confidence:.2f}: {step.detail}"
        )


def reviewer_names(sd: Desk) -> Dict[str, str]:
    names: Dict[str, str] = {}
    token = ""
    while True:
        page = sd.admin.ListReviewers(
            admin_pb2.ListReviewersRequest(page_token=token), timeout=TIMEOUT
        )
        names.update({r.reviewer_id: r.name for r in page.reviewers})
        token = page.next_page_token
        if not token:
            return names


def who(reviewer_id: str, names: Dict[str, str]) -> str:
    if not reviewer_id:
        return "nobody yet (every matching reviewer is at capacity)"
    name = names.get(reviewer_id)
    return f"{name} ({reviewer_id})" if name else reviewer_id


def ask(sd: Desk, customer_id: str, inquiry: str, **fields) -> desk_pb2.HandleInquiryResponse:
    return sd.desk.HandleInquiry(
        desk_pb2.HandleInquiryRequest(customer_id=customer_id, inquiry=inquiry, **fields),
        timeout=TIMEOUT,
    )


def simple_inquiry(sd: Desk) -> None:
    heading("1. A simple inquiry")
    reply = ask(sd, "cust_hero_1", "How do I reset my password?")
    print("  customer: How do I reset my password?")
    print(f"  answered by {reply.agent} ({reply.tier}), {status(reply.ticket)}, "
          f"escalated: {'yes' if reply.escalated else 'no'}")
    print(f"  answer: {short(reply.response)}")


def refund(sd: Desk, names: Dict[str, str]) -> str:
    heading("2. A refund goes to human review")
    inquiry = "I was charged twice for my subscription this month and need a refund"
    reply = ask(sd, "cust_hero_2", inquiry, priority=8)
    print(f"  customer (priority 8): {inquiry}")
    print(f"  ticket {reply.ticket.ticket_id}: {status(reply.ticket)}, topic {reply.ticket.topic}, "
          f"escalated: {'yes' if reply.escalated else 'no'}")
    print_path(reply.ticket)
    if reply.ticket.policy_rules:
        print(f"  policy rules: {', '.join(reply.ticket.policy_rules)}")
    print(f"  interim answer: {short(reply.response)}")
    if not reply.escalation_id:
        print("  (no review was requested)")
        return ""
    review = sd.escalations.GetEscalation(
        escalation_pb2.GetEscalationRequest(escalation_id=reply.escalation_id), timeout=TIMEOUT
    )
    print(f"  review {review.escalation_id}: priority {priority(review)}, "
          f"reviewer {who(review.assigned_reviewer_id, names)}")
    print(f"  draft for the reviewer: {short(review.proposed_response)}")
    return review.escalation_id


def concurrent_inquiries(sd: Desk) -> None:
    heading("3. Five inquiries at once, then the desk status")
    inquiries = [
        ("cust_hero_3a", "How do I download an invoice for last month?"),
        ("cust_hero_3b", "The dashboard is very slow to load"),
        ("cust_hero_3c", "How do I turn on two-factor authentication for my account?"),
        ("cust_hero_3d", "How do I export my data?"),
        ("cust_hero_3e", "My payment failed but the card is valid"),
    ]
    # The channel is thread-safe: the five calls run concurrently over one connection.
    with ThreadPoolExecutor(max_workers=len(inquiries)) as pool:
        futures = [pool.submit(ask, sd, customer, text) for customer, text in inquiries]
        replies = [f.result() for f in futures]
    for (customer, text), reply in zip(inquiries, replies):
        print(f"  {customer}: {short(text, 60)!r}")
        print(f"      -> {reply.agent} ({reply.tier}), {status(reply.ticket)}"
              + (", escalated" if reply.escalated else ""))

    desk = sd.admin.GetDeskStatus(admin_pb2.GetDeskStatusRequest(), timeout=TIMEOUT)
    print()
    print(f"  desk {desk.desk_name!r}: {desk.total_handled} handled, {desk.open_tickets} open, "
          f"{desk.queued_tickets} queued, escalation rate {desk.escalation_rate:.0%}, "
          f"utilization {desk.utilization:.0%}")
    print("  metrics by tier:")
    for tier in desk.tiers:
        load = sum(a.load for a in tier.agents)
        capacity = sum(a.capacity for a in tier.agents)
        handled = sum(a.handled_count for a in tier.agents)
        print(f"    {tier.name}: {len(tier.agents)} agents, load {load}/{capacity}, "
              f"{handled} handled, threshold {tier.confidence_threshold:.2f}")
        for agent in tier.agents:
            availability = enum_name(
                types_pb2.AgentAvailability, agent.availability, "AGENT_AVAILABILITY_"
            )
            kind = enum_name(types_pb2.AgentKind, agent.kind, "AGENT_KIND_")
            print(f"      {agent.name:<16} load {agent.load}/{agent.capacity}  "
                  f"handled {agent.handled_count:<4} {availability.lower()}, {kind.lower()}, "
                  f"specialties: {', '.join(agent.specialties) or 'any'}")
    stats = desk.escalation_stats
    print(f"  reviews: {stats.total} total, {stats.active} pending, {stats.approved} approved, "
          f"{stats.rejected} rejected, {stats.expired} expired")


def vip_complaint(sd: Desk, names: Dict[str, str]) -> None:
    heading("4. A VIP complaint: URGENT review, and the pending queue")
    inquiry = ("This is unacceptable, I want to speak to a manager and I expect compensation "
               "for the outage")
    reply = ask(sd, "cust_hero_vip", inquiry, priority=10, context={"vip": "true"})
    print(f"  VIP customer (priority 10): {inquiry}")
    print(f"  ticket {reply.ticket.ticket_id}: {status(reply.ticket)}")
    print_path(reply.ticket)
    print(f"  policy rules: {', '.join(reply.ticket.policy_rules) or 'none'}")
    if reply.escalation_id:
        review = sd.escalations.GetEscalation(
            escalation_pb2.GetEscalationRequest(escalation_id=reply.escalation_id),
            timeout=TIMEOUT,
        )
        print(f"  review {review.escalation_id}: priority {priority(review)}, "
              f"reviewer {who(review.assigned_reviewer_id, names)}")

    queue = sd.escalations.ListEscalations(
        escalation_pb2.ListEscalationsRequest(page_size=20), timeout=TIMEOUT
    )
    print()
    print(f"  pending reviews (URGENT first, then oldest; read at sequence {queue.sequence}):")
    for review in queue.escalations:
        print(f"    {priority(review):<7} {review.escalation_id}  "
              f"{review.assigned_reviewer_id or 'unassigned':<14} {short(review.title, 60)}")
    if queue.next_page_token:
        print("    … and more")


def add_reviewer(sd: Desk) -> None:
    heading("5. An operator adds a reviewer and their API key")
    suffix = secrets.token_hex(3)
    reviewer_id = f"reviewer_{suffix}"
    try:
        reviewer = sd.admin.CreateReviewer(
            admin_pb2.CreateReviewerRequest(
                reviewer_id=reviewer_id,
                name=f"Alex Kim {suffix}",
                specialties=["billing", "refunds"],
                max_concurrent=2,
            ),
            timeout=TIMEOUT,
        )
        print(f"  reviewer {reviewer.reviewer_id} ({reviewer.name}): specialties "
              f"{', '.join(reviewer.specialties)}, up to {reviewer.max_concurrent} at once")
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise
        print(f"  reviewer {reviewer_id} already exists; keeping it")
    created = sd.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(
            client_id=reviewer_id, client_name=f"Alex Kim {suffix}", permissions=["escalation"]
        ),
        timeout=TIMEOUT,
    )
    secret = created.api_key
    print(f"  API key {created.key.key_id} for client {created.key.client_id}, permissions "
          f"{', '.join(created.key.permissions)}; secret (shown once): {secret[:16]}…")
    # The new reviewer signs in with their own key and sees their queue.
    with Desk(sd.target, secret) as theirs:
        mine = theirs.escalations.ListEscalations(
            escalation_pb2.ListEscalationsRequest(reviewer_id=reviewer_id), timeout=TIMEOUT
        )
    print(f"  with that key, {reviewer_id} sees {len(mine.escalations)} pending review(s) "
          "in their queue")


def approve_refund(sd: Desk, escalation_id: str) -> None:
    heading("6. Sarah approves the refund")
    if not escalation_id:
        print("  nothing to approve")
        return
    review = sd.escalations.GetEscalation(
        escalation_pb2.GetEscalationRequest(escalation_id=escalation_id), timeout=TIMEOUT
    )
    reviewer = review.assigned_reviewer_id or "supervisor_1"
    decided = sd.escalations.ApproveEscalation(
        escalation_pb2.ApproveEscalationRequest(
            escalation_id=escalation_id,
            reviewer_id=reviewer,  # an admin key decides in the reviewer's name
            comments="duplicate charge confirmed",
            response="We refunded the duplicate charge; it shows on your statement within "
                     "5 business days.",
        ),
        timeout=TIMEOUT,
    )
    ticket = sd.desk.GetTicket(desk_pb2.GetTicketRequest(ticket_id=decided.ticket_id),
                               timeout=TIMEOUT)
    state = enum_name(types_pb2.EscalationState, decided.state, "ESCALATION_STATE_")
    print(f"  review {decided.escalation_id}: {state} by {decided.decided_by}")
    print(f"  ticket {ticket.ticket_id}: {status(ticket)}; the customer is told: "
          f"{short(ticket.resolution)}")


def main() -> int:
    try:
        sd = connect()
    except ConfigurationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with sd:
        print(f"servicedesk at {sd.target}")
        try:
            names = reviewer_names(sd)
            simple_inquiry(sd)
            refund_id = refund(sd, names)
            concurrent_inquiries(sd)
            vip_complaint(sd, names)
            add_reviewer(sd)
            approve_refund(sd, refund_id)
        except grpc.RpcError as err:
            print(f"\nerror: {describe_error(err)}", file=sys.stderr)
            return 1
    print()
    print("done.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
