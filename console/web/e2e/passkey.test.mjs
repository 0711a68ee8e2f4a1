// Passkeys as the second factor, in real Chromium with its virtual authenticator (CDP
// WebAuthn domain; no hardware here): add one in My account, sign out, and sign in with the
// password and the passkey. WebAuthn wants a host name, so the page uses localhost, the name in
// the server's certificate (its relying party).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, newPage, screenshot, startServer } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };

describe("passkeys", () => {
  let server;
  let browser;
  let page;
  let errors;
  let origin;

  before(async () => {
    server = await startServer();
    origin = server.url.replace("127.0.0.1", "localhost");
    browser = await launchBrowser();
    ({ page, errors } = await newPage(browser));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        hasUserVerification: true,
        isUserVerified: true,
        automaticPresenceSimulation: true,
      },
    });
    const setup = await page.request.post(`${origin}/api/setup`, { data: ADMIN });
    assert.ok(setup.ok(), await setup.text());
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    server?.cleanup();
  });

  it("adds a passkey in My account", async () => {
    await page.goto(`${origin}/account`);
    const card = page.getByRole("region", { name: "Passkeys" });
    await card.getByLabel("Name").fill("Laptop");
    await card.getByRole("button", { name: "Add a passkey" }).click();
    await card.getByRole("list", { name: "Your passkeys" }).getByText("Laptop").waitFor();
    await screenshot(page, "75-passkey-added");
  });

  it("signs in with the password and the passkey", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByLabel("User name").fill(ADMIN.name);
    await page.getByLabel("Password").fill(ADMIN.password);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    const passkey = page.getByRole("button", { name: "Sign in with a passkey" });
    await passkey.waitFor();
    await screenshot(page, "76-passkey-login");
    await passkey.click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    const unexpected = errors.filter((e) => !/status of 401/.test(e));
    assert.deepEqual(unexpected, []);
  });
});
