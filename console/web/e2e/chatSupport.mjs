// What the messenger's e2e tests share: the stub opener the agent runs instead of xdg-open, the
// two figures both paths report (message latency, file transfer rate), and for calls a fake
// microphone's tone and a listener on what a page hears.

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

/** A mono 16-bit 48 kHz WAV of `seconds` of a sine at `hz`. */
export function toneWav(path, hz, seconds) {
  const rate = 48_000;
  const samples = rate * seconds;
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(Math.sin((2 * Math.PI * hz * i) / rate) * 12_000), i * 2);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVEfmt ", 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36);
  header.writeUInt32LE(data.length, 40);
  writeFileSync(path, Buffer.concat([header, data]));
}

/**
 * In a page in a call: an analyser on the call's received sound (`page.evaluate(listenToCall)`). Resolves with the loudest
 * frequency once the tone is heard, and keeps watching (`window.__listener`): when the sound went
 * silent, and when the tone came back.
 */
export function listenToCall() {
  const element = document.querySelector("[data-testid=call-audio]");
  const context = new AudioContext();
  const source = context.createMediaStreamSource(element.srcObject);
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const bins = new Float32Array(analyser.frequencyBinCount);
  const binHz = context.sampleRate / analyser.fftSize;
  const state = (window.__listener = { silentSince: 0, toneAt: 0, peakHz: 0 });
  return new Promise((resolvePromise) => {
    setInterval(() => {
      analyser.getFloatFrequencyData(bins);
      let peak = 0;
      for (let i = 1; i < bins.length; i++) if (bins[i] > bins[peak]) peak = i;
      const loud = bins[peak] > -50;
      if (loud && state.silentSince > 0 && state.toneAt < state.silentSince) state.toneAt = Date.now();
      if (!loud && state.silentSince === 0 && state.peakHz > 0) state.silentSince = Date.now();
      if (loud && state.peakHz === 0) {
        state.peakHz = peak * binHz;
        resolvePromise({ peakHz: state.peakHz });
      }
    }, 5);
  });
}
