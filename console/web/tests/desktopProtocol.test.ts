import { describe, expect, it } from "vitest";
import {
  FLAG_KEY,
  FLAG_MORE,
  FrameAssembler,
  KIND_CURSOR,
  KIND_SNAPSHOT,
  KIND_TILES,
  KIND_VIDEO,
  PICTURE_HEADER_LEN,
  clampSettings,
  parseDesktopEvent,
  readCursor,
  readPictureHeader,
  splitTiles,
} from "../src/lib/sessions/desktopProtocol";
import type { BinaryMessage } from "../src/lib/sessions/desktopProtocol";
import { pictureFrame, tilesPayload } from "./desktopFrames";

function cursorFrame(width: number, height: number, hotX: number, hotY: number, pixels: number): Uint8Array {
  const frame = new Uint8Array(12 + pixels);
  const v = new DataView(frame.buffer);
  v.setUint8(0, KIND_CURSOR);
  v.setUint16(4, width);
  v.setUint16(6, height);
  v.setUint16(8, hotX);
  v.setUint16(10, hotY);
  return frame;
}

const kinds = (messages: BinaryMessage[]) => messages.map((m) => m.kind);

describe("desktop binary frames", () => {
  it("reads a picture header the way the agent writes it", () => {
    const frame = pictureFrame(KIND_VIDEO, FLAG_KEY, 0x01020304, [7, 8, 9], {
      capturedMs: 77,
      encodeUs: 1234,
      width: 1920,
      height: 1080,
    });
    const read = readPictureHeader(frame)!;
    expect(read.header).toEqual({
      kind: KIND_VIDEO,
      flags: FLAG_KEY,
      seq: 0x01020304,
      capturedMs: 77,
      encodeUs: 1234,
      width: 1920,
      height: 1080,
    });
    expect([...read.payload]).toEqual([7, 8, 9]);
    expect(readPictureHeader(frame.subarray(0, 19)), "19 bytes are too short").toBeNull();
    const cursor = frame.slice();
    cursor[0] = KIND_CURSOR;
    expect(readPictureHeader(cursor), "a cursor is not a picture").toBeNull();
    // Big-endian, and unsigned: the top bit of seq is not a sign.
    expect(readPictureHeader(pictureFrame(KIND_TILES, 0, 0xfffffffe, []))!.header.seq).toBe(0xfffffffe);
  });

  it("splits tiles and refuses truncated ones", () => {
    const payload = tilesPayload([
      { x: 0, y: 8, w: 64, h: 64, jpeg: [1, 2, 3] },
      { x: 64, y: 8, w: 64, h: 64, jpeg: [] },
      { x: 128, y: 8, w: 32, h: 16, jpeg: [9, 9] },
    ]);
    const tiles = splitTiles(payload)!;
    expect(tiles.map((t) => [t.x, t.y, t.width, t.height, [...t.jpeg]])).toEqual([
      [0, 8, 64, 64, [1, 2, 3]],
      [64, 8, 64, 64, []],
      [128, 8, 32, 16, [9, 9]],
    ]);
    expect(splitTiles(payload.subarray(0, payload.length - 1)), "the last JPEG is cut").toBeNull();
    expect(splitTiles(payload.subarray(0, 5)), "a cut tile header").toBeNull();
    expect(splitTiles(new Uint8Array()), "no tiles at all is fine").toEqual([]);
    // Works on a view into a larger buffer (the picture's payload is one).
    const framed = pictureFrame(KIND_TILES, FLAG_KEY, 1, payload);
    expect(splitTiles(readPictureHeader(framed)!.payload)!.length).toBe(3);
  });

  it("checks a cursor's pixel count", () => {
    const cursor = readCursor(cursorFrame(2, 1, 1, 0, 8))!;
    expect(cursor).toMatchObject({ width: 2, height: 1, hotX: 1, hotY: 0 });
    expect(cursor.pixels.length).toBe(8);
    expect(readCursor(cursorFrame(2, 1, 1, 0, 7))).toBeNull();
    expect(readCursor(new Uint8Array([KIND_CURSOR, 0, 0]))).toBeNull();
  });
});

