// The desktop app's stand-in for `RTCPeerConnection`: Debian's WebKitGTK has no WebRTC, so in the
// Tauri app the peer connection runs in Rust (`console/src/direct.rs`, the same str0m stack as the
// agent) and this file gives `direct.ts` the same small surface it uses in browsers. Signalling
// still travels on the page's relay WebSocket; only the data channel's messages cross into Rust.
//
// Both directions are raw bytes (`console/src/direct/frames.rs`): news from Rust arrive on a Tauri
// channel as a tag byte and a body; messages to Rust leave in batches, one `rtc_send` at a time,
// so they stay in order, and a batch's bytes count as buffered until Rust has queued them.

import { Channel, invoke as tauriInvoke, isTauri } from "@tauri-apps/api/core";
import type { DirectPath } from "../protocol.gen";
import type { DataChannelLike, PeerConnectionLike } from "./direct";

const OPEN = 1;
const CLOSED = 2;
const TEXT = 3;
const BINARY = 4;
const SOUND_RATE = 5;

/**
 * What crossed the IPC boundary for all direct paths of this page, for the figures script
 * (`e2e/figures/app-vs-chromium.mjs` reads `globalThis.tetherAppTraffic`).
 */
export const traffic = { messagesIn: 0, bytesIn: 0, batchesOut: 0, messagesOut: 0, bytesOut: 0 };
if (isTauri()) (globalThis as { tetherAppTraffic?: typeof traffic }).tetherAppTraffic = traffic;

/** Whether this page runs inside the Tauri app (which then makes direct paths natively). */
export function inDesktopApp(): boolean {
  return isTauri();
}

/** One batch of messages for `rtc_send`: per message a tag, a 32-bit big-endian length, the bytes. */
export function encodeBatch(messages: readonly (string | Uint8Array)[]): Uint8Array<ArrayBuffer> {
  const encoder = new TextEncoder();
  const parts = messages.map((m) => (typeof m === "string" ? { tag: TEXT, body: encoder.encode(m) } : { tag: BINARY, body: m }));
  const batch = new Uint8Array(parts.reduce((sum, p) => sum + 5 + p.body.length, 0));
  const view = new DataView(batch.buffer);
  let at = 0;
  for (const { tag, body } of parts) {
    batch[at] = tag;
    view.setUint32(at + 1, body.length);
    batch.set(body, at + 5);
    at += 5 + body.length;
  }
  return batch;
}

/** What one channel message from Rust says. */
export type PeerNews =
  | { kind: "open" }
  | { kind: "closed"; why: string }
  | { kind: "message"; data: string | ArrayBuffer }
  /** A call's sound from the other side arrives at this many kbit/s (`nativeCall.ts`). */
  | { kind: "soundRate"; kbps: number };

export function decodeNews(frame: ArrayBuffer): PeerNews | null {
  const bytes = new Uint8Array(frame);
  if (bytes.length === 0) return null;
  const body = frame.slice(1);
  switch (bytes[0]) {
    case OPEN:
      return { kind: "open" };
    case CLOSED:
      return { kind: "closed", why: new TextDecoder().decode(body) };
    case TEXT:
      return { kind: "message", data: new TextDecoder().decode(body) };
    case BINARY:
      return { kind: "message", data: body };
    case SOUND_RATE:
      return bytes.length === 5 ? { kind: "soundRate", kbps: new DataView(frame).getUint32(1) } : null;
    default:
      return null;
  }
}

/** The invoke function, replaceable in tests. */
export type Invoke = (command: string, args?: unknown, options?: { headers: Record<string, string> }) => Promise<unknown>;

class NativeChannel implements DataChannelLike {
  binaryType = "arraybuffer";
  readyState = "connecting";
  bufferedAmount = 0;
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  private queued: (string | Uint8Array)[] = [];
  private queuedBytes = 0;
  private sending = false;
  private closing = false;

  constructor(private readonly peer: NativePeer) {}

  send(data: string | Uint8Array<ArrayBuffer>): void {
    if (this.readyState !== "open") throw new Error(`the data channel is ${this.readyState}`);
    const size = typeof data === "string" ? data.length : data.byteLength;
    this.queued.push(data);
    this.queuedBytes += size;
    this.bufferedAmount += size;
    void this.pump();
  }

  close(): void {
    if (this.readyState === "closed" || this.closing) return;
    this.closing = true;
    this.readyState = "closing";
    if (!this.sending) void this.peer.finish();
  }

  /** Sends what is queued, one batch at a time; after a close, ends the peer once all is sent. */
  private async pump(): Promise<void> {
    if (this.sending || this.queued.length === 0 || this.peer.id === null) return;
    this.sending = true;
    const batch = encodeBatch(this.queued);
    const size = this.queuedBytes;
    traffic.batchesOut += 1;
    traffic.messagesOut += this.queued.length;
    traffic.bytesOut += batch.byteLength;
    this.queued = [];
    this.queuedBytes = 0;
    try {
      await this.peer.invoke("rtc_send", batch, { headers: { "tether-peer": String(this.peer.id) } });
    } catch (e) {
      this.peer.lost(`the app could not send on the direct path: ${String(e)}`);
    } finally {
      this.bufferedAmount -= size;
      this.sending = false;
    }
    if (this.queued.length > 0) void this.pump();
    else if (this.closing) void this.peer.finish();
  }

