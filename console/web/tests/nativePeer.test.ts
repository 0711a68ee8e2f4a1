// The desktop app's peer stand-in (`nativePeer.ts`) against a scripted set of the app's commands:
// the offer comes from Rust with its candidates, messages leave in order and in batches (one
// `rtc_send` in flight), news from Rust drive the channel, and closing waits for what was sent.
// The real commands and str0m are exercised by the app's Xvfb test (`console/tests/`).
import { describe, expect, it } from "vitest";
import type { Channel } from "@tauri-apps/api/core";
import { DirectAttempt } from "../src/lib/sessions/direct";
import { NativePeer, decodeNews, encodeBatch } from "../src/lib/sessions/nativePeer";

type Call = { command: string; args: unknown; headers?: Record<string, string> };

/** The app's commands as a script: each call is recorded and waits until the test releases it. */
class FakeApp {
  calls: Call[] = [];
  private releases: Array<() => void> = [];
  events: { onmessage: (frame: ArrayBuffer) => void } | null = null;
  readonly invoke = (command: string, args?: unknown, options?: { headers: Record<string, string> }) => {
    this.calls.push({ command, args, headers: options?.headers });
    if (command === "rtc_open" || command === "rtc_take") {
      this.events = (args as { events: { onmessage: (frame: ArrayBuffer) => void } }).events;
      return Promise.resolve({ id: 7, sdp: "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.2 50000 typ host\r\n" });
    }
    if (command === "rtc_send") return new Promise<void>((resolve) => this.releases.push(resolve));
    return Promise.resolve(undefined);
  };
  release(): void {
    this.releases.shift()?.();
  }
  tell(tag: number, body: Uint8Array = new Uint8Array()): void {
    const frame = new Uint8Array(1 + body.length);
    frame[0] = tag;
    frame.set(body, 1);
    this.events?.onmessage(frame.buffer);
  }
  sent(): Array<{ peer: string | undefined; batch: Uint8Array }> {
    return this.calls
      .filter((c) => c.command === "rtc_send")
      .map((c) => ({ peer: c.headers?.["tether-peer"], batch: c.args as Uint8Array }));
  }
}

const config = { iceServers: [], relayOnly: false };
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const fakeChannel = () => ({ onmessage: () => undefined }) as unknown as Channel<ArrayBuffer>;

function peerWithApp(): { app: FakeApp; peer: NativePeer } {
  const app = new FakeApp();
  return { app, peer: new NativePeer(config, app.invoke, fakeChannel) };
}

