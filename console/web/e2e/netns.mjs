// A private network for the browser: Chromium never uses loopback ICE candidates, so a test of
// direct (peer-to-peer) sessions runs it in a network namespace of its own, joined to this one by
// a veth pair. The server and the agent stay here, on the veth's near address; the browser
// reaches them at that address and the agent's ICE candidates include it. Needs root (`ip netns`).

import { execFileSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createAdminAndGroup, launchBrowser, newPage, startServer, tempDir } from "./support.mjs";

const ip = (...args) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

export function canMakeNamespaces() {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/**
 * Makes namespace and veth pair (names unique to this process); resolves with the addresses, a
 * Chromium launcher that runs inside the namespace, and `remove()`.
 */
export function privateNetwork() {
  const tag = String(process.pid % 100_000);
  const ns = `tether-e2e-${tag}`;
  const near = `te2e${tag}a`;
  const far = `te2e${tag}b`;
  // 10.79.x.0/24 per process, so parallel runs on one machine do not share a subnet.
  const subnet = `10.79.${process.pid % 250}`;
  const hostAddress = `${subnet}.1`;
  const browserAddress = `${subnet}.2`;
  ip("netns", "add", ns);
  try {
    ip("link", "add", near, "type", "veth", "peer", "name", far);
    ip("link", "set", far, "netns", ns);
    ip("addr", "add", `${hostAddress}/24`, "dev", near);
    ip("link", "set", near, "up");
    // No IPv6 link-local address on the browser's side: its duplicate-address check ends a second
    // or so after the link comes up, and Chromium takes that address change as a network change
    // that fails in-flight HTTP/2 requests with ERR_NETWORK_CHANGED (seen in CI on a fast machine).
    ip("-n", ns, "link", "set", far, "addrgenmode", "none");
    ip("-n", ns, "addr", "add", `${browserAddress}/24`, "dev", far);
    ip("-n", ns, "link", "set", far, "up");
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "route", "add", "default", "via", hostAddress);
  } catch (error) {
    removeNetwork(ns, near);
    throw error;
  }
  const dir = tempDir("netns");
  const launcher = join(dir, "chromium-in-netns");
  // Playwright talks to Chromium over inherited pipes, which `ip netns exec` passes through.
  writeFileSync(launcher, `#!/bin/sh\nexec ip netns exec ${ns} ${process.env.CHROMIUM ?? "/usr/bin/chromium"} "$@"\n`);
  chmodSync(launcher, 0o755);
  return { ns, hostAddress, browserAddress, hostInterface: near, launcher, remove: () => removeNetwork(ns, near) };
}

function removeNetwork(ns, near) {
  try {
    ip("link", "del", near);
  } catch {
    // Gone with the namespace already.
  }
  try {
    ip("netns", "del", ns);
  } catch {
    // Never made.
  }
}

/**
 * The usual start of a direct-path suite: a private network, the server on every address (the
 * browser comes over the veth; the first account is made over loopback, which needs no setup
 * code), Chromium inside the network, and a signed-in page with a new device group. The server's
 * `config.toml` may depend on the network's addresses (`serverConfig(network)`). Resolves with
 * `{ network, server, browser, page, errors, msh, groupUrl }`; the caller stops them in `after`.
 */
export async function directStack(admin, group, { serverConfig = (_network) => "", browserArgs = [] } = {}) {
  const network = privateNetwork();
  const server = await startServer({ bind: "0.0.0.0", config: serverConfig(network) });
  const loopback = `https://127.0.0.1:${server.port}`;
  server.url = `https://${network.hostAddress}:${server.port}`;
  const browser = await launchBrowser({
    executablePath: network.launcher,
    // Real host candidates rather than mDNS names (the agent does not resolve `.local`).
    args: ["--disable-features=WebRtcHideLocalIpsWithMdns", ...browserArgs],
  });
  const { page, errors } = await newPage(browser);
  const msh = await createAdminAndGroup(page, server, admin, group, { setupUrl: loopback });
  return { network, server, browser, page, errors, msh, groupUrl: page.url() };
}
