// A tenant's Gateway view: the base_url an application's SDK points at, copyable snippets,
// the gateway settings (enforce_limits, max_concurrent_calls) and the recent calls with the
// number in flight. The key in the snippets is a placeholder: keys are made, and shown once,
// in the API keys card; this page never fetches one.
import { api, el, form, input } from "./api.js";
import { int, when } from "./format.js";
import { card, table, action, route, copyButton } from "./ui.js";
import { scope, tenantHeader, canManage } from "./common.js";

/** In-flight gateway calls by plan when `max_concurrent_calls` is null (contract: Settings additions). */
export const PLAN_CONCURRENCY = { basic: 4, pro: 32, enterprise: 256 };

export function snippets(origin) {
  const v1 = `${origin}/v1`;
  return [
    ["Python, OpenAI SDK", "python-openai", `from openai import OpenAI

client = OpenAI(base_url="${v1}", api_key="tk_...")
reply = client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
)`],
    ["Python, Anthropic SDK", "python-anthropic", `from anthropic import Anthropic

client = Anthropic(base_url="${origin}", api_key="tk_...")
reply = client.messages.create(
    model="claude-haiku-4-5", max_tokens=256, messages=[{"role": "user", "content": "Hello"}]
)`],
    ["Node, OpenAI SDK", "node-openai", `import OpenAI from "openai";

const client = new OpenAI({ baseURL: "${v1}", apiKey: "tk_..." });`],
    ["Node, Anthropic SDK", "node-anthropic", `import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({ baseURL: "${origin}", apiKey: "tk_..." });`],
  ];
}

function connectCard(ctx, slug) {
  const origin = location.origin;
  const url = (u, id) => el("code", { id }, u);
  const keys = canManage(ctx)
    ? el("a", { href: `#/t/${slug}` }, "API keys card")
    : "API keys card (an owner makes them)";
  return card("Connect an application",
    el("p", {}, "Point the SDK's base URL at tenantry and use a tenant API key (role member or service) as its API key. ",
      "Calls go to the provider with this tenant's provider key, which never leaves tenantry, and each call is metered."),
    el("table", {}, el("tbody", {},
      el("tr", {}, el("th", {}, "OpenAI SDKs"), el("td", {}, url(`${origin}/v1`, "base-url-openai"))),
      el("tr", {}, el("th", {}, "Anthropic SDKs"), el("td", {}, url(origin, "base-url-anthropic"))))),
    el("p", { class: "muted" }, "tk_... stands for a key made in the ", keys, "; keys are shown only once, when made."),
    snippets(origin).map(([title, id, code]) => {
      const pre = el("pre", { class: "snippet", id: `snippet-${id}` }, el("code", {}, code));
      return el("div", { class: "snippet-box", role: "group", "aria-label": title }, el("h3", {}, title), pre, copyButton(code, pre));
    }));
}

function settingsCard(ctx, base, s, plan) {
  const fallback = plan ? `the ${plan} plan's ${PLAN_CONCURRENCY[plan]}`
    : `the plan's: basic ${PLAN_CONCURRENCY.basic}, pro ${PLAN_CONCURRENCY.pro}, enterprise ${PLAN_CONCURRENCY.enterprise}`;
  const title = `Gateway settings (version ${s.version})`;
  const explain = el("p", { class: "muted" },
    "Limits are soft unless enforced: then a call while any limit is exceeded gets 429 limit_exceeded before it goes upstream. ",
    `Concurrent calls: in-flight calls for this tenant; empty means ${fallback}.`);
  if (!canManage(ctx)) {
    return card(title, explain, table(["Setting", "Value"], [
      el("tr", {}, el("td", {}, "Enforce limits"), el("td", {}, s.enforce_limits ? "yes" : "no")),
      el("tr", {}, el("td", {}, "Concurrent calls"), el("td", {}, s.max_concurrent_calls ?? `not set (${fallback})`)),
    ]));
  }
  const check = el("label", { class: "check" },
    el("input", { type: "checkbox", name: "enforce_limits", checked: s.enforce_limits }),
    el("span", { class: "label-text" }, "Enforce limits"));
  return card(title, explain, form({ "aria-label": "Gateway settings" }, [
    check,
    input("max_concurrent_calls", "Concurrent calls (empty: plan's)", {
      type: "number", min: 1, max: 100000, step: 1, inputmode: "numeric", value: s.max_concurrent_calls ?? "",
      placeholder: plan ? String(PLAN_CONCURRENCY[plan]) : null,
    }),
  ], "Save gateway settings", async (v) => {
    const n = (v.max_concurrent_calls ?? "").trim();
    if (n !== "" && !/^\d+$/.test(n)) throw new Error("Concurrent calls must be a whole number.");
    await api("PATCH", `${base}/settings`, {
      enforce_limits: v.enforce_limits === "on",
      max_concurrent_calls: n === "" ? null : Number(n),
    });
    route();
  }));
}

/** A cost as exact dollars, trailing zeros dropped: 0.000010500 -> "$0.0000105". */
const dollars = (v) => (v === null || v === undefined ? "—"
  : `$${Number(v).toFixed(9).replace(/0+$/, "").replace(/\.$/, "")}`);

function callRow(c) {
  const ok = c.status >= 200 && c.status < 300;
  const notes = [c.client_disconnected && "client went away", c.usage_missing && "no usage reported"].filter(Boolean);
  return el("tr", {},
    el("td", {}, when(c.at)),
    el("td", {}, c.model || "—", c.provider ? el("span", { class: "muted" }, ` (${c.provider})`) : null),
    el("td", {}, el("code", {}, c.path)),
    el("td", { class: "num" }, `${int(c.input_tokens)} / ${int(c.output_tokens)}`),
    el("td", { class: "num" }, dollars(c.billed_cost_usd)),
    // Status 0: the provider never answered (the error code says why).
    el("td", {}, el("span", { class: `badge ${ok ? "ok" : "exceeded"}` }, c.status ? String(c.status) : "no answer"),
      c.error ? ` ${c.error}` : null, notes.length ? el("span", { class: "muted" }, ` (${notes.join(", ")})`) : null),
    el("td", {}, c.stream ? "yes" : "no"),
    el("td", { class: "num" }, `${int(c.duration_ms)} ms`));
}

async function callsCard(base) {
  const box = el("div", { id: "gateway-calls" });
  const load = async () => {
    const r = await api("GET", `${base}/gateway/calls`);
    box.replaceChildren(
      el("p", { id: "in-flight" }, `${int(r.in_flight)} ${r.in_flight === 1 ? "call" : "calls"} in flight`),
      table(["Time", "Model", "Path", { label: "Tokens in / out", num: true }, { label: "Cost", num: true }, "Status",
        "Streamed", { label: "Duration", num: true }], r.items.map(callRow), "No gateway calls since the server started."));
  };
  await load();
  return card("Recent gateway calls",
    el("p", { class: "muted" }, "The last calls since this server started, failures included; metered calls are also in Usage."),
    el("div", { class: "actions" }, action("Refresh", load)), box);
}

export async function gatewayView(ctx, main, slug) {
  const base = scope(ctx, slug);
  const [s, tenant] = await Promise.all([
    api("GET", `${base}/settings`),
    ctx.admin ? api("GET", `/api/tenants/${encodeURIComponent(slug)}`) : null,
  ]);
  main.replaceChildren(tenantHeader(ctx, slug, "gateway"),
    connectCard(ctx, slug),
    settingsCard(ctx, base, s, tenant?.plan),
    await callsCard(base));
}
