// The desktop app (console/, Tauri, WebKitGTK) against a real server and agent, driven through
// WebKitWebDriver as a user would drive it: it signs in, opens a device's desktop, and the session
// goes direct on the app's own WebRTC peer (Rust, str0m: WebKitGTK has none); the window shows
// xprobe's colour and a click changes it; the device's sound (a tone on its PulseAudio) comes out
// of the app's own output (cpal, into a null sink of another PulseAudio, recorded there); the relay
// carries next to nothing once switched (the session's audit record says so); terminal and file
// upload take the same direct path. Closing the window leaves the app in its tray, a watched
// group's device going offline reaches the desktop's notification service (a stand-in for the
// desktop's daemon on a private D-Bus session bus), and clicking the notification brings the
// window back at that device.
//
// Two X servers: the device's (the agent captures it; xprobe paints it) and the app's.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  binary,
  onlineDevice,
  postJson,
  power,
  recordFigure,
  recordSink,
  startAgent,
  startPulse,
  startPulseWithTone,
  startServer,
  startXprobe,
  startXvfb,
  tetherctlAs,
  tempDir,
  until,
} from "./support.mjs";
import { startNotificationService } from "./notificationService.mjs";
import { appEnvironment, launchApp, signIn, startWebDriver, webFingerprint } from "./webdriver.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const SCREEN = { width: 1280, height: 800 };

const missing =
  (process.env.TETHER_SKIP_DESKTOP === "1" && "TETHER_SKIP_DESKTOP=1") ||
  (!existsSync("/usr/bin/WebKitWebDriver") && "WebKitWebDriver is not installed (webkit2gtk-driver)") ||
  (!existsSync("/usr/bin/xdotool") && "xdotool is not installed") ||
  (!existsSync(binary("tether-console")) && "tether-console is not built (cargo build -p tether-console)") ||
  (!(existsSync(binary("tether-agent")) && existsSync(binary("xprobe"))) && "tether-agent or xprobe is not built");
if (missing && process.env.CI && process.env.TETHER_SKIP_DESKTOP !== "1") throw new Error(`desktop app e2e cannot run: ${missing}`);

/** Share of the screenshot's pixels near `rgb`. */
function shareOf(shot, rgb) {
  const out = execFileSync("convert", [
    shot,
    "-fuzz",
    "20%",
    "-fill",
    "white",
    "-opaque",
    `rgb(${rgb.join(",")})`,
    "-fill",
    "black",
    "+opaque",
    "white",
    "-colorspace",
    "gray",
    "-format",
    "%[fx:mean]",
    "info:",
  ]);
  return Number(String(out).trim());
}

