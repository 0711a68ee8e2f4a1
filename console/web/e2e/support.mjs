// Shared pieces of the end-to-end tests: the real tether-server (and tether-agent) binaries on
// loopback in temp folders, Debian's Chromium driven by playwright-core, and screenshots.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../..");
export const ARTIFACTS = join(here, "artifacts");

/** target/debug/NAME, or $CARGO_TARGET_DIR/debug/NAME. */
export function binary(name) {
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, "target");
  return join(target, "debug", name);
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), `tether-e2e-${prefix}-`));
}

/** Resolves with the first stdout line matching `pattern`, rejects on exit or after `ms`. */
function waitForLine(child, pattern, ms, what) {
  return new Promise((resolvePromise, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error(`${what} did not start within ${ms} ms`)), ms);
    const onExit = (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before it was ready`));
    };
    child.once("exit", onExit);
    lines.on("line", (line) => {
      const match = pattern.exec(line);
      if (!match) return;
      clearTimeout(timer);
      child.off("exit", onExit);
      resolvePromise(match);
    });
  });
}

/**
 * Starts the real tether-server on a free loopback port with a fresh data folder (or the given
 * one, to restart). Optional `config` is written to config.toml first. The MPS port (Intel AMT)
 * is off unless `mpsPort` names one (see `freePort`).
 */
export async function startServer({ datapath = tempDir("server"), port = 0, config = "", bind = "127.0.0.1", mpsPort = 0 } = {}) {
  const exe = binary("tether-server");
  if (!existsSync(exe)) throw new Error(`${exe} is missing: run \`cargo build -p tether-server\` first`);
  if (config) writeFileSync(join(datapath, "config.toml"), config);
  const child = spawn(
    exe,
    ["--port", String(port), "--redirport", "0", "--mpsport", String(mpsPort), "--bind", bind, "--cert", "localhost", "--fastcert", "--datapath", datapath],
    { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } },
  );
  const match = await waitForLine(child, /tether-server listening on (https:\/\/[^/]+:(\d+))\//, 120_000, "tether-server");
  return {
    url: match[1],
    port: Number(match[2]),
    datapath,
    async stop() {
      await stopChild(child);
    },
    cleanup() {
      rmSync(datapath, { recursive: true, force: true });
    },
  };
}

/** A TCP port free on loopback just now, for a listener that cannot pick its own. */
export function freePort() {
  return new Promise((resolvePromise, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolvePromise(port));
    });
  });
}

/**
 * Starts tether-agent with a .msh (and extra `run` flags); resolves once it says it connected.
 * With `installed`, `program` is copied into the agent's folder next to its `agent.msh`, as the
 * install script lays it out (what self-update needs).
 */
export async function startAgent(msh, extraArgs = [], { program = binary("tether-agent"), installed = false, env = {} } = {}) {
  const state = tempDir("agent");
  const config = join(state, installed ? "agent.msh" : "meshagent.msh");
  writeFileSync(config, msh);
  let exe = program;
  if (installed) {
    // A copy without debug information (a debug agent is ~300 MB, stripped ~25 MB).
    exe = join(state, "tether-agent");
    execFileSync("strip", ["--strip-debug", "-o", exe, program]);
  }
  const child = spawn(exe, ["run", "--config", config, "--state", join(state, "state"), "--small-key", ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    // A home of its own: its terminals' login shells then read no dotfiles of the machine
    // running the tests (a stale pyenv rehash lock in root's once stalled every shell a minute).
    env: { ...process.env, RUST_LOG: "info", HOME: state, ...env },
  });
  // The agent logs to stderr; its "connected" line may go to either stream.
  const output = [];
  const ready = new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`tether-agent did not connect:\n${output.join("")}`)), 120_000);
    const watch = (chunk) => {
      output.push(String(chunk));
      if (output.join("").includes("tether-agent connected")) {
        clearTimeout(timer);
        resolvePromise();
      }
    };
    child.stdout.on("data", watch);
    child.stderr.on("data", watch);
    // TETHER_E2E_AGENT_LOG=FILE keeps the agent's whole log, for a failure to be looked into.
    if (process.env.TETHER_E2E_AGENT_LOG) {
      const log = createWriteStream(process.env.TETHER_E2E_AGENT_LOG, { flags: "a" });
      child.stdout.pipe(log);
      child.stderr.pipe(log);
    }
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tether-agent exited (${code}):\n${output.join("")}`));
    });
  });
  await ready;
  return {
    /** The agent's folder, also its HOME (where its terminals and file sessions start). */
    home: state,
    async stop() {
      await stopChild(child);
      rmSync(state, { recursive: true, force: true });
    },
  };
}

export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    child.once("exit", () => resolvePromise());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
  });
}

/**
 * Debian's Chromium, headless, quiet on the network, with a fresh profile per launch. With
 * `executablePath`, another launcher (a wrapper that starts it in a network namespace); with
 * `headless: false`, a window on the X display in `env.DISPLAY` (tether-bench's desktop scenes).
 */
export async function launchBrowser({ executablePath, args = [], headless = true, env } = {}) {
  return chromium.launch({
    executablePath: executablePath ?? process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless,
    ...(env ? { env } : {}),
    args: [
      ...args,
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/** A page that records console errors (CSP violations among them) for the test to check. */
export async function newPage(browser, options = {}) {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1360, height: 860 },
    colorScheme: "light",
    ...options,
  });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  page.on("pageerror", (error) => errors.push(String(error)));
  return { context, page, errors };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** Figures for the report, merged into artifacts/figures.json. */
export function recordFigure(key, value) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, "figures.json");
  const figures = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  figures[key] = value;
  writeFileSync(file, `${JSON.stringify(figures, null, 2)}\n`);
}

/** Polls `read` until `check` accepts its value; fails with the last value after `ms`. */
export async function until(read, check, what, ms = 20_000) {
  const deadline = Date.now() + ms;
  let value;
  for (;;) {
    value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) assert.fail(`${what}; last seen: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- the Terminal tab ----

