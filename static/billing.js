// Billing: a tenant's monthly statements (viewer and up) with one statement's lines and its CSV,
// and the operator's report across tenants (admin, in the Instance view). Money is shown from
// the API's exact decimal text (api(..., { exact: true })), never through a float.
import { api, el, download } from "./api.js";
import { int, when, exactUsd } from "./format.js";
import { card, table, pagedList, action } from "./ui.js";
import { scope, tenantHeader } from "./common.js";

/** A statement's status colour: open grey (still changing), draft amber (late events may come), final green. */
const STATUS_BADGE = { open: "pending", draft: "warning", final: "ok" };
export const statusBadge = (s) => el("span", { class: `badge ${STATUS_BADGE[s] ?? ""}` }, s);

const money = (v) => el("td", { class: "num money" }, exactUsd(v));
const EXACT = { exact: true };

/** Billing off: a note saying how to turn it on, instead of an error. */
export const billingOff = () => el("p", { class: "notice", role: "note", id: "billing-off" },
  "Billing is off on this instance: set ENABLE_BILLING=true and restart to get monthly statements.");

const isOff = (e) => e.status === 403 && e.code === "feature_disabled";

/** A CSV download button with what it saved beside it. */
function csvButton(label, path, fallbackName) {
  const status = el("span", { class: "muted", role: "status" });
  return el("div", { class: "actions csv" }, action(label, async () => {
    status.textContent = "";
    status.textContent = `Downloaded ${await download(path, fallbackName)}.`;
  }), status);
}

function statementsList(base, slug, current) {
  return pagedList(`${base}/billing/statements`, ["Period", "Status", { label: "Events", num: true },
    { label: "Billed", num: true }, { label: "Amount due", num: true }, "Finalized"], (s) => el("tr", { "data-period": s.period },
    el("td", {}, el("a", { href: `#/t/${encodeURIComponent(slug)}/billing/${s.period}`,
      "aria-current": s.period === current ? "page" : null, "aria-label": `Statement ${s.period}` }, s.period)),
    el("td", {}, statusBadge(s.status)),
    el("td", { class: "num" }, int(s.events)),
    money(s.billed_cost_usd), money(s.amount_due_usd),
    el("td", {}, s.finalized_at ? when(s.finalized_at) : "—")), EXACT);
}

function lineRow(l) {
  return el("tr", {},
    el("td", {}, el("code", {}, l.model)),
    el("td", {}, l.execution_mode === "byo_key" ? "own key (BYO)" : l.execution_mode),
    el("td", { class: "num" }, int(l.events)),
    el("td", { class: "num" }, int(l.input_tokens)),
    el("td", { class: "num" }, int(l.output_tokens)),
    el("td", { class: "num" }, `${int(l.cache_read_tokens)} / ${int(l.cache_write_tokens)}`),
    el("td", { class: "num" }, int(l.reasoning_tokens)),
    money(l.estimated_cost_usd), money(l.billed_cost_usd));
}

const LINE_HEADERS = ["Model", "Mode", { label: "Events", num: true }, { label: "Input tokens", num: true },
  { label: "Output tokens", num: true }, { label: "Cache read / write", num: true }, { label: "Reasoning", num: true },
  { label: "Estimated", num: true }, { label: "Billed", num: true }];

async function statementCard(base, period) {
  const s = await api("GET", `${base}/billing/statements/${encodeURIComponent(period)}`, undefined, EXACT);
  const lines = table(LINE_HEADERS, s.lines.map(lineRow), "No usage in this month.");
  if (s.lines.length) {
    const total = lineRow({ ...s, model: "Total", execution_mode: "" });
    total.classList.add("total");
    total.firstChild.replaceChildren("Total");
    [...total.children].forEach((td, i) => { if (td.textContent) td.setAttribute("data-label", LINE_HEADERS[i].label ?? LINE_HEADERS[i]); });
    lines.tBodies[0].append(total);
  }
  const c = card(`Statement ${s.period}`,
    el("p", {}, statusBadge(s.status), " ",
      el("span", { class: "muted" }, `${when(s.from).slice(0, 10)} to ${when(s.to).slice(0, 10)} (UTC, end excluded)`,
        s.finalized_at ? ` · final since ${when(s.finalized_at)}` : s.status === "draft" ? " · late events may still change it" : "")),
    el("div", { class: "totals wide", id: "statement-totals" },
      el("div", {}, "Events", el("b", {}, int(s.events))),
      el("div", {}, "Estimated cost", el("b", {}, exactUsd(s.estimated_cost_usd))),
      el("div", {}, "Billed cost", el("b", {}, exactUsd(s.billed_cost_usd))),
      el("div", {}, "Amount due", el("b", { id: "amount-due" }, exactUsd(s.amount_due_usd)))),
    el("h3", {}, "Lines by model and mode"), lines,
    el("p", { class: "muted" }, "Cache and reasoning tokens are parts of the input and output counts. ",
      "Lines with your own provider key (BYO) show their estimated cost and bill nothing. ",
      "The amount due is the billed cost rounded half to even to the cent."),
    csvButton("Download CSV", `${base}/billing/statements/${encodeURIComponent(s.period)}?format=csv`, `statement-${s.period}.csv`));
  c.id = "statement";
  return c;
}

