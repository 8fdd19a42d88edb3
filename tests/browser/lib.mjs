// Helpers for admin.mjs: checks, the phone-layout check, expected HTTP failures, API calls.
export const step = (s) => console.log(`- ${s}`);
export const check = (ok, what) => { if (!ok) throw new Error(`check failed: ${what}`); };

/** Collects what must not happen: console errors, CSP violations, uncaught errors, 404s. */
export function watch(page, problems) {
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()} (${m.location().url})`); });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("response", (r) => { if (r.status() === 404) problems.push(`404: ${r.url()}`); });
}

export async function listenForCsp(page) {
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) =>
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
}

/**
 * A new browser context of the test's size with one page, watched for problems, signed in with
 * `token` and showing the tenants list. The caller closes `context`.
 */
export async function signedIn(browser, { base, width, height, problems }, token) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  watch(page, problems);
  await listenForCsp(page);
  await page.goto(base + "/");
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Tenants", exact: true }).waitFor();
  return { context, page };
}

/**
 * Runs `fn`, during which the API is expected to refuse something (the browser logs each
 * refused fetch as a console error); only those log lines are dropped, never a CSP violation
 * or an uncaught error.
 */
export async function expectRefusals(problems, fn) {
  const n = problems.length;
  await fn();
  const later = problems.splice(n);
  problems.push(...later.filter((p) => !/^console: Failed to load resource: the server responded with a status of 4\d\d/.test(p)));
}

/** Every view must work at the viewport's width: no sideways scrolling, every control reachable. */
export async function fits(page, where) {
  const bad = await page.evaluate(() => {
    const out = [];
    const vw = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth > vw) out.push(`page is ${document.documentElement.scrollWidth - vw}px wider than the window`);
    for (const c of document.querySelectorAll("section.card")) {
      if (c.scrollWidth > c.clientWidth + 1) out.push(`card "${c.getAttribute("aria-label")}" scrolls sideways by ${c.scrollWidth - c.clientWidth}px`);
    }
    for (const b of document.querySelectorAll("main button, main a, main input, main select")) {
      const r = b.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue; // hidden
      if (r.left < -1 || r.right > vw + 1) out.push(`"${(b.textContent || b.name || b.tagName).trim()}" is cut off (${Math.round(r.left)}..${Math.round(r.right)} of ${vw})`);
    }
    return out;
  });
  check(bad.length === 0, `${where} at ${page.viewportSize().width}px:\n  ${bad.join("\n  ")}`);
}

export async function call(base, token, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** The background colour a person sees on an element. */
export const background = (locator) => locator.evaluate((e) => getComputedStyle(e).backgroundColor);

export const RED = "rgb(200, 55, 45)";
