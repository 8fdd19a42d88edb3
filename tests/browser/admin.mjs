// Drives the admin page in headless Chromium, as a first-time self-hoster would: sign in as
// admin, create a tenant and a key (shown once), change settings, see usage ingested through
// the API (totals, chart, a limit bar in the warning state), roll settings back, sign out.
// Fails on any console error, page error or CSP violation.
// Usage: node admin.mjs <base-url> <admin-token> [screenshot.png]
import { chromium } from "playwright-core";

const [base, admin, shot] = process.argv.slice(2);
const problems = [];
const step = (s) => console.log(`- ${s}`);
const check = (ok, what) => { if (!ok) throw new Error(`check failed: ${what}`); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });

  step("sign in as admin");
  await page.goto(base + "/");
  await page.getByLabel("Token").fill("not-the-token-at-all");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That token was not accepted.").waitFor();
  problems.length = 0; // the refused sign-in logs its 401; that one is expected
  await page.getByLabel("Token").fill(admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Tenants", exact: true }).waitFor();

  step("create a tenant from the trial template");
  await page.getByLabel("Name", { exact: true }).fill("Acme Corp");
  await page.getByLabel("Template").selectOption("trial");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("heading", { name: "Tenant acme-corp" }).waitFor();

  step("create a key and see it once");
  const keys = page.getByRole("region", { name: "API keys" });
  await keys.getByLabel("Name").fill("backend");
  await keys.getByLabel("Role").selectOption("owner");
  await keys.getByRole("button", { name: "Create key" }).click();
  const key = (await page.locator("#new-key").textContent()).trim();
  check(key.startsWith("tk_") && key.length > 30, `key shown: ${key}`);

  step("change a limit through the settings form");
  const settings = page.getByRole("region", { name: /^Settings/ });
  await settings.getByLabel("Daily cost limit (USD)").fill("1");
  await settings.getByLabel("Warn at %").fill("80");
  await settings.getByRole("button", { name: "Save settings" }).click();
  await page.getByRole("heading", { name: "Settings (version 2)" }).waitFor();
  check((await page.locator("#new-key").count()) === 0, "the key is not shown again");
  await settings.getByLabel("Warn at %").fill("250");
  await page.getByRole("region", { name: /^Settings/ }).getByRole("button", { name: "Save settings" }).click();
  await page.getByRole("alert").filter({ hasText: "warn_at_percent" }).waitFor();
  problems.length = 0; // the refused save logs its 400; the message is shown next to the form

  step("ingest usage through the API with the new key");
  const res = await fetch(base + "/api/usage/events", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ events: [
      { model: "gpt-4o-mini", input_tokens: 1200, output_tokens: 300, cost_usd: 0.5, agent_name: "writer" },
      { model: "claude-haiku-4-5", input_tokens: 800, output_tokens: 100, cost_usd: 0.35, agent_name: "checker" },
    ] }),
  });
  check(res.status === 201, `ingest answered ${res.status}`);

  step("see the totals, the chart and a limit bar in the warning state");
  await page.getByRole("link", { name: "Usage" }).first().click();
  const totals = page.locator("#totals");
  await totals.getByText("$0.85").first().waitFor();
  check((await totals.textContent()).includes("2"), "two events counted");
  const bars = await page.locator("svg.chart rect").evaluateAll((rs) => rs.map((r) => Number(r.getAttribute("height"))));
  check(bars.length === 30 && bars.some((h) => h > 0), `chart bars ${bars}`);
  await page.locator('[data-limit="daily_cost_usd"][data-status="warning"]').waitFor();
  const color = await page.locator('[data-limit="daily_cost_usd"] .bar span').evaluate((e) => getComputedStyle(e).backgroundColor);
  check(color === "rgb(217, 142, 4)", `warning bar is amber, got ${color}`);
  await page.getByRole("cell", { name: "gpt-4o-mini" }).first().waitFor();
  await page.getByRole("cell", { name: "limit.warning" }).waitFor();
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  step("roll the settings back");
  await page.getByRole("link", { name: "Members, keys and settings" }).click();
  await page.getByRole("button", { name: "Roll back to 1" }).click();
  await page.getByRole("heading", { name: "Settings (version 3)" }).waitFor();
  const daily = await page.getByRole("region", { name: /^Settings/ }).getByLabel("Daily cost limit (USD)").inputValue();
  check(daily === "1", `trial template's limit is back, got ${daily}`);

  step("narrow screen stays usable");
  await page.setViewportSize({ width: 360, height: 800 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `page wider than 360 px by ${overflow}`);

  step("sign out");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  check((await page.evaluate(() => sessionStorage.length)) === 0, "token cleared");

  step("a tenant key signs in to its own tenant only");
  await page.setViewportSize({ width: 1100, height: 900 });
  await page.getByLabel("Token").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Your tenant" }).waitFor();
  check((await page.getByRole("link", { name: "Instance" }).count()) === 0, "no instance view for a key");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();

  check(problems.length === 0, `console errors or CSP violations:\n${problems.join("\n")}`);
  console.log("browser test passed");
} finally {
  await browser.close();
}
