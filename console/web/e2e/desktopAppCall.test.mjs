// A messenger call from the desktop app, as an administrator makes one: the app (driven through
// WebKitWebDriver) opens a chat with a device, the person at the device answers in Chromium, and
// the app calls with its microphone. WebKitGTK has no WebRTC, so the call's peer and its sound
// are the app's own (console/src/call.rs): its microphone is a private PulseAudio's source that
// plays 700 Hz (`startPulse`), chosen in the call bar, and what it plays goes to that PulseAudio's null sink, where
// the test records it. Chromium, in a network namespace of its own (it ignores loopback
// candidates), has a fake 1 kHz microphone and a WebAudio analyser on what it hears. Both ways
// are checked by frequency; muting in the app silences it at the device; hanging up ends both.
// Last, another administrator (in Chromium) invites the app's user to a chat: the app answers the
// inviter's offer with its own peer, and the chat goes direct.

import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { listenToCall, stubOpener, toneWav } from "./chatSupport.mjs";
import { canMakeNamespaces, privateNetwork } from "./netns.mjs";
import {
  binary,
  launchBrowser,
  newPage,
  onlineDevice,
  postJson,
  power,
  recordFigure,
  recordSink,
  startAgent,
  startPulse,
  startServer,
  startXvfb,
  tempDir,
  tetherctlAs,
  until,
} from "./support.mjs";
import { appEnvironment, launchApp, signIn, startWebDriver, webFingerprint } from "./webdriver.mjs";

const ADMIN = { name: "admin", password: "correct horse battery" };
const CAROL = { name: "carol", password: "carol's long password" };
/** The app's microphone and the device's. */
const APP_HZ = 700;
const DEVICE_HZ = 1000;

const missing =
  (process.env.TETHER_SKIP_DESKTOP === "1" && "TETHER_SKIP_DESKTOP=1") ||
  (!existsSync("/usr/bin/WebKitWebDriver") && "WebKitWebDriver is not installed (webkit2gtk-driver)") ||
  (!existsSync(binary("tether-console")) && "tether-console is not built (cargo build -p tether-console)") ||
  (!existsSync(binary("tether-agent")) && "tether-agent is not built") ||
  (!canMakeNamespaces() && "needs root for a private network namespace");
if (missing && process.env.CI && process.env.TETHER_SKIP_DESKTOP !== "1") throw new Error(`desktop app call e2e cannot run: ${missing}`);

