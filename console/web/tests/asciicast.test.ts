import { describe, expect, it } from "vitest";
import { eventIndexAt, parseCast, resizeOf } from "../src/lib/asciicast";

const CAST = [
  '{"version":2,"width":100,"height":30,"timestamp":1}',
  '[0.5,"o","$ "]',
  "not json",
  '[1.25,"r","90x20"]',
  '[2,"o","done\\r\\n"]',
  "",
].join("\n");

describe("asciicast", () => {
  it("reads the header and the events, skipping broken lines", () => {
    const cast = parseCast(CAST);
    expect([cast.width, cast.height, cast.duration]).toEqual([100, 30, 2]);
    expect(cast.events.map((e) => e.kind)).toEqual(["o", "r", "o"]);
    expect(() => parseCast('{"version":1}')).toThrow(/asciicast v2/);
  });

  it("finds where a time falls, for seeking", () => {
    const cast = parseCast(CAST);
    expect(eventIndexAt(cast, 0)).toBe(0);
    expect(eventIndexAt(cast, 0.5)).toBe(1);
    expect(eventIndexAt(cast, 1.9)).toBe(2);
    expect(eventIndexAt(cast, 99)).toBe(3);
  });

  it("reads resize events", () => {
    const cast = parseCast(CAST);
    expect(resizeOf(cast.events[1]!)).toEqual({ cols: 90, rows: 20 });
    expect(resizeOf(cast.events[0]!)).toBeNull();
  });
});