/** A period that cannot be read (a mistyped address) says why below the list, which stays usable. */
async function statementOrError(base, period) {
  try {
    return await statementCard(base, period);
  } catch (e) {
    if (isOff(e) || e.status === 401) throw e;
    const c = card(`Statement ${period}`, el("p", { class: "error", role: "alert" }, e.message));
    c.id = "statement";
    return c;
  }
}

export async function billingView(ctx, main, slug, period) {
  const header = tenantHeader(ctx, slug, "billing");
  if (!ctx.features.billing) {
    main.replaceChildren(header, card("Billing", billingOff()));
    return;
  }
  const base = scope(ctx, slug);
  try {
    const list = card("Statements", el("p", { class: "muted" },
      "One statement per UTC month with usage, newest first: open while the month runs, a draft during the grace ",
      "after it, then final and never changed. Choose a period to see its lines."),
    await statementsList(base, slug, period));
    list.id = "statements";
    main.replaceChildren(header, list, ...(period ? [await statementOrError(base, period)] : []));
  } catch (e) {
    if (!isOff(e)) throw e;
    main.replaceChildren(header, card("Billing", billingOff()));
  }
  if (period) main.querySelector("#statement")?.scrollIntoView({ block: "start" });
}

/** A month input's value: YYYY-MM. */
const MONTH = /^\d{4}-(0[1-9]|1[0-2])$/;

function reportTable(r) {
  const rows = r.tenants.map((t) => el("tr", { "data-tenant": t.slug },
    el("td", {}, el("a", { href: `#/t/${encodeURIComponent(t.slug)}/billing/${r.period}` }, t.slug)),
    el("td", {}, t.name), el("td", {}, t.plan),
    el("td", { class: "num" }, int(t.events)), money(t.billed_cost_usd), money(t.amount_due_usd),
    el("td", {}, statusBadge(t.status))));
  const headers = ["Tenant", "Name", "Plan", { label: "Events", num: true }, { label: "Billed", num: true },
    { label: "Amount due", num: true }, "Status"];
  const t = table(headers, rows, "No tenant has usage in this month.");
  if (r.tenants.length) {
    const total = el("tr", { class: "total" },
      el("td", {}, `Total, ${int(r.totals.tenants)} ${r.totals.tenants === 1 ? "tenant" : "tenants"}`), el("td"), el("td"),
      el("td", { class: "num" }, int(r.totals.events)), money(r.totals.billed_cost_usd), money(r.totals.amount_due_usd), el("td"));
    [...total.children].forEach((td, i) => { if (td.textContent) td.setAttribute("data-label", headers[i].label ?? headers[i]); });
    t.tBodies[0].append(total);
  }
  return t;
}

/** The operator's report for a month (admin): every tenant's billed cost and amount due, and its CSV. */
export async function billingReportCard(ctx) {
  if (!ctx.features.billing) return card("Billing report", billingOff());
  const box = el("div", { id: "billing-report" });
  const month = el("input", { type: "month", name: "period", required: true, id: "report-period" });
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const show = async (period) => {
    const q = period ? `?period=${encodeURIComponent(period)}` : "";
    const r = await api("GET", `/api/billing/report${q}`, undefined, EXACT);
    month.value = r.period;
    box.replaceChildren(
      el("p", {}, `${r.period}: `, statusBadge(r.status)),
      reportTable(r),
      csvButton("Download report CSV", `/api/billing/report?period=${r.period}&format=csv`, `billing-report-${r.period}.csv`));
  };
  const f = el("form", { class: "inline", "aria-label": "Billing report period" },
    el("label", {}, el("span", { class: "label-text" }, "Month (UTC)"), month),
    el("button", { type: "submit" }, "Show"), err);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    try {
      if (!MONTH.test(month.value)) throw new Error("Choose a month, like 2026-11.");
      await show(month.value);
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  });
  try {
    await show(null); // the server's current month
  } catch (e) {
    if (!isOff(e)) throw e;
    return card("Billing report", billingOff());
  }
  return card("Billing report", el("p", { class: "muted" },
    "Every tenant with usage in the month, by billed cost. The total amount due is the sum of each tenant's ",
    "amount due, each rounded on its own statement: what the invoices add up to."), f, box);
}
