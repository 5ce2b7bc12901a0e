// Drives `kubectl cutover dashboard` in headless Chromium as a person would: reads the list,
// watches a release move without reloading, promotes at the gates, and (with VIEWER_URL)
// tries to promote as a user whose RBAC denies it. Run by e2e/dashboard.sh, which starts the
// target and the dashboards and passes:
//   URL         the dashboard (with its token) of a user who may act
//   VIEWER_URL  optional: a dashboard whose user may read but not patch Rollouts
//   NS          the namespace; KUBECONFIG the admin's, for kubectl
//   ARTIFACTS   where screenshots go
//   ANALYSIS    "1" when the target answers the analysis fixture's queries
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const { URL: DASHBOARD, VIEWER_URL, NS, ARTIFACTS = ".", ANALYSIS } = process.env;
const TIMEOUT = 90_000;

function fail(message) {
  throw new Error(message);
}
function kubectl(...args) {
  return execFileSync("kubectl", ["-n", NS, ...args], { encoding: "utf8" }).trim();
}
function jsonpath(name, path) {
  return kubectl("get", "rollouts.cutover.dev", name, "-o", `jsonpath={${path}}`);
}
function setImage(name, image) {
  const patch = { spec: { template: { spec: { containers: [{ name, image }] } } } };
  kubectl("patch", "rollouts.cutover.dev", name, "--type=merge", "-p", JSON.stringify(patch));
}
async function until(what, check, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  fail(`timed out waiting for ${what} (last: ${last})`);
}
function step(text) {
  console.log(`dashboard e2e: ${text}`);
}

// What the server refuses, asked from outside any browser.
async function guards() {
  const base = new URL(DASHBOARD);
  const token = base.searchParams.get("token");
  const noToken = await fetch(new URL("/", base));
  if (noToken.status !== 401) fail(`a request without the token got ${noToken.status}`);
  const wrong = await fetch(new URL("/api/stream?token=" + "0".repeat(32), base));
  if (wrong.status !== 401) fail(`a wrong token got ${wrong.status}`);
  const action = new URL(`/api/rollouts/${NS}/web/pause?token=${token}`, base);
  const foreign = await fetch(action, {
    method: "POST",
    headers: { Origin: "http://evil.example", "X-Cutover-Dashboard": "1" },
  });
  if (foreign.status !== 403) fail(`a cross-origin action got ${foreign.status}`);
  const bare = await fetch(action, { method: "POST", headers: { Origin: base.origin } });
  if (bare.status !== 403) fail(`an action without the dashboard's header got ${bare.status}`);
  const elsewhere = await fetch(new URL(`/api/rollouts/kube-system/web/pause?token=${token}`, base), {
    method: "POST",
    headers: { Origin: base.origin, "X-Cutover-Dashboard": "1" },
  });
  if (elsewhere.status !== 403) fail(`an action in a namespace not shown got ${elsewhere.status}`);
  if (jsonpath("web", ".spec.paused") === "true") fail("a refused action paused the Rollout");
  step("requests without the token, from another origin, without the header or for another namespace are refused");
}

