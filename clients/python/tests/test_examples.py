"""Every example, run as `python examples/NAME.py` against a real server."""

from __future__ import annotations

import re

from conftest import ADMIN_KEY, TEST_KEY, run_example, unique

from servicedesk import connect
from servicedesk.v1 import admin_pb2, desk_pb2, escalation_pb2, types_pb2

REFUND = "I was charged twice for my subscription this month and need a refund"


def check(result, code: int = 0) -> str:
    assert result.returncode == code, (
        f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result.stdout


# -- quickstart --------------------------------------------------------------------------------


def test_quickstart_is_answered_by_a_first_tier_agent(server):
    out = check(run_example("quickstart", target=server.target))
    assert "How do I reset my password?" in out
    assert re.search(r"^Agent:\s+L1_Agent_\d+ \(tier L1\)$", out, re.M), out
    assert re.search(r"^Escalated:\s+no$", out, re.M), out
    answer = re.search(r"^Answer:\s+(.+)$", out, re.M)
    assert answer and "password" in answer.group(1).lower(), out
    assert re.search(r"^Ticket:\s+tkt_\S+, RESOLVED", out, re.M), out


def test_quickstart_works_with_a_customer_service_key(server):
    out = check(run_example("quickstart", target=server.target, api_key=TEST_KEY))
    assert "L1_Agent_" in out


def test_quickstart_without_a_key_says_what_to_set(server):
    result = run_example("quickstart", target=server.target, api_key=None)
    check(result, 2)
    assert "SERVICEDESK_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_quickstart_with_a_wrong_key_reports_unauthenticated(server):
    result = run_example("quickstart", target=server.target, api_key="no-such-key")
    check(result, 1)
    assert "UNAUTHENTICATED" in result.stderr
    assert "Traceback" not in result.stderr


# -- hero ------------------------------------------------------------------------------------


def test_hero_runs_every_scenario_and_again(server):
    for run in range(2):  # unique ids: a second run against the same desk works too
        out = check(run_example("hero", target=server.target))
        # 1. simple inquiry
        assert re.search(r"answered by L1_Agent_\d+ \(L1\), RESOLVED, escalated: no", out), out
        # 2. refund: the path through the tiers, then a HIGH review for Sarah
        assert re.search(r"1\. L1_Agent_\d+ \(L1\) -> REVIEW_REQUESTED", out), out
        assert "policy rules: refund_or_compensation" in out
        assert re.search(r"review esc_\S+: priority HIGH, reviewer", out), out
        if run == 0:
            assert "priority HIGH, reviewer Sarah Johnson (supervisor_1)" in out
        # 3. five concurrent inquiries, then metrics by tier
        assert len(re.findall(r"^  cust_hero_3[a-e]: ", out, re.M)) == 5, out
        assert re.search(r"^    L1: 3 agents, load \d+/15, \d+ handled", out, re.M), out
        assert re.search(r"^    L2: 2 agents, load \d+/6", out, re.M), out
        assert re.search(r"^    Expert: 1 agents, load \d+/3", out, re.M), out
        assert re.search(r"^      L1_Agent_1\s+load \d+/5\s+handled \d+", out, re.M), out
        # 4. VIP complaint: URGENT, four policy rules, and the queue with it on top
        assert re.search(r"review esc_\S+: priority URGENT, reviewer", out), out
        for rule in ("refund_or_compensation", "manager_request", "vip_customer",
                     "high_priority_complaint"):
            assert rule in out
        queue = out.split("pending reviews", 1)[1]
        assert re.search(r"^    URGENT  esc_", queue, re.M), out
        # 5. a new reviewer and their key
        assert re.search(r"reviewer reviewer_[0-9a-f]{6} \(Alex Kim", out), out
        assert re.search(r"API key [0-9a-f]{12} for client reviewer_[0-9a-f]{6}, permissions "
                         r"escalation", out), out
        # 6. the refund approved
        assert re.search(r"review esc_\S+: APPROVED by supervisor_1", out), out
        assert "RESOLVED; the customer is told: We refunded the duplicate charge" in out
        assert out.rstrip().endswith("done.")


def test_hero_left_the_vip_review_pending_and_urgent(server, desk):
    check(run_example("hero", target=server.target))
    pending = desk.escalations.ListEscalations(escalation_pb2.ListEscalationsRequest(),
                                               timeout=10)
    urgent = [e for e in pending.escalations if e.customer_id == "cust_hero_vip"]
    assert urgent and all(e.priority == types_pb2.ESCALATION_PRIORITY_URGENT for e in urgent)
    # URGENT first in the queue.
    assert pending.escalations[0].priority == types_pb2.ESCALATION_PRIORITY_URGENT


# -- reviewer console ------------------------------------------------------------------------


def new_reviewer(desk) -> tuple:
    """A reviewer of our own (so other tests' reviews do not interfere) and their key."""
    reviewer_id = unique("console")
    desk.admin.CreateReviewer(
        admin_pb2.CreateReviewerRequest(reviewer_id=reviewer_id, name="Console Tester",
                                        specialties=["nothing-matches"], max_concurrent=20),
        timeout=10)
    key = desk.admin.CreateApiKey(
        admin_pb2.CreateApiKeyRequest(client_id=reviewer_id, client_name="Console Tester",
                                      permissions=["escalation"]),
        timeout=10).api_key
    return reviewer_id, key


def review_for(desk, reviewer_id: str, customer: str, inquiry: str = REFUND) -> str:
    """A pending review handed to `reviewer_id`; returns its id."""
    reply = desk.desk.HandleInquiry(
        desk_pb2.HandleInquiryRequest(customer_id=customer, inquiry=inquiry, priority=8),
        timeout=20)
    assert reply.escalation_id, reply
    desk.escalations.AssignEscalation(
        escalation_pb2.AssignEscalationRequest(escalation_id=reply.escalation_id,
                                               reviewer_id=reviewer_id), timeout=10)
    return reply.escalation_id


def test_reviewer_console_once_prints_the_queue(server, desk):
    reviewer_id, key = new_reviewer(desk)
    esc_id = review_for(desk, reviewer_id, unique("cust_once"))
    out = check(run_example("reviewer_console", "--reviewer", reviewer_id, "--once",
                            target=server.target, api_key=key))
    assert f"queue of {reviewer_id}: 1 pending" in out
    assert re.search(rf"1\. HIGH\s+{esc_id}", out), out
    assert "draft:" in out
    assert "watching" not in out  # --once does not watch


def test_reviewer_console_approves_from_stdin_and_the_api_agrees(server, desk):
    reviewer_id, _ = new_reviewer(desk)
    esc_id = review_for(desk, reviewer_id, unique("cust_approve"))
    # An admin key decides in the reviewer's name.
    out = check(run_example(
        "reviewer_console", "--reviewer", reviewer_id, target=server.target, api_key=ADMIN_KEY,
        input=f"l\na {esc_id} We refunded the duplicate charge.\nq\n"))
    assert f"{esc_id}" in out
    assert re.search(rf"^approved {esc_id} \(ticket tkt_\S+\)", out, re.M), out
    # The watch showed the decision live.
    assert re.search(rf"^\[#\d+\] APPROVED {esc_id} by {reviewer_id}", out, re.M), out
    assert out.rstrip().endswith("bye.")

    esc = desk.escalations.GetEscalation(
        escalation_pb2.GetEscalationRequest(escalation_id=esc_id), timeout=10)
    assert esc.state == types_pb2.ESCALATION_STATE_APPROVED
    assert esc.decided_by == reviewer_id
    ticket = desk.desk.GetTicket(desk_pb2.GetTicketRequest(ticket_id=esc.ticket_id), timeout=10)
    assert ticket.status == types_pb2.TICKET_STATUS_RESOLVED
    assert ticket.resolution == "We refunded the duplicate charge."


def test_reviewer_console_watches_live_and_rejects_with_the_reviewers_own_key(
        server, desk, running):
    reviewer_id, key = new_reviewer(desk)
    console = running("reviewer_console", "--reviewer", reviewer_id, target=server.target,
                      api_key=key)
    console.expect(rf"queue of {reviewer_id}: 0 pending")
    console.expect(r"^watching after #\d+")
    # A review handed to the reviewer while the console watches shows up live.
    esc_id = review_for(desk, reviewer_id, unique("cust_live"))
    console.expect(rf"\] ASSIGNED {esc_id} \(.* -> {reviewer_id}\)")
    console.send("l\n")
    console.expect(rf"1\. HIGH\s+{esc_id}")
    console.send("r 1 Refunds are not possible for this plan.\n")
    # The reply to the command and the watch's event, in whichever order they come.
    console.expect_all(rf"^rejected {esc_id}", rf"\] REJECTED {esc_id} by {reviewer_id}")
    console.close_stdin()  # end of input quits
    assert console.wait() == 0, console.output()
    assert console.lines[-1] == "bye."

    esc = desk.escalations.GetEscalation(
        escalation_pb2.GetEscalationRequest(escalation_id=esc_id), timeout=10)
    assert esc.state == types_pb2.ESCALATION_STATE_REJECTED
    ticket = desk.desk.GetTicket(desk_pb2.GetTicketRequest(ticket_id=esc.ticket_id), timeout=10)
    assert ticket.status == types_pb2.TICKET_STATUS_REJECTED
    assert "not possible" in ticket.resolution


def test_reviewer_console_reports_a_refused_decision_and_goes_on(server, desk):
    reviewer_id, _ = new_reviewer(desk)
    out = check(run_example("reviewer_console", "--reviewer", reviewer_id, target=server.target,
                            input="a esc_doesnotexist\na 99\nr\nfrobnicate\nq\n"))
    assert "could not decide esc_doesnotexist:" in out
    assert re.search(r"INVALID_ARGUMENT|NOT_FOUND", out), out
    assert "no number 99 in the last printed queue" in out
    assert "usage: r ID reason" in out
    assert "unknown command 'frobnicate'" in out
    assert out.rstrip().endswith("bye.")


# -- remote agent ----------------------------------------------------------------------------


def test_remote_agent_answers_the_tickets_routed_to_it(l1_remote_server, running):
    name = unique("Remote_Test")
    agent = running("remote_agent", "--name", name, "--tier", "L1", "--max-assignments", "2",
                    target=l1_remote_server.target)
    agent.expect(rf"^attached as {name} \(agt_\S+, tier L1, specialties: any")
    with connect(l1_remote_server.target, ADMIN_KEY) as sd:
        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_remote", inquiry="How do I reset my password?"), timeout=30)
        assert reply.agent == name and reply.tier == "L1", reply
        assert reply.ticket.status == types_pb2.TICKET_STATUS_RESOLVED
        assert "Settings > Account" in reply.response
        agent.expect(r"resolve \(rules\) -> ticket RESOLVED")

        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_remote", inquiry=REFUND, priority=8), timeout=30)
        assert reply.agent == name
        assert reply.ticket.status == types_pb2.TICKET_STATUS_AWAITING_REVIEW
        esc = sd.escalations.GetEscalation(
            escalation_pb2.GetEscalationRequest(escalation_id=reply.escalation_id), timeout=10)
        assert esc.requested_by == name
        assert esc.proposed_response  # the agent's draft
    agent.expect(r"request_review \(rules\) -> ticket AWAITING_REVIEW")
    assert agent.wait() == 0, agent.output()
    assert "answered 2 assignment(s); stopping" in agent.output()


def test_remote_agent_specialist_answers_its_topic(l1_remote_server, running):
    name = unique("Remote_Billing")
    agent = running("remote_agent", "--name", name, "--specialties", "billing",
                    "--max-assignments", "1", target=l1_remote_server.target)
    agent.expect(rf"^attached as {name} .*specialties: billing")
    with connect(l1_remote_server.target, ADMIN_KEY) as sd:
        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_remote", inquiry="Where do I download my invoices?",
            topic="billing"), timeout=30)
        assert reply.ticket.resolution_path[0].agent_name == name
        assert reply.ticket.status == types_pb2.TICKET_STATUS_RESOLVED
        assert "Settings > Billing" in reply.response
    assert agent.wait() == 0, agent.output()


