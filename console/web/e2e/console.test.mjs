// The console in a real browser against the real server (and, when built, the real agent):
// first-run setup, login, groups, users and rights, a device coming online and going offline
// without a reload, the offline banner across a server restart, and the login rate limit.
// Screenshots of each screen go to e2e/artifacts/.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { binary, launchBrowser, newPage, recordFigure, screenshot, startAgent, startServer } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
// A low per-account limit so that the rate-limit message shows after a few tries.
const CONFIG = "login_limit_per_account = 3\n";

describe("the web console", () => {
  let server;
  let browser;
  let page;
  let errors;
  let groupId;

  before(async () => {
    server = await startServer({ config: CONFIG });
    browser = await launchBrowser();
    ({ page, errors } = await newPage(browser));
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
  });

  const nav = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });

  it("creates the administrator on first run", async () => {
    const started = Date.now();
    await page.goto(`${server.url}/`);
    await page.getByRole("heading", { name: "Create the administrator account" }).waitFor();
    recordFigure("setupScreenMs", Date.now() - started);
    await screenshot(page, "01-setup");
    await page.getByLabel("User name").fill(ADMIN.name);
    await page.getByLabel(/^Password/).fill(ADMIN.password);
    await page.getByLabel("Repeat the password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Create account and sign in" }).click();
    await page.getByRole("heading", { name: "No device groups yet" }).waitFor();
    await page.getByText("Connected", { exact: true }).waitFor();
    await screenshot(page, "02-devices-empty");
  });

  it("signs out, refuses a wrong password, and signs in", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("User name").fill(ADMIN.name);
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "Wrong user name or password" }).waitFor();
    await screenshot(page, "03-login-error");

    // Time to interactive of the login screen: a fresh load until the form takes input.
    await page.goto(`${server.url}/`);
    await page.getByLabel("User name").waitFor();
    const tti = await page.evaluate(() => Math.round(performance.now()));
    recordFigure("loginInteractiveMs", tti);
    await page.getByLabel("User name").fill(ADMIN.name);
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Devices" }).waitFor();
  });

  it("creates a device group and lists it", async () => {
    await nav("Device groups").click();
    await page.getByRole("button", { name: "New group" }).first().click();
    const dialog = page.getByRole("dialog", { name: "New device group" });
    await dialog.getByLabel("Name").fill("Office");
    await dialog.getByLabel(/^Description/).fill("Machines in the main office");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.waitFor({ state: "detached" });
    const row = page.locator("tr[data-group='Office']");
    await row.waitFor();
    assert.match(await row.innerText(), /Machines in the main office/);
    assert.equal(new URL(page.url()).pathname, "/groups");
    await screenshot(page, "04-groups");

    await row.getByRole("link", { name: "Office" }).click();
    await page.getByRole("heading", { name: "Members and rights" }).waitFor();
    groupId = decodeURIComponent(new URL(page.url()).pathname.split("/")[2]);
    assert.ok(groupId.length > 20, groupId);
    await screenshot(page, "05-group");
  });

  it("shows the add-agent dialog with the group's .msh link", async () => {
    await page.getByRole("button", { name: "Add agent" }).click();
    const dialog = page.getByRole("dialog", { name: "Add an agent" });
    const link = dialog.getByTestId("msh-link");
    assert.equal(await link.getAttribute("href"), `/api/groups/${encodeURIComponent(groupId)}/agent.msh`);
    // With invites: a one-line installer that checks the server's root certificate; without: the
    // manual command.
    const command = dialog.getByLabel("Install command");
    await command.filter({ hasText: /sha256sum -c - && curl .*install\.sh \| sh|tether-agent run --config/ }).waitFor();
    await screenshot(page, "06-add-agent");
    await dialog.getByRole("button", { name: "Done" }).click();
  });

  it("adds a user and gives them rights on the group", async () => {
    await nav("Users").click();
    await page.getByRole("button", { name: "Add user" }).click();
    const dialog = page.getByRole("dialog", { name: "Add user" });
    await dialog.getByLabel("User name").fill("alice");
    await dialog.getByLabel(/^Initial password/).fill("alice's password");
    await dialog.getByRole("button", { name: "Add user" }).click();
    await dialog.waitFor({ state: "detached" });
    await page.locator("tr[data-user='alice']").waitFor();
    await screenshot(page, "07-users");

    await nav("Device groups").click();
    await page.getByRole("link", { name: "Office" }).click();
    await page.getByRole("button", { name: "Add member" }).click();
    const rights = page.getByRole("dialog", { name: "Add a member to Office" });
    await rights.locator("select").selectOption("alice");
    await rights.getByRole("checkbox", { name: /^power/ }).check();
    await screenshot(page, "08-rights");
    await rights.getByRole("button", { name: "Save rights" }).click();
    await rights.waitFor({ state: "detached" });
    const member = page.locator("tr[data-member='alice']");
    await member.waitFor();
    const text = await member.innerText();
    for (const right of ["view", "terminal", "files", "power", "events"]) assert.match(text, new RegExp(right));
  });

  const agentBuilt = existsSync(binary("tether-agent"));
  it("shows an agent's device online and offline without a reload", { skip: !agentBuilt && "tether-agent is not built" }, async () => {
    const response = await page.request.get(`${server.url}/api/groups/${encodeURIComponent(groupId)}/agent.msh`);
    assert.equal(response.status(), 200);
    const msh = await response.text();
    assert.match(msh, /MeshServer=wss:\/\/[^/]+:\d+\/agent.ashx/, msh);

    await nav("Devices").click();
    await page.getByRole("heading", { name: "No devices yet" }).waitFor();
    const loads = [];
    page.on("load", () => loads.push(page.url()));
    const agent = await startAgent(msh);
    try {
      const row = page.locator(".item.online").first();
      await row.waitFor({ timeout: 30_000 });
      await page.getByTestId("device-totals").filter({ hasText: "1 online" }).waitFor();
      await screenshot(page, "09-devices-online");

      await row.getByRole("link").click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.getByTestId("device-status").filter({ hasText: "Online" }).waitFor();
      // The agent reports its machine a moment after connecting; the page updates by itself.
      await page.getByRole("heading", { name: "Network" }).waitFor();
      await page.locator("dd").filter({ hasText: /x86_64|aarch64|arm/ }).first().waitFor({ timeout: 30_000 });
      await screenshot(page, "10-device-general");
      await page.getByRole("tab", { name: "Terminal" }).click();
      await page.getByTestId("terminal-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
      await page.getByRole("tab", { name: "Events" }).click();
      await page.getByRole("cell", { name: /joined group Office/ }).waitFor();
      await screenshot(page, "11-device-events");
      await page.getByRole("tab", { name: "General" }).click();
    } finally {
      await agent.stop();
    }
    await page.getByTestId("device-status").filter({ hasText: "Offline" }).waitFor({ timeout: 30_000 });
    await page.locator(".toast").filter({ hasText: "went offline" }).waitFor();
    await screenshot(page, "12-device-offline");
    assert.deepEqual(loads, [], "the page must not reload");
  });

  it("removes a device with a block, lists the block and the invite on the group page, and lifts both", { skip: !agentBuilt && "tether-agent is not built" }, async () => {
    // The device page of the agent that just went offline.
    await page.getByRole("button", { name: "Remove" }).click();
    const confirm = page.getByRole("dialog", { name: /^Remove / });
    await confirm.getByRole("checkbox", { name: "Block it from enrolling again" }).check();
    await screenshot(page, "12b-remove-device-block");
    await confirm.getByRole("button", { name: "Remove device" }).click();
    await confirm.waitFor({ state: "detached" });

    await nav("Device groups").click();
    await page.getByRole("link", { name: "Office" }).click();
    const enrolment = page.getByRole("region", { name: "Enrolment" });
    const blockedRow = enrolment.getByRole("table", { name: "Blocked devices" }).locator("tr[data-blocked]");
    await blockedRow.waitFor();
    // The "Add agent" dialog opened earlier made an invite.
    const inviteRow = enrolment.getByRole("table", { name: "Invites" }).locator("tr[data-invite]").first();
    await inviteRow.filter({ hasText: "Active" }).waitFor();
    await screenshot(page, "12c-group-enrolment");

    await blockedRow.getByRole("button", { name: "Unblock" }).click();
    await page.getByRole("dialog", { name: /^Unblock / }).getByRole("button", { name: "Unblock" }).click();
    await blockedRow.waitFor({ state: "detached" });
    await enrolment.getByText("None. Removing a device can block it").waitFor();

    await inviteRow.getByRole("button", { name: "Revoke" }).click();
    await page.getByRole("dialog", { name: /^Revoke invite / }).getByRole("button", { name: "Revoke invite" }).click();
    await inviteRow.filter({ hasText: "Revoked" }).waitFor();

    // A MeshCentral group's MeshID: a malformed one is refused with the reason, a good one taken.
    await enrolment.getByRole("button", { name: "Import MeshCentral MeshID" }).click();
    const importing = page.getByRole("dialog", { name: "Import a MeshCentral MeshID" });
    await importing.getByLabel("MeshID").fill("0x1234");
    await importing.getByRole("button", { name: "Import" }).click();
    await importing.getByRole("alert").filter({ hasText: "96 hex digits" }).waitFor();
    await importing.getByLabel("MeshID").fill(`0x${"5a".repeat(47)}a5`);
    await importing.getByRole("button", { name: "Import" }).click();
    await importing.waitFor({ state: "detached" });
    await page.locator(".toast").filter({ hasText: "now enrol into this group" }).waitFor();
  });

  it("says when the server is gone and recovers by itself", async () => {
    await nav("Devices").click();
    await server.stop();
    await page.getByTestId("offline-banner").waitFor();
    await screenshot(page, "13-offline-banner");
    server = await startServer({ datapath: server.datapath, port: server.port });
    await page.getByRole("button", { name: "Retry now" }).click().catch(() => {});
    await page.getByTestId("offline-banner").waitFor({ state: "detached", timeout: 60_000 });
    await page.getByText("Connected", { exact: true }).waitFor();
  });

  it("shows my account and the dark theme", async () => {
    await nav("My account").click();
    await page.getByRole("heading", { name: "Change password" }).waitFor();
    await screenshot(page, "14-account");
    await page.getByRole("radio", { name: "Dark" }).check();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), "dark");
    await nav("Device groups").click();
    await screenshot(page, "15-groups-dark");
    await nav("Events").click();
    await page.getByRole("cell", { name: /created device group Office/ }).waitFor();
    await screenshot(page, "16-events-dark");
    await page.getByRole("button", { name: /theme/ }).click(); // dark → system
  });

  it("shows the rate-limit message after too many failed logins", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("User name").fill("alice");
    for (let attempt = 0; attempt < 4; attempt++) {
      await page.getByLabel("Password").fill(`wrong ${attempt}`);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").waitFor();
    }
    const limited = page.getByTestId("rate-limited");
    await limited.waitFor();
    assert.match(await limited.innerText(), /Too many failed attempts for this account from your network; try again in \d+ minutes?/);
    await screenshot(page, "17-login-rate-limited");
  });

  it("ran without console errors or CSP violations", () => {
    // The one expected error: the browser logs failed requests (401/429 logins, the refused
    // WebSocket while the server was down) as console errors; anything else is a bug.
    const unexpected = errors.filter(
      (e) => !/Failed to load resource|WebSocket connection to .* failed|net::ERR_/.test(e),
    );
    assert.deepEqual(unexpected, []);
    assert.ok(!errors.some((e) => /Content Security Policy/i.test(e)), errors.join("\n"));
  });
});
