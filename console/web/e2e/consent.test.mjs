// Consent at the device in a real browser with the real server and agent: the group page's
// consent card sets the policy, and a terminal tab says what the agent decided. The agent's X
// display does not exist, so nobody is "signed in" there and the policy's "with nobody signed in"
// choice decides (the prompt itself, clicked by a scripted person under Xvfb, is tested in
// server/tests/consent.rs).

import { existsSync } from "node:fs";
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
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const agentBuilt = existsSync(binary("tether-agent"));

describe("consent at the device", { skip: !agentBuilt && !process.env.CI && "tether-agent is not built" }, () => {
  let server;
  let agent;
  let browser;
  let page;
  let groupUrl;
  let deviceUrl;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    const msh = await createAdminAndGroup(page, server, ADMIN, "Attended");
    groupUrl = page.url();
    // A display number nothing listens on: nobody is signed in at this device.
    agent = await startAgent(msh, ["--x-display", ":4077"]);
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
  });

  async function setPolicy(field, value) {
    await page.goto(groupUrl);
    const card = page.getByRole("region", { name: "Consent at the device" });
    await card.getByLabel(field).selectOption(value);
    await page.locator(".toast").filter({ hasText: "Consent policy saved" }).last().waitFor();
  }

  it("refuses a terminal with nobody to ask, and says why", async () => {
    await setPolicy("Terminal", "prompt");
    await setPolicy("With nobody signed in", "refuse");
    await screenshot(page, "87-group-consent");
    await page.goto(`${deviceUrl}/terminal`);
    await page
      .getByTestId("terminal-status")
      .filter({ hasText: "Nobody is signed in at the device, and its group refuses sessions then" })
      .waitFor({ timeout: 30_000 });
  });

  it("starts it when the group allows sessions with nobody there", async () => {
    await setPolicy("With nobody signed in", "allow");
    await page.goto(`${deviceUrl}/terminal`);
    await page.getByTestId("terminal-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    // The change of policy is in the audit log.
    await page.goto(`${server.url}/events`);
    await page.getByText("consent at the device now desktop none, terminal prompt").first().waitFor();
  });
});
