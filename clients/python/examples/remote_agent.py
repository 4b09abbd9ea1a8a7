"""A remote agent for servicedesk: attaches over AgentService and answers the tickets routed to it.

It registers a new REMOTE agent (or binds an existing one with --agent-id), stays online while
its Attach stream is open, and answers every assignment with Reply: resolve, escalate to the
next tier, or request a human review.

How it decides:

* by rule (the default): money or legal matters (refund, compensation, lawyer...) go to a human
  with a draft answer; a topic its specialties cover (or any topic, for a generalist) is
  answered; anything else goes to the next tier;
* with a model, when OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL are all set: any
  OpenAI-compatible chat completions endpoint (POST {OPENAI_BASE_URL}/chat/completions) gets the
  tier's instructions as the system prompt and the ticket as the user message, and answers with
  a JSON decision. If the call or its answer fails, the rules decide.

    export SERVICEDESK_TARGET=127.0.0.1:50051
    export SERVICEDESK_API_KEY=admin-key-456     # a key with the `agent` permission
    python examples/remote_agent.py --name Remote_L1 --tier L1 --specialties billing,account

    # with a model (any OpenAI-compatible server, e.g. a local one):
    export OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=... OPENAI_MODEL=...

It reconnects with backoff when the connection drops (binding the same agent, so the desk resends
its open assignments), and exits cleanly on Ctrl-C (its open tickets are handed on).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence

import grpc

from servicedesk import ConfigurationError, Desk, connect, describe_error
from servicedesk.v1 import admin_pb2, agent_pb2, types_pb2

ACTIONS = ("resolve", "escalate", "request_review")

# Words that make a ticket a person's decision, whatever the agent knows.
SENSITIVE = ("refund", "compensation", "money back", "chargeback", "lawyer", "lawsuit",
             "legal action", "close my account", "delete my account")

# Short answers by topic, for when no tier before left a draft.
ANSWERS = {
    "billing": "You can see every charge and download invoices under Settings > Billing. If a "
               "charge looks wrong, reply with its date and amount and we will check it.",
    "payments": "Payment methods are managed under Settings > Billing > Payment methods; a "
                "failed payment is retried automatically within 24 hours.",
    "account": "Account settings (email, password, two-factor authentication) are under "
               "Settings > Account. Use \"Forgot password?\" on the sign-in page to reset a password.",
    "security": "Turn on two-factor authentication under Settings > Security, and review the "
                "active sessions there to sign out any device you do not recognise.",
    "technical": "Please try again after refreshing the page or updating the app; if the problem "
                 "persists, reply with the steps to reproduce it and any error message.",
    "how-to": "Our help centre has step-by-step guides for every feature; reply with what you "
              "are trying to do and we will point you to the right one.",
}
GENERIC = ("Thanks for reaching out about {topic}. Please check the steps in our help centre, and "
           "reply here if they do not solve it: we will take it from there.")

JSON_FORMAT = (
    "Decide what to do with this ticket and answer with one JSON object only, no other text:\n"
    '{"action": "resolve", "response": "<the answer the customer gets>"}\n'
    '{"action": "escalate", "reason": "<why the next tier should take it>", "draft": "<optional draft>"}\n'
    '{"action": "request_review", "reason": "<why a person must decide>", "draft": "<draft answer for the reviewer>"}\n'
    "Request a review for refunds, compensation, legal threats or account closure."
)
DEFAULT_INSTRUCTIONS = "You are a customer support agent. Answer accurately, briefly and kindly."


@dataclass
class Decision:
    """What the agent does with one ticket."""

    action: str  # one of ACTIONS
    text: str  # resolve: the response; escalate / request_review: the reason
    draft: str = ""
    source: str = "rules"  # "rules" or "model"

    def to_request(self, assignment_id: str) -> agent_pb2.ReplyRequest:
        if self.action == "resolve":
            return agent_pb2.ReplyRequest(
                assignment_id=assignment_id, resolve=agent_pb2.Resolve(response=self.text)
            )
        if self.action == "escalate":
            return agent_pb2.ReplyRequest(
                assignment_id=assignment_id,
                escalate=agent_pb2.Escalate(reason=self.text, draft=self.draft),
            )
        return agent_pb2.ReplyRequest(
            assignment_id=assignment_id,
            request_review=agent_pb2.RequestReview(reason=self.text, draft=self.draft),
        )


# ------------------------------------------------------------------------------------------
# Deciding by rule
# ------------------------------------------------------------------------------------------


def decide_by_rules(ticket: types_pb2.Ticket, draft: str, specialties: Sequence[str]) -> Decision:
    """The rule-based decision: sensitive -> review, covered -> resolve, else escalate."""
    text = ticket.inquiry.lower()
    topic = ticket.topic or "general"
    for word in SENSITIVE:
        if word in text:
            proposal = draft or (
                "We are sorry for the trouble. We have checked your request and a member of our "
                f"team will confirm the {word} shortly."
            )
            return Decision("request_review", f"mentions {word!r}: a person decides", proposal)
    covered = not specialties or topic in {s.lower() for s in specialties}
    if covered:
        return Decision("resolve", draft or ANSWERS.get(topic, GENERIC.format(topic=topic)))
    return Decision(
        "escalate", f"topic {topic} is outside this agent's specialties ({', '.join(specialties)})",
        draft,
    )


# ------------------------------------------------------------------------------------------
# Deciding with a model (OpenAI-compatible chat completions, standard library only)
# ------------------------------------------------------------------------------------------


@dataclass
class LlmSettings:
    base_url: str
    api_key: str
    model: str
    timeout: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Optional["LlmSettings"]:
        """Settings when OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL are all set, else None."""
        base, key, model = (env.get(n, "").strip() for n in
                            ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL"))
        if not (base and key and model):
            return None
        return cls(base.rstrip("/"), key, model)


def ticket_prompt(ticket: types_pb2.Ticket, draft: str) -> str:
    """The user message: the ticket, its path so far and the previous draft, then the format."""
    lines = [
        f"Ticket {ticket.ticket_id} from customer {ticket.customer_id}",
        f"Topic: {ticket.topic or 'unknown'}    Priority: {ticket.priority} (1 lowest, 10 highest)",
    ]
    if ticket.context:
        lines.append("Context: " + ", ".join(f"{k}={v}" for k, v in sorted(ticket.context.items())))
    if ticket.policy_rules:
        lines.append("Policy rules that require a human review: " + ", ".join(ticket.policy_rules))
    lines += ["", "Inquiry:", ticket.inquiry, ""]
    if ticket.resolution_path:
        lines.append("Path so far:")
        for step in ticket.resolution_path:
            outcome = types_pb2.PathOutcome.Name(step.outcome).removeprefix("PATH_OUTCOME_")
            lines.append(f"- {step.agent_name} ({step.tier}): {outcome.lower()}, {step.detail}")
        lines.append("")
    if draft:
        lines += ["Previous tier's draft answer:", draft, ""]
    lines.append(JSON_FORMAT)
    return "\n".join(lines)


def chat_request(settings: LlmSettings, instructions: str, ticket: types_pb2.Ticket,
                 draft: str) -> urllib.request.Request:
    """The HTTP request to the chat completions endpoint."""
    body = {
        "model": settings.model,
        "messages": [
            {"role": "system", "content": instructions or DEFAULT_INSTRUCTIONS},
            {"role": "user", "content": ticket_prompt(ticket, draft)},
        ],
        "temperature": 0.2,
    }
    return urllib.request.Request(
        f"{settings.base_url}/chat/completions",
        data=json.dumps(body).encode("utf-8"),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {settings.api_key}",
        },
        method="POST",
    )


def parse_decision(content: str) -> Decision:
    """The model's JSON decision; ValueError when it is not a usable one."""
    text = content.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{"):
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("no JSON object in the model's answer")
        text = text[start : end + 1]
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the model's answer is not a JSON object")
    action = str(data.get("action", "")).strip().lower()
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    draft = str(data.get("draft") or "").strip()
    if action == "resolve":
        response = str(data.get("response") or "").strip()
        if not response:
            raise ValueError("resolve without a response")
        return Decision("resolve", response, source="model")
    reason = str(data.get("reason") or "").strip()
    if not reason:
        raise ValueError(f"{action} without a reason")
    return Decision(action, reason, draft, source="model")


def decide_with_model(settings: LlmSettings, instructions: str, ticket: types_pb2.Ticket,
                      draft: str, timeout: Optional[float] = None) -> Decision:
    """Asks the model; raises on any failure (HTTP, timeout, malformed answer)."""
    request = chat_request(settings, instructions, ticket, draft)
    with urllib.request.urlopen(request, timeout=timeout or settings.timeout) as response:
        payload = json.loads(response.read().decode("utf-8"))
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"unexpected chat completion: {err!r}") from err
    return parse_decision(content or "")


