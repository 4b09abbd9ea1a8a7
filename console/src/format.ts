// Text for people: countdowns, durations, times and enum names. Pure functions, no DOM, so the
// wording can be tested in Node.

import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";

import {
  AgentAvailability,
  EscalationState,
  PathOutcome,
  TicketStatus,
} from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";

/** Milliseconds since the epoch, or undefined for an unset timestamp. */
export function timestampMs(ts: Timestamp | undefined): number | undefined {
  if (ts === undefined) return undefined;
  return Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6);
}

/**
 * Time left until a deadline: `42s`, `4m 12s`, `2h 05m`, `3d 4h`, or `expired` once it passed.
 * Whole seconds are rounded up so the countdown reaches `expired` exactly at the deadline.
 */
export function formatCountdown(msLeft: number): string {
  if (!(msLeft > 0)) return "expired";
  const total = Math.ceil(msLeft / 1000);
  const days = Math.floor(total / 86400);
  const hours = Math.floor((total % 86400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, "0")}m`;
  if (minutes > 0) return `${minutes}m ${seconds}s`;
  return `${seconds}s`;
}

/** The countdown to an escalation's expire_time; `no deadline` when unset. */
export function deadlineText(expireMs: number | undefined, nowMs: number): string {
  return expireMs === undefined ? "no deadline" : formatCountdown(expireMs - nowMs);
}

/** A duration such as a mean time to decision: `850 ms`, `12s`, `4m 12s`, `1h 02m`. */
export function formatDuration(d: Duration | undefined): string {
  if (d === undefined) return "–";
  const ms = Number(d.seconds) * 1000 + Math.round(d.nanos / 1e6);
  if (ms < 1000) return `${ms} ms`;
  return formatCountdown(ms);
}

export function formatPercent(ratio: number): string {
  return `${(ratio * 100).toFixed(1)}%`;
}

/** Local date and time of a timestamp, for history and event lines. */
export function formatTime(ts: Timestamp | undefined): string {
  const ms = timestampMs(ts);
  return ms === undefined ? "–" : new Date(ms).toLocaleString();
}

/** `APPROVED` -> `approved`, `AWAITING_REVIEW` -> `awaiting review`: enum names as words. */
function words(name: string | undefined): string {
  return name === undefined ? "unknown" : name.toLowerCase().replace(/_/g, " ");
}

export function escalationStateText(state: EscalationState): string {
  return words(EscalationState[state]);
}

export function ticketStatusText(status: TicketStatus): string {
  return words(TicketStatus[status]);
}

export function pathOutcomeText(outcome: PathOutcome): string {
  return words(PathOutcome[outcome]);
}

export function availabilityText(availability: AgentAvailability): string {
  return words(AgentAvailability[availability]);
}

export function enumWords(name: string | undefined): string {
  return words(name);
}
