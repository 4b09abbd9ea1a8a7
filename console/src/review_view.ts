// One review: what the customer asked, how the tiers handled it, why a human must decide, and
// the three decisions (approve with an edited answer, reject with a reason, hand over). When
// someone else decides first, the page says who and how, and keeps what the reviewer typed.

import { Code } from "@connectrpc/connect";

import { EscalationState } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import type { Escalation, EscalationEvent } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import { everySecond, field, fill, h } from "./dom.js";
import { deadlineText, escalationStateText, formatTime, timestampMs } from "./format.js";
import { PRIORITY_LABEL, priorityName } from "./queue.js";
import type { QueueFeed } from "./queue_feed.js";
import { errorMessage, hasCode } from "./session.js";
import type { Session } from "./session.js";
import { renderTicket, renderTicketUnavailable } from "./ticket_panel.js";

export const REASON_REQUIRED = "A reason is required to reject.";

/** How long the success message shows before the page returns to the queue. */
const BACK_TO_QUEUE_MS = 1500;

/** Textareas turn CRLF into LF; compare drafts the way the browser stores them. */
function normalizeNewlines(text: string): string {
  return text.replace(/\r\n?/g, "\n");
}

/** The deadline while a decision is due; once decided the clock no longer matters. */
function reviewDeadlineText(e: Escalation | undefined, now: number): string {
  if (e === undefined) return "";
  if (e.state === EscalationState.PENDING) return deadlineText(timestampMs(e.expireTime), now);
  return e.state === EscalationState.EXPIRED ? "expired" : "decided";
}

function decisionSentence(e: Escalation): string {
  const how = escalationStateText(e.state);
  const by = e.decidedBy ? ` by ${e.decidedBy}` : "";
  const when = e.decideTime ? ` at ${formatTime(e.decideTime)}` : "";
  if (e.state === EscalationState.EXPIRED) return `This escalation expired${when}: nobody decided it before its deadline.`;
  return `This escalation was ${how}${by}${when}.`;
}

/** The form controls a review page keeps between renders. */
interface Controls {
  response: HTMLTextAreaElement;
  comments: HTMLInputElement;
  reason: HTMLTextAreaElement;
  handover: HTMLInputElement;
  reviewerIds: HTMLDataListElement;
  approve: HTMLButtonElement;
  reject: HTMLButtonElement;
  handOver: HTMLButtonElement;
  rejectError: HTMLElement;
  handoverError: HTMLElement;
  status: HTMLElement;
  /** The way back to the queue, shown once the review is done. */
  next: HTMLElement;
  error: HTMLElement;
  notices: HTMLElement;
  facts: HTMLElement;
  deadline: HTMLElement;
}

export class ReviewView {
  /** Bumped on every open/close so answers for a page that is gone are dropped. */
  private generation = 0;
  private escalation: Escalation | undefined;
  private controls: Controls | undefined;
  /** True from the moment this page sends a decision: its own event is not a conflict. */
  private deciding = false;
  /** A call is running: further clicks wait for its answer. */
  private busy = false;
  /** Whether the escalation was still open when the page loaded: "someone else got here first". */
  private pendingWhenOpened = true;
  private cleanups: (() => void)[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly session: Session,
    private readonly feed: QueueFeed,
  ) {}

  open(escalationId: string): void {
    this.close();
    const generation = ++this.generation;
    fill(
      this.root,
      h("h1", { tabindex: "-1" }, "Review"),
      h("p", { class: "back" }, h("a", { href: "#/queue" }, "Back to my queue")),
      h("p", { role: "status" }, `Loading ${escalationId}…`),
    );
    void this.load(escalationId, generation);
  }

  close(): void {
    this.generation++;
    for (const c of this.cleanups) c();
    this.cleanups = [];
    this.escalation = undefined;
    this.controls = undefined;
    this.deciding = false;
    this.busy = false;
  }

  /** Replaces the page; if focus was inside it, puts focus on the new heading instead of losing it. */
  private replacePage(...children: HTMLElement[]): void {
    const hadFocus = this.root.contains(document.activeElement);
    fill(this.root, ...children);
    if (hadFocus) this.root.querySelector<HTMLElement>("h1")?.focus();
  }

  private current(generation: number): boolean {
    return generation === this.generation;
  }

