// The desk (admins only): tiers and their agents with pause/resume, the review queue's numbers,
// and the desk-wide event log live. Rows are updated in place so a keyboard user's focus on a
// Pause button survives the refreshes that follow every event.

import { AgentAvailability, AgentKind } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import type {
  Agent,
  DeskEvent,
  DeskStatus,
  EscalationStats,
} from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import {
  EscalationEventType,
  TicketEventType,
} from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import { fill, h } from "./dom.js";
import { availabilityText, enumWords, formatDuration, formatPercent, formatTime } from "./format.js";
import { errorMessage } from "./session.js";
import type { Session } from "./session.js";
import { startResumableWatch } from "./stream.js";
import type { LinkState, RunningWatch } from "./stream.js";

/** The feed keeps the newest events only: enough to see what is going on, bounded memory. */
export const EVENT_FEED_CAP = 200;
/** At most one status refresh per this many ms, however fast events arrive. */
const REFRESH_EVERY_MS = 2000;

interface AgentRow {
  tr: HTMLTableRowElement;
  load: HTMLTableCellElement;
  availability: HTMLTableCellElement;
  action: HTMLTableCellElement;
  button: HTMLButtonElement | undefined;
  agent: Agent;
}

/** One line for the event feed. */
export function describeDeskEvent(ev: DeskEvent): string {
  const e = ev.event;
  switch (e.case) {
    case "ticket": {
      const t = e.value;
      return `ticket ${t.ticketId} ${enumWords(TicketEventType[t.type])}${t.detail ? `: ${t.detail}` : ""}`;
    }
    case "escalation": {
      const x = e.value;
      const esc = x.escalation;
      const who = esc ? (esc.decidedBy || esc.assignedReviewerId || "unassigned") : "";
      return `escalation ${esc?.escalationId ?? ""} ${enumWords(EscalationEventType[x.type])}${who ? ` (${who})` : ""}`;
    }
    case "agent":
      return `agent ${e.value.name} (${e.value.tier}): ${ev.detail || availabilityText(e.value.availability)}`;
    case "reviewer":
      return `reviewer ${e.value.reviewerId}: ${ev.detail || "changed"}`;
    default:
      return ev.detail || "event";
  }
}

export class DeskView {
  private running: RunningWatch | undefined;
  private readonly agentRows = new Map<string, AgentRow>();
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private lastRefresh = 0;
  private generation = 0;
  private els:
    | {
        summary: HTMLElement;
        agents: HTMLTableSectionElement;
        stats: HTMLElement;
        reviewers: HTMLTableSectionElement;
        events: HTMLOListElement;
        eventsStatus: HTMLElement;
        error: HTMLElement;
      }
    | undefined;

  constructor(
    private readonly root: HTMLElement,
    private readonly session: Session,
  ) {}

