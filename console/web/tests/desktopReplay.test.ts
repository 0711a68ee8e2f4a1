import { describe, expect, it } from "vitest";
import { parseRecording } from "../src/lib/recording";
import { DesktopReplay } from "../src/lib/sessions/desktopReplay";
import { FLAG_KEY, FLAG_MORE, KIND_VIDEO } from "../src/lib/sessions/desktopProtocol";
import type { Picture, StreamInfo } from "../src/lib/sessions/desktopProtocol";
import { pictureFrame } from "./desktopFrames";

const STREAM = { type: "stream", codec: "h264", codecString: "avc1.42e01f", width: 640, height: 480, viewOnly: true };

/** A recording file as the server writes it (common/src/recording.rs). */
function recordingBytes(frames: Array<{ fromDevice: boolean; atMs: number; payload: string | Uint8Array }>): Uint8Array {
  const parts: Uint8Array[] = [new TextEncoder().encode(`${JSON.stringify({ version: 1, kind: "desktop" })}\n`)];
  for (const frame of frames) {
    const payload = typeof frame.payload === "string" ? new TextEncoder().encode(frame.payload) : frame.payload;
    const head = new Uint8Array(10);
    const v = new DataView(head.buffer);
    v.setUint8(0, frame.fromDevice ? 1 : 0);
    v.setUint8(1, typeof frame.payload === "string" ? 0 : 1);
    v.setUint32(2, frame.atMs);
    v.setUint32(6, payload.length);
    parts.push(head, payload);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function sink() {
  const seen: string[] = [];
  return {
    seen,
    configure: (info: StreamInfo) => seen.push(`stream:${info.width}`),
    draw: (picture: Picture) => seen.push(`${picture.header.flags & FLAG_KEY ? "key" : "delta"}:${picture.header.seq}`),
  };
}

const video = (flags: number, seq: number) => pictureFrame(KIND_VIDEO, flags, seq, [seq]);

const FILE = recordingBytes([
  { fromDevice: false, atMs: 0, payload: '{"type":"start"}' },
  { fromDevice: true, atMs: 0, payload: JSON.stringify(STREAM) },
  { fromDevice: true, atMs: 10, payload: video(FLAG_KEY, 1) },
  { fromDevice: true, atMs: 40, payload: video(0, 2) },
  { fromDevice: false, atMs: 10_000, payload: '{"type":"keyframe"}' },
  // A key picture in two pieces: one seek point, at its first piece.
  { fromDevice: true, atMs: 10_020, payload: video(FLAG_KEY | FLAG_MORE, 3) },
  { fromDevice: true, atMs: 10_021, payload: video(FLAG_KEY, 3) },
  { fromDevice: true, atMs: 10_050, payload: video(0, 4) },
  { fromDevice: true, atMs: 10_090, payload: video(0, 5) },
]);

describe("recorded desktop sessions", () => {
  it("reads the file's frames and notices one cut short", () => {
    const recording = parseRecording(FILE);
    expect(recording.header.kind).toBe("desktop");
    expect(recording.frames).toHaveLength(9);
    expect(recording.truncated).toBe(false);
    const cut = parseRecording(FILE.subarray(0, FILE.length - 3));
    expect(cut.frames).toHaveLength(8);
    expect(cut.truncated).toBe(true);
    expect(() => parseRecording(new TextEncoder().encode('{"version":9}\n'))).toThrow();
  });

  it("plays the agent's frames in time order", () => {
    const out = sink();
    const replay = new DesktopReplay(parseRecording(FILE).frames, out);
    expect(replay.durationMs).toBe(10_090);
    expect(replay.seekPoints).toEqual([10, 10_020]);
    replay.advanceTo(40);
    expect(out.seen).toEqual(["stream:640", "key:1", "delta:2"]);
    replay.advanceTo(10_060);
    expect(out.seen.slice(3)).toEqual(["key:3", "delta:4"]);
  });

  it("seeks from the last key picture, forward and back", () => {
    const out = sink();
    const replay = new DesktopReplay(parseRecording(FILE).frames, out);
    // Forward past a key picture: jumps to it rather than decoding what lies before.
    replay.seek(10_060);
    expect(out.seen).toEqual(["stream:640", "key:3", "delta:4"]);
    out.seen.length = 0;
    // Back: from the earlier key picture, with its stream event.
    replay.seek(20);
    expect(out.seen).toEqual(["stream:640", "key:1"]);
    out.seen.length = 0;
    // Forward within the same stretch: just what follows.
    replay.seek(45);
    expect(out.seen).toEqual(["delta:2"]);
    out.seen.length = 0;
    // Before the first key picture: that picture, the first thing there is to see.
    replay.seek(0);
    expect(out.seen).toEqual(["stream:640", "key:1"]);
  });
});
