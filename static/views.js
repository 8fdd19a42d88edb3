// The page's views. Each renders into `main` from the public API only.
import { api, el, usd, int, when, form, input, select } from "./api.js";

const route = () => router();

const ROLES = ["owner", "member", "viewer"];
const KEY_ROLES = ["owner", "member", "viewer", "service"];

/** Where tenant-scoped calls go: the admin names the tenant by slug, a key acts on its own. */
export const scope = (ctx, slug) => (ctx.admin ? `/api/tenant/${encodeURIComponent(slug)}` : "/api");

function card(title, ...children) {
  return el("section", { class: "card", "aria-label": title }, el("h2", {}, title), ...children);
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { class: h.num ? "num" : null }, h.label ?? h)))),
    el("tbody", {}, rows.length ? rows : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "None yet."))]));
}

/** A list with a "More" button that follows next_cursor. */
async function pagedList(path, headers, toRow) {
  const body = el("tbody");
  const more = el("button", { type: "button", class: "secondary", hidden: true }, "More");
  const t = el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))), body);
  let cursor = null;
  const load = async () => {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}limit=25${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    page.items.forEach((i) => body.append(toRow(i)));
    if (!page.items.length && !body.children.length) {
      body.append(el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, "Nothing to show.")));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
  };
  more.addEventListener("click", load);
  await load();
  return el("div", {}, t, more);
}

export async function tenantsView(ctx, main) {
  if (!ctx.features.multi_tenant) {
    main.replaceChildren(el("h1", {}, "Tenants"),
      el("p", { class: "notice" },
        "Multi-tenancy is off: this instance runs the OSS single-tenant edition on the default tenant. ",
        "To serve several tenants, restart tenantry with ENABLE_MULTI_TENANT=true."),
      el("p", {}, el("a", { href: "#/t/default" }, "Open the default tenant")));
    return;
  }
  const list = await pagedList("/api/tenants", ["Name", "Slug", "Plan", "Status", ""], (t) => {
    const confirmBox = el("span", { hidden: true });
    const row = el("tr", {},
      el("td", {}, el("a", { href: `#/t/${t.slug}` }, t.name)),
      el("td", {}, t.slug), el("td", {}, t.plan),
      el("td", {}, el("span", { class: `badge ${t.status}` }, t.status)),
      el("td", {}, el("div", { class: "actions" },
        el("button", { type: "button", class: "secondary", onclick: async () => {
          await api("POST", `/api/tenants/${t.id}/${t.status === "active" ? "deactivate" : "reactivate"}`);
          route();
        } }, t.status === "active" ? "Deactivate" : "Reactivate"),
        t.status === "inactive" && el("button", { type: "button", class: "danger", onclick: () => { confirmBox.hidden = false; } }, "Delete…"),
        confirmBox)));
    confirmBox.append(form({ "aria-label": `Delete ${t.slug}` },
      [input("confirm", `Type ${t.slug} to delete it and everything it owns`, { required: true, autocomplete: "off" })],
      "Delete for good", async (v) => {
        await api("DELETE", `/api/tenants/${t.id}?confirm=${encodeURIComponent(v.confirm)}`);
        route();
      }));
    return row;
  });
  const create = form({ "aria-label": "Create tenant" }, [
    input("name", "Name", { required: true }),
    input("slug", "Slug (optional)", { pattern: "[a-z0-9-]{3,63}" }),
    select("plan", "Plan", ["basic", "pro", "enterprise"], "basic"),
    select("template", "Template", ["none", "trial", "startup", "enterprise"], "none"),
  ], "Create tenant", async (v) => {
    const body = { name: v.name, plan: v.plan };
    if (v.slug) body.slug = v.slug;
    if (v.template !== "none") body.template = v.template;
    const t = await api("POST", "/api/tenants", body);
    location.hash = `#/t/${t.slug}`;
  });
  main.replaceChildren(el("h1", {}, "Tenants"), card("New tenant", create), card("All tenants", list));
}

function tenantHeader(ctx, slug, current) {
  const link = (href, label, key) => el("a", { href, "aria-current": current === key ? "page" : null }, label);
  return el("div", {},
    el("h1", {}, ctx.admin ? `Tenant ${slug}` : "Your tenant"),
    el("p", { class: "actions" }, link(`#/t/${slug}`, "Members, keys and settings", "manage"), " · ",
      link(`#/t/${slug}/usage`, "Usage", "usage")));
}

