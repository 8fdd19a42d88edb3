// One tenant's page: its name and plan (admin), members, API keys, settings, provider keys and
// history. What a key may not change is shown read-only or left out.
import { api, el, form, input, select } from "./api.js";
import { when } from "./format.js";
import { card, pagedList, confirmed, route, copyButton } from "./ui.js";
import { scope, tenantHeader, canManage } from "./common.js";
import { settingsForm, settingsRead, providerKeys, historyCard } from "./settings.js";

const ROLES = ["owner", "member", "viewer"];
const KEY_ROLES = ["owner", "member", "viewer", "service"];
export const PLANS = ["basic", "pro", "enterprise"];

async function tenantCard(slug) {
  const t = await api("GET", `/api/tenants/${encodeURIComponent(slug)}`);
  return card(`Name and plan`, form({ "aria-label": "Edit tenant" }, [
    input("name", "Name", { required: true, value: t.name }),
    select("plan", "Plan", PLANS, t.plan),
  ], "Save", async (v) => {
    await api("PATCH", `/api/tenants/${t.id}`, { name: v.name, plan: v.plan });
    route();
  }), el("p", { class: "muted" }, `Slug ${t.slug} · id ${t.id} · ${t.status} · created ${when(t.created_at)}`));
}

async function membersCard(base, manage) {
  const list = await pagedList(`${base}/members`, manage ? ["User", "Role", "Since", ""] : ["User", "Role", "Since"], (m) => el("tr", {},
    el("td", {}, m.user_id),
    el("td", {}, manage
      ? form({ "aria-label": `Role of ${m.user_id}`, class: "inline compact" }, [select("role", "Role", ROLES, m.role)], "Change",
        async (v) => { await api("PUT", `${base}/members/${encodeURIComponent(m.user_id)}`, { role: v.role }); route(); })
      : m.role),
    el("td", {}, when(m.created_at)),
    manage && el("td", {}, confirmed("Remove", `Remove ${m.user_id}?`, "Yes, remove", async () => {
      await api("DELETE", `${base}/members/${encodeURIComponent(m.user_id)}`); route();
    }))));
  return card("Members", manage && form({ "aria-label": "Add member" },
    [input("user_id", "User id", { required: true }), select("role", "Role", ROLES, "member")],
    "Add or change", async (v) => { await api("PUT", `${base}/members/${encodeURIComponent(v.user_id)}`, { role: v.role }); route(); }),
  list);
}

/** The new key, shown once, with a Copy that works without the clipboard API (plain-http LAN). */
function shownOnce(key) {
  const secret = el("p", { class: "secret", id: "new-key" }, key);
  return [el("p", {}, "Shown once — store it now:"), secret, copyButton(key, secret)];
}

async function keysCard(base) {
  const shown = el("div", { "aria-live": "polite" });
  const listBox = el("div");
  const loadList = async () => listBox.replaceChildren(await pagedList(`${base}/keys`, ["Name", "Role", "User", "Prefix", "Expires", ""], (k) => el("tr", {},
    el("td", {}, k.name), el("td", {}, k.role), el("td", {}, k.user_id ?? "—"), el("td", {}, el("code", {}, k.prefix)),
    el("td", {}, k.revoked_at ? "revoked" : k.expires_at ? when(k.expires_at) : "never"),
    el("td", {}, !k.revoked_at && confirmed("Revoke", `Revoke key ${k.name}?`, "Yes, revoke", async () => {
      await api("DELETE", `${base}/keys/${k.id}`); await loadList();
    })))));
  await loadList();
  const create = form({ "aria-label": "Create key" }, [
    input("name", "Name", { required: true }), select("role", "Role", KEY_ROLES, "service"),
    input("user_id", "User id (optional)"),
    input("expires_at", "Expires (optional, your time)", { type: "datetime-local" }),
  ], "Create key", async (v, f) => {
    const body = { name: v.name, role: v.role };
    if (v.user_id) body.user_id = v.user_id;
    if (v.expires_at) {
      const at = new Date(v.expires_at);
      if (Number.isNaN(at.getTime())) throw new Error("The expiry is not a date and time.");
      body.expires_at = at.toISOString().replace(/\.\d{3}Z$/, "Z");
    }
    const k = await api("POST", `${base}/keys`, body);
    shown.replaceChildren(...shownOnce(k.key));
    f.reset();
    await loadList();
  });
  return card("API keys", create, shown, listBox);
}

export async function tenantView(ctx, main, slug) {
  const base = scope(ctx, slug);
  const manage = canManage(ctx);
  const sections = [tenantHeader(ctx, slug, "manage")];
  if (ctx.admin) sections.push(await tenantCard(slug));
  sections.push(await membersCard(base, manage));
  if (manage) sections.push(await keysCard(base));
  const s = await api("GET", `${base}/settings`);
  sections.push(card(`Settings (version ${s.version})`, manage ? settingsForm(base, s) : settingsRead(s)));
  sections.push(card("Provider keys", providerKeys(base, s, manage)));
  sections.push(await historyCard(base, s, manage));
  main.replaceChildren(...sections);
}
