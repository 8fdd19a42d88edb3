// The hosted job queue: a tenant's Jobs view (counts by status, the list with filters, one job's
// detail with its usage, Cancel and Retry for members and up) and, for the admin, the queue across
// tenants in the Instance view. With ENABLE_HOSTED_QUEUE off every queue path is 403
// feature_disabled, so the views say how to turn it on instead of showing an error.
import { api, el, input, select, exactJson, verbatimJson } from "./api.js";
import { int, when, exactUsd } from "./format.js";
import { card, table, pagedList, action, route } from "./ui.js";
import { scope, tenantHeader } from "./common.js";

export const JOB_STATUSES = ["queued", "running", "retrying", "succeeded", "dead", "cancelled"];
/** A job's status colour: grey waiting, blue running, amber will retry, green done, red dead. */
const STATUS_BADGE = { queued: "pending", running: "running", retrying: "warning", succeeded: "ok", dead: "exceeded", cancelled: "pending" };
export const jobBadge = (s) => el("span", { class: `badge ${STATUS_BADGE[s] ?? ""}` }, s);

/** The queue off: a note saying how to turn it on, instead of an error. */
export const queueOff = () => el("p", { class: "notice", role: "note", id: "queue-off" },
  "The job queue is off on this instance: set ENABLE_HOSTED_QUEUE=true and restart to run background jobs.");

const isOff = (e) => e.status === 403 && e.code === "feature_disabled";

/** The API refuses cancel and retry below member; the page offers them to who may. */
const canAct = (ctx) => ctx.admin || ctx.role === "owner" || ctx.role === "member";

const jobHref = (slug, id) => `#/t/${encodeURIComponent(slug)}/jobs/${encodeURIComponent(id)}`;
/** Ids are UUIDs: the first group tells jobs apart in a list; the full id is on hover and in the detail. */
const shortId = (id) => id.slice(0, 8);

// The filters outlive a render, so opening a job (a new address) keeps the list as it was.
const filters = new Map();

async function countsCard(base) {
  const c = await api("GET", `${base}/queue/counts`);
  const x = card("Jobs by status", el("div", { class: "totals", id: "job-counts" },
    JOB_STATUSES.map((s) => el("div", { "data-status": s }, jobBadge(s), el("b", {}, int(c[s]))))));
  x.id = "counts";
  return x;
}

const LIST_HEADERS = ["Job", "Queue", "Kind", "Status", { label: "Priority", num: true }, { label: "Attempts", num: true },
  "Run at", "Updated"];

function jobRow(slug, j, current) {
  return el("tr", { "data-job": j.id, "data-status": j.status },
    el("td", {}, el("a", { href: jobHref(slug, j.id), title: j.id, "aria-label": `Job ${j.id}`,
      "aria-current": j.id === current ? "page" : null }, el("code", {}, shortId(j.id)))),
    el("td", {}, j.queue), el("td", {}, j.kind ?? "—"),
    el("td", {}, jobBadge(j.status)),
    el("td", { class: "num" }, String(j.priority)),
    el("td", { class: "num" }, `${j.attempts}/${j.max_attempts}`),
    el("td", {}, when(j.run_at)), el("td", {}, when(j.updated_at)));
}

function listCard(base, slug, current) {
  const f = filters.get(base) ?? { status: "", queue: "", kind: "" };
  const box = el("div", { id: "job-list" });
  const load = async () => {
    const q = new URLSearchParams(Object.entries(f).filter(([, v]) => v)).toString();
    box.replaceChildren(await pagedList(`${base}/jobs${q ? `?${q}` : ""}`, LIST_HEADERS, (j) => jobRow(slug, j, current)));
  };
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { class: "inline", "aria-label": "Filter jobs" },
    select("status", "Status", [["", "all"], ...JOB_STATUSES], f.status),
    input("queue", "Queue", { value: f.queue, autocomplete: "off" }),
    input("kind", "Kind", { value: f.kind, autocomplete: "off" }),
    el("button", { type: "submit" }, "Filter"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.hidden = true;
    for (const k of ["status", "queue", "kind"]) f[k] = form.elements[k].value.trim();
    filters.set(base, f);
    try {
      await load();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  });
  const c = card("Jobs", el("p", { class: "muted" }, "Newest first. Choose a job to see its payload, result, error and usage."),
    form, box);
  c.id = "jobs";
  return { node: c, load };
}

const pre = (value) => el("pre", { class: "snippet" }, JSON.stringify(value, null, 2));

function usageTotals(u) {
  return el("div", { class: "totals wide", id: "job-usage" },
    el("div", {}, "Events", el("b", {}, int(u.events))),
    el("div", {}, "Tokens in / out", el("b", {}, `${int(u.input_tokens)} / ${int(u.output_tokens)}`)),
    el("div", {}, "Total tokens", el("b", {}, int(u.total_tokens))),
    el("div", {}, "Estimated cost", el("b", {}, exactUsd(u.estimated_cost_usd))),
    el("div", {}, "Billed cost", el("b", {}, exactUsd(u.billed_cost_usd))));
}

