// The desktop bench's browser side: one system's own web viewer in headless Chromium, signed in
// and connected to one device's desktop, measured on request.
//
//   node viewer.mjs '{"system":"tether"|"meshcentral","url":…,"user":…,"password":…,"device":…,
//                     "chromium":PATH,"display":":N","shots":DIR}'
//
// Chromium is launched as the console's end-to-end tests launch it (their `support.mjs`, with the
// console's playwright-core: `npm ci` in console/web first).
//
// Then one JSON command per line on stdin, one JSON answer per line on stdout (tether-bench's
// `desktop.rs` drives it; stderr is its log):
//   {"cmd":"open"}                       sign in, open the desktop, wait for the first picture
//   {"cmd":"window","seconds":S}         bytes the page received (WebSocket frames, and what its
//                                        WebRTC transports received: Tether's session moves to a
//                                        direct path when it can) and the viewer's screen updates
//                                        (animation frames in which the desktop canvas was drawn)
//                                        over S seconds
//   {"cmd":"route"}                      how the session travels now (Tether's status line)
//   {"cmd":"quiet","ms":M,"max":X}       wait until the canvas has not been drawn for M ms
//   {"cmd":"capture","path":P}           the canvas as a PNG file
//   {"cmd":"clicks","count":N}           N clicks in the canvas' centre: ms from the page's
//                                        pointerdown to the first drawn picture whose centre
//                                        pixel changed (xprobe changes colour on a click)
//   {"cmd":"mix","state":S}              S "on": a real page in a real (headed) Chromium window on
//                                        the X display, scrolled as a reader does and now and then
//                                        dragged across the screen (the mix scene);
//                                        "pause": it stops scrolling; "off": it closes
//   {"cmd":"close"}
//
// Both viewers draw onto a 2D canvas with drawImage (Tether: decoded video frames or JPEG
// tiles; MeshCentral: JPEG tiles), so one hook measures both the same way.

import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";

import { launchBrowser } from "../../../console/web/e2e/support.mjs";

const config = JSON.parse(process.argv[2]);
const log = (...words) => process.stderr.write(`viewer: ${words.join(" ")}\n`);

const CANVAS = {
  tether: "[data-testid=desktop-canvas]",
  meshcentral: "#Desk",
};
const selector = CANVAS[config.system];
if (!selector) throw new Error(`unknown system ${config.system}`);

/**
 * Runs in the page before its own scripts: counts drawImage calls onto the viewer's canvas and
 * the animation frames that had any, and hands each drawn centre pixel to `window.__onDraw`
 * when the click figure armed it.
 */
function instrument(canvasSelector) {
  const state = { draws: 0, updates: 0, drawnThisFrame: false, lastDrawAt: 0 };
  window.__bench = state;
  // Every peer connection the page makes, for the bytes its transports receive.
  const peers = [];
  window.__benchPeers = peers;
  const Native = window.RTCPeerConnection;
  if (Native) {
    window.RTCPeerConnection = function (...args) {
      const pc = new Native(...args);
      peers.push(pc);
      return pc;
    };
    window.RTCPeerConnection.prototype = Native.prototype;
    Object.setPrototypeOf(window.RTCPeerConnection, Native);
  }
  const tick = () => {
    if (state.drawnThisFrame) state.updates += 1;
    state.drawnThisFrame = false;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    const result = draw.apply(this, args);
    if (this.canvas.matches?.(canvasSelector)) {
      state.draws += 1;
      state.drawnThisFrame = true;
      state.lastDrawAt = performance.now();
      if (window.__onDraw) {
        const c = this.canvas;
        const d = this.getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
        window.__onDraw([d[0], d[1], d[2]], performance.now());
      }
    }
    return result;
  };
}

const browser = await launchBrowser({ executablePath: config.chromium });
const context = await browser.newContext({
  ignoreHTTPSErrors: true,
  // Large enough that neither viewer scales 1920×1080 down by much; both scale to fit.
  viewport: { width: 1920, height: 1200 },
});
const page = await context.newPage();
await page.addInitScript(instrument, selector);
let received = 0;
page.on("websocket", (ws) => {
  ws.on("framereceived", ({ payload }) => {
    received += typeof payload === "string" ? Buffer.byteLength(payload) : payload.length;
  });
});
page.on("pageerror", (e) => log("page error:", String(e)));

