import { decodePerFrameMs } from "../src/lib/sessions/desktopTrack";
import { describe, expect, it } from "vitest";
import type { RelayChannel } from "../src/lib/sessions/relay";
import { DesktopSession, KEYFRAME_RETRY_MS, PING_INTERVAL_MS } from "../src/lib/sessions/desktopSession";
import type { DesktopHandlers } from "../src/lib/sessions/desktopSession";
import { FLAG_KEY, FLAG_MORE, KIND_TILES, KIND_VIDEO } from "../src/lib/sessions/desktopProtocol";
import type { Picture, StreamInfo } from "../src/lib/sessions/desktopProtocol";
import { DesktopStats, formatFigures } from "../src/lib/sessions/desktopStats";
import { chooseCodec, fallbackCodec, supportedCodecs } from "../src/lib/sessions/desktopCodecs";
import { DEFAULT_PREFS, parsePrefs } from "../src/lib/sessions/desktopPrefs";
import { parseRoute, routePath } from "../src/lib/routes";
import { FakeTimers } from "./fakeSocket";
import { pictureFrame } from "./desktopFrames";

class FakeChannel implements RelayChannel {
  json: Array<Record<string, unknown>> = [];
  bufferedAmount = 0;
  sendJson(message: object): void {
    this.json.push(message as Record<string, unknown>);
  }
  sendBytes(): void {
    throw new Error("a desktop viewer sends no binary frames");
  }
  ofType(type: string): Array<Record<string, unknown>> {
    return this.json.filter((m) => m.type === type);
  }
}

const STREAM: StreamInfo = {
  codec: "h264",
  codecString: "avc1.42e01f",
  width: 640,
  height: 480,
  quality: 60,
  fps: 30,
  viewOnly: false,
  track: false,
};

function setup() {
  const channel = new FakeChannel();
  const timers = new FakeTimers();
  const seen: string[] = [];
  const pictures: Picture[] = [];
  const handlers: DesktopHandlers = {
    stream: (info) => seen.push(`stream:${info.codec}:${info.viewOnly}`),
    displays: (list, selected) => seen.push(`displays:${list.length}:${selected}`),
    picture: (picture) => pictures.push(picture),
    cursor: (shape) => seen.push(`cursor:${shape.width}`),
    pointer: (x, y) => seen.push(`pointer:${x},${y}`),
    clipboard: (text) => seen.push(`clipboard:${text}`),
    snapshot: (png) => seen.push(`snapshot:${png.length}`),
    notice: (message) => seen.push(`notice:${message}`),
    error: (message) => seen.push(`error:${message}`),
  };
  const session = new DesktopSession(channel, handlers, () => timers.now, timers);
  return { channel, timers, seen, pictures, session };
}

