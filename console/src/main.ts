// The shell: sign-in and sign-out, the header, and the hash routes
//   #/queue               the reviewer's live queue (default)
//   #/review/<id>         one escalation
//   #/desk                the desk, for admin keys only
// The views' <section>s exist only while signed in (nothing of the app is on the page before the
// key is accepted, or after sign-out); exactly one of them is visible at a time.

import { byId, h } from "./dom.js";
import { DeskView } from "./desk_view.js";
import { QueueFeed } from "./queue_feed.js";
import { BASE_TITLE, QueueView } from "./queue_view.js";
import { ReviewView } from "./review_view.js";
import { parseRoute } from "./routes.js";
import type { Route } from "./routes.js";
import { forgetKey, REFUSED_KEY_MESSAGE, SignInError, signIn, storedKey } from "./session.js";
import type { Session } from "./session.js";

const ui = {
  signInView: byId("sign-in-view"),
  signInForm: byId<HTMLFormElement>("sign-in"),
  keyInput: byId<HTMLInputElement>("api-key"),
  signInButton: byId<HTMLButtonElement>("sign-in-submit"),
  signInError: byId("sign-in-error"),
  signInStatus: byId("sign-in-status"),
  header: byId("app-header"),
  whoami: byId("whoami"),
  role: byId("role"),
  navQueue: byId<HTMLAnchorElement>("nav-queue"),
  navDesk: byId<HTMLAnchorElement>("nav-desk"),
  signOut: byId<HTMLButtonElement>("sign-out"),
  main: byId("main"),
};

interface App {
  session: Session;
  feed: QueueFeed;
  sections: Record<Route["name"], HTMLElement>;
  queue: QueueView;
  review: ReviewView;
  /** Only for admin keys. */
  desk: DeskView | undefined;
  /** What is shown now, to close it when the route changes. */
  shown: Route["name"] | undefined;
}

let app: App | undefined;

function showSignIn(message: string): void {
  ui.header.hidden = true;
  ui.signInView.hidden = false;
  ui.signInError.textContent = message;
  ui.signInStatus.textContent = "";
  ui.signInButton.disabled = false;
  ui.keyInput.value = "";
  ui.keyInput.focus();
}

function signOut(message = ""): void {
  if (app !== undefined) {
    app.feed.stop();
    app.queue.destroy();
    app.review.close();
    app.desk?.close();
    for (const section of Object.values(app.sections)) section.remove();
    app = undefined;
  }
  forgetKey();
  document.title = BASE_TITLE;
  showSignIn(message);
}

async function attemptSignIn(key: string): Promise<void> {
  ui.signInButton.disabled = true;
  ui.signInError.textContent = "";
  ui.signInStatus.textContent = "Checking the key…";
  let session: Session | undefined;
  const onRefused = (): void => {
    // Deferred so a refusal never re-enters the code that is handling the failed call; and only
    // for this session, not for a late error of one signed out since.
    queueMicrotask(() => {
      if (app !== undefined && app.session === session) signOut(REFUSED_KEY_MESSAGE);
    });
  };
  try {
    session = await signIn(key, onRefused);
  } catch (err) {
    showSignIn(err instanceof SignInError ? err.message : String(err));
    // Keep the key in the (masked) field, so a typo can be fixed or a retry is one click.
    ui.keyInput.value = key;
    return;
  }
  ui.signInStatus.textContent = "";
  ui.keyInput.value = "";
  startApp(session);
}

function section(id: string, label: string): HTMLElement {
  return h("section", { id, "aria-label": label, hidden: true });
}

function startApp(session: Session): void {
  const feed = new QueueFeed(session);
  const sections = {
    queue: section("queue-view", "My queue"),
    review: section("review-view", "Review"),
    desk: section("desk-view", "Desk"),
  };
  ui.main.append(sections.queue, sections.review, ...(session.isAdmin ? [sections.desk] : []));
  app = {
    session,
    feed,
    sections,
    queue: new QueueView(sections.queue, feed),
    review: new ReviewView(sections.review, session, feed),
    desk: session.isAdmin ? new DeskView(sections.desk, session) : undefined,
    shown: undefined,
  };
  feed.start();
  ui.whoami.textContent = session.clientId || "unknown client";
  ui.role.textContent = session.isAdmin ? "admin" : "reviewer";
  ui.navDesk.hidden = !session.isAdmin;
  ui.signInView.hidden = true;
  ui.header.hidden = false;
  route();
}

function route(): void {
  if (app === undefined) return;
  let r = parseRoute(location.hash);
  if (r === undefined || (r.name === "desk" && app.desk === undefined)) {
    // Replace, not push: Back should not return to a route that only bounces.
    history.replaceState(null, "", "#/queue");
    r = { name: "queue" };
  }
  if (app.shown === "review") app.review.close();
  if (app.shown === "desk" && r.name !== "desk") app.desk?.close();

  for (const [name, el] of Object.entries(app.sections)) el.hidden = name !== r.name;
  if (r.name === "review") app.review.open(r.id);
  if (r.name === "desk" && app.shown !== "desk") app.desk?.open();
  app.shown = r.name;

  for (const [link, name] of [
    [ui.navQueue, "queue"],
    [ui.navDesk, "desk"],
  ] as const) {
    if (r.name === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // Move focus to the new view's heading so keyboard and screen-reader users land on it.
  app.sections[r.name].querySelector<HTMLElement>("h1")?.focus();
}

ui.signInForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  void attemptSignIn(ui.keyInput.value);
});
ui.signOut.addEventListener("click", () => signOut());
window.addEventListener("hashchange", route);

const remembered = storedKey();
if (remembered !== null && remembered !== "") {
  ui.signInView.hidden = false;
  void attemptSignIn(remembered);
} else {
  showSignIn("");
}
