// Who is signed in and how calls reach the server: the API key (kept in sessionStorage only, so
// it never lands in a URL, a cookie or another tab's storage), the gRPC-Web transport that sends
// it with every call, the key's identity, and the clients of the three services the console uses.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import type { Client, Interceptor, StreamResponse } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { AdminService } from "../../clients/typescript/src/gen/servicedesk/v1/admin_pb.js";
import { DeskService } from "../../clients/typescript/src/gen/servicedesk/v1/desk_pb.js";
import { EscalationService } from "../../clients/typescript/src/gen/servicedesk/v1/escalation_pb.js";

/** The sessionStorage entry holding the key. */
const KEY_STORAGE = "servicedesk.apiKey";
/** The response header in which the server names the key's client id (the reviewer id). */
export const CLIENT_ID_HEADER = "servicedesk-client-id";

export const REFUSED_KEY_MESSAGE = "That key was refused (unknown or revoked).";
export const NO_ESCALATION_MESSAGE =
  "That key may not use the review queue: the console needs a key with the escalation permission.";

export interface Session {
  readonly key: string;
  /** The key's client id: the reviewer the console decides as. Empty if the server did not say. */
  readonly clientId: string;
  /** Whether the key holds `admin` (GetDeskStatus answered). */
  readonly isAdmin: boolean;
  readonly escalation: Client<typeof EscalationService>;
  readonly admin: Client<typeof AdminService>;
  readonly desk: Client<typeof DeskService>;
}

/** Why signing in did not work, in words for the sign-in form. */
export class SignInError extends Error {
  override name = "SignInError";
}

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null; // storage disabled: the key simply is not remembered across reloads
  }
}

function storeKey(key: string): void {
  try {
    sessionStorage.setItem(KEY_STORAGE, key);
  } catch {
    // Signing in still works for this page; only a reload will ask again.
  }
}

export function forgetKey(): void {
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Nothing stored, nothing to clear.
  }
}

/** The server's own sentence for a failed call, or the transport's for a network failure. */
export function errorMessage(err: unknown): string {
  const e = ConnectError.from(err);
  return e.rawMessage || `The call failed (${Code[e.code] ?? e.code}).`;
}

export function hasCode(err: unknown, code: Code): boolean {
  return err instanceof ConnectError && err.code === code;
}

function apiKeyInterceptor(key: string): Interceptor {
  return (next) => async (req) => {
    req.header.set("x-api-key", key);
    return await next(req);
  };
}

/**
 * Reports UNAUTHENTICATED from any call, unary or streaming, so a key revoked while the console
 * is open signs it out wherever the refusal shows up first. The calls still see their error.
 */
function refusedKeyInterceptor(onRefused: () => void): Interceptor {
  const check = (err: unknown): void => {
    if (hasCode(err, Code.Unauthenticated)) onRefused();
  };
  async function* watched<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* messages;
    } catch (err) {
      check(err);
      throw err;
    }
  }
  return (next) => async (req) => {
    try {
      const res = await next(req);
      if (!res.stream) return res;
      const stream: StreamResponse = { ...res, message: watched(res.message) };
      return stream;
    } catch (err) {
      check(err);
      throw err;
    }
  };
}

/**
 * Checks the key and learns who it is. The key is stored only once the server accepted it.
 * `onRefused` is called when a later call is refused (the key was revoked meanwhile).
 */
export async function signIn(rawKey: string, onRefused: () => void): Promise<Session> {
  const key = rawKey.trim();
  if (key === "") throw new SignInError("Enter an API key.");
  let signedIn = false;
  const transport = createGrpcWebTransport({
    baseUrl: location.origin,
    useBinaryFormat: true,
    interceptors: [
      apiKeyInterceptor(key),
      refusedKeyInterceptor(() => {
        // During sign-in the refusal is the sign-in's own answer, not a revocation.
        if (signedIn) onRefused();
      }),
    ],
  });
  const escalation = createClient(EscalationService, transport);
  const admin = createClient(AdminService, transport);
  const desk = createClient(DeskService, transport);

  let clientId = "";
  try {
    await escalation.getEscalationStats(
      {},
      { onHeader: (headers) => (clientId = headers.get(CLIENT_ID_HEADER) ?? "") },
    );
  } catch (err) {
    if (hasCode(err, Code.Unauthenticated)) {
      forgetKey();
      throw new SignInError(REFUSED_KEY_MESSAGE);
    }
    if (hasCode(err, Code.PermissionDenied)) {
      forgetKey();
      throw new SignInError(NO_ESCALATION_MESSAGE);
    }
    // The server may just be restarting: the key is not known to be bad, so keep it.
    throw new SignInError(`Could not sign in: ${errorMessage(err)}`);
  }

  let isAdmin = false;
  try {
    await admin.getDeskStatus({});
    isAdmin = true;
  } catch (err) {
    // PERMISSION_DENIED is the expected answer for a reviewer's key. Anything else leaves the
    // desk hidden too: better a missing tab than one that fails on every call.
    if (!hasCode(err, Code.PermissionDenied)) console.warn("admin check failed:", errorMessage(err));
  }

  storeKey(key);
  signedIn = true;
  return { key, clientId, isAdmin, escalation, admin, desk };
}
