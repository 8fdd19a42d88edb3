// What every tenant view shares: where its calls go and its heading.
import { el } from "./api.js";

/** Where tenant-scoped calls go: the admin names the tenant by slug, a key acts on its own. */
export const scope = (ctx, slug) => (ctx.admin ? `/api/tenant/${encodeURIComponent(slug)}` : "/api");

/** What a key of each role may do, in the contract's words, shown under the heading. */
export const ROLE_NOTES = {
  owner: "Signed in with an owner key: you manage this tenant's members, keys and settings.",
  member: "Signed in with a member key: you read this tenant's usage, limits, settings and events, and may record usage.",
  viewer: "Signed in with a viewer key: you read this tenant's usage, limits, settings and events.",
};

export const canManage = (ctx) => ctx.admin || ctx.role === "owner";

export function tenantHeader(ctx, slug, current) {
  const link = (href, label, key) => el("a", { href, "aria-current": current === key ? "page" : null }, label);
  return el("div", {},
    el("h1", {}, ctx.admin ? `Tenant ${slug}` : "Your tenant"),
    !ctx.admin && ROLE_NOTES[ctx.role] && el("p", { class: "muted role-note" }, ROLE_NOTES[ctx.role]),
    el("p", { class: "actions" },
      link(`#/t/${slug}`, canManage(ctx) ? "Members, keys and settings" : "Members and settings", "manage"), " · ",
      link(`#/t/${slug}/usage`, "Usage", "usage"), " · ",
      link(`#/t/${slug}/gateway`, "Gateway", "gateway"),
      // Webhook endpoints are the owner's (the API refuses the other roles), so only they see the tab.
      canManage(ctx) && [" · ", link(`#/t/${slug}/webhooks`, "Webhooks", "webhooks")],
      " · ", link(`#/t/${slug}/billing`, "Billing", "billing"),
      " · ", link(`#/t/${slug}/jobs`, "Jobs", "jobs")));
}
