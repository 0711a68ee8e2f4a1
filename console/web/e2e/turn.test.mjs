// Direct sessions through a real TURN server: Debian's coturn (`turnserver`) on the host's end of
// the browser's veth, with the REST credentials the Tether server mints per session, and the
// server's `[turn] relay_only = true`, so Chromium may only use the TURN server's candidates. A
// files session moves onto a data channel that runs through coturn (the browser's selected
// candidate is a relay one, and coturn counts the bytes), a file crosses it byte for byte, and
// with a coturn that does not share the server's secret the session stays on the server's relay
// and still works.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { canMakeNamespaces, directStack } from "./netns.mjs";
import { binary, openOnlineDevice, recordFigure, screenshot, startAgent, stopChild, tempDir, until } from "./support.mjs";

// A name to look for in coturn's log (which says "admin thread" of its own).
const ADMIN = { name: "turn-operator", password: "correct horse battery" };
const TURNSERVER = "/usr/bin/turnserver";
const SECRET = randomBytes(18).toString("base64url");
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
// A port per process, so two runs on one machine do not meet.
const TURN_PORT = 20_000 + (process.pid % 10_000);

const skip = !existsSync(binary("tether-agent"))
  ? "tether-agent is not built"
  : !existsSync(TURNSERVER) && !process.env.CI
    ? "coturn is not installed (apt-get install coturn)"
    : !canMakeNamespaces() && !process.env.CI
      ? "needs root for a private network namespace"
      : false;

