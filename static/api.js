// The page's only way to the server: the public HTTP API with a bearer token kept in
// sessionStorage (no cookies, so no CSRF surface), plus the element and form builders.
const KEY = "tenantry.token";

export const token = () => sessionStorage.getItem(KEY);
export const setToken = (t) => sessionStorage.setItem(KEY, t);
export const clearToken = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
  }
}

/**
 * Money fields (`*_usd`) as the server's exact decimal text: a double cannot hold every
 * nano-dollar of a large sum, so the billing views never let one through a float. Uses the
 * reviver's source text (JSON.parse source access); without it the number is kept.
 */
const moneyText = (key, value, context) =>
  (typeof value === "number" && key.endsWith("_usd") && context?.source !== undefined ? context.source : value);

/** A JSON text with money as exact text, as api(..., { exact: true }) answers it. */
export const exactJson = (text) => JSON.parse(text, moneyText);

/**
 * A JSON text for showing parts of it as JSON (JSON.stringify): every number stays the digits
 * the server sent (JSON.rawJSON), so a payload's large id or long decimal is not rounded
 * through a double.
 */
export function verbatimJson(text) {
  const keep = (key, value, context) =>
    (typeof value === "number" && JSON.rawJSON && context?.source !== undefined ? JSON.rawJSON(context.source) : value);
  return JSON.parse(text, keep);
}

async function answer(res, exact, raw) {
  const text = await res.text();
  if (raw && res.ok) return text;
  let data = null;
  try {
    data = text ? JSON.parse(text, exact ? moneyText : undefined) : null;
  } catch {
    data = { message: `HTTP ${res.status}: ${text.slice(0, 200)}` };
  }
  if (res.status === 401) {
    clearToken();
    window.dispatchEvent(new CustomEvent("tenantry:signed-out"));
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

/**
 * Calls the API; a 401 clears the token and returns to sign-in. `exact`: money as text; `raw`:
 * the answer's JSON text, unparsed (a failure is still thrown as an ApiError).
 */
export async function api(method, path, body, { exact = false, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  return answer(await fetch(path, init), exact, raw);
}

/** The file name a Content-Disposition header gives, if any. */
function attachmentName(header) {
  if (!header) return null;
  const star = /filename\*=UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // Malformed escapes: the plain filename below, or the caller's.
    }
  }
  const plain = /filename="((?:[^"\\]|\\.)*)"|filename=([^;]+)/i.exec(header);
  return plain ? (plain[1] ?? plain[2]).replace(/\\(.)/g, "$1").trim() : null;
}

/**
 * Downloads a file the API answers (a CSV): a plain link would not carry the bearer token, so
 * it is fetched, then saved through an object URL. Returns the file name used.
 */
export async function download(path, fallbackName) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!res.ok) await answer(res, false); // throws the API's error
  const blob = await res.blob();
  const name = attachmentName(res.headers.get("Content-Disposition")) || fallbackName;
  const url = URL.createObjectURL(blob);
  const a = el("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  // The click has handed the blob to the download; the URL is freed once it has started.
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return name;
}

/** Builds an element: el("td", {class: "num"}, "text", child, ...). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A form whose submit runs `fn(values, form)` and shows the failure's message next to it. */
export function form(attrs, fields, submitLabel, fn) {
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const f = el("form", { class: "inline", ...attrs }, ...fields, el("button", { type: "submit" }, submitLabel), err);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    const values = Object.fromEntries(new FormData(f).entries());
    try {
      await fn(values, f);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  });
  return f;
}

// A control's label text sits in its own span, so a table row can hide it visually when the
// column already names the control.
export function input(name, label, attrs = {}) {
  return el("label", {}, el("span", { class: "label-text" }, label), el("input", { name, ...attrs }));
}

/** A select; each option is a value, or a [value, label] pair. */
export function select(name, label, options, value) {
  return el("label", {}, el("span", { class: "label-text" }, label),
    el("select", { name }, ...options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return el("option", { value: v, selected: v === value }, text);
    })));
}
