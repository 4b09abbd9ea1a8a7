// The ticket behind a review: what the customer asked, its context and the steps each tier's
// agent took (outcome, confidence and the one-line detail: the escalation reason or the policy
// rules that matched). Read with DeskService.GetTicket, which needs `customer_service`.

import { Code } from "@connectrpc/connect";

import type { Ticket } from "../../clients/typescript/src/gen/servicedesk/v1/types_pb.js";
import { fill, h } from "./dom.js";
import { formatTime, pathOutcomeText, ticketStatusText } from "./format.js";
import { errorMessage, hasCode } from "./session.js";

export const TICKET_NEEDS_PERMISSION = "The ticket's path needs a key with the customer_service permission.";
export const TICKET_OF_ANOTHER_CLIENT =
  "This key cannot read the ticket: tickets are visible to the client that created them and to admin keys.";

export function renderTicket(section: HTMLElement, t: Ticket): void {
  const context = Object.entries(t.context).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  fill(
    section,
    h("h2", null, "Ticket"),
    h(
      "dl",
      { class: "facts" },
      h("dt", null, "Ticket"),
      h("dd", null, t.ticketId),
      h("dt", null, "Customer"),
      h("dd", null, t.customerId),
      h("dt", null, "Topic"),
      h("dd", null, t.topic || "none"),
      h("dt", null, "Status"),
      h("dd", { class: "ticket-status" }, ticketStatusText(t.status)),
      h("dt", null, "Priority"),
      h("dd", null, `${t.priority} of 10`),
      context.length > 0 ? h("dt", null, "Context") : null,
      context.length > 0 ? h("dd", null, context.map(([k, v]) => `${k}=${v}`).join(", ")) : null,
      t.policyRules.length > 0 ? h("dt", null, "Policy rules") : null,
      t.policyRules.length > 0 ? h("dd", null, t.policyRules.join(", ")) : null,
    ),
    h("h3", null, "Inquiry"),
    h("p", { class: "inquiry" }, t.inquiry),
    h("h3", null, "Path through the tiers"),
    t.resolutionPath.length === 0
      ? h("p", { class: "muted" }, "No agent step yet.")
      : h(
          "ol",
          { class: "path" },
          ...t.resolutionPath.map((step) =>
            h(
              "li",
              null,
              h("strong", null, step.agentName || step.agentId),
              ` (${step.tier}): ${pathOutcomeText(step.outcome)}`,
              step.confidence > 0 ? `, confidence ${Math.round(step.confidence * 100)}%` : "",
              h("span", { class: "muted" }, ` · ${formatTime(step.time)}`),
              step.detail ? h("p", { class: "step-detail" }, step.detail) : null,
            ),
          ),
        ),
  );
}

/**
 * In place of the ticket: why it cannot be shown. A reviewer's key often lacks
 * `customer_service`, and one that has it still reads only its own client's tickets (the server
 * answers NOT_FOUND for the others, so as not to reveal that they exist).
 */
export function renderTicketUnavailable(section: HTMLElement, err: unknown): void {
  const message = hasCode(err, Code.PermissionDenied)
    ? TICKET_NEEDS_PERMISSION
    : hasCode(err, Code.NotFound)
      ? TICKET_OF_ANOTHER_CLIENT
      : errorMessage(err);
  fill(section, h("h2", null, "Ticket"), h("p", { class: "notice", id: "ticket-unavailable" }, message));
}
