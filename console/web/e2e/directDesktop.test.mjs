// A desktop session over the direct path: Chromium in a network namespace of its own (as in
// direct.test.mjs), the agent showing its own Xvfb where xprobe paints and reports (as in
// desktop.test.mjs). The session moves to the data channel, the toolbar says "Direct", the
// canvas shows xprobe's colour and a click still lands; a clipboard bigger than one data-channel
// message crosses whole both ways (it travels in pieces, `pieces.rs`).

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { canMakeNamespaces, privateNetwork } from "./netns.mjs";
import {
  binary,
  createAdminAndGroup,
  launchBrowser,
  newPage,
  openOnlineDevice,
  recordFigure,
  screenshot,
  startAgent,
  startServer,
  startXprobe,
  startXvfb,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const SCREEN = { width: 1280, height: 800 };
const COLOURS = { red: [255, 0, 0], green: [0, 255, 0] };
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
    network = privateNetwork();
    xvfb = await startXvfb(SCREEN);
    probe = await startXprobe(xvfb.display);
    server = await startServer({ bind: "0.0.0.0" });
    const loopback = `https://127.0.0.1:${server.port}`;
    server.url = `https://${network.hostAddress}:${server.port}`;
    browser = await launchBrowser({
      executablePath: network.launcher,
      args: ["--disable-features=WebRtcHideLocalIpsWithMdns"],
    });
    ({ page, errors } = await newPage(browser));
    const msh = await createAdminAndGroup(page, server, ADMIN, "Direct screens", { setupUrl: loopback });
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
  const centre = () =>
    page.evaluate(() => {
      const c = document.querySelector("[data-testid=desktop-canvas]");
      if (!c || c.width === 0) return null;
      const d = c.getContext("2d").getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
      return [d[0], d[1], d[2]];
    });

  it("moves the desktop to the direct path; pictures show and clicks land", async () => {
    await page.getByRole("tab", { name: "Desktop" }).click();
    await page.getByTestId("desktop-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    const connected = Date.now();
    await until(path, (p) => p === "direct", "the desktop session on the direct path", 30_000);
    recordFigure("direct.desktop.switch_ms_after_connected", Date.now() - connected);
    await until(() => centre(), (rgb) => near(rgb, "red"), "the canvas shows xprobe's red");

    const box = await page.getByTestId("desktop-canvas").boundingBox();
    const from = probe.lines.length;
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const { match } = await probe.waitFor(/^click (\d+) (\d+) (\w+)$/, { from });
    assert.equal(match[3], "green");
    assert.ok(Math.abs(Number(match[1]) - SCREEN.width / 2) <= 2, `x ${match[1]}`);
    // The new picture came over the data channel: the relay carries no session data any more.
    await until(() => centre(), (rgb) => near(rgb, "green"), "the canvas turns green");
    assert.equal(await path(), "direct");
    await screenshot(page, "41-desktop-direct");
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
