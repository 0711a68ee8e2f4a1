import { describe, expect, it } from "vitest";
import { CONSENT_REFUSED_CODE, RelayConnection, notStartedText, relaySocketUrl } from "../src/lib/sessions/relay";
import type { RelayChannel } from "../src/lib/sessions/relay";
import { FakeRelaySocket } from "./fakeRelaySocket";
import {
  describeEnd,
  encodeBinaryInput,
  encodeInput,
  parseTerminalEnd,
  resizeMessage,
  runAsChoices,
  startMessage,
} from "../src/lib/sessions/terminal";
import { CHUNK_SIZE, FilesError, FilesSession, UPLOAD_WINDOW, chunkRanges } from "../src/lib/sessions/files";
import { breadcrumbs, fileSize, invalidName, joinPath, parentPath, permissions, sortEntries } from "../src/lib/sessions/paths";


/** A channel that records what the session sent; `queued` plays the browser's send queue. */
class FakeChannel implements RelayChannel {
  json: Array<Record<string, unknown>> = [];
  bytes: Uint8Array[] = [];
  bufferedAmount = 0;
  sendJson(message: object): void {
    this.json.push(message as Record<string, unknown>);
  }
  sendBytes(bytes: Uint8Array): void {
    this.bytes.push(bytes);
    this.bufferedAmount += bytes.length;
  }
  last(): Record<string, unknown> {
    return this.json[this.json.length - 1]!;
  }
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

describe("relay connection", () => {
  it("builds the socket URL from the ticket's path", () => {
    expect(relaySocketUrl("/meshrelay.ashx?id=abc", { protocol: "https:", host: "h:8443" })).toBe(
      "wss://h:8443/meshrelay.ashx?id=abc",
    );
    expect(relaySocketUrl("/relay?id=x", { protocol: "http:", host: "h" })).toBe("ws://h/relay?id=x");
    expect(() => relaySocketUrl("wss://elsewhere/x", { protocol: "https:", host: "h" })).toThrow();
  });

  it("starts on 'c', then splits JSON text from binary frames", () => {
    const socket = new FakeRelaySocket();
    const seen: string[] = [];
    const relay = new RelayConnection("wss://h/r", {
      onPaired: () => seen.push("paired"),
      onMessage: (m) => seen.push(`json:${String(m.type)}`),
      onBytes: (b) => seen.push(`bytes:${b.length}`),
      onClosed: (info) => seen.push(`closed:${info.paired}`),
    }, { createSocket: () => socket });
    expect(socket.binaryType).toBe("arraybuffer");
    relay.sendJson({ type: "early" });
    expect(socket.sent, "nothing goes out before the pairing").toEqual([]);
    socket.onmessage?.({ data: new ArrayBuffer(3) }); // ignored before "c"
    socket.onmessage?.({ data: "c" });
    socket.onmessage?.({ data: '{"type":"exit","code":0}' });
    socket.onmessage?.({ data: "not json" });
    socket.onmessage?.({ data: "[1,2]" });
    socket.onmessage?.({ data: new Uint8Array([1, 2, 3, 4]).buffer });
    relay.sendJson({ type: "resize", cols: 1, rows: 2 });
    relay.sendBytes(new Uint8Array([65]));
    expect(socket.sent).toEqual(['{"type":"resize","cols":1,"rows":2}', new Uint8Array([65])]);
    socket.onclose?.({ code: 1000, reason: "" });
    expect(seen).toEqual(["paired", "json:exit", "bytes:4", "closed:true"]);
  });

  it("reports a session that never paired", () => {
    const socket = new FakeRelaySocket();
    let info: { paired: boolean } | null = null;
    new RelayConnection("wss://h/r", {
      onPaired: () => undefined,
      onMessage: () => undefined,
      onBytes: () => undefined,
      onClosed: (i) => (info = i),
    }, { createSocket: () => socket });
    socket.onclose?.({ code: 1006, reason: "" });
    expect(info).toMatchObject({ paired: false });
  });

  it("with a prompt at the device, starts only once the agent says granted", () => {
    const socket = new FakeRelaySocket();
    const seen: string[] = [];
    const relay = new RelayConnection("wss://h/r", {
      onPaired: () => seen.push("paired"),
      onMessage: (m) => seen.push(`json:${String(m.type)}`),
      onBytes: () => undefined,
      onClosed: (info) => seen.push(`closed:${info.paired}:${info.reason}`),
      onConsentAsked: (secs) => seen.push(`asked:${secs}`),
    }, { createSocket: () => socket, consent: "prompt" });
    socket.text("c");
    relay.sendJson({ type: "start" });
    socket.text({ type: "consent", state: "asking", timeoutSecs: 30 });
    socket.text({ type: "other" });
    expect(seen).toEqual(["asked:30"]);
    expect(socket.sent, "nothing is sent before the person accepted").toEqual([]);
    socket.text({ type: "consent", state: "granted", how: "accepted" });
    relay.sendJson({ type: "start" });
    socket.text({ type: "exit", code: 0 });
    expect(seen).toEqual(["asked:30", "paired", "json:exit"]);
    expect(socket.json()).toEqual([{ type: "start" }]);
  });

  it("says why when the person at the device refused", () => {
    const socket = new FakeRelaySocket();
    let info: { paired: boolean; code: number; reason: string } | null = null;
    new RelayConnection("wss://h/r", {
      onPaired: () => undefined,
      onMessage: () => undefined,
      onBytes: () => undefined,
      onClosed: (i) => (info = i),
    }, { createSocket: () => socket, consent: "prompt" });
    socket.text("c");
    socket.text({ type: "error", message: "the person at the device declined the session" });
    socket.onclose?.({ code: CONSENT_REFUSED_CODE, reason: "the person at the device declined the session" });
    expect(info).toMatchObject({ paired: false, code: CONSENT_REFUSED_CODE });
    expect(notStartedText(info!.code, info!.reason)).toBe("The person at the device declined the session.");
    expect(notStartedText(1006, "whatever")).toBe("The device did not join the session.");
  });
});

describe("terminal messages", () => {
  it("encodes start and resize with clamped sizes", () => {
    expect(JSON.stringify(startMessage({ cols: 120, rows: 40 }))).toBe('{"type":"start","cols":120,"rows":40,"pty":true}');
    expect(resizeMessage({ cols: 0, rows: 5000 })).toEqual({ type: "resize", cols: 1, rows: 1000 });
    expect(resizeMessage({ cols: 80.7, rows: Number.NaN })).toEqual({ type: "resize", cols: 80, rows: 1 });
  });

  it("names another account only when one is chosen", () => {
    expect(JSON.stringify(startMessage({ cols: 80, rows: 24 }, "alice"))).toBe(
      '{"type":"start","cols":80,"rows":24,"pty":true,"asUser":"alice"}',
    );
    expect(startMessage({ cols: 80, rows: 24 }, "")).not.toHaveProperty("asUser");
    expect(startMessage({ cols: 80, rows: 24 }, undefined)).not.toHaveProperty("asUser");
  });

  it("offers the logged-in users and keeps the current choice", () => {
    expect(runAsChoices(["bob", "alice", "bob"], "")).toEqual(["alice", "bob"]);
    expect(runAsChoices(undefined, "")).toEqual([]);
    expect(runAsChoices(["bob"], "carol")).toEqual(["bob", "carol"]);
  });

  it("reads the end of a session like a shell would", () => {
    expect(parseTerminalEnd({ type: "exit", code: 3 })).toEqual({ kind: "exit", status: 3 });
    expect(parseTerminalEnd({ type: "exit", code: null, signal: 9 })).toEqual({ kind: "exit", status: 137 });
    expect(parseTerminalEnd({ type: "exit" })).toEqual({ kind: "exit", status: 255 });
    expect(parseTerminalEnd({ type: "error", message: "no shell" })).toEqual({ kind: "error", message: "no shell" });
    expect(parseTerminalEnd({ type: "other" })).toBeNull();
    expect(describeEnd({ kind: "exit", status: 0 })).toBe("session ended (exit code 0)");
  });

  it("sends keys as UTF-8 and binary input byte for byte", () => {
    expect([...encodeInput("é\u0003\r")]).toEqual([0xc3, 0xa9, 3, 13]);
    expect([...encodeBinaryInput("\x1b[M\xff")]).toEqual([0x1b, 0x5b, 0x4d, 0xff]);
  });
});

describe("file transfers", () => {
  it("cuts a file into chunks", () => {
    expect([...chunkRanges(0)]).toEqual([]);
    expect([...chunkRanges(10, 4)]).toEqual([[0, 4], [4, 8], [8, 10]]);
    expect([...chunkRanges(CHUNK_SIZE * 2)]).toEqual([[0, CHUNK_SIZE], [CHUNK_SIZE, CHUNK_SIZE * 2]]);
  });

  it("matches replies to requests by id and turns errors into FilesError", async () => {
    const channel = new FakeChannel();
    const session = new FilesSession(channel);
    const listing = session.list("/home");
    const first = channel.last();
    expect(first).toMatchObject({ type: "list", path: "/home" });
    const mkdir = session.mkdir("/etc/x");
    const second = channel.last();
    expect(second.id).not.toBe(first.id);
    session.onMessage({ type: "error", id: second.id, message: "\"/etc/x\" is outside the folders this session may use" });
    session.onMessage({ type: "listing", id: first.id, path: "/home", entries: [{ name: "a", kind: "file", size: 1, mtime: 0, mode: 420 }] });
    await expect(listing).resolves.toMatchObject({ path: "/home", entries: [{ name: "a" }] });
    await expect(mkdir).rejects.toThrow(FilesError);
  });

  it("uploads chunk by chunk, waiting while the socket's queue is full", async () => {
    const channel = new FakeChannel();
    const pauses: number[] = [];
    // Each pause lets the "network" take one chunk off the queue.
    const session = new FilesSession(channel, async (ms) => {
      pauses.push(ms);
      channel.bufferedAmount = Math.max(0, channel.bufferedAmount - CHUNK_SIZE);
    });
    const size = CHUNK_SIZE * 6 + 5;
    const data = new Uint8Array(size).map((_, i) => i % 251);
    const source = new Blob([data]);
    const progress: number[] = [];
    const done = session.upload("/tmp/f", source, false, { onProgress: (n) => progress.push(n) });
    const announce = channel.last();
    expect(announce).toMatchObject({ type: "upload", path: "/tmp/f", size, overwrite: false });
    expect(channel.bytes, "no bytes before uploadReady").toEqual([]);
    session.onMessage({ type: "uploadReady", id: announce.id });
    while (channel.last().type !== "uploadEnd") {
      expect(channel.bufferedAmount).toBeLessThanOrEqual(UPLOAD_WINDOW);
      await tick();
    }
    expect(pauses.length).toBeGreaterThan(0);
    expect(channel.bytes.map((b) => b.length)).toEqual([...Array(6).fill(CHUNK_SIZE), 5]);
    const joined = new Uint8Array(await new Blob(channel.bytes as BlobPart[]).arrayBuffer());
    expect(joined).toEqual(data);
    expect(progress[progress.length - 1]).toBe(size);
    session.onMessage({ type: "done", id: announce.id });
    await done;
  });

  it("stops an upload the agent failed midway", async () => {
    const channel = new FakeChannel();
    // The network takes nothing: the upload fills its window and waits.
    const session = new FilesSession(channel, () => tick());
    const done = session.upload("/tmp/f", new Blob([new Uint8Array(CHUNK_SIZE * 8)]), true);
    const id = channel.last().id;
    session.onMessage({ type: "uploadReady", id });
    while (channel.bytes.length < UPLOAD_WINDOW / CHUNK_SIZE) await tick();
    await tick();
    expect(channel.bytes.length).toBe(UPLOAD_WINDOW / CHUNK_SIZE);
    session.onMessage({ type: "error", id, message: "writing failed: disk full" });
    await expect(done).rejects.toThrow("disk full");
    expect(channel.bytes.length).toBeLessThan(8);
    expect(channel.json.some((m) => m.type === "uploadEnd")).toBe(false);
  });

  it("gathers a download between downloadStart and downloadEnd", async () => {
    const channel = new FakeChannel();
    const session = new FilesSession(channel);
    const seen: Array<[number, number | null]> = [];
    const blob = session.downloadBlob("/f", { onProgress: (d, t) => seen.push([d, t]) });
    const request = channel.last();
    expect(request).toMatchObject({ type: "download", path: "/f", offset: 0 });
    session.onMessage({ type: "downloadStart", id: request.id, size: 5, offset: 0 });
    await tick();
    session.onBytes(new Uint8Array([1, 2, 3]));
    session.onBytes(new Uint8Array([4, 5]));
    session.onMessage({ type: "downloadEnd", id: request.id });
    const bytes = new Uint8Array(await (await blob).arrayBuffer());
    expect([...bytes]).toEqual([1, 2, 3, 4, 5]);
    expect(seen).toEqual([[0, 5], [3, 5], [5, 5]]);
  });

  it("cancels a download and fails everything when the session ends", async () => {
    const channel = new FakeChannel();
    const session = new FilesSession(channel);
    const controller = new AbortController();
    const blob = session.downloadBlob("/big", { signal: controller.signal });
    const id = channel.last().id;
    session.onMessage({ type: "downloadStart", id, size: 1e9, offset: 0 });
    await tick();
    controller.abort();
    await expect(blob).rejects.toThrow("cancelled");
    expect(channel.last()).toEqual({ type: "cancel", id });

    const listing = session.list("/");
    session.onMessage({ type: "error", message: "refused by the agent" });
    await expect(listing).rejects.toThrow("refused by the agent");
    await expect(session.list("/")).rejects.toThrow("refused by the agent");
  });
});

describe("remote paths", () => {
  it("joins, climbs and splits into breadcrumbs", () => {
    expect(joinPath("/", "a")).toBe("/a");
    expect(joinPath("/a", "b")).toBe("/a/b");
    expect(parentPath("/a/b/")).toBe("/a");
    expect(parentPath("/a")).toBe("/");
    expect(parentPath("/")).toBe("/");
    expect(breadcrumbs("/home//alice/")).toEqual([
      { name: "/", path: "/" },
      { name: "home", path: "/home" },
      { name: "alice", path: "/home/alice" },
    ]);
  });

  it("checks names and formats entries", () => {
    expect(invalidName("notes.txt")).toBeNull();
    expect(invalidName("a/b")).toMatch(/'\/'/);
    expect(invalidName("..")).not.toBeNull();
    expect(invalidName(" ")).not.toBeNull();
    expect(permissions("dir", 0o755)).toBe("drwxr-xr-x");
    expect(permissions("file", 0o640)).toBe("-rw-r-----");
    expect(permissions("file", 0)).toBe("");
    expect(fileSize(999)).toBe("999 B");
    expect(fileSize(1536)).toBe("1.5 KiB");
    expect(fileSize(300 * 1024 * 1024)).toBe("300 MiB");
    const sorted = sortEntries([
      { name: "b10", kind: "file", size: 0, mtime: 0, mode: 0 },
      { name: "z", kind: "dir", size: 0, mtime: 0, mode: 0 },
      { name: "b9", kind: "file", size: 0, mtime: 0, mode: 0 },
    ]);
    expect(sorted.map((e) => e.name)).toEqual(["z", "b9", "b10"]);
  });
});