describe("joining split pictures", () => {
  it("passes whole pictures through and joins FLAG_MORE parts in order", () => {
    const assembler = new FrameAssembler();
    const whole = assembler.push(pictureFrame(KIND_VIDEO, FLAG_KEY, 1, [1, 2]));
    expect(whole).toHaveLength(1);
    expect(whole[0]).toMatchObject({ kind: "picture", picture: { header: { seq: 1, flags: FLAG_KEY } } });

    expect(kinds(assembler.push(pictureFrame(KIND_VIDEO, FLAG_KEY | FLAG_MORE, 2, [1, 2, 3])))).toEqual(["partial"]);
    expect(kinds(assembler.push(pictureFrame(KIND_VIDEO, FLAG_KEY | FLAG_MORE, 2, [4])))).toEqual(["partial"]);
    // A cursor between the parts does not disturb them.
    expect(kinds(assembler.push(cursorFrame(1, 1, 0, 0, 4)))).toEqual(["cursor"]);
    const done = assembler.push(pictureFrame(KIND_VIDEO, FLAG_KEY, 2, [5, 6], { width: 10, height: 20 }));
    expect(kinds(done)).toEqual(["picture"]);
    const picture = (done[0] as Extract<BinaryMessage, { kind: "picture" }>).picture;
    expect([...picture.payload]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(picture.header.flags & FLAG_MORE, "the joined picture has no FLAG_MORE").toBe(0);
    expect(picture.header.flags & FLAG_KEY).toBe(FLAG_KEY);
    expect(picture.header).toMatchObject({ width: 10, height: 20 });
    expect(picture.wireBytes).toBe(3 * PICTURE_HEADER_LEN + 6);
  });

  it("reports a picture cut short with its seq, and starts the next afresh", () => {
    const assembler = new FrameAssembler();
    assembler.push(pictureFrame(KIND_VIDEO, FLAG_MORE, 7, [1, 2]));
    const next = assembler.push(pictureFrame(KIND_VIDEO, 0, 8, [3]));
    expect(next[0]).toEqual({ kind: "malformed", reason: "a split picture was cut short", seq: 7 });
    expect(next[1]).toMatchObject({ kind: "picture", picture: { header: { seq: 8 } } });
    expect([...(next[1] as Extract<BinaryMessage, { kind: "picture" }>).picture.payload]).toEqual([3]);
    // Another kind with the same seq is another picture too.
    assembler.push(pictureFrame(KIND_TILES, FLAG_MORE, 9, [1]));
    expect(kinds(assembler.push(pictureFrame(KIND_VIDEO, 0, 9, [2])))).toEqual(["malformed", "picture"]);
  });

  it("joins snapshots apart from pictures", () => {
    const assembler = new FrameAssembler();
    expect(kinds(assembler.push(new Uint8Array([KIND_SNAPSHOT, FLAG_MORE, 0x89, 0x50])))).toEqual(["partial"]);
    expect(kinds(assembler.push(pictureFrame(KIND_VIDEO, 0, 3, [1])))).toEqual(["picture"]);
    const done = assembler.push(new Uint8Array([KIND_SNAPSHOT, 0, 0x4e, 0x47]));
    expect(done).toEqual([{ kind: "snapshot", png: new Uint8Array([0x89, 0x50, 0x4e, 0x47]) }]);
    expect(kinds(assembler.push(new Uint8Array([KIND_SNAPSHOT])))).toEqual(["malformed"]);
  });

  it("names malformed frames instead of throwing", () => {
    const assembler = new FrameAssembler();
    expect(assembler.push(new Uint8Array())).toEqual([{ kind: "malformed", reason: "empty binary frame" }]);
    expect(assembler.push(new Uint8Array([99, 0]))).toEqual([{ kind: "malformed", reason: "unknown frame kind 99" }]);
    expect(assembler.push(new Uint8Array([KIND_VIDEO, 0, 0]))).toEqual([{ kind: "malformed", reason: "short picture header" }]);
    expect(kinds(assembler.push(cursorFrame(4, 4, 0, 0, 3)))).toEqual(["malformed"]);
  });
});

describe("desktop text frames", () => {
  it("parses the agent's events", () => {
    const stream = {
      type: "stream",
      codec: "h264",
      codecString: "avc1.42e01f",
      width: 1280,
      height: 800,
      quality: 60,
      fps: 30,
      viewOnly: true,
    };
    // Absent `track`: the pictures come in band.
    expect(parseDesktopEvent({ ...stream })).toEqual({ ...stream, track: false });
    expect(parseDesktopEvent({ ...stream, track: true })).toEqual({ ...stream, track: true });
    expect(parseDesktopEvent({ type: "stream", codec: "av1", codecString: "av01", width: 1, height: 1 })).toBeNull();
    expect(
      parseDesktopEvent({
        type: "displays",
        displays: [{ id: 0, name: "HDMI-1", x: 0, y: 0, width: 1920, height: 1080, primary: true }],
        selected: "all",
      }),
    ).toMatchObject({ type: "displays", selected: "all", displays: [{ name: "HDMI-1", primary: true }] });
    expect(parseDesktopEvent({ type: "displays", displays: [{ id: 0 }], selected: 0 })).toBeNull();
    expect(parseDesktopEvent({ type: "displays", displays: [], selected: "left" })).toBeNull();
    expect(parseDesktopEvent({ type: "pointer", x: 5, y: -1 })).toEqual({ type: "pointer", x: 5, y: -1 });
    expect(parseDesktopEvent({ type: "pointer", x: "5", y: 1 })).toBeNull();
    expect(parseDesktopEvent({ type: "pong", t: 12 })).toEqual({ type: "pong", t: 12 });
    expect(parseDesktopEvent({ type: "pong", t: 12, captureUs: 900, encodeUs: 4100 })).toEqual({
      type: "pong",
      t: 12,
      captureUs: 900,
      encodeUs: 4100,
    });
    // A malformed timing is dropped; the pong still counts.
    expect(parseDesktopEvent({ type: "pong", t: 12, captureUs: "<b>", encodeUs: null })).toEqual({ type: "pong", t: 12 });
    expect(parseDesktopEvent({ type: "clipboard", text: "ä" })).toEqual({ type: "clipboard", text: "ä" });
    expect(parseDesktopEvent({ type: "notice", message: "view only" })).toEqual({ type: "notice", message: "view only" });
    expect(parseDesktopEvent({ type: "error" })).toEqual({ type: "error", message: "unknown error" });
    expect(parseDesktopEvent({ type: "teleport" })).toBeNull();
  });

  it("clamps settings into the agent's ranges", () => {
    expect(clampSettings({ quality: 200, fps: 0, codec: "vp8" })).toEqual({ quality: 100, fps: 1, codec: "vp8" });
    expect(clampSettings({ quality: 55.6 })).toEqual({ quality: 56 });
    expect(clampSettings({})).toEqual({});
  });
});
