// The desktop app (console/, Tauri) driven as a user would, through WebKitWebDriver (Debian's
// webkit2gtk-driver): the W3C WebDriver protocol over HTTP, which WebKitGTK's automation answers
// for a webview whose context allows it (the app's does with TAURI_WEBVIEW_AUTOMATION=true). Only
// the handful of commands the app's test uses, on Node's own fetch.

import { spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { binary, freePort, stopChild, until } from "./support.mjs";

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

/** Starts WebKitWebDriver; what it launches inherits `env` (the app's display and folders). */
export async function startWebDriver(env) {
  const port = await freePort();
  // In the app's home: with no download folder configured, WebKit saves a download in the
  // working directory (a figures run once left its 64 MiB download in the checkout).
  mkdirSync(env.HOME, { recursive: true });
  const child = spawn("WebKitWebDriver", [`--port=${port}`, "--host=127.0.0.1"], { stdio: ["ignore", "pipe", "pipe"], env, cwd: env.HOME });
  const output = [];
  child.stdout.on("data", (chunk) => output.push(String(chunk)));
  child.stderr.on("data", (chunk) => output.push(String(chunk)));
  const url = `http://127.0.0.1:${port}`;
  await until(
    () => fetch(`${url}/status`).then((r) => r.ok, () => false),
    (ready) => ready,
    "WebKitWebDriver answers",
    30_000,
  );
  return { url, output, stop: () => stopChild(child) };
}

export class WebDriverSession {
  constructor(driver, id) {
    this.driver = driver;
    this.id = id;
  }

  /** Launches `binary args…` under automation and attaches to its webview. */
  static async launch(driver, binary, args) {
    const response = await request(driver.url, "POST", "/session", {
      capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary, args } } },
    });
    return new WebDriverSession(driver, response.sessionId);
  }

  command(method, path, body) {
    return request(this.driver.url, method, `/session/${this.id}${path}`, body);
  }

  url() {
    return this.command("GET", "/url");
  }

  /** Runs `script` (a function body; `arguments` are `args`) in the page and returns its value. */
  execute(script, ...args) {
    return this.command("POST", "/execute/sync", { script, args });
  }

  async find(css) {
    const found = await this.command("POST", "/element", { using: "css selector", value: css });
    return found[ELEMENT];
  }

  click(element) {
    return this.command("POST", `/element/${element}/click`, {});
  }

  /** Types `text` into an element (a file input takes a path this way). */
  type(element, text) {
    return this.command("POST", `/element/${element}/value`, { text });
  }

  async close() {
    await request(this.driver.url, "DELETE", `/session/${this.id}`).catch(() => undefined);
  }
}

async function request(base, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    const { error, message } = reply.value ?? {};
    throw new Error(`WebDriver ${method} ${path}: ${response.status} ${error ?? ""} ${message ?? ""}`);
  }
  return reply.value;
}

/** The environment the app runs in: its X display, a home and folders of its own, no GPU. */
export function appEnvironment(display, home, extra = {}) {
  return {
    ...process.env,
    DISPLAY: display,
    TAURI_WEBVIEW_AUTOMATION: "true",
    HOME: home,
    XDG_CONFIG_HOME: join(home, "config"),
    XDG_DATA_HOME: join(home, "data"),
    XDG_CACHE_HOME: join(home, "cache"),
    WEBKIT_DISABLE_COMPOSITING_MODE: "1",
    LIBGL_ALWAYS_SOFTWARE: "1",
    ...extra,
  };
}

/** The server's web certificate's SHA-256 fingerprint, as `--accept-fingerprint` takes it. */
export function webFingerprint(server) {
  return new X509Certificate(readFileSync(join(server.datapath, "webserver-cert-public.crt"))).fingerprint256;
}

/**
 * Starts the app opening `page`, whose certificate is pre-accepted: target/debug/tether-console, or
 * $TETHER_CONSOLE_BINARY (the figures take a release build).
 */
export function launchApp(driver, page, fingerprint) {
  const app = process.env.TETHER_CONSOLE_BINARY ?? binary("tether-console");
  return WebDriverSession.launch(driver, app, ["--server", page, "--accept-fingerprint", fingerprint]);
}

/** Signs in on the console's sign-in form, as a user types. */
export async function signIn(app, { name, password }) {
  const user = await until(() => app.find("input[autocomplete=username]").catch(() => null), Boolean, "the sign-in form", 60_000);
  await app.type(user, name);
  await app.type(await app.find("input[type=password]"), `${password}\uE007`);
}