  open(): void {
    this.close();
    const generation = ++this.generation;
    const els = {
      summary: h("dl", { class: "facts", id: "desk-summary" }),
      agents: h("tbody"),
      stats: h("dl", { class: "facts", id: "escalation-stats" }),
      reviewers: h("tbody"),
      // Focusable: it scrolls, and keyboard users must be able to scroll it.
      events: h("ol", { id: "events", class: "events", tabindex: "0", "aria-labelledby": "events-heading" }),
      eventsStatus: h("span", { id: "events-status", role: "status" }, "connecting"),
      error: h("p", { id: "desk-error", role: "alert", class: "error" }),
    };
    this.els = els;
    const refresh = h("button", { type: "button" }, "Refresh");
    refresh.addEventListener("click", () => void this.refresh(generation));
    fill(
      this.root,
      h("div", { class: "view-head" }, h("h1", { tabindex: "-1" }, "Desk"), refresh),
      els.error,
      els.summary,
      h(
        "section",
        { class: "panel", "aria-labelledby": "agents-heading" },
        h("h2", { id: "agents-heading" }, "Agents"),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { id: "agents" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                h("th", { scope: "col" }, "Agent"),
                h("th", { scope: "col" }, "Tier"),
                h("th", { scope: "col" }, "Load / capacity"),
                h("th", { scope: "col" }, "Availability"),
                h("th", { scope: "col" }, "Action"),
              ),
            ),
            els.agents,
          ),
        ),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "reviews-heading" },
        h("h2", { id: "reviews-heading" }, "Human review"),
        els.stats,
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { id: "reviewers" },
            h(
              "thead",
              null,
              h(
                "tr",
                null,
                h("th", { scope: "col" }, "Reviewer"),
                h("th", { scope: "col" }, "Name"),
                h("th", { scope: "col" }, "Load / max"),
                h("th", { scope: "col" }, "Decided"),
              ),
            ),
            els.reviewers,
          ),
        ),
      ),
      h(
        "section",
        { class: "panel", "aria-labelledby": "events-heading" },
        h("h2", { id: "events-heading" }, "Events"),
        h("p", { class: "link-state" }, "Updates: ", els.eventsStatus, ` · newest first, last ${EVENT_FEED_CAP}`),
        els.events,
      ),
    );

    this.running = startResumableWatch<DeskEvent>({
      snapshot: async () => {
        const status = await this.load(generation);
        return status.sequence;
      },
      watch: (afterSequence, signal, opened) =>
        this.session.admin.watchEvents({ afterSequence }, { signal, onHeader: opened }),
      sequenceOf: (ev) => ev.sequence,
      onEvent: (ev) => this.onEvent(ev, generation),
      onState: (state, error) => this.showState(state, error?.rawMessage),
    });
  }

  close(): void {
    this.generation++;
    this.running?.stop();
    this.running = undefined;
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    this.agentRows.clear();
    this.els = undefined;
  }

  private showState(state: LinkState, message: string | undefined): void {
    const els = this.els;
    if (els === undefined) return;
    els.eventsStatus.textContent = state === "failed" ? "disconnected" : state;
    if (state === "failed" && message) els.error.textContent = message;
  }

  /** Reads the status and stats and shows them; throws so the watch retries a failed snapshot. */
  private async load(generation: number): Promise<DeskStatus> {
    const [status, stats] = await Promise.all([
      this.session.admin.getDeskStatus({}),
      this.session.escalation.getEscalationStats({}),
    ]);
    if (generation === this.generation) {
      this.lastRefresh = Date.now();
      this.renderStatus(status);
      this.renderStats(stats);
    }
    return status;
  }

  private async refresh(generation: number): Promise<void> {
    try {
      await this.load(generation);
      if (this.els !== undefined && generation === this.generation) this.els.error.textContent = "";
    } catch (err) {
      if (this.els !== undefined && generation === this.generation) this.els.error.textContent = errorMessage(err);
    }
  }

  /** Loads and queues change with nearly every event: refresh the numbers, but not per event. */
  private scheduleRefresh(generation: number): void {
    if (this.refreshTimer !== undefined) return;
    const wait = Math.max(0, this.lastRefresh + REFRESH_EVERY_MS - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      if (generation === this.generation) void this.refresh(generation);
    }, wait);
  }

  private onEvent(ev: DeskEvent, generation: number): void {
    const els = this.els;
    if (els === undefined) return;
    if (ev.event.case === "agent") this.upsertAgent(ev.event.value);
    els.events.prepend(
      h(
        "li",
        { "data-sequence": ev.sequence.toString(), "data-kind": ev.event.case ?? "unknown" },
        h("span", { class: "seq" }, `#${ev.sequence}`),
        " ",
        h("time", { class: "muted" }, formatTime(ev.time)),
        " ",
        describeDeskEvent(ev),
      ),
    );
    while (els.events.childElementCount > EVENT_FEED_CAP) els.events.lastElementChild?.remove();
    this.scheduleRefresh(generation);
  }

  private renderStatus(status: DeskStatus): void {
    const els = this.els;
    if (els === undefined) return;
    const fact = (label: string, value: string): HTMLElement[] => [h("dt", null, label), h("dd", null, value)];
    fill(
      els.summary,
      ...fact("Desk", status.deskName || "–"),
      ...fact("Open tickets", status.openTickets.toString()),
      ...fact("Queued for an agent", status.queuedTickets.toString()),
      ...fact("Handled", status.totalHandled.toString()),
      ...fact("Escalation rate", formatPercent(status.escalationRate)),
      ...fact("Utilization", formatPercent(status.utilization)),
      ...fact("Mean resolution time", formatDuration(status.avgResolutionTime)),
      ...fact("Clients with keys", String(status.registeredClients)),
    );
    const seen = new Set<string>();
    for (const tier of status.tiers) {
      for (const agent of tier.agents) {
        seen.add(agent.agentId);
        this.upsertAgent(agent);
      }
    }
    for (const [id, row] of this.agentRows) {
      if (!seen.has(id)) {
        row.tr.remove();
        this.agentRows.delete(id);
      }
    }
  }

  private renderStats(stats: EscalationStats): void {
    const els = this.els;
    if (els === undefined) return;
    const fact = (label: string, value: string): HTMLElement[] => [h("dt", null, label), h("dd", null, value)];
    fill(
      els.stats,
      ...fact("Pending", stats.active.toString()),
      ...fact("Unassigned", stats.unassigned.toString()),
      ...fact("Total", stats.total.toString()),
      ...fact("Approved", stats.approved.toString()),
      ...fact("Rejected", stats.rejected.toString()),
      ...fact("Expired", stats.expired.toString()),
      ...fact("Approval rate", formatPercent(stats.approvalRate)),
      ...fact("Mean time to decision", formatDuration(stats.avgTimeToDecision)),
    );
    fill(
      els.reviewers,
      ...stats.reviewers.map((r) =>
        h(
          "tr",
          { "data-reviewer-id": r.reviewerId },
          h("th", { scope: "row" }, r.reviewerId),
          h("td", null, r.name),
          h("td", null, `${r.load} / ${r.maxConcurrent}`),
          h("td", null, r.decidedCount.toString()),
        ),
      ),
    );
  }

  /** Adds the agent's row, or updates it in place (keeping focus on its button). */
  private upsertAgent(agent: Agent): void {
    const els = this.els;
    if (els === undefined) return;
    let row = this.agentRows.get(agent.agentId);
    if (row === undefined) {
      const load = h("td", { class: "load" });
      const availability = h("td", { class: "availability" });
      const action = h("td", { class: "action" });
      const tr = h(
        "tr",
        { "data-agent-id": agent.agentId },
        h("th", { scope: "row" }, agent.name),
        h("td", null, agent.tier),
        load,
        availability,
        action,
      );
      row = { tr, load, availability, action, button: undefined, agent };
      this.agentRows.set(agent.agentId, row);
      els.agents.append(tr);
    }
    row.agent = agent;
    row.load.textContent = `${agent.load} / ${agent.capacity}`;
    const remote = agent.kind === AgentKind.REMOTE ? " (remote)" : "";
    row.availability.textContent = availabilityText(agent.availability) + remote;
    row.tr.dataset["availability"] = availabilityText(agent.availability);
    this.updateAction(row);
  }

  private updateAction(row: AgentRow): void {
    const availability = row.agent.availability;
    const label =
      availability === AgentAvailability.AVAILABLE
        ? "Pause"
        : availability === AgentAvailability.PAUSED
          ? "Resume"
          : undefined;
    if (label === undefined) {
      // OFFLINE is the desk's to set: a remote agent comes back by attaching, not by a click.
      row.button?.remove();
      row.button = undefined;
      if (row.action.textContent === "") row.action.textContent = "–";
      return;
    }
    if (row.button === undefined) {
      const button = h("button", { type: "button" });
      button.addEventListener("click", () => void this.toggle(row));
      row.action.replaceChildren(button);
      row.button = button;
    }
    if (row.button.textContent !== label) row.button.textContent = label;
  }

  private async toggle(row: AgentRow): Promise<void> {
    const els = this.els;
    const button = row.button;
    if (els === undefined || button === undefined) return;
    const next =
      row.agent.availability === AgentAvailability.AVAILABLE ? AgentAvailability.PAUSED : AgentAvailability.AVAILABLE;
    if (button.getAttribute("aria-disabled") === "true") return; // a call for this row is running
    // aria-disabled, not `disabled`: disabling the focused button would drop keyboard focus.
    button.setAttribute("aria-disabled", "true");
    els.error.textContent = "";
    try {
      const agent = await this.session.admin.updateAgent({ agentId: row.agent.agentId, availability: next });
      this.upsertAgent(agent);
    } catch (err) {
      if (this.els !== undefined) this.els.error.textContent = `${row.agent.name}: ${errorMessage(err)}`;
    } finally {
      button.removeAttribute("aria-disabled");
    }
  }
}
