// Tiny DOM helpers: build elements without innerHTML (so no server text is ever parsed as
// markup), find the fixed elements of index.html, and one shared clock for every countdown.

type Attrs = Record<string, string | boolean | undefined>;
type Child = Node | string | null | undefined | false;

/** Creates an element; `true` attributes are set empty, `false`/undefined ones are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === false) continue;
      el.setAttribute(name, value === true ? "" : value);
    }
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child);
  }
  return el;
}

/** An element of index.html that the code cannot work without. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`index.html has no #${id}`);
  return el as T;
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false));
}

/** A label and its control, wrapped for layout. */
export function field(label: string, control: HTMLElement): HTMLDivElement {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

type Tick = (nowMs: number) => void;
const ticks = new Set<Tick>();
let timer: ReturnType<typeof setInterval> | undefined;

/**
 * Runs `fn` every second with the current time until the returned function is called. One
 * interval serves every countdown on the page, so 1,000 rows cost one timer, not 1,000.
 */
export function everySecond(fn: Tick): () => void {
  ticks.add(fn);
  if (timer === undefined) {
    timer = setInterval(() => {
      const now = Date.now();
      for (const t of ticks) t(now);
    }, 1000);
  }
  return () => {
    ticks.delete(fn);
    if (ticks.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}