async function confirmClick(page, action) {
  await page.locator(`button[data-action="${action}"]`).click();
  await page.locator("#confirm[open]").waitFor();
  await page.locator("#confirm-yes").click();
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  await guards();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(TIMEOUT);
    const requests = [];
    page.on("request", (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    const failures = [];
    page.on("pageerror", (e) => failures.push(e.message));
    page.on("console", (m) => m.type() === "error" && failures.push(m.text()));

    // 1. The list shows the Rollouts of the namespace.
    await page.goto(DASHBOARD);
    const names = kubectl("get", "rollouts.cutover.dev", "-o", "jsonpath={.items[*].metadata.name}").split(/\s+/);
    for (const name of names) {
      await page.locator(`#rollouts tr[data-name="${name}"]`).waitFor();
    }
    await until("the live marker", async () => (await page.locator("#live").textContent()) === "live");
    const webRow = page.locator('#rollouts tr[data-name="web"]');
    await until("web Healthy in the list", async () => (await webRow.locator(".phase").textContent()) === "Healthy");
    step(`the list shows ${names.join(", ")}`);

    // 2. A new image: the detail page follows the release without a reload.
    await webRow.locator("a").click();
    await page.locator("#summary").waitFor();
    await page.evaluate(() => { window.__sameDocument = true; });
    setImage("web", "registry.example.com/web:1.1.0");
    const current = page.locator("#steps li.current");
    await until("step 1 shown as current", async () => (await current.getAttribute("data-step")) === "1");
    await until("the new image in the summary", async () => (await page.locator("#summary").textContent()).includes("web:1.1.0"));
    if (!(await page.evaluate(() => window.__sameDocument === true))) fail("the page reloaded");
    step("a new image shows step 1 without a reload");

    // What a cluster holds is text on the page, never markup: an Event anyone who may create
    // Events could write.
    const hostile = '<img src=x onerror="window.__xss=1">';
    execFileSync("kubectl", ["-n", NS, "create", "-f", "-"], {
      input: JSON.stringify({
        apiVersion: "v1", kind: "Event", metadata: { name: `web.hostile${Date.now()}` },
        involvedObject: { apiVersion: "cutover.dev/v1alpha1", kind: "Rollout", name: "web", namespace: NS },
        reason: "<b>Hostile</b>", message: hostile, type: "Warning",
        firstTimestamp: new Date().toISOString(), lastTimestamp: new Date().toISOString(), count: 1,
      }),
    });
    await until("the hostile Event as text", async () => (await page.locator("#events").textContent()).includes(hostile));
    if ((await page.locator("#events img, #events b").count()) !== 0) fail("an Event's text became markup");
    if (await page.evaluate(() => window.__xss === 1)) fail("an Event's text ran as script");
    step("an Event's markup is shown as text");

    // 3. Promote past the timed pause, then at the manual gate.
    await confirmClick(page, "promote");
    await until("the promote notice", async () => (await page.locator("#notice.ok").textContent()).includes("promoted"));
    await until("step 3 (the manual gate)", async () => jsonpath("web", ".status.currentStepIndex") === "3");
    await until("the gate shown as current", async () => (await current.getAttribute("data-step")) === "3");
    await confirmClick(page, "promote");
    await until("web Healthy after the gate", async () => jsonpath("web", ".status.phase") === "Healthy");
    await until("Healthy on the page", async () => (await page.locator("#phase").textContent()) === "Healthy");
    await until("the history row", async () => (await page.locator("#history").textContent()).includes("web:1.1.0"));
    step("promote at the pause and at the manual gate moved the Rollout on to Healthy");

    // The migrations a Rollout runs, with the tail of their Job's log.
    await page.goto(`${DASHBOARD}#/${NS}/store`);
    const migration = page.locator('#migrations tr[data-migration="store-schema"]');
    await until("the migration Succeeded", async () => (await migration.locator(".badge").textContent()) === "Succeeded");
    await until("the migration's log tail", async () => (await migration.locator("pre.log").textContent()).includes("migrated to 0007"));
    step("the migration is shown with the tail of its log");
    await page.goto(`${DASHBOARD}#/${NS}/web`);
    await page.locator("#summary").waitFor();

    // 4. A user who may read but not patch: the refusal is shown, the Rollout unchanged.
    if (VIEWER_URL) {
      setImage("web", "registry.example.com/web:1.2.0");
      await until("web at step 1 again", async () => jsonpath("web", ".status.currentStepIndex") === "1" && jsonpath("web", ".status.phase") === "Paused");
      const before = jsonpath("web", ".metadata.annotations.cutover\\.dev/promote");
      const viewer = await browser.newPage();
      viewer.setDefaultTimeout(TIMEOUT);
      await viewer.goto(`${VIEWER_URL}#/${NS}/web`);
      await viewer.locator("#steps li.current[data-step='1']").waitFor();
      await confirmClick(viewer, "promote");
      const refusal = await until("the 403 notice", async () => {
        const t = await viewer.locator("#notice.error").textContent();
        return t.includes("403") && t ? t : false;
      });
      if (!/forbidden/i.test(refusal) || !refusal.includes("patch")) fail(`the refusal does not say why: ${refusal}`);
      await new Promise((r) => setTimeout(r, 2000));
      if (jsonpath("web", ".metadata.annotations.cutover\\.dev/promote") !== before) fail("the refused promote reached the Rollout");
      if (jsonpath("web", ".status.currentStepIndex") !== "1") fail("the Rollout moved after a refused promote");
      step(`a user without patch sees: ${refusal}`);
      await viewer.close();
      kubectl("annotate", "rollouts.cutover.dev", "web", `cutover.dev/promote-full=${Date.now()}`, "--overwrite");
      await until("web Healthy again", async () => jsonpath("web", ".status.phase") === "Healthy");
    }

    // 5. A canary mid-analysis, charted, saved as an artifact.
    if (ANALYSIS === "1") {
      await page.goto(`${DASHBOARD}#/${NS}/checkout`);
      setImage("checkout", "registry.example.com/checkout:2.0.0");
      const points = page.locator('.chart[data-metric="error-rate"] circle');
      await until("four error-rate measurements", async () => (await points.count()) >= 4);
      await page.locator('.chart[data-metric="latency"] .legend').waitFor();
      const judge = await page.locator('.chart[data-metric="latency"] polyline').count();
      if (judge !== 2) fail(`the judge is drawn as ${judge} series, not canary and stable`);
      if (!(await page.locator('.chart[data-metric="error-rate"]').textContent()).includes("result < 0.05")) {
        fail("the chart does not show its condition");
      }
      const shot = `${ARTIFACTS}/dashboard-canary-analysis.png`;
      await page.screenshot({ path: shot, fullPage: true });
      step(`screenshot of a canary mid-analysis: ${shot}`);
    }

    // No polling: the page asked for its feed once (or again after a reconnect), nothing else.
    const api = requests.filter((r) => r.includes("/api/"));
    const streams = api.filter((r) => r === "GET /api/stream").length;
    // Log tails are fetched when their MigrationJob changes, a handful of times.
    const logs = api.filter((r) => r.startsWith("GET /api/logs/")).length;
    const others = api.filter((r) => !r.startsWith("GET /api/stream") && !r.startsWith("POST /api/rollouts/") && !r.startsWith("GET /api/logs/"));
    if (streams < 1 || streams > 4 || logs > 10 || others.length) fail(`the page polled: ${api.join(", ")}`);
    if (failures.length) fail(`the page logged errors: ${failures.join("; ")}`);
    step(`the page made ${streams} feed request(s), ${logs} log fetch(es) and ${api.length - streams - logs} action(s), no polling`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
});