describe("the desktop app's own direct sessions", { skip: missing }, () => {
  const home = tempDir("app-home");
  let screen;
  let probe;
  let appScreen;
  let server;
  let agent;
  let driver;
  let app;
  let device;
  let ctl;
  let tone;
  let appSound;
  let bus;

  before(async () => {
    screen = await startXvfb(SCREEN);
    probe = await startXprobe(screen.display);
    appScreen = await startXvfb({ width: 1360, height: 900 });
    server = await startServer();
    await postJson(server, "/api/setup", ADMIN);
    const fingerprint = webFingerprint(server);
    ctl = tetherctlAs(server, ADMIN, fingerprint);
    await ctl("addgroup", "App screens");
    const msh = await ctl("agentconfig", "--group", "App screens");
    tone = await startPulseWithTone(440);
    // What the app plays goes to a null sink of another PulseAudio, where the test records it.
    appSound = await startPulse("app");
    bus = await startNotificationService();
    agent = await startAgent(msh, ["--x-display", screen.display], { env: tone.env });
    device = await onlineDevice(ctl);
    driver = await startWebDriver(appEnvironment(appScreen.display, home, { ...appSound.env, DBUS_SESSION_BUS_ADDRESS: bus.address }));
    app = await launchApp(driver, `${server.url}/devices/${encodeURIComponent(device.id)}/desktop`, fingerprint);
  });

  after(async () => {
    await app?.close();
    await driver?.stop();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    await probe?.stop();
    await tone?.stop();
    await appSound?.stop();
    await bus?.stop();
    await appScreen?.stop();
    await screen?.stop();
    rmSync(home, { recursive: true, force: true });
  });

  const path = () => app.execute(`return document.querySelector("[data-testid=session-path]")?.dataset.path ?? null`);
  /** Waits for the direct path; a failure says why the session stayed relayed (the badge's title). */
  const untilDirect = (what) =>
    until(
      () => app.execute(`const b = document.querySelector("[data-testid=session-path]"); return b ? [b.dataset.path, b.title] : null`),
      (badge) => badge?.[0] === "direct",
      what,
      60_000,
    );
  const centre = () =>
    app.execute(`
      const c = document.querySelector("[data-testid=desktop-canvas]");
      if (!c || c.width === 0) return null;
      const d = c.getContext("2d").getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
      return [d[0], d[1], d[2]];`);
  const near = (rgb, want) => Array.isArray(rgb) && rgb.every((v, i) => Math.abs(v - want[i]) <= 48);
  const windowShot = (name) => {
    const shot = join(home, `${name}.png`);
    execFileSync("import", ["-display", appScreen.display, "-window", "root", shot]);
    return shot;
  };

  it("signs in and opens the device's desktop on the app's direct path", async () => {
    await until(() => app.url(), (url) => url.startsWith(server.url), "the app opens the server", 60_000);
    await signIn(app, ADMIN);
    await untilDirect("the desktop session on the direct path");
    await until(centre, (rgb) => near(rgb, [255, 0, 0]), "the canvas shows xprobe's red");
    // What the window itself shows (X's own pixels, not the page's idea of them).
    const red = await until(() => shareOf(windowShot("red"), [255, 0, 0]), (share) => share > 0.2, "the app's window shows red");
    recordFigure("app.desktop.red_share_of_window", red);
  });

  it("passes a click in its window to the device, and shows the result", async () => {
    // A real X click: where the canvas is on the app's screen.
    // The page's viewport sits under the window's menu bar: offset by what the window has above it.
    const rect = await app.execute(`
      const r = document.querySelector("[data-testid=desktop-canvas]").getBoundingClientRect();
      return [r.left + r.width / 2, r.top + r.height / 2 + (window.outerHeight - window.innerHeight)];`);
    const [wx, wy] = String(execFileSync("xdotool", ["search", "--onlyvisible", "--name", "Tether", "getwindowgeometry", "--shell"], { env: { ...process.env, DISPLAY: appScreen.display } }))
      .match(/X=(\d+)\nY=(\d+)/)
      .slice(1)
      .map(Number);
    const from = probe.lines.length;
    execFileSync("xdotool", ["mousemove", String(Math.round(wx + rect[0])), String(Math.round(wy + rect[1])), "click", "1"], {
      env: { ...process.env, DISPLAY: appScreen.display },
    });
    const { match } = await probe.waitFor(/^click (\d+) (\d+) (\w+)$/, { from });
    assert.equal(match[3], "green");
    assert.ok(Math.abs(Number(match[1]) - SCREEN.width / 2) <= 4, `x ${match[1]}`);
    await until(centre, (rgb) => near(rgb, [0, 255, 0]), "the canvas turns green");
    await until(() => shareOf(windowShot("green"), [0, 255, 0]), (share) => share > 0.2, "the app's window shows green");
    assert.equal(await path(), "direct");
  });

  it("plays the device's sound on its own output", async () => {
    const speaker = () => app.execute(`return document.querySelector("[data-testid=desktop-speaker]")?.dataset.sound`);
    await app.click(await app.find("[data-testid=desktop-speaker]"));
    await until(speaker, (s) => s === "on", "the speaker on");
    // What the app's output played: the agent's 440 Hz stands far above another frequency.
    const heard = await until(
      async () => {
        const samples = await recordSink(appSound, "app", 500);
        return { tone: power(samples, 440), other: power(samples, 1234), count: samples.length };
      },
      ({ tone, other, count }) => count > 10_000 && tone > other * 100,
      "the tone out of the app's sound output",
    );
    recordFigure("app.sound.tone_to_other_power", Math.round(heard.tone / Math.max(heard.other, 1)));
    await app.click(await app.find("[data-testid=desktop-speaker]"));
    await until(speaker, (s) => s === "off", "the speaker off");
  });

  it("leaves the relay flat: moving pictures go direct, as the session's audit record says", async () => {
    await probe.stop();
    probe = await startXprobe(screen.display, { mode: "motion" });
    // A full screen repainting 30 times a second reaches the canvas: its centre keeps changing.
    const seen = new Set();
    await until(
      async () => {
        seen.add(JSON.stringify(await centre()));
        return seen.size;
      },
      (count) => count >= 20,
      "moving pictures on the canvas",
      30_000,
    );
    // Leaving the tab ends the session the way the console ends any (its direct totals reported).
    await app.click(await app.find("#tab-terminal"));
    const ended = await until(
      async () => JSON.parse(await ctl("--json", "events")).find((e) => /desktop session .* ended/.test(e.message ?? "")),
      Boolean,
      "the desktop session's end in the audit log",
    );
    const [, relayedIn] = ended.message.match(/(\d+) bytes from it/).map(Number);
    const direct = ended.message.match(/on the direct path (\d+) bytes to the device, (\d+) bytes from it/);
    assert.ok(direct, `no direct totals: ${ended.message}`);
    recordFigure("app.desktop.relayed_bytes_from_device", relayedIn);
    recordFigure("app.desktop.direct_bytes_from_device", Number(direct[2]));
    assert.ok(Number(direct[2]) > 10 * relayedIn, `relay ${relayedIn} B vs direct ${direct[2]} B: ${ended.message}`);
  });

  it("runs the terminal on the direct path", async () => {
    await untilDirect("the terminal session on the direct path");
    const marker = join(agent.home, "typed-in-the-app");
    const input = await app.find("[data-testid=terminal] .xterm-helper-textarea");
    await app.type(input, `echo app-$((6*7)) > ${marker}\uE007`);
    await until(() => existsSync(marker) && readFileSync(marker, "utf8"), (text) => text === "app-42\n", "the typed command ran on the device");
  });

  it("uploads a file on the direct path", async () => {
    await app.click(await app.find("#tab-files"));
    await untilDirect("the files session on the direct path");
    await app.type(await app.find("#files-path"), `${agent.home}\uE007`);
    await until(
      () => app.execute(`return document.querySelector("[aria-current=location]")?.textContent ?? null`),
      (crumb) => crumb === agent.home.split("/").pop(),
      "the file list opens the agent's folder",
    );
    // WebKitWebDriver cannot type into the hidden picker, so the page is handed a file as a drop
    // or the picker would hand it: 4 MiB of random bytes made in the page, whose hash it returns.
    const started = Date.now();
    const sent = await app.execute(`
      const bytes = new Uint8Array(4 << 20);
      for (let at = 0; at < bytes.length; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536));
      const files = new DataTransfer();
      files.items.add(new File([bytes], "upload.bin"));
      const input = document.querySelector("[data-testid=upload-input]");
      input.files = files.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
      return crypto.subtle.digest("SHA-256", bytes).then((d) => Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join(""));`);
    const remote = join(agent.home, "upload.bin");
    await until(
      () => existsSync(remote) && createHash("sha256").update(readFileSync(remote)).digest("hex"),
      (hash) => hash === sent,
      "the upload arrives whole",
      60_000,
    );
    recordFigure("app.files.upload_4MiB_ms", Date.now() - started);
    assert.equal(await path(), "direct");
  });

  it("switches between servers from its Servers menu, each with its own pinned certificate", async () => {
    const other = await startServer();
    try {
      const keys = (...names) => execFileSync("xdotool", ["key", "--delay", "150", ...names], { env: { ...process.env, DISPLAY: appScreen.display } });
      // The menu bar from the keyboard (F10), as a user without a mouse would: the first server,
      // then "Connect to another server…".
      keys("F10", "Down", "Down", "Return");
      await until(() => app.url(), (url) => url.startsWith("tauri://localhost"), "the picker opens");
      await app.type(await app.find("#url"), `${other.url}\uE007`);
      const shown = await until(() => app.execute(`return document.querySelector("#fingerprint")?.textContent || null`), Boolean, "the new server's fingerprint");
      assert.equal(shown.replaceAll(":", "").toLowerCase(), webFingerprint(other).replaceAll(":", "").toLowerCase());
      await app.click(await app.find("#accept"));
      await until(() => app.url(), (url) => url.startsWith(other.url), "the second server opens");
      // Back to the first from the menu (servers listed in order of their origins): still signed
      // in there.
      const index = [server.url, other.url].sort().indexOf(server.url);
      keys("F10", ...Array(index + 1).fill("Down"), "Return");
      await until(() => app.url(), (url) => url.startsWith(server.url), "the first server again");
      // The device's page (what the first server was opened at), not the sign-in form.
      await until(() => app.find("#tab-desktop").catch(() => null), Boolean, "the console, signed in");
    } finally {
      await other.stop();
      other.cleanup();
    }
  });

  it("stays in the tray when its window is closed, notifies of a watched group's device going offline, and a click on that opens the device", async () => {
    await app.click(await app.find("a[href='/account']"));
    const box = await until(() => app.find(`[data-testid=app-notifications] [data-group="${device.group}"]`).catch(() => null), Boolean, "the watched-groups setting");
    await app.click(box);
    const settings = join(home, "config", "org.tether.console", "notifications.json");
    await until(() => existsSync(settings) && readFileSync(settings, "utf8"), (text) => text && text.includes(device.group), "the app keeps the watched group");

    const onScreen = () => {
      try {
        return String(execFileSync("xdotool", ["search", "--onlyvisible", "--name", "^Tether$"], { env: { ...process.env, DISPLAY: appScreen.display } })).trim();
      } catch {
        return "";
      }
    };
    const window = onScreen().split("\n")[0];
    assert.ok(window, "the app's window is on screen");
    execFileSync(binary("xprobe"), ["--display", appScreen.display, "--close", window]);
    await until(onScreen, (shown) => shown === "", "the window hides");
    // Still running: its page answers.
    assert.ok((await app.url()).startsWith(server.url));

    const from = bus.shown.length;
    await agent.stop();
    const note = await until(
      () => bus.shown.slice(from).find((n) => n.summary === `${device.name} went offline`),
      Boolean,
      "the notification of the device going offline",
      60_000,
    );
    assert.equal(note.appName, "Tether");
    assert.equal(note.body, "In App screens");
    assert.deepEqual(note.actions, ["default"], "a click on it is awaited");

    bus.click(note.id);
    await until(onScreen, (shown) => shown !== "", "the window comes back");
    await until(() => app.url(), (url) => url === `${server.url}/devices/${encodeURIComponent(device.id)}`, "the device's page");
    await until(() => app.find("#tab-desktop").catch(() => null), Boolean, "the device's tabs");
  });
});