function jobActions(ctx, path, j) {
  if (!canAct(ctx)) return null;
  const act = (label, verb) => action(label, async () => {
    await api("POST", `${path}/${verb}`);
    route();
  });
  const buttons = [
    (j.status === "queued" || j.status === "retrying") && act("Cancel job", "cancel"),
    (j.status === "dead" || j.status === "cancelled") && act("Retry job", "retry"),
  ].filter(Boolean);
  return buttons.length ? el("div", { class: "actions" }, ...buttons) : null;
}

async function jobCard(ctx, base, id) {
  const path = `${base}/jobs/${encodeURIComponent(id)}`;
  const text = await api("GET", path, undefined, { raw: true });
  // Money as the API's exact text for the usage; payload and result with their numbers verbatim.
  const j = exactJson(text);
  const shown = verbatimJson(text);
  const row = (k, v) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v));
  const c = card(`Job ${j.id}`,
    el("table", { class: "details" }, el("tbody", {},
      row("Status", jobBadge(j.status)),
      row("Queue", j.queue), row("Kind", j.kind ?? "—"), row("Priority", String(j.priority)),
      row("Attempts", `${j.attempts} of ${j.max_attempts}`),
      row("Run at", when(j.run_at)),
      row("Lease expires", j.lease_expires_at ? when(j.lease_expires_at) : "—"),
      j.idempotency_key && row("Idempotency key", el("code", {}, j.idempotency_key)),
      row("Created", when(j.created_at)), row("Updated", when(j.updated_at)))),
    jobActions(ctx, path, j),
    el("h3", {}, "Last error"),
    j.last_error ? el("pre", { class: "snippet", id: "job-error" }, j.last_error) : el("p", { class: "muted" }, "None."),
    el("h3", {}, "Result"),
    shown.result !== null && shown.result !== undefined ? el("div", { id: "job-result" }, pre(shown.result)) : el("p", { class: "muted" }, "None yet."),
    el("h3", {}, "Usage"), usageTotals(j.usage),
    el("p", { class: "muted" }, "From the usage events that name this job in job_id."),
    el("h3", {}, "Payload"), el("div", { id: "job-payload" }, pre(shown.payload)));
  c.id = "job";
  c.setAttribute("data-status", j.status);
  return c;
}

/** A job that cannot be read (a mistyped address, another tenant's id) says why; the list stays. */
async function jobOrError(ctx, base, id) {
  try {
    return await jobCard(ctx, base, id);
  } catch (e) {
    if (isOff(e) || e.status === 401) throw e;
    const c = card(`Job ${id}`, el("p", { class: "error", role: "alert" }, e.message));
    c.id = "job";
    return c;
  }
}

export async function jobsView(ctx, main, slug, id) {
  const header = tenantHeader(ctx, slug, "jobs");
  if (!ctx.features.hosted_queue) {
    main.replaceChildren(header, card("Jobs", queueOff()));
    return;
  }
  const base = scope(ctx, slug);
  try {
    const counts = await countsCard(base);
    const list = listCard(base, slug, id);
    await list.load();
    main.replaceChildren(header, counts, list.node, ...(id ? [await jobOrError(ctx, base, id)] : []));
  } catch (e) {
    if (!isOff(e)) throw e;
    main.replaceChildren(header, card("Jobs", queueOff()));
  }
  if (id) main.querySelector("#job")?.scrollIntoView({ block: "start" });
}

/** The admin's view of the queue: every tenant with jobs, ready (queued + retrying), running, dead, succeeded. */
export async function queueOverviewCard(ctx) {
  const title = "Queue across tenants";
  if (!ctx.features.hosted_queue) return card(title, queueOff());
  let r;
  try {
    r = await api("GET", "/api/queue/tenants");
  } catch (e) {
    if (!isOff(e)) throw e;
    return card(title, queueOff());
  }
  const rows = r.tenants.map((t) => el("tr", { "data-tenant": t.slug },
    el("td", {}, el("a", { href: `#/t/${encodeURIComponent(t.slug)}/jobs`, "aria-label": `Jobs of ${t.slug}` }, t.slug)),
    el("td", {}, t.name), el("td", {}, t.plan),
    el("td", { class: "num" }, int(t.counts.queued + t.counts.retrying)),
    el("td", { class: "num" }, int(t.counts.running)),
    el("td", { class: "num" }, int(t.counts.dead)),
    el("td", { class: "num" }, int(t.counts.succeeded))));
  const c = card(title, el("p", { class: "muted" },
    "Ready counts queued and retrying jobs. Choose a tenant to see its jobs."),
  table(["Tenant", "Name", "Plan", { label: "Ready", num: true }, { label: "Running", num: true },
    { label: "Dead", num: true }, { label: "Succeeded", num: true }], rows, "No tenant has jobs."));
  c.id = "queue-overview";
  return c;
}
