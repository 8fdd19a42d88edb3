// Sign-in, navigation and routing for the admin page.
import { api, el, token, setToken, clearToken, form, input } from "./api.js";
import { tenantsView, tenantView, usageView, gatewayView, webhooksView, billingView, jobsView, instanceView, pricingView, serviceView, setRouter } from "./views.js";

const main = document.getElementById("app");
const nav = document.getElementById("nav");
const signout = document.getElementById("signout");
let ctx = null;

function signIn(message) {
  ctx = null;
  nav.replaceChildren();
  signout.hidden = true;
  main.replaceChildren(el("h1", {}, "Sign in"),
    el("section", { class: "card" },
      el("p", {}, "Use the admin token tenantry printed on first start, or a tenant API key (tk_…)."),
      message && el("p", { class: "error", role: "alert" }, message),
      form({ "aria-label": "Sign in" }, [input("token", "Token", { type: "password", required: true, autocomplete: "off", id: "token" })],
        "Sign in", async (v) => {
          setToken(v.token.trim());
          await start();
        })));
  document.getElementById("token")?.focus();
}

/** Whether a call is allowed: true, or false on 403 (any other failure is thrown). */
async function allowed(method, path, body) {
  try {
    await api(method, path, body);
    return true;
  } catch (e) {
    if (e.status === 403) return false;
    if (e.status === 400) return true; // allowed, and refused only for the empty body below
    throw e;
  }
}

/**
 * A key's role, learnt from what it may do (the API has no "who am I"): reading settings
 * (viewer and up), listing keys (owner), recording usage (member; an empty batch is refused
 * with 400 after the role check, so nothing is written).
 */
async function keyRole() {
  if (!(await allowed("GET", "/api/settings"))) return "service";
  if (await allowed("GET", "/api/keys?limit=1")) return "owner";
  return (await allowed("POST", "/api/usage/events", { events: [] })) ? "member" : "viewer";
}

/** Learns who the token is: the admin (may list tenants) or a tenant key and its role. */
async function start() {
  if (!token()) return signIn();
  try {
    const features = await api("GET", "/api/features");
    // Tenant keys start with tk_; the server refuses an admin token that does.
    const admin = !token().startsWith("tk_");
    ctx = { admin, features, role: admin ? "admin" : await keyRole() };
  } catch (e) {
    clearToken();
    return signIn(e.status === 401 ? "That token was not accepted." : e.message);
  }
  signout.hidden = false;
  const link = (href, label) => el("a", { href }, label);
  nav.replaceChildren(...(ctx.admin
    ? [link("#/", "Tenants"), link("#/instance", "Instance"), link("#/pricing", "Pricing")]
    : ctx.role === "service" ? [link("#/service", "Service key")]
      : [link("#/t/own", "Tenant"), link("#/t/own/usage", "Usage"), link("#/t/own/gateway", "Gateway"),
        ctx.role === "owner" && link("#/t/own/webhooks", "Webhooks"), link("#/t/own/billing", "Billing"),
        link("#/t/own/jobs", "Jobs")].filter(Boolean)));
  await route();
}

/** Where a key lands: what its role may read. */
const landing = () => (ctx.role === "service" ? "#/service" : ctx.role === "owner" ? "#/t/own" : "#/t/own/usage");

async function route() {
  if (!ctx) return signIn();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  for (const a of nav.querySelectorAll("a")) {
    a.setAttribute("aria-current", a.getAttribute("href") === `#/${parts.join("/")}` ? "page" : "false");
  }
  try {
    if (ctx.role === "service" && parts[0] !== "service") {
      location.hash = landing();
      return;
    } else if (parts[0] === "service") {
      await serviceView(ctx, main);
    } else if (parts[0] === "t" && parts[1]) {
      const view = { usage: usageView, gateway: gatewayView, webhooks: webhooksView, billing: billingView, jobs: jobsView }[parts[2]] ?? tenantView;
      // A fourth part is the view's item: the billing view's period, the jobs view's job.
      await view(ctx, main, decodeURIComponent(parts[1]), parts[3] && decodeURIComponent(parts[3]));
    } else if (parts[0] === "instance" && ctx.admin) {
      await instanceView(ctx, main);
    } else if (parts[0] === "pricing" && ctx.admin) {
      await pricingView(ctx, main);
    } else if (ctx.admin) {
      await tenantsView(ctx, main);
    } else {
      location.hash = landing();
      return;
    }
  } catch (e) {
    if (e.status === 401) return;
    main.replaceChildren(el("h1", {}, "Something went wrong"), el("p", { class: "error", role: "alert" }, e.message));
  }
  main.focus();
}

setRouter(route);
window.addEventListener("hashchange", route);
window.addEventListener("tenantry:signed-out", () => signIn("Signed out: the token is no longer accepted."));
signout.addEventListener("click", () => { clearToken(); location.hash = "#/"; signIn(); });
start();