describe("desktop session", () => {
  it("starts with the display and clamped settings, then pings every 2 s", () => {
    const { channel, timers, session } = setup();
    timers.now = 1000;
    session.start("all", { codec: "vp8", quality: 500, fps: 30 });
    expect(channel.json[0]).toEqual({ type: "start", display: "all", codec: "vp8", quality: 100, fps: 30 });
    expect(channel.json[1], "a first ping at once").toEqual({ type: "ping", t: 1_000_000 });
    timers.advance(PING_INTERVAL_MS);
    timers.advance(PING_INTERVAL_MS);
    expect(channel.ofType("ping").map((m) => m.t)).toEqual([1_000_000, 3_000_000, 5_000_000]);
    // The pong carries the viewer's own clock back: the round trip is now − t.
    timers.now = 5_012.5;
    session.handleMessage({ type: "pong", t: 5_000_000, captureUs: 1500 });
    expect(session.stats.figures(timers.now).rttMs).toBeCloseTo(12.5);
    expect(session.stats.figures(timers.now).captureMs).toBe(1.5);
    session.close();
    timers.advance(10 * PING_INTERVAL_MS);
    expect(channel.ofType("ping")).toHaveLength(3);
  });

  it("hands typed events to the viewer and ignores unknown ones", () => {
    const { seen, session } = setup();
    session.handleMessage({ ...STREAM, type: "stream" });
    session.handleMessage({ type: "displays", displays: [], selected: 2 });
    session.handleMessage({ type: "pointer", x: 3, y: 4 });
    session.handleMessage({ type: "clipboard", text: "hi" });
    session.handleMessage({ type: "notice", message: "input refused" });
    session.handleMessage({ type: "error", message: "no display" });
    session.handleMessage({ type: "futureThing" });
    expect(seen).toEqual([
      "stream:h264:false",
      "displays:0:2",
      "pointer:3,4",
      "clipboard:hi",
      "notice:input refused",
      "error:no display",
    ]);
    expect(session.stream).toMatchObject({ width: 640, height: 480 });
  });

  it("acknowledges drawn pictures, and dropped ones with one key frame request", () => {
    const { channel, timers, pictures, session } = setup();
    session.handleMessage({ ...STREAM, type: "stream" });
    session.handleBytes(pictureFrame(KIND_VIDEO, FLAG_KEY, 1, [0, 0, 0, 1], { encodeUs: 4000 }));
    expect(pictures.map((p) => p.header.seq)).toEqual([1]);
    timers.now = 10;
    session.drawn(1, 3);
    expect(channel.json).toEqual([{ type: "ack", seq: 1 }]);

    session.dropped(2);
    session.dropped(3);
    expect(channel.json.slice(1)).toEqual([{ type: "ack", seq: 2 }, { type: "keyframe" }, { type: "ack", seq: 3 }]);
    timers.now += KEYFRAME_RETRY_MS;
    session.dropped(4);
    expect(channel.ofType("keyframe"), "asked again after a while").toHaveLength(2);
    // A key frame arriving settles it: the next drop asks at once.
    session.handleBytes(pictureFrame(KIND_VIDEO, FLAG_KEY, 5, [1]));
    session.dropped(5);
    expect(channel.ofType("keyframe")).toHaveLength(3);
    // Pictures of a replaced stream are acknowledged without asking.
    session.dropped(6, false);
    expect(channel.ofType("keyframe")).toHaveLength(3);
    expect(channel.json.at(-1)).toEqual({ type: "ack", seq: 6 });
  });

  it("acknowledges a split picture that was cut short, so the window moves on", () => {
    const { channel, pictures, session } = setup();
    session.handleBytes(pictureFrame(KIND_TILES, FLAG_KEY | FLAG_MORE, 9, [1, 2]));
    expect(pictures).toEqual([]);
    session.handleBytes(pictureFrame(KIND_TILES, 0, 10, [3]));
    expect(channel.json).toEqual([{ type: "ack", seq: 9 }, { type: "keyframe" }]);
    expect(pictures.map((p) => p.header.seq)).toEqual([10]);
  });

  it("sends input only once a stream allows it", () => {
    const { channel, session } = setup();
    expect(session.input({ type: "mouseMove", x: 1, y: 1 }), "no stream yet").toBe(false);
    session.handleMessage({ ...STREAM, type: "stream", viewOnly: true });
    expect(session.input({ type: "key", code: "KeyA", down: true })).toBe(false);
    expect(session.input({ type: "combo", codes: ["MetaLeft"] })).toBe(false);
    expect(session.clipboardSet("x")).toBe(false);
    expect(channel.json).toEqual([]);
    // Asking for the remote clipboard or a snapshot is watching, not input.
    session.clipboardGet();
    session.snapshot();
    expect(channel.json).toEqual([{ type: "clipboardGet" }, { type: "snapshot" }]);

    session.handleMessage({ ...STREAM, type: "stream", viewOnly: false });
    expect(session.input({ type: "mouseButton", button: "left", down: true })).toBe(true);
    expect(session.input({ type: "text", text: "" }), "empty text is not sent").toBe(false);
    session.settings({ fps: 90 });
    session.settings({});
    session.display(1);
    expect(channel.json.slice(2)).toEqual([
      { type: "mouseButton", button: "left", down: true },
      { type: "settings", fps: 60 },
      { type: "display", display: 1 },
    ]);
  });

  it("passes cursors and snapshots on", () => {
    const { seen, session } = setup();
    const cursor = new Uint8Array(12 + 4);
    cursor[0] = 3;
    cursor[5] = 1; // width 1
    cursor[7] = 1; // height 1
    session.handleBytes(cursor);
    session.handleBytes(new Uint8Array([4, 0, 1, 2, 3]));
    expect(seen).toEqual(["cursor:1", "snapshot:3"]);
  });
});

