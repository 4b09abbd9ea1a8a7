// A small helper around the generated servicedesk API: one gRPC transport (HTTP/2, h2c for
// http:// targets) that sends the API key on every call, and a client per service.
//
//   const desk = createDesk();                       // SERVICEDESK_TARGET, SERVICEDESK_API_KEY
//   const res = await desk.desk.handleInquiry({ customerId: "cust_1", inquiry: "..." });
//   desk.close();

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { AdminService } from "./gen/servicedesk/v1/admin_pb.js";
import { AgentService } from "./gen/servicedesk/v1/agent_pb.js";
import { DeskService } from "./gen/servicedesk/v1/desk_pb.js";
import { EscalationService } from "./gen/servicedesk/v1/escalation_pb.js";

/** Where the server listens when SERVICEDESK_TARGET is not set. */
export const DEFAULT_TARGET = "http://127.0.0.1:50051";

/** Options of createDesk(); each falls back to its environment variable. */
export interface DeskOptions {
  /** `http://host:port`, `https://host:port` or `host:port` (plaintext). Env: SERVICEDESK_TARGET. */
  target?: string;
  /** The API key sent as `x-api-key`. Env: SERVICEDESK_API_KEY. */
  apiKey?: string;
  /** Extra interceptors, run after the one that adds the API key. */
  interceptors?: Interceptor[];
}

/** Clients of the four services sharing one HTTP/2 connection. */
export interface Desk {
  /** DeskService: customers' side (needs `customer_service`). */
  desk: Client<typeof DeskService>;
  /** EscalationService: reviewers' side (needs `escalation`). */
  escalation: Client<typeof EscalationService>;
  /** AdminService: operators (needs `admin`). */
  admin: Client<typeof AdminService>;
  /** AgentService: remote agents (needs `agent`). */
  agent: Client<typeof AgentService>;
  /** The transport, to create further clients with createClient(). */
  transport: Transport;
  /** The base URL calls go to, e.g. `http://127.0.0.1:50051`. */
  target: string;
  /** Closes the HTTP/2 connection, ending any open stream. */
  close(): void;
}

/** A configuration problem found before any call was made (missing key, bad target). */
export class DeskConfigError extends Error {
  override name = "DeskConfigError";
}

/**
 * Turns SERVICEDESK_TARGET into a base URL: `host:port` means plaintext `http://host:port`;
 * an explicit `http://` or `https://` is kept. Any path is dropped.
 */
export function normalizeTarget(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed === "") {
    throw new DeskConfigError("SERVICEDESK_TARGET is empty: set it to host:port or http://host:port");
  }
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new DeskConfigError(`SERVICEDESK_TARGET "${raw}" is not host:port or http://host:port`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new DeskConfigError(`SERVICEDESK_TARGET "${raw}" must use http:// (h2c) or https:// (TLS)`);
  }
  if (url.hostname === "") {
    throw new DeskConfigError(`SERVICEDESK_TARGET "${raw}" has no host`);
  }
  return url.origin;
}

/** An interceptor that sends `x-api-key: KEY` with every call, unary and streaming alike. */
export function apiKeyInterceptor(apiKey: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("x-api-key", apiKey);
    return await next(req);
  };
}

/**
 * Connects to the desk. The target comes from `options.target`, else SERVICEDESK_TARGET, else
 * http://127.0.0.1:50051; the key from `options.apiKey`, else SERVICEDESK_API_KEY (required).
 * Nothing is sent until the first call.
 */
export function createDesk(options: DeskOptions = {}): Desk {
  const target = normalizeTarget(options.target ?? process.env.SERVICEDESK_TARGET ?? DEFAULT_TARGET);
  const apiKey = (options.apiKey ?? process.env.SERVICEDESK_API_KEY ?? "").trim();
  if (apiKey === "") {
    throw new DeskConfigError(
      "SERVICEDESK_API_KEY is not set: export the API key to call the desk with " +
        "(with `servicedesk serve --dev`: test-key-123, or admin-key-456 for AdminService)",
    );
  }
  // One HTTP/2 connection for all four clients. Idle connections do not keep the process
  // alive; PINGs detect a dead connection under a long-lived watch stream.
  const sessionManager = new Http2SessionManager(target, {
    pingIntervalMs: 30_000,
    pingTimeoutMs: 10_000,
  });
  // connect-node v2's gRPC transport always speaks HTTP/2 (httpVersion "2"): h2c with prior
  // knowledge for http://, TLS with ALPN h2 for https://.
  const transport = createGrpcTransport({
    baseUrl: target,
    sessionManager,
    interceptors: [apiKeyInterceptor(apiKey), ...(options.interceptors ?? [])],
  });
  return {
    desk: createClient(DeskService, transport),
    escalation: createClient(EscalationService, transport),
    admin: createClient(AdminService, transport),
    agent: createClient(AgentService, transport),
    transport,
    target,
    close: () => sessionManager.abort(),
  };
}

/** One invalid field named by a google.rpc.BadRequest error detail. */
export interface FieldViolation {
  field: string;
  description: string;
}

/** The BadRequest field violations attached to an error (empty when there are none). */
export function fieldViolations(err: unknown): FieldViolation[] {
  const ce = ConnectError.from(err);
  return ce
    .findDetails(BadRequestSchema)
    .flatMap((br) => br.fieldViolations.map(({ field, description }) => ({ field, description })));
}

/** `Code.InvalidArgument` as gRPC spells it: `INVALID_ARGUMENT`. */
export function grpcCodeName(code: Code): string {
  const name = Code[code] as string | undefined;
  return name === undefined ? `CODE_${code}` : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/**
 * Formats an error for a person: the gRPC code and message, then each invalid field of a
 * BadRequest detail and the reason of an ErrorInfo detail, one per line.
 *
 *   INVALID_ARGUMENT: the request has invalid fields
 *     customer_id: customer_id is required.
 */
export function formatError(err: unknown): string {
  if (err instanceof DeskConfigError) {
    return err.message;
  }
  const ce = ConnectError.from(err);
  const lines = [`${grpcCodeName(ce.code)}: ${ce.rawMessage}`];
  for (const v of fieldViolations(ce)) {
    lines.push(`  ${v.field}: ${v.description}`);
  }
  for (const info of ce.findDetails(ErrorInfoSchema)) {
    const meta = Object.entries(info.metadata)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join(", ");
    lines.push(`  reason: ${info.reason}${info.domain ? ` (${info.domain})` : ""}${meta ? ` {${meta}}` : ""}`);
  }
  return lines.join("\n");
}

/** True when `err` is a ConnectError with this code. */
export function hasCode(err: unknown, code: Code): boolean {
  return err instanceof ConnectError && err.code === code;
}

export { Code, ConnectError };