/** Starts coturn on `address` with `secret`; resolves once it answers a STUN Binding request. */
async function startCoturn(address, secret) {
  const dir = tempDir("coturn");
  const output = [];
  const child = spawn(
    TURNSERVER,
    [
      "-n", // no configuration file: everything is here
      "--no-cli",
      "--no-tls",
      "--no-dtls",
      `--listening-ip=${address}`,
      `--relay-ip=${address}`,
      `--listening-port=${TURN_PORT}`,
      `--min-port=${TURN_PORT + 1}`,
      `--max-port=${TURN_PORT + 200}`,
      "--use-auth-secret",
      `--static-auth-secret=${secret}`,
      "--realm=tether.test",
      "--fingerprint",
      "--verbose",
      "--log-file=stdout",
      "--simple-log",
      `--pidfile=${join(dir, "turnserver.pid")}`,
      `--db=${join(dir, "turndb.sqlite")}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout.on("data", (chunk) => output.push(String(chunk)));
  child.stderr.on("data", (chunk) => output.push(String(chunk)));
  await until(() => stunAnswers(address, TURN_PORT), (ok) => ok, `coturn answering on ${address}:${TURN_PORT}`, 20_000);
  return {
    log: () => output.join(""),
    async stop() {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether a STUN Binding request to `address:port` is answered within 300 ms. */
function stunAnswers(address, port) {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const done = (ok) => {
      clearTimeout(timer);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 300);
    socket.on("message", (message) => done(message.readUInt16BE(0) === 0x0101));
    socket.on("error", () => done(false));
    const request = Buffer.alloc(20);
    request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
    request.writeUInt32BE(0x2112a442, 4); // magic cookie
    randomBytes(12).copy(request, 8);
    socket.send(request, port, address);
  });
}

describe("direct sessions through TURN", { skip }, () => {
  let network;
  let server;
  let agent;
  let browser;
  let page;
  let coturn;
  let filesRoot;
  let deviceUrl;

  before(async () => {
    let msh;
    ({ network, server, browser, page, msh } = await directStack(ADMIN, "Through TURN", {
      serverConfig: ({ hostAddress }) =>
        `[turn]\nurls = ["turn:${hostAddress}:${TURN_PORT}?transport=udp"]\nsecret = "${SECRET}"\nrelay_only = true\n`,
    }));
    coturn = await startCoturn(network.hostAddress, SECRET);
    filesRoot = realpathSync(tempDir("files"));
    agent = await startAgent(msh, ["--files-root", filesRoot]);
    // Every peer connection the console makes, for its stats.
    await page.addInitScript(() => {
      const Original = window.RTCPeerConnection;
      window.__peers = [];
      window.RTCPeerConnection = function (...args) {
        const peer = new Original(...args);
        window.__peers.push(peer);
        return peer;
      };
      window.RTCPeerConnection.prototype = Original.prototype;
    });
    deviceUrl = await openOnlineDevice(page, server);
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await coturn?.stop();
    await server?.stop();
    server?.cleanup();
    network?.remove();
    if (filesRoot) rmSync(filesRoot, { recursive: true, force: true });
  });

  const path = () => page.getByTestId("session-path").getAttribute("data-path");
  /** The configuration and selected candidates of the console's newest peer connection. */
  const newestPeer = () =>
    page.evaluate(async () => {
      const peer = window.__peers.at(-1);
      if (!peer) return null;
      const stats = [...(await peer.getStats()).values()];
      const pair = stats.find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
      const local = pair && stats.find((s) => s.id === pair.localCandidateId);
      const remote = pair && stats.find((s) => s.id === pair.remoteCandidateId);
      return {
        policy: peer.getConfiguration().iceTransportPolicy,
        local: local && { type: local.candidateType, address: local.address },
        remote: remote && { type: remote.candidateType, address: remote.address },
      };
    });

  /** Opens the Files tab at the agent's files root, once the refused start at "/" is in. */
  async function openFilesRoot() {
    await page.goto(`${deviceUrl}/files`);
    // The session starts at "/", which this agent refuses (its files root is a temp folder). Going
    // to the files root before that answer is in races it (the view then opened a second session,
    // whose direct path the test read: a CI flake).
    await page.locator(".toast").filter({ hasText: "outside the folders this session may use" }).first().waitFor({ timeout: 30_000 });
    await page.getByRole("textbox", { name: "Go to path" }).fill(filesRoot);
    await page.getByRole("button", { name: "Go", exact: true }).click();
  }

  it("moves a file through coturn, byte for byte, on the direct path", async () => {
    await openFilesRoot();
    await page.getByText("This folder is empty").waitFor({ timeout: 30_000 });
    await until(path, (p) => p === "direct", "the files session on the direct path", 30_000);
    // The badge can say "direct" a moment before the browser's stats show the selected pair.
    const peer = await until(newestPeer, (p) => p?.local !== undefined, "the newest peer's selected candidate pair", 30_000);
    assert.equal(peer.policy, "relay", "the ticket said relay only");
    // Our end is coturn's relayed address: the agent never saw the browser's own.
    assert.equal(peer.local?.type, "relay", JSON.stringify(peer));
    assert.equal(peer.local.address, network.hostAddress, JSON.stringify(peer));

    const original = randomBytes(4 * 1024 * 1024 + 3);
    const started = Date.now();
    await page.getByTestId("upload-input").setInputFiles({ name: "turn.bin", mimeType: "application/octet-stream", buffer: original });
    await page.locator("li[data-transfer='turn.bin'][data-state='done']").waitFor({ timeout: 60_000 });
    recordFigure("turn.files.upload_4MiB_ms", Date.now() - started);
    assert.equal(sha256(readFileSync(join(filesRoot, "turn.bin"))), sha256(original), "the agent wrote the same bytes");
    const row = page.locator("tr[data-file='turn.bin']");
    const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download turn.bin" }).click()]);
    assert.equal(sha256(readFileSync(await download.path())), sha256(original), "downloaded bytes equal the original");
    assert.equal(await path(), "direct");
    await screenshot(page, "43-files-through-turn");

    // coturn took the credential the server minted for this session (expiry:tag, never an
    // account name), and relayed the file's bytes both ways.
    const log = coturn.log();
    const user = log.match(/user <(\d+):([0-9a-f]{16})>: incoming packet ALLOCATE processed, success/);
    assert.ok(user, `no allocation with a minted credential in coturn's log:\n${log.slice(-3000)}`);
    assert.ok(!log.includes(ADMIN.name), "an account name reached coturn");
  });

  it("stays on the server's relay, and works, when coturn refuses the credentials", async () => {
    // A coturn that does not share the server's secret: every credential fails, Chromium gets no
    // relay candidate, and relay-only leaves nothing to try.
    await coturn.stop();
    coturn = await startCoturn(network.hostAddress, `${SECRET}-not`);
    await openFilesRoot();
    await page.locator("tr[data-file='turn.bin']").waitFor({ timeout: 30_000 });
    // The console gives up as soon as gathering ends without a candidate, and says why.
    await until(
      () => page.getByTestId("session-path").getAttribute("title"),
      (title) => /no candidate from the TURN server/.test(title ?? ""),
      "the badge saying why the session stays relayed",
      30_000,
    );
    assert.equal(await path(), "relay");
    // Still a working session: the folder lists through the server.
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.locator("tr[data-file='turn.bin']").waitFor({ timeout: 30_000 });
    assert.match(coturn.log(), /401/, "coturn refused the credential");
  });
});
