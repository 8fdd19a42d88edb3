// Signing in with each kind of tenant key, and copying a key where there is no clipboard API.
import { step, check, watch, listenForCsp, expectRefusals, fits } from "./lib.mjs";
import { gatewayRead } from "./gateway.mjs";
import { webhooksByRole } from "./webhooks.mjs";
import { billingByRole } from "./billing.mjs";
import { jobsByRole } from "./jobs.mjs";

async function signInWith(page, problems, token) {
  await page.getByLabel("Token").fill(token);
  // The page learns a key's role from what the API allows it; each probe it may not make is a 403.
  await expectRefusals(problems, async () => {
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    await page.locator("main h1").first().waitFor();
    await page.waitForLoadState("networkidle");
  });
  check((await page.getByRole("heading", { name: "Something went wrong" }).count()) === 0, "no error page");
}

async function signOut(page) {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
}

export async function roleFlows(page, problems, keys, shot) {
  step("an owner key signs in to its own tenant only");
  await signInWith(page, problems, keys.key);
  await page.getByRole("heading", { name: "Your tenant" }).waitFor();
  await page.getByRole("region", { name: "API keys" }).waitFor();
  check((await page.getByRole("link", { name: "Instance" }).count()) === 0, "no instance view for a key");
  await webhooksByRole(page, "owner");
  await signOut(page);

  for (const role of ["viewer", "member"]) {
    step(`a ${role} key lands on its usage and reads settings without forms`);
    await signInWith(page, problems, keys[`${role}-key`]);
    await page.getByRole("heading", { name: "Your tenant" }).waitFor();
    await page.getByText(`Signed in with a ${role} key`).waitFor();
    await page.locator("#totals").getByText("$0.85").first().waitFor();
    await page.locator('[data-limit="daily_cost_usd"]').waitFor();
    await page.getByRole("region", { name: "Operational events" }).waitFor();
    await fits(page, `${role} usage`);
    if (role === "viewer") await shot(page, "viewer");
    await page.getByRole("link", { name: "Members and settings" }).click();
    const settings = page.getByRole("region", { name: /^Settings/ });
    await settings.getByRole("cell", { name: "Daily cost limit" }).waitFor();
    await settings.getByRole("cell", { name: "$1.00" }).first().waitFor();
    check((await page.getByRole("button", { name: "Save settings" }).count()) === 0, "no settings form");
    check((await page.getByRole("region", { name: "API keys" }).count()) === 0, "no keys card");
    check((await page.getByRole("button", { name: /Roll back/ }).count()) === 0, "no rollback");
    await page.getByRole("region", { name: "Members" }).getByRole("cell", { name: "alice" }).waitFor();
    await fits(page, `${role} settings`);
    await gatewayRead(page, role);
    await webhooksByRole(page, role);
    await billingByRole(page, role);
    await jobsByRole(page, role, keys[`${role}-key`]);
    await signOut(page);
  }

  step("a service key lands on what it may do, and a credentials check shows its refusal beside it");
  await signInWith(page, problems, keys["service-key"]);
  await page.getByRole("heading", { name: "Your service key" }).waitFor();
  await page.getByText("POST /api/usage/events").waitFor();
  const creds = page.getByRole("form", { name: "Check credentials" });
  await creds.getByLabel("Provider").fill("openai");
  await expectRefusals(problems, async () => {
    await creds.getByRole("button", { name: "Check" }).click();
    await creds.getByRole("alert").waitFor();
  });
  check(/key/i.test(await creds.getByRole("alert").textContent()), "the refusal says what is missing");
  await fits(page, "service page");
  await shot(page, "service");
  await signOut(page);
}

export async function copyWithoutClipboard(browser, { base, admin, width, height, problems }) {
  step("Copy works where the clipboard API is missing (plain http on a LAN address)");
  const page = await browser.newPage({ viewport: { width, height } });
  page.setDefaultTimeout(20000);
  watch(page, problems);
  await listenForCsp(page);
  await page.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined, configurable: true });
  });
  await page.goto(`${base}/#/t/acme-corp`);
  await page.getByLabel("Token").fill(admin);
  await page.getByRole("button", { name: "Sign in" }).click();
  const keys = page.getByRole("region", { name: "API keys" });
  await keys.getByLabel("Name").fill("lan");
  await keys.getByRole("button", { name: "Create key" }).click();
  const key = (await page.locator("#new-key").textContent()).trim();
  await keys.getByRole("button", { name: "Copy" }).click();
  await keys.getByRole("status").filter({ hasText: /Copied|Ctrl\+C/ }).waitFor();
  check((await page.evaluate(() => getSelection().toString().trim())) === key, "the key is selected for copying");
  await page.close();
}
