// `npm run reviewer-console` against a real server, driven through stdin: it lists the
// reviewer's queue, watches it from the list's sequence, and decides reviews; the decisions
// are then checked through the API.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createDesk } from "../src/client.js";
import type { Desk } from "../src/client.js";
import { EscalationPriority, EscalationState, TicketStatus } from "../src/gen/servicedesk/v1/types_pb.js";
import { ADMIN_KEY, DEV_KEY, runExample, startServer } from "./helpers.js";
import type { Server } from "./helpers.js";

const REFUND = "I was charged twice for my subscription this month and need a refund";

describe("reviewer console", () => {
  let server: Server;
  let desk: Desk;
  let admin: Desk;
  let sarahKey: string;

  /** A refund request, which policy sends to supervisor_1 for review; returns the escalation id. */
  async function refundReview(customerId: string): Promise<string> {
    const res = await desk.desk.handleInquiry({ customerId, inquiry: REFUND, priority: 8 });
    assert.equal(res.escalated, true);
    assert.equal(res.ticket?.status, TicketStatus.AWAITING_REVIEW);
    assert.match(res.escalationId, /^esc_/);
    const esc = await desk.escalation.getEscalation({ escalationId: res.escalationId });
    assert.equal(esc.assignedReviewerId, "supervisor_1");
    assert.equal(esc.priority, EscalationPriority.HIGH);
    return res.escalationId;
  }

  before(async () => {
    server = await startServer();
    desk = createDesk({ target: server.target, apiKey: DEV_KEY });
    admin = createDesk({ target: server.target, apiKey: ADMIN_KEY });
    // Sarah's own key: its client id is her reviewer id, so her decisions are hers.
    const created = await admin.admin.createApiKey({
      clientId: "supervisor_1",
      clientName: "Sarah Johnson",
      permissions: ["escalation"],
    });
    sarahKey = created.apiKey;
  });
  after(async () => {
    desk?.close();
    admin?.close();
    await server?.stop();
  });

  test("--once prints the pending queue and exits", async () => {
    const id = await refundReview("cust_once");
    const run = runExample("reviewer-console", ["--once"], {
      SERVICEDESK_TARGET: server.target,
      SERVICEDESK_API_KEY: sarahKey,
    });
    const { code, stdout, stderr } = await run.done();
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /^queue of supervisor_1 at sequence \d+: \d+ pending$/m);
    assert.match(stdout, new RegExp(`^ +\\d+\\. ${id} HIGH billing customer cust_once`, "m"));
    assert.doesNotMatch(stdout, /watching/);
  });

  test("approves a pending refund review from stdin commands", async () => {
    const id = await refundReview("cust_approve");
    const response = "We refunded the duplicate charge; it shows within 5 business days.";
    const run = runExample("reviewer-console", ["--reviewer", "supervisor_1"], {
      SERVICEDESK_TARGET: server.target,
      SERVICEDESK_API_KEY: sarahKey,
    });
    run.child.stdin.end(`a ${id} ${response}\n`);
    const { code, stdout, stderr } = await run.done();
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, new RegExp(`\\. ${id} HIGH billing`), "the review is in the listed queue");
    assert.match(stdout, new RegExp(`^approved ${id} \\(APPROVED, decided by supervisor_1\\)`, "m"));
    assert.match(stdout, new RegExp(`^\\[\\d+\\] APPROVED ${id} `, "m"), "the watch shows the decision");
    assert.match(stdout, /^bye$/m);

    const esc = await desk.escalation.getEscalation({ escalationId: id });
    assert.equal(esc.state, EscalationState.APPROVED);
    assert.equal(esc.decidedBy, "supervisor_1");
    assert.equal(esc.resolution, response);
    const ticket = await desk.desk.getTicket({ ticketId: esc.ticketId });
    assert.equal(ticket.status, TicketStatus.RESOLVED);
    assert.equal(ticket.resolution, response);
  });

  test("watches from the list's sequence and decides a review that arrives later (admin --act-as)", async () => {
    const run = runExample("reviewer-console", ["--reviewer", "supervisor_1", "--act-as"], {
      SERVICEDESK_TARGET: server.target,
      SERVICEDESK_API_KEY: ADMIN_KEY,
    });
    await run.waitFor("watching supervisor_1's queue");
    const id = await refundReview("cust_live");
    await run.waitFor(new RegExp(`^\\[\\d+\\] (CREATED|ASSIGNED) ${id} HIGH billing -> supervisor_1`, "m"));
    run.child.stdin.write("r 1\n"); // no reason: refused locally
    run.child.stdin.write(`r ${id} We could not find a second charge on your statement.\n`);
    run.child.stdin.end("q\n");
    const { code, stdout, stderr } = await run.done();
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /^usage: r <id> <reason>/m);
    assert.match(stdout, new RegExp(`^rejected ${id} \\(REJECTED, decided by supervisor_1\\)`, "m"));

    const esc = await desk.escalation.getEscalation({ escalationId: id });
    assert.equal(esc.state, EscalationState.REJECTED);
    assert.equal(esc.decidedBy, "supervisor_1");
    const ticket = await desk.desk.getTicket({ ticketId: esc.ticketId });
    assert.equal(ticket.status, TicketStatus.REJECTED);
  });

  test("a failed decision is reported and the console carries on until end of input", async () => {
    const run = runExample("reviewer-console", [], {
      SERVICEDESK_TARGET: server.target,
      SERVICEDESK_API_KEY: sarahKey,
    });
    run.child.stdin.end("a esc_doesnotexist\nh\n");
    const { code, stdout, stderr } = await run.done();
    assert.equal(code, 0, `${stdout}\n${stderr}`);
    assert.match(stdout, /^approve esc_doesnotexist failed: NOT_FOUND: /m);
    assert.match(stdout, /^commands:$/m);
    assert.match(stdout, /^bye$/m);
  });

  test("an unknown option is a usage error", async () => {
    const run = runExample("reviewer-console", ["--bogus"], {
      SERVICEDESK_TARGET: server.target,
      SERVICEDESK_API_KEY: sarahKey,
    });
    const { code, stderr } = await run.done();
    assert.equal(code, 2);
    assert.match(stderr, /usage: reviewer-console/);
  });
});
