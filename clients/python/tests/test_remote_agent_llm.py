"""The remote agent's model mode: configuration, the request it sends, the fallback to rules.

A tiny local http.server stands in for an OpenAI-compatible endpoint; no real model is called.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List

import pytest
from conftest import ADMIN_KEY, EXAMPLES_DIR, L1_INSTRUCTIONS, unique

from servicedesk import connect
from servicedesk.v1 import admin_pb2, agent_pb2, desk_pb2, types_pb2

CANNED = "Use the Forgot password link on the sign-in page; the reset email arrives in a minute."


def load_agent_module():
    spec = importlib.util.spec_from_file_location("remote_agent_example",
                                                  EXAMPLES_DIR / "remote_agent.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ra = load_agent_module()


class FakeModel:
    """An OpenAI-compatible chat completions endpoint answering with `content` (or `status`)."""

    def __init__(self, content: str = "", status: int = 200, raw: bytes = b"",
                 delay: float = 0.0) -> None:
        self.requests: List[Dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                fake.requests.append({
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "content_type": self.headers.get("Content-Type"),
                    "body": json.loads(body or b"{}"),
                })
                time.sleep(delay)
                if status != 200:
                    payload = b'{"error": {"message": "model overloaded"}}'
                elif raw:
                    payload = raw
                else:
                    payload = json.dumps({
                        "id": "chatcmpl-test", "object": "chat.completion",
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                    }).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def env(self) -> Dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": "sk-test-123",
                "OPENAI_MODEL": "test-model"}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def fake_model(request):
    models: List[FakeModel] = []

    def make(*args, **kwargs) -> FakeModel:
        m = FakeModel(*args, **kwargs)
        models.append(m)
        return m

    yield make
    for m in models:
        m.close()


def assignment(inquiry: str = "How do I reset my password?", topic: str = "account",
               draft: str = "", instructions: str = "You are a careful L1 agent."):
    ticket = types_pb2.Ticket(ticket_id="tkt_test", customer_id="cust_1", inquiry=inquiry,
                              topic=topic, priority=5)
    ticket.resolution_path.add(agent_name="L1_Agent_1", tier="L1",
                               outcome=types_pb2.PATH_OUTCOME_ESCALATED,
                               detail="confidence 0.40 below 0.70")
    return agent_pb2.Assignment(assignment_id="asg_test", agent_id="agt_1", ticket=ticket,
                                draft=draft, instructions=instructions)


# -- configuration -----------------------------------------------------------------------------


def test_model_mode_needs_all_three_variables():
    full = {"OPENAI_BASE_URL": "http://x/v1/", "OPENAI_API_KEY": "k", "OPENAI_MODEL": "m"}
    settings = ra.LlmSettings.from_env(full)
    assert settings is not None
    assert settings.base_url == "http://x/v1"  # trailing slash dropped
    assert (settings.api_key, settings.model) == ("k", "m")
    for missing in full:
        partial = dict(full)
        del partial[missing]
        assert ra.LlmSettings.from_env(partial) is None
        partial[missing] = "  "
        assert ra.LlmSettings.from_env(partial) is None
    assert ra.LlmSettings.from_env({}) is None


# -- the request and the answer ------------------------------------------------------------------


def test_model_decision_uses_the_instructions_and_the_ticket(fake_model):
    model = fake_model(json.dumps({"action": "resolve", "response": CANNED}))
    settings = ra.LlmSettings.from_env(model.env())
    a = assignment(draft="An earlier draft.")
    decision = ra.decide(a, ["account"], settings)
    assert decision == ra.Decision("resolve", CANNED, source="model")

    [req] = model.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["authorization"] == "Bearer sk-test-123"
    assert req["content_type"] == "application/json"
    body = req["body"]
    assert body["model"] == "test-model"
    system, user = body["messages"]
    assert system == {"role": "system", "content": "You are a careful L1 agent."}
    assert user["role"] == "user"
    for part in ("How do I reset my password?", "Topic: account", "L1_Agent_1 (L1): escalated",
                 "An earlier draft.", '"action"', "request_review"):
        assert part in user["content"], user["content"]

    reply = decision.to_request("asg_test")
    assert reply.WhichOneof("outcome") == "resolve" and reply.resolve.response == CANNED


def test_model_can_escalate_or_request_review(fake_model):
    model = fake_model("Sure! ```json\n{\"action\": \"request_review\", \"reason\": \"refund\", "
                       "\"draft\": \"We will refund you.\"}\n```")
    decision = ra.decide(assignment("refund please"), [], ra.LlmSettings.from_env(model.env()))
    assert decision == ra.Decision("request_review", "refund", "We will refund you.", "model")
    reply = decision.to_request("asg_1")
    assert reply.request_review.draft == "We will refund you."

    model = fake_model('{"action": "escalate", "reason": "needs an engineer"}')
    decision = ra.decide(assignment(), [], ra.LlmSettings.from_env(model.env()))
    assert (decision.action, decision.text, decision.source) == (
        "escalate", "needs an engineer", "model")


def test_without_instructions_a_default_system_prompt_is_sent(fake_model):
    model = fake_model(json.dumps({"action": "resolve", "response": CANNED}))
    ra.decide(assignment(instructions=""), [], ra.LlmSettings.from_env(model.env()))
    assert model.requests[0]["body"]["messages"][0]["content"] == ra.DEFAULT_INSTRUCTIONS


# -- falling back to the rules -----------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"status": 500},
    {"content": "I think you should reset the password."},  # not JSON
    {"content": '{"action": "delete_everything"}'},  # unknown action
    {"content": '{"action": "resolve", "response": ""}'},  # empty answer
    {"raw": b"not json at all"},
    {"raw": b'{"choices": []}'},
])
def test_a_failing_model_falls_back_to_the_rules(fake_model, kwargs):
    model = fake_model(**kwargs)
    logged: List[str] = []
    decision = ra.decide(assignment(), [], ra.LlmSettings.from_env(model.env()),
                         log=logged.append)
    assert len(model.requests) == 1
    assert decision.source == "rules" and decision.action == "resolve"
    assert decision.text == ra.ANSWERS["account"]
    assert logged and "deciding by rule" in logged[0]


def test_an_unreachable_model_falls_back_to_the_rules():
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ra.LlmSettings(f"http://127.0.0.1:{port}/v1", "k", "m", timeout=5)
    decision = ra.decide(assignment("I want a refund"), [], settings, log=lambda _: None)
    assert decision.source == "rules" and decision.action == "request_review"


def test_rules():
    review = ra.decide_by_rules(assignment("My lawyer will call you").ticket, "", [])
    assert review.action == "request_review" and review.draft and "lawyer" in review.text
    kept = ra.decide_by_rules(assignment("I need a refund").ticket, "The draft.", [])
    assert kept.draft == "The draft."
    answer = ra.decide_by_rules(assignment(topic="billing").ticket, "", ["billing"])
    assert answer.action == "resolve" and answer.text == ra.ANSWERS["billing"]
    drafted = ra.decide_by_rules(assignment(topic="billing").ticket, "Previous draft.", [])
    assert drafted == ra.Decision("resolve", "Previous draft.")
    other = ra.decide_by_rules(assignment(topic="technical").ticket, "d", ["billing"])
    assert other.action == "escalate" and "technical" in other.text and other.draft == "d"
    assert other.to_request("a").escalate.reason == other.text


# -- end to end against the server ----------------------------------------------------------------


def test_remote_agent_answers_with_the_model(l1_remote_server, running, fake_model):
    model = fake_model(json.dumps({"action": "resolve", "response": CANNED}))
    name = unique("Remote_LLM")
    agent = running("remote_agent", "--name", name, "--max-assignments", "1",
                    target=l1_remote_server.target, extra_env=model.env())
    agent.expect(rf"^attached as {name} .*deciding by model test-model")
    with connect(l1_remote_server.target, ADMIN_KEY) as sd:
        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_llm", inquiry="How do I reset my password?"), timeout=30)
    assert reply.agent == name
    assert reply.ticket.status == types_pb2.TICKET_STATUS_RESOLVED
    assert reply.response == CANNED
    assert agent.wait() == 0, agent.output()
    assert "resolve (model) -> ticket RESOLVED" in agent.output()
    [req] = model.requests
    system, user = req["body"]["messages"]
    assert system["content"] == L1_INSTRUCTIONS  # the tier's instructions from the desk config
    assert "How do I reset my password?" in user["content"]


def test_remote_agent_falls_back_to_rules_when_the_model_fails(l1_remote_server, running,
                                                                 fake_model):
    model = fake_model(status=503)
    name = unique("Remote_LLM_Down")
    agent = running("remote_agent", "--name", name, "--max-assignments", "1",
                    target=l1_remote_server.target, extra_env=model.env())
    agent.expect(rf"^attached as {name} ")
    with connect(l1_remote_server.target, ADMIN_KEY) as sd:
        reply = sd.desk.HandleInquiry(desk_pb2.HandleInquiryRequest(
            customer_id="cust_llm", inquiry="How do I reset my password?"), timeout=30)
    assert reply.agent == name
    assert reply.response == ra.ANSWERS["account"]
    assert agent.wait() == 0, agent.output()
    out = agent.output()
    assert "model failed (HTTPError" in out and "resolve (rules)" in out


def test_an_assignment_taken_back_meanwhile_is_reported_and_its_reply_refused(
        l1_remote_server, running, fake_model):
    # A slow model keeps the assignment open while the operator pauses the agent.
    model = fake_model(json.dumps({"action": "resolve", "response": CANNED}), delay=3.0)
    name = unique("Remote_Paused")
    agent = running("remote_agent", "--name", name, "--max-assignments", "1",
                    target=l1_remote_server.target, extra_env=model.env())
    agent_id = agent.expect(rf"^attached as {name} \((agt_\S+),").group(1)
    with connect(l1_remote_server.target, ADMIN_KEY) as sd:
        pending = sd.desk.HandleInquiry.future(desk_pb2.HandleInquiryRequest(
            customer_id="cust_paused", inquiry="How do I reset my password?"), timeout=60)
        agent.expect(r"^assignment asg_\S+: ticket tkt_")
        sd.admin.UpdateAgent(admin_pb2.UpdateAgentRequest(
            agent_id=agent_id, availability=types_pb2.AGENT_AVAILABILITY_PAUSED), timeout=10)
        agent.expect(r"^asg_\S+ revoked: ")
        agent.expect(r"resolve refused: FAILED_PRECONDITION")
        reply = pending.result()
    # The desk handed the ticket on: the caller still got an answer, from another tier.
    assert reply.agent != name and reply.tier != "L1"
    assert reply.ticket.resolution_path[0].agent_name == name
    assert reply.ticket.resolution_path[0].outcome == types_pb2.PATH_OUTCOME_HANDED_ON
    assert agent.wait() == 0, agent.output()
