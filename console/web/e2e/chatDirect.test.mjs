// The messenger on the direct path and a call, in real browsers: both pages (the admin's console
// and the device user's messenger page) run in one Chromium inside a private network namespace
// (Chromium ignores loopback candidates), with a fake microphone that plays a 1 kHz tone. The chat
// starts on the relay and moves to a WebRTC data channel between the two browsers (a file offered
// at once crosses while it moves); then the admin calls, listening only, the person at the device
// answers with their microphone, and the admin's page hears the tone (frequency found with a
// WebAudio analyser). Figures: message latency p50 on the direct path, mouth-to-ear latency (the
// device unmutes; the admin's analyser finds the tone) and the received Opus bit rate.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { listenToCall, messageLatency, stubOpener, toneWav, transferRate } from "./chatSupport.mjs";
import { canMakeNamespaces, directStack } from "./netns.mjs";
import { binary, newPage, openOnlineDevice, recordFigure, screenshot, startAgent, tempDir, until } from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const TONE_HZ = 1000;

const skip = !existsSync(binary("tether-agent"))
  ? "tether-agent is not built"
  : !canMakeNamespaces() && !process.env.CI
    ? "needs root for a private network namespace"
    : false;

describe("messenger on the direct path, with a call", { skip }, () => {
  let network;
  let server;
  let agent;
  let browser;
  let admin;
  let deviceUrl;
  const dir = tempDir("chat-direct");
  const stub = stubOpener(dir);

  before(async () => {
    const tone = join(dir, "tone.wav");
    toneWav(tone, TONE_HZ, 10);
    let msh;
    ({ network, server, browser, page: admin, msh } = await directStack(ADMIN, "Calls", {
      browserArgs: [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        `--use-file-for-fake-audio-capture=${tone}`,
        "--autoplay-policy=no-user-gesture-required",
      ],
    }));
    agent = await startAgent(msh, ["--x-display", ":78", "--chat-opener", stub.opener]);
    deviceUrl = await openOnlineDevice(admin, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    network?.remove();
  });

  it("moves the chat to a data channel between the browsers, mid-transfer, and carries a one-way call", async () => {
    await admin.goto(`${deviceUrl}/chat`);
    const url = await stub.url();
    const { page: device } = await newPage(browser);
    await device.goto(url);
    await admin.getByTestId("chat-status").filter({ hasText: "Chatting with" }).waitFor({ timeout: 30_000 });

    // A file offered at once: it starts on the relay and ends on the channel.
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
    await admin.getByTestId("chat-file-input").setInputFiles({ name: "big.bin", mimeType: "application/octet-stream", buffer: big });
    const offer = device.getByTestId("chat-file").filter({ hasText: "big.bin" });
    await offer.getByTestId("chat-accept").click();
    for (const page of [admin, device]) {
      await page.locator("[data-testid=session-path][data-path=direct]").waitFor({ timeout: 30_000 });
    }
    await admin.locator("[data-testid=chat-file][data-state=complete]").waitFor({ timeout: 60_000 });

    // The figure: a second file, wholly on the data channel.
    await transferRate(admin, device, "chatFileDirectMBps");
    const [download] = await Promise.all([device.waitForEvent("download"), offer.getByTestId("chat-save").click()]);
    const saved = join(dir, "big.bin");
    await download.saveAs(saved);
    const sha = (b) => createHash("sha256").update(b).digest("hex");
    assert.equal(sha(readFileSync(saved)), sha(big));

    await messageLatency(admin, device, "chatLatencyDirectP50Ms");

    // The admin calls to listen; the person at the device answers with their microphone.
    await admin.getByTestId("chat-call").getByLabel("Microphone").uncheck();
    await admin.getByTestId("call-start").click();
    await device.getByTestId("call-ringing").filter({ hasText: "sending nothing (listening only)" }).waitFor();
    await device.getByTestId("call-accept").click();
    for (const page of [admin, device]) {
      await page.getByTestId("call-status").filter({ hasText: "In a call" }).waitFor({ timeout: 30_000 });
    }
    const heard = await admin.evaluate(listenToCall);
    assert.ok(Math.abs(heard.peakHz - TONE_HZ) < 50, `the tone arrived at ${heard.peakHz} Hz`);
    await screenshot(admin, "97-messenger-call");

    // Mouth to ear: mute, wait for silence, unmute; the analyser notes when the tone is back.
    await device.getByTestId("call-mute").click();
    await admin.waitForFunction(() => window.__listener.silentSince > 0, null, { timeout: 20_000 });
    const unmuted = await device.evaluate(() => {
      const at = Date.now();
      document.querySelector("[data-testid=call-mute]").click();
      return at;
    });
    await admin.waitForFunction((t) => window.__listener.toneAt > t, unmuted, { timeout: 20_000 });
    const toneAt = await admin.evaluate(() => window.__listener.toneAt);
    recordFigure("callMouthToEarMs", toneAt - unmuted);
    const kbps = await until(
      async () => Number((await admin.getByTestId("call-kbps").textContent().catch(() => "")).match(/(\d+) kbit/)?.[1] ?? 0),
      (v) => v > 0,
      "the received bit rate",
    );
    recordFigure("callOpusKbps", kbps);

    await device.getByTestId("call-hangup").click();
    await admin.getByTestId("chat-call").and(admin.locator("[data-state=idle]")).waitFor();
    await admin.getByTestId("chat-messages").getByText("The other side hung up.").waitFor();
  });
});
