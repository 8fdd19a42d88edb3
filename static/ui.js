// Building blocks shared by the views: cards, tables that stack on a phone, paged lists,
// buttons whose failures show beside them, and in-page confirmations.
import { api, el } from "./api.js";

let router = () => {};
/** The views re-render through the app's router after a change. */
export const setRouter = (fn) => { router = fn; };
export const route = () => router();

export function card(title, ...children) {
  return el("section", { class: "card", "aria-label": title }, el("h2", {}, title), ...children);
}

const headerLabel = (h) => (typeof h === "string" ? h : h.label);

// On a phone a table becomes one block per row and each cell shows its column's name
// (from data-label, through CSS), so nothing needs sideways scrolling.
function labelled(tr, headers) {
  [...tr.children].forEach((td, i) => {
    const label = headers[i] && headerLabel(headers[i]);
    if (label && !td.hasAttribute("colspan")) td.setAttribute("data-label", label);
  });
  return tr;
}

function head(headers) {
  return el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, headerLabel(h)))));
}

/** Two columns fit a phone as they are; wider tables stack. */
const stacks = (headers) => (headers.length > 2 ? "stack" : null);

export function table(headers, rows, empty = "None yet.") {
  return el("table", { class: stacks(headers) }, head(headers),
    el("tbody", {}, rows.length ? rows.map((r) => labelled(r, headers))
      : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, empty))]));
}

/** A list with a "More" button that follows next_cursor; `opts` go to each api() call. */
export async function pagedList(path, headers, toRow, opts = {}) {
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
  const t = el("table", { class: stacks(headers) }, head(headers), body);
  let cursor = null;
  const load = async () => {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, undefined, opts);
    page.items.forEach((i) => body.append(labelled(toRow(i), headers)));
    if (!page.items.length && !body.children.length) {
      body.append(el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "Nothing to show.")));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  await load();
  // The More button's failures show beside it, like every other action's.
  return el("div", {}, t, action("More", load, {}, more));
}

/** A button whose action's failure shows beside it, never as an uncaught error. */
export function action(label, fn, attrs = {}, button = null) {
  const err = el("span", { class: "error", role: "alert", hidden: true });
  const b = button ?? el("button", { type: "button", class: "secondary", ...attrs }, label);
  b.addEventListener("click", async () => {
    err.hidden = true;
    b.disabled = true;
    try {
      await fn(b);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    } finally {
      b.disabled = false;
    }
  });
  return el("span", { class: "control" }, b, err);
}

/**
 * An action that cannot be undone asks first, in the page: its button gives way to the question
 * with a destructive "yes" and a Cancel. A failure shows beside it.
 */
export function confirmed(label, question, yesLabel, fn) {
  const err = el("span", { class: "error", role: "alert", hidden: true });
  const open = el("button", { type: "button", class: "danger" }, label);
  const yes = el("button", { type: "button", class: "destructive" }, yesLabel);
  const no = el("button", { type: "button", class: "secondary" }, "Cancel");
  const ask = el("span", { class: "confirm", role: "group", "aria-label": question, hidden: true },
    el("span", {}, question), yes, no);
  const show = (asking) => { open.hidden = asking; ask.hidden = !asking; };
  open.addEventListener("click", () => { err.hidden = true; show(true); yes.focus(); });
  no.addEventListener("click", () => { show(false); open.focus(); });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      await fn();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
      show(false);
    } finally {
      yes.disabled = false;
    }
  });
  return el("span", { class: "control" }, open, ask, err);
}

/**
 * A Copy button for `text`, with a status beside it. Where the clipboard API is missing (plain
 * http on a LAN address) it selects `node` instead, so Ctrl+C (or the menu) copies it.
 */
export function copyButton(text, node, label = "Copy") {
  const status = el("span", { class: "muted", role: "status" });
  const copy = action(label, async () => {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied.";
      return;
    }
    getSelection().selectAllChildren(node);
    const copied = document.queryCommandSupported?.("copy") && document.execCommand("copy");
    status.textContent = copied ? "Copied." : "Selected: press Ctrl+C (⌘C) to copy.";
  });
  return el("div", { class: "actions" }, copy, status);
}

/** Every page of a list, for the few places that need all of it (names, versions). */
export async function everything(path, stop = () => false) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && !stop(items));
  return items;
}
