// Test helpers: the real servicedesk binary on a port of its own (restartable on the same port
// and data, as an operator restarts it), the TypeScript client for what the tests do over gRPC,
// and headless Chromium driven by playwright-core.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";

import { createDesk } from "../../clients/typescript/src/client.js";
import type { Desk } from "../../clients/typescript/src/client.js";

/** console/ */
export const CONSOLE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** Screenshots and other artefacts of the browser tests. */
export const ARTEFACTS = resolve(CONSOLE_ROOT, "../target/console-tests");

export const ADMIN_KEY = "admin-key-456";

function serverBinary(): string {
  const fromEnv = process.env.SERVICEDESK_BIN;
  const bin =
    fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : resolve(CONSOLE_ROOT, "../target/debug/servicedesk");
  if (!existsSync(bin)) {
    throw new Error(`servicedesk binary not found at ${bin}: run \`cargo build\` or set SERVICEDESK_BIN`);
  }
  return bin;
}

/** A free port on 127.0.0.1, to start (and restart) a server on. */
async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const probe = createServer();
    probe.once("error", rej);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address !== null ? res(address.port) : rej(new Error("no port"))));
    });
  });
}

export interface Server {
  /** `http://127.0.0.1:PORT`: the console's URL and the gRPC target alike. */
  url: string;
  log(): string;
  /** SIGTERM and wait; the data stays for `start()` again. */
  stop(): Promise<void>;
  /** Starts the binary again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  dispose(): Promise<void>;
}

/** `servicedesk serve --dev` on a port and data directory of its own. */
export async function startServer(): Promise<Server> {
  const bin = serverBinary();
  const dataDir = await mkdtemp(join(tmpdir(), "servicedesk-console-"));
  const port = await freePort();
  let log = "";
  let running: { stop(): Promise<void> } | undefined;
  const start = async () => {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (!k.startsWith("SERVICEDESK_") && !k.startsWith("OTEL_")) env[k] = v;
    }
    const child = spawn(bin, ["serve", "--dev", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
      env: { ...env, SERVICEDESK_LOG: "info", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    child.stdout.setEncoding("utf8").on("data", (d: string) => (log += d));
    // What this start logged: the log holds the earlier starts' lines too.
    const from = log.length;
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`servicedesk did not start within 30 s:\n${log}`)), 30_000);
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        log += d;
        if (log.slice(from).includes(`listening on 127.0.0.1:${port}`)) {
          clearTimeout(timer);
          res();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        rej(new Error(`servicedesk exited (${code ?? signal}) before listening:\n${log}`));
      });
    });
    running = {
      async stop() {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
          await exited;
          clearTimeout(timer);
        }
      },
    };
  };
  await start();
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      await running?.stop();
      running = undefined;
    },
    start,
    async dispose() {
      await running?.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A gRPC client of the server with `key`. */
export function grpc(server: Server, key: string): Desk {
  return createDesk({ target: server.url, apiKey: key });
}

/** A key for reviewer `reviewerId` (its client id), with what a reviewer's console needs. */
export async function reviewerKey(admin: Desk, reviewerId: string): Promise<string> {
  const created = await admin.admin.createApiKey({
    clientId: reviewerId,
    clientName: `console test ${reviewerId}`,
    permissions: ["escalation", "customer_service"],
  });
  return created.apiKey;
}

/** Headless Chromium: Debian's (or CHROMIUM_PATH). */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`no Chromium at ${executablePath}: install Debian's chromium package or set CHROMIUM_PATH`);
  }
  return chromium.launch({ executablePath, headless: true, args: ["--no-sandbox"] });
}

/** Signs in on a fresh page of its own (its own session storage) and waits for the queue. */
export async function signedIn(browser: Browser, server: Server, key: string, width = 1280): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 } });
  const page = await context.newPage();
  await page.goto(server.url);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#queue-view").waitFor();
  await page.locator("#live-status", { hasText: /^live$/ }).waitFor();
  return page;
}

/** Saves a screenshot among the artefacts. */
export async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`), fullPage: true });
}

/** A refund request of priority 8: policy sends it to human review. */
export const REFUND = "I was charged twice for my subscription this month and need a refund";

/** Asks for a refund as `customerId`; returns the review's id. */
export async function refundReview(desk: Desk, customerId: string): Promise<string> {
  const answer = await desk.desk.handleInquiry({ customerId, inquiry: REFUND, priority: 8 });
  if (answer.escalationId === "") {
    throw new Error(`a refund request went to no review: ${JSON.stringify(answer.ticket?.status)}`);
  }
  return answer.escalationId;
}