def test_remote_agent_binds_an_existing_agent_by_name_and_by_id(l1_remote_server, running):
    name = unique("Remote_Again")
    first = running("remote_agent", "--name", name, target=l1_remote_server.target)
    attached = first.expect(rf"^attached as {name} \((agt_\S+),")
    agent_id = attached.group(1)
    first.proc.terminate()  # SIGTERM stops cleanly, like Ctrl-C
    assert first.wait() == 0, first.output()
    assert "stopped" in first.output()

    second = running("remote_agent", "--name", name, "--max-assignments", "1",
                     target=l1_remote_server.target)
    second.expect(rf"an agent named {name} exists \({agent_id}\); binding it")
    second.expect(rf"^attached as {name} \({agent_id},")
    second.proc.send_signal(2)  # SIGINT, i.e. Ctrl-C
    assert second.wait() == 0, second.output()

    third = running("remote_agent", "--agent-id", agent_id, "--max-assignments", "1",
                    target=l1_remote_server.target)
    third.expect(rf"^attached as {name} \({agent_id},")
    with connect(l1_remote_server.target, ADMIN_KEY) as sd:
        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_remote", inquiry="How do I reset my password?"), timeout=30)
        assert reply.agent == name
    assert third.wait() == 0, third.output()


def test_remote_agent_without_a_key_says_what_to_set(l1_remote_server):
    result = run_example("remote_agent", target=l1_remote_server.target, api_key=None)
    check(result, 2)
    assert "SERVICEDESK_API_KEY" in result.stderr


def test_remote_agent_with_a_key_lacking_the_agent_permission_fails_clearly(l1_remote_server):
    result = run_example("remote_agent", "--name", unique("Remote_NoPerm"),
                         target=l1_remote_server.target, api_key=TEST_KEY, timeout=30)
    check(result, 1)
    assert "PERMISSION_DENIED" in result.stdout
