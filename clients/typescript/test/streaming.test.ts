// Server streams through the API-key interceptor: WatchTicket replays a ticket's events and
// ends after its final one; WatchEvents follows live events until cancelled.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { Code, ConnectError, createDesk } from "../src/client.js";
import type { Desk } from "../src/client.js";
import { DeskEventKind, TicketEventType, TicketStatus } from "../src/gen/servicedesk/v1/types_pb.js";
import { DeskService } from "../src/gen/servicedesk/v1/desk_pb.js";
import { ADMIN_KEY, DEV_KEY, startServer } from "./helpers.js";
import type { Server } from "./helpers.js";

describe("streaming", () => {
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

  test("WatchTicket replays a resolved ticket's events in order and ends", async () => {
    const res = await desk.desk.handleInquiry({ customerId: "cust_stream", inquiry: "How do I reset my password?" });
    const ticketId = res.ticket?.ticketId ?? "";
    assert.match(ticketId, /^tkt_/);

    const events = [];
    for await (const ev of desk.desk.watchTicket({ ticketId, afterSequence: 0n }, { timeoutMs: 15_000 })) {
      events.push(ev);
    }
    assert.ok(events.length >= 3, `events: ${events.map((e) => TicketEventType[e.type]).join(", ")}`);
    assert.equal(events[0]?.type, TicketEventType.CREATED);
    assert.equal(events.at(-1)?.type, TicketEventType.RESOLVED);
    assert.equal(events.at(-1)?.ticket?.status, TicketStatus.RESOLVED);
    for (const [i, ev] of events.entries()) {
      assert.equal(ev.ticketId, ticketId);
      if (i > 0) assert.ok(ev.sequence > (events[i - 1]?.sequence ?? 0n), "sequences strictly increase");
    }
  });

  test("the same stream without the interceptor's key is UNAUTHENTICATED", async () => {
    const bare = createClient(DeskService, createGrpcTransport({ baseUrl: server.target }));
    await assert.rejects(
      async () => {
        for await (const _ of bare.watchTicket({ ticketId: "tkt_x", afterSequence: 0n })) {
          // nothing expected
        }
      },
      (err: unknown) => err instanceof ConnectError && err.code === Code.Unauthenticated,
    );
  });

  test("WatchEvents delivers live events and stops when cancelled", async () => {
    const admin = createDesk({ target: server.target, apiKey: ADMIN_KEY });
    try {
      const status = await admin.admin.getDeskStatus({});
      const abort = new AbortController();
      const stream = admin.admin.watchEvents(
        { afterSequence: status.sequence, kinds: [DeskEventKind.TICKET] },
        { signal: abort.signal },
      );
      const res = await desk.desk.handleInquiry({ customerId: "cust_live", inquiry: "How do I reset my password?" });
      const seen: TicketEventType[] = [];
      await assert.rejects(
        async () => {
          for await (const ev of stream) {
            assert.ok(ev.sequence > status.sequence);
            assert.equal(ev.event.case, "ticket");
            if (ev.event.case === "ticket" && ev.event.value.ticketId === res.ticket?.ticketId) {
              seen.push(ev.event.value.type);
              if (ev.event.value.type === TicketEventType.RESOLVED) abort.abort();
            }
          }
        },
        (err: unknown) => err instanceof ConnectError && err.code === Code.Canceled,
      );
      assert.equal(seen[0], TicketEventType.CREATED);
      assert.equal(seen.at(-1), TicketEventType.RESOLVED);
    } finally {
      admin.close();
    }
  });
});
