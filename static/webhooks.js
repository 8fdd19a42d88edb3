// A tenant's Webhooks view: its endpoints (owner, or the admin), each with enable/disable, a
// test send, secret rotation, deletion and its deliveries (status filter, Retry). A secret is
// in the answer to create and rotate only, so it is shown in the page once and kept nowhere:
// a reload, or the next render, no longer has it.
import { api, el, form, input, select } from "./api.js";
import { int, when } from "./format.js";
import { card, pagedList, action, confirmed, copyButton } from "./ui.js";
import { scope, tenantHeader, canManage } from "./common.js";

export const DELIVERY_STATUSES = ["pending", "succeeded", "failed", "exhausted"];
/** A delivery's status colour: green delivered, amber will retry, red given up. */
const STATUS_BADGE = { succeeded: "ok", failed: "warning", exhausted: "exceeded", pending: "pending" };

/** The secret, once, with Copy and what to do with it. */
function secretBox(id, secret, note) {
  const value = el("p", { class: "secret", id }, secret);
  return el("div", { class: "notice", role: "group", "aria-label": "New signing secret" },
    el("p", {}, el("strong", {}, "Store it now: it will not be shown again. "), note),
    value, copyButton(secret, value));
}

const eventTypes = (e) => (e.event_types === null ? "all events" : e.event_types.join(", "));

function stateBadge(e) {
  return e.enabled ? el("span", { class: "badge ok" }, "enabled")
    : el("span", { class: "badge exceeded" }, `disabled${e.disabled_reason ? ` (${e.disabled_reason})` : ""}`);
}

function details(ctx, e) {
  const row = (k, v) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, v));
  return el("table", { class: "details" }, el("tbody", {},
    row("URL", el("code", {}, e.url)),
    row("Event types", eventTypes(e)),
    row("Format", e.format),
    ctx.admin && row("Scope", e.scope === "instance" ? "instance (every tenant's events)" : "this tenant"),
    e.description && row("Description", e.description),
    row("State", stateBadge(e)),
    row("Created", when(e.created_at))));
}

function deliveryRow(path, d, reload) {
  const result = [d.last_status !== null && d.last_status !== undefined ? `HTTP ${d.last_status}` : null, d.last_error]
    .filter(Boolean).join(": ") || "—";
  const retry = d.status === "failed" || d.status === "exhausted";
  return el("tr", { "data-delivery": d.id, "data-status": d.status },
    el("td", {}, el("code", {}, d.event_type)),
    el("td", {}, el("span", { class: `badge ${STATUS_BADGE[d.status] ?? ""}` }, d.status)),
    el("td", { class: "num" }, int(d.attempts)),
    el("td", {}, result),
    el("td", {}, d.status === "pending" || d.status === "failed" ? when(d.next_attempt_at) : "—"),
    el("td", {}, when(d.created_at)),
    el("td", {}, retry && action("Retry", async () => {
      await api("POST", `${path}/${encodeURIComponent(d.id)}/retry`);
      await reload();
    })));
}

function deliveries(path) {
  const box = el("div", { class: "deliveries" });
  const filter = select("status", "Status", [["", "all"], ...DELIVERY_STATUSES], "");
  const load = async () => {
    const status = filter.querySelector("select").value;
    const url = status ? `${path}?status=${encodeURIComponent(status)}` : path;
    box.replaceChildren(await pagedList(url, ["Event type", "Status", { label: "Attempts", num: true }, "Last result",
      "Next attempt", "Created", ""], (d) => deliveryRow(path, d, load)));
  };
  filter.querySelector("select").addEventListener("change", () => load().catch((e) => {
    box.replaceChildren(el("p", { class: "error", role: "alert" }, e.message));
  }));
  return { load, node: el("div", {}, el("h3", {}, "Deliveries"),
    el("div", { class: "actions filter" }, filter, action("Refresh", load)), box) };
}