/** The terminal's screen, one string per row (xterm's DOM renderer). */
export function terminalRows(page) {
  return page
    .locator("[data-testid=terminal] .xterm-rows > div")
    .evaluateAll((rows) => rows.map((r) => r.textContent.replace(/\u00a0/g, " ").trimEnd()));
}

/** Types `text` into the terminal and presses Enter. */
export async function typeLine(page, text) {
  await page.locator("[data-testid=terminal] .xterm-helper-textarea").focus();
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

// ---- a device to open sessions to ----

/**
 * On a fresh server: creates the administrator `admin` ({ name, password }) and, through the
 * console's own screens, a device group named `group`; resolves with that group's .msh.
 */
export async function createAdminAndGroup(page, server, admin, group, { setupUrl = server.url } = {}) {
  // The first account needs no setup code only when made from the server's own machine.
  const setup = await page.request.post(`${setupUrl}/api/setup`, { data: admin });
  assert.ok(setup.ok(), await setup.text());
  if (setupUrl !== server.url) {
    // The session cookie is the setup address's; sign in at the address the browser uses.
    const login = await page.request.post(`${server.url}/api/login`, { data: { user: admin.name, password: admin.password } });
    assert.ok(login.ok(), await login.text());
  }
  await page.goto(`${server.url}/groups`);
  await page.getByRole("button", { name: "New group" }).first().click();
  const dialog = page.getByRole("dialog", { name: "New device group" });
  await dialog.getByLabel("Name").fill(group);
  await dialog.getByRole("button", { name: "Save" }).click();
  await page.locator(`tr[data-group='${group}']`).getByRole("link", { name: group }).click();
  await page.getByRole("heading", { name: "Members and rights" }).waitFor();
  const groupId = decodeURIComponent(new URL(page.url()).pathname.split("/")[2]);
  const msh = await page.request.get(`${server.url}/api/groups/${encodeURIComponent(groupId)}/agent.msh`);
  return msh.text();
}

/** Opens the first online device's page once it shows it online; resolves with its URL (no tab). */
export async function openOnlineDevice(page, server) {
  await page.goto(`${server.url}/devices`);
  const row = page.locator(".item.online").first();
  await row.waitFor({ timeout: 30_000 });
  await row.getByRole("link").click();
  await page.getByTestId("device-status").filter({ hasText: "Online" }).waitFor();
  return page.url().replace(/\/general$/, "");
}

// ---- remote desktop: a private X server and the xprobe test client ----

/**
 * Starts Xvfb on a display number it picks itself (`-displayfd`), so parallel tests never
 * collide on one; resolves with `{ display: ":N", stop() }`.
 */
export async function startXvfb({ width = 1280, height = 800 } = {}) {
  const child = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", `${width}x${height}x24`, "-nolisten", "tcp"], {
    stdio: ["ignore", "ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk) => (stderr += chunk));
  const display = await new Promise((resolvePromise, reject) => {
    let written = "";
    const timer = setTimeout(() => reject(new Error(`Xvfb did not start within 30 s:\n${stderr}`)), 30_000);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`Xvfb exited (${code}) before it was ready:\n${stderr}`));
    });
    child.stdio[3].on("data", (chunk) => {
      written += chunk;
      if (!written.includes("\n")) return;
      clearTimeout(timer);
      resolvePromise(`:${written.trim()}`);
    });
  });
  return { display, stop: () => stopChild(child) };
}