def decide(assignment: agent_pb2.Assignment, specialties: Sequence[str],
           llm: Optional[LlmSettings], log=print) -> Decision:
    """The model's decision when one is configured and answers well, else the rules'."""
    ticket = assignment.ticket
    if llm is not None:
        timeout = llm.timeout
        if assignment.HasField("deadline"):
            left = assignment.deadline.ToDatetime().timestamp() - time.time() - 2.0
            timeout = max(1.0, min(timeout, left))
        try:
            return decide_with_model(llm, assignment.instructions, ticket, assignment.draft,
                                     timeout)
        except (OSError, ValueError, urllib.error.URLError) as err:
            log(f"  model failed ({type(err).__name__}: {err}); deciding by rule")
    return decide_by_rules(ticket, assignment.draft, specialties)


# ------------------------------------------------------------------------------------------
# The agent process
# ------------------------------------------------------------------------------------------


class Agent:
    """One attached agent: the Attach stream, its assignments and the replies."""

    def __init__(self, sd: Desk, args: argparse.Namespace, llm: Optional[LlmSettings]) -> None:
        self.sd = sd
        self.args = args
        self.llm = llm
        self.agent_id: str = args.agent_id or ""
        self.specialties: List[str] = [s for s in (args.specialties or "").split(",") if s.strip()]
        self.answered = 0  # assignments finished (replied to, or refused by the desk)
        self.taken = 0  # assignments started
        self.lock = threading.RLock()
        self.done = threading.Event()
        self.call: Optional[Any] = None
        self.revoked: set = set()
        self.pool = ThreadPoolExecutor(max_workers=max(1, args.capacity),
                                       thread_name_prefix="reply")

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    def attach_request(self) -> agent_pb2.AttachRequest:
        if self.agent_id:
            return agent_pb2.AttachRequest(agent_id=self.agent_id)
        return agent_pb2.AttachRequest(
            name=self.args.name, tier=self.args.tier,
            specialties=[s.strip() for s in self.specialties], capacity=self.args.capacity,
        )

    def find_by_name(self) -> str:
        """The id of a REMOTE agent named --name (needs an admin key), or ''."""
        token = ""
        try:
            while True:
                page = self.sd.admin.ListAgents(
                    admin_pb2.ListAgentsRequest(page_token=token), timeout=10)
                for agent in page.agents:
                    if agent.name == self.args.name and agent.kind == types_pb2.AGENT_KIND_REMOTE:
                        return agent.agent_id
                token = page.next_page_token
                if not token:
                    return ""
        except grpc.RpcError:
            return ""

    def handle(self, assignment: agent_pb2.Assignment) -> None:
        """Decides one assignment and replies (runs in the pool)."""
        ticket = assignment.ticket
        try:
            if assignment.assignment_id in self.revoked:
                self.say(f"{assignment.assignment_id}: revoked before it was answered; skipped")
                return
            decision = decide(assignment, self.specialties, self.llm, log=self.say)
            try:
                reply = self.sd.agents.Reply(decision.to_request(assignment.assignment_id),
                                             timeout=15)
                status = types_pb2.TicketStatus.Name(reply.ticket.status).removeprefix(
                    "TICKET_STATUS_")
                self.say(f"{assignment.assignment_id} {ticket.ticket_id}: {decision.action} "
                         f"({decision.source}) -> ticket {status}")
                if decision.action == "resolve":
                    self.say(f"  answer: {decision.text}")
                else:
                    self.say(f"  reason: {decision.text}")
            except grpc.RpcError as err:
                # Taken back meanwhile (deadline passed, agent paused): nothing to do.
                self.say(f"{assignment.assignment_id} {ticket.ticket_id}: {decision.action} "
                         f"refused: {describe_error(err)}")
        except Exception as err:  # keep the agent alive whatever one ticket does
            self.say(f"{assignment.assignment_id}: failed: {type(err).__name__}: {err}")
        finally:
            with self.lock:
                self.answered += 1
                reached = (self.args.max_assignments is not None
                           and self.answered >= self.args.max_assignments)
            if reached:
                self.say(f"answered {self.answered} assignment(s); stopping")
                self.stop()

    def stop(self) -> None:
        """Ends the Attach stream; the desk hands on whatever the agent still holds."""
        self.done.set()
        call = self.call
        if call is not None:
            call.cancel()

    def on_message(self, message: agent_pb2.AttachResponse) -> None:
        kind = message.WhichOneof("message")
        if kind == "attached":
            attached = message.attached
            self.agent_id = attached.agent_id
            agent = attached.agent
            self.specialties = list(agent.specialties)
            timeout = attached.assignment_timeout.seconds
            mode = f"model {self.llm.model}" if self.llm else "rules"
            self.say(f"attached as {agent.name} ({attached.agent_id}, tier {agent.tier}, "
                     f"specialties: {', '.join(agent.specialties) or 'any'}, capacity "
                     f"{agent.capacity}; {timeout}s per assignment; deciding by {mode})")
        elif kind == "assignment":
            a = message.assignment
            self.say(f"assignment {a.assignment_id}: ticket {a.ticket.ticket_id} "
                     f"[{a.ticket.topic}] {a.ticket.inquiry!r}")
            limit = self.args.max_assignments
            if limit is not None and self.taken >= limit:
                # Stopping soon: the desk hands it on when this stream closes.
                self.say(f"  not taking it: --max-assignments {limit} reached")
                return
            self.taken += 1
            self.pool.submit(self.handle, a)
        elif kind == "revoked":
            self.revoked.add(message.revoked.assignment_id)
            self.say(f"{message.revoked.assignment_id} revoked: {message.revoked.reason}")

    def run(self) -> int:
        """Attaches and serves until stopped; reconnects with backoff while the desk is away."""
        backoff = 0.5
        while not self.done.is_set():
            call = self.sd.agents.Attach(self.attach_request())
            self.call = call
            if self.done.is_set():
                call.cancel()
            try:
                for message in call:
                    if message.WhichOneof("message") == "attached":
                        backoff = 0.5
                    self.on_message(message)
                if self.done.is_set():
                    return 0
                self.say("the desk closed the stream; attaching again")
                continue
            except grpc.RpcError as err:
                code = err.code()
                if self.done.is_set() or code == grpc.StatusCode.CANCELLED:
                    return 0
                if code == grpc.StatusCode.ALREADY_EXISTS and not self.agent_id:
                    found = self.find_by_name()
                    if found:
                        self.say(f"an agent named {self.args.name} exists ({found}); binding it")
                        self.agent_id = found
                        continue
                    self.say(f"error: {describe_error(err)}\n(pass --agent-id to bind the "
                             "existing agent, or choose another --name)")
                    return 1
                if code == grpc.StatusCode.ABORTED:
                    self.say(f"another process took over this agent: {describe_error(err)}")
                    return 1
                if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                            grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                    self.say(f"connection lost ({describe_error(err).splitlines()[0]}); "
                             f"reconnecting in {backoff:.1f}s")
                    if self.done.wait(backoff):
                        return 0
                    backoff = min(backoff * 2, 30.0)
                    continue
                self.say(f"error: {describe_error(err)}")
                return 1
        return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A remote agent for servicedesk.")
    parser.add_argument("--agent-id", help="bind this existing REMOTE agent instead of registering one")
    parser.add_argument("--name", default=f"Remote_Agent_{secrets.token_hex(2)}",
                        help="name of a new agent (default: Remote_Agent_ and a random suffix)")
    parser.add_argument("--tier", default="L1", help="tier of a new agent (default: %(default)s)")
    parser.add_argument("--specialties", default="",
                        help="comma-separated topics of a new agent (empty: a generalist)")
    parser.add_argument("--capacity", type=int, default=4,
                        help="tickets it works on at once (default: %(default)s)")
    parser.add_argument("--max-assignments", type=int, default=None,
                        help="exit after answering this many assignments")
    args = parser.parse_args(argv)

    llm = LlmSettings.from_env()
    try:
        sd = connect()
    except ConfigurationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with sd:
        agent = Agent(sd, args, llm)

        def on_signal(signum: int, _frame: Any) -> None:
            if agent.done.is_set():  # a second Ctrl-C: stop waiting for replies in flight
                raise KeyboardInterrupt
            # The handler runs in the main thread at any point, maybe while it holds a lock:
            # take none here, stop from another thread.
            agent.done.set()
            threading.Thread(target=agent.stop, name="stop", daemon=True).start()

        # Ctrl-C (even when started from a shell that ignores it) and SIGTERM stop cleanly.
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        try:
            code = agent.run()
        except KeyboardInterrupt:
            agent.stop()
            code = 0
        agent.pool.shutdown(wait=True)
        if code == 0:
            print("stopped; any open tickets are handed on by the desk", flush=True)
        return code


if __name__ == "__main__":
    sys.exit(main())
