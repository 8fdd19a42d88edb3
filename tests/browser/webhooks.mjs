// The Webhooks view in the browser, against a real receiver the Rust side starts
// (WEBHOOK_RECEIVER, answering 204): create shows the secret once, a test send shows up in the
// deliveries table as succeeded, disable/enable, rotation, Retry on a failed delivery, the
// status filter, an instance endpoint for the admin, delete. Other roles do not get the tab.
import { step, check, fits, call } from "./lib.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Clicks the card's Refresh until a delivery row matching `selector` shows, or fails. */
async function refreshUntil(card, selector, what) {
  const rows = card.locator(selector);
  for (let i = 0; i < 60; i++) {
    if (await rows.count()) return rows.first();
    await card.getByRole("button", { name: "Refresh" }).click();
    await sleep(250);
  }
  throw new Error(`check failed: the deliveries table never showed ${what}: ${await card.locator("table.stack").textContent()}`);
}

async function create(page, fields) {
  const f = page.getByRole("form", { name: "New webhook endpoint" });
  await f.getByLabel("URL").fill(fields.url);
  await f.getByLabel(/^Event types/).fill(fields.types ?? "");
  await f.getByLabel(/^Description/).fill(fields.description ?? "");
  if (fields.scope) await f.getByLabel("Scope").selectOption(fields.scope);
  await f.getByRole("button", { name: "Create endpoint" }).click();
  const card = page.getByRole("region", { name: `Endpoint ${fields.description}` });
  await card.waitFor();
  const secret = (await page.locator("#new-webhook-secret").textContent()).trim();
  check(/^whsec_[A-Za-z0-9+/=]{20,}$/.test(secret), `a whsec_ secret is shown: ${secret}`);
  return { card, secret };
}

