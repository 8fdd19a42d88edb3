// A service key's page: it may record usage and read provider credentials, nothing else.
import { api, el, form, input } from "./api.js";
import { flagValue, FLAG_LABELS } from "./format.js";
import { card, table } from "./ui.js";

/** Enough of a secret to tell which one it is. */
const mask = (k) => (k.length > 12 ? `${k.slice(0, 3)}…${k.slice(-4)}` : "…");

export async function serviceView(ctx, main) {
  const f = ctx.features;
  const out = el("div", { id: "credential" });
  const check = form({ "aria-label": "Check credentials" },
    [input("provider", "Provider", { required: true, placeholder: "openai", autocomplete: "off" })], "Check", async (v) => {
      out.replaceChildren();
      const c = await api("GET", `/api/credentials/${encodeURIComponent(v.provider.trim())}`);
      out.replaceChildren(table(["Provider", "Source", "Key"], [el("tr", {},
        el("td", {}, c.provider), el("td", {}, c.source === "byo_key" ? "the tenant's own key" : "the instance's key"),
        el("td", {}, el("code", {}, mask(c.api_key))))]));
    });
  main.replaceChildren(el("h1", {}, "Your service key"),
    el("p", { class: "muted role-note" },
      "Signed in with a service key: it records usage and reads provider credentials for your application; ",
      "usage figures and settings need a viewer, member or owner key."),
    card("What this key may do", el("ul", {},
      el("li", {}, "Record usage: ", el("code", {}, "POST /api/usage/events"), f.usage_tracking ? "" : " (usage tracking is off on this instance)"),
      el("li", {}, "Read a provider key: ", el("code", {}, "GET /api/credentials/{provider}")),
      el("li", {}, "Call models through the gateway, metered: base URL ", el("code", {}, `${location.origin}/v1`),
        " for OpenAI SDKs, ", el("code", {}, location.origin), " for Anthropic's, this key as the API key."))),
    card("Credentials", el("p", { class: "muted" }, "Whether a provider key is there for this tenant (shown masked)."), check, out),
    card("Plan features", f.tenant_features.length
      ? el("ul", {}, f.tenant_features.map((x) => el("li", {}, x))) : el("p", { class: "muted" }, "None.")),
    card("Instance", table(["Flag", "Value"],
      Object.entries(FLAG_LABELS).map(([k, label]) => el("tr", {}, el("td", {}, label), el("td", {}, flagValue(f[k])))))));
}
