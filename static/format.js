// How figures read on the page: money to the cent, counts with separators, human labels.
import { el } from "./api.js";

/** Money as text, to the cent: 3.4317 -> "$3.43". */
export function money(v) {
  const n = Number(v ?? 0);
  return `${n < 0 ? "-" : ""}$${Math.abs(n).toFixed(2)}`;
}

/** Costs to the cent, the exact figure on hover. */
export function usd(v) {
  const n = Number(v ?? 0);
  return el("span", { title: `$${v ?? 0}` }, n > 0 && n < 0.01 ? "< $0.01" : money(n));
}

/**
 * Exact money from the API's decimal text ("12999988.604938257"), never through a float: at
 * least two decimals, every digit the server sent, thousands separated: "$12,999,988.604938257".
 */
export function exactUsd(text) {
  if (text === null || text === undefined) return "—";
  let t = String(text);
  // Without the reviver's source text a number arrives; one with an exponent is spelled out.
  if (/e/i.test(t)) t = Number(t).toFixed(9).replace(/0+$/, "");
  const negative = t.startsWith("-");
  const [whole, frac = ""] = t.replace(/^-/, "").split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${negative ? "-" : ""}$${grouped}.${frac.padEnd(2, "0")}`;
}

export const int = (v) => Number(v ?? 0).toLocaleString("en-US");
export const when = (ts) => (ts ? new Date(ts).toISOString().replace("T", " ").slice(0, 19) + "Z" : "—");
export const percent = (p) => `${Number(Number(p ?? 0).toFixed(1))}%`;

export const LIMIT_LABELS = {
  daily_cost_usd: "Daily cost", monthly_cost_usd: "Monthly cost",
  daily_tokens: "Daily tokens", monthly_tokens: "Monthly tokens",
};

/** A limit's amount: money for the cost limits, a token count for the others. */
export const limitAmount = (limit, v) => (limit.endsWith("_usd") ? money(v) : int(v));

export const FLAG_LABELS = {
  edition: "Edition", multi_tenant: "Several tenants", usage_tracking: "Usage tracking",
  hosted_queue: "Hosted job queue", billing: "Billing",
};

export const flagValue = (v) => (v === true ? "On" : v === false ? "Off" : String(v));

/** Settings fields by their path in the settings JSON, for forms and the version diff. */
export const SETTING_LABELS = {
  execution_mode: "Execution mode", default_model: "Default model", allowed_models: "Allowed models",
  "limits.daily_cost_usd": "Daily cost limit", "limits.monthly_cost_usd": "Monthly cost limit",
  "limits.daily_tokens": "Daily token limit", "limits.monthly_tokens": "Monthly token limit",
  warn_at_percent: "Warn at %", markup_percent: "Markup %", rate_limit_per_minute: "Requests a minute",
  enforce_limits: "Enforce limits", max_concurrent_calls: "Concurrent calls", max_running_jobs: "Running jobs",
  custom: "Custom settings",
};

/** A settings value as a person reads it. */
export function settingValue(path, v) {
  if (v === null || v === undefined) return "not set";
  if (path.endsWith("_usd")) return money(v);
  if (Array.isArray(v)) return v.length ? v.join(", ") : "none";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export const settingLabel = (path) => SETTING_LABELS[path]
  ?? (path.startsWith("provider_keys.") ? `Provider key ${path.split(".").slice(1).join(" ")}` : path);
