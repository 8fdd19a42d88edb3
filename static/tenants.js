// The admin's list of tenants: create, deactivate (asked first), reactivate, delete for good.
import { api, el, form, input, select } from "./api.js";
import { card, pagedList, action, confirmed, route } from "./ui.js";
import { PLANS } from "./tenant.js";

/** The default tenant always exists: the API refuses to deactivate or delete it. */
export const DEFAULT_TENANT = "00000000-0000-0000-0000-000000000000";
const TEMPLATES = ["trial", "startup", "enterprise"];

function actions(t) {
  if (t.id === DEFAULT_TENANT) return el("span", { class: "muted" }, "Default tenant");
  const confirmBox = el("div", { class: "delete-box", hidden: true });
  confirmBox.append(form({ "aria-label": `Delete ${t.slug}` },
    [input("confirm", `Type ${t.slug} to delete it and everything it owns`, { required: true, autocomplete: "off" })],
    "Delete for good", async (v) => {
      await api("DELETE", `/api/tenants/${t.id}?confirm=${encodeURIComponent(v.confirm)}`);
      route();
    }));
  confirmBox.querySelector("button[type=submit]").className = "destructive";
  return el("div", { class: "actions" },
    t.status === "active"
      ? confirmed("Deactivate", `Deactivate ${t.name}? Its keys stop working until reactivated.`, "Yes, deactivate", async () => {
        await api("POST", `/api/tenants/${t.id}/deactivate`); route();
      })
      : action("Reactivate", async () => { await api("POST", `/api/tenants/${t.id}/reactivate`); route(); }),
    t.status === "inactive" && el("button", { type: "button", class: "danger", onclick: () => { confirmBox.hidden = false; } }, "Delete…"),
    confirmBox);
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
  const list = await pagedList("/api/tenants", ["Name", "Slug", "Plan", "Status", ""], (t) => el("tr", { "data-tenant": t.slug },
    el("td", {}, el("a", { href: `#/t/${t.slug}` }, t.name)),
    el("td", {}, t.slug), el("td", {}, t.plan),
    el("td", {}, el("span", { class: `badge ${t.status}` }, t.status)),
    el("td", {}, actions(t))));
  const create = form({ "aria-label": "Create tenant" }, [
    input("name", "Name", { required: true }),
    input("slug", "Slug (optional)", { pattern: "[a-z0-9-]{3,63}" }),
    select("template", "Template", [["", "none"], ...TEMPLATES], ""),
    // Unchosen, no plan is sent: the template's plan applies, or basic without a template.
    select("plan", "Plan", [["", "default"], ...PLANS], ""),
  ], "Create tenant", async (v) => {
    const body = { name: v.name };
    if (v.slug) body.slug = v.slug;
    if (v.template) body.template = v.template;
    if (v.plan) body.plan = v.plan;
    const t = await api("POST", "/api/tenants", body);
    location.hash = `#/t/${t.slug}`;
  });
  main.replaceChildren(el("h1", {}, "Tenants"), card("New tenant", create,
    el("p", { class: "muted" }, "The default plan is the template's (startup: pro, enterprise: enterprise), or basic.")), card("All tenants", list));
}
