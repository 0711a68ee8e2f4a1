// Session recording in a real browser with the real server and agent: the group's "Record
// sessions" switch, a terminal session whose typing and output are recorded, and the device's
// recorded sessions played back in the console and downloaded as asciicast.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  binary,
  createAdminAndGroup,
  launchBrowser,
  newPage,
  openOnlineDevice,
  screenshot,
  startAgent,
  startServer,
  startXprobe,
  startXvfb,
  terminalRows,
  typeLine,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const agentBuilt = existsSync(binary("tether-agent"));
const desktopReady = agentBuilt && existsSync(binary("xprobe")) && existsSync("/usr/bin/Xvfb");
/** Video is lossy: a solid colour comes back within this per channel. */
const near = (rgb, [r, g, b]) => Array.isArray(rgb) && [r, g, b].every((v, i) => Math.abs(v - rgb[i]) <= 48);
const RED = [255, 0, 0];
const GREEN = [0, 255, 0];

/** Opens the device's recordings (reloading until `count` are listed); resolves with the table. */
async function recordingsTable(page, deviceUrl, count) {
  const table = page.getByRole("region", { name: "Recorded sessions" });
  await until(
    async () => {
      await page.goto(`${deviceUrl}/events`);
      await table
        .locator("tbody tr")
        .first()
        .waitFor({ timeout: 3_000 })
        .catch(() => undefined);
      return table.locator("tbody tr").count();
    },
    (n) => n === count,
    `${count} recorded session(s) listed`,
  );
  return table;
}

describe("session recording", { skip: !agentBuilt && !process.env.CI && "tether-agent is not built" }, () => {
  let server;
  let agent;
  let browser;
  let page;
  let deviceUrl;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page } = await newPage(browser, { acceptDownloads: true }));
    const msh = await createAdminAndGroup(page, server, ADMIN, "Audited");
    // The group page is open: record its sessions.
    await page.getByRole("checkbox", { name: "Record sessions" }).check();
    await page.locator(".toast").filter({ hasText: "now recorded" }).waitFor();
    agent = await startAgent(msh);
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
  });

  it("records a terminal session and plays it back", async () => {
    await page.getByRole("tab", { name: "Terminal" }).click();
    await page.getByTestId("terminal-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    // A recorded session stays on the relay.
    await page.getByText("Relayed", { exact: true }).first().waitFor();
    await typeLine(page, "echo recorded-$((6*7))");
    await until(() => terminalRows(page), (rows) => rows.includes("recorded-42"), "the shell's answer");
    // Leaving the tab ends the session, which closes the recording.
    await page.getByRole("tab", { name: "Events" }).click();
    const table = page.getByRole("region", { name: "Recorded sessions" });
    // The recording is listed once the server has closed the session; each look reloads the
    // tab and gives its list (fetched on load) a moment to arrive.
    await until(
      async () => {
        await page.goto(`${deviceUrl}/events`);
        await table
          .locator("tbody tr")
          .first()
          .waitFor({ timeout: 3_000 })
          .catch(() => undefined);
        return table.locator("tbody tr").count();
      },
      (count) => count === 1,
      "one recorded session listed",
    );
    await table.getByRole("button", { name: "Play" }).click();
    const screen = page.getByRole("dialog").getByTestId("recording-screen");
    await until(
      () => screen.locator(".xterm-rows > div").evaluateAll((rows) => rows.map((r) => r.textContent.replace(/\u00a0/g, " ").trimEnd())),
      (rows) => rows.includes("recorded-42"),
      "the recording shows the shell's answer",
    );
    await screenshot(page, "85-recording-player");
    await page.getByRole("dialog").getByRole("button", { name: "Close" }).click();
  });

  it("downloads a terminal recording as asciicast", async () => {
    const table = page.getByRole("region", { name: "Recorded sessions" });
    const [download] = await Promise.all([page.waitForEvent("download"), table.getByRole("link", { name: "asciicast" }).click()]);
    const lines = readFileSync(await download.path(), "utf8").trim().split("\n");
    assert.equal(JSON.parse(lines[0]).version, 2);
    assert.ok(lines.some((line) => line.includes("recorded-42")), lines.join("\n"));
  });
});

describe("desktop recording", { skip: !desktopReady && !process.env.CI && "Xvfb, xprobe or tether-agent is missing" }, () => {
  let xvfb;
  let probe;
  let server;
  let agent;
  let browser;
  let page;
  let deviceUrl;

  before(async () => {
    xvfb = await startXvfb({ width: 800, height: 600 });
    probe = await startXprobe(xvfb.display);
    server = await startServer();
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    const msh = await createAdminAndGroup(page, server, ADMIN, "Filmed");
    await page.getByRole("checkbox", { name: "Record sessions" }).check();
    await page.locator(".toast").filter({ hasText: "now recorded" }).waitFor();
    agent = await startAgent(msh, ["--x-display", xvfb.display]);
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    await probe?.stop();
    await xvfb?.stop();
  });

  const centre = (testId) =>
    page.evaluate((id) => {
      const c = document.querySelector(`[data-testid=${id}]`);
      if (!c || c.width === 0) return null;
      const d = c.getContext("2d").getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
      return [d[0], d[1], d[2]];
    }, testId);

  it("plays back what the viewer saw, and seeks", async () => {
    await page.getByRole("tab", { name: "Desktop" }).click();
    await page.getByTestId("desktop-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    await until(() => centre("desktop-canvas"), (rgb) => near(rgb, RED), "the live canvas shows xprobe's red");
    // A click turns xprobe green: the recording holds both.
    const box = await page.getByTestId("desktop-canvas").boundingBox();
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    await until(() => centre("desktop-canvas"), (rgb) => near(rgb, GREEN), "the live canvas turns green");
    const table = await recordingsTable(page, deviceUrl, 1);
    await table.getByRole("button", { name: "Play" }).click();
    // Played to its end, the picture is the last one the viewer saw.
    await until(() => centre("recording-canvas"), (rgb) => near(rgb, GREEN), "the recording ends green", 60_000);
    await screenshot(page, "86-desktop-recording");
    // Back to the start: the first picture, red.
    const started = Date.now();
    await page.getByRole("dialog").getByRole("slider", { name: "Position" }).fill("0");
    await until(() => centre("recording-canvas"), (rgb) => near(rgb, RED), "a seek to the start shows red");
    console.log(`desktop recording: seek to the start took ${Date.now() - started} ms`);
  });
});
