// Sign-in, navigation and routing for the admin page.
import { api, el, token, setToken, clearToken, form, input } from "./api.js";
import { tenantsView, tenantView, usageView, instanceView, setRouter } from "./views.js";

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

/** Learns who the token is: the admin (may list tenants) or a tenant key. */
async function start() {
  if (!token()) return signIn();
  try {
    const features = await api("GET", "/api/features");
    // Tenant keys start with tk_; the server refuses an admin token that does.
    ctx = { admin: !token().startsWith("tk_"), features };
  } catch (e) {
    clearToken();
    return signIn(e.status === 401 ? "That token was not accepted." : e.message);
  }
  signout.hidden = false;
  const link = (href, label) => el("a", { href }, label);
  nav.replaceChildren(...(ctx.admin
    ? [link("#/", "Tenants"), link("#/instance", "Instance")]
    : [link("#/t/own", "Tenant"), link("#/t/own/usage", "Usage")]));
  await route();
}

async function route() {
  if (!ctx) return signIn();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  for (const a of nav.querySelectorAll("a")) {
    a.setAttribute("aria-current", a.getAttribute("href") === `#/${parts.join("/")}` ? "page" : "false");
  }
  try {
    if (parts[0] === "t" && parts[1]) {
      await (parts[2] === "usage" ? usageView : tenantView)(ctx, main, decodeURIComponent(parts[1]));
    } else if (parts[0] === "instance" && ctx.admin) {
      await instanceView(ctx, main);
    } else if (ctx.admin) {
      await tenantsView(ctx, main);
    } else {
      location.hash = "#/t/own";
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
