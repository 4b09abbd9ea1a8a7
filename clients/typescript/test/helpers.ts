// Test helpers: a real servicedesk server on a free port with its own data directory, and
// the examples run as child processes against it.

import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** clients/typescript */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const DEV_KEY = "test-key-123";
export const ADMIN_KEY = "admin-key-456";

/** The server binary: SERVICEDESK_BIN, else the repository's debug build. */
export function serverBinary(): string {
  const fromEnv = process.env.SERVICEDESK_BIN;
  const bin = fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : resolve(PACKAGE_ROOT, "../../target/debug/servicedesk");
  if (!existsSync(bin)) {
    throw new Error(
      `servicedesk binary not found at ${bin}: run \`cargo build\` in the repository root, ` +
        "or set SERVICEDESK_BIN to the path of a servicedesk binary",
    );
  }
  return bin;
}

/** The environment without any SERVICEDESK_* variable of the caller's shell. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith("SERVICEDESK_") && k !== "RUST_LOG") env[k] = v;
  }
  return env;
}

export interface Server {
  /** `http://127.0.0.1:PORT` */
  target: string;
  dataDir: string;
  /** What the server logged so far. */
  log(): string;
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the data directory. */
  stop(): Promise<void>;
}

// Log lines may carry ANSI colours when a terminal is attached.
// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

/** Starts `servicedesk serve --dev --listen 127.0.0.1:0` and waits until it accepts connections. */
export async function startServer(): Promise<Server> {
  const bin = serverBinary();
  const dataDir = await mkdtemp(join(tmpdir(), "servicedesk-ts-"));
  const child = spawn(bin, ["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    env: { ...cleanEnv(), SERVICEDESK_LOG: "info", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  child.stdout.setEncoding("utf8").on("data", (d: string) => (log += d));
  const address = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`servicedesk did not start within 30 s:\n${log}`)), 30_000);
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      log += d.replace(ANSI, "");
      const m = /listening on (\S+)/.exec(log);
      if (m?.[1] !== undefined) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      rej(new Error(`could not run ${bin}: ${err.message}`));
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`servicedesk exited (${code ?? signal}) before listening:\n${log}`));
    });
  });
  return {
    target: `http://${address}`,
    dataDir,
    log: () => log,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A running example: its output so far, stdin, and its end. */
export interface Example {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout contains `text` (or matches it); rejects after `timeoutMs`. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** Exit code and all output, once the process has exited (killed after `timeoutMs`). */
  done(timeoutMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Runs examples/NAME.ts with tsx, with only the given SERVICEDESK_* variables set. */
export function runExample(name: string, args: string[], env: Record<string, string>): Example {
  const child = spawn(process.execPath, ["--import", "tsx", join("examples", `${name}.ts`), ...args], {
    cwd: PACKAGE_ROOT,
    env: { ...cleanEnv(), ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    out += d;
    for (const l of listeners) l();
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
  const exit = new Promise<number | null>((res) => child.once("close", (code) => res(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor(text, timeoutMs = 15_000) {
      const matches = () => (typeof text === "string" ? out.includes(text) : text.test(out));
      return new Promise<void>((res, rej) => {
        if (matches()) return res();
        const check = () => {
          if (matches()) finish(undefined);
        };
        const finish = (e: Error | undefined) => {
          clearTimeout(timer);
          listeners.delete(check);
          if (e) {
            rej(e);
          } else {
            res();
          }
        };
        const timer = setTimeout(
          () => finish(new Error(`no ${String(text)} in output within ${timeoutMs} ms:\n${out}\n${err}`)),
          timeoutMs,
        );
        listeners.add(check);
        void exit.then(() => {
          if (!matches()) finish(new Error(`exited without ${String(text)} in output:\n${out}\n${err}`));
        });
      });
    },
    async done(timeoutMs = 30_000) {
      const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const code = await exit;
      clearTimeout(timer);
      return { code, stdout: out, stderr: err };
    },
  };
}
