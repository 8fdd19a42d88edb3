// The usage view: totals, the 30-day chart, limits, a breakdown over any range, and the
// tenant's usage and operational events with their filters. Readable by a viewer key.
import { api, download, el, form, input, select } from "./api.js";
import { usd, int, when, percent, LIMIT_LABELS, limitAmount } from "./format.js";
import { card, table, pagedList } from "./ui.js";
import { chart } from "./chart.js";
import { scope, tenantHeader } from "./common.js";

const day = (d) => d.toISOString().slice(0, 10);
const nextDay = (d) => day(new Date(Date.parse(`${d}T00:00:00Z`) + 86400000));

function totals(title, t) {
  return el("div", {}, el("h2", {}, title), el("div", { class: "totals" },
    el("div", {}, "Events", el("b", {}, int(t.events))),
    el("div", {}, "Tokens", el("b", {}, int(t.total_tokens))),
    el("div", {}, "Estimated cost", el("b", {}, usd(t.estimated_cost_usd))),
    el("div", {}, "Billed cost", el("b", {}, usd(t.billed_cost_usd)))));
}

function limitBars(limits) {
  if (!limits.checks.length) return el("p", { class: "muted" }, "No limits are set.");
  return el("div", {}, limits.checks.map((c) => {
    const fill = el("span");
    fill.style.width = `${Math.min(100, Number(c.percent))}%`;
    const label = LIMIT_LABELS[c.limit] ?? c.limit;
    const amounts = `${limitAmount(c.limit, c.used)} of ${limitAmount(c.limit, c.max)}`;
    return el("div", { class: "limit", "data-limit": c.limit, "data-status": c.status },
      el("div", {}, el("b", {}, `${label}: `), `${amounts} (${percent(c.percent)}) `, el("span", { class: `badge ${c.status}` }, c.status)),
      el("div", { class: `bar ${c.status}`, role: "img", "aria-label": `${label} ${percent(c.percent)} ${c.status}` }, fill));
  }));
}

const GROUPS = [["day", "Day"], ["month", "Month"], ["model", "Model"], ["pipeline_stage", "Pipeline stage"],
  ["agent_name", "Agent"], ["user_id", "User"]];

/** Totals and groups over a chosen range of whole UTC days (the `to` day included). */
function breakdown(base) {
  const out = el("div", { id: "breakdown" });
  const show = async (v) => {
    const q = new URLSearchParams({ group_by: v.group_by });
    if (v.from) q.set("from", `${v.from}T00:00:00Z`);
    if (v.to) q.set("to", `${nextDay(v.to)}T00:00:00Z`);
    const s = await api("GET", `${base}/usage/stats?${q}`);
    const label = GROUPS.find(([k]) => k === v.group_by)[1];
    const row = (key, g, attrs = {}) => el("tr", attrs, el("td", {}, key), el("td", { class: "num" }, int(g.events)),
      el("td", { class: "num" }, int(g.total_tokens)), el("td", { class: "num" }, usd(g.estimated_cost_usd)),
      el("td", { class: "num" }, usd(g.billed_cost_usd)));
    out.replaceChildren(table([label, { label: "Events", num: true }, { label: "Tokens", num: true },
      { label: "Estimated", num: true }, { label: "Billed", num: true }],
    [...s.groups.map((g) => row(g.key ?? "—", g)), row("Total", s.totals, { class: "total" })]));
  };
  const today = new Date();
  const first = `${day(today).slice(0, 8)}01`;
  const f = form({ "aria-label": "Usage breakdown" }, [
    input("from", "From", { type: "date", value: first }),
    input("to", "To (included)", { type: "date", value: day(today) }),
    select("group_by", "Group by", GROUPS, "model"),
  ], "Show", show);
  return { node: el("div", {}, f, out), load: () => show({ from: first, to: day(today), group_by: "model" }) };
}

const CATEGORIES = ["", "api.lifecycle", "security", "billing", "system", "user.interaction", "ai.operations", "data.sync"];
const SEVERITIES = ["", "debug", "info", "warning", "error", "critical"];

