// Reviewer console: a reviewer's live queue of human reviews, decided from the keyboard.
//
//   SERVICEDESK_API_KEY=<supervisor_1's key> npm run reviewer-console
//   SERVICEDESK_API_KEY=admin-key-456 npm run reviewer-console -- --reviewer manager_1 --act-as
//   SERVICEDESK_API_KEY=test-key-123 npm run reviewer-console -- --once
//
// It lists the reviewer's pending escalations (ListEscalations), then watches them
// (WatchEscalations) from the list's sequence, so no change is missed, and prints each change.
// Commands, one per line on stdin:
//
//   a <id> [response]   approve; the optional response replaces the agent's draft
//   r <id> <reason>     reject; the customer is told the reason
//   l                   print the queue again
//   h                   help
//   q                   quit (end of input quits too)
//
// <id> is an escalation id or its number in the queue as last printed.
//
// Decisions are made as the key's client: a reviewer's own key (client_id = reviewer id, with
// the `escalation` permission, from AdminService/CreateApiKey). With --act-as the console
// sends `reviewer_id` and decides in the reviewer's name, which needs a key with `admin`.
//
// Env: SERVICEDESK_TARGET (default http://127.0.0.1:50051), SERVICEDESK_API_KEY (required).

import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

import { Code, createDesk, formatError, hasCode } from "../src/client.js";
import type { Desk } from "../src/client.js";
import {
  EscalationEventType,
  EscalationPriority,
  EscalationState,
} from "../src/gen/servicedesk/v1/types_pb.js";
import type { Escalation, EscalationEvent } from "../src/gen/servicedesk/v1/types_pb.js";

const USAGE = `usage: reviewer-console [--reviewer ID] [--once] [--act-as]

  --reviewer ID   whose queue to show and decide (default supervisor_1)
  --once          print the queue and exit
  --act-as        send the reviewer id with decisions (needs a key with admin)

commands: a <id> [response] | r <id> <reason> | l | h | q`;

const HELP = `commands:
  a <id> [response]   approve (response replaces the agent's draft)
  r <id> <reason>     reject (the customer is told the reason)
  l                   print the queue
  h                   this help
  q                   quit
<id>: an escalation id, or its number in the queue`;

/** Retries of a broken watch before giving up. */
const MAX_WATCH_RETRIES = 8;
/** How long to wait at exit for the watch to show decisions made from this console. */
const DRAIN_MS = 3000;

function short(text: string, max = 100): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}

function byPriorityThenAge(a: Escalation, b: Escalation): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const ta = a.createTime ? Number(a.createTime.seconds) * 1e9 + a.createTime.nanos : 0;
  const tb = b.createTime ? Number(b.createTime.seconds) * 1e9 + b.createTime.nanos : 0;
  if (ta !== tb) return ta - tb;
  return a.escalationId < b.escalationId ? -1 : a.escalationId > b.escalationId ? 1 : 0;
}

class Console {
  /** Pending escalations assigned to the reviewer, by id. */
  private readonly queue = new Map<string, Escalation>();
  /** The queue in the order it was last printed, for `a 1`. */
  private numbered: string[] = [];
  /** Last sequence seen: where a broken watch resumes. */
  private sequence = 0n;
  /** Decisions made here whose event the watch has not shown yet. */
  private readonly awaitingEvent = new Set<string>();
  /** Called when awaitingEvent becomes empty. */
  private onDrained: (() => void) | undefined;
  private readonly stop = new AbortController();

  constructor(
    private readonly desk: Desk,
    private readonly reviewerId: string,
    private readonly actAs: boolean,
  ) {}