export async function tenantView(ctx, main, slug) {
  const base = scope(ctx, slug);
  const sections = [tenantHeader(ctx, slug, "manage")];

  // Members
  const members = await pagedList(`${base}/members`, ["User", "Role", "Since", ""], (m) => el("tr", {},
    el("td", {}, m.user_id),
    el("td", {}, form({ "aria-label": `Role of ${m.user_id}` }, [select("role", "Role", ROLES, m.role)], "Change",
      async (v) => { await api("PUT", `${base}/members/${encodeURIComponent(m.user_id)}`, { role: v.role }); route(); })),
    el("td", {}, when(m.created_at)),
    el("td", {}, el("button", { type: "button", class: "danger", onclick: async () => {
      try { await api("DELETE", `${base}/members/${encodeURIComponent(m.user_id)}`); route(); }
      catch (e) { alertNear(main, e); }
    } }, "Remove"))));
  sections.push(card("Members",
    form({ "aria-label": "Add member" }, [input("user_id", "User id", { required: true }), select("role", "Role", ROLES, "member")],
      "Add or change", async (v) => { await api("PUT", `${base}/members/${encodeURIComponent(v.user_id)}`, { role: v.role }); route(); }),
    members));

  // API keys
  const shown = el("div", { "aria-live": "polite" });
  const keys = await pagedList(`${base}/keys`, ["Name", "Role", "User", "Prefix", "Expires", ""], (k) => el("tr", {},
    el("td", {}, k.name), el("td", {}, k.role), el("td", {}, k.user_id ?? "—"), el("td", {}, el("code", {}, k.prefix)),
    el("td", {}, k.revoked_at ? "revoked" : when(k.expires_at)),
    el("td", {}, !k.revoked_at && el("button", { type: "button", class: "danger", onclick: async () => {
      await api("DELETE", `${base}/keys/${k.id}`); route();
    } }, "Revoke"))));
  sections.push(card("API keys",
    form({ "aria-label": "Create key" }, [input("name", "Name", { required: true }), select("role", "Role", KEY_ROLES, "service"),
      input("user_id", "User id (optional)")], "Create key", async (v) => {
      const body = { name: v.name, role: v.role };
      if (v.user_id) body.user_id = v.user_id;
      const k = await api("POST", `${base}/keys`, body);
      const copy = el("button", { type: "button", class: "secondary", onclick: async () => {
        await navigator.clipboard.writeText(k.key); copy.textContent = "Copied";
      } }, "Copy");
      shown.replaceChildren(el("p", {}, "Shown once — store it now:"), el("p", { class: "secret", id: "new-key" }, k.key), copy);
    }), shown, keys));

  // Settings
  const s = await api("GET", `${base}/settings`);
  sections.push(card(`Settings (version ${s.version})`, settingsForm(base, s)));
  sections.push(card("Provider keys", providerKeys(base, s)));
  sections.push(card("History", await pagedList(`${base}/settings/history`, ["Version", "Changed by", "When", ""], (h) => el("tr", {},
    el("td", {}, h.version), el("td", {}, h.changed_by), el("td", {}, when(h.changed_at)),
    el("td", {}, h.version !== s.version && el("button", { type: "button", class: "secondary", onclick: async () => {
      await api("POST", `${base}/settings/rollback`, { version: h.version }); route();
    } }, `Roll back to ${h.version}`))))));
  main.replaceChildren(...sections);
}

function alertNear(main, e) {
  main.prepend(el("p", { class: "error", role: "alert" }, e.message));
}

function settingsForm(base, s) {
  const num = (name, label, value, attrs = {}) => input(name, label, { type: "text", inputmode: "decimal", value: value ?? "", ...attrs });
  const f = form({ "aria-label": "Settings" }, [
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
    for (const [k, x] of Object.entries(v)) {
      if (["allowed_models", "default_model", "execution_mode"].includes(k)) continue;
      if (x.trim() !== "" && !/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(x.trim())) throw new Error(`${k} must be a number`);
    }
    await api("PATCH", `${base}/settings`, body);
    route();
  });
  return f;
}

function providerKeys(base, s) {
  const rows = Object.entries(s.provider_keys).map(([p, k]) => el("tr", {},
    el("td", {}, p), el("td", {}, el("code", {}, k.masked)), el("td", {}, when(k.updated_at)),
    el("td", {}, el("button", { type: "button", class: "danger", onclick: async () => {
      await api("DELETE", `${base}/settings/provider-keys/${p}`); route();
    } }, "Remove"))));
  return el("div", {},
    form({ "aria-label": "Set provider key" }, [input("provider", "Provider", { required: true, placeholder: "openai" }),
      input("api_key", "API key", { required: true, type: "password", autocomplete: "off" })], "Store encrypted", async (v) => {
      await api("PUT", `${base}/settings/provider-keys/${encodeURIComponent(v.provider)}`, { api_key: v.api_key }); route();
    }),
    table(["Provider", "Key", "Updated", ""], rows));
}

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
    return el("div", { class: "limit", "data-limit": c.limit, "data-status": c.status },
      el("div", {}, `${c.limit}: ${c.used} of ${c.max} (${c.percent}%) `, el("span", { class: `badge ${c.status}` }, c.status)),
      el("div", { class: `bar ${c.status}`, role: "img", "aria-label": `${c.limit} ${c.percent}% ${c.status}` }, fill));
  }));
}

