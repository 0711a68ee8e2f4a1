// Two-factor sign-in in a real browser against the real server: set it up in My account (the
// secret read off the page, codes computed here as an authenticator app would), see the backup
// codes once, then sign out and sign in with password and code.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { launchBrowser, newPage, screenshot, startServer } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };

/** RFC 4648 base32 (no padding) to bytes. */
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const char of text.replace(/=+$/, "")) bits += alphabet.indexOf(char).toString(2).padStart(5, "0");
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** An authenticator app's code (RFC 6238: SHA-1, 30 s, 6 digits) at now + `offset` seconds. */
function appCode(secret, offset = 0) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor((Date.now() / 1000 + offset) / 30)));
  const mac = createHmac("sha1", base32(secret)).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const value = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(value).padStart(6, "0");
}

describe("two-factor sign-in", () => {
  let server;
  let browser;
  let page;
  let errors;
  let secret;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page, errors } = await newPage(browser));
    const setup = await page.request.post(`${server.url}/api/setup`, { data: ADMIN });
    assert.ok(setup.ok(), await setup.text());
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
  });

  it("is set up in My account with a code from the app, and shows the backup codes once", async () => {
    await page.goto(`${server.url}/account`);
    const card = page.getByRole("region", { name: "Two-factor sign-in" });
    await card.getByRole("button", { name: "Set up two-factor sign-in" }).click();
    await card.getByRole("img", { name: "QR code for your authenticator app" }).waitFor();
    secret = (await card.getByLabel("Secret").innerText()).trim();
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await card.getByLabel("Code from the app").fill("000000" === appCode(secret) ? "111111" : "000000");
    await card.getByRole("button", { name: "Turn on" }).click();
    await card.getByRole("alert").filter({ hasText: "not the app's current code" }).waitFor();
    await card.getByLabel("Code from the app").fill(appCode(secret));
    await card.getByRole("button", { name: "Turn on" }).click();
    const codes = card.getByTestId("backup-codes").getByRole("listitem");
    await codes.first().waitFor();
    assert.equal(await codes.count(), 10);
    await page.getByTestId("second-factor-state").filter({ hasText: "On" }).waitFor();
    await screenshot(page, "70-second-factor-on");
  });

  it("asks for the code after the password, and signs in with it", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("User name").fill(ADMIN.name);
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    const code = page.getByLabel(/Code from your authenticator app/);
    await code.waitFor();
    await screenshot(page, "71-second-factor-login");
    // The code that turned it on was spent; the app's next one is good.
    await code.fill(appCode(secret, 30));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    await screenshot(page, "72-second-factor-signed-in");
    // The browser logs the 401 that asked for the code; nothing else may fail (CSP included:
    // the QR code is an SVG image from a data: URL).
    assert.deepEqual(
      errors.filter((e) => !/Failed to load resource: the server responded with a status of 401/.test(e)),
      [],
    );
  });
});
