// The dashboard at 500 Rollouts in a namespace: the list shows them all, stays live (one
// change reaches its row), filters, and opens one. Prints how long each took; the figures
// are reported, not asserted (e2e/dashboard.sh runs it on cutover dev).
//   URL  the dashboard of the namespace; NS that namespace; COUNT how many Rollouts it holds
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

const { URL: DASHBOARD, NS, COUNT } = process.env;
const count = Number(COUNT);
const fail = (m) => { throw new Error(m); };

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(120_000);
    const started = Date.now();
    await page.goto(DASHBOARD);
    await page.locator("#count", { hasText: `${count} of ${count} rollouts` }).waitFor();
    const listed = Date.now() - started;
    const rows = await page.locator("#rollouts tr.row").count();
    if (rows !== count) fail(`${rows} rows for ${count} Rollouts`);

    const last = `app-${String(count - 1).padStart(4, "0")}`;
    let t = Date.now();
    execFileSync("kubectl", ["-n", NS, "patch", "rollouts.cutover.dev", last, "--type=merge", "-p",
      JSON.stringify({ spec: { template: { spec: { containers: [{ name: "app", image: "registry.example.com/app:2" }] } } } })]);
    await page.locator(`#rollouts tr[data-name="${last}"] .images`, { hasText: "app:2" }).waitFor();
    const live = Date.now() - t;

    t = Date.now();
    await page.fill("#filter", last);
    await page.locator("#count", { hasText: `1 of ${count} rollouts` }).waitFor();
    const filtered = Date.now() - t;

    t = Date.now();
    await page.locator(`#rollouts tr[data-name="${last}"] a`).click();
    await page.locator("#summary h2", { hasText: last }).waitFor();
    const opened = Date.now() - t;
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? 0);
    console.log(`dashboard at ${count} rollouts: listed in ${listed} ms, a change shown in ${live} ms, ` +
      `filtered in ${filtered} ms, one opened in ${opened} ms, page heap ${(heap / 1e6).toFixed(1)} MB`);
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(`FAIL: ${e.message}`);
  process.exit(1);
});
