// The live queue's model, without a browser: after any run of watch events, resumed from any
// point, with events delivered again (late or twice), it holds exactly the pending escalations
// the viewer should see, each once, urgent first then oldest. What it should hold is worked out
// here, apart from the code under test.

import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";

import {
  EscalationEventSchema,
  EscalationPriority,
  EscalationSchema,
  EscalationState,
} from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import type { Escalation, EscalationEvent } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import { compareEscalations, LiveQueue } from "../src/queue.js";
import type { Viewer } from "../src/queue.js";

/** A small deterministic generator, so a failure can be replayed by its seed. */
function generator(seed: number): (n: number) => number {
  let state = seed >>> 0;
  return (n) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
}

const PRIORITIES = [EscalationPriority.LOW, EscalationPriority.MEDIUM, EscalationPriority.HIGH, EscalationPriority.URGENT];
const STATES = [EscalationState.PENDING, EscalationState.PENDING, EscalationState.APPROVED, EscalationState.REJECTED, EscalationState.EXPIRED];
const REVIEWERS = ["", "supervisor_1", "supervisor_2"];

function pick<T>(items: readonly T[], random: (n: number) => number): T {
  return items[random(items.length)] as T;
}

/** A desk's worth of events: escalations created, reassigned and decided, in log order. */
function events(random: (n: number) => number, count: number): EscalationEvent[] {
  const log: EscalationEvent[] = [];
  const created: Escalation[] = [];
  for (let seq = 1; seq <= count; seq++) {
    let escalation: Escalation;
    if (created.length === 0 || random(3) === 0) {
      escalation = create(EscalationSchema, {
        escalationId: `esc_${seq}`,
        priority: pick(PRIORITIES, random),
        state: EscalationState.PENDING,
        assignedReviewerId: pick(REVIEWERS, random),
        // Ties in time on purpose: the order must still be total.
        createTime: timestampFromMs(1_000 * random(20)),
      });
      created.push(escalation);
    } else {
      const before = pick(created, random);
      escalation = create(EscalationSchema, {
        ...before,
        state: pick(STATES, random),
        assignedReviewerId: pick(REVIEWERS, random),
      });
      created[created.indexOf(before)] = escalation;
    }
    log.push(create(EscalationEventSchema, { sequence: BigInt(seq), escalation }));
  }
  return log;
}

/** What the queue must hold after `log`: the latest state of each, where the viewer sees it. */
function expected(log: EscalationEvent[], viewer: Viewer): string[] {
  const latest = new Map<string, Escalation>();
  for (const event of log) {
    if (event.escalation !== undefined) latest.set(event.escalation.escalationId, event.escalation);
  }
  const rank = (e: Escalation) => [EscalationPriority.URGENT, EscalationPriority.HIGH, EscalationPriority.MEDIUM, EscalationPriority.LOW].indexOf(e.priority);
  const created = (e: Escalation) => Number(e.createTime?.seconds ?? 0n) * 1e9 + (e.createTime?.nanos ?? 0);
  return [...latest.values()]
    .filter(
      (e) =>
        e.state === EscalationState.PENDING &&
        (viewer.admin || e.assignedReviewerId === "" || e.assignedReviewerId === viewer.reviewerId),
    )
    .sort((a, b) => rank(a) - rank(b) || created(a) - created(b) || (a.escalationId < b.escalationId ? -1 : 1))
    .map((e) => e.escalationId);
}

function ids(queue: LiveQueue): string[] {
  return queue.items().map((e) => e.escalationId);
}

function assertOrdered(queue: LiveQueue): void {
  const items = queue.items();
  for (let i = 1; i < items.length; i++) {
    assert.ok(compareEscalations(items[i - 1] as Escalation, items[i] as Escalation) < 0, "urgent first, then oldest");
  }
  for (const [i, e] of items.entries()) assert.equal(queue.indexOf(e.escalationId), i);
}

test("after any run of events the queue holds what the viewer should see, in order, each once", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = generator(seed);
    const log = events(random, 1 + random(120));
    for (const viewer of [
      { reviewerId: "supervisor_1", admin: false },
      { reviewerId: "admin-client", admin: true },
    ]) {
      const queue = new LiveQueue(viewer);
      queue.reset([], 0n);
      for (const event of log) {
        queue.apply(event);
        assertOrdered(queue);
      }
      assert.deepEqual(ids(queue), expected(log, viewer), `seed ${seed}`);
      assert.equal(queue.size, new Set(ids(queue)).size, "no escalation twice");
    }
  }
});

test("resuming from any point, with events seen before delivered again, changes nothing", () => {
  for (let seed = 1; seed <= 200; seed++) {
    const random = generator(seed);
    const log = events(random, 2 + random(80));
    const viewer = { reviewerId: "supervisor_2", admin: false };
    // A snapshot at some sequence (what a List returned), then a stream resumed from earlier
    // than it: the overlap must be ignored.
    const cut = random(log.length);
    const snapshot = new Map<string, Escalation>();
    for (const event of log.slice(0, cut)) {
      if (event.escalation !== undefined) snapshot.set(event.escalation.escalationId, event.escalation);
    }
    const queue = new LiveQueue(viewer);
    queue.reset(
      [...snapshot.values()].filter((e) => e.state === EscalationState.PENDING),
      BigInt(cut),
    );
    const replayFrom = random(cut + 1);
    for (const event of log.slice(replayFrom)) queue.apply(event);
    assert.deepEqual(ids(queue), expected(log, viewer), `seed ${seed}, cut ${cut}, replay from ${replayFrom}`);
    assert.equal(queue.sequence, BigInt(log.length));
    // An event delivered again late (its escalation has moved on since) changes nothing.
    const stale = pick(log, random);
    assert.deepEqual(queue.apply(stale), { kind: "none" });
    assert.deepEqual(ids(queue), expected(log, viewer), `seed ${seed}, stale ${stale.sequence}`);
  }
});
