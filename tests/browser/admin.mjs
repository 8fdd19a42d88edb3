// Drives the admin page in Debian's headless Chromium as a person would, at one viewport:
//   node admin.mjs <base-url> <admin-token> [screenshot-dir] [WIDTHxHEIGHT]
// tests/api/browser.rs runs it at 1280x800 and at a phone's 390x844, each on a fresh server.
import { chromium } from "playwright-core";
import { step, check, watch, listenForCsp, expectRefusals, fits, call, background, RED } from "./lib.mjs";
import { roleFlows, copyWithoutClipboard } from "./roles.mjs";
import { gatewayFlow } from "./gateway.mjs";
import { webhooksFlow } from "./webhooks.mjs";
import { billingFlow, billingReport, billingOff } from "./billing.mjs";
import { jobsFlow, queueOverview, queueOff } from "./jobs.mjs";

const [base, admin, shots, size = "1280x800"] = process.argv.slice(2);
const [width, height] = size.split("x").map(Number);
const problems = [];
const shot = async (page, name) => { if (shots) await page.screenshot({ path: `${shots}/admin-${width}-${name}.png`, fullPage: true }); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width, height } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  watch(page, problems);
  await listenForCsp(page);

  step("sign in as admin");
  await page.goto(base + "/");
  await page.getByLabel("Token").fill("not-the-token-at-all");
  await expectRefusals(problems, async () => {
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("That token was not accepted.").waitFor();
  });
  await page.getByLabel("Token").fill(admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Tenants", exact: true }).waitFor();

  step("the default tenant offers no Deactivate or Delete");
  const defaultRow = page.locator('tr[data-tenant="default"]');
  await defaultRow.getByText("Default tenant").waitFor();
  check((await defaultRow.getByRole("button").count()) === 0, "no buttons on the default tenant's row");

  step("a template without a chosen plan gives the template's plan");
  await page.getByLabel("Name", { exact: true }).fill("Rocket");
  await page.getByLabel("Template").selectOption("startup");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("heading", { name: "Tenant rocket" }).waitFor();
  check((await call(base, admin, "GET", "/api/tenants/rocket")).body.plan === "pro", "startup template gives plan pro");
  check(await page.getByRole("region", { name: "Name and plan" }).getByLabel("Plan").inputValue() === "pro", "the page shows plan pro");
  await fits(page, "tenant page");
  await page.getByRole("link", { name: "Tenants" }).click();
  await page.getByRole("heading", { name: "Tenants", exact: true }).waitFor();

  step("create a tenant from the trial template");
  await page.getByLabel("Name", { exact: true }).fill("Acme Corp");
  await page.getByLabel("Template").selectOption("trial");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("heading", { name: "Tenant acme-corp" }).waitFor();

  step("edit the tenant's name and plan");
  const edit = page.getByRole("region", { name: "Name and plan" });
  await edit.getByLabel("Name").fill("Acme Inc");
  await edit.getByLabel("Plan").selectOption("enterprise");
  await edit.getByRole("button", { name: "Save" }).click();
  await page.waitForFunction(() => document.querySelector('[aria-label="Edit tenant"] input[name=name]')?.defaultValue === "Acme Inc");
  const acme = (await call(base, admin, "GET", "/api/tenants/acme-corp")).body;
  check(acme.name === "Acme Inc" && acme.plan === "enterprise", `tenant edited: ${JSON.stringify(acme)}`);

  step("create a key with an expiry: it joins the list at once and the form is cleared");
  const keys = page.getByRole("region", { name: "API keys" });
  await keys.getByLabel("Name").fill("backend");
  await keys.getByLabel("Role").selectOption("owner");
  await keys.getByLabel(/^Expires/).fill("2030-01-02T03:04");
  await keys.getByRole("button", { name: "Create key" }).click();
  const key = (await page.locator("#new-key").textContent()).trim();
  check(key.startsWith("tk_") && key.length > 30, `key shown: ${key}`);
  const backendRow = keys.locator("tr", { hasText: "backend" });
  await backendRow.waitFor();
  check((await backendRow.textContent()).includes("2030-01-0"), `expiry listed: ${await backendRow.textContent()}`);
  check(await keys.getByLabel("Name").inputValue() === "", "the key form is cleared");
  const listed = (await call(base, admin, "GET", "/api/tenant/acme-corp/keys")).body.items.find((k) => k.name === "backend");
  check(listed.expires_at && listed.expires_at.startsWith("2030-01-0"), `expires_at sent: ${listed.expires_at}`);

  step("copy the key to the clipboard");
  await keys.getByRole("button", { name: "Copy" }).click();
  await keys.getByText("Copied.").waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === key, "the clipboard holds the key");

  step("keys for the other roles");
  const made = {};
  for (const role of ["member", "viewer", "service", "owner"]) {
    const name = role === "owner" ? "temp" : `${role}-key`;
    await keys.getByLabel("Name").fill(name);
    await keys.getByLabel("Role").selectOption(role);
    await keys.getByRole("button", { name: "Create key" }).click();
    await keys.locator("tr", { hasText: name }).waitFor();
    made[name] = (await page.locator("#new-key").textContent()).trim();
  }

  step("Revoke asks first, and Cancel keeps the key");
  const tempRow = keys.locator("tr", { hasText: "temp" });
  await tempRow.getByRole("button", { name: "Revoke" }).click();
  const ask = tempRow.getByRole("group", { name: "Revoke key temp?" });
  await ask.waitFor();
  check((await call(base, made.temp, "GET", "/api/features")).status === 200, "one click did not revoke");
  check(await background(ask.getByRole("button", { name: "Yes, revoke" })) === RED, "the yes button is red");
  await ask.getByRole("button", { name: "Cancel" }).click();
  await ask.waitFor({ state: "hidden" });
  await tempRow.getByRole("button", { name: "Revoke" }).click();
  await ask.getByRole("button", { name: "Yes, revoke" }).click();
  await tempRow.getByText("revoked").waitFor();
  check((await call(base, made.temp, "GET", "/api/features")).status === 401, "the revoked key is refused");

  step("Remove member asks first; the API's refusal shows beside the button");
  const members = page.getByRole("region", { name: "Members" });
  await members.getByLabel("User id").fill("alice");
  await members.getByRole("form", { name: "Add member" }).getByLabel("Role").selectOption("owner");
  await members.getByRole("button", { name: "Add or change" }).click();
  const alice = members.locator("tr", { hasText: "alice" });
  await alice.getByRole("button", { name: "Remove" }).click();
  await expectRefusals(problems, async () => {
    await alice.getByRole("group", { name: "Remove alice?" }).getByRole("button", { name: "Yes, remove" }).click();
    await alice.getByRole("alert").filter({ hasText: /owner/ }).waitFor();
  });
  await members.getByLabel("User id").fill("bob");
  await members.getByRole("button", { name: "Add or change" }).click();
  const bob = members.locator("tr", { hasText: "bob" });
  await bob.getByRole("button", { name: "Remove" }).click();
  await bob.getByRole("button", { name: "Yes, remove" }).click();
  await bob.waitFor({ state: "detached" });

  step("change a limit through the settings form");
  const settings = page.getByRole("region", { name: /^Settings/ });
  await settings.getByLabel("Daily cost limit (USD)").fill("1");
  await settings.getByLabel("Monthly cost limit (USD)").fill("3");
  await settings.getByLabel("Warn at %").fill("80");
  await settings.getByRole("button", { name: "Save settings" }).click();
  await page.getByRole("heading", { name: "Settings (version 2)" }).waitFor();
  check((await page.locator("#new-key").count()) === 0, "the key is not shown again");
  await settings.getByLabel("Warn at %").fill("250");
  await expectRefusals(problems, async () => {
    await page.getByRole("region", { name: /^Settings/ }).getByRole("button", { name: "Save settings" }).click();
    await page.getByRole("alert").filter({ hasText: "warn_at_percent" }).waitFor();
  });

  step("what changed between versions 1 and 2, field by field");
  const history = page.getByRole("region", { name: "History" });
  await history.getByRole("button", { name: "Compare" }).click();
  const diffRow = page.locator("#settings-diff tr", { hasText: "Monthly cost limit" });
  await diffRow.waitFor();
  check(/\$10\.00\s*\$3\.00/.test(await diffRow.textContent()), `diff row: ${await diffRow.textContent()}`);
  check((await page.locator("#settings-diff tbody tr").count()) === 1, "only the monthly limit changed");

  step("Remove provider key asks first");
  const pks = page.getByRole("region", { name: "Provider keys" });
  await pks.getByLabel("Provider", { exact: true }).fill("openai");
  await pks.getByLabel("API key").fill("sk-test-0123456789abcdef");
  await pks.getByRole("button", { name: "Store encrypted" }).click();
  const openai = pks.locator("tr", { hasText: "openai" });
  await openai.getByRole("button", { name: "Remove" }).click();
  await openai.getByRole("button", { name: "Cancel" }).click();
  check(Object.keys((await call(base, admin, "GET", "/api/tenant/acme-corp/settings")).body.provider_keys).length === 1, "kept");
  await openai.getByRole("button", { name: "Remove" }).click();
  await openai.getByRole("button", { name: "Yes, remove" }).click();
  await openai.waitFor({ state: "detached" });
  await fits(page, "tenant page");
  await shot(page, "tenant");

  step("ingest usage through the API with the new key");
  const res = await call(base, key, "POST", "/api/usage/events", { events: [
    { model: "gpt-4o-mini", input_tokens: 1200, output_tokens: 300, cost_usd: 0.5, agent_name: "writer" },
    { model: "claude-haiku-4-5", input_tokens: 800, output_tokens: 100, cost_usd: 0.35, agent_name: "checker" },
  ] });
  check(res.status === 201, `ingest answered ${res.status}`);

  await usageChecks(page);
  await shot(page, "usage");

  step("roll the settings back");
  await page.getByRole("link", { name: "Members, keys and settings" }).click();
  await page.getByRole("button", { name: "Roll back to 1" }).click();
  await page.getByRole("heading", { name: "Settings (version 3)" }).waitFor();
  const daily = await page.getByRole("region", { name: /^Settings/ }).getByLabel("Daily cost limit (USD)").inputValue();
  check(daily === "1", `trial template's limit is back, got ${daily}`);

  await gatewayFlow(page, { base, admin, serviceKey: made["service-key"], slug: "acme-corp", shot });

  // tests/api/browser.rs starts the receiver and lets the server post to loopback.
  check(process.env.WEBHOOK_RECEIVER, "WEBHOOK_RECEIVER names the test's webhook receiver");
  await webhooksFlow(page, { base, admin, slug: "acme-corp", receiver: process.env.WEBHOOK_RECEIVER, shot });

  await billingFlow(page, { base, admin, shot, problems });
  await jobsFlow(page, { base, admin, shot, problems });

  await adminViews(page);

  step("narrow screen stays usable");
  await page.setViewportSize({ width: 360, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `page wider than 360 px by ${overflow}`);
  await page.setViewportSize({ width, height });

  step("sign out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  check((await page.evaluate(() => sessionStorage.length)) === 0, "token cleared");

  await roleFlows(page, problems, { key, ...made }, shot);
  await copyWithoutClipboard(browser, { base, admin, width, height, problems });
  // tests/api/browser.rs starts a second server, without ENABLE_BILLING.
  check(process.env.BILLING_OFF_BASE, "BILLING_OFF_BASE names the server with billing off");
  await billingOff(browser, { base: process.env.BILLING_OFF_BASE, admin, width, height, problems });
  // The same second server has the queue off too.
  await queueOff(browser, { base: process.env.BILLING_OFF_BASE, admin, width, height, problems });

  check(problems.length === 0, `console errors, CSP violations or 404s:\n${problems.join("\n")}`);
  console.log("browser test passed");
} finally {
  await browser.close();
}

async function usageChecks(page) {
  step("see the totals, the chart with its axis and a limit bar in the warning state");
  await page.getByRole("link", { name: "Usage" }).first().click();
  const totals = page.locator("#totals");
  await totals.getByText("$0.85").first().waitFor();
  check((await totals.textContent()).includes("2"), "two events counted");
  const bars = await page.locator("svg.chart rect").evaluateAll((rs) => rs.map((r) => Number(r.getAttribute("height"))));
  check(bars.length === 30 && bars.some((h) => h > 0), `chart bars ${bars}`);
  const ticks = await page.locator("svg.chart .y-axis text").allTextContents();
  check(ticks[0] === "$0.00" && ticks.at(-1) === "$1.00", `y-axis ${ticks}`);
  await page.locator('[data-limit="daily_cost_usd"][data-status="warning"]').waitFor();
  const color = await page.locator('[data-limit="daily_cost_usd"] .bar span').evaluate((e) => getComputedStyle(e).backgroundColor);
  check(color === "rgb(217, 142, 4)", `warning bar is amber, got ${color}`);
  const limits = await page.locator("#limits").textContent();
  check(limits.includes("Daily cost: $0.85 of $1.00 (85%)") && limits.includes("Monthly cost: $0.85 of $3.00"), `limits read ${limits}`);
  check(!/_usd|_tokens/.test(limits), `no field names in ${limits}`);
  await page.getByRole("cell", { name: "gpt-4o-mini" }).first().waitFor();
  await page.getByRole("cell", { name: "limit.warning" }).waitFor();

  step("the usage events list downloads as CSV with its filters");
  const recent = page.getByRole("region", { name: "Recent usage events" });
  const evFilter = recent.getByRole("form", { name: "Filter events" });
  await evFilter.getByLabel("Model").fill("gpt-4o-mini");
  await evFilter.getByRole("button", { name: "Filter" }).click();
  await recent.getByRole("cell", { name: "claude-haiku-4-5" }).waitFor({ state: "detached" });
  const csvLink = recent.getByRole("link", { name: "Download CSV" });
  const href = await csvLink.getAttribute("href");
  check(/^\/api\/tenant\/acme-corp\/usage\/events\/export\?model=gpt-4o-mini$/.test(href), `CSV link ${href}`);
  const [file] = await Promise.all([page.waitForEvent("download"), csvLink.click()]);
  const csv = await new Promise((resolve, reject) => file.createReadStream().then((s) => {
    let text = "";
    s.on("data", (d) => { text += d; });
    s.on("end", () => resolve(text));
    s.on("error", reject);
  }, reject));
  const lines = csv.trim().split("\n");
  check(lines[0].startsWith("id,tenant_id,event_id,timestamp,model,") && lines.length === 2 && lines[1].includes("gpt-4o-mini"),
    `downloaded CSV ${csv.slice(0, 300)}`);
  check(file.suggestedFilename() === "usage-events.csv", `file name ${file.suggestedFilename()}`);

  step("usage over a date range, grouped");
  const breakdown = page.locator("#breakdown");
  await breakdown.locator("tr", { hasText: "claude-haiku-4-5" }).getByText("$0.35").first().waitFor();
  const form = page.getByRole("form", { name: "Usage breakdown" });
  await form.getByLabel("Group by").selectOption("agent_name");
  await form.getByRole("button", { name: "Show" }).click();
  await breakdown.locator("tr", { hasText: "writer" }).getByText("$0.50").first().waitFor();
  await form.getByLabel("From").fill("2020-01-01");
  await form.getByLabel("To (included)").fill("2020-01-31");
  await form.getByRole("button", { name: "Show" }).click();
  await breakdown.locator("tr", { hasText: "writer" }).waitFor({ state: "detached" });
  check((await breakdown.locator("tr.total").textContent()).includes("$0.00"), "nothing in January 2020");

  step("operational events by severity and category");
  const events = page.getByRole("region", { name: "Operational events" });
  const filter = events.getByRole("form", { name: "Filter operational events" });
  await filter.getByLabel("Severity").selectOption("warning");
  await filter.getByRole("button", { name: "Filter" }).click();
  await events.getByRole("cell", { name: "limit.warning" }).waitFor();
  await events.getByRole("cell", { name: "key.created" }).first().waitFor({ state: "detached" });
  await filter.getByLabel("Severity").selectOption("");
  await filter.getByLabel("Category").selectOption("security");
  await filter.getByRole("button", { name: "Filter" }).click();
  await events.getByRole("cell", { name: "key.created" }).first().waitFor();
  check((await events.getByRole("cell", { name: "limit.warning" }).count()) === 0, "security shows no limit events");
  await fits(page, "usage page");
}

async function adminViews(page) {
  step("the pricing editor sets a price and shows a refusal beside the form");
  await page.getByRole("link", { name: "Pricing" }).click();
  const set = page.getByRole("form", { name: "Set a price" });
  await set.getByLabel("Model").fill("house-model");
  await set.getByLabel(/^Input/).fill("abc");
  await set.getByLabel(/^Output/).fill("2");
  await set.getByRole("button", { name: "Save price" }).click();
  await set.getByRole("alert").filter({ hasText: "number of dollars" }).waitFor();
  await set.getByLabel(/^Input/).fill("1.25");
  await set.getByRole("button", { name: "Save price" }).click();
  await page.locator("tr", { hasText: "house-model" }).getByRole("cell", { name: "$1.25" }).waitFor();
  await page.locator("tr", { hasText: "house-model" }).getByRole("cell", { name: "$2.00" }).waitFor();
  const price = (await call(base, admin, "GET", "/api/pricing")).body.items.find((p) => p.model === "house-model");
  check(Number(price.input_usd_per_million) === 1.25 && Number(price.output_usd_per_million) === 2, `price ${JSON.stringify(price)}`);
  await page.locator("tr", { hasText: "gpt-4o-mini" }).first().getByRole("button", { name: "Edit" }).click();
  check(await set.getByLabel("Model").inputValue() === "gpt-4o-mini", "Edit fills the form");
  await fits(page, "pricing page");
  await shot(page, "pricing");

  step("the instance view names tenants and labels flags");
  await page.getByRole("link", { name: "Instance" }).click();
  await page.getByRole("region", { name: "Requests by tenant since start" }).getByRole("cell", { name: "Acme Inc" }).waitFor();
  await page.getByRole("cell", { name: "Several tenants" }).waitFor();
  const cells = await page.locator("main td").allTextContents();
  check(!cells.some((c) => /[0-9a-f]{8}-[0-9a-f]{4}-/.test(c)), `no UUIDs: ${cells}`);
  check(!cells.some((c) => /multi_tenant|usage_tracking/.test(c)), "no flag field names");
  await fits(page, "instance page");
  await shot(page, "instance");
  await billingReport(page, { base, admin, shot });
  await queueOverview(page, { base, admin, shot });

  step("Deactivate asks first; Delete for good looks destructive");
  await page.getByRole("link", { name: "Tenants" }).click();
  const rocket = page.locator('tr[data-tenant="rocket"]');
  await rocket.getByRole("button", { name: "Deactivate" }).click();
  await rocket.getByRole("button", { name: "Cancel" }).click();
  check((await call(base, admin, "GET", "/api/tenants/rocket")).body.status === "active", "one click did not deactivate");
  await rocket.getByRole("button", { name: "Deactivate" }).click();
  await rocket.getByRole("button", { name: "Yes, deactivate" }).click();
  await page.locator('tr[data-tenant="rocket"]').getByText("inactive").waitFor();
  await page.locator('tr[data-tenant="rocket"]').getByRole("button", { name: "Delete…" }).click();
  const del = page.locator('tr[data-tenant="rocket"]').getByRole("button", { name: "Delete for good" });
  check(await background(del) === RED, "Delete for good is solid red");
  await fits(page, "tenants page");
  await shot(page, "tenants");
  await page.locator('tr[data-tenant="rocket"]').getByLabel(/^Type rocket/).fill("rocket");
  await del.click();
  await page.locator('tr[data-tenant="rocket"]').waitFor({ state: "detached" });
}