  opened(): void {
    if (this.readyState !== "connecting") return;
    this.readyState = "open";
    this.onopen?.({});
  }

  ended(): void {
    if (this.readyState === "closed") return;
    this.readyState = "closed";
    this.onclose?.({});
  }
}

/**
 * `PeerConnectionLike` over the app's commands. Data channel only: no video track (see below).
 * It offers (`rtc_open`), or answers an offer (`rtc_take`: a chat the app's user was invited to,
 * whose inviter's browser offers and opens the channel).
 */
export class NativePeer implements PeerConnectionLike {
  connectionState = "new";
  onicecandidate: ((event: { candidate: { candidate: string } | null }) => void) | null = null;
  onconnectionstatechange: ((event: unknown) => void) | null = null;
  ondatachannel: ((event: { channel: DataChannelLike }) => void) | null = null;
  id: number | null = null;
  private channel: NativeChannel | null = null;
  private closed = false;
  /** Answering: Rust's answer, made when the offer arrived. */
  private answerSdp: string | null = null;

  constructor(
    private readonly config: DirectPath,
    readonly invoke: Invoke = tauriInvoke as Invoke,
    private readonly makeChannel: () => Channel<ArrayBuffer> = () => new Channel<ArrayBuffer>(),
  ) {}

  createDataChannel(): DataChannelLike {
    this.channel ??= new NativeChannel(this);
    return this.channel;
  }

  async createOffer(): Promise<{ type: string; sdp?: string }> {
    return { type: "offer", sdp: await this.opened("rtc_open", { config: this.config, events: this.listen() }) };
  }

  async createAnswer(): Promise<{ type: string; sdp?: string }> {
    if (this.answerSdp === null) throw new Error("no offer to answer");
    return { type: "answer", sdp: this.answerSdp };
  }

  async setLocalDescription(): Promise<void> {
    // Rust's offer carries its candidates already: gathering is over.
    setTimeout(() => this.onicecandidate?.({ candidate: null }), 0);
  }

  async setRemoteDescription(description: { type: "answer" | "offer"; sdp: string }): Promise<void> {
    if (description.type === "offer") {
      if (this.id !== null || this.answerSdp !== null) throw new Error("the app's peer has a description already");
      this.answerSdp = await this.opened("rtc_take", { config: this.config, offer: description.sdp, events: this.listen() });
      return;
    }
    if (this.id === null) throw new Error("an answer to no offer");
    await this.invoke("rtc_answer", { id: this.id, sdp: description.sdp });
  }

  async addIceCandidate(candidate: { candidate: string }): Promise<void> {
    if (this.id !== null) await this.invoke("rtc_candidate", { id: this.id, candidate: candidate.candidate });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.connectionState = "closed";
    this.channel?.close();
    if (!this.channel) void this.finish();
  }

  /** Ends the Rust peer once what was sent has reached the agent (Rust waits for that). */
  async finish(): Promise<void> {
    const id = this.id;
    this.id = null;
    if (id !== null) await this.invoke("rtc_close", { id }).catch(() => undefined);
    this.channel?.ended();
  }

  /** Sending failed: the path is unusable. */
  lost(why: string): void {
    console.warn(why);
    this.setState("failed");
    this.channel?.ended();
  }

  /** The channel Rust's news come back on. */
  private listen(): Channel<ArrayBuffer> {
    const events = this.makeChannel();
    events.onmessage = (frame) => this.hear(frame);
    return events;
  }

  /** Runs `command`, which makes Rust's peer; keeps its id and returns its SDP. */
  private async opened(command: string, args: unknown): Promise<string> {
    const opened = (await this.invoke(command, args)) as { id: number; sdp: string };
    this.id = opened.id;
    // Closed while Rust was gathering: end the peer Rust just made.
    if (this.closed) void this.invoke("rtc_close", { id: opened.id }).catch(() => undefined);
    return opened.sdp;
  }

  private hear(frame: ArrayBuffer): void {
    const news = frame instanceof ArrayBuffer ? decodeNews(frame) : null;
    if (!news) return;
    traffic.messagesIn += 1;
    traffic.bytesIn += frame.byteLength;
    switch (news.kind) {
      case "open":
        this.setState("connected");
        if (!this.channel && this.answerSdp !== null) {
          // Answering: the channel is the offerer's, handed over as a browser's would be.
          this.channel = new NativeChannel(this);
          this.ondatachannel?.({ channel: this.channel });
        }
        this.channel?.opened();
        break;
      case "closed":
        this.id = null;
        if (!this.closed) this.setState("failed");
        this.channel?.ended();
        break;
      case "message":
        this.channel?.onmessage?.({ data: news.data });
        break;
      case "soundRate":
        break;
    }
  }

  private setState(state: string): void {
    if (this.connectionState === state || this.connectionState === "closed") return;
    this.connectionState = state;
    this.onconnectionstatechange?.({});
  }
}

/**
 * The app's peers carry the desktop's pictures on the data channel, as the agent sends them to
 * any viewer without a video track: WebKitGTK's WebCodecs has no H.264 decoder on Debian, and the
 * viewer's usual codec choice (VP8 there) applies unchanged.
 */
export function nativePeer(config: DirectPath): PeerConnectionLike {
  return new NativePeer(config);
}