describe("the app's native peer", () => {
  it("offers what Rust made, with its candidates: the attempt does not fail for lack of them", async () => {
    const { app, peer } = peerWithApp();
    const signals: unknown[] = [];
    const failures: string[] = [];
    const attempt = new DirectAttempt(config, { signal: (s) => signals.push(s), onOpen: () => undefined, onMessage: () => undefined, onFailed: (w) => failures.push(w) }, () => peer);
    await tick();
    await tick();
    expect(app.calls[0]).toMatchObject({ command: "rtc_open", args: { config } });
    expect(signals).toEqual([{ type: "rtcOffer", sdp: expect.stringContaining("a=candidate:") }]);
    expect(failures).toEqual([]);
    attempt.close();
  });

  it("sends in order, batching what queued while a batch was in flight", async () => {
    const { app, peer } = peerWithApp();
    const channel = peer.createDataChannel();
    const opened: unknown[] = [];
    channel.onopen = (e) => opened.push(e);
    await peer.createOffer();
    app.tell(1);
    expect(opened).toHaveLength(1);
    expect(channel.readyState).toBe("open");

    channel.send("first");
    channel.send(new Uint8Array([1, 2, 3]));
    channel.send("third");
    expect(channel.bufferedAmount).toBe(5 + 3 + 5);
    await tick();
    // One in flight: the first message alone, the other two wait.
    expect(app.sent()).toEqual([{ peer: "7", batch: encodeBatch(["first"]) }]);
    app.release();
    await tick();
    expect(app.sent()[1]).toEqual({ peer: "7", batch: encodeBatch([new Uint8Array([1, 2, 3]), "third"]) });
    expect(channel.bufferedAmount).toBe(3 + 5);
    app.release();
    await tick();
    expect(channel.bufferedAmount).toBe(0);
  });

  it("hands Rust's messages over as text and ArrayBuffers, and a closed path as a failure", async () => {
    const { app, peer } = peerWithApp();
    const channel = peer.createDataChannel();
    const got: unknown[] = [];
    let closed = 0;
    channel.onmessage = (e) => got.push(e.data);
    channel.onclose = () => (closed += 1);
    const states: string[] = [];
    peer.onconnectionstatechange = () => states.push(peer.connectionState);
    await peer.createOffer();
    app.tell(1);
    app.tell(3, new TextEncoder().encode('{"type":"ü"}'));
    app.tell(4, new Uint8Array([9, 8]));
    app.tell(2, new TextEncoder().encode("ICE failed"));
    expect(got[0]).toBe('{"type":"ü"}');
    expect(new Uint8Array(got[1] as ArrayBuffer)).toEqual(new Uint8Array([9, 8]));
    expect(closed).toBe(1);
    expect(states).toEqual(["connected", "failed"]);
    expect(() => channel.send("late")).toThrow();
  });

  it("closes only once what was sent is out, then ends the Rust peer", async () => {
    const { app, peer } = peerWithApp();
    const channel = peer.createDataChannel();
    let closed = 0;
    channel.onclose = () => (closed += 1);
    await peer.createOffer();
    app.tell(1);
    channel.send("last words");
    await tick();
    peer.close();
    await tick();
    expect(app.calls.map((c) => c.command)).toEqual(["rtc_open", "rtc_send"]);
    app.release();
    await tick();
    await tick();
    expect(app.calls.map((c) => c.command)).toEqual(["rtc_open", "rtc_send", "rtc_close"]);
    expect(app.calls[2]?.args).toEqual({ id: 7 });
    expect(closed).toBe(1);
  });

  it("answers an inviter's offer, and hands over the channel the offerer opened once it is open", async () => {
    const { app, peer } = peerWithApp();
    const signals: unknown[] = [];
    const opened: string[] = [];
    const got: unknown[] = [];
    const attempt = new DirectAttempt(
      config,
      { signal: (s) => signals.push(s), onOpen: () => opened.push("open"), onMessage: (m) => got.push(m), onFailed: (w) => opened.push(`failed ${w}`) },
      () => peer,
      false,
      null,
      "answer",
    );
    attempt.onSignal({ type: "rtcOffer", sdp: "their-offer" });
    await tick();
    await tick();
    expect(app.calls[0]).toMatchObject({ command: "rtc_take", args: { config, offer: "their-offer" } });
    expect(signals).toEqual([{ type: "rtcAnswer", sdp: expect.stringContaining("a=candidate:") }]);
    // A second offer is refused: one description per peer.
    await expect(peer.setRemoteDescription({ type: "offer", sdp: "again" })).rejects.toThrow();
    app.tell(1);
    app.tell(3, new TextEncoder().encode("hello"));
    expect(opened).toEqual(["open"]);
    expect(got).toEqual(["hello"]);
    attempt.close();
  });

  it("reads only the news it knows", () => {
    expect(decodeNews(new ArrayBuffer(0))).toBeNull();
    expect(decodeNews(new Uint8Array([99, 1]).buffer)).toBeNull();
    expect(decodeNews(new Uint8Array([1]).buffer)).toEqual({ kind: "open" });
  });

  it("frames a batch as tag, big-endian length, bytes", () => {
    expect(Array.from(encodeBatch(["hé", new Uint8Array([5])]))).toEqual([3, 0, 0, 0, 3, 0x68, 0xc3, 0xa9, 4, 0, 0, 0, 1, 5]);
  });
});
