"""A reviewer's console: the live queue of one reviewer, decided from the terminal.

It lists the reviewer's pending escalations, then watches from the list's `sequence`
(list-then-watch: nothing is missed in between) and prints every change as it happens. Commands,
typed while the watch runs:

    a ID [response]   approve (the optional text replaces the agent's draft for the customer)
    r ID reason       reject; the customer is told the reason
    l                 show the queue again
    h                 help
    q                 quit (so does end of input, or Ctrl-C)

ID is an escalation id (`esc_...`) or its number in the last printed queue.

    export SERVICEDESK_TARGET=127.0.0.1:50051
    export SERVICEDESK_API_KEY=KEY      # the reviewer's own key (client id = reviewer id),
                                        # or an admin key, which decides in the reviewer's name
    python examples/reviewer_console.py --reviewer supervisor_1
    python examples/reviewer_console.py --once              # print the queue and exit
    printf 'a esc_123 Refunded.\\nq\\n' | python examples/reviewer_console.py   # scripted
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Dict, List, Optional, Set

import grpc

from servicedesk import ConfigurationError, Desk, connect, describe_error
from servicedesk.v1 import escalation_pb2, types_pb2

TIMEOUT = 15.0
# After end of input, how long to wait for the watch to show the decisions that were made.
DRAIN_SECONDS = 5.0

PENDING = types_pb2.ESCALATION_STATE_PENDING


def enum_name(enum, value: int, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix)


def short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class Console:
    """The queue, the watch and the commands of one reviewer."""

    def __init__(self, sd: Desk, reviewer: str, interactive: bool) -> None:
        self.sd = sd
        self.reviewer = reviewer
        self.interactive = interactive
        self.queue: Dict[str, types_pb2.Escalation] = {}
        self.numbers: List[str] = []
        self.last_sequence = 0
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.call: Optional[grpc.Future] = None
        # Escalations decided here whose final event the watch has not shown yet.
        self.awaiting: Set[str] = set()
        self.seen_final = threading.Condition(self.lock)

    # -- output ---------------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        with self.lock:
            print(text, flush=True)

    def line(self, esc: types_pb2.Escalation) -> str:
        prio = enum_name(types_pb2.EscalationPriority, esc.priority, "ESCALATION_PRIORITY_")
        return f"{prio:<7} {esc.escalation_id}  [{esc.customer_id}] {short(esc.title)}"

    def show_queue(self) -> None:
        with self.lock:
            order = sorted(
                self.queue.values(),
                key=lambda e: (-e.priority, e.create_time.seconds, e.create_time.nanos),
            )
            self.numbers = [e.escalation_id for e in order]
            self.say(f"queue of {self.reviewer}: {len(order)} pending")
            for number, esc in enumerate(order, 1):
                self.say(f"  {number:>2}. {self.line(esc)}")
                if esc.proposed_response:
                    self.say(f"      draft: {short(esc.proposed_response, 90)}")

    # -- list, then watch ------------------------------------------------------------------

    def load(self) -> None:
        """Lists the reviewer's pending escalations (every page) and notes the sequence."""
        token = ""
        first_sequence = None
        while True:
            page = self.sd.escalations.ListEscalations(
                escalation_pb2.ListEscalationsRequest(
                    reviewer_id=self.reviewer, page_size=100, page_token=token
                ),
                timeout=TIMEOUT,
            )
            if first_sequence is None:
                first_sequence = page.sequence
            for esc in page.escalations:
                self.queue[esc.escalation_id] = esc
            token = page.next_page_token
            if not token:
                break
        # Watching from the first page's sequence replays whatever changed while paging.
        self.last_sequence = first_sequence or 0

    def apply(self, event: types_pb2.EscalationEvent) -> None:
        esc = event.escalation
        kind = enum_name(types_pb2.EscalationEventType, event.type, "ESCALATION_EVENT_TYPE_")
        with self.lock:
            self.last_sequence = max(self.last_sequence, event.sequence)
            mine = esc.assigned_reviewer_id == self.reviewer
            if esc.state == PENDING and mine:
                self.queue[esc.escalation_id] = esc
            else:
                self.queue.pop(esc.escalation_id, None)
            detail = ""
            if event.type in (
                types_pb2.ESCALATION_EVENT_TYPE_ASSIGNED,
                types_pb2.ESCALATION_EVENT_TYPE_REASSIGNED,
            ):
                before = event.previous_reviewer_id or "nobody"
                detail = f" ({before} -> {esc.assigned_reviewer_id or 'nobody'})"
            elif esc.state != PENDING:
                detail = f" by {esc.decided_by or 'the desk'}"
                if esc.resolution:
                    detail += f": {short(esc.resolution, 60)}"
            self.say(f"[#{event.sequence}] {kind} {esc.escalation_id}{detail}  "
                     f"(queue: {len(self.queue)} pending)")
            if esc.state != PENDING and esc.escalation_id in self.awaiting:
                self.awaiting.discard(esc.escalation_id)
                self.seen_final.notify_all()

    def watch(self) -> int:
        """Streams the queue's changes until stopped; resumes after a dropped connection."""
        backoff = 0.5
        while not self.stopping.is_set():
            request = escalation_pb2.WatchEscalationsRequest(
                reviewer_id=self.reviewer, after_sequence=self.last_sequence
            )
            call = self.sd.escalations.WatchEscalations(request)
            with self.lock:
                self.call = call
            if self.stopping.is_set():
                call.cancel()
            try:
                for event in call:
                    backoff = 0.5
                    self.apply(event)
                return 0  # the server ended the stream (it is shutting down)
            except grpc.RpcError as err:
                if self.stopping.is_set() or err.code() == grpc.StatusCode.CANCELLED:
                    return 0
                if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                    self.say(f"(watch interrupted: {describe_error(err)}; resuming after "
                             f"#{self.last_sequence} in {backoff:.1f}s)")
                    self.stopping.wait(backoff)
                    backoff = min(backoff * 2, 15.0)
                    continue
                self.say(f"error: the watch failed: {describe_error(err)}")
                self.stopping.set()
                return 1
        return 0

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            call = self.call
        if call is not None:
            call.cancel()

    # -- commands ------------------------------------------------------------------------

    def resolve_id(self, token: str) -> str:
        with self.lock:
            if token.isdigit() and 1 <= int(token) <= len(self.numbers):
                return self.numbers[int(token) - 1]
        return token

    def run_command(self, text: str) -> bool:
        """Runs one command line; returns False to quit."""
        parts = text.strip().split(maxsplit=2)
        if not parts:
            return True
        verb = parts[0].lower()
        if verb in ("q", "quit", "exit"):
            return False
        if verb in ("h", "help", "?"):
            self.say("commands: a ID [response] | r ID reason | l | h | q")
            return True
        if verb in ("l", "list"):
            self.show_queue()
            return True
        if verb in ("a", "approve", "r", "reject"):
            if len(parts) < 2:
                self.say(f"usage: {verb} ID {'[response]' if verb[0] == 'a' else 'reason'}")
                return True
            esc_id = self.resolve_id(parts[1])
            if esc_id.isdigit():
                self.say(f"no number {esc_id} in the last printed queue; l shows it again")
                return True
            rest = parts[2] if len(parts) > 2 else ""
            if verb[0] == "r" and not rest:
                self.say("a rejection needs a reason: r ID reason")
                return True
            with self.lock:
                self.awaiting.add(esc_id)
            try:
                if verb[0] == "a":
                    esc = self.sd.escalations.ApproveEscalation(
                        escalation_pb2.ApproveEscalationRequest(
                            escalation_id=esc_id,
                            reviewer_id=self.reviewer,
                            response=rest,
                            comments="approved from the reviewer console",
                        ),
                        timeout=TIMEOUT,
                    )
                else:
                    esc = self.sd.escalations.RejectEscalation(
                        escalation_pb2.RejectEscalationRequest(
                            escalation_id=esc_id, reviewer_id=self.reviewer, reason=rest
                        ),
                        timeout=TIMEOUT,
                    )
            except grpc.RpcError as err:
                with self.lock:
                    self.awaiting.discard(esc_id)
                self.say(f"could not decide {esc_id}: {describe_error(err)}")
                return True
            state = enum_name(types_pb2.EscalationState, esc.state, "ESCALATION_STATE_")
            self.say(f"{state.lower()} {esc.escalation_id} (ticket {esc.ticket_id}); the customer "
                     f"is told: {short(esc.resolution, 80)}")
            return True
        self.say(f"unknown command {verb!r}; h for help")
        return True

    def read_commands(self) -> None:
        """Reads commands from stdin (in its own thread) until q or end of input."""
        try:
            while not self.stopping.is_set():
                if self.interactive:
                    with self.lock:
                        sys.stdout.write("> ")
                        sys.stdout.flush()
                text = sys.stdin.readline()
                if not text:
                    break
                if not self.interactive and text.strip():
                    self.say(f"> {text.strip()}")
                if not self.run_command(text):
                    break
        finally:
            self.drain()
            self.stop()

    def drain(self) -> None:
        """Lets the watch show the outcome of the decisions made here before quitting."""
        deadline = time.monotonic() + DRAIN_SECONDS
        with self.lock:
            while self.awaiting and not self.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.seen_final.wait(left)


def main() -> int:
    parser = argparse.ArgumentParser(description="A reviewer's live console for servicedesk.")
    parser.add_argument("--reviewer", default="supervisor_1", help="reviewer id (default: %(default)s)")
    parser.add_argument("--once", action="store_true", help="print the queue and exit")
    args = parser.parse_args()

    try:
        sd = connect()
    except ConfigurationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with sd:
        console = Console(sd, args.reviewer, interactive=sys.stdin.isatty())
        try:
            console.load()
        except grpc.RpcError as err:
            print(f"error: {describe_error(err)}", file=sys.stderr)
            return 1
        console.show_queue()
        if args.once:
            return 0
        console.say(f"watching after #{console.last_sequence}; commands: a ID [response] | "
                    "r ID reason | l | h | q")
        reader = threading.Thread(target=console.read_commands, name="stdin", daemon=True)
        reader.start()
        try:
            code = console.watch()
        except KeyboardInterrupt:
            console.stop()
            code = 0
        console.stop()
        if code == 0:
            console.say("bye.")
        return code


if __name__ == "__main__":
    sys.exit(main())