describe("desktop stats", () => {
  it("counts frames and bits over the window", () => {
    const stats = new DesktopStats(2000);
    for (let i = 0; i < 60; i++) {
      stats.pictureReceived(i * 50 + 25, 10_000, 2000 + i);
      stats.pictureDrawn(i * 50 + 25, 4);
    }
    // At 3 s the window holds what came after 1 s: frames 20..59.
    const f = stats.figures(3000);
    expect(f.fps).toBe(20);
    expect(f.kbps).toBe((40 * 10_000 * 8) / 1000 / 2);
    expect(f.decodeMs).toBe(4);
    expect(f.encodeMs).toBeCloseTo(2.0 + 39.5 / 1000, 5);
    expect(f.rttMs).toBeNull();
    stats.pong(3100, 3090);
    expect(stats.figures(3100).rttMs).toBe(10);
    expect(stats.figures(10_000)).toMatchObject({ fps: 0, kbps: 0, decodeMs: null, encodeMs: null });
    const none = { captureMs: null, networkMs: null, latencyMs: null };
    expect(formatFigures({ fps: 29.6, kbps: 12_345, soundKbps: 64.4, rttMs: 3.25, decodeMs: null, encodeMs: 12.4, ...none })).toEqual({
      fps: "30",
      bitrate: "12.3 Mbit/s",
      sound: "64 kbit/s",
      rtt: "3.3 ms",
      capture: "–",
      encode: "12 ms",
      network: "–",
      decode: "–",
      latency: "–",
    });
    expect(formatFigures({ fps: 2.5, kbps: 800.4, soundKbps: 0, rttMs: null, decodeMs: 0.5, encodeMs: null, ...none }).bitrate).toBe("800 kbit/s");
  });

  it("splits the latency into capture, encode, network and decode", () => {
    const stats = new DesktopStats(2000);
    // Pictures on the video track have no headers: only the pong says what the agent spent.
    stats.pictureDrawn(1000, 3);
    expect(stats.figures(1000)).toMatchObject({ captureMs: null, encodeMs: null, networkMs: null, latencyMs: null });
    stats.pong(1020, 1000, { captureUs: 2500, encodeUs: 6000 });
    expect(stats.figures(1020)).toMatchObject({ captureMs: 2.5, encodeMs: 6, networkMs: 10, decodeMs: 3, latencyMs: 21.5 });
    // In band, the pictures' own encode times win over the pong's.
    stats.pictureReceived(1030, 1000, 4000);
    expect(stats.figures(1030).encodeMs).toBe(4);
    expect(stats.figures(1030).latencyMs).toBe(19.5);
    // A pong without timings (an older agent) keeps the last ones; a reset forgets them.
    stats.pong(1060, 1050);
    expect(stats.figures(1060)).toMatchObject({ captureMs: 2.5, networkMs: 5 });
    stats.reset();
    expect(stats.figures(1060)).toMatchObject({ captureMs: null, encodeMs: null, rttMs: null, latencyMs: null });
  });
});

