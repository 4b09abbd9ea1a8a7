// "My queue": mirrors the QueueFeed into <ol id="queue">. Each event touches one row (created,
// updated, moved or removed next to its neighbour, found through a Map), never the whole list,
// so 1,000 rows and dozens of events a second stay cheap. One shared clock updates the
// countdowns' text. When the tab is hidden, new items are announced in the title and, if the
// reviewer allowed it, as browser notifications.

import type { Escalation } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import { everySecond, h } from "./dom.js";
import { deadlineText, timestampMs } from "./format.js";
import { PRIORITY_LABEL, priorityName } from "./queue.js";
import type { QueueChange } from "./queue.js";
import type { QueueFeed } from "./queue_feed.js";
import { reviewHash } from "./routes.js";
import type { LinkState } from "./stream.js";

export const BASE_TITLE = "servicedesk";

/** One <li> and the text nodes that change, so updates never re-create elements. */
interface Row {
  li: HTMLLIElement;
  badge: HTMLSpanElement;
  title: Text;
  customer: Text;
  topic: Text;
  reviewer: Text;
  deadline: Text;
  expireMs: number | undefined;
}

function setText(node: Text, value: string): void {
  if (node.data !== value) node.data = value;
}

export class QueueView {
  private readonly rows = new Map<string, Row>();
  private readonly list: HTMLOListElement;
  private readonly count: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly liveStatus: HTMLElement;
  private readonly problem: HTMLElement;
  private readonly notifyButton: HTMLButtonElement;
  private readonly notifyStatus: HTMLElement;
  private readonly cleanups: (() => void)[] = [];
  /** New items that arrived while the tab was hidden, shown as "(n)" in the title. */
  private unseen = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly feed: QueueFeed,
  ) {
    this.list = h("ol", { id: "queue", class: "queue" });
    this.count = h("span", { id: "queue-count" });
    this.empty = h(
      "p",
      { id: "queue-empty", class: "empty", hidden: true },
      "Nothing waits for your review right now. New escalations will show up here as they arrive.",
    );
    this.liveStatus = h("span", { id: "live-status", role: "status", "data-state": "connecting" }, "connecting");
    this.problem = h("p", { id: "queue-error", role: "alert", class: "error" });
    this.notifyButton = h("button", { type: "button", id: "notify", hidden: true }, "Notify me");
    this.notifyStatus = h("span", { id: "notify-status", class: "muted" });

    root.replaceChildren(
      h(
        "div",
        { class: "view-head" },
        h("h1", { tabindex: "-1" }, "My queue"),
        h("p", { class: "summary" }, this.count, " waiting for review"),
        h("p", { class: "link-state" }, "Updates: ", this.liveStatus),
        h("p", { class: "notify" }, this.notifyButton, " ", this.notifyStatus),
      ),
      this.problem,
      this.empty,
      this.list,
    );

    this.setupNotifications();
    this.cleanups.push(
      feed.subscribe({
        reset: () => this.renderAll(),
        change: (change) => this.applyChange(change),
        state: (state) => this.showState(state),
      }),
      everySecond((now) => this.tick(now)),
    );
    const onVisible = (): void => {
      if (!document.hidden) this.clearUnseen();
    };
    document.addEventListener("visibilitychange", onVisible);
    this.cleanups.push(() => document.removeEventListener("visibilitychange", onVisible));

    if (feed.loaded) this.renderAll();
    this.showState(feed.state);
  }

  destroy(): void {
    for (const c of this.cleanups) c();
    this.cleanups.length = 0;
    this.rows.clear();
    this.clearUnseen();
    this.root.replaceChildren();
  }

  private showState(state: LinkState): void {
    this.liveStatus.textContent = state === "failed" ? "disconnected" : state;
    this.liveStatus.dataset["state"] = state;
    const error = this.feed.error;
    this.problem.textContent =
      state === "failed" && error !== undefined ? `The live queue stopped: ${error.rawMessage}` : "";
  }

  /** Builds every row at once: on the first list and after a reload, never per event. */
  private renderAll(): void {
    this.rows.clear();
    const now = Date.now();
    const fragment = document.createDocumentFragment();
    for (const e of this.feed.queue.items()) {
      const row = this.createRow(e, now);
      this.rows.set(e.escalationId, row);
      fragment.append(row.li);
    }
    this.list.replaceChildren(fragment);
    this.updateCount();
  }

  private applyChange(change: QueueChange): void {
    switch (change.kind) {
      case "none":
        return;
      case "remove": {
        this.rows.get(change.id)?.li.remove();
        this.rows.delete(change.id);
        break;
      }
      case "insert":
      case "update": {
        const id = change.item.escalationId;
        let row = this.rows.get(id);
        if (row === undefined) {
          row = this.createRow(change.item, Date.now());
          this.rows.set(id, row);
        } else {
          this.updateRow(row, change.item, Date.now());
        }
        if (change.kind === "insert" || change.from !== change.index) {
          // The model is already sorted: the row goes right before its successor there.
          const next = this.feed.queue.items()[change.index + 1];
          const before = next === undefined ? null : (this.rows.get(next.escalationId)?.li ?? null);
          this.list.insertBefore(row.li, before);
        }
        if (change.kind === "insert") this.announce(change.item);
        break;
      }
    }
    this.updateCount();
  }

  private updateCount(): void {
    const size = this.feed.queue.size;
    this.count.textContent = String(size);
    this.empty.hidden = size !== 0;
  }

  private createRow(e: Escalation, now: number): Row {
    const title = document.createTextNode("");
    const customer = document.createTextNode("");
    const topic = document.createTextNode("");
    const reviewer = document.createTextNode("");
    const deadline = document.createTextNode("");
    const badge = h("span", { class: "badge" });
    const li = h(
      "li",
      { "data-escalation-id": e.escalationId },
      h(
        "a",
        { href: reviewHash(e.escalationId), class: "item" },
        h("span", { class: "item-top" }, badge, h("span", { class: "title" }, title)),
        h(
          "span",
          { class: "item-meta" },
          h("span", null, "Customer ", h("span", { class: "customer" }, customer)),
          h("span", null, "Topic ", h("span", { class: "topic" }, topic)),
          h("span", null, "Reviewer ", h("span", { class: "reviewer" }, reviewer)),
          h("span", null, "Deadline ", h("span", { class: "deadline" }, deadline)),
        ),
      ),
    );
    const row: Row = { li, badge, title, customer, topic, reviewer, deadline, expireMs: undefined };
    this.updateRow(row, e, now);
    return row;
  }

  private updateRow(row: Row, e: Escalation, now: number): void {
    const priority = priorityName(e.priority);
    if (row.badge.dataset["priority"] !== priority) {
      row.badge.dataset["priority"] = priority;
      row.badge.textContent = PRIORITY_LABEL[priority];
    }
    setText(row.title, e.title || "(no title)");
    setText(row.customer, e.customerId);
    setText(row.topic, e.topic || "none");
    setText(row.reviewer, e.assignedReviewerId || "unassigned");
    row.expireMs = timestampMs(e.expireTime);
    setText(row.deadline, deadlineText(row.expireMs, now));
  }

  private tick(now: number): void {
    for (const row of this.rows.values()) setText(row.deadline, deadlineText(row.expireMs, now));
  }

  private setupNotifications(): void {
    if (!("Notification" in window)) return;
    const refresh = (): void => {
      const permission = Notification.permission;
      this.notifyButton.hidden = permission !== "default";
      this.notifyStatus.textContent =
        permission === "granted"
          ? "Notifications are on for new items while this tab is hidden."
          : permission === "denied"
            ? "Notifications are blocked for this site."
            : "";
    };
    refresh();
    // Asking only from a click: browsers ignore (or penalise) permission prompts on load.
    this.notifyButton.addEventListener("click", () => {
      void Notification.requestPermission().then(refresh, refresh);
    });
  }

  private announce(e: Escalation): void {
    if (!document.hidden) return;
    this.unseen += 1;
    document.title = `(${this.unseen}) ${BASE_TITLE}`;
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification(`New ${priorityName(e.priority)} escalation`, {
        body: `${e.title}\nCustomer ${e.customerId} · ${e.topic || "no topic"}`,
        tag: e.escalationId,
      });
      n.onclick = () => {
        window.focus();
        location.hash = reviewHash(e.escalationId);
        n.close();
      };
    } catch {
      // Some browsers allow notifications only from a service worker; the title still counts.
    }
  }

  private clearUnseen(): void {
    this.unseen = 0;
    document.title = BASE_TITLE;
  }
}