/** Runs a program to completion; rejects with its output if it fails. */
export function run(program, args, { env = process.env } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"], env });
    let output = "";
    child.stdout.on("data", (chunk) => (output += chunk));
    child.stderr.on("data", (chunk) => (output += chunk));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolvePromise(output) : reject(new Error(`${program} ${args.join(" ")} exited (${code}):\n${output}`)),
    );
  });
}

/**
 * Starts xprobe (target/debug/xprobe) on `display` and resolves once its window is shown. Its
 * stdout lines (`click X Y COLOUR`, `key C`, …) are kept in `lines`; `waitFor(pattern, { from })`
 * resolves with the first line at index `from` or later that matches.
 */
export async function startXprobe(display, { mode = "colour" } = {}) {
  const child = spawn(binary("xprobe"), ["--display", display, "--mode", mode], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = [];
  let waiters = [];
  const check = () => {
    waiters = waiters.filter((waiter) => {
      for (let index = waiter.from; index < lines.length; index++) {
        const match = waiter.pattern.exec(lines[index]);
        if (match) {
          clearTimeout(waiter.timer);
          waiter.resolve({ line: lines[index], match, index });
          return false;
        }
      }
      return true;
    });
  };
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    check();
  });
  let exited = null;
  child.once("exit", (code, signal) => {
    exited = `xprobe exited (${code ?? signal})`;
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(`${exited} while waiting for ${waiter.pattern}; it printed:\n${lines.join("\n")}`));
    }
    waiters = [];
  });
  const waitFor = (pattern, { from = 0, ms = 20_000 } = {}) =>
    new Promise((resolvePromise, reject) => {
      if (exited) return reject(new Error(`${exited}; it printed:\n${lines.join("\n")}`));
      const waiter = { pattern, from, resolve: resolvePromise, reject };
      waiter.timer = setTimeout(() => {
        waiters = waiters.filter((w) => w !== waiter);
        reject(new Error(`xprobe printed no line matching ${pattern} within ${ms} ms; it printed:\n${lines.slice(from).join("\n")}`));
      }, ms);
      waiters.push(waiter);
      check();
    });
  await waitFor(/^ready$/, { ms: 30_000 });
  return { lines, waitFor, stop: () => stopChild(child) };
}

/**
 * Makes another X client (xclip) the owner of `display`'s CLIPBOARD holding `text`, as any program
 * on the remote machine can. xclip forks and serves the selection until another client takes it
 * or the X server ends; this resolves once the parent has exited (the selection is owned by then).
 */
export function setXClipboard(display, text) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("xclip", ["-selection", "clipboard", "-display", display], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolvePromise() : reject(new Error(`xclip exited (${code}):\n${stderr}`))));
    child.stdin.end(text);
  });
}

/** `ms` of what the private PulseAudio's sink `sink` played, mono 16-bit samples at 48 kHz. */
export function recordSink(pulse, sink, ms) {
  return new Promise((resolve, reject) => {
    // A short latency: parec's default buffers seconds, and what it holds when stopped is lost.
    const parec = spawn("parec", ["--raw", "--format=s16le", "--rate=48000", "--channels=1", "--latency-msec=20", "-d", `${sink}.monitor`], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, ...pulse.env },
    });
    const chunks = [];
    parec.stdout.on("data", (chunk) => chunks.push(chunk));
    parec.once("error", reject);
    parec.once("exit", () => {
      const bytes = Buffer.concat(chunks);
      resolve(Array.from({ length: bytes.length >> 1 }, (_, i) => bytes.readInt16LE(i * 2)));
    });
    setTimeout(() => parec.kill("SIGTERM"), ms);
  });
}

/** Power of `samples` (48 kHz) at `hz` (Goertzel). */
export function power(samples, hz) {
  const w = (2 * Math.PI * hz) / 48_000;
  let [s1, s2] = [0, 0];
  for (const x of samples) [s1, s2] = [x + 2 * Math.cos(w) * s1 - s2, s1];
  return s1 * s1 + s2 * s2 - 2 * Math.cos(w) * s1 * s2;
}

