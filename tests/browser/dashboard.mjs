// dashboard.mjs — the dashboard in a real browser (Debian's chromium,
// headless, driven by playwright-core) against the real server on loopback.
// Each test asserts what a user would see; the numbers are compared with the
// API's own answer to the same request. Screenshots: $EPS_SHOTS/<view>.png.
// Ends with "browser: N passed, N failed".
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const BIN = process.env.EPS_BIN;
const SHOTS = process.env.EPS_SHOTS ?? "build/browser";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const VIEWPORT = { width: 1366, height: 860 };
const T = 60_000; // per UI wait (2 shared cores: generous)
mkdirSync(SHOTS, { recursive: true });

const servers = [];
/** epsinas serve on 127.0.0.1, a free port; resolves with its base URL once
 *  it printed "listening on" (bounded). */
function serve(args = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, ["serve", "--listen", "127.0.0.1", "--port", "0", "--workers", "2", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    servers.push(p);
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 15_000);
    const onData = (d) => {
      out += d;
      const m = /listening on [^\s]*:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(`http://127.0.0.1:${m[1]}`);
      }
    };
    p.stdout.on("data", onData);
    p.stderr.on("data", onData);
    p.on("exit", (c) => reject(new Error(`server exited (${c}): ${out}`)));
  });
}

