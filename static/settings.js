// Settings: the owner's form, the read-only view for viewers, provider keys, and the history
// with rollback and a field-by-field comparison of two versions.
import { api, el, form, input, select } from "./api.js";
import { when, settingLabel, settingValue } from "./format.js";
import { card, table, pagedList, action, confirmed, route, everything } from "./ui.js";

export function settingsForm(base, s) {
  const num = (name, label, value, attrs = {}) => input(name, label, { type: "text", inputmode: "decimal", value: value ?? "", ...attrs });
  return form({ "aria-label": "Settings" }, [
    select("execution_mode", "Execution mode", ["hosted", "byo_key"], s.execution_mode),
    input("default_model", "Default model", { value: s.default_model ?? "" }),
    input("allowed_models", "Allowed models (comma-separated, empty for any)", { value: (s.allowed_models ?? []).join(", ") }),
    num("daily_cost_usd", "Daily cost limit (USD)", s.limits.daily_cost_usd),
    num("monthly_cost_usd", "Monthly cost limit (USD)", s.limits.monthly_cost_usd),
    num("daily_tokens", "Daily token limit", s.limits.daily_tokens),
    num("monthly_tokens", "Monthly token limit", s.limits.monthly_tokens),
    num("warn_at_percent", "Warn at %", s.warn_at_percent),
    num("markup_percent", "Markup %", s.markup_percent),
    num("rate_limit_per_minute", "Requests a minute (empty: plan's)", s.rate_limit_per_minute),
  ], "Save settings", async (v) => {
    for (const [k, x] of Object.entries(v)) {
      if (["allowed_models", "default_model", "execution_mode"].includes(k)) continue;
      if (x.trim() !== "" && !/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(x.trim())) throw new Error(`${k} must be a number`);
    }
    // Numbers go out as the text typed, so money keeps every digit.
    const n = (x) => (x.trim() === "" ? "null" : x.trim());
    const models = v.allowed_models.split(",").map((m) => m.trim()).filter(Boolean);
    const body = `{"execution_mode":${JSON.stringify(v.execution_mode)},` +
      `"default_model":${v.default_model ? JSON.stringify(v.default_model) : "null"},` +
      `"allowed_models":${models.length ? JSON.stringify(models) : "null"},` +
      `"limits":{"daily_cost_usd":${n(v.daily_cost_usd)},"monthly_cost_usd":${n(v.monthly_cost_usd)},` +
      `"daily_tokens":${n(v.daily_tokens)},"monthly_tokens":${n(v.monthly_tokens)}},` +
      `"warn_at_percent":${n(v.warn_at_percent)},"markup_percent":${n(v.markup_percent)},` +
      `"rate_limit_per_minute":${n(v.rate_limit_per_minute)}}`;
    await api("PATCH", `${base}/settings`, body);
    route();
  });
}

/** Settings flattened to `path -> value` (limits.daily_cost_usd, provider_keys.openai), minus bookkeeping. */
export function flatten(s, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(s ?? {})) {
    if (!prefix && ["version", "updated_at"].includes(k)) continue;
    const path = prefix ? `${prefix}.${k}` : k;
    if (k === "provider_keys" && v && typeof v === "object") {
      for (const [p, pk] of Object.entries(v)) out[`${path}.${p}`] = pk && pk.masked !== undefined ? pk.masked : pk;
    } else if (v && typeof v === "object" && !Array.isArray(v) && k !== "custom") flatten(v, path, out);
    else out[path] = v;
  }
  return out;
}

/** What a viewer sees: every setting, provider keys masked. */
export function settingsRead(s) {
  const rows = Object.entries(flatten({ ...s, provider_keys: undefined }))
    .map(([path, v]) => el("tr", {}, el("td", {}, settingLabel(path)), el("td", {}, settingValue(path, v))));
  return table(["Setting", "Value"], rows);
}

export function providerKeys(base, s, manage) {
  const rows = Object.entries(s.provider_keys).map(([p, k]) => el("tr", {},
    el("td", {}, p), el("td", {}, el("code", {}, k.masked)), el("td", {}, when(k.updated_at)),
    manage && el("td", {}, confirmed("Remove", `Remove the ${p} key?`, "Yes, remove", async () => {
      await api("DELETE", `${base}/settings/provider-keys/${encodeURIComponent(p)}`); route();
    }))));
  return el("div", {},
    manage && form({ "aria-label": "Set provider key" }, [input("provider", "Provider", { required: true, placeholder: "openai" }),
      input("api_key", "API key", { required: true, type: "password", autocomplete: "off" })], "Store encrypted", async (v) => {
      await api("PUT", `${base}/settings/provider-keys/${encodeURIComponent(v.provider)}`, { api_key: v.api_key }); route();
    }),
    table(manage ? ["Provider", "Key", "Updated", ""] : ["Provider", "Key", "Updated"], rows));
}

/** Field by field, what differs between two versions' settings. */
export function diff(a, b) {
  const fa = flatten(a), fb = flatten(b);
  const paths = [...new Set([...Object.keys(fa), ...Object.keys(fb)])];
  return paths.filter((p) => JSON.stringify(fa[p] ?? null) !== JSON.stringify(fb[p] ?? null))
    .map((p) => ({ path: p, before: fa[p], after: fb[p] }));
}

function compare(base, s) {
  const out = el("div", { id: "settings-diff" });
  const f = form({ "aria-label": "Compare versions" }, [
    input("a", "From version", { type: "number", min: 1, max: s.version, value: Math.max(1, s.version - 1), required: true }),
    input("b", "To version", { type: "number", min: 1, max: s.version, value: s.version, required: true }),
  ], "Compare", async (v) => {
    const [a, b] = [Number(v.a), Number(v.b)];
    const found = await everything(`${base}/settings/history`, (items) => [a, b].every((n) => items.some((h) => h.version === n)));
    const of = (n) => {
      const h = found.find((x) => x.version === n);
      if (!h) throw new Error(`There is no version ${n}.`);
      return h.settings;
    };
    const changes = diff(of(a), of(b));
    out.replaceChildren(table(["Field", `Version ${a}`, `Version ${b}`], changes.map((c) => el("tr", {},
      el("td", {}, settingLabel(c.path)), el("td", {}, settingValue(c.path, c.before)), el("td", {}, settingValue(c.path, c.after)))),
    "No differences."));
  });
  return el("div", {}, f, out);
}

export async function historyCard(base, s, manage) {
  const list = await pagedList(`${base}/settings/history`, manage ? ["Version", "Changed by", "When", ""] : ["Version", "Changed by", "When"],
    (h) => el("tr", {}, el("td", {}, h.version), el("td", {}, h.changed_by), el("td", {}, when(h.changed_at)),
      manage && el("td", {}, h.version !== s.version && action(`Roll back to ${h.version}`, async () => {
        await api("POST", `${base}/settings/rollback`, { version: h.version }); route();
      }))));
  return card("History", compare(base, s), list);
}
