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
  terminalRows,
  typeLine,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const agentBuilt = existsSync(binary("tether-agent"));

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