async function postScore(api, body) {
  const r = await fetch(`${api}/v1/score`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
function assertEq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/** A page that records console errors and uncaught exceptions. */
async function newPage(browser) {
  const ctx = await browser.newContext({ viewport: VIEWPORT });
  const page = await ctx.newPage();
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => page.errors.push(`pageerror: ${e.message}`));
  return page;
}

const OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
const cell = (o) => `|${o[0]}~0|+|${o[1]}~0|${o[2]}~1|+|${o[3]}~0|${o[4]}~1|${o[5]}~2|`;

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

let API, OTHER, NOCORS, browser;

test("every view loads with no console errors (dashboard built, not the placeholder)", async () => {
  const page = await newPage(browser);
  const checks = {
    score: "#nb201-edge-5 option",
    explore: "[data-testid=history-count]",
    sweep: "#sweep-list",
    service: "[data-testid=health] dd[data-key=version]",
  };
  for (const [view, sel] of Object.entries(checks)) {
    await page.goto(`${API}/#/${view}`);
    await page.waitForSelector(sel, { timeout: T, state: "attached" });
    assertEq(await page.getAttribute(`nav a[data-view=${view}]`, "aria-current"), "page", `${view}: nav marks the view`);
  }
  await page.waitForFunction(() => document.querySelector("[data-testid=health] dd[data-key=version]")?.textContent?.length > 0, null, { timeout: T });
  const meta = await (await fetch(`${API}/v2`)).json();
  assertEq(await page.textContent("[data-testid=health] dd[data-key=version]"), meta.version, "service view: version");
  assertEq(page.errors.length, 0, `console errors: ${page.errors.join(" | ")}`);
  await page.context().close();
});

test("an NB201 cell scored through the editor shows the epsilon of POST /v1/score", async () => {
  const page = await newPage(browser);
  await page.goto(`${API}/#/score`);
  const ops = ["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_3x3"];
  await page.waitForSelector("#nb201-edge-5 option", { state: "attached", timeout: T });
  for (let k = 0; k < 6; k++) await page.selectOption(`#nb201-edge-${k}`, ops[k]);
  assertEq(await page.inputValue("#nb201-arch"), cell(ops), "cell string follows the selects");
  // The drawing follows too: one label per edge.
  const labels = await page.$$eval("svg.dag .edge-label", (els) => els.map((e) => e.textContent));
  assertEq(labels.join(","), "conv3x3,skip,conv1x1,avgpool,skip,conv3x3", "edge labels");
  await page.click("#score-btn");
  await page.waitForSelector("[data-testid=epsilon]", { timeout: T });
  const shown = await page.textContent("[data-testid=epsilon]");
  const api = await postScore(API, { space: "nb201", arch: cell(ops) });
  assertEq(api.status, 200, "API status");
  assert(api.json.epsilon !== null, "the chosen cell has a finite epsilon");
  assertEq(shown, String(api.json.epsilon), "epsilon shown vs API");
  assertEq(await page.textContent("[data-testid=params]"), api.json.params.toLocaleString("en-US"), "params shown vs API");
  assertEq(await page.textContent("[data-testid=hash] code"), api.json.hash, "hash shown vs API");
  // Keyboard: scoring a NaN cell with Ctrl+Enter shows NaN and the reason.
  for (let k = 0; k < 6; k++) await page.selectOption(`#nb201-edge-${k}`, "none");
  await page.focus("#nb201-edge-0");
  await page.keyboard.press("Control+Enter");
  await page.waitForSelector("[data-testid=nan-reason]", { timeout: T });
  assertEq(await page.textContent("[data-testid=epsilon]"), "NaN", "NaN cell");
  const nanApi = await postScore(API, { space: "nb201", arch: cell(new Array(6).fill("none")) });
  assertEq(await page.textContent("[data-testid=nan-reason]"), ` (${nanApi.json.nan_reason})`, "nan reason vs API");
  assertEq(page.errors.length, 0, `console errors: ${page.errors.join(" | ")}`);
  // The view with a finite result, for the README.
  for (let k = 0; k < 6; k++) await page.selectOption(`#nb201-edge-${k}`, ops[k]);
  await page.click("#score-btn");
  await page.waitForFunction(() => document.querySelector("[data-testid=epsilon]")?.textContent !== "NaN", null, { timeout: T });
  await page.screenshot({ path: `${SHOTS}/score.png` });
  await page.context().close();
});

test("a bad NB101 matrix shows the API's error with the matrix cell highlighted", async () => {
  const page = await newPage(browser);
  await page.goto(`${API}/#/score`);
  await page.click("#tab-nb101");
  await page.waitForSelector("#m-2-0");
  // Pruning is shown before scoring: vertex 2 without an edge out is pruned.
  await page.uncheck("#m-2-3");
  await page.waitForFunction(() => /pruned.*vertex 2/.test(document.querySelector("[data-testid=pruning]")?.textContent ?? ""), null, { timeout: T });
  assertEq(await page.$$eval("svg.dag .node.pruned", (e) => e.length), 1, "one vertex drawn pruned");
  await page.check("#m-2-3");
  await page.check("#m-2-0"); // below the diagonal: the API refuses it
  await page.click("#score-btn");
  await page.waitForSelector("[data-testid=error-message]", { timeout: T });
  const shown = await page.textContent("[data-testid=error-message]");
  const api = await postScore(API, {
    space: "nb101",
    matrix: [[0, 1, 1, 0], [0, 0, 0, 1], [1, 0, 0, 1], [0, 0, 0, 0]],
    ops: ["input", "conv3x3-bn-relu", "maxpool3x3", "output"],
  });
  assertEq(api.status, 400, "API status");
  assertEq(shown, api.json.error, "message shown vs API");
  assert(/field: matrix/.test(await page.textContent("[data-testid=error]")), "the error names the field");
  const cls = await page.getAttribute('td[data-field="matrix[2][0]"]', "class");
  assert(/\binvalid\b/.test(cls ?? ""), `matrix[2][0] highlighted (class "${cls}")`);
  assertEq(await page.$$eval(".invalid", (e) => e.length), 1, "exactly one element highlighted");
  // Fixing it clears the highlight on the next score.
  await page.uncheck("#m-2-0");
  await page.click("#score-btn");
  await page.waitForSelector("[data-testid=epsilon]", { timeout: T });
  assertEq(await page.$$eval(".invalid", (e) => e.length), 0, "highlight cleared");
  await page.check("#m-2-0");
  await page.click("#score-btn");
  await page.waitForSelector("[data-testid=error-message]", { timeout: T });
  await page.screenshot({ path: `${SHOTS}/score-error.png` });
  await page.context().close();
});

test("a sweep job of 20 pasted NB201 cells shows progress to completion and its histogram", async () => {
  const page = await newPage(browser);
  await page.goto(`${API}/#/sweep`);
  const cells = [];
  for (let i = 0; i < 20; i++) {
    const n = i * 613 + 97; // 20 distinct indices below 5^6, digits in base 5 = ops
    cells.push(cell([0, 1, 2, 3, 4, 5].map((k) => OPS[Math.floor(n / 5 ** k) % 5])));
  }
  await page.fill("#sweep-list", cells.join("\n"));
  await page.fill("#sweep-label", "browser test");
  await page.fill("#sweep-batch-size", "64");
  await page.click("#sweep-start");
  await page.waitForFunction(() => document.querySelector("[data-testid=job-status]")?.textContent === "succeeded", null, { timeout: 120_000 });
  const max = await page.getAttribute("#sweep-progress", "max");
  const value = await page.$eval("#sweep-progress", (p) => p.value);
  assertEq(max, "20", "progress max");
  assertEq(value, 20, "progress value at the end");
  assert(/^20 \/ 20/.test(await page.textContent("[data-testid=job-progress]")), "progress text 20 / 20");
  // Every row reached the histogram: scored + NaN + failed = 20, as the API says.
  await page.waitForFunction(() => /^\d+ scored, \d+ NaN, 0 failed/.test(document.querySelector("[data-testid=job-counts]")?.textContent ?? ""), null, { timeout: T });
  const counts = await page.textContent("[data-testid=job-counts]");
  const [, scored, nan] = /^(\d+) scored, (\d+) NaN/.exec(counts).map(Number);
  const jobs = await (await fetch(`${API}/v1/jobs`)).json();
  const job = jobs.jobs.find((j) => j.label === "browser test");
  assert(job, "the job is listed by the API");
  assertEq(job.status, "succeeded", "API job status");
  assertEq(scored + nan, 20, "rows in the histogram");
  assertEq(nan, job.nan, "NaN count vs API");
  const bars = await page.evaluate(() => {
    const c = document.querySelector("#histogram");
    return c && c.width > 0;
  });
  assert(bars, "histogram drawn");
  assertEq(page.errors.length, 0, `console errors: ${page.errors.join(" | ")}`);
  await page.screenshot({ path: `${SHOTS}/sweep.png`, fullPage: true });
  await page.context().close();
});

test("explore lists this browser's history, plots it and sorts by epsilon", async () => {
  const page = await newPage(browser);
  await page.goto(`${API}/#/score`);
  await page.waitForSelector("#nb201-edge-5 option", { state: "attached", timeout: T });
  const scored = [];
  // Each has a skip/pool path from input to output, so epsilon is finite.
  for (const o of [["nor_conv_3x3", "nor_conv_3x3", "skip_connect", "skip_connect", "avg_pool_3x3", "skip_connect"],
                   ["skip_connect", "avg_pool_3x3", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1"],
                   ["avg_pool_3x3", "skip_connect", "skip_connect", "nor_conv_3x3", "nor_conv_3x3", "skip_connect"]]) {
    await page.fill("#nb201-arch", cell(o));
    await page.click("#score-btn");
    await page.waitForFunction((c) => document.querySelector("[data-testid=result] code.wrap")?.textContent === c, cell(o), { timeout: T });
    const e = (await postScore(API, { space: "nb201", arch: cell(o) })).json.epsilon;
    assert(e !== null, `${cell(o)} has a finite epsilon`);
    scored.push(e);
  }
  await page.goto(`${API}/#/explore`);
  await page.waitForSelector("[data-testid=history-table] tbody tr");
  assert(/^3 scored/.test(await page.textContent("[data-testid=history-count]")), "3 entries");
  await page.click('button[data-key="epsilon"]');
  const col = await page.$$eval("[data-testid=history-table] tbody tr td:nth-child(3)", (tds) => tds.map((t) => t.textContent));
  assertEq(col.join(","), [...scored].sort((a, b) => b - a).map(String).join(","), "sorted by epsilon, highest first");
  assertEq(await page.$eval("#scatter", (c) => c.width > 0), true, "scatter drawn");
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click("text=Download CSV")]);
  assertEq(dl.suggestedFilename(), "epsinas-history.csv", "CSV file name");
  assertEq(page.errors.length, 0, `console errors: ${page.errors.join(" | ")}`);
  await page.screenshot({ path: `${SHOTS}/explore.png`, fullPage: true });
  await page.goto(`${API}/#/service`);
  await page.waitForFunction(() => /%/.test(document.querySelector("[data-testid=metrics] dd[data-key='cache hit rate']")?.textContent ?? ""), null, { timeout: T });
  await page.screenshot({ path: `${SHOTS}/service.png`, fullPage: true });
  await page.context().close();
});