describe("codec choice", () => {
  const probe = (yes: string[]) => ({
    isConfigSupported: async ({ codec }: { codec: string }) => {
      if (codec === "boom") throw new Error("bad");
      return { supported: yes.includes(codec) };
    },
  });

  it("prefers H.264, then VP8, and always has JPEG", async () => {
    expect(await supportedCodecs(probe(["avc1.42e01f", "vp8"]))).toEqual(["h264", "vp8", "jpeg"]);
    expect(await supportedCodecs(probe(["vp8"]))).toEqual(["vp8", "jpeg"]);
    expect(await supportedCodecs(undefined), "no WebCodecs").toEqual(["jpeg"]);
    expect(chooseCodec(["h264", "vp8", "jpeg"], "auto")).toBe("h264");
    expect(chooseCodec(["vp8", "jpeg"], "h264"), "a choice this browser lacks").toBe("vp8");
    expect(chooseCodec(["h264", "vp8", "jpeg"], "jpeg")).toBe("jpeg");
    expect(fallbackCodec(["h264", "vp8", "jpeg"], "h264")).toBe("vp8");
    expect(fallbackCodec(["h264", "jpeg"], "h264")).toBe("jpeg");
    expect(fallbackCodec(["jpeg"], "jpeg")).toBeNull();
  });

  it("reads stored preferences defensively", () => {
    expect(parsePrefs(null)).toEqual(DEFAULT_PREFS);
    expect(parsePrefs("not json")).toEqual(DEFAULT_PREFS);
    expect(parsePrefs('{"codec":"jpeg","quality":300,"fps":24,"scale":"actual","stats":true}')).toEqual({
      codec: "jpeg",
      quality: 100,
      fps: 24,
      scale: "actual",
      stats: true,
    });
    expect(parsePrefs('{"codec":"av1","fps":"fast"}')).toMatchObject({ codec: "auto", fps: 30 });
  });
});

describe("the desktop tab's route", () => {
  it("is /devices/ID/desktop", () => {
    expect(parseRoute("/devices/d1/desktop")).toEqual({ screen: "device", id: "d1", tab: "desktop" });
    expect(routePath({ screen: "device", id: "d 1", tab: "desktop" })).toBe("/devices/d%201/desktop");
  });
});

describe("decode time of track frames", () => {
  it("is the stack's decode time per frame between two readings", () => {
    const before = { bytesReceived: 0, totalDecodeTime: 1.5, framesDecoded: 100 };
    expect(decodePerFrameMs(before, { bytesReceived: 9, totalDecodeTime: 1.53, framesDecoded: 110 })).toBeCloseTo(3);
    expect(decodePerFrameMs(before, { bytesReceived: 9, totalDecodeTime: 1.5, framesDecoded: 100 })).toBeNull();
    expect(decodePerFrameMs({ bytesReceived: 0 }, { bytesReceived: 5 })).toBeNull();
  });
});

describe("the device's sound", () => {
  it("parses audio frames and events, and asks for sound on and off", async () => {
    const { FrameAssembler } = await import("../src/lib/sessions/desktopProtocol");
    const frame = new Uint8Array([5, 0, 0x01, 0x02, 0, 0, 0x03, 0xe8, 0xaa, 0xbb]);
    expect(new FrameAssembler().push(frame)).toEqual([{ kind: "audio", seq: 0x0102, capturedMs: 1000, packet: new Uint8Array([0xaa, 0xbb]) }]);
    expect(new FrameAssembler().push(frame.subarray(0, 8))).toEqual([{ kind: "malformed", reason: "short audio frame" }]);
    const { parseDesktopEvent } = await import("../src/lib/sessions/desktopProtocol");
    expect(parseDesktopEvent({ type: "audio", on: true, channels: 2 })).toEqual({ type: "audio", on: true, source: "output", channels: 2 });
    expect(parseDesktopEvent({ type: "audio", on: false, source: "microphone", why: "not allowed" })).toEqual({
      type: "audio",
      on: false,
      source: "microphone",
      why: "not allowed",
    });
    expect(parseDesktopEvent({ type: "audio", on: "yes" })).toBeNull();
  });

  it("schedules sound a little ahead and starts over rather than drift", async () => {
    const { nextStart, LEAD_S, MAX_AHEAD_S } = await import("../src/lib/sessions/desktopAudio");
    // Nothing scheduled: start LEAD_S ahead.
    expect(nextStart(10, 0)).toEqual({ at: 10 + LEAD_S, restarted: true });
    // Back to back while on time.
    expect(nextStart(10, 10.05)).toEqual({ at: 10.05, restarted: false });
    // Fell behind (a gap in the packets) or ran too far ahead: start over.
    expect(nextStart(10, 9.99).restarted).toBe(true);
    expect(nextStart(10, 10 + MAX_AHEAD_S + 0.01)).toEqual({ at: 10 + LEAD_S, restarted: true });
  });
});
