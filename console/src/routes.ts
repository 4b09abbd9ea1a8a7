// The hash routes of the console. Hash routing keeps every page on `/` of the server (which only
// serves index.html, app.js and style.css) and survives a reload.

export type Route = { name: "queue" } | { name: "review"; id: string } | { name: "desk" };

/** `#/queue`, `#/review/<escalation_id>` or `#/desk`; undefined for anything else. */
export function parseRoute(hash: string): Route | undefined {
  const path = hash.replace(/^#/, "");
  if (path === "/queue") return { name: "queue" };
  if (path === "/desk") return { name: "desk" };
  const review = /^\/review\/([^/]+)$/.exec(path);
  if (review?.[1] !== undefined) {
    try {
      return { name: "review", id: decodeURIComponent(review[1]) };
    } catch {
      return undefined; // a malformed %-escape
    }
  }
  return undefined;
}

export function reviewHash(escalationId: string): string {
  return `#/review/${encodeURIComponent(escalationId)}`;
}