/**
 * A private PulseAudio daemon whose output is a null sink named `sink`; resolves with
 * `{ env, stop() }`, `env` being what a client needs to reach it (`PULSE_SERVER`, `PULSE_COOKIE`,
 * `XDG_RUNTIME_DIR`). With `microphoneHz`, it also has a microphone that never stops saying that
 * tone: the monitor of a second null sink, described as "Microphone", which pacat plays into (a
 * monitor keeps time as a sound card's source does; PulseAudio's sine-source module does not
 * honour a short latency). `sink` stays the default output.
 */
export async function startPulse(sink, { microphoneHz = 0 } = {}) {
  const runtime = tempDir("pulse");
  const microphone = microphoneHz ? ["-L", "module-null-sink sink_name=microphone sink_properties=device.description=Microphone"] : [];
  const daemon = spawn(
    "pulseaudio",
    ["-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm", "--use-pid-file=no", "-L", `module-null-sink sink_name=${sink}`, ...microphone, "-L", "module-native-protocol-unix"],
    { stdio: "ignore", env: { ...process.env, XDG_RUNTIME_DIR: runtime, HOME: runtime } },
  );
  const socket = join(runtime, "pulse", "native");
  await until(() => existsSync(socket), (there) => there, "PulseAudio's socket");
  // The cookie too: without it a client's login is refused, and cpal falls back from its
  // PulseAudio host to ALSA's (whose "default" still reaches PulseAudio, through libpulse).
  const env = { PULSE_SERVER: `unix:${socket}`, PULSE_COOKIE: join(runtime, ".config", "pulse", "cookie"), XDG_RUNTIME_DIR: runtime };
  let speaker = null;
  if (microphoneHz) {
    await run("pactl", ["set-default-sink", sink], { env: { ...process.env, ...env } });
    speaker = playTone(env, "microphone", microphoneHz);
  }
  return {
    env,
    async stop() {
      if (speaker) await stopChild(speaker);
      await stopChild(daemon);
      rmSync(runtime, { recursive: true, force: true });
    },
  };
}

/** Plays two minutes of a `hz` sine into `sink` of the PulseAudio `env` reaches; returns pacat. */
function playTone(env, sink, hz) {
  const player = spawn("pacat", ["--raw", "--format=s16le", "--rate=48000", "--channels=2", "-d", sink], {
    stdio: ["pipe", "ignore", "ignore"],
    env: { ...process.env, ...env },
  });
  const seconds = 120;
  const pcm = Buffer.alloc(48_000 * 4 * seconds);
  for (let i = 0; i < 48_000 * seconds; i++) {
    const v = Math.round(Math.sin((2 * Math.PI * hz * i) / 48_000) * 12_000);
    pcm.writeInt16LE(v, i * 4);
    pcm.writeInt16LE(v, i * 4 + 2);
  }
  player.stdin.on("error", () => undefined);
  player.stdin.end(pcm);
  return player;
}

/**
 * A private PulseAudio (`startPulse`) whose null sink is what "the device plays", playing a `hz`
 * sine with pacat; resolves with `{ env, stop() }`.
 */
export async function startPulseWithTone(hz) {
  const pulse = await startPulse("tether");
  const player = playTone(pulse.env, "tether", hz);
  return {
    env: pulse.env,
    async stop() {
      await stopChild(player);
      await pulse.stop();
    },
  };
}

/** POSTs JSON to the server, trusting its own root certificate only. */
export function postJson(server, path, body) {
  const ca = readFileSync(join(server.datapath, "root-cert-public.crt"));
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}${path}`,
      // The certificate names "localhost"; the test dials 127.0.0.1.
      { method: "POST", ca, checkServerIdentity: () => undefined, headers: { "content-type": "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => (res.statusCode < 300 ? resolve(text) : reject(new Error(`${path}: ${res.statusCode} ${text}`))));
      },
    );
    req.once("error", reject);
    req.end(JSON.stringify(body));
  });
}

/**
 * tetherctl as `admin` against `server` (its web certificate pinned by `fingerprint`): a function
 * that runs it with the arguments given and resolves with what it printed.
 */
export function tetherctlAs(server, admin, fingerprint) {
  return (...args) =>
    run(binary("tetherctl"), ["--url", server.url, "--user", admin.name, "--fingerprint", fingerprint, ...args], {
      env: { ...process.env, TETHER_PASS: admin.password },
    });
}

/** The first online device tetherctl (`tetherctlAs`) lists, once there is one. */
export function onlineDevice(ctl) {
  return until(
    async () => JSON.parse(await ctl("--json", "listdevices")).find((d) => d.online),
    (found) => found !== undefined,
    "the agent's device is online",
  );
}
