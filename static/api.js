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

/** Calls the API; a 401 clears the token and returns to sign-in. */
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
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

/** Downloads an authenticated answer (a CSV export) as a file: a plain link cannot carry the
 * bearer token, so the page fetches it and hands the browser the result. */
export async function download(path, filename) {
  const res = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!res.ok) {
    const body = await res.json().catch(() => null);
    throw new ApiError(res.status, body);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
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
