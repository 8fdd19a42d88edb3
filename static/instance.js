// The admin's instance views: flags, per-tenant request stats, the billing report and the queue
// across tenants, and the pricing table.
import { api, el, form, input } from "./api.js";
import { int, FLAG_LABELS, flagValue } from "./format.js";
import { card, table, action, route, everything } from "./ui.js";
import { DEFAULT_TENANT } from "./tenants.js";
import { billingReportCard } from "./billing.js";
import { queueOverviewCard } from "./jobs.js";

/** Tenant names by id; the ids alone when the list cannot be read. */
async function tenantNames() {
  const names = new Map([[DEFAULT_TENANT, "Default tenant"]]);
  try {
    for (const t of await everything("/api/tenants")) names.set(t.id, t.id === DEFAULT_TENANT ? "Default tenant" : t.name);
  } catch {
    // Only the names are lost; the figures still show, by id.
  }
  return names;
}

export async function instanceView(ctx, main) {
  const f = ctx.features;
  const [stats, names] = [await api("GET", "/api/stats"), await tenantNames()];
  const rows = Object.entries(stats.tenants).map(([id, s]) => el("tr", {},
    el("td", { title: id }, names.get(id) ?? id),
    ...["requests", "allowed", "denied"].map((k) => el("td", { class: "num" }, int(s[k]))),
    ...["avg_latency_ms", "p50_ms", "p95_ms", "p99_ms"].map((k) => el("td", { class: "num" }, s[k]))));
  main.replaceChildren(el("h1", {}, "Instance"),
    card("Edition and flags", table(["Flag", "Value"],
      Object.entries(FLAG_LABELS).map(([k, label]) => el("tr", {}, el("td", {}, label), el("td", {}, flagValue(f[k])))))),
    card("Requests by tenant since start", table(["Tenant", { label: "Requests", num: true }, { label: "Allowed", num: true },
      { label: "Denied", num: true }, { label: "Avg ms", num: true }, { label: "p50 ms", num: true }, { label: "p95 ms", num: true },
      { label: "p99 ms", num: true }], rows)),
    await billingReportCard(ctx),
    await queueOverviewCard(ctx));
}

/** A price to the cent at least, and to every digit it has: $4.00, $0.075. */
function perMillion(v) {
  if (v === null || v === undefined) return "—";
  const text = String(v);
  const decimals = (text.split(".")[1] ?? "").length;
  return `$${decimals >= 2 ? text : Number(v).toFixed(2)}`;
}

export async function pricingView(ctx, main) {
  const { items } = await api("GET", "/api/pricing");
  const editor = form({ "aria-label": "Set a price" }, [
    input("model", "Model", { required: true, list: "known-models", autocomplete: "off" }),
    input("input_usd_per_million", "Input, USD per million tokens", { required: true, inputmode: "decimal" }),
    input("output_usd_per_million", "Output, USD per million tokens", { required: true, inputmode: "decimal" }),
  ], "Save price", async (v) => {
    const n = (x, what) => {
      if (!/^\d+(\.\d+)?$/.test(x.trim())) throw new Error(`${what} must be a number of dollars, like 0.15.`);
      return x.trim();
    };
    // Sent as the text typed, so a price keeps every digit.
    const body = `{"input_usd_per_million":${n(v.input_usd_per_million, "The input price")},` +
      `"output_usd_per_million":${n(v.output_usd_per_million, "The output price")}}`;
    await api("PUT", `/api/pricing/${encodeURIComponent(v.model.trim())}`, body);
    route();
  });
  const fill = (p) => {
    editor.elements.model.value = p.model;
    editor.elements.input_usd_per_million.value = p.input_usd_per_million;
    editor.elements.output_usd_per_million.value = p.output_usd_per_million;
    editor.elements.input_usd_per_million.focus();
  };
  const rows = items.map((p) => el("tr", {}, el("td", {}, p.model),
    el("td", { class: "num" }, perMillion(p.input_usd_per_million)), el("td", { class: "num" }, perMillion(p.output_usd_per_million)),
    el("td", {}, action("Edit", async () => fill(p)))));
  main.replaceChildren(el("h1", {}, "Pricing"),
    card("Set a price", el("p", { class: "muted" },
      "Prices apply to events ingested afterwards, for every tenant; recorded costs never change."), editor,
    el("datalist", { id: "known-models" }, items.map((p) => el("option", { value: p.model })))),
    card("Prices per million tokens", table(["Model", { label: "Input", num: true }, { label: "Output", num: true }, ""], rows)));
}
