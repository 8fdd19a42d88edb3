// The Billing view and the operator's report in the browser, against a server with
// ENABLE_BILLING=true and a 31-day grace (tests/api/browser.rs), so last month is a draft and
// this month is open. Every figure on the page is compared with the API's JSON as text: money
// must show every digit the server sent, including sums a double cannot hold. The CSV buttons
// must save exactly what the API answers. A second server without billing shows the note.
import { readFile } from "node:fs/promises";
import { step, check, fits, call, expectRefusals, signedIn } from "./lib.mjs";

const SLUG = "ledger";

/** The API's JSON with every `*_usd` number kept as its text (no float in between). */
async function exact(base, token, path) {
  const res = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  check(res.ok, `${path} answered ${res.status}`);
  const text = (await res.text()).replace(/"(\w+_usd)":(-?\d+(?:\.\d+)?)/g, '"$1":"$2"');
  return JSON.parse(text);
}

async function raw(base, token, path) {
  const res = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  check(res.ok && res.headers.get("content-type").startsWith("text/csv"), `${path}: ${res.status} ${res.headers.get("content-type")}`);
  return res.text();
}

/** What the page must show for the API's money text: "$", thousands commas, at least two decimals. */
function dollars(text) {
  const [whole, frac = ""] = text.split(".");
  return `$${Number(whole).toLocaleString("en-US")}.${frac.padEnd(2, "0")}`;
}

const n = (x) => x.toLocaleString("en-US");

/** A cell's text by the column's name: on a phone the header row is hidden, data-label stays. */
const cells = (row) => row.locator("td").evaluateAll((tds) => Object.fromEntries(tds.map((td, i) =>
  [td.getAttribute("data-label") ?? td.closest("table").querySelectorAll("thead th")[i]?.textContent ?? String(i),
    td.textContent.replace(/\s+/g, " ").trim()])));

/** Clicks `button` and returns the download it starts, with the saved file's text. */
async function downloaded(page, button) {
  const [dl] = await Promise.all([page.waitForEvent("download"), button.click()]);
  return { name: dl.suggestedFilename(), text: await readFile(await dl.path(), "utf8") };
}

/** This month and the one before, as YYYY-MM, and a timestamp mid-way through the one before. */
function months() {
  const now = new Date();
  const ym = (d) => d.toISOString().slice(0, 7);
  const before = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 15, 12));
  return { current: ym(now), previous: ym(before), previousAt: before.toISOString() };
}

/** A tenant with usage in two months, hosted with a markup, a BYO-key line and cache tokens. */
async function seed(base, admin) {
  const { previousAt } = months();
  check((await call(base, admin, "POST", "/api/tenants", { name: "Ledger Ltd", slug: SLUG, plan: "pro" })).status === 201, "tenant made");
  const settings = (body) => call(base, admin, "PATCH", `/api/tenant/${SLUG}/settings`, body);
  const ingest = async (events) => {
    const r = await call(base, admin, "POST", `/api/tenant/${SLUG}/usage/events`, { events });
    check(r.status === 201, `ingest answered ${r.status}: ${JSON.stringify(r.body)}`);
  };
  check((await settings({ execution_mode: "hosted", markup_percent: 12.5 })).status === 200, "hosted, 12.5% markup");
  await ingest([
    { model: "claude-haiku-4-5", input_tokens: 10, output_tokens: 5, cost_usd: 0.015, timestamp: previousAt },
    { model: "claude-haiku-4-5", input_tokens: 10, output_tokens: 5, cost_usd: 0.01, timestamp: previousAt },
  ]);
  // Thirteen events near the per-event maximum: the month's billed sum has 17 significant
  // digits, more than a double keeps.
  await ingest(Array.from({ length: 13 }, () => ({ model: "big-model", input_tokens: 1000, output_tokens: 100, cost_usd: 999999.123456789 })));
  await ingest([{ model: "gpt-4o", input_tokens: 1000, output_tokens: 200, cache_read_tokens: 300, cache_write_tokens: 50,
    reasoning_tokens: 20, cost_usd: 0.123456789 }]);
  check((await settings({ execution_mode: "byo_key" })).status === 200, "BYO key mode");
  await ingest([{ model: "gpt-4o", input_tokens: 500, output_tokens: 50, cost_usd: 0.5 }]);
}

