// What the messenger's e2e tests share: the stub opener the agent runs instead of xdg-open, and
// the two figures both paths report (message latency, file transfer rate).

import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { recordFigure, until } from "./support.mjs";

/**
 * Writes a stand-in for xdg-open into `dir` that records the URL it is given; resolves with
 * `{ opener, url() }`, `url()` waiting until the agent has run it.
 */
export function stubOpener(dir) {
  const opened = join(dir, "opened-url");
  const opener = join(dir, "opener");
  writeFileSync(opener, `#!/bin/sh\nprintf '%s' "$1" > '${opened}'\n`);
  chmodSync(opener, 0o755);
  const read = () => (existsSync(opened) ? readFileSync(opened, "utf8") : "");
  return { opener, url: () => until(read, (u) => u !== "", "the opener's URL", 30_000) };
}

/**
 * Records `figure`: the median of twenty messages' latency, the sender's clock when it sends to
 * the receiver's when the message is in its page (both pages run on this machine's one clock).
 */
export async function messageLatency(sender, receiver, figure) {
  await receiver.evaluate(() => {
    const arrived = (window.__arrived = new Map());
    new MutationObserver(() => {
      for (const li of document.querySelectorAll("[data-testid=chat-text][data-from=peer]")) {
        const text = li.querySelector(".text")?.textContent ?? "";
        if (text.startsWith("ping-") && !arrived.has(text)) arrived.set(text, Date.now());
      }
    }).observe(document.querySelector("[data-testid=chat-messages]"), { childList: true, subtree: true });
  });
  const samples = [];
  for (let i = 0; i < 20; i++) {
    const text = `ping-${i}`;
    const sent = await sender.evaluate((t) => {
      const box = document.querySelector("[data-testid=chat-input]");
      box.value = t;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      const at = Date.now();
      box.form.requestSubmit();
      return at;
    }, text);
    const got = await until(() => receiver.evaluate((t) => window.__arrived.get(t) ?? 0, text), (at) => at > 0, `${text} to arrive`);
    samples.push(got - sent);
  }
  samples.sort((a, b) => a - b);
  recordFigure(figure, samples[10]);
}

/** Records `figure`: MB/s of a 16 MiB file `from` offers and `to` accepts, accept to last byte. */
export async function transferRate(from, to, figure) {
  const file = { name: `${figure}.bin`, mimeType: "application/octet-stream", buffer: Buffer.alloc(16 * 1024 * 1024, 7) };
  await from.getByTestId("chat-file-input").setInputFiles(file);
  const offer = to.getByTestId("chat-file").filter({ hasText: file.name });
  const started = Date.now();
  await offer.getByTestId("chat-accept").click();
  await offer.and(to.locator("[data-state=complete]")).waitFor({ timeout: 60_000 });
  recordFigure(figure, Math.round((file.buffer.length / 1e6 / ((Date.now() - started) / 1000)) * 10) / 10);
}
