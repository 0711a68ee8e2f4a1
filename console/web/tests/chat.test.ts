import { describe, expect, it } from "vitest";
import { ChatSession, FILE_CHUNK, asChatMessage, type FileLike } from "../src/lib/sessions/chat";
import type { RelayChannel } from "../src/lib/sessions/relay";

/** Two chat sides joined by an in-memory pipe that keeps frame order, as the relay does. */
function pair() {
  const log: Array<{ from: "a" | "b"; frame: object | Uint8Array }> = [];
  const sides: { a?: ChatSession; b?: ChatSession } = {};
  const channel = (from: "a" | "b"): RelayChannel => ({
    bufferedAmount: 0,
    sendJson(message) {
      log.push({ from, frame: message });
      const to = from === "a" ? sides.b : sides.a;
      to?.onMessage(JSON.parse(JSON.stringify(message)) as Record<string, unknown>);
    },
    sendBytes(bytes) {
      log.push({ from, frame: bytes });
      (from === "a" ? sides.b : sides.a)?.onBytes(bytes.slice());
    },
  });
  const noPause = () => Promise.resolve();
  sides.a = new ChatSession(channel("a"), "alice <alice@example.org>", { onChange() {} }, noPause);
  sides.b = new ChatSession(channel("b"), "the person at pc-7", { onChange() {} }, noPause);
  return { a: sides.a, b: sides.b, log };
}

function fileOf(bytes: Uint8Array, name = "report.bin"): FileLike {
  return {
    name,
    size: bytes.length,
    slice: (start, end) => ({ arrayBuffer: async () => bytes.slice(start, end).buffer }),
  };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

describe("chat session", () => {
  it("introduces both sides and carries text both ways, as text", () => {
    const { a, b } = pair();
    a.paired();
    b.paired();
    expect(b.peerName).toBe("alice <alice@example.org>");
    expect(a.peerName).toBe("the person at pc-7");
    a.sendText("  <img src=x onerror=alert(1)>  ");
    b.sendText("hello");
    const textOf = (s: ChatSession) => s.entries.filter((e) => e.kind === "text").map((e) => (e.kind === "text" ? `${e.from}:${e.text}` : ""));
    expect(textOf(b)).toEqual(["peer:<img src=x onerror=alert(1)>", "me:hello"]);
    expect(textOf(a)).toEqual(["me:<img src=x onerror=alert(1)>", "peer:hello"]);
    expect(a.sendText("   ")).toBe(false);
  });

  it("shows typing until the text arrives", () => {
    const { a, b } = pair();
    a.setTyping(true);
    a.setTyping(true);
    expect(b.peerTyping).toBe(true);
    a.sendText("done");
    expect(b.peerTyping).toBe(false);
  });

  it("sends a file only after it is accepted, in chunks, and the receiver gets the same bytes", async () => {
    const { a, b, log } = pair();
    const bytes = new Uint8Array(FILE_CHUNK * 2 + 123).map((_, i) => (i * 7) & 0xff);
    const sent = a.offerFile(fileOf(bytes));
    const offered = b.entries.find((e) => e.kind === "file");
    expect(offered?.kind === "file" && offered.transfer.state).toBe("offered");
    expect(log.some((l) => l.frame instanceof Uint8Array)).toBe(false);
    b.accept(sent.id);
    for (let i = 0; i < 10 && sent.state !== "complete"; i++) await settle();
    expect(sent.state).toBe("complete");
    const received = offered?.kind === "file" ? offered.transfer : null;
    expect(received?.state).toBe("complete");
    expect(log.filter((l) => l.frame instanceof Uint8Array)).toHaveLength(3);
    const got = new Uint8Array(await received!.blob!.arrayBuffer());
    expect(got).toEqual(bytes);
  });

  it("a declined file never flows and a cancelled one stops both sides", async () => {
    const { a, b, log } = pair();
    const declined = a.offerFile(fileOf(new Uint8Array(10)));
    b.decline(declined.id);
    expect(declined.state).toBe("declined");
    const cancelled = a.offerFile(fileOf(new Uint8Array(10), "other"));
    a.cancel(cancelled.id);
    const seen = b.entries.filter((e) => e.kind === "file").map((e) => (e.kind === "file" ? e.transfer.state : ""));
    expect(seen).toEqual(["declined", "cancelled"]);
    await settle();
    expect(log.some((l) => l.frame instanceof Uint8Array)).toBe(false);
  });

  it("refuses more bytes than offered, and a leaving side fails what is under way", () => {
    const { a, b } = pair();
    b.onMessage({ type: "fileOffer", id: 9, name: "x", size: 2 });
    b.accept(9);
    b.onBytes(new Uint8Array([0, 0, 0, 9, 1, 2, 3]));
    const entry = b.entries.find((e) => e.kind === "file");
    expect(entry?.kind === "file" && entry.transfer.state).toBe("failed");
    a.offerFile(fileOf(new Uint8Array(5)));
    b.onMessage({ type: "bye" });
    expect(b.entries.at(-1)).toMatchObject({ kind: "notice", text: "The other side left the chat." });
  });

  it("drops malformed frames", () => {
    for (const bad of [{}, { type: "text" }, { type: "text", id: -1, text: "x" }, { type: "fileOffer", id: 1, name: "", size: 1 }, { type: "shell", cmd: "rm" }]) {
      expect(asChatMessage(bad as Record<string, unknown>)).toBeNull();
    }
  });
});
