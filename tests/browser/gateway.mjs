// The Gateway view in the browser: base URLs and SDK snippets, Copy, the recent calls table
// filled by real gateway calls (the Rust side points the server at the fake provider), and
// the gateway settings' save round-trip.
import { step, check, fits, call } from "./lib.mjs";

const n = (x) => x.toLocaleString("en-US");
const ASK = { model: "claude-haiku-4-5", max_tokens: 16, messages: [{ role: "user", content: "hi" }] };

/** A gateway call with a tenant key, as an application's SDK makes it. */
async function gatewayCall(base, key, body, expect = 200) {
  const res = await fetch(`${base}/v1/messages`, {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", "anthropic-version": "2023-06-01" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  check(res.status === expect, `gateway call answered ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

export async function gatewayFlow(page, { base, admin, serviceKey, slug, shot }) {
  step("the Gateway view shows the base URLs and the SDK snippets with a placeholder key");
  await page.getByRole("link", { name: "Gateway", exact: true }).first().click();
  await page.getByRole("heading", { name: /^Gateway settings/ }).waitFor();
  check(await page.locator("#base-url-openai").textContent() === `${base}/v1`, "OpenAI base URL is origin/v1");
  check(await page.locator("#base-url-anthropic").textContent() === base, "Anthropic base URL is the origin");
  const py = await page.locator("#snippet-python-openai").textContent();
  check(py.includes("from openai import OpenAI") && py.includes(`client = OpenAI(base_url="${base}/v1", api_key="tk_...")`), `OpenAI snippet: ${py}`);
  const an = await page.locator("#snippet-python-anthropic").textContent();
  check(an.includes("from anthropic import Anthropic") && an.includes(`client = Anthropic(base_url="${base}", api_key="tk_...")`), `Anthropic snippet: ${an}`);
  const node = await page.locator("#snippet-node-openai").textContent();
  check(node.includes(`new OpenAI({ baseURL: "${base}/v1", apiKey: "tk_..." })`), `Node snippet: ${node}`);
  check(!/tk_[A-Za-z0-9]{6,}/.test(await page.locator("main").textContent()), "no real key on the page");

  step("Copy puts a snippet on the clipboard, exactly as shown");
  const box = page.getByRole("group", { name: "Python, Anthropic SDK" });
  await box.getByRole("button", { name: "Copy" }).click();
  await box.getByText("Copied.").waitFor();
  check((await page.evaluate(() => navigator.clipboard.readText())) === an, "the clipboard holds the Anthropic snippet");

  step("before any call: the empty state and nothing in flight");
  const calls = page.getByRole("region", { name: "Recent gateway calls" });
  await calls.getByText("No gateway calls since the server started.").waitFor();
  check((await page.locator("#in-flight").textContent()) === "0 calls in flight", "nothing in flight");

  step("a plain, a streamed and a refused call with the tenant's service key show in the table after Refresh");
  const plain = JSON.parse(await gatewayCall(base, serviceKey, ASK));
  check(plain.type === "message", `an Anthropic message came back: ${JSON.stringify(plain).slice(0, 200)}`);
  const sse = await gatewayCall(base, serviceKey, { ...ASK, stream: true });
  check(sse.includes("message_stop"), "the stream ran to its end");
  // The provider answers 429: relayed, not metered, and listed as a failure.
  await gatewayCall(base, serviceKey, { ...ASK, fake: { status: 429 } }, 429);
  await calls.getByRole("button", { name: "Refresh" }).click();
  const rows = calls.locator("#gateway-calls tbody tr", { hasText: "claude-haiku-4-5" });
  await rows.nth(2).waitFor();
  const api = (await call(base, admin, "GET", `/api/tenant/${slug}/gateway/calls`)).body;
  check(api.items.length === 3 && api.items.every((c) => c.path === "/v1/messages")
    && api.items.map((c) => c.status).join() === "429,200,200" && api.items[0].billed_cost_usd === null
    && api.items.slice(1).every((c) => c.input_tokens > 0), `the API lists the three calls, newest first: ${JSON.stringify(api)}`);
  for (const [i, c] of api.items.entries()) {
    const text = (await rows.nth(i).textContent()).replace(/\s+/g, " ");
    const cost = c.billed_cost_usd === null ? "—" : `$${Number(c.billed_cost_usd).toFixed(9).replace(/0+$/, "").replace(/\.$/, "")}`;
    check(text.includes("/v1/messages") && text.includes(String(c.status)) && text.includes(`${n(c.input_tokens)} / ${n(c.output_tokens)}`)
      && text.includes(cost) && text.includes(c.stream ? "yes" : "no") && text.includes(`${n(c.duration_ms)} ms`),
    `row ${i} shows path, status, tokens, cost ${cost}, streamed ${c.stream} and duration: ${text}`);
  }
  check(api.items[1].stream === true && api.items[2].stream === false, "the streamed call after the plain one");
  check(Number(api.items[2].billed_cost_usd) > 0, "the plain call was billed");
  check(await rows.nth(0).locator(".badge.exceeded").textContent() === "429", "the refused call's status is marked red");
  check(await rows.nth(2).locator(".badge.ok").textContent() === "200", "a call that worked is marked ok");
  await fits(page, "gateway page");
  await shot(page, "gateway");

  step("enforce_limits and max_concurrent_calls: set, save, reload, still set");
  const before = (await call(base, admin, "GET", `/api/tenant/${slug}/settings`)).body;
  const gw = page.getByRole("form", { name: "Gateway settings" });
  check(before.enforce_limits === false && !(await gw.getByLabel("Enforce limits").isChecked()), "limits not enforced at first");
  check(await gw.getByLabel(/^Concurrent calls/).getAttribute("placeholder") === "256", "the enterprise plan's 256 is shown");
  await gw.getByLabel("Enforce limits").check();
  await gw.getByLabel(/^Concurrent calls/).fill("7");
  await gw.getByRole("button", { name: "Save gateway settings" }).click();
  await page.getByRole("heading", { name: `Gateway settings (version ${before.version + 1})` }).waitFor();
  await page.reload();
  await page.getByRole("heading", { name: `Gateway settings (version ${before.version + 1})` }).waitFor();
  check(await page.getByRole("form", { name: "Gateway settings" }).getByLabel("Enforce limits").isChecked(), "still enforced after reload");
  check(await page.getByRole("form", { name: "Gateway settings" }).getByLabel(/^Concurrent calls/).inputValue() === "7", "still 7 after reload");
  const saved = (await call(base, admin, "GET", `/api/tenant/${slug}/settings`)).body;
  check(saved.enforce_limits === true && saved.max_concurrent_calls === 7, `saved: ${JSON.stringify(saved)}`);

  step("the main settings form keeps the gateway settings when it saves");
  await page.getByRole("link", { name: "Members, keys and settings" }).click();
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByRole("heading", { name: `Settings (version ${before.version + 2})` }).waitFor();
  const kept = (await call(base, admin, "GET", `/api/tenant/${slug}/settings`)).body;
  check(kept.enforce_limits === true && kept.max_concurrent_calls === 7, `kept: ${JSON.stringify(kept)}`);

  step("clearing the number and the box goes back to the plan's and soft limits");
  await page.getByRole("link", { name: "Gateway", exact: true }).first().click();
  const again = page.getByRole("form", { name: "Gateway settings" });
  await again.getByLabel("Enforce limits").uncheck();
  await again.getByLabel(/^Concurrent calls/).fill("");
  await again.getByRole("button", { name: "Save gateway settings" }).click();
  await page.getByRole("heading", { name: `Gateway settings (version ${before.version + 3})` }).waitFor();
  const cleared = (await call(base, admin, "GET", `/api/tenant/${slug}/settings`)).body;
  check(cleared.enforce_limits === false && cleared.max_concurrent_calls === null, `cleared: ${JSON.stringify(cleared)}`);
}

/** A viewer or member key reads the Gateway view: the calls and the settings, no form. */
export async function gatewayRead(page, role) {
  step(`a ${role} key reads the Gateway view without a settings form`);
  await page.getByRole("link", { name: "Gateway", exact: true }).first().click();
  await page.getByRole("heading", { name: /^Gateway settings/ }).waitFor();
  await page.locator("#gateway-calls tbody tr", { hasText: "claude-haiku-4-5" }).nth(1).waitFor();
  await page.getByRole("region", { name: /^Gateway settings/ }).getByRole("cell", { name: "Enforce limits" }).waitFor();
  check((await page.getByRole("button", { name: "Save gateway settings" }).count()) === 0, "no gateway settings form");
  await fits(page, `${role} gateway`);
}