test("from another origin: works when --cors-origins allows it, shows the failure when not", async () => {
  const page = await newPage(browser);
  await page.goto(`${OTHER}/?api=${encodeURIComponent(API)}#/score`);
  await page.waitForSelector("#nb201-edge-5 option", { state: "attached", timeout: T });
  const ops = ["skip_connect", "nor_conv_3x3", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3", "skip_connect"];
  for (let k = 0; k < 6; k++) await page.selectOption(`#nb201-edge-${k}`, ops[k]);
  await page.click("#score-btn");
  await page.waitForSelector("[data-testid=epsilon]", { timeout: T });
  const api = await postScore(API, { space: "nb201", arch: cell(ops) });
  assertEq(await page.textContent("[data-testid=epsilon]"), String(api.json.epsilon), "cross-origin epsilon vs API");
  assertEq(page.errors.length, 0, `console errors: ${page.errors.join(" | ")}`);
  // The same page pointed at a server without CORS for this origin.
  await page.fill("#api-base", NOCORS);
  await page.click("#settings button");
  await page.waitForSelector("#nb201-edge-5", { timeout: T });
  await page.click("#score-btn");
  await page.waitForSelector("[data-testid=error]:not([hidden])", { timeout: T });
  assert(/cannot reach the API/.test(await page.textContent("[data-testid=error]")), "the refusal is reported");
  await page.context().close();
});

async function main() {
  if (!BIN) throw new Error("EPS_BIN not set");
  OTHER = await serve(); // serves the page; its API is not used
  NOCORS = await serve();
  API = await serve(["--cors-origins", OTHER]);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  let pass = 0, fail = 0;
  for (const t of tests) {
    const t0 = Date.now();
    try {
      // A bound per test, so a hang fails the test instead of the CI run.
      let timer;
      await Promise.race([t.fn(), new Promise((_, rej) => (timer = setTimeout(() => rej(new Error("test took over 180 s")), 180_000)))]);
      clearTimeout(timer);
      pass++;
      console.log(`ok - ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      fail++;
      console.log(`not ok - ${t.name}\n    ${String(e && e.stack ? e.stack : e).split("\n").slice(0, 4).join("\n    ")}`);
    }
  }
  await browser.close();
  console.log(`screenshots in ${SHOTS}`);
  console.log(`browser: ${pass} passed, ${fail} failed`);
  return fail;
}

let rc = 1;
try {
  rc = (await main()) ? 1 : 0;
} catch (e) {
  console.log(`browser: setup failed: ${e.stack ?? e}`);
  console.log("browser: 0 passed, 1 failed");
} finally {
  for (const p of servers) p.kill("SIGTERM");
}
process.exit(rc);