/** Daily estimated cost for the last 30 days, as an SVG bar chart drawn here. */
function chart(groups, days) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 600 180");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Daily cost, last 30 days");
  const byDay = new Map(groups.map((g) => [g.key, Number(g.estimated_cost_usd)]));
  const max = Math.max(0.000001, ...days.map((d) => byDay.get(d) ?? 0));
  const w = 600 / days.length;
  days.forEach((d, i) => {
    const v = byDay.get(d) ?? 0;
    const h = (v / max) * 150;
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", (i * w + 1).toFixed(1));
    r.setAttribute("y", (160 - h).toFixed(1));
    r.setAttribute("width", Math.max(1, w - 2).toFixed(1));
    r.setAttribute("height", h.toFixed(1));
    const t = document.createElementNS(ns, "title");
    t.textContent = `${d}: $${v}`;
    r.append(t);
    svg.append(r);
    // A label a week, and the last day unless it would crowd the weekly one before it.
    if (i % 7 === 0 || (i === days.length - 1 && i % 7 >= 3)) {
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", (i * w).toFixed(1));
      label.setAttribute("y", "176");
      label.textContent = d.slice(5);
      svg.append(label);
    }
  });
  return svg;
}

export async function usageView(ctx, main, slug) {
  const base = scope(ctx, slug);
  const summary = await api("GET", `${base}/usage/summary`);
  const today = new Date();
  const days = [...Array(30).keys()].reverse().map((i) => new Date(today.getTime() - i * 86400000).toISOString().slice(0, 10));
  const stats = await api("GET", `${base}/usage/stats?group_by=day&from=${days[0]}T00:00:00Z`);
  const top = (rows, key) => table([key, { label: "Events", num: true }, { label: "Tokens", num: true }, { label: "Cost", num: true }],
    rows.map((r) => el("tr", {}, el("td", {}, r[key === "Model" ? "model" : "agent_name"]), el("td", { class: "num" }, int(r.events)),
      el("td", { class: "num" }, int(r.total_tokens)), el("td", { class: "num" }, usd(r.estimated_cost_usd)))));

  const eventsBox = el("div");
  const loadEvents = async (filters) => {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v));
    eventsBox.replaceChildren(await pagedList(`${base}/usage/events?${q}`, ["When", "Model", "Agent", "User", "Tokens", "Cost", "Mode"], (e) => el("tr", {},
      el("td", {}, when(e.timestamp)), el("td", {}, e.model), el("td", {}, e.agent_name ?? "—"), el("td", {}, e.user_id ?? "—"),
      el("td", { class: "num" }, int(e.total_tokens)), el("td", { class: "num" }, usd(e.estimated_cost_usd)), el("td", {}, e.execution_mode))));
  };
  await loadEvents({});
  const filters = form({ "aria-label": "Filter events" }, [input("model", "Model"), input("agent_name", "Agent"), input("user_id", "User"),
    input("from", "From (RFC 3339)", { placeholder: "2026-11-01T00:00:00Z" }), input("to", "To (RFC 3339)")], "Filter", loadEvents);

  main.replaceChildren(tenantHeader(ctx, slug, "usage"),
    el("section", { class: "card", id: "totals" }, totals("Today", summary.today), totals("This month", summary.month)),
    card("Daily cost, last 30 days", chart(stats.groups, days)),
    el("section", { class: "card", id: "limits" }, el("h2", {}, "Limits"), limitBars(summary.limits)),
    el("div", { class: "grid" }, card("Top models this month", top(summary.top_models, "Model")),
      card("Top agents this month", top(summary.top_agents, "Agent"))),
    card("Recent usage events", filters, eventsBox),
    card("Operational events", await pagedList(`${base}/events`, ["When", "Type", "Severity", "Message"], (e) => el("tr", {},
      el("td", {}, when(e.created_at)), el("td", {}, e.event_type), el("td", {}, el("span", { class: `badge ${e.severity}` }, e.severity)),
      el("td", {}, e.message)))));
}

export async function instanceView(ctx, main) {
  const f = ctx.features;
  const stats = await api("GET", "/api/stats");
  const rows = Object.entries(stats.tenants).map(([id, s]) => el("tr", {}, el("td", {}, id),
    ...["requests", "allowed", "denied"].map((k) => el("td", { class: "num" }, int(s[k]))),
    ...["avg_latency_ms", "p50_ms", "p95_ms", "p99_ms"].map((k) => el("td", { class: "num" }, s[k]))));
  main.replaceChildren(el("h1", {}, "Instance"),
    card("Edition and flags", table(["Flag", "Value"], [
      ["edition", f.edition], ["multi_tenant", f.multi_tenant], ["usage_tracking", f.usage_tracking],
      ["hosted_queue", f.hosted_queue], ["billing", f.billing],
    ].map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, String(v)))))),
    card("Requests by tenant since start", table(["Tenant", { label: "Requests", num: true }, { label: "Allowed", num: true },
      { label: "Denied", num: true }, { label: "Avg ms", num: true }, { label: "p50", num: true }, { label: "p95", num: true },
      { label: "p99", num: true }], rows)));
}

let router = () => {};
/** The views re-render through the app's router after a change. */
export const setRouter = (fn) => { router = fn; };
