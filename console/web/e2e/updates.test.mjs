// Agent self-update from the console, with the real server, an agent of an older version
// (`tether-agent-old`, built by scripts/test.sh) installed as the install script lays it out, and
// the current agent as what the server ships: the admin starts a one-wave campaign on the "Agent
// updates" screen and watches it reach "Done" live; the agent runs the new version afterwards,
// and "Roll back agent" on the device page takes it back to the old one.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { binary, createAdminAndGroup, launchBrowser, newPage, openOnlineDevice, screenshot, startAgent, startServer, tempDir, until } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const oldBuilt = existsSync(binary("tether-agent-old"));

describe("agent updates", { skip: !oldBuilt && !process.env.CI && "tether-agent-old is not built (scripts/test.sh)" }, () => {
  let server;
  let agent;
  let browser;
  let page;
  let deviceUrl;

  before(async () => {
    const datapath = tempDir("server");
    mkdirSync(join(datapath, "agents"));
    execFileSync("strip", ["--strip-debug", "-o", join(datapath, "agents", "tether-agent-linux-x86_64"), binary("tether-agent")]);
    server = await startServer({ datapath });
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    const msh = await createAdminAndGroup(page, server, ADMIN, "Fleet");
    agent = await startAgent(msh, [], { program: binary("tether-agent-old"), installed: true });
    deviceUrl = await openOnlineDevice(page, server);
    await until(() => page.getByTestId("agent-version").textContent(), (text) => text.trim() === "0.0.1-old", "the old agent's version");
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
  });

  it("updates an agent in one wave and shows the campaign live", async () => {
    await page.goto(`${server.url}/updates`);
    const shipped = (await page.getByTestId("shipped-version").textContent()).trim();
    assert.match(shipped, /^\d+\.\d+\.\d+/);
    assert.notEqual(shipped, "0.0.1-old");

    const form = page.getByRole("region", { name: "Start an update" });
    await form.getByLabel("Waves").fill("100");
    await form.getByLabel("Seconds per device").fill("120");
    // The agent's first agentinfo (its version) may land just after it shows online: retry
    // until the server has a device to update.
    const campaign = page.getByRole("region", { name: "Campaign" });
    await until(
      async () => {
        if (await campaign.isVisible()) return true;
        await form.getByRole("button", { name: `Update to ${shipped}` }).click();
        return campaign.isVisible();
      },
      (started) => started,
      "a started campaign",
    );
    await until(() => page.getByTestId("campaign-state").textContent(), (text) => text === "Done", "the campaign to finish", 120_000);
    assert.match(await page.getByTestId("campaign-counts").textContent(), /1 of 1 updated/);
    await screenshot(page, "agent-update-done");

    // The device now reports the shipped version, pushed live to its page.
    await page.goto(deviceUrl);
    await until(() => page.getByTestId("agent-version").textContent(), (text) => text.trim() === shipped, "the device's new version");

    // And back, by hand, from the device page.
    await page.getByRole("button", { name: "Roll back agent" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Roll back" }).click();
    await until(() => page.getByTestId("agent-version").textContent(), (text) => text.trim() === "0.0.1-old", "the previous version again", 60_000);
  });
});
