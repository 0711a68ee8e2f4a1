// The console's copy of `common/src/relay/pieces.rs`: messages over PIECE bytes go as a header
// and binary pieces, smaller ones unchanged, and broken framing is an error.
import { describe, expect, it } from "vitest";
import { MAX_MESSAGE, PIECE, PiecesError, PiecesJoiner, splitPayload } from "../src/lib/sessions/directPieces";

const joinAll = (messages: Array<string | Uint8Array<ArrayBuffer>>) => {
  const joiner = new PiecesJoiner();
  return messages.map((m) => joiner.push(m)).filter((m) => m !== null);
};

describe("data-channel pieces", () => {
  it("passes what fits and splits what does not, by UTF-8 bytes", () => {
    const fits = "a".repeat(PIECE);
    expect(splitPayload(fits)).toEqual([fits]);
    const bytes = new Uint8Array(PIECE);
    expect(splitPayload(bytes)).toEqual([bytes]);
    // 40 000 characters of 2 bytes each: fewer characters than PIECE, more bytes.
    const wide = "é".repeat(40_000);
    const messages = splitPayload(wide);
    expect(messages[0]).toBe('{"type":"rtcPieces","parts":2,"text":true}');
    expect(messages.slice(1).every((m) => m instanceof Uint8Array && m.byteLength <= PIECE)).toBe(true);
    expect(joinAll(messages)).toEqual([wide]);
    const big = new Uint8Array(MAX_MESSAGE).map((_, i) => i % 251);
    // Compared byte by byte here: toEqual walks a 1 MiB array so slowly that the test took ~5 s.
    const [joined, after, ...rest] = joinAll([...splitPayload(big), "after"]);
    expect(joined).toBeInstanceOf(Uint8Array);
    const joinedBytes = joined as Uint8Array;
    expect(joinedBytes.byteLength === big.byteLength && big.every((b, i) => b === joinedBytes[i])).toBe(true);
    expect([after, ...rest]).toEqual(["after"]);
  });

  it("refuses broken framing", () => {
    const header = (parts: number) => `{"type":"rtcPieces","parts":${parts},"text":false}`;
    expect(() => new PiecesJoiner().push(header(0))).toThrow(PiecesError);
    expect(() => new PiecesJoiner().push(header(MAX_MESSAGE / PIECE + 1))).toThrow(/parts/);
    const joiner = new PiecesJoiner();
    joiner.push(header(1));
    expect(() => joiner.push(new Uint8Array(PIECE + 1))).toThrow(/larger/);
    const text = new PiecesJoiner();
    text.push('{"type":"rtcPieces","parts":1,"text":true}');
    expect(() => text.push(new Uint8Array([0xff]))).toThrow(/UTF-8/);
    // Starts like a header but is not one: session data.
    expect(new PiecesJoiner().push('{"type":"rtcPieces","nope":1}')).toBe('{"type":"rtcPieces","nope":1}');
  });
});
