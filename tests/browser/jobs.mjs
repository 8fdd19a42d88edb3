// The Jobs view and the queue across tenants in the browser, against a server with
// ENABLE_HOSTED_QUEUE=true (tests/api/browser.rs). Jobs are enqueued, leased with a service key,
// failed (dead) and completed through the API, usage names the completed job; every count, row
// and field on the page is compared with the API's JSON. Retry and Cancel are checked through the
// API afterwards, and a Cancel the server refuses (the job was leased meanwhile) shows its 409.
// A second server without the queue shows the note.
import { step, check, fits, call, expectRefusals, signedIn } from "./lib.mjs";

const SLUG = "queue-co";
/** Another tenant with one queued job, for the overview and the viewer and member keys. */
const OTHER = "acme-corp";

const n = (x) => x.toLocaleString("en-US");
const when = (ts) => (ts ? new Date(ts).toISOString().replace("T", " ").slice(0, 19) + "Z" : "—");

/** The API's JSON with every `*_usd` number kept as its text (no float in between). */
async function exact(base, token, path) {
  const res = await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } });
  check(res.ok, `${path} answered ${res.status}`);
  return JSON.parse((await res.text()).replace(/"(\w+_usd)":(-?\d+(?:\.\d+)?)/g, '"$1":"$2"'));
}