async function endpointCard(ctx, base, e, reloadList) {
  const path = `${base}/webhooks/${encodeURIComponent(e.id)}`;
  const shown = el("div", { "aria-live": "polite" });
  const tested = el("span", { class: "muted", role: "status" });
  const log = deliveries(`${path}/deliveries`);
  await log.load();
  const c = card(`Endpoint ${e.description || e.url}`, details(ctx, e),
    el("div", { class: "actions" },
      action(e.enabled ? "Disable" : "Enable", async () => {
        await api("PATCH", path, { enabled: !e.enabled });
        await reloadList();
      }),
      action("Send test", async () => {
        await api("POST", `${path}/test`);
        tested.textContent = "Test event queued: Refresh the deliveries to see it.";
      }),
      action("Rotate secret", async () => {
        const r = await api("POST", `${path}/rotate-secret`);
        shown.replaceChildren(secretBox(`rotated-secret-${e.id}`, r.secret,
          "For the next 24 hours the old secret signs too, so update the receiver now."));
      }),
      confirmed("Delete", "Delete this endpoint and its deliveries?", "Yes, delete", async () => {
        await api("DELETE", path);
        await reloadList();
      }),
      tested),
    shown, log.node);
  c.classList.add("endpoint");
  c.setAttribute("data-endpoint", e.id);
  return c;
}

function createCard(ctx, base, shown, reloadList) {
  const fields = [
    input("url", "URL", { required: true, type: "url", placeholder: "https://example.com/hook" }),
    input("event_types", "Event types (comma-separated; empty: all)", { placeholder: "limit.*, key.created" }),
    input("description", "Description (optional)"),
    select("format", "Format", [["standard", "standard (signed JSON)"], ["slack", "slack"]], "standard"),
  ];
  if (ctx.admin) fields.push(select("scope", "Scope", [["tenant", "this tenant"], ["instance", "instance (every tenant)"]], "tenant"));
  return card("New webhook endpoint",
    el("p", { class: "muted" }, "Events are posted as Standard Webhooks, signed with the endpoint's secret; ",
      "receivers verify the webhook-signature header and dedupe on webhook-id.",
      ctx.admin ? " Instance endpoints receive every tenant's events and are listed under every tenant here." : ""),
    form({ "aria-label": "New webhook endpoint" }, fields, "Create endpoint", async (v, f) => {
      const types = (v.event_types ?? "").split(",").map((t) => t.trim()).filter(Boolean);
      const body = { url: v.url.trim(), event_types: types.length ? types : null, format: v.format };
      if (v.description && v.description.trim()) body.description = v.description.trim();
      if (v.scope === "instance") body.scope = "instance";
      const made = await api("POST", `${base}/webhooks`, body);
      shown.replaceChildren(secretBox("new-webhook-secret", made.secret,
        `This is the signing secret of ${made.url}; the server keeps it encrypted and never shows it again.`));
      f.reset();
      await reloadList();
    }), shown);
}

export async function webhooksView(ctx, main, slug) {
  const header = tenantHeader(ctx, slug, "webhooks");
  if (!canManage(ctx)) {
    main.replaceChildren(header, card("Webhooks", el("p", {}, "Only owners manage webhooks: ask an owner of this tenant.")));
    return;
  }
  const base = scope(ctx, slug);
  const shown = el("div", { "aria-live": "polite" });
  const list = el("div", { id: "webhook-endpoints" });
  const reloadList = async () => {
    const page = await api("GET", `${base}/webhooks?limit=100`);
    const cards = [];
    for (const e of page.items) cards.push(await endpointCard(ctx, base, e, reloadList));
    if (!cards.length) cards.push(card("Endpoints", el("p", { class: "muted" }, "No webhook endpoints yet.")));
    if (page.next_cursor) cards.push(el("p", { class: "muted" }, "Only the first 100 endpoints are shown."));
    list.replaceChildren(...cards);
  };
  await reloadList();
  main.replaceChildren(header, createCard(ctx, base, shown, reloadList), list);
}
