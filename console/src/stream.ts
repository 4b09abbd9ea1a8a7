// A watch that survives server restarts and network cuts: snapshot, then stream from the
// snapshot's sequence, and after any break resume from the last sequence seen, so nothing is
// missed and nothing is applied twice. Only OUT_OF_RANGE (the log no longer reaches back that
// far) forces a fresh snapshot. No DOM here: the callers decide what the states look like.

import { Code, ConnectError } from "@connectrpc/connect";

/** `connecting` before the first open, `live` while a stream is open, `reconnecting` while waiting to retry. */
export type LinkState = "connecting" | "live" | "reconnecting" | "stopped" | "failed";

export interface ResumableWatch<T> {
  /** Reads the current state (e.g. a List call) and returns the sequence it was read at. */
  snapshot(signal: AbortSignal): Promise<bigint>;
  /** Opens the stream of events after `afterSequence`; calls `opened` once the server accepted it (its headers). */
  watch(afterSequence: bigint, signal: AbortSignal, opened: () => void): AsyncIterable<T>;
  sequenceOf(event: T): bigint;
  onEvent(event: T): void;
  onState(state: LinkState, error?: ConnectError): void;
  /** Errors not worth retrying. Default: UNAUTHENTICATED and PERMISSION_DENIED (a key problem). */
  isFatal?(error: ConnectError): boolean;
  /** First retry delay; doubled per failure up to `maxDelayMs`. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** After this long without an error a stream counts as open even before its headers arrive. */
  quietOpenMs?: number;
  /** Injected by tests to avoid real waiting. */
  sleep?(ms: number, signal: AbortSignal): Promise<void>;
}

export interface RunningWatch {
  /** Ends the watch for good (sign-out, leaving the page). */
  stop(): void;
  /** Settles when the watch stopped or failed for good. */
  readonly done: Promise<void>;
  /** The last sequence applied: where the next stream will resume. */
  readonly sequence: () => bigint;
}

function defaultIsFatal(error: ConnectError): boolean {
  return error.code === Code.Unauthenticated || error.code === Code.PermissionDenied;
}

function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

export function startResumableWatch<T>(w: ResumableWatch<T>): RunningWatch {
  const controller = new AbortController();
  const signal = controller.signal;
  const isFatal = w.isFatal ?? defaultIsFatal;
  const initialDelay = w.initialDelayMs ?? 200;
  const maxDelay = w.maxDelayMs ?? 5000;
  const sleep = w.sleep ?? defaultSleep;
  const quietOpenMs = w.quietOpenMs ?? 1000;
  let last = 0n;
  let needSnapshot = true;

  async function run(): Promise<void> {
    let delay = initialDelay;
    w.onState("connecting");
    while (!signal.aborted) {
      let failure: ConnectError | undefined;
      let quietTimer: ReturnType<typeof setTimeout> | undefined;
      try {
        if (needSnapshot) {
          last = await w.snapshot(signal);
          needSnapshot = false;
        }
        let open = false;
        const markOpen = (): void => {
          if (open || signal.aborted) return;
          open = true;
          // A stream the server accepted proves the link is good again: back off anew next time.
          delay = initialDelay;
          w.onState("live");
        };
        // Some servers send a quiet stream's headers only with its first message; a request
        // still standing after a moment without an error has been accepted all the same.
        quietTimer = setTimeout(markOpen, quietOpenMs);
        const stream = w.watch(last, signal, markOpen);
        for await (const event of stream) {
          markOpen();
          const seq = w.sequenceOf(event);
          // A resumed stream must not apply an event twice; the log is strictly increasing.
          if (seq <= last) continue;
          last = seq;
          w.onEvent(event);
        }
        // A clean end only happens when the server shuts down: resume as after a failure.
      } catch (err) {
        clearTimeout(quietTimer);
        if (signal.aborted) break;
        // connect turns network failures into ConnectErrors; anything else is a bug worth seeing.
        if (!(err instanceof ConnectError)) console.error(err);
        failure = ConnectError.from(err);
        if (failure.code === Code.OutOfRange) {
          // The events after `last` were compacted away: only a fresh snapshot is complete.
          needSnapshot = true;
        } else if (isFatal(failure)) {
          w.onState("failed", failure);
          return;
        }
      }
      clearTimeout(quietTimer);
      if (signal.aborted) break;
      w.onState("reconnecting", failure);
      await sleep(delay, signal);
      delay = Math.min(delay * 2, maxDelay);
    }
    w.onState("stopped");
  }

  const done = run();
  return {
    stop: () => controller.abort(),
    done,
    sequence: () => last,
  };
}
