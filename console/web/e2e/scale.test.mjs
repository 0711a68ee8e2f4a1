// The device list with 10,000 devices, in the real browser with the real built console (served
// by the real server), but with the control WebSocket mocked by Playwright: no load is put on the
// server, and the numbers measure the console alone. Asserts behaviour (virtualisation, search,
// live updates); the timings are recorded in artifacts/figures.json, not asserted.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, newPage, recordFigure, screenshot, startServer } from "./support.mjs";

const DEVICES = 10_000;
const GROUPS = 25;
const admin = { id: "admin", name: "admin", email: null, siteAdmin: true, created: 1_700_000_000 };
const oses = ["Debian GNU/Linux 12 (bookworm)", "Ubuntu 24.04 LTS", "Microsoft Windows 11 Pro", "macOS 15.1", "Fedora Linux 41"];

function fleet() {
  const groups = Array.from({ length: GROUPS }, (_, g) => ({
    id: `group-${g}`,
    name: `Site ${String(g + 1).padStart(2, "0")}`,
    description: "",
    members: [{ user: "admin", rights: 0xffffffff }],
    created: 1_700_000_000,
  }));
  const now = Math.floor(Date.now() / 1000);
  const devices = Array.from({ length: DEVICES }, (_, i) => ({
    id: `device-${i}`,
    name: `pc-${String(i).padStart(5, "0")}`,
    group: `group-${i % GROUPS}`,
    online: i % 3 === 0,
    os: oses[i % oses.length],
    hostname: `host-${i}.example.lan`,
    lastseen: now - (i % 500) * 3600,
    agent: null,
  }));
  return { groups, devices };
}

describe("10,000 devices", () => {
  let server;
  let browser;
  let page;
  let errors;
  let socket;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page, errors } = await newPage(browser));
    const { groups, devices } = fleet();
    const results = {
      serverInfo: { name: "localhost", version: "test", protocol: 1, agentCertHash: "", webCertHash: "", httpsPort: server.port },
      whoAmI: { user: admin },
      listGroups: groups,
      listDevices: devices,
      listUsers: [admin],
      listEvents: [],
    };
    await page.route("**/api/status", (route) =>
      route.fulfill({ json: { setup_required: false, new_accounts: false, user: admin } }),
    );
    await page.routeWebSocket(/\/control$/, (ws) => {
      socket = ws;
      ws.onMessage((text) => {
        const request = JSON.parse(String(text));
        ws.send(JSON.stringify({ action: request.action, id: request.id, ok: true, result: results[request.action] ?? {} }));
      });
    });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
  });

  it("renders the list fast and only the rows in view", async () => {
    await page.goto(`${server.url}/devices`);
    await page.locator(".item").first().waitFor();
    // Navigation start → first device row on screen, in the page's own clock.
    recordFigure("deviceList10kInteractiveMs", await page.evaluate(() => Math.round(performance.now())));
    await page.getByTestId("device-totals").filter({ hasText: "10,000 devices" }).waitFor();
    const rows = await page.locator(".item").count();
    assert.ok(rows > 5 && rows < 100, `rendered ${rows} rows for ${DEVICES} devices`);
    await screenshot(page, "20-devices-10k");
  });

  it("scrolls smoothly to the end", async () => {
    const frames = await page.evaluate(async () => {
      const viewport = document.querySelector(".viewport");
      const durations = [];
      let last = performance.now();
      for (let step = 0; step < 120; step++) {
        viewport.scrollTop += viewport.scrollHeight / 120;
        await new Promise((r) => requestAnimationFrame(r));
        const now = performance.now();
        durations.push(now - last);
        last = now;
      }
      durations.sort((a, b) => a - b);
      return { frames: durations.length, medianMs: durations[60], p95Ms: durations[114] };
    });
    recordFigure("scroll10kFrames", frames);
    await page.locator(".item", { hasText: "pc-09999" }).waitFor();
    await screenshot(page, "21-devices-10k-end");
  });

  it("moves between rows with the keyboard", async () => {
    await page.locator(".item a").first().focus();
    await page.keyboard.press("Home");
    await page.locator(".item a", { hasText: "pc-00000" }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "pc-00000");
    await page.keyboard.press("ArrowDown");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "pc-00001");
    await page.keyboard.press("End");
    await page.locator(".item a", { hasText: "pc-09999" }).waitFor();
  });

  it("searches and filters", async () => {
    await page.getByRole("searchbox").fill("pc-0424");
    await page.getByText("Showing 10 of 10,000").waitFor();
    await page.getByRole("searchbox").fill("");
    await page.getByRole("radio", { name: "Online" }).click();
    await page.getByText("Showing 3,334 of 10,000").waitFor();
    await page.getByRole("combobox").first().selectOption({ label: "Site 02" });
    await page.getByText(/Showing \d+ of 10,000/).waitFor();
    await screenshot(page, "22-devices-filtered");
    await page.getByRole("button", { name: "Clear", exact: true }).click();
  });

  it("applies a burst of 2,000 status events without a reload", async () => {
    const started = await page.evaluate(() => performance.now());
    for (let i = 1; i <= 6000; i += 3) {
      socket.send(JSON.stringify({ action: "event", event: { type: "deviceOnline", device: `device-${i}`, group: "x" } }));
    }
    await page.getByTestId("device-totals").filter({ hasText: "5,334 online" }).waitFor();
    const finished = await page.evaluate(() => performance.now());
    recordFigure("burst2000EventsMs", Math.round(finished - started));
    // The toasts summarise the burst instead of flooding the screen.
    assert.ok((await page.locator(".toast").count()) <= 5);
    await screenshot(page, "23-devices-burst");
    assert.deepEqual(errors, []);
  });
});
