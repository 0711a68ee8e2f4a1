// Figures, not a test (`node e2e/figures/throttled-desktop.mjs`, as root, binaries built): a
// 1920×1080 desktop with a moving picture (xprobe --mode motion) on the direct path's H.264 video
// track, while `tc tbf` caps the veth towards the browser at 20, 5, 2 and again 20 Mbit/s. Each
// phase lasts PHASE_S seconds; the stats overlay (2 s average) is read once a second. Printed per
// cap: the median bit rate and frame rate over the phase's last 10 s, when the bit rate first
// settled (stayed within 50-100% of the cap for 5 s in a row), and, for a cap above what the
// content needs (the first phase's median), when the bit rate first came within 90% of that
// rate for 3 s in a row. No added delay: this kernel has no netem, so the round trip is the
// veth's (well under 1 ms); `cargo run -p tether-rtc --example throttled_track` simulates 30 ms.

import { execFileSync } from "node:child_process";
import { directStack } from "../netns.mjs";
import { openOnlineDevice, recordFigure, startAgent, startXprobe, startXvfb, until } from "../support.mjs";

const PHASE_S = Number(process.env.PHASE_S ?? 40);
const CAPS_MBIT = [20, 5, 2, 20];
const SCREEN = { width: 1920, height: 1080 };

const tc = (...args) => execFileSync("tc", args, { stdio: ["ignore", "ignore", "pipe"] });
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : null;
};
/** "2301 kbit/s" or "3.2 Mbit/s" → kbit/s. */
const kbits = (text) => {
  const match = /([\d.]+)\s*(k|M)bit/.exec(text);
  return match ? Number(match[1]) * (match[2] === "M" ? 1000 : 1) : 0;
};

const xvfb = await startXvfb(SCREEN);
const probe = await startXprobe(xvfb.display, { mode: "motion" });
const stack = await directStack({ name: "admin", password: "correct horse battery" }, "Throttled");
const { network, server, browser, page } = stack;
const agent = await startAgent(stack.msh, ["--x-display", xvfb.display]);
const results = [];
try {
  await openOnlineDevice(page, server);
  await page.getByRole("tab", { name: "Desktop" }).click();
  await page.getByTestId("desktop-status").filter({ hasText: "Connected" }).waitFor({ timeout: 30_000 });
  const path = () => page.getByTestId("session-path").getAttribute("data-path");
  await until(path, (p) => p === "direct", "the desktop on the direct path", 30_000);
  await page.getByRole("button", { name: "Stats" }).click();
  const stat = (name) => page.locator(`[data-stat=${name}]`).innerText();
  for (const cap of CAPS_MBIT) {
    // Egress of the host's end of the veth: agent → browser, the video's direction.
    tc("qdisc", "replace", "dev", network.hostInterface, "root", "tbf", "rate", `${cap}mbit`, "burst", "64kb", "latency", "100ms");
    const series = [];
    for (let second = 1; second <= PHASE_S; second++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      series.push({ second, kbit: kbits(await stat("bitrate")), fps: Number(await stat("fps")) });
    }
    const firstRun = (length, ok) =>
      series.find((_, i) => series.slice(i, i + length).length === length && series.slice(i, i + length).every(ok))?.second ?? null;
    const settledAt = firstRun(5, (p) => p.kbit >= cap * 500 && p.kbit <= cap * 1000);
    const content = results[0]?.kbitMedian;
    const contentAt = content && content < cap * 1000 ? firstRun(3, (p) => p.kbit >= content * 0.9) : null;
    const tail = series.slice(-10);
    const row = {
      capMbit: cap,
      kbitMedian: median(tail.map((p) => p.kbit)),
      fpsMedian: median(tail.map((p) => p.fps)),
      settledAfterS: settledAt,
      contentRateAfterS: contentAt,
      series,
    };
    results.push(row);
    console.log(`cap ${cap} Mbit/s: ${row.kbitMedian} kbit/s, ${row.fpsMedian} fps (last 10 s), settled after ${settledAt ?? "—"} s` + (contentAt === null ? "" : `, at the content's rate after ${contentAt} s`));
  }
  recordFigure("direct.desktop.throttled", results.map(({ series, ...rest }) => rest));
} finally {
  try {
    tc("qdisc", "del", "dev", network.hostInterface, "root");
  } catch {
    // Gone with the veth.
  }
  await browser.close();
  await agent.stop();
  await server.stop();
  server.cleanup();
  await probe.stop();
  await xvfb.stop();
  network.remove();
}