describe("a call from the desktop app", { skip: missing }, () => {
  const dir = tempDir("app-call");
  const home = join(dir, "home");
  const stub = stubOpener(dir);
  let network;
  let server;
  let agent;
  let browser;
  let appScreen;
  let appSound;
  let driver;
  let app;
  let device;
  let ctl;

  before(async () => {
    network = privateNetwork();
    server = await startServer({ bind: "0.0.0.0" });
    await postJson(server, "/api/setup", ADMIN);
    // Everyone reaches the server at the veth's near address: Chromium cannot reach loopback.
    server.url = `https://${network.hostAddress}:${server.port}`;
    const fingerprint = webFingerprint(server);
    ctl = tetherctlAs(server, ADMIN, fingerprint);
    await ctl("addgroup", "Calls");
    agent = await startAgent(await ctl("agentconfig", "--group", "Calls"), ["--x-display", ":79", "--chat-opener", stub.opener]);
    const online = await onlineDevice(ctl);
    const tone = join(dir, "tone.wav");
    toneWav(tone, DEVICE_HZ, 30);
    browser = await launchBrowser({
      executablePath: network.launcher,
      args: [
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        `--use-file-for-fake-audio-capture=${tone}`,
        "--autoplay-policy=no-user-gesture-required",
      ],
    });
    appScreen = await startXvfb({ width: 1360, height: 900 });
    appSound = await startPulse("app", { microphoneHz: APP_HZ });
    driver = await startWebDriver(appEnvironment(appScreen.display, home, appSound.env));
    app = await launchApp(driver, `${server.url}/devices/${encodeURIComponent(online.id)}/chat`, fingerprint);
  });

  after(async () => {
    await app?.close();
    await driver?.stop();
    await browser?.close();
    await agent?.stop();
    await server?.stop();
    server?.cleanup();
    await appSound?.stop();
    await appScreen?.stop();
    network?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  const callState = () => app.execute(`return document.querySelector("[data-testid=chat-call]")?.dataset.state ?? null`);

  it("calls the person at the device with the chosen microphone, and plays what they say", async () => {
    await until(() => app.url(), (url) => url.startsWith(server.url), "the app opens the server", 60_000);
    await signIn(app, ADMIN);
    ({ page: device } = await newPage(browser));
    await device.goto(await stub.url());
    await until(
      () => app.execute(`return document.querySelector("[data-testid=chat-status]")?.textContent ?? ""`),
      (text) => text.includes("Chatting with"),
      "the chat is open in the app",
      30_000,
    );

    // The app's microphone, picked from what the app lists.
    const microphone = await until(
      () => app.execute(`return [...document.querySelectorAll("[data-testid=call-input] option")].map((o) => o.value).find((v) => v.endsWith("Microphone")) ?? null`),
      Boolean,
      "the test's microphone among the app's",
    );
    await app.execute(`
      const select = document.querySelector("[data-testid=call-input]");
      select.value = arguments[0];
      select.dispatchEvent(new Event("change", { bubbles: true }));`, microphone);
    await app.click(await app.find("[data-testid=call-start]"));

    await device.getByTestId("call-ringing").filter({ hasText: "sending microphone" }).waitFor({ timeout: 30_000 });
    await device.getByTestId("call-accept").click();
    await device.getByTestId("call-status").filter({ hasText: "In a call" }).waitFor({ timeout: 30_000 });
    await until(callState, (state) => state === "active", "the app's call connects", 30_000);

    // The device hears the app's microphone.
    const heard = await device.evaluate(listenToCall);
    assert.ok(Math.abs(heard.peakHz - APP_HZ) < 50, `the app's tone arrived at ${heard.peakHz} Hz`);

    // The app plays the device's microphone on its own output.
    const played = await until(
      async () => {
        const samples = await recordSink(appSound, "app", 500);
        return { tone: power(samples, DEVICE_HZ), other: power(samples, 1234), count: samples.length };
      },
      ({ tone, other, count }) => count > 10_000 && tone > other * 100,
      "the device's tone out of the app's output",
    );
    recordFigure("app.call.device_tone_to_other_power", Math.round(played.tone / Math.max(played.other, 1)));
    // A whole measuring interval of Opus (the first may hold only its last moments).
    const kbps = await until(
      async () => Number((await app.execute(`return document.querySelector("[data-testid=call-kbps]")?.textContent ?? ""`)).match(/(\d+) kbit/)?.[1] ?? 0),
      (rate) => rate >= 8,
      "the app shows what the device's sound arrives at",
    );
    recordFigure("app.call.received_kbps", kbps);
  });

  it("mutes its microphone: the device hears silence, then the tone again", async () => {
    // From now on: a silence before the mute would otherwise count.
    await device.evaluate(() => Object.assign(window.__listener, { silentSince: 0, toneAt: 0 }));
    await app.click(await app.find("[data-testid=call-mute]"));
    await device.waitForFunction(() => window.__listener.silentSince > 0, null, { timeout: 20_000 });
    const unmuted = Date.now();
    await app.click(await app.find("[data-testid=call-mute]"));
    await device.waitForFunction((t) => window.__listener.toneAt > t, unmuted, { timeout: 20_000 });
    // Mouth to ear, from the app's microphone to the device's ears, WebDriver's click included.
    recordFigure("app.call.unmute_to_ear_ms", (await device.evaluate(() => window.__listener.toneAt)) - unmuted);
  });

  it("hangs up: both sides end the call", async () => {
    await app.click(await app.find("[data-testid=call-hangup]"));
    await until(callState, (state) => state === "idle", "the app's call ends");
    await device.getByTestId("chat-call").and(device.locator("[data-state=idle]")).waitFor();
    await device.getByTestId("chat-messages").getByText("The other side hung up.").waitFor();
  });

  it("takes another administrator's chat invitation, answering their offer: the chat goes direct", async () => {
    // tetherctl reads the new password from the environment it inherits.
    process.env.CAROL_PASS = CAROL.password;
    await ctl("adduser", "--siteadmin", "--pass-env", "CAROL_PASS", CAROL.name);
    const { page: carol } = await newPage(browser);
    const login = await carol.request.post(`${server.url}/api/login`, { data: { user: CAROL.name, password: CAROL.password } });
    assert.ok(login.ok(), await login.text());
    await carol.goto(`${server.url}/devices`);
    await carol.getByTestId("chat-with-user").click();
    await carol.getByTestId("chat-peers").getByRole("listitem").filter({ hasText: "admin" }).getByRole("button", { name: "Chat" }).click();

    const accept = await until(
      () => app.execute(`return [...document.querySelectorAll("[data-testid=chat-invitation] button")].find((b) => b.textContent.trim() === "Accept") ? true : null`),
      Boolean,
      "carol's invitation in the app",
    );
    assert.ok(accept);
    await app.execute(`[...document.querySelectorAll("[data-testid=chat-invitation] button")].find((b) => b.textContent.trim() === "Accept").click()`);
    const userChat = (css) => `[data-testid=user-chat] ${css}`;
    await until(
      () => app.execute(`return document.querySelector(arguments[0])?.dataset.path ?? null`, userChat("[data-testid=session-path]")),
      (path) => path === "direct",
      "the app's end of the chat on the direct path",
      30_000,
    );
    await carol.getByTestId("user-chat").locator("[data-testid=session-path][data-path=direct]").waitFor({ timeout: 30_000 });
    await carol.getByTestId("user-chat").getByTestId("chat-input").fill("Took the ticket for pc-7");
    await carol.getByTestId("user-chat").getByTestId("chat-input").press("Enter");
    await until(
      () => app.execute(`return [...document.querySelectorAll(arguments[0])].map((t) => t.textContent).join("|")`, userChat("[data-testid=chat-text]")),
      (texts) => texts.includes("Took the ticket for pc-7"),
      "carol's message in the app, on the direct path",
    );
  });
});