/** The lines table and the statement's totals show exactly the API's statement. */
async function checkStatement(page, s) {
  const card = page.locator("#statement");
  await card.getByRole("heading", { name: `Statement ${s.period}` }).waitFor();
  check((await card.locator(".badge").first().textContent()) === s.status, `status badge ${s.status}`);
  const rows = card.locator("tbody tr:not(.total)");
  check((await rows.count()) === s.lines.length, `${s.lines.length} lines shown`);
  for (const [i, l] of s.lines.entries()) {
    const c = await cells(rows.nth(i));
    const want = {
      Model: l.model, Mode: l.execution_mode === "byo_key" ? "own key (BYO)" : l.execution_mode, Events: n(l.events),
      "Input tokens": n(l.input_tokens), "Output tokens": n(l.output_tokens),
      "Cache read / write": `${n(l.cache_read_tokens)} / ${n(l.cache_write_tokens)}`, Reasoning: n(l.reasoning_tokens),
      Estimated: dollars(l.estimated_cost_usd), Billed: dollars(l.billed_cost_usd),
    };
    check(JSON.stringify(c) === JSON.stringify(want), `line ${i}: shown ${JSON.stringify(c)}, API ${JSON.stringify(want)}`);
  }
  const total = await cells(card.locator("tr.total"));
  check(total.Model === "Total" && total.Events === n(s.events) && total["Input tokens"] === n(s.input_tokens)
    && total.Estimated === dollars(s.estimated_cost_usd) && total.Billed === dollars(s.billed_cost_usd),
  `total row ${JSON.stringify(total)} for ${JSON.stringify(s)}`);
  const totals = await card.locator("#statement-totals > div").evaluateAll((ds) => ds.map((d) => [d.firstChild.textContent, d.querySelector("b").textContent]));
  const want = [["Events", n(s.events)], ["Estimated cost", dollars(s.estimated_cost_usd)], ["Billed cost", dollars(s.billed_cost_usd)],
    ["Amount due", dollars(s.amount_due_usd)]];
  check(JSON.stringify(totals) === JSON.stringify(want), `totals ${JSON.stringify(totals)}, API ${JSON.stringify(want)}`);
  check((await card.locator("#amount-due").textContent()) === dollars(s.amount_due_usd), `amount due ${s.amount_due_usd}`);
}