let mix = null;

/** The page's counters now: WebSocket bytes, WebRTC transport bytes, draws and updates. */
async function counters() {
  const inPage = await page.evaluate(async () => {
    let rtc = 0;
    for (const pc of window.__benchPeers) {
      if (pc.connectionState === "closed") continue;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "transport") rtc += s.bytesReceived ?? 0;
      });
    }
    return { ...window.__bench, rtc };
  });
  return { received, ...inPage };
}

const commands = {
  async open() {
    if (config.system === "tether") {
      const login = await page.request.post(`${config.url}/api/login`, {
        data: { user: config.user, password: config.password },
      });
      if (!login.ok()) throw new Error(`login refused: ${login.status()}`);
      await page.goto(`${config.url}/devices/${encodeURIComponent(config.device)}/desktop`);
      await page.getByTestId("desktop-status").filter({ hasText: "Connected" }).waitFor({ timeout: 60_000 });
    } else {
      const login = await page.request.post(`${config.url}/`, {
        form: { action: "login", username: config.user, password: config.password },
        maxRedirects: 0,
      });
      if (login.status() >= 400) throw new Error(`login refused: ${login.status()}`);
      // viewmode 11 is the device's Desktop tab; the Connect button is MeshCentral's own. The
      // page reads gotonode without URL-decoding it (ids are base64 with @ and $, safe as is).
      await page.goto(`${config.url}/?gotonode=${config.device}&viewmode=11`);
      const connect = page.locator("#connectbutton1");
      await connect.waitFor({ state: "visible", timeout: 60_000 });
      await page.waitForFunction(() => !document.getElementById("connectbutton1").disabled, null, { timeout: 60_000 });
      await connect.click();
    }
    await page.waitForFunction(
      (s) => {
        const c = document.querySelector(s);
        return c && c.width > 64 && window.__bench.draws > 0;
      },
      selector,
      { timeout: 60_000 },
    );
    const size = await page.evaluate((s) => {
      const c = document.querySelector(s);
      return [c.width, c.height];
    }, selector);
    return { canvas: size, ...(await commands.route()) };
  },

  async route() {
    const route = config.system === "tether" ? await page.getByTestId("desktop-status").innerText() : "relay";
    return { route: route.replace(/\s+/g, " ").trim() };
  },

  async window({ seconds }) {
    const before = await counters();
    const started = Date.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const after = await counters();
    return {
      secs: (Date.now() - started) / 1000,
      bytes: after.received - before.received + after.rtc - before.rtc,
      rtcBytes: after.rtc - before.rtc,
      draws: after.draws - before.draws,
      updates: after.updates - before.updates,
    };
  },

  async quiet({ ms, max }) {
    const deadline = Date.now() + max;
    for (;;) {
      const idleFor = await page.evaluate(() => performance.now() - window.__bench.lastDrawAt);
      if (idleFor >= ms) return { quiet: true };
      if (Date.now() > deadline) return { quiet: false };
      await new Promise((r) => setTimeout(r, Math.max(20, ms - idleFor)));
    }
  },

  async capture({ path }) {
    const url = await page.evaluate((s) => document.querySelector(s).toDataURL("image/png"), selector);
    writeFileSync(path, Buffer.from(url.slice(url.indexOf(",") + 1), "base64"));
    return { path };
  },

  async clicks({ count }) {
    const samples = [];
    for (let i = 0; i < count; i++) {
      await page.evaluate((s) => {
        const c = document.querySelector(s);
        const d = c.getContext("2d").getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
        const before = [d[0], d[1], d[2]];
        window.__latency = new Promise((resolve) => {
          let clickedAt = null;
          c.addEventListener("pointerdown", () => (clickedAt = performance.now()), { once: true, capture: true });
          c.addEventListener("mousedown", () => (clickedAt ??= performance.now()), { once: true, capture: true });
          window.__onDraw = (rgb, now) => {
            if (clickedAt === null || rgb.every((v, k) => Math.abs(v - before[k]) <= 48)) return;
            window.__onDraw = null;
            resolve(now - clickedAt);
          };
        });
      }, selector);
      const box = await page.locator(selector).boundingBox();
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      const ms = await page.evaluate(() =>
        Promise.race([window.__latency, new Promise((_, reject) => setTimeout(() => reject(new Error("no new picture after a click")), 15_000))]),
      );
      samples.push(ms);
      // The next click starts from a settled picture, as a person's next click would.
      await commands.quiet({ ms: 200, max: 3000 });
    }
    return { samples };
  },

  async mix({ state }) {
    if (state === "on" && !mix) mix = await startMix();
    if (state === "pause") await mix?.pause();
    if (state === "off" && mix) {
      await mix.stop();
      mix = null;
    }
    return {};
  },

  async close() {
    await mix?.stop();
    // Leaving the page lets the viewer end its session as a closed tab does.
    await page.goto("about:blank").catch(() => {});
    await browser.close();
    return {};
  },
};