  private async load(escalationId: string, generation: number): Promise<void> {
    const { escalation, desk } = this.session;
    let e: Escalation;
    try {
      e = await escalation.getEscalation({ escalationId });
    } catch (err) {
      if (!this.current(generation)) return;
      this.replacePage(
        h("h1", { tabindex: "-1" }, "Review"),
        h("p", { class: "back" }, h("a", { href: "#/queue" }, "Back to my queue")),
        h("p", { role: "alert", class: "error" }, errorMessage(err)),
      );
      return;
    }
    if (!this.current(generation)) return;
    this.escalation = e;
    this.render(e, generation);

    // The reviewers to hand over to come from the stats; the page works without them.
    void escalation.getEscalationStats({}).then(
      (stats) => {
        if (!this.current(generation) || this.controls === undefined) return;
        fill(
          this.controls.reviewerIds,
          ...stats.reviewers.map((r) => h("option", { value: r.reviewerId }, r.name || r.reviewerId)),
        );
      },
      () => undefined,
    );

    const ticketSection = this.root.querySelector<HTMLElement>("#ticket");
    try {
      const ticket = await desk.getTicket({ ticketId: e.ticketId });
      if (!this.current(generation) || ticketSection === null) return;
      renderTicket(ticketSection, ticket);
    } catch (err) {
      if (!this.current(generation) || ticketSection === null) return;
      renderTicketUnavailable(ticketSection, err);
    }
  }

