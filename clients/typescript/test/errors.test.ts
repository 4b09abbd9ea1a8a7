// Errors through the helper: INVALID_ARGUMENT with google.rpc.BadRequest field violations,
// authentication failures, and configuration mistakes caught before any call.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  Code,
  ConnectError,
  DeskConfigError,
  createDesk,
  fieldViolations,
  formatError,
  normalizeTarget,
} from "../src/client.js";
import type { Desk } from "../src/client.js";
import { DEV_KEY, startServer } from "./helpers.js";
import type { Server } from "./helpers.js";

async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

describe("errors", () => {
  let server: Server;
  let desk: Desk;
  before(async () => {
    server = await startServer();
    desk = createDesk({ target: server.target, apiKey: DEV_KEY });
  });
  after(async () => {
    desk?.close();
    await server?.stop();
  });

  test("an empty customer_id is INVALID_ARGUMENT naming customer_id in BadRequest", async () => {
    const err = await rejection(desk.desk.handleInquiry({ customerId: "", inquiry: "How do I reset my password?" }));
    assert.equal(err.code, Code.InvalidArgument);
    const violations = fieldViolations(err);
    assert.deepEqual(
      violations.map((v) => v.field),
      ["customer_id"],
    );
    assert.ok(violations[0]?.description, "the violation says why");
    const text = formatError(err);
    assert.match(text, /^INVALID_ARGUMENT: /);
    assert.match(text, /^ {2}customer_id: \S/m);
  });

  test("every invalid field is named", async () => {
    const err = await rejection(desk.desk.handleInquiry({ customerId: "", inquiry: "   ", priority: 11 }));
    assert.equal(err.code, Code.InvalidArgument);
    const fields = fieldViolations(err).map((v) => v.field);
    for (const f of ["customer_id", "inquiry", "priority"]) {
      assert.ok(fields.includes(f), `${f} in ${fields.join(", ")}`);
    }
  });

  test("an unknown escalation is NOT_FOUND without field violations", async () => {
    const err = await rejection(desk.escalation.getEscalation({ escalationId: "esc_missing" }));
    assert.equal(err.code, Code.NotFound);
    assert.deepEqual(fieldViolations(err), []);
    assert.match(formatError(err), /^NOT_FOUND: /);
  });

  test("an unknown key is UNAUTHENTICATED; a key without the permission is PERMISSION_DENIED", async () => {
    const stranger = createDesk({ target: server.target, apiKey: "not-a-key" });
    try {
      const err = await rejection(stranger.desk.getTicket({ ticketId: "tkt_x" }));
      assert.equal(err.code, Code.Unauthenticated);
    } finally {
      stranger.close();
    }
    const err = await rejection(desk.admin.getDeskStatus({}));
    assert.equal(err.code, Code.PermissionDenied);
    assert.match(formatError(err), /^PERMISSION_DENIED: /);
  });

  test("configuration mistakes are caught before any call", () => {
    assert.throws(() => createDesk({ target: server.target, apiKey: "" }), (e: unknown) => {
      assert.ok(e instanceof DeskConfigError);
      assert.match(e.message, /SERVICEDESK_API_KEY is not set/);
      assert.match(formatError(e), /SERVICEDESK_API_KEY/);
      return true;
    });
    assert.equal(normalizeTarget("127.0.0.1:50051"), "http://127.0.0.1:50051");
    assert.equal(normalizeTarget("localhost:9000"), "http://localhost:9000");
    assert.equal(normalizeTarget(" http://[::1]:50051/ "), "http://[::1]:50051");
    assert.equal(normalizeTarget("https://desk.example.com"), "https://desk.example.com");
    assert.throws(() => normalizeTarget(""), DeskConfigError);
    assert.throws(() => normalizeTarget("ftp://x:1"), DeskConfigError);
    assert.throws(() => normalizeTarget("http://"), DeskConfigError);
  });
});
