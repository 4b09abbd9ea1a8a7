// `npm run quickstart` against a real server: the password question is answered by a
// first-tier (L1) agent without escalation.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { DEV_KEY, runExample, startServer } from "./helpers.js";
import type { Server } from "./helpers.js";

describe("quickstart", () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  test("a password reset is answered by an L1 agent", async () => {
    const run = runExample("quickstart", [], { SERVICEDESK_TARGET: server.target, SERVICEDESK_API_KEY: DEV_KEY });
    const { code, stdout, stderr } = await run.done();
    assert.equal(code, 0, `quickstart failed:\n${stdout}\n${stderr}`);
    assert.match(stdout, /^Inquiry: +How do I reset my password\?$/m);
    assert.match(stdout, /^Ticket: +tkt_\S+ \(RESOLVED, topic account\)$/m);
    assert.match(stdout, /^Agent: +L1_Agent_\d+ \(tier L1\)$/m);
    assert.match(stdout, /^Escalated: +no$/m);
    assert.match(stdout, /^Answer: +.*password/im);
  });

  test("a target without scheme (host:port) works", async () => {
    const hostPort = server.target.replace(/^http:\/\//, "");
    const run = runExample("quickstart", [], { SERVICEDESK_TARGET: hostPort, SERVICEDESK_API_KEY: DEV_KEY });
    const { code, stdout, stderr } = await run.done();
    assert.equal(code, 0, `quickstart failed:\n${stdout}\n${stderr}`);
    assert.match(stdout, /^Agent: +L1_Agent_\d+ \(tier L1\)$/m);
  });

  test("without SERVICEDESK_API_KEY it fails with a clear message", async () => {
    const run = runExample("quickstart", [], { SERVICEDESK_TARGET: server.target });
    const { code, stderr } = await run.done();
    assert.equal(code, 1);
    assert.match(stderr, /SERVICEDESK_API_KEY is not set/);
  });

  test("an unknown key is reported as UNAUTHENTICATED", async () => {
    const run = runExample("quickstart", [], { SERVICEDESK_TARGET: server.target, SERVICEDESK_API_KEY: "nope" });
    const { code, stderr } = await run.done();
    assert.equal(code, 1);
    assert.match(stderr, /UNAUTHENTICATED/);
    assert.doesNotMatch(stderr, /nope/, "the key must not be echoed");
  });
});