/** Posts a JSON text as written, so numbers a double cannot hold reach the server whole. */
async function postText(base, token, path, text) {
  const res = await fetch(base + path, { method: "POST", body: text,
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" } });
  return { status: res.status, body: await res.json() };
}

/** What the page must show for the API's money text: "$", thousands commas, at least two decimals. */
function dollars(text) {
  const [whole, frac = ""] = text.split(".");
  return `$${Number(whole).toLocaleString("en-US")}.${frac.padEnd(2, "0")}`;
}

/** A cell's text by the column's name: on a phone the header row is hidden, data-label stays. */
const cells = (row) => row.locator("td").evaluateAll((tds) => Object.fromEntries(tds.map((td, i) =>
  [td.getAttribute("data-label") ?? td.closest("table").querySelectorAll("thead th")[i]?.textContent ?? String(i),
    td.textContent.replace(/\s+/g, " ").trim()])));

/** The payload of the job that dies: markup that must stay text, numbers a double would round. */
const DEAD_PAYLOAD = '{"doc":"a.pdf","note":"<img src=x onerror=\\"document.title=\'xss\'\\">","id":12345678901234567890,"rate":0.1000000000000000055}';

/**
 * queue-co: 30 bulk jobs (one of them fails once: retrying), then one to die, one to succeed, two
 * agents jobs and one to be leased under the page.
 */
async function seed(base, admin) {
  check((await call(base, admin, "POST", "/api/tenants", { name: "Queue Co", slug: SLUG, plan: "pro" })).status === 201, "tenant made");
  const t = `/api/tenant/${SLUG}`;
  const key = await call(base, admin, "POST", `${t}/keys`, { name: "worker", role: "service" });
  check(key.status === 201, `service key: ${JSON.stringify(key.body)}`);
  const worker = key.body.key;
  const bulk = await call(base, admin, "POST", `${t}/jobs`, { jobs: Array.from({ length: 30 }, (_, i) => ({
    queue: "bulk", kind: "thumbnail", priority: 0, payload: { n: i } })) });
  check(bulk.status === 201 && bulk.body.jobs.length === 30, `bulk enqueue: ${bulk.status}`);
  const one = async (job) => {
    const r = typeof job === "string" ? await postText(base, admin, `${t}/jobs`, job) : await call(base, admin, "POST", `${t}/jobs`, job);
    check(r.status === 201, `enqueue answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const dead = await one(`{"queue":"docs","kind":"extract","priority":9,"payload":${DEAD_PAYLOAD}}`);
  const done = await one({ queue: "docs", kind: "extract", priority: 8, payload: { doc: "b.pdf" } });
  const cancel = await one({ queue: "agents", kind: "agent-run", priority: 5, payload: { goal: "triage" } });
  await one({ queue: "agents", kind: "summarize", priority: 1, payload: {}, run_at: new Date(Date.now() + 86400000).toISOString() });
  const stale = await one({ queue: "default", priority: 3, payload: { later: true }, lease_seconds: 3600 });

  const lease = async (queue) => {
    const r = await call(base, worker, "POST", "/api/queue/lease", { queues: [queue], max_jobs: 1 });
    check(r.status === 200 && r.body.jobs.length === 1, `lease from ${queue}: ${JSON.stringify(r.body)}`);
    return r.body.jobs[0];
  };
  const first = await lease("docs");
  check(first.id === dead.id, "the higher priority is leased first");
  const failed = await call(base, worker, "POST", `/api/queue/jobs/${first.id}/fail`,
    { lease_token: first.lease_token, error: "the PDF is encrypted: <b>no</b> text layer", retry: false });
  check(failed.status === 200 && failed.body.status === "dead", `fail: ${JSON.stringify(failed.body)}`);
  const second = await lease("docs");
  check(second.id === done.id, "then the next");
  const completed = await postText(base, worker, `/api/queue/jobs/${second.id}/complete`,
    `{"lease_token":"${second.lease_token}","result":{"pages":12,"summary":"two tables","score":0.30000000000000004}}`);
  check(completed.status === 200 && completed.body.status === "succeeded", `complete: ${JSON.stringify(completed.body)}`);
  // A bulk job's attempt fails and will be tried again: retrying, which the overview counts as ready.
  const third = await lease("bulk");
  const again = await call(base, worker, "POST", `/api/queue/jobs/${third.id}/fail`, { lease_token: third.lease_token, error: "timeout" });
  check(again.status === 200 && again.body.status === "retrying", `retrying: ${JSON.stringify(again.body)}`);
  const usage = await call(base, admin, "POST", `${t}/usage/events`, { events: [
    { model: "gpt-4o", input_tokens: 1000, output_tokens: 200, cost_usd: 0.123456789, job_id: done.id },
    { model: "claude-haiku-4-5", input_tokens: 10, output_tokens: 5, cost_usd: 2.000000001, job_id: done.id },
  ] });
  check(usage.status === 201, `usage answered ${usage.status}: ${JSON.stringify(usage.body)}`);
  const other = await call(base, admin, "POST", `/api/tenant/${OTHER}/jobs`, { kind: "report", payload: { month: "2026-11" } });
  check(other.status === 201, `${OTHER} job: ${other.status}`);
  return { worker, dead: dead.id, done: done.id, cancel: cancel.id, stale: stale.id };
}

/** Waits until the list shows exactly these jobs, in this order. */
async function rowsAre(page, ids, what) {
  try {
    await page.waitForFunction((want) => [...document.querySelectorAll("#job-list tr[data-job]")].map((r) => r.dataset.job).join() === want,
      ids.join(), { timeout: 10000 });
  } catch {
    const shown = await page.locator("#job-list tr[data-job]").evaluateAll((rs) => rs.map((r) => r.dataset.job));
    check(false, `${what}: shown ${shown.length} ${shown.join()}, API ${ids.length} ${ids.join()}`);
  }
}

async function filter(page, { status = "", queue = "", kind = "" }) {
  const f = page.getByRole("form", { name: "Filter jobs" });
  await f.getByLabel("Status").selectOption(status);
  await f.getByLabel("Queue", { exact: true }).fill(queue);
  await f.getByLabel("Kind", { exact: true }).fill(kind);
  await f.getByRole("button", { name: "Filter" }).click();
}

async function checkCounts(page, base, admin, slug) {
  const c = (await call(base, admin, "GET", `/api/tenant/${slug}/queue/counts`)).body;
  const want = ["queued", "running", "retrying", "succeeded", "dead", "cancelled"].map((s) => `${s}:${n(c[s])}`).join();
  try {
    await page.waitForFunction((w) => [...document.querySelectorAll("#job-counts [data-status]")]
      .map((d) => `${d.dataset.status}:${d.querySelector("b").textContent}`).join() === w, want, { timeout: 10000 });
  } catch {
    const shown = await page.locator("#job-counts [data-status]").evaluateAll((ds) => ds.map((d) => `${d.dataset.status}:${d.querySelector("b").textContent}`));
    check(false, `counts shown ${shown.join()}, API ${want}`);
  }
  return c;
}

/** Opens a job from the list and waits for its detail with the given status. */
async function open(page, id, status) {
  await page.getByRole("link", { name: `Job ${id}` }).click();
  await page.locator(`#job[data-status="${status}"]`).getByRole("heading", { name: `Job ${id}` }).waitFor();
}

async function detailRows(page) {
  return page.locator("#job table.details tr").evaluateAll((rs) => Object.fromEntries(rs.map((r) =>
    [r.querySelector("th").textContent, r.querySelector("td").textContent.trim()])));
}

export async function jobsFlow(page, { base, admin, shot, problems }) {
  step("jobs: 35 jobs in queue-co, one failed for good, one failed to retry, one completed with usage naming it");
  const ids = await seed(base, admin);
  const all = (await call(base, admin, "GET", `/api/tenant/${SLUG}/jobs?limit=100`)).body.items;
  check(all.length === 35, `35 jobs listed, got ${all.length}`);

  step("the Jobs tab shows the counts by status as the API has them");
  await page.evaluate((slug) => { location.hash = `#/t/${slug}`; }, SLUG);
  await page.getByRole("heading", { name: `Tenant ${SLUG}` }).waitFor();
  await page.getByRole("link", { name: "Jobs", exact: true }).first().click();
  await page.locator("#job-counts").waitFor();
  const counts = await checkCounts(page, base, admin, SLUG);
  check(counts.queued === 32 && counts.retrying === 1 && counts.dead === 1 && counts.succeeded === 1, `counts ${JSON.stringify(counts)}`);

  step("the list is the API's first page, newest first, every column as the API has it; More shows the rest");
  const first = (await call(base, admin, "GET", `/api/tenant/${SLUG}/jobs?limit=25`)).body.items;
  await rowsAre(page, first.map((j) => j.id), "first page");
  const rows = page.locator("#job-list tr[data-job]");
  for (const [i, j] of first.slice(0, 6).entries()) {
    const c = await cells(rows.nth(i));
    const want = { Job: j.id.slice(0, 8), Queue: j.queue, Kind: j.kind ?? "—", Status: j.status, Priority: String(j.priority),
      Attempts: `${j.attempts}/${j.max_attempts}`, "Run at": when(j.run_at), Updated: when(j.updated_at) };
    check(JSON.stringify(c) === JSON.stringify(want), `row ${i}: shown ${JSON.stringify(c)}, API ${JSON.stringify(want)}`);
  }
  await page.locator("#job-list").getByRole("button", { name: "More" }).click();
  await rowsAre(page, all.map((j) => j.id), "all pages");
  check(await page.locator("#job-list").getByRole("button", { name: "More" }).isHidden(), "no More after the last page");
  await fits(page, "jobs list");

  step("the filters ask the API for status, queue and kind, and show what it answers");
  for (const f of [{ status: "dead" }, { queue: "agents" }, { kind: "extract" }, { status: "queued", queue: "docs" }]) {
    const q = new URLSearchParams(f).toString();
    const want = (await call(base, admin, "GET", `/api/tenant/${SLUG}/jobs?${q}&limit=100`)).body.items.map((j) => j.id);
    await filter(page, f);
    await rowsAre(page, want, `filter ${q}`);
    if (!want.length) await page.locator("#job-list").getByText("Nothing to show.").waitFor();
  }
  await filter(page, { status: "dead" });
  await rowsAre(page, [ids.dead], "dead only");

  step("the dead job's detail: its error, attempts and payload as text, numbers verbatim; Retry, no Cancel");
  await open(page, ids.dead, "dead");
  check(await page.locator("#job-list tr[data-job]").count() === 1, "the filter outlives opening a job");
  const dead = await exact(base, admin, `/api/tenant/${SLUG}/jobs/${ids.dead}`);
  check((await page.locator("#job-error").textContent()) === dead.last_error, `error shown as the API has it: ${dead.last_error}`);
  const facts = await detailRows(page);
  check(facts.Status === "dead" && facts.Queue === "docs" && facts.Kind === "extract" && facts.Priority === "9"
    && facts.Attempts === `${dead.attempts} of ${dead.max_attempts}` && facts["Lease expires"] === "—"
    && facts["Run at"] === when(dead.run_at) && facts.Updated === when(dead.updated_at), `facts ${JSON.stringify(facts)}`);
  const payload = await page.locator("#job-payload pre").textContent();
  check(payload.includes('"id": 12345678901234567890') && payload.includes('"rate": 0.1000000000000000055'),
    `payload numbers verbatim:\n${payload}`);
  check(payload.includes(`"note": "<img src=x onerror=\\"document.title='xss'\\">"`), `payload markup as text:\n${payload}`);
  check(await page.locator("#job img, #job-error *, #job-payload pre *").count() === 0 && await page.title() !== "xss",
    "no markup from the job in the page");
  check(await page.locator("#job").getByRole("button", { name: "Cancel job" }).count() === 0, "no Cancel on a dead job");
  await fits(page, "dead job");
  await shot(page, "job-dead");

  step("Retry puts the dead job back in the queue (the API confirms), and the counts follow");
  await page.locator("#job").getByRole("button", { name: "Retry job" }).click();
  await page.locator('#job[data-status="queued"]').waitFor();
  const retried = (await call(base, admin, "GET", `/api/tenant/${SLUG}/jobs/${ids.dead}`)).body;
  check(retried.status === "queued" && retried.attempts === 0, `retried: ${JSON.stringify(retried)}`);
  check((await checkCounts(page, base, admin, SLUG)).dead === 0, "no dead job left");
  await page.locator("#job").getByRole("button", { name: "Cancel job" }).waitFor();

  step("the completed job's detail: its result and its usage, money exactly as the API's text");
  await filter(page, { status: "succeeded" });
  await rowsAre(page, [ids.done], "succeeded only");
  await open(page, ids.done, "succeeded");
  const done = await exact(base, admin, `/api/tenant/${SLUG}/jobs/${ids.done}`);
  const result = await page.locator("#job-result pre").textContent();
  check(result.includes('"score": 0.30000000000000004') && JSON.stringify(JSON.parse(result)) === JSON.stringify(done.result),
    `result shown ${result}, API ${JSON.stringify(done.result)}`);
  check(done.usage.events === 2 && done.usage.estimated_cost_usd === "2.12345679", `usage ${JSON.stringify(done.usage)}`);
  const usage = await page.locator("#job-usage > div").evaluateAll((ds) => ds.map((d) => [d.firstChild.textContent, d.querySelector("b").textContent]));
  const want = [["Events", n(done.usage.events)], ["Tokens in / out", `${n(done.usage.input_tokens)} / ${n(done.usage.output_tokens)}`],
    ["Total tokens", n(done.usage.total_tokens)], ["Estimated cost", dollars(done.usage.estimated_cost_usd)],
    ["Billed cost", dollars(done.usage.billed_cost_usd)]];
  check(JSON.stringify(usage) === JSON.stringify(want), `usage shown ${JSON.stringify(usage)}, API ${JSON.stringify(want)}`);
  check(await page.locator("#job").getByRole("button", { name: /Cancel job|Retry job/ }).count() === 0, "nothing to do on a succeeded job");
  check(await page.evaluate(() => location.hash) === `#/t/${SLUG}/jobs/${ids.done}`, "a job has its own address");
  await fits(page, "succeeded job");
  await shot(page, "job");

  step("Cancel on a queued job cancels it (the API confirms)");
  await filter(page, { queue: "agents" });
  await open(page, ids.cancel, "queued");
  await page.locator("#job").getByRole("button", { name: "Cancel job" }).click();
  await page.locator('#job[data-status="cancelled"]').waitFor();
  check((await call(base, admin, "GET", `/api/tenant/${SLUG}/jobs/${ids.cancel}`)).body.status === "cancelled", "cancelled in the API");
  await page.locator("#job").getByRole("button", { name: "Retry job" }).waitFor();

  step("a job leased while its page was open: Cancel shows the API's 409 beside the button");
  await filter(page, {});
  await open(page, ids.stale, "queued");
  const l = await call(base, ids.worker, "POST", "/api/queue/lease", { queues: ["default"], max_jobs: 1 });
  check(l.status === 200 && l.body.jobs[0]?.id === ids.stale, `leased under the page: ${JSON.stringify(l.body)}`);
  const refused = await call(base, admin, "POST", `/api/tenant/${SLUG}/jobs/${ids.stale}/cancel`);
  check(refused.status === 409 && refused.body.error === "conflict", `the API refuses: ${JSON.stringify(refused.body)}`);
  await expectRefusals(problems, async () => {
    await page.locator("#job").getByRole("button", { name: "Cancel job" }).click();
    await page.locator("#job").getByRole("alert").filter({ hasText: refused.body.message }).waitFor();
  });
  check((await call(base, admin, "GET", `/api/tenant/${SLUG}/jobs/${ids.stale}`)).body.status === "running", "still running");
  await fits(page, "refused cancel");

  step("a mistyped job id in the address says why, and the list stays");
  await expectRefusals(problems, async () => {
    await page.evaluate((slug) => { location.hash = `#/t/${slug}/jobs/not-a-job`; }, SLUG);
    await page.locator("#job").getByRole("alert").filter({ hasText: "no such job" }).waitFor();
  });
  // That 404 is the API's answer for the job, expected here; any other 404 stays a problem.
  const missing = problems.findIndex((p) => p.startsWith("404: ") && p.endsWith(`/api/tenant/${SLUG}/jobs/not-a-job`));
  check(missing >= 0, `the page asked for the job: ${problems.join("; ")}`);
  problems.splice(missing, 1);
  check(await page.locator("#job-list tr[data-job]").count() === 25, "the jobs are still listed");
}

/** The Instance view's queue across tenants: every tenant with jobs, as /api/queue/tenants has them. */
export async function queueOverview(page, { base, admin, shot }) {
  step("the Instance view's queue across tenants shows ready, running, dead and succeeded per tenant");
  await page.getByRole("link", { name: "Instance" }).click();
  const card = page.getByRole("region", { name: "Queue across tenants" });
  await card.locator(`tr[data-tenant="${SLUG}"]`).waitFor();
  const r = (await call(base, admin, "GET", "/api/queue/tenants")).body;
  check([SLUG, OTHER].every((s) => r.tenants.some((t) => t.slug === s)), `both tenants in ${JSON.stringify(r)}`);
  const rows = card.locator("tr[data-tenant]");
  check((await rows.evaluateAll((rs) => rs.map((x) => x.dataset.tenant))).join() === r.tenants.map((t) => t.slug).join(),
    "tenants in the API's order");
  for (const [i, t] of r.tenants.entries()) {
    const c = await cells(rows.nth(i));
    const want = { Tenant: t.slug, Name: t.name, Plan: t.plan, Ready: n(t.counts.queued + t.counts.retrying),
      Running: n(t.counts.running), Dead: n(t.counts.dead), Succeeded: n(t.counts.succeeded) };
    check(JSON.stringify(c) === JSON.stringify(want), `overview row: shown ${JSON.stringify(c)}, API ${JSON.stringify(want)}`);
  }
  const mine = r.tenants.find((t) => t.slug === SLUG).counts;
  check(mine.running === 1 && mine.retrying === 1 && mine.succeeded === 1, `queue-co counts ${JSON.stringify(mine)}`);
  await fits(page, "instance page with the queue");
  await shot(page, "queue-overview");

  step("a tenant's slug opens its Jobs tab");
  await card.getByRole("link", { name: `Jobs of ${SLUG}` }).click();
  await page.getByRole("heading", { name: `Tenant ${SLUG}` }).waitFor();
  await checkCounts(page, base, admin, SLUG);
}

/** A viewer reads its tenant's jobs without Cancel or Retry; a member cancels a queued one. */
export async function jobsByRole(page, role, token) {
  step(`a ${role} key reads its tenant's jobs${role === "member" ? " and cancels a queued one" : ", with no Cancel or Retry"}`);
  const base = new URL(page.url()).origin;
  const [job] = (await call(base, token, "GET", "/api/jobs?kind=report")).body.items;
  check(job, "the tenant has its report job");
  await page.getByRole("navigation").getByRole("link", { name: "Jobs" }).click();
  await page.locator("#job-counts").waitFor();
  await open(page, job.id, job.status);
  check(await page.evaluate(() => location.hash) === `#/t/own/jobs/${job.id}`, "the key's own tenant");
  if (role === "member") {
    await page.locator("#job").getByRole("button", { name: "Cancel job" }).click();
    await page.locator('#job[data-status="cancelled"]').waitFor();
    check((await call(base, token, "GET", `/api/jobs/${job.id}`)).body.status === "cancelled", "cancelled in the API");
  } else {
    check(job.status === "queued", `still queued: ${job.status}`);
    check(await page.locator("#job").getByRole("button").count() === 0, "no Cancel or Retry for a viewer");
  }
  await fits(page, `${role} job`);
}

/** The queue off: the Jobs tab and the Instance view say how to turn it on, with no error. */
export async function queueOff(browser, { base, admin, width, height, problems }) {
  step("queue off: the Jobs tab and the Instance view say how to turn it on");
  const { context, page } = await signedIn(browser, { base, width, height, problems }, admin);
  try {
    check((await call(base, admin, "GET", "/api/features")).body.hosted_queue === false, "this server has the queue off");
    await page.evaluate(() => { location.hash = "#/t/default/jobs"; });
    const note = page.locator("#queue-off");
    await note.waitFor();
    check((await note.textContent()).includes("The job queue is off on this instance: set ENABLE_HOSTED_QUEUE=true"), `note: ${await note.textContent()}`);
    check(await page.getByRole("heading", { name: "Something went wrong" }).count() === 0, "no error page");
    await fits(page, "queue off");
    await page.getByRole("link", { name: "Instance" }).click();
    await page.getByRole("region", { name: "Queue across tenants" }).locator("#queue-off").waitFor();
  } finally {
    await context.close();
  }
}
