// The desktop viewer's speaker in a real browser: a private PulseAudio daemon plays a 1 kHz tone
// into a null sink on the agent's side; the admin opens the Desktop tab and turns the sound on;
// the stats overlay shows the sound's bit rate, and the samples the viewer hands to WebAudio (read
// by a test-side hook on AudioBuffer, injected before the console's scripts) carry the tone.
// Turning the sound off stops it.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import {
  binary,
  createAdminAndGroup,
  launchBrowser,
  newPage,
  openOnlineDevice,
  startAgent,
  startPulseWithTone,
  startServer,
  startXvfb,
  until,
} from "./support.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const built = existsSync(binary("tether-agent"));
const hasSound = existsSync("/usr/bin/pulseaudio") && existsSync("/usr/bin/pacat");
const skip = !built ? "tether-agent is not built" : !hasSound && !process.env.CI ? "PulseAudio is not installed" : false;

/** Keeps the first channel of every AudioBuffer the page fills, for the test to analyse. */
function recordSound() {
  window.__sound = [];
  const copy = AudioBuffer.prototype.copyToChannel;
  AudioBuffer.prototype.copyToChannel = function (source, channel, ...rest) {
    if (channel === 0 && window.__sound.length < 48_000 * 4) window.__sound.push(...source);
    return copy.call(this, source, channel, ...rest);
  };
}

describe("desktop sound", { skip }, () => {
  let server;
  let agent;
  let xvfb;
  let pulse;
  let browser;
  let page;
  let deviceUrl;

  before(async () => {
    pulse = await startPulseWithTone(1000);
    xvfb = await startXvfb({ width: 640, height: 480 });
    server = await startServer();
    browser = await launchBrowser();
    ({ page } = await newPage(browser));
    await page.addInitScript(recordSound);
    const msh = await createAdminAndGroup(page, server, ADMIN, "Sound");
    agent = await startAgent(msh, ["--x-display", xvfb.display], { env: pulse.env });
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    await xvfb?.stop();
    await pulse?.stop();
  });

  it("plays the device's sound while the speaker is on", async () => {
    await page.goto(`${deviceUrl}/desktop`);
    await page.getByTestId("desktop-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
    const speaker = page.getByTestId("desktop-speaker");
    await speaker.click();
    await page.locator("[data-testid=desktop-speaker][data-sound=on]").waitFor();
    await page.getByRole("button", { name: "Stats" }).click();
    await until(() => page.locator("[data-stat=sound]").textContent(), (t) => /^\d+ kbit\/s$/.test(t.trim()), "the sound's bit rate");

    // Half a second of what the viewer played: the tone stands far above another frequency.
    await page.waitForFunction(() => window.__sound.length >= 48_000, null, { timeout: 20_000 });
    const { tone, other } = await page.evaluate(() => {
      const samples = window.__sound.slice(-24_000);
      const power = (hz) => {
        const w = (2 * Math.PI * hz) / 48_000;
        let [s1, s2] = [0, 0];
        for (const x of samples) [s1, s2] = [x + 2 * Math.cos(w) * s1 - s2, s1];
        return s1 * s1 + s2 * s2 - 2 * Math.cos(w) * s1 * s2;
      };
      return { tone: power(1000), other: power(2500) };
    });
    assert.ok(tone > other * 100, `1 kHz ${tone} against 2.5 kHz ${other}`);

    await speaker.click();
    await page.locator("[data-testid=desktop-speaker][data-sound=off]").waitFor();
    await until(() => page.locator("[data-stat=sound]").textContent(), (t) => t.trim() === "off", "the sound to stop", 10_000);
  });
});
