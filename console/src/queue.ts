// The live review queue as data: which pending escalations a reviewer sees, in which order, and
// how one watch event changes that. No DOM and no network here, so the rules can be unit-tested
// in Node and the view only has to mirror the changes this model reports.

import { EscalationPriority, EscalationState } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import type { Escalation, EscalationEvent } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";

/** Who is looking at the queue. */
export interface Viewer {
  /** The key's client id, which is the reviewer id it decides as. */
  reviewerId: string;
  /** Admins see every pending escalation, not only their own and unassigned ones. */
  admin: boolean;
}

/** What one event did to the ordered queue; indexes are positions in `items()` after the change. */
export type QueueChange =
  | { kind: "none" }
  | { kind: "insert"; item: Escalation; index: number }
  | { kind: "update"; item: Escalation; from: number; index: number }
  | { kind: "remove"; id: string; from: number };

/** The lowercase priority names the view puts in `data-priority`. */
export type PriorityName = "urgent" | "high" | "medium" | "low";

/** How the badge spells each priority. */
export const PRIORITY_LABEL: Readonly<Record<PriorityName, string>> = {
  urgent: "Urgent",
  high: "High",
  medium: "Medium",
  low: "Low",
};

export function priorityName(priority: EscalationPriority): PriorityName {
  switch (priority) {
    case EscalationPriority.URGENT:
      return "urgent";
    case EscalationPriority.HIGH:
      return "high";
    case EscalationPriority.MEDIUM:
      return "medium";
    default:
      // UNSPECIFIED is never sent by the server; ranking it with LOW keeps it visible.
      return "low";
  }
}

/** Whether this viewer's queue holds the escalation as it stands now. */
export function belongsInQueue(e: Escalation, viewer: Viewer): boolean {
  if (e.state !== EscalationState.PENDING) return false;
  return viewer.admin || e.assignedReviewerId === "" || e.assignedReviewerId === viewer.reviewerId;
}

/**
 * URGENT first, then HIGH, MEDIUM, LOW; then oldest create_time first; then id, so that the
 * order is total and a binary search finds exactly one position for every escalation.
 */
export function compareEscalations(a: Escalation, b: Escalation): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  const as = a.createTime?.seconds ?? 0n;
  const bs = b.createTime?.seconds ?? 0n;
  if (as !== bs) return as < bs ? -1 : 1;
  const an = a.createTime?.nanos ?? 0;
  const bn = b.createTime?.nanos ?? 0;
  if (an !== bn) return an - bn;
  return a.escalationId < b.escalationId ? -1 : a.escalationId > b.escalationId ? 1 : 0;
}

/** The first index whose item does not sort before `e`. */
function lowerBound(items: readonly Escalation[], e: Escalation): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareEscalations(items[mid] as Escalation, e) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * A reviewer's pending escalations kept sorted, with the sequence of the last event applied.
 * Every event carries the escalation as it stands, so applying one is an upsert or a removal,
 * and applying the same event twice (a replay after a reconnect) changes nothing.
 */
export class LiveQueue {
  private sorted: Escalation[] = [];
  private readonly byId = new Map<string, Escalation>();
  private seq = 0n;

  constructor(readonly viewer: Viewer) {}

  /** How many escalations the queue holds. */
  get size(): number {
    return this.sorted.length;
  }

  /** The sequence of the snapshot or of the last event applied: where a watch resumes. */
  get sequence(): bigint {
    return this.seq;
  }

  /** The queue in display order. Read-only: change it through reset() and apply(). */
  items(): readonly Escalation[] {
    return this.sorted;
  }

  get(id: string): Escalation | undefined {
    return this.byId.get(id);
  }

  /** Position of an escalation in display order, or -1. O(log n). */
  indexOf(id: string): number {
    const e = this.byId.get(id);
    if (e === undefined) return -1;
    return lowerBound(this.sorted, e);
  }

  /** Replaces everything with a listed snapshot read at `sequence`. */
  reset(escalations: Iterable<Escalation>, sequence: bigint): void {
    this.byId.clear();
    for (const e of escalations) {
      if (belongsInQueue(e, this.viewer)) this.byId.set(e.escalationId, e);
    }
    this.sorted = [...this.byId.values()].sort(compareEscalations);
    this.seq = sequence;
  }

  /**
   * Applies one watch event. Events at or below the current sequence were already seen (the
   * snapshot or an earlier stream) and are ignored, which is what makes resuming safe.
   */
  apply(event: EscalationEvent): QueueChange {
    if (event.sequence <= this.seq) return { kind: "none" };
    this.seq = event.sequence;
    const e = event.escalation;
    if (e === undefined) return { kind: "none" };
    return this.upsert(e);
  }

  /** Puts the escalation where it belongs now, or takes it out when it no longer belongs. */
  upsert(e: Escalation): QueueChange {
    const id = e.escalationId;
    const old = this.byId.get(id);
    const from = old === undefined ? -1 : lowerBound(this.sorted, old);
    if (!belongsInQueue(e, this.viewer)) {
      if (old === undefined) return { kind: "none" };
      this.sorted.splice(from, 1);
      this.byId.delete(id);
      return { kind: "remove", id, from };
    }
    if (old !== undefined) this.sorted.splice(from, 1);
    const index = lowerBound(this.sorted, e);
    this.sorted.splice(index, 0, e);
    this.byId.set(id, e);
    return old === undefined ? { kind: "insert", item: e, index } : { kind: "update", item: e, from, index };
  }
}
