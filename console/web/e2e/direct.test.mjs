// Direct sessions from a real browser to a real agent. Chromium runs in a network namespace of its
// own (it ignores loopback ICE candidates), the server and agent in this one. Each session starts
// on the server's relay and moves to a WebRTC data channel between the browser and the agent: the
// shell still echoes after the switch, a file goes up and comes back byte-identical, and a group
// whose policy keeps sessions relayed never switches.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { canMakeNamespaces, directStack } from "./netns.mjs";
import {
  binary,
  openOnlineDevice,
  recordFigure,
  screenshot,
  startAgent,
  tempDir,
  terminalRows,
  typeLine,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

// CI runs as root with everything built; elsewhere the test says why it cannot run.
const skip = !existsSync(binary("tether-agent"))
  ? "tether-agent is not built"
  : !canMakeNamespaces() && !process.env.CI
    ? "needs root for a private network namespace"
    : false;

describe("direct sessions", { skip }, () => {
  let network;
  let server;
  let agent;
  let browser;
  let page;
  let errors;
  let filesRoot;
  let deviceUrl;
  let groupUrl;

  before(async () => {
    let msh;
    ({ network, server, browser, page, errors, msh, groupUrl } = await directStack(ADMIN, "Direct"));
    filesRoot = realpathSync(tempDir("files"));
    agent = await startAgent(msh, ["--files-root", filesRoot]);
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    network?.remove();
    if (filesRoot) rmSync(filesRoot, { recursive: true, force: true });
  });

  const screenRows = () => terminalRows(page);
  const type = (text) => typeLine(page, text);
  const path = () => page.getByTestId("session-path").getAttribute("data-path");

  it("moves a terminal session to the direct path, and the shell still echoes", async () => {
    await page.getByRole("tab", { name: "Terminal" }).click();
    const status = page.getByTestId("terminal-status");
    await status.filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    const connected = Date.now();
    await type("echo before-switch");
    await until(screenRows, (rows) => rows.includes("before-switch"), "echo on the relay");
    await until(path, (p) => p === "direct", "the session on the direct path", 30_000);
    recordFigure("direct.terminal.switch_ms_after_connected", Date.now() - connected);
    await type("echo after-switch");
    await until(screenRows, (rows) => rows.includes("after-switch"), "echo over the data channel");
    await screenshot(page, "40-terminal-direct");
    // The shell's last output and its exit status race the agent's relay close to the browser:
    // both must arrive, then the end (rtcEnd on the channel lets the console know it has all).
    await type("echo last-$((6*7)); exit 3");
    await status.filter({ hasText: "Session ended (exit code 3)" }).waitFor({ timeout: 30_000 });
    await until(screenRows, (rows) => rows.some((row) => row.includes("last-42")), "the last output on screen");
  });

  it("uploads and downloads a file over the direct path, byte for byte", async () => {
    await page.getByRole("tab", { name: "Files" }).click();
    // The session starts at "/", which this agent refuses (its files root is a temp folder): once
    // that answer is in, going to the files root cannot be overtaken by it.
    await page.locator(".toast").filter({ hasText: "outside the folders this session may use" }).first().waitFor({ timeout: 30_000 });
    await page.getByRole("textbox", { name: "Go to path" }).fill(filesRoot);
    await page.getByRole("button", { name: "Go", exact: true }).click();
    await page.getByText("This folder is empty").waitFor({ timeout: 30_000 });
    await until(path, (p) => p === "direct", "the files session on the direct path", 30_000);

    const original = randomBytes(8 * 1024 * 1024 + 5);
    const started = Date.now();
    await page.getByTestId("upload-input").setInputFiles({ name: "big.bin", mimeType: "application/octet-stream", buffer: original });
    await page.locator("li[data-transfer='big.bin'][data-state='done']").waitFor({ timeout: 60_000 });
    recordFigure("direct.files.upload_8MiB_ms", Date.now() - started);
    assert.equal(sha256(readFileSync(join(filesRoot, "big.bin"))), sha256(original), "the agent wrote the same bytes");

    const row = page.locator("tr[data-file='big.bin']");
    const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download big.bin" }).click()]);
    assert.equal(sha256(readFileSync(await download.path())), sha256(original), "downloaded bytes equal the original");
    assert.equal(await path(), "direct");

    // Leaving the tab ends the session; the server's record of it counts what the relay carried:
    // the signalling and the first messages, not the 8 MiB each way.
    await page.getByRole("tab", { name: "Events" }).click();
    const ended = page.getByRole("cell", { name: /files session to .* ended after/ });
    await ended.first().waitFor({ timeout: 30_000 });
    const record = await ended.first().innerText();
    const [, toDevice, fromDevice] = record.match(/(\d+) bytes to the device, (\d+) bytes from it/);
    // What the channel carried, as the console reported it when it closed the session.
    const direct = record.match(/on the direct path (\d+) bytes to the device, (\d+) bytes from it \(reported by the console\)/);
    assert.ok(direct && Number(direct[1]) >= 8 * 1024 * 1024 && Number(direct[2]) >= 8 * 1024 * 1024, record);
    recordFigure("direct.files.relay_bytes", { toDevice: Number(toDevice), fromDevice: Number(fromDevice) });
    assert.ok(Number(toDevice) < 1024 * 1024, `the relay carried ${toDevice} bytes to the device`);
    assert.ok(Number(fromDevice) < 1024 * 1024, `the relay carried ${fromDevice} bytes from the device`);
  });

  it("reopens a files session on the relay when its direct path dies", async () => {
    // Chromium's end of the data channel closes under the session, as when ICE gives up: data in
    // flight may be lost, so that session ends, and the view opens a new one through the server.
    await page.addInitScript(() => {
      const create = RTCPeerConnection.prototype.createDataChannel;
      window.__channels = [];
      RTCPeerConnection.prototype.createDataChannel = function (...args) {
        const channel = create.apply(this, args);
        window.__channels.push(channel);
        return channel;
      };
    });
    await page.goto(`${deviceUrl}/files`);
    await until(path, (p) => p === "direct", "the files session on the direct path", 30_000);
    await page.evaluate(() => window.__channels.at(-1).close());
    await page.locator(".toast").filter({ hasText: "goes on through the server" }).waitFor({ timeout: 30_000 });
    await until(path, (p) => p === "relay", "the reopened session on the relay");
    await page.getByRole("textbox", { name: "Go to path" }).fill(filesRoot);
    await page.getByRole("button", { name: "Go", exact: true }).click();
    await page.locator("tr[data-file='big.bin']").waitFor({ timeout: 30_000 });
    assert.equal(await path(), "relay", "it stays relayed");
  });

  it("keeps sessions relayed in a group whose policy says so", async () => {
    await page.goto(groupUrl);
    const policy = page.getByRole("checkbox", { name: "Direct connections" });
    await policy.uncheck();
    await until(() => policy.isChecked(), (checked) => checked === false, "the policy saved");
    await page.goto(`${deviceUrl}/terminal`);
    const status = page.getByTestId("terminal-status");
    await status.filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    await type("echo relayed");
    await until(screenRows, (rows) => rows.includes("relayed"), "echo on the relay");
    // The ticket offered no direct path, so the console never made a peer connection to try.
    assert.equal(await path(), "relay");
    assert.match(await page.getByTestId("session-path").getAttribute("title"), /Relayed through the server/);
  });

  it("ran without unexpected errors", () => {
    assert.deepEqual(errors.filter((e) => !/Failed to load resource|net::ERR_/.test(e)), []);
  });
});