/**
 * A long article (text, headings and pictures) in a headed 1280×900 Chromium window on the X
 * display, used as a person does: a burst of wheel steps, a pause to read, then the window dragged
 * 240 px (there is no window manager: the page moves its own window, 16 px a frame), and so on.
 */
async function startMix() {
  const headed = await launchBrowser({
    executablePath: config.chromium,
    headless: false,
    env: { ...process.env, DISPLAY: config.display },
    args: ["--window-position=0,0", "--window-size=1280,900"],
  });
  const context = await headed.newContext({ viewport: null });
  const page = await context.newPage();
  await page.setContent(article());
  const cdp = await context.newCDPSession(page);
  const { windowId } = await cdp.send("Browser.getWindowForTarget");
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  let running = true;
  let left = 0;
  let rightwards = true;
  const loop = (async () => {
    while (running) {
      for (let step = 0; step < 5 && running; step++) {
        await page.mouse.wheel(0, 120);
        await pause(60);
      }
      await pause(1000);
      for (let step = 0; step < 15 && running; step++) {
        left += rightwards ? 16 : -16;
        await cdp.send("Browser.setWindowBounds", { windowId, bounds: { left, top: left / 4 } });
        await pause(16);
      }
      rightwards = !rightwards;
      await pause(1000);
    }
  })();
  return {
    async pause() {
      running = false;
      await loop;
    },
    async stop() {
      running = false;
      await loop;
      await headed.close();
    },
  };
}

function article() {
  const words = "remote desktop screen picture encoder latency relay agent viewer network text scroll frame colour pixel".split(" ");
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const sentence = () => {
    const n = 8 + (next() % 12);
    const s = Array.from({ length: n }, () => words[next() % words.length]).join(" ");
    return `${s[0].toUpperCase()}${s.slice(1)}.`;
  };
  const sections = [];
  for (let i = 0; i < 60; i++) {
    const paragraphs = Array.from({ length: 3 }, () => `<p>${Array.from({ length: 6 }, sentence).join(" ")}</p>`).join("");
    const hue = (i * 47) % 360;
    const figure = `<div style="height:220px;margin:12px 0;background:linear-gradient(120deg,hsl(${hue} 70% 55%),hsl(${(hue + 90) % 360} 70% 35%))"></div>`;
    sections.push(`<h2>Section ${i + 1}</h2>${paragraphs}${i % 2 ? figure : ""}`);
  }
  return `<!doctype html><html><body style="font:17px/1.5 sans-serif;max-width:860px;margin:24px auto;color:#222">${sections.join("")}</body></html>`;
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  let answer;
  try {
    answer = { ok: true, ...(await commands[request.cmd](request)) };
  } catch (e) {
    log(`${request.cmd} failed:`, e.stack ?? String(e));
    if (config.shots) await page.screenshot({ path: join(config.shots, `${config.system}-${request.cmd}-failed.png`) }).catch(() => {});
    answer = { ok: false, error: String(e.message ?? e) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
  if (request.cmd === "close") break;
}
process.exit(0);