export async function billingFlow(page, { base, admin, shot, problems }) {
  const { current, previous } = months();
  step("billing: a tenant with usage last month (draft) and this month (open), with markup, BYO and cache tokens");
  await seed(base, admin);
  const list = (await exact(base, admin, `/api/tenant/${SLUG}/billing/statements`)).items;
  check(list.map((s) => `${s.period}:${s.status}`).join() === `${current}:open,${previous}:draft`, `statements ${JSON.stringify(list)}`);
  const now = await exact(base, admin, `/api/tenant/${SLUG}/billing/statements/${current}`);
  check(now.billed_cost_usd.replace(".", "").length >= 17 && String(Number(now.billed_cost_usd)) !== now.billed_cost_usd,
    `the month's billed sum is beyond a double: ${now.billed_cost_usd}`);
  check(now.lines.some((l) => l.execution_mode === "byo_key" && l.billed_cost_usd === "0"), "a BYO line bills 0");

  step("the Billing tab lists the statements, newest first, with status, events and exact money");
  await page.evaluate((slug) => { location.hash = `#/t/${slug}`; }, SLUG);
  await page.getByRole("heading", { name: `Tenant ${SLUG}` }).waitFor();
  await page.getByRole("link", { name: "Billing", exact: true }).first().click();
  await page.getByRole("region", { name: "Statements" }).waitFor();
  const rows = page.locator("#statements tr[data-period]");
  check((await rows.evaluateAll((rs) => rs.map((r) => r.dataset.period))).join() === `${current},${previous}`, "two periods, newest first");
  for (const [i, s] of list.entries()) {
    const c = await cells(rows.nth(i));
    const want = { Period: s.period, Status: s.status, Events: n(s.events), Billed: dollars(s.billed_cost_usd),
      "Amount due": dollars(s.amount_due_usd), Finalized: "—" };
    check(JSON.stringify(c) === JSON.stringify(want), `row ${s.period}: shown ${JSON.stringify(c)}, API ${JSON.stringify(want)}`);
  }
  check(await rows.first().locator(".badge.pending").count() === 1 && await rows.nth(1).locator(".badge.warning").count() === 1,
    "open grey, draft amber");

  step("choosing a period shows its lines and totals, as the API has them");
  await page.getByRole("link", { name: `Statement ${current}` }).click();
  await checkStatement(page, now);
  check(await page.evaluate(() => location.hash) === `#/t/${SLUG}/billing/${current}`, "the statement has its own address");
  await fits(page, "billing statement");
  await shot(page, "billing");

  step("Download CSV saves the statement's CSV, fetched with the token");
  const csv = await raw(base, admin, `/api/tenant/${SLUG}/billing/statements/${current}?format=csv`);
  const got = await downloaded(page, page.locator("#statement").getByRole("button", { name: "Download CSV" }));
  check(got.name === `statement-${current}-${now.tenant_id}.csv`, `file name from Content-Disposition: ${got.name}`);
  check(got.text === csv, `the saved file is the API's CSV:\n${got.text}\n---\n${csv}`);
  check(got.text.startsWith("row_type,tenant_id,period,status,model,execution_mode,events,"), "header row");
  await page.locator("#statement").getByText(`Downloaded ${got.name}.`).waitFor();

  step("last month's draft");
  await page.getByRole("link", { name: `Statement ${previous}` }).click();
  await checkStatement(page, await exact(base, admin, `/api/tenant/${SLUG}/billing/statements/${previous}`));
  await page.locator("#statement").getByText("late events may still change it").waitFor();
  await fits(page, "billing draft");

  step("a mistyped period in the address says why, and the list stays");
  await expectRefusals(problems, async () => {
    await page.evaluate((slug) => { location.hash = `#/t/${slug}/billing/2026-13`; }, SLUG);
    await page.locator("#statement").getByRole("alert").filter({ hasText: /period|YYYY-MM/i }).waitFor();
  });
  check(await page.locator("#statements tr[data-period]").count() === 2, "the statements are still listed");
}