  /** Lists every page of the reviewer's pending escalations; returns the first page's sequence. */
  async load(): Promise<bigint> {
    this.queue.clear();
    let pageToken = "";
    let sequence: bigint | undefined;
    do {
      const page = await this.desk.escalation.listEscalations({
        state: EscalationState.PENDING,
        reviewerId: this.reviewerId,
        pageSize: 500,
        pageToken,
      });
      sequence ??= page.sequence;
      for (const e of page.escalations) this.queue.set(e.escalationId, e);
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
    this.sequence = sequence ?? 0n;
    return this.sequence;
  }

  printQueue(): void {
    const items = [...this.queue.values()].sort(byPriorityThenAge);
    this.numbered = items.map((e) => e.escalationId);
    console.log(`queue of ${this.reviewerId} at sequence ${this.sequence}: ${items.length} pending`);
    items.forEach((e, i) => {
      console.log(
        `  ${i + 1}. ${e.escalationId} ${EscalationPriority[e.priority]} ${e.topic || "-"} ` +
          `customer ${e.customerId}, ticket ${e.ticketId}, requested by ${e.requestedBy || "-"}`,
      );
      console.log(`     ${short(e.title)}`);
      if (e.proposedResponse) console.log(`     draft: ${short(e.proposedResponse)}`);
    });
  }

  private apply(ev: EscalationEvent): void {
    this.sequence = ev.sequence;
    const e = ev.escalation;
    if (!e) return;
    const type = EscalationEventType[ev.type] ?? String(ev.type);
    let line = `[${ev.sequence}] ${type} ${e.escalationId} ${EscalationPriority[e.priority]} ${e.topic || "-"}`;
    switch (ev.type) {
      case EscalationEventType.CREATED:
      case EscalationEventType.ASSIGNED:
      case EscalationEventType.REASSIGNED:
        line += ` -> ${e.assignedReviewerId || "(unassigned)"}`;
        if (ev.previousReviewerId) line += ` (from ${ev.previousReviewerId})`;
        line += `: ${short(e.title, 80)}`;
        break;
      case EscalationEventType.APPROVED:
      case EscalationEventType.REJECTED:
        line += ` by ${e.decidedBy || "-"}: ${short(e.resolution, 80)}`;
        break;
      default:
        break;
    }
    if (e.state === EscalationState.PENDING && e.assignedReviewerId === this.reviewerId) {
      this.queue.set(e.escalationId, e);
    } else {
      this.queue.delete(e.escalationId);
    }
    console.log(`${line} (queue: ${this.queue.size} pending)`);
    if (e.state !== EscalationState.PENDING) this.settled(e.escalationId);
  }

  private settled(id: string): void {
    this.awaitingEvent.delete(id);
    if (this.awaitingEvent.size === 0) this.onDrained?.();
  }

  /** Follows the queue from the current sequence until stopped, resuming after failures. */
  async watch(): Promise<void> {
    const signal = this.stop.signal;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const stream = this.desk.escalation.watchEscalations(
          { reviewerId: this.reviewerId, afterSequence: this.sequence },
          { signal },
        );
        for await (const ev of stream) {
          failures = 0;
          this.apply(ev);
        }
        if (signal.aborted) return;
        console.log(`watch closed by the server; resuming after sequence ${this.sequence}`);
      } catch (err) {
        if (signal.aborted) return;
        if (hasCode(err, Code.OutOfRange)) {
          console.log("the watch fell behind the retained log; listing the queue again");
          await this.load();
          this.printQueue();
          continue;
        }
        const transient =
          hasCode(err, Code.Unavailable) || hasCode(err, Code.Aborted) || hasCode(err, Code.Internal);
        if (!transient || ++failures > MAX_WATCH_RETRIES) throw err;
        console.log(`watch interrupted (${formatError(err).split("\n")[0]}); retrying`);
      }
      try {
        await sleep(Math.min(500 * 2 ** failures, 10_000), undefined, { signal });
      } catch {
        return; // stopped while waiting
      }
    }
  }

  private resolveId(token: string): string | undefined {
    if (/^\d+$/.test(token)) {
      return this.numbered[Number(token) - 1];
    }
    return token;
  }

  /** Runs one command line; returns false to quit. */
  async command(line: string): Promise<boolean> {
    const trimmed = line.trim();
    if (trimmed === "") return true;
    // `cmd`, then `id`, then the rest of the line as free text.
    const match = /^(\S+)(?:\s+(\S+))?(?:\s+([\s\S]*))?$/.exec(trimmed);
    const cmd = match?.[1] ?? "";
    const idToken = match?.[2] ?? "";
    const text = (match?.[3] ?? "").trim();
    switch (cmd.toLowerCase()) {
      case "q":
      case "quit":
      case "exit":
        return false;
      case "h":
      case "help":
      case "?":
        console.log(HELP);
        return true;
      case "l":
      case "list":
        this.printQueue();
        return true;
      case "a":
      case "approve":
      case "r":
      case "reject": {
        const approve = cmd.toLowerCase().startsWith("a");
        const id = idToken === "" ? undefined : this.resolveId(idToken);
        if (id === undefined) {
          console.log(approve ? "usage: a <id> [response]" : "usage: r <id> <reason>");
          return true;
        }
        if (!approve && text === "") {
          console.log("usage: r <id> <reason> (the customer is told the reason)");
          return true;
        }
        const reviewerId = this.actAs ? this.reviewerId : "";
        this.awaitingEvent.add(id);
        try {
          const e = approve
            ? await this.desk.escalation.approveEscalation({
                escalationId: id,
                comments: "approved from the TypeScript reviewer console",
                response: text,
                reviewerId,
              })
            : await this.desk.escalation.rejectEscalation({ escalationId: id, reason: text, reviewerId });
          console.log(
            `${approve ? "approved" : "rejected"} ${e.escalationId} (${EscalationState[e.state]}, ` +
              `decided by ${e.decidedBy}); the customer is told: ${short(e.resolution)}`,
          );
        } catch (err) {
          this.settled(id);
          console.log(`${approve ? "approve" : "reject"} ${id} failed: ${formatError(err)}`);
        }
        return true;
      }
      default:
        console.log(`unknown command "${cmd}"`);
        console.log(HELP);
        return true;
    }
  }

  /** Waits (briefly) until the watch has shown the decisions made here, then stops it. */
  async shutdown(watching: Promise<void>): Promise<void> {
    if (this.awaitingEvent.size > 0) {
      const drained = new Promise<void>((resolve) => (this.onDrained = resolve));
      const timeout = new AbortController();
      await Promise.race([
        drained,
        watching,
        sleep(DRAIN_MS, undefined, { signal: timeout.signal }).catch(() => undefined),
      ]);
      timeout.abort();
    }
    this.stop.abort();
    await watching.catch(() => undefined);
  }
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      options: {
        reviewer: { type: "string", default: "supervisor_1" },
        once: { type: "boolean", default: false },
        "act-as": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const reviewerId = args.reviewer.trim();
  if (reviewerId === "") {
    console.error(`--reviewer needs a reviewer id\n${USAGE}`);
    return 2;
  }

  const desk = createDesk();
  try {
    const cons = new Console(desk, reviewerId, args["act-as"]);
    await cons.load();
    cons.printQueue();
    if (args.once) return 0;

    console.log(`watching ${reviewerId}'s queue; commands: a <id> [response] | r <id> <reason> | l | h | q`);
    let watchError: unknown;
    const rl = createInterface({ input: process.stdin, terminal: false });
    const watching = cons.watch().catch((err: unknown) => {
      watchError = err;
      rl.close();
    });

    // Commands run one at a time, in order; end of input (or `q`) ends the console once the
    // commands already read have finished.
    let chain = Promise.resolve(true);
    await new Promise<void>((resolve) => {
      rl.on("line", (line) => {
        chain = chain.then(async (go) => {
          if (!go) return false;
          const more = await cons.command(line);
          if (!more) rl.close();
          return more;
        });
      });
      rl.on("close", resolve);
    });
    await chain;
    await cons.shutdown(watching);
    if (watchError !== undefined) {
      console.error(`watch failed: ${formatError(watchError)}`);
      return 1;
    }
    console.log("bye");
    return 0;
  } finally {
    desk.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`reviewer-console failed: ${formatError(err)}`);
    process.exitCode = 1;
  },
);