  private render(e: Escalation, generation: number): void {
    const pending = e.state === EscalationState.PENDING;
    this.pendingWhenOpened = pending;
    const response = h("textarea", { id: "response", name: "response", rows: "8" });
    response.value = e.proposedResponse;
    const comments = h("input", { id: "comments", name: "comments", type: "text", autocomplete: "off" });
    const reason = h("textarea", {
      id: "reason",
      name: "reason",
      rows: "3",
      "aria-describedby": "reject-error",
    });
    const reviewerIds = h("datalist", { id: "reviewer-ids" });
    const handover = h("input", {
      id: "handover",
      name: "handover",
      type: "text",
      list: "reviewer-ids",
      autocomplete: "off",
      "aria-describedby": "handover-error",
    });
    const approve = h("button", { type: "submit", class: "primary" }, "Approve");
    const reject = h("button", { type: "submit", class: "danger" }, "Reject");
    const handOver = h("button", { type: "submit" }, "Hand over");
    const rejectError = h("p", { id: "reject-error", role: "alert", class: "error" });
    const handoverError = h("p", { id: "handover-error", role: "alert", class: "error" });
    const status = h("p", { id: "review-status", role: "status" });
    const next = h("p", { id: "review-next", hidden: true }, h("a", { href: "#/queue" }, "Back to my queue"));
    const error = h("p", { id: "review-error", role: "alert", class: "error" });
    const notices = h("div", { id: "review-notices" });
    const deadline = h("span", { class: "deadline" });
    const facts = h("dl", { class: "facts" });

    const approveForm = h(
      "form",
      { id: "approve-form", class: "decide", novalidate: true },
      h("h3", null, "Approve"),
      field("Answer to the customer", response),
      field("Comments", comments),
      h("div", { class: "actions" }, approve),
    );
    const rejectForm = h(
      "form",
      { id: "reject-form", class: "decide", novalidate: true },
      h("h3", null, "Reject"),
      field("Reason for rejecting", reason),
      rejectError,
      h("div", { class: "actions" }, reject),
    );
    const handoverForm = h(
      "form",
      { id: "handover-form", class: "decide", novalidate: true },
      h("h3", null, "Hand over"),
      field("Hand over to reviewer", handover),
      reviewerIds,
      handoverError,
      h("div", { class: "actions" }, handOver),
    );

    this.replacePage(
      h("h1", { tabindex: "-1" }, e.title || "Review"),
      h("p", { class: "back" }, h("a", { href: "#/queue" }, "Back to my queue")),
      notices,
      facts,
      h(
        "section",
        { class: "panel", "aria-labelledby": "why-heading" },
        h("h2", { id: "why-heading" }, "Why review was requested"),
        h("p", { class: "description" }, e.description || "No description."),
      ),
      h("section", { class: "panel", id: "ticket" }, h("h2", null, "Ticket"), h("p", { class: "muted" }, "Loading the ticket…")),
      h(
        "section",
        { class: "panel", "aria-labelledby": "decide-heading" },
        h("h2", { id: "decide-heading" }, "Decision"),
        status,
        next,
        error,
        h("div", { class: "decide-grid" }, approveForm, rejectForm, handoverForm),
      ),
    );

    this.controls = {
      response,
      comments,
      reason,
      handover,
      reviewerIds,
      approve,
      reject,
      handOver,
      rejectError,
      handoverError,
      status,
      next,
      error,
      notices,
      facts,
      deadline,
    };
    this.renderFacts(e);
    if (!pending) {
      notices.append(h("p", { class: "notice decided", role: "status" }, decisionSentence(e), this.resolutionLine(e)));
    }

    approveForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.approve(generation);
    });
    rejectForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.reject(generation);
    });
    handoverForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      void this.handOver(generation);
    });
    reason.addEventListener("input", () => {
      if (reason.value.trim() !== "") {
        rejectError.textContent = "";
        reason.removeAttribute("aria-invalid");
      }
    });

    this.cleanups.push(
      everySecond((now) => {
        deadline.textContent = reviewDeadlineText(this.escalation, now);
      }),
      this.feed.subscribe({ event: (ev) => this.onFeedEvent(ev) }),
    );
  }

  private renderFacts(e: Escalation): void {
    const c = this.controls;
    if (c === undefined) return;
    const priority = priorityName(e.priority);
    c.deadline.textContent = reviewDeadlineText(e, Date.now());
    const fact = (label: string, value: Node | string, cls?: string): HTMLElement[] => [
      h("dt", null, label),
      h("dd", cls ? { class: cls } : null, value),
    ];
    fill(
      c.facts,
      ...fact("Priority", h("span", { class: "badge", "data-priority": priority }, PRIORITY_LABEL[priority])),
      ...fact("State", escalationStateText(e.state), "state"),
      ...fact("Deadline", c.deadline),
      ...fact("Requested by", e.requestedBy || "–", "requested-by"),
      ...fact("Assigned to", e.assignedReviewerId || "unassigned", "reviewer"),
      ...fact("Customer", e.customerId, "customer"),
      ...fact("Topic", e.topic || "none", "topic"),
      ...fact("Escalation", e.escalationId, "escalation-id"),
      ...fact("Created", formatTime(e.createTime)),
    );
  }

  private resolutionLine(e: Escalation): HTMLElement | null {
    if (e.resolution === "") return null;
    return h("span", { class: "resolution" }, " The customer was told: ", h("q", null, e.resolution));
  }

  private onFeedEvent(ev: EscalationEvent): void {
    const e = ev.escalation;
    const current = this.escalation;
    if (e === undefined || current === undefined || e.escalationId !== current.escalationId) return;
    this.escalation = e;
    this.renderFacts(e);
    if (e.state !== EscalationState.PENDING && current.state === EscalationState.PENDING && !this.deciding) {
      this.showConflict(e);
    }
  }

  /**
   * Someone else (or the clock) decided it: say who and how, keep every typed word. `focus`
   * when it answers the reviewer's own click; never when it interrupts their typing.
   */
  private showConflict(e: Escalation, focus = false): void {
    const c = this.controls;
    if (c === undefined) return;
    this.escalation = e;
    this.renderFacts(e);
    const existing = c.notices.querySelector(".conflict");
    const byMe = e.decidedBy !== "" && e.decidedBy === this.session.clientId;
    const lead =
      e.state === EscalationState.EXPIRED
        ? "Too late. "
        : byMe || !this.pendingWhenOpened
          ? "Already decided. "
          : "Someone else got here first. ";
    const notice = h(
      "div",
      { class: "conflict", role: "alert", tabindex: "-1" },
      h("p", null, h("strong", null, lead), decisionSentence(e)),
      h(
        "p",
        null,
        `State: ${escalationStateText(e.state)}. Decided by: ${e.decidedBy || "nobody (the deadline passed)"}.`,
        this.resolutionLine(e),
      ),
      h("p", null, "Your answer and reason are still below, so nothing you typed is lost."),
    );
    if (existing) existing.replaceWith(notice);
    else c.notices.append(notice);
    if (focus) notice.focus();
  }

  /**
   * Marks the actions busy while a call runs. aria-disabled rather than `disabled`: disabling
   * the focused button would throw keyboard focus back to the top of the page.
   */
  private setBusy(busy: boolean): void {
    this.busy = busy;
    const c = this.controls;
    if (c === undefined) return;
    for (const b of [c.approve, c.reject, c.handOver]) {
      if (busy) b.setAttribute("aria-disabled", "true");
      else b.removeAttribute("aria-disabled");
    }
  }

  private clearMessages(): void {
    const c = this.controls;
    if (c === undefined) return;
    c.status.textContent = "";
    c.error.textContent = "";
    c.rejectError.textContent = "";
    c.handoverError.textContent = "";
  }

  private async approve(generation: number): Promise<void> {
    const c = this.controls;
    const e = this.escalation;
    if (c === undefined || e === undefined) return;
    this.clearMessages();
    const edited = normalizeNewlines(c.response.value);
    const draft = normalizeNewlines(e.proposedResponse);
    if (edited.trim() === "" && draft.trim() !== "") {
      c.error.textContent = "The answer to the customer is empty: write one, or reload the page to restore the agent's draft.";
      c.response.focus();
      return;
    }
    await this.decide(generation, "Approved.", () =>
      this.session.escalation.approveEscalation({
        escalationId: e.escalationId,
        comments: c.comments.value,
        // Empty means "send the agent's draft": only an edited answer replaces it.
        response: edited === draft ? "" : edited,
      }),
    );
  }

  private async reject(generation: number): Promise<void> {
    const c = this.controls;
    const e = this.escalation;
    if (c === undefined || e === undefined) return;
    this.clearMessages();
    const reason = c.reason.value;
    if (reason.trim() === "") {
      c.rejectError.textContent = REASON_REQUIRED;
      c.reason.setAttribute("aria-invalid", "true");
      c.reason.focus();
      return;
    }
    await this.decide(generation, "Rejected.", () =>
      this.session.escalation.rejectEscalation({ escalationId: e.escalationId, reason }),
    );
  }

  private async handOver(generation: number): Promise<void> {
    const c = this.controls;
    const e = this.escalation;
    if (c === undefined || e === undefined) return;
    this.clearMessages();
    const reviewerId = c.handover.value.trim();
    if (reviewerId === "") {
      c.handoverError.textContent = "Choose the reviewer to hand over to.";
      c.handover.focus();
      return;
    }
    await this.decide(
      generation,
      `Handed over to ${reviewerId}.`,
      () => this.session.escalation.assignEscalation({ escalationId: e.escalationId, reviewerId }),
      false,
    );
  }

  /**
   * Sends one action. `final` actions (approve, reject) end the review: a FAILED_PRECONDITION
   * then means someone decided first, so the page refetches and shows that decision.
   */
  private async decide(
    generation: number,
    success: string,
    call: () => Promise<Escalation>,
    final = true,
  ): Promise<void> {
    const c = this.controls;
    const e = this.escalation;
    if (c === undefined || e === undefined || this.busy) return;
    if (e.state !== EscalationState.PENDING) {
      // Decided already (the live feed said so, or this page did): no call can change that.
      // The buttons stay enabled on purpose, so a click always answers with who decided.
      this.showConflict(e, true);
      return;
    }
    this.setBusy(true);
    if (final) this.deciding = true;
    try {
      const updated = await call();
      if (!this.current(generation)) return;
      this.escalation = updated;
      this.renderFacts(updated);
      this.setBusy(false);
      c.status.textContent = success;
      c.next.hidden = false;
      // The review is done: offer keyboard users the next step.
      c.next.querySelector("a")?.focus();
      const timer = setTimeout(() => {
        if (this.current(generation)) location.hash = "#/queue";
      }, BACK_TO_QUEUE_MS);
      this.cleanups.push(() => clearTimeout(timer));
    } catch (err) {
      if (!this.current(generation)) return;
      this.deciding = false;
      if (hasCode(err, Code.FailedPrecondition)) {
        const fresh = await this.session.escalation.getEscalation({ escalationId: e.escalationId }).catch(() => undefined);
        if (!this.current(generation)) return;
        if (fresh !== undefined && fresh.state !== EscalationState.PENDING) {
          this.setBusy(false);
          this.showConflict(fresh, true);
          return;
        }
        if (fresh !== undefined) {
          this.escalation = fresh;
          this.renderFacts(fresh);
        }
      }
      // The live feed may have reported a decision while this call was failing for other reasons.
      const now = this.escalation;
      this.setBusy(false);
      if (now !== undefined && now.state !== EscalationState.PENDING) {
        this.showConflict(now, true);
        return;
      }
      // Still pending (e.g. the target reviewer is full) or another error: the server's words.
      c.error.textContent = errorMessage(err);
    }
  }
}
