// The signed-in reviewer's live queue: lists every pending escalation, then follows
// WatchEscalations from the list's sequence for as long as the session lasts, whichever page is
// shown, so the queue is current when the reviewer comes back to it and an open review hears
// when someone else decides it.

import type { ConnectError } from "@connectrpc/connect";

import { EscalationState } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import type { Escalation, EscalationEvent } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import { LiveQueue } from "./queue.js";
import type { QueueChange } from "./queue.js";
import type { Session } from "./session.js";
import { startResumableWatch } from "./stream.js";
import type { LinkState, RunningWatch } from "./stream.js";

export interface QueueListener {
  /** The whole queue was replaced by a fresh list (start, or after OUT_OF_RANGE). */
  reset?(): void;
  /** One live event changed the queue. */
  change?(change: QueueChange): void;
  /** Every escalation event, in the queue or not (an open review watches its own). */
  event?(event: EscalationEvent): void;
  state?(state: LinkState, error?: ConnectError): void;
}

/** The largest page ListEscalations serves. */
const PAGE_SIZE = 500;

export class QueueFeed {
  readonly queue: LiveQueue;
  private readonly listeners = new Set<QueueListener>();
  private running: RunningWatch | undefined;
  private linkState: LinkState = "connecting";
  private linkError: ConnectError | undefined;
  private loadedOnce = false;

  constructor(private readonly session: Session) {
    this.queue = new LiveQueue({ reviewerId: session.clientId, admin: session.isAdmin });
  }

  get state(): LinkState {
    return this.linkState;
  }

  get error(): ConnectError | undefined {
    return this.linkError;
  }

  /** Whether a first list has arrived (until then the count is unknown, not zero). */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  subscribe(listener: QueueListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.running !== undefined) return;
    const escalation = this.session.escalation;
    this.running = startResumableWatch<EscalationEvent>({
      snapshot: async (signal) => {
        const all: Escalation[] = [];
        let pageToken = "";
        let sequence: bigint | undefined;
        do {
          const page = await escalation.listEscalations(
            { state: EscalationState.PENDING, pageSize: PAGE_SIZE, pageToken },
            { signal },
          );
          // Later pages are read later; the first page's sequence is the one that misses nothing,
          // and replaying events over newer rows converges because each event is a full upsert.
          sequence ??= page.sequence;
          all.push(...page.escalations);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        this.queue.reset(all, sequence);
        this.loadedOnce = true;
        for (const l of this.listeners) l.reset?.();
        return sequence;
      },
      // Unfiltered: a reviewer filter would drop the unassigned escalations this queue shows.
      watch: (afterSequence, signal, opened) =>
        escalation.watchEscalations({ afterSequence }, { signal, onHeader: opened }),
      sequenceOf: (event) => event.sequence,
      onEvent: (event) => {
        const change = this.queue.apply(event);
        for (const l of this.listeners) {
          l.event?.(event);
          if (change.kind !== "none") l.change?.(change);
        }
      },
      onState: (state, error) => {
        this.linkState = state;
        this.linkError = error;
        for (const l of this.listeners) l.state?.(state, error);
      },
    });
  }

  stop(): void {
    this.running?.stop();
    this.running = undefined;
    this.listeners.clear();
  }
}
