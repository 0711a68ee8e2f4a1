// Guest sharing links in real browsers with the real server and agent: the admin makes a
// single-use terminal link on the device page; a guest with no account (a fresh browser context,
// no cookie) opens it and types in the shell; the link cannot be used twice; revoking another
// link ends its guest's session at once, with the reason on the guest's screen.

import assert from "node:assert/strict";
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
  terminalRows,
  typeLine,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const agentBuilt = existsSync(binary("tether-agent"));

describe("guest sharing links", { skip: !agentBuilt && !process.env.CI && "tether-agent is not built" }, () => {
  let server;
  let agent;
  let browser;
  let page;
  let deviceUrl;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    const msh = await createAdminAndGroup(page, server, ADMIN, "Shared");
    agent = await startAgent(msh);
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
  });

  /** Makes a link (a terminal one by default) on the device page; resolves with its URL. */
  async function makeLink(label, { once = false, kind = "terminal" } = {}) {
    await page.goto(`${deviceUrl}/general`);
    const card = page.getByRole("region", { name: "Guest links" });
    await card.getByRole("button", { name: "Share" }).click();
    const dialog = page.getByRole("dialog", { name: "Share this device" });
    await dialog.getByLabel("Opens").selectOption(kind);
    await dialog.getByLabel("For whom").fill(label);
    if (once) await dialog.getByLabel("One session only").check();
    await dialog.getByRole("button", { name: "Make link" }).click();
    const shown = page.getByRole("dialog", { name: "Guest link" });
    const url = (await shown.getByLabel("Guest link").textContent()).trim();
    await screenshot(page, "88-guest-link");
    await shown.getByRole("button", { name: "Done" }).click();
    return url;
  }

  async function guestPage(url) {
    // A context of its own: no cookie, as a guest's browser.
    const { page: guest } = await newPage(browser);
    await guest.goto(url);
    return guest;
  }

  it("opens a terminal for a guest without an account, once", async () => {
    const url = await makeLink("Vendor support", { once: true });
    assert.match(url, /\/share#[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    const guest = await guestPage(url);
    await guest.getByTestId("guest-about").filter({ hasText: "shared by admin" }).waitFor();
    await guest.getByTestId("terminal-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    await typeLine(guest, "echo guest-$((6*7))");
    await until(() => terminalRows(guest), (rows) => rows.includes("guest-42"), "the shell's answer to the guest");
    await screenshot(guest, "89-guest-terminal");
    // The device page lists the link with its one use.
    await page.goto(`${deviceUrl}/general`);
    const row = page.getByRole("table", { name: "Guest links of this device" }).locator("tr", { hasText: "Vendor support" });
    await row.getByRole("cell", { name: "used" }).waitFor();
    // A second visit is refused: the link was for one session.
    const again = await guestPage(url);
    await again.getByTestId("guest-failure").filter({ hasText: "already used" }).waitFor();
    await guest.close();
    await again.close();
  });

  it("opens the file manager for a files link", async () => {
    const url = await makeLink("Auditor", { kind: "files" });
    const guest = await guestPage(url);
    await guest.getByTestId("guest-about").filter({ hasText: "Files" }).waitFor();
    // The agent's files root is "/": its folders are listed.
    await guest.locator("tr[data-file='etc']").waitFor({ timeout: 30_000 });
    await guest.close();
  });

  it("ends the guest's session when the link is revoked", async () => {
    const url = await makeLink("Contractor");
    const guest = await guestPage(url);
    await guest.getByTestId("terminal-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    await page.goto(`${deviceUrl}/general`);
    const row = page.getByRole("table", { name: "Guest links of this device" }).locator("tr", { hasText: "Contractor" });
    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByRole("cell", { name: "revoked" }).waitFor();
    await guest
      .getByTestId("terminal-status")
      .filter({ hasText: "The sharing link was revoked or expired" })
      .waitFor({ timeout: 20_000 });
    await guest.close();
  });
});