export async function webhooksFlow(page, { base, admin, slug, receiver, shot }) {
  const api = `/api/tenant/${slug}/webhooks`;
  step("the Webhooks view starts empty");
  await page.getByRole("link", { name: "Webhooks", exact: true }).first().click();
  await page.getByRole("heading", { name: "New webhook endpoint" }).waitFor();
  await page.getByText("No webhook endpoints yet.").waitFor();

  step("creating an endpoint to the receiver shows its secret once, with Copy and a warning");
  const { card, secret } = await create(page, { url: receiver, types: "limit.*, webhook.test", description: "Receiver" });
  await page.getByText("Store it now: it will not be shown again.").waitFor();
  const listed = (await call(base, admin, "GET", api)).body.items;
  check(listed.length === 1 && listed[0].url === receiver && listed[0].enabled === true && !("secret" in listed[0])
    && JSON.stringify(listed[0].event_types) === '["limit.*","webhook.test"]', `the API lists it without a secret: ${JSON.stringify(listed)}`);
  const id = listed[0].id;
  const facts = (await card.locator("table.details").textContent()).replace(/\s+/g, " ");
  check(facts.includes(receiver) && facts.includes("limit.*, webhook.test") && facts.includes("standard") && facts.includes("enabled"),
    `the card shows url, event types, format and state: ${facts}`);
  const box = page.getByRole("group", { name: "New signing secret" });
  await box.getByRole("button", { name: "Copy" }).click();
  await box.getByText("Copied.").waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === secret, "the clipboard holds the secret");
  await fits(page, "webhooks page");
  await shot(page, "webhooks");

  step("after a reload the secret is gone from the page");
  await page.reload();
  await card.waitFor();
  check((await page.locator("#new-webhook-secret").count()) === 0, "no secret box after reload");
  check(!(await page.locator("main").textContent()).includes(secret), "the secret is nowhere on the page");

  step("Send test: the deliveries table shows a webhook.test delivery that succeeds");
  await card.getByRole("button", { name: "Send test" }).click();
  await card.getByText("Test event queued").waitFor();
  const row = await refreshUntil(card, 'tr[data-status="succeeded"]:has-text("webhook.test")', "a succeeded webhook.test delivery");
  const delivered = (await call(base, admin, "GET", `${api}/${id}/deliveries`)).body.items;
  check(delivered.length === 1 && delivered[0].status === "succeeded" && delivered[0].event_type === "webhook.test"
    && delivered[0].last_status === 204, `the API agrees: ${JSON.stringify(delivered)}`);
  check(await row.getAttribute("data-delivery") === delivered[0].id, "the row is that delivery");
  const text = (await row.textContent()).replace(/\s+/g, " ");
  check(text.includes("HTTP 204") && (await row.locator(".badge.ok").textContent()) === "succeeded", `status and result shown: ${text}`);
  check((await row.getByRole("button", { name: "Retry" }).count()) === 0, "no Retry on a succeeded delivery");

  step("the status filter narrows the deliveries");
  await card.getByLabel("Status").selectOption("exhausted");
  await card.getByText("Nothing to show.").waitFor();
  await card.getByLabel("Status").selectOption("succeeded");
  await card.locator('tr[data-status="succeeded"]').waitFor();
  await card.getByLabel("Status").selectOption("");
  await card.locator('tr[data-status="succeeded"]').waitFor();

  step("disable, then enable again");
  await card.getByRole("button", { name: "Disable" }).click();
  await card.getByText("disabled (manual)").waitFor();
  let e = (await call(base, admin, "GET", `${api}/${id}`)).body;
  check(e.enabled === false && e.disabled_reason === "manual", `disabled: ${JSON.stringify(e)}`);
  await card.getByRole("button", { name: "Enable" }).click();
  await card.getByText("enabled", { exact: true }).waitFor();
  e = (await call(base, admin, "GET", `${api}/${id}`)).body;
  check(e.enabled === true && e.disabled_reason === null, `enabled: ${JSON.stringify(e)}`);

  step("rotating shows a new, different secret once and says both sign for 24 hours");
  await card.getByRole("button", { name: "Rotate secret" }).click();
  const rotated = (await card.locator(`[id="rotated-secret-${id}"]`).textContent()).trim();
  check(/^whsec_/.test(rotated) && rotated !== secret, `a new secret: ${rotated}`);
  await card.getByText(/next 24 hours the old secret signs too/).waitFor();
  await fits(page, "webhooks page after rotation");

  step("a failed delivery to a dead receiver gets a Retry that sends it again at once");
  const dead = (await create(page, { url: "http://127.0.0.1:9/dead", types: "", description: "Dead" })).card;
  const deadId = (await call(base, admin, "GET", api)).body.items.find((x) => x.description === "Dead").id;
  check(((await dead.locator("table.details").textContent()) || "").includes("all events"), "empty event types: all events");
  await dead.getByRole("button", { name: "Send test" }).click();
  const failed = await refreshUntil(dead, 'tr[data-status="failed"]', "a failed delivery");
  check(await failed.locator(".badge.warning").textContent() === "failed", "failed is marked amber");
  const first = (await call(base, admin, "GET", `${api}/${deadId}/deliveries`)).body.items[0];
  check(first.attempts === 1 && first.next_attempt_at && first.last_error, `one attempt, another scheduled: ${JSON.stringify(first)}`);
  check((await failed.textContent()).includes(first.last_error), "the row shows the last error");
  // The test server's clock stands still (tests/api/helpers.rs), so the 5 s schedule never
  // comes: a second attempt can only be the Retry's. Still one attempt before the click:
  await sleep(1000);
  const still = (await call(base, admin, "GET", `${api}/${deadId}/deliveries`)).body.items[0];
  check(still.attempts === 1, `no second attempt without Retry: ${JSON.stringify(still)}`);
  await failed.getByRole("button", { name: "Retry" }).click();
  const again = await refreshUntil(dead, 'tr[data-status="failed"]:has(td.num:text-is("2"))', "a second attempt after Retry");
  check((await again.getAttribute("data-delivery")) === first.id, "the same delivery was retried");

  step("the admin can make an instance endpoint from a tenant's view");
  const inst = (await create(page, { url: receiver, types: "webhook.test", description: "Instance hook", scope: "instance" })).card;
  check((await inst.locator("table.details").textContent()).includes("instance (every tenant's events)"), "scope shown");
  const madeInst = (await call(base, admin, "GET", api)).body.items.find((x) => x.description === "Instance hook");
  check(madeInst && madeInst.scope === "instance", `the API made an instance endpoint: ${JSON.stringify(madeInst)}`);

  step("delete asks first, then removes every endpoint");
  await card.getByRole("button", { name: "Delete" }).click();
  await card.getByRole("button", { name: "Cancel" }).click();
  check((await call(base, admin, "GET", api)).body.items.length === 3, "Cancel kept it");
  for (const name of ["Receiver", "Dead", "Instance hook"]) {
    const c = page.getByRole("region", { name: `Endpoint ${name}` });
    await c.getByRole("button", { name: "Delete" }).click();
    await c.getByRole("button", { name: "Yes, delete" }).click();
    await c.waitFor({ state: "detached" });
  }
  await page.getByText("No webhook endpoints yet.").waitFor();
  check((await call(base, admin, "GET", api)).body.items.length === 0, "the API lists none");
  await fits(page, "webhooks page, empty");
}

/** An owner key manages webhooks; member and viewer keys get no tab and a plain message. */
export async function webhooksByRole(page, role) {
  if (role === "owner") {
    step("an owner key has the Webhooks tab and its create form");
    await page.getByRole("link", { name: "Webhooks", exact: true }).first().click();
    await page.getByRole("form", { name: "New webhook endpoint" }).waitFor();
    check((await page.getByLabel("Scope").count()) === 0, "no instance scope for a tenant key");
    await fits(page, "owner webhooks");
    return;
  }
  step(`a ${role} key has no Webhooks tab, and the address says only owners manage webhooks`);
  check((await page.getByRole("link", { name: "Webhooks" }).count()) === 0, `no Webhooks link for a ${role}`);
  await page.evaluate(() => { location.hash = "#/t/own/webhooks"; });
  await page.getByText("Only owners manage webhooks").waitFor();
  check((await page.getByRole("form", { name: "New webhook endpoint" }).count()) === 0, "no create form");
}