async function operationalEvents(base) {
  const box = el("div");
  const load = async (v) => {
    const q = new URLSearchParams(Object.entries(v).filter(([, x]) => x));
    box.replaceChildren(await pagedList(`${base}/events${q.size ? `?${q}` : ""}`, ["When", "Category", "Type", "Severity", "Message"], (e) => el("tr", {},
      el("td", {}, when(e.created_at)), el("td", {}, e.category), el("td", {}, e.event_type),
      el("td", {}, el("span", { class: `badge ${e.severity}` }, e.severity)), el("td", {}, e.message))));
  };
  await load({});
  const any = (xs) => xs.map((x) => [x, x || "any"]);
  return el("div", {}, form({ "aria-label": "Filter operational events" }, [
    select("category", "Category", any(CATEGORIES), ""), select("severity", "Severity", any(SEVERITIES), ""),
  ], "Filter", load), box);
}

export async function usageView(ctx, main, slug) {
  const base = scope(ctx, slug);
  const summary = await api("GET", `${base}/usage/summary`);
  const today = new Date();
  const days = [...Array(30).keys()].reverse().map((i) => day(new Date(today.getTime() - i * 86400000)));
  const stats = await api("GET", `${base}/usage/stats?group_by=day&from=${days[0]}T00:00:00Z`);
  const top = (rows, key) => table([key, { label: "Events", num: true }, { label: "Tokens", num: true }, { label: "Cost", num: true }],
    rows.map((r) => el("tr", {}, el("td", {}, r[key === "Model" ? "model" : "agent_name"]), el("td", { class: "num" }, int(r.events)),
      el("td", { class: "num" }, int(r.total_tokens)), el("td", { class: "num" }, usd(r.estimated_cost_usd)))));

  const eventsBox = el("div");
  // The link names the export of what the list shows; a click fetches it with the token.
  const csvError = el("p", { class: "error", role: "alert", hidden: true });
  const csvLink = el("a", { class: "csv-download", download: "usage-events.csv", onclick: async (ev) => {
    ev.preventDefault();
    csvError.hidden = true;
    try {
      await download(csvLink.getAttribute("href"), "usage-events.csv");
    } catch (e) {
      csvError.textContent = e.message;
      csvError.hidden = false;
    }
  } }, "Download CSV");
  const loadEvents = async (filters) => {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    csvLink.setAttribute("href", `${base}/usage/events/export${q.size ? `?${q}` : ""}`);
    eventsBox.replaceChildren(await pagedList(`${base}/usage/events?${q}`, ["When", "Model", "Agent", "User", "Tokens", "Cost", "Mode"], (e) => el("tr", {},
      el("td", {}, when(e.timestamp)), el("td", {}, e.model), el("td", {}, e.agent_name ?? "—"), el("td", {}, e.user_id ?? "—"),
      el("td", { class: "num" }, int(e.total_tokens)), el("td", { class: "num" }, usd(e.estimated_cost_usd)), el("td", {}, e.execution_mode))));
  };
  await loadEvents({});
  const filters = form({ "aria-label": "Filter events" }, [input("model", "Model"), input("agent_name", "Agent"), input("user_id", "User"),
    input("from", "From (RFC 3339)", { placeholder: "2026-11-01T00:00:00Z" }), input("to", "To (RFC 3339)")], "Filter", loadEvents);
  const parts = breakdown(base);
  await parts.load();

  main.replaceChildren(tenantHeader(ctx, slug, "usage"),
    el("section", { class: "card", id: "totals" }, totals("Today", summary.today), totals("This month", summary.month)),
    card("Daily cost, last 30 days", chart(stats.groups, days, main.clientWidth - 40)),
    el("section", { class: "card", id: "limits" }, el("h2", {}, "Limits"), limitBars(summary.limits)),
    el("div", { class: "grid" }, card("Top models this month", top(summary.top_models, "Model")),
      card("Top agents this month", top(summary.top_agents, "Agent"))),
    card("Breakdown", parts.node),
    card("Recent usage events", filters, el("p", {}, csvLink), csvError, eventsBox),
    card("Operational events", await operationalEvents(base)));
}
