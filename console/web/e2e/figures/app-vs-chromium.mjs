// Figures, not a test (`node e2e/figures/app-vs-chromium.mjs`, as root, binaries built, nothing else
// running): the desktop app (Tauri, its WebRTC peer in Rust) beside Debian's Chromium (its own
// WebRTC) on the same direct path to the same agent, one after the other.
// - input-to-pixel: a click on the remote screen (xprobe changes colour) until the viewer's canvas
//   shows the new colour, read in the page on every animation frame; CLICKS clicks each, p50 and
//   p99. The app gets real X clicks (xdotool), Chromium Playwright's (CDP);
// - frames per second of a full screen repainting ~30 times a second (xprobe --mode motion), from
//   each viewer's stats overlay, median of 10 readings;
// - both again in the app with the pictures as JPEG tiles instead of VP8 (the viewer's codec
//   setting), the other picture format the app's webview decodes;
// - the app's idle memory (RSS of it and its WebKit processes) and CPU with one still desktop
//   session open, over 10 s;
// - a 64 MiB download on the direct path: MB/s in each, and in the app the messages and bytes per
//   second through its IPC channel (`nativePeer.ts`'s counters).
// Chromium runs in a network namespace (it ignores loopback candidates), the app on this side.
// TETHER_CONSOLE_BINARY=…/release/tether-console measures a release build of the app.

import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { directStack } from "../netns.mjs";
import { openOnlineDevice, startAgent, startXprobe, startXvfb, tempDir, until } from "../support.mjs";
import { appEnvironment, launchApp, signIn, startWebDriver, webFingerprint } from "../webdriver.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const CLICKS = Number(process.env.CLICKS ?? 30);
const SCREEN = { width: 1280, height: 800 };
const DOWNLOAD = 64 << 20;

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
};
const pause = (ms) => new Promise((r) => setTimeout(r, ms));

/** In the page: the wall-clock times at which the canvas centre changed colour. */
const WATCH = `
  const c = document.querySelector("[data-testid=desktop-canvas]");
  const g = c.getContext("2d");
  const read = () => { const d = g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data; return d[0] > 128 ? "r" : d[1] > 128 ? "g" : d[2] > 128 ? "b" : "?"; };
  window.__changes = [];
  let last = read();
  const tick = () => { const now = read(); if (now !== last) { window.__changes.push(performance.timeOrigin + performance.now()); last = now; } requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  return true;`;
const STATS_ON = `[...document.querySelectorAll("button")].find((b) => b.textContent.trim() === "Stats")?.click(); return true;`;
const FPS = `return document.querySelector("[data-stat=fps]")?.textContent ?? null;`;
const CODEC = `return document.querySelector("[data-stat=codec]")?.textContent ?? null;`;

/** Click latencies (ms) with `evaluate` running page scripts and `click` clicking the canvas centre. */
async function latencies(evaluate, click) {
  await evaluate(WATCH);
  const measured = [];
  for (let i = 0; i < CLICKS; i++) {
    const seen = await evaluate("return window.__changes.length");
    const sent = Date.now();
    await click();
    const changes = await until(() => evaluate("return window.__changes"), (c) => c.length > seen, "the canvas changes colour", 10_000);
    measured.push(changes[seen] - sent);
    await pause(300);
  }
  return { p50: percentile(measured, 50), p99: percentile(measured, 99), n: measured.length };
}

async function fps(evaluate) {
  await evaluate(STATS_ON);
  const readings = [];
  for (let i = 0; i < 12; i++) {
    await pause(1_000);
    const text = await evaluate(FPS);
    if (i >= 2 && text) readings.push(Number.parseFloat(text));
  }
  const codec = await evaluate(CODEC);
  await evaluate(STATS_ON);
  return { fps: percentile(readings, 50), codec };
}

/** RSS (KiB) of `pid` and its descendants, and their CPU ticks. */
function tree(pid) {
  let rss = 0;
  let ticks = 0;
  const pending = [pid];
  while (pending.length) {
    const p = pending.pop();
    try {
      rss += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0);
      const stat = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(stat[11]) + Number(stat[12]);
      pending.push(...readFileSync(`/proc/${p}/task/${p}/children`, "utf8").split(" ").filter(Boolean).map(Number));
    } catch {
      // Gone meanwhile.
    }
  }
  return { rss, ticks };
}

