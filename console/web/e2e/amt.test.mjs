// Intel AMT from the console, against the real server's MPS port: an administrator makes a group's
// CIRA login on the Group page and downloads the root; a fake AMT machine (the server's own test
// double, `cargo build -p tether-server --examples`) connects with them over TLS and shows up as an
// online "Intel AMT" device; the administrator saves its AMT account and powers it off, and the
// fake carries the request out. Mocked here only because real AMT firmware cannot run on this machine.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import {
  binary,
  createAdminAndGroup,
  freePort,
  launchBrowser,
  newPage,
  openOnlineDevice,
  screenshot,
  startServer,
  stopChild,
  tempDir,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const AMT_ADMIN = { user: "admin", password: "P@ssw0rd-amt" };
const fakeAmtBuilt = existsSync(binary("examples/fake_amt"));

// CI builds it (scripts/test.sh); elsewhere the suite says what to build.
describe("Intel AMT", { skip: !fakeAmtBuilt && !process.env.CI && "cargo build -p tether-server --example fake_amt" }, () => {
  let server;
  let browser;
  let page;
  let errors;
  let fake;
  const fakeLines = [];
  const scratch = tempDir("amt");

  before(async () => {
    server = await startServer({ mpsPort: await freePort() });
    browser = await launchBrowser();
    ({ page, errors } = await newPage(browser, { acceptDownloads: true }));
    await createAdminAndGroup(page, server, ADMIN, "Vault");
  });

  after(async () => {
    if (fake) await stopChild(fake);
    await browser?.close();
    await server?.stop();
    server?.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  it("makes a group's CIRA login and shows it once", async () => {
    const card = page.getByRole("region", { name: "Intel AMT" });
    await card.getByRole("button", { name: "Make CIRA login" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Make login" }).click();
    const login = page.getByTestId("cira-login");
    await login.waitFor();
    await screenshot(page, "60-amt-cira-login");
    const value = async (label) => (await login.getByLabel(label).innerText()).trim();
    const [mps, user, password, rootHash] = await Promise.all([
      value("MPS server"),
      value("CIRA user"),
      value("CIRA password"),
      value("Root certificate SHA-256"),
    ]);
    const [, mpsPort] = mps.split(":");
    assert.match(rootHash, /^[0-9a-f]{64}$/i);
    assert.ok(password.length >= 16, "a strong generated password");

    const [download] = await Promise.all([page.waitForEvent("download"), card.getByRole("link", { name: /root certificate/ }).click()]);
    const rootPem = join(scratch, "root.pem");
    await download.saveAs(rootPem);

    // The fake machine trusts exactly the downloaded root: a wrong one would fail its TLS handshake.
    fake = spawn(binary("examples/fake_amt"), [mpsPort, rootPem, user, password, AMT_ADMIN.user, AMT_ADMIN.password], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    createInterface({ input: fake.stdout }).on("line", (line) => fakeLines.push(line));
    await until(
      () => [...fakeLines],
      (lines) => lines.some((l) => l.startsWith("fake AMT ")) || fake.exitCode !== null,
      "the fake AMT machine logged in",
      60_000,
    );
    assert.equal(fake.exitCode, null, `the fake AMT machine quit: ${fakeLines.join("\n")}`);
  });

  it("lists the machine as an online Intel AMT device and powers it off", async () => {
    await openOnlineDevice(page, server);
    await page.getByRole("heading", { level: 1, name: /^Intel AMT / }).waitFor();
    const power = page.getByRole("region", { name: "Intel AMT power" });
    await power.waitFor();

    // Without the machine's AMT account the server cannot ask it anything, and says so.
    await power.getByRole("button", { name: "Read state" }).click();
    await power.getByRole("alert").waitFor();

    const admin = power.getByRole("form", { name: "AMT administrator" });
    await admin.getByLabel("AMT user").fill(AMT_ADMIN.user);
    await admin.getByLabel("AMT password").fill(AMT_ADMIN.password);
    await admin.getByRole("button", { name: "Save administrator" }).click();
    await page.getByTestId("amt-power-state").filter({ hasText: /^on$/ }).waitFor();
    await assert.doesNotReject(power.getByRole("alert").waitFor({ state: "detached" }));

    await power.getByRole("button", { name: "Power off" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Power off" }).click();
    await page.getByTestId("amt-power-state").filter({ hasText: /^off$/ }).waitFor();
    await until(() => [...fakeLines], (lines) => lines.includes("power 8"), "the fake AMT machine was powered off");
    await screenshot(page, "61-amt-power");
    assert.deepEqual(errors, []);
  });

  it("opens AMT's own web UI in a sandboxed tab, logged in by the server", async () => {
    const power = page.getByRole("region", { name: "Intel AMT power" });
    const [tab] = await Promise.all([page.context().waitForEvent("page"), power.getByRole("button", { name: "AMT web UI" }).click()]);
    // AMT's page ran its script (it renames its heading) in an origin of its own ("null"), so it
    // cannot reach the console's storage or API.
    await tab.getByRole("heading", { name: "Intel AMT web UI" }).waitFor();
    assert.equal(await tab.title(), "null");
    assert.match(new URL(tab.url()).pathname, /^\/amt-web\/[^/]+\/index\.htm$/);
    // Its links stay under the link, through the tunnel.
    await tab.getByRole("link", { name: "System information" }).click();
    await tab.getByRole("heading", { name: "System information" }).waitFor();
    assert.match(new URL(tab.url()).pathname, /^\/amt-web\/[^/]+\/hw-sys\.htm$/);
    await screenshot(tab, "62-amt-web-ui");
    await tab.close();
  });
});
