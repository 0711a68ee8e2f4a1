// A desktop session over the direct path: Chromium in a network namespace of its own (as in
// direct.test.mjs), the agent showing its own Xvfb where xprobe paints and reports (as in
// desktop.test.mjs). The session moves to the data channel, the toolbar says "Direct", the
// canvas shows xprobe's colour and a click still lands; a clipboard bigger than one data-channel
// message crosses whole both ways (it travels in pieces, `pieces.rs`).

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { canMakeNamespaces, directStack } from "./netns.mjs";
import {
  binary,
  openOnlineDevice,
  recordFigure,
  screenshot,
  startAgent,
  startXprobe,
  startXvfb,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const SCREEN = { width: 1280, height: 800 };
const COLOURS = { red: [255, 0, 0], green: [0, 255, 0], blue: [0, 0, 255] };
/** Video and JPEG are lossy: a solid colour comes back within this per channel. */
const TOLERANCE = 48;
const near = (rgb, colour) => Array.isArray(rgb) && rgb.every((v, i) => Math.abs(v - COLOURS[colour][i]) <= TOLERANCE);

const missing =
  (!existsSync("/usr/bin/Xvfb") && "Xvfb is not installed") ||
  (!(existsSync(binary("tether-agent")) && existsSync(binary("xprobe"))) && "tether-agent or xprobe is not built") ||
  (!canMakeNamespaces() && "needs root for a private network namespace");
if (missing && process.env.CI) throw new Error(`direct desktop e2e cannot run: ${missing}`);

describe("direct desktop sessions", { skip: missing }, () => {
  let network;
  let xvfb;
  let probe;
  let server;
  let agent;
  let browser;
  let page;
  let errors;

  before(async () => {
    xvfb = await startXvfb(SCREEN);
    probe = await startXprobe(xvfb.display);
    let msh;
    ({ network, server, browser, page, errors, msh } = await directStack(ADMIN, "Direct screens"));
    agent = await startAgent(msh, ["--x-display", xvfb.display]);
    await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    await probe?.stop();
    await xvfb?.stop();
    network?.remove();
  });

  const path = () => page.getByTestId("session-path").getAttribute("data-path");
  /** Frames from the video track drawn onto the desktop canvas (desktopTrack.ts counts them). */
  const trackFrames = () =>
    page.evaluate(() => Number(document.querySelector("[data-testid=desktop-canvas]")?.dataset.trackFrames ?? 0));
  /** The colour name at the centre of the <video> element playing the track. */
  const centreOfVideo = () =>
    page.evaluate(() => {
      const video = document.querySelector("[data-testid=desktop-track]");
      const c = document.createElement("canvas");
      c.width = video.videoWidth;
      c.height = video.videoHeight;
      const g = c.getContext("2d");
      g.drawImage(video, 0, 0);
      const [r, gr, b] = g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
      return r > 200 && gr < 60 && b < 60 ? "red" : gr > 200 && r < 60 && b < 60 ? "green" : `${r},${gr},${b}`;
    });
  const centre = () =>
    page.evaluate(() => {
      const c = document.querySelector("[data-testid=desktop-canvas]");
      if (!c || c.width === 0) return null;
      const d = c.getContext("2d").getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
      return [d[0], d[1], d[2]];
    });

  it("has H.264 for WebRTC in this Chromium (what the agent's video track carries)", async () => {
    const codecs = await page.evaluate(() =>
      (RTCRtpReceiver.getCapabilities("video")?.codecs ?? []).map((c) => `${c.mimeType} ${c.sdpFmtpLine ?? ""}`),
    );
    recordFigure("direct.desktop.chromium_video_codecs", [...new Set(codecs.map((c) => c.split(" ")[0]))]);
    assert.ok(
      codecs.some((c) => /^video\/H264 .*packetization-mode=1/i.test(c)),
      `no H.264 receiver in this Chromium: ${codecs.join(", ")}`,
    );
  });

  it("moves the desktop to the direct path; pictures show and clicks land", async () => {
    await page.getByRole("tab", { name: "Desktop" }).click();
    await page.getByTestId("desktop-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    const connected = Date.now();
    await until(path, (p) => p === "direct", "the desktop session on the direct path", 30_000);
    recordFigure("direct.desktop.switch_ms_after_connected", Date.now() - connected);
    await until(() => centre(), (rgb) => near(rgb, "red"), "the canvas shows xprobe's red");
    // The pictures come on the video track now: the <video> plays the agent's track.
    await until(
      () => page.evaluate(() => document.querySelector("[data-testid=desktop-track]")?.videoWidth ?? 0),
      (width) => width === SCREEN.width,
      "the video track plays the screen",
    );
    const framesBefore = await trackFrames();

    const box = await page.getByTestId("desktop-canvas").boundingBox();
    const from = probe.lines.length;
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const { match } = await probe.waitFor(/^click (\d+) (\d+) (\w+)$/, { from });
    assert.equal(match[3], "green");
    assert.ok(Math.abs(Number(match[1]) - SCREEN.width / 2) <= 2, `x ${match[1]}`);
    // The new picture came over the data channel: the relay carries no session data any more.
    await until(() => centre(), (rgb) => near(rgb, "green"), "the canvas turns green");
    assert.equal(await path(), "direct");
    // The green picture came on the track (RTP), not as a binary message on the data channel.
    assert.ok((await trackFrames()) > framesBefore, "the canvas drew the new picture from the track");
    assert.equal(await centreOfVideo(), "green", "the video element itself shows green");
    await screenshot(page, "41-desktop-direct");
  });

  it("shows the stats overlay with the track's figures", async () => {
    await page.getByRole("button", { name: "Stats" }).click();
    const stat = (name) => page.locator(`[data-stat=${name}]`).innerText();
    // A still screen sends nothing; a few clicks make pictures (and bytes) to count.
    const box = await page.getByTestId("desktop-canvas").boundingBox();
    await until(
      async () => {
        await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
        return stat("bitrate");
      },
      (text) => /^[1-9]\d* kbit\/s$|Mbit/.test(text),
      "the overlay shows the track's bit rate",
    );
    assert.match(await stat("fps"), /^\d/);
    // The latency split: the agent's capture and encode come with the pongs (the track's
    // pictures carry no header), network is half the round trip, decode is the browser's.
    const ms = /^\d+(\.\d)? ms$/;
    // Pictures keep coming while it waits: a part measured per picture (decode) needs one, and on
    // a busy machine the first few may come before the first pong.
    const parts = ["capture", "encode", "network", "decode", "latency"];
    await until(
      async () => {
        await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
        return Object.fromEntries(await Promise.all(parts.map(async (part) => [part, await stat(part)])));
      },
      (shown) => ms.test(shown.latency),
      "the overlay sums the latency",
      20_000,
    );
    for (const part of ["capture", "encode", "network", "decode"]) assert.match(await stat(part), ms, part);
    await screenshot(page, "42-desktop-track-stats");
    await page.getByRole("button", { name: "Stats" }).click();
  });

  it("costs the link next to nothing while the screen is still, and the next change shows", async () => {
    // Bytes the browser's end of the veth received: the relay's WebSocket and the direct path.
    const received = () =>
      Number(readFileSync(`/sys/class/net/${network.hostInterface}/statistics/tx_bytes`, "utf8"));
    const rate = async () => {
      const [before, from] = [received(), Date.now()];
      await new Promise((r) => setTimeout(r, 1_000));
      return ((received() - before) * 1000) / (Date.now() - from);
    };
    // Nothing changes on xprobe's screen: once the agent's track rests it sends no padding or
    // probes (it used to send ~28 KB/s of them to a still desktop); pings and RTCP remain.
    const still = await until(rate, (bytesPerSecond) => bytesPerSecond < 4_000, "a still desktop goes quiet");
    recordFigure("direct.desktop.still_bytes_per_second", Math.round(still));
    const box = await page.getByTestId("desktop-canvas").boundingBox();
    const from = probe.lines.length;
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const { match } = await probe.waitFor(/^click (\d+) (\d+) (\w+)$/, { from });
    await until(() => centre(), (rgb) => near(rgb, match[3]), `the canvas turns ${match[3]} after the quiet spell`);
    assert.equal(await path(), "direct");
  });

  it("carries a clipboard bigger than one data-channel message both ways", async () => {
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    // ~300 KB of UTF-8: more than Chromium takes in one data-channel message (256 KiB).
    const text = `start ${"ünïcode ✓ ".repeat(25_000)} end`;
    await page.evaluate((t) => navigator.clipboard.writeText(t), text);
    await page.getByRole("button", { name: "Send clipboard" }).click();
    await page.locator(".toast").filter({ hasText: "Clipboard sent" }).waitFor();
    await page.evaluate(() => navigator.clipboard.writeText("something else"));
    await until(
      async () => {
        await page.getByRole("button", { name: "Get remote clipboard" }).click();
        await page.locator(".toast").filter({ hasText: "Remote clipboard copied" }).last().waitFor();
        return page.evaluate(() => navigator.clipboard.readText());
      },
      (got) => got === text,
      "the big remote clipboard comes back whole",
    );
    assert.equal(await path(), "direct");
  });

  it("ran without unexpected errors", () => {
    assert.deepEqual(errors.filter((e) => !/Failed to load resource|net::ERR_/.test(e)), []);
  });
});