/** The operator's report in the Instance view, for this month and the one before, and its CSV. */
export async function billingReport(page, { base, admin, shot }) {
  const { current, previous } = months();
  step("the Instance view's billing report defaults to this month and shows every tenant with usage");
  await page.getByRole("link", { name: "Instance" }).click();
  const card = page.getByRole("region", { name: "Billing report" });
  await card.locator(`tr[data-tenant="${SLUG}"]`).waitFor();
  check(await card.getByLabel("Month (UTC)").inputValue() === current, "the month picker shows this month");
  const checkReport = async (r) => {
    const rows = card.locator("tr[data-tenant]");
    check((await rows.evaluateAll((rs) => rs.map((x) => x.dataset.tenant))).join() === r.tenants.map((t) => t.slug).join(),
      `tenants in the report's order: ${JSON.stringify(r.tenants)}`);
    for (const [i, t] of r.tenants.entries()) {
      const c = await cells(rows.nth(i));
      const want = { Tenant: t.slug, Name: t.name, Plan: t.plan, Events: n(t.events), Billed: dollars(t.billed_cost_usd),
        "Amount due": dollars(t.amount_due_usd), Status: t.status };
      check(JSON.stringify(c) === JSON.stringify(want), `report row: shown ${JSON.stringify(c)}, API ${JSON.stringify(want)}`);
    }
    const total = await cells(card.locator("tr.total"));
    check(total.Tenant === `Total, ${r.totals.tenants} ${r.totals.tenants === 1 ? "tenant" : "tenants"}`
      && total.Events === n(r.totals.events) && total.Billed === dollars(r.totals.billed_cost_usd)
      && total["Amount due"] === dollars(r.totals.amount_due_usd), `report totals ${JSON.stringify(total)} for ${JSON.stringify(r.totals)}`);
  };
  const r = await exact(base, admin, "/api/billing/report");
  check(r.period === current && r.tenants.length >= 2 && r.tenants.some((t) => t.slug === SLUG), `report ${JSON.stringify(r)}`);
  await checkReport(r);
  await fits(page, "instance page with the billing report");
  await shot(page, "billing-report");

  step("another month, and the report's CSV");
  await card.getByLabel("Month (UTC)").fill(previous);
  await card.getByRole("button", { name: "Show" }).click();
  const last = await exact(base, admin, `/api/billing/report?period=${previous}`);
  await card.getByText(`${previous}:`).waitFor();
  await checkReport(last);
  const got = await downloaded(page, card.getByRole("button", { name: "Download report CSV" }));
  check(got.name === `billing-report-${previous}.csv`, `report file name ${got.name}`);
  check(got.text === await raw(base, admin, `/api/billing/report?period=${previous}&format=csv`), `report CSV:\n${got.text}`);
  check(got.text.startsWith("period,tenant_id,slug,name,plan,status,events,billed_cost_usd,amount_due_usd"), "report header row");

  step("a tenant's slug in the report opens its statement for that month");
  await card.locator(`tr[data-tenant="${SLUG}"]`).getByRole("link", { name: SLUG }).click();
  await page.locator("#statement").getByRole("heading", { name: `Statement ${previous}` }).waitFor();
}

/** A viewer or member key reads its own tenant's statements from its Billing tab. */
export async function billingByRole(page, role) {
  step(`a ${role} key reads its tenant's statements and one statement's lines`);
  const { current } = months();
  await page.getByRole("navigation").getByRole("link", { name: "Billing" }).click();
  await page.getByRole("link", { name: `Statement ${current}` }).click();
  await page.locator("#statement").getByRole("heading", { name: `Statement ${current}` }).waitFor();
  await page.locator("#statement tbody tr:not(.total)").first().waitFor();
  check((await page.locator("#statement").getByRole("button", { name: "Download CSV" }).count()) === 1, "the CSV is offered");
  check(await page.evaluate(() => location.hash) === `#/t/own/billing/${current}`, "the key's own tenant");
  await fits(page, `${role} billing`);
}

/** Billing off: the tab and the report say so, with no error and no refused call. */
export async function billingOff(browser, { base, admin, width, height, problems }) {
  step("billing off: the Billing tab and the Instance view say how to turn it on");
  const { context, page } = await signedIn(browser, { base, width, height, problems }, admin);
  try {
    check((await call(base, admin, "GET", "/api/features")).body.billing === false, "this server has billing off");
    await page.evaluate(() => { location.hash = "#/t/default/billing"; });
    const note = page.locator("#billing-off");
    await note.waitFor();
    check((await note.textContent()).includes("Billing is off on this instance: set ENABLE_BILLING=true"), `note: ${await note.textContent()}`);
    check(await page.getByRole("heading", { name: "Something went wrong" }).count() === 0, "no error page");
    await fits(page, "billing off");
    await page.getByRole("link", { name: "Instance" }).click();
    await page.getByRole("region", { name: "Billing report" }).locator("#billing-off").waitFor();
    check(await page.locator("#billing-report").count() === 0, "no report table");
  } finally {
    await context.close();
  }
}