const xvfb = await startXvfb(SCREEN);
let probe = await startXprobe(xvfb.display);
const stack = await directStack(ADMIN, "Figures");
const { network, server, browser, page } = stack;
const agent = await startAgent(stack.msh, ["--x-display", xvfb.display]);
const appScreen = await startXvfb({ width: 1360, height: 900 });
const home = tempDir("app-figures");
const driver = await startWebDriver(appEnvironment(appScreen.display, home));
const figures = {};
const motion = async (on) => {
  await probe.stop();
  probe = await startXprobe(xvfb.display, { mode: on ? "motion" : "colour" });
};
try {
  const deviceUrl = await openOnlineDevice(page, server);
  const big = join(agent.home, "download.bin");
  writeFileSync(big, randomBytes(DOWNLOAD));

  // Chromium.
  await page.goto(`${deviceUrl}/desktop`);
  const chromiumPath = () => page.getByTestId("session-path").getAttribute("data-path");
  await until(chromiumPath, (p) => p === "direct", "Chromium's desktop goes direct", 30_000);
  const box = await page.getByTestId("desktop-canvas").boundingBox();
  const chromium = (script) => page.evaluate(`(() => { ${script} })()`);
  figures.chromium_input_to_pixel_ms = await latencies(chromium, () => page.mouse.click(box.x + box.width / 2, box.y + box.height / 2));
  await motion(true);
  figures.chromium_fps = await fps(chromium);
  await motion(false);

  // The app.
  const app = await launchApp(driver, `${deviceUrl}/desktop`, webFingerprint(server));
  await signIn(app, ADMIN);
  await until(() => app.execute(`return document.querySelector("[data-testid=session-path]")?.dataset.path`), (p) => p === "direct", "the app's desktop goes direct", 60_000);
  const appPid = Number(String(execFileSync("pgrep", ["-n", "-x", "tether-console"])).trim());
  const x = { ...process.env, DISPLAY: appScreen.display };
  const [wx, wy] = String(execFileSync("xdotool", ["search", "--onlyvisible", "--name", "^Tether$", "getwindowgeometry", "--shell"], { env: x }))
    .match(/X=(\d+)\nY=(\d+)/)
    .slice(1)
    .map(Number);
  const [cx, cy] = await app.execute(`
    const r = document.querySelector("[data-testid=desktop-canvas]").getBoundingClientRect();
    return [r.left + r.width / 2, r.top + r.height / 2 + (window.outerHeight - window.innerHeight)];`);
  const xclick = () =>
    new Promise((resolve, reject) =>
      execFile("xdotool", ["mousemove", String(Math.round(wx + cx)), String(Math.round(wy + cy)), "click", "1"], { env: x }, (e) => (e ? reject(e) : resolve())),
    );
  const appPage = (script) => app.execute(script);
  figures.app_input_to_pixel_ms = await latencies(appPage, xclick);
  // Idle: the screen is still, the session open.
  await pause(3_000);
  const before = tree(appPid);
  await pause(10_000);
  const after = tree(appPid);
  figures.app_idle_rss_mib = Math.round(after.rss / 1024);
  figures.app_idle_cpu_percent = Number((((after.ticks - before.ticks) / 100 / 10) * 100).toFixed(1));
  await motion(true);
  figures.app_fps = await fps(appPage);
  await motion(false);
  // The same with JPEG tiles: the viewer's codec setting, then the session opened again.
  const appPath = () => app.execute(`return document.querySelector("[data-testid=session-path]")?.dataset.path`);
  await app.execute(`localStorage.setItem("tether.desktop", JSON.stringify({ codec: "jpeg" })); location.reload(); return true;`);
  await until(appPath, (p) => p === "direct", "the app's JPEG desktop goes direct", 60_000);
  figures.app_jpeg_input_to_pixel_ms = await latencies(appPage, xclick);
  await motion(true);
  figures.app_jpeg_fps = await fps(appPage);
  await motion(false);
  await app.execute(`localStorage.removeItem("tether.desktop"); return true;`);

  // A download on the direct path, in the app: through its IPC channel.
  await app.click(await app.find("#tab-files"));
  await until(() => app.execute(`return document.querySelector("[data-testid=session-path]")?.dataset.path`), (p) => p === "direct", "the app's files session goes direct", 60_000);
  await app.type(await app.find("#files-path"), `${agent.home}\uE007`);
  const button = await until(() => app.find(`button[aria-label="Download download.bin"]`).catch(() => null), Boolean, "the file listed");
  const start = await app.execute("return { ...globalThis.tetherAppTraffic, at: Date.now() }");
  await app.click(button);
  const end = await until(
    () => app.execute("return { ...globalThis.tetherAppTraffic, at: Date.now() }"),
    (t) => t.bytesIn - start.bytesIn >= DOWNLOAD,
    "the download crosses the IPC channel",
    120_000,
  );
  const seconds = (end.at - start.at) / 1000;
  figures.app_download_mb_per_s = Number(((end.bytesIn - start.bytesIn) / 1e6 / seconds).toFixed(1));
  figures.app_ipc_messages_per_s = Math.round((end.messagesIn - start.messagesIn) / seconds);
  figures.app_ipc_mean_message_kib = Number(((end.bytesIn - start.bytesIn) / (end.messagesIn - start.messagesIn) / 1024).toFixed(1));
  await app.close();

  // The same download in Chromium.
  await page.goto(`${deviceUrl}/files`);
  await until(chromiumPath, (p) => p === "direct", "Chromium's files session goes direct", 30_000);
  await page.locator("#files-path").fill(agent.home);
  await page.locator("#files-path").press("Enter");
  const downloaded = page.waitForEvent("download", { timeout: 120_000 });
  const t0 = Date.now();
  await page.getByRole("button", { name: "Download download.bin" }).click();
  await downloaded;
  figures.chromium_download_mb_per_s = Number((DOWNLOAD / 1e6 / ((Date.now() - t0) / 1000)).toFixed(1));
} finally {
  console.log(JSON.stringify(figures, null, 2));
  await browser.close();
  await driver.stop();
  await agent.stop();
  await server.stop();
  server.cleanup();
  await probe.stop();
  await appScreen.stop();
  await xvfb.stop();
  network.remove();
  rmSync(home, { recursive: true, force: true });
}
