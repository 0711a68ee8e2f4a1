// The messenger in real browsers with the real server and agent. The admin opens the Chat tab; the
// agent "opens" the page for the person at the screen through a stub opener that records the URL
// it was given (the part no browser here can do: start as another user on a desktop); that URL is
// then opened in a second browser context with no cookie, as the device user's browser would.
// Both sides chat, see each other typing, send a file each way (SHA-256 compared), and the admin
// is told when the other side leaves. Also a figure: chat message latency p50 over the relay.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { messageLatency, stubOpener, transferRate } from "./chatSupport.mjs";
import {
  binary,
  createAdminAndGroup,
  launchBrowser,
  newPage,
  openOnlineDevice,
  screenshot,
  startAgent,
  startServer,
  tempDir,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const agentBuilt = existsSync(binary("tether-agent"));

describe("messenger", { skip: !agentBuilt && !process.env.CI && "tether-agent is not built" }, () => {
  let server;
  let agent;
  let browser;
  let admin;
  let adminErrors;
  let deviceUrl;
  let groupId;
  const dir = tempDir("chat");
  const stub = stubOpener(dir);

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    ({ page: admin, errors: adminErrors } = await newPage(browser));
    const msh = await createAdminAndGroup(admin, server, ADMIN, "Helpdesk");
    groupId = decodeURIComponent(new URL(admin.url()).pathname.split("/")[2]);
    agent = await startAgent(msh, ["--x-display", ":77", "--chat-opener", stub.opener]);
    deviceUrl = await openOnlineDevice(admin, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
  });

  it("opens the page on the device, carries text, typing and files both ways, and says when the other side left", async () => {
    await admin.goto(`${deviceUrl}/chat`);
    const status = admin.getByTestId("chat-status");
    await status.filter({ hasText: /The chat window opened for \S+ on :77/ }).waitFor({ timeout: 30_000 });
    const url = await stub.url();
    assert.match(url, new RegExp(`^${server.url}/messenger#t=[A-Za-z0-9_.-]+$`));

    // The device user's browser: no account, no cookie.
    const { page: device, errors: deviceErrors } = await newPage(browser);
    await device.goto(url);
    await device.getByTestId("chat-status").filter({ hasText: "Chatting with admin" }).waitFor({ timeout: 30_000 });
    await status.filter({ hasText: "Chatting with The person at the device" }).waitFor();
    // The token left the address bar once read.
    assert.equal(new URL(device.url()).hash, "");

    // Text both ways, shown as text.
    const hostile = "<img src=x onerror=alert(1)> hello";
    await admin.getByTestId("chat-input").fill(hostile);
    await admin.getByTestId("chat-input").press("Enter");
    await device.getByTestId("chat-text").filter({ hasText: hostile }).waitFor();
    assert.equal(await device.locator("[data-testid=chat-messages] img").count(), 0);
    await device.getByTestId("chat-input").pressSequentially("thank");
    await admin.getByTestId("chat-typing").filter({ hasText: "is typing" }).waitFor();
    await device.getByTestId("chat-input").pressSequentially("s, go ahead");
    await device.getByTestId("chat-send").click();
    await admin.getByTestId("chat-text").filter({ hasText: "thanks, go ahead" }).waitFor();
    await until(() => admin.getByTestId("chat-typing").textContent(), (t) => t.trim() === "", "typing shown to stop");
    await screenshot(device, "95-messenger-device");

    // A file each way, accepted by the other side, bytes checked.
    const toDevice = Buffer.alloc(700 * 1024);
    for (let i = 0; i < toDevice.length; i++) toDevice[i] = (i * 31 + 7) & 0xff;
    await sendFile(admin, device, { name: "fix.bin", mimeType: "application/octet-stream", buffer: toDevice });
    const toAdmin = Buffer.from("logs from the device\n".repeat(5000));
    await sendFile(device, admin, { name: "logs.txt", mimeType: "text/plain", buffer: toAdmin });

    await transferRate(admin, device, "chatFileRelayMBps");
    await screenshot(admin, "96-messenger-admin");

    await messageLatency(admin, device, "chatLatencyRelayP50Ms");

    // The device user closes the window: the admin is told.
    await device.close();
    await status.filter({ hasText: /closed|left|ended/i }).waitFor({ timeout: 20_000 });
    assert.deepEqual(adminErrors.filter((e) => !e.includes("favicon")), []);
    assert.deepEqual(deviceErrors.filter((e) => !e.includes("favicon")), []);
  });

  it("a real browser started by the agent's opener joins the chat", async () => {
    // The opener starts Debian's Chromium (headless, its own profile, trusting this test's
    // self-signed server) on the URL, as xdg-open would start the user's browser.
    const profile = tempDir("chat-browser");
    const realOpener = join(dir, "real-opener");
    writeFileSync(
      realOpener,
      // `timeout`: the browser outlives the agent that started it (as a user's would); it must
      // not outlive the test.
      `#!/bin/sh\nexec timeout 60 ${process.env.CHROMIUM ?? "/usr/bin/chromium"} --headless=new --no-sandbox --disable-gpu --ignore-certificate-errors --no-first-run --user-data-dir='${profile}' "$1" >/dev/null 2>&1\n`,
    );
    chmodSync(realOpener, 0o755);
    const msh = await (await admin.request.get(`${server.url}/api/groups/${encodeURIComponent(groupId)}/agent.msh`)).text();
    const second = await startAgent(msh, ["--x-display", ":79", "--chat-opener", realOpener]);
    try {
      await admin.goto(`${server.url}/devices`);
      await admin.locator(".item.online").nth(1).waitFor({ timeout: 30_000 });
      const row = admin.locator(".item.online").filter({ hasNot: admin.locator(`a[href="${new URL(deviceUrl).pathname}"]`) }).first();
      await row.getByRole("link").click();
      await admin.getByRole("tab", { name: "Chat" }).click();
      await admin.getByTestId("chat-status").filter({ hasText: "Chatting with The person at the device" }).waitFor({ timeout: 60_000 });
    } finally {
      await second.stop();
    }
  });

  it("a second window cannot reuse the page's link", async () => {
    const url = await stub.url();
    const { page: again } = await newPage(browser);
    await again.goto(url);
    await again.getByTestId("chat-status").filter({ hasText: /Nobody joined|ended|could not/i }).waitFor({ timeout: 20_000 });
  });
});

/** `from` offers `file`; `to` accepts it and saves it; the saved bytes must be the same. */
async function sendFile(from, to, file) {
  await from.getByTestId("chat-file-input").setInputFiles(file);
  const offer = to.getByTestId("chat-file").filter({ hasText: file.name });
  await offer.getByTestId("chat-accept").click();
  await from.getByTestId("chat-file").filter({ hasText: file.name }).and(from.locator("[data-state=complete]")).waitFor({ timeout: 30_000 });
  const [download] = await Promise.all([to.waitForEvent("download"), offer.getByTestId("chat-save").click()]);
  const saved = join(tempDir("chat-download"), file.name);
  await download.saveAs(saved);
  const sha = (bytes) => createHash("sha256").update(bytes).digest("hex");
  assert.equal(sha(readFileSync(saved)), sha(file.buffer), `${file.name} arrived intact`);
}
