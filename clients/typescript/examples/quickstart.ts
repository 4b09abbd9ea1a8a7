// Quickstart: ask the desk one question and print who answered it.
//
//   SERVICEDESK_API_KEY=test-key-123 npm run quickstart
//   SERVICEDESK_API_KEY=test-key-123 npm run quickstart -- "I was charged twice and need a refund"
//
// Env: SERVICEDESK_TARGET (default http://127.0.0.1:50051), SERVICEDESK_API_KEY (required).

import { createDesk, formatError } from "../src/client.js";
import { TicketStatus } from "../src/gen/servicedesk/v1/types_pb.js";

const DEFAULT_INQUIRY = "How do I reset my password?";

async function main(): Promise<number> {
  const inquiry = process.argv.slice(2).join(" ").trim() || DEFAULT_INQUIRY;
  const desk = createDesk();
  try {
    const res = await desk.desk.handleInquiry({ customerId: "cust_quickstart", inquiry });
    const ticket = res.ticket;
    const status = ticket ? TicketStatus[ticket.status] : "UNKNOWN";
    const millis = res.resolutionTime
      ? Number(res.resolutionTime.seconds) * 1000 + Math.round(res.resolutionTime.nanos / 1e6)
      : 0;
    console.log(`Inquiry:   ${inquiry}`);
    console.log(`Ticket:    ${ticket?.ticketId ?? "?"} (${status}, topic ${ticket?.topic || "?"})`);
    console.log(`Agent:     ${res.agent || "(none)"}${res.tier ? ` (tier ${res.tier})` : ""}`);
    console.log(
      `Escalated: ${res.escalated ? "yes" : "no"}` +
        (res.escalationId ? ` (human review ${res.escalationId} pending)` : ""),
    );
    console.log(`Time:      ${millis} ms`);
    console.log(`Answer:    ${res.response}`);
    return 0;
  } finally {
    desk.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`quickstart failed: ${formatError(err)}`);
    process.exitCode = 1;
  },
);
