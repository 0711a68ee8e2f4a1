// One side of a messenger chat (`common/src/relay/chat.rs` has the protocol): the console's Chat
// tab and the device user's messenger page both run this over a relay connection. Messages are
// shown as text, never markup. Files go only after the other side accepts them, one 64 KiB binary
// frame at a time (a 4-byte transfer id, then data), paced by the socket's buffer like uploads
// in `files.ts`. No DOM here, so it is unit-tested with a fake channel.

import type { ChatMessage } from "../protocol.gen";
import type { RelayChannel } from "./relay";

export const MAX_TEXT_CHARS = 4000;
/** Longest session description a call may carry (as chat.rs). */
export const MAX_SDP = 64 * 1024;
export const FILE_CHUNK = 64 * 1024;
/** Bytes the socket may hold before the next chunk is read. */
export const SEND_WINDOW = 4 * FILE_CHUNK;
/** A side that stops sending `typing` updates stops showing as typing after this long. */
export const TYPING_TIMEOUT_MS = 6000;

/** What `offerFile` needs of a browser `File`. */
export interface FileLike {
  readonly name: string;
  readonly size: number;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

export type TransferState = "offered" | "sending" | "receiving" | "complete" | "declined" | "cancelled" | "failed";

export interface Transfer {
  id: number;
  /** "out": we send it; "in": the other side does. */
  direction: "out" | "in";
  name: string;
  size: number;
  /** Bytes sent or received so far. */
  done: number;
  state: TransferState;
  /** A received file, once complete. */
  blob?: Blob;
  why?: string;
}

export type ChatEntry =
  | { kind: "text"; from: "me" | "peer"; text: string; at: number }
  | { kind: "file"; from: "me" | "peer"; transfer: Transfer; at: number }
  | { kind: "notice"; text: string; at: number };

export interface ChatHandlers {
  /** Something shown changed: entries, a transfer's progress, the peer's name or typing. */
  onChange(): void;
  /** A call's signalling (`call.ts` handles it). */
  onCall?(message: CallMessage): void;
}

/** The chat messages that belong to a call. */
export type CallMessage = Extract<ChatMessage, { type: "callOffer" | "callAnswer" | "callCandidate" | "callDecline" | "callEnd" }>;

export class ChatSession {
  readonly entries: ChatEntry[] = [];
  peerName: string | null = null;
  peerTyping = false;
  private nextText = 1;
  private nextFile = 1;
  private readonly outgoing = new Map<number, { transfer: Transfer; file: FileLike }>();
  private readonly incoming = new Map<number, { transfer: Transfer; chunks: Uint8Array[] }>();
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  private typingSent = false;
  private ended = false;

  constructor(
    private readonly channel: RelayChannel,
    private readonly myName: string,
    private readonly handlers: ChatHandlers,
    private readonly pause: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
    private readonly now: () => number = Date.now,
  ) {}

  /** Both ends are in: introduce ourselves. */
  paired(): void {
    this.send({ type: "hello", name: this.myName });
  }

  sendText(text: string): boolean {
    const trimmed = text.trim();
    if (!trimmed || this.ended) return false;
    const chars = [...trimmed];
    const bounded = chars.length > MAX_TEXT_CHARS ? chars.slice(0, MAX_TEXT_CHARS).join("") : trimmed;
    this.send({ type: "text", id: this.nextText++, text: bounded });
    this.push({ kind: "text", from: "me", text: bounded, at: this.now() });
    this.setTyping(false);
    return true;
  }

  /** Call on every edit of the message box: "typing" goes out once, "stopped" when it empties. */
  setTyping(on: boolean): void {
    if (on !== this.typingSent && !this.ended) {
      this.typingSent = on;
      this.send({ type: "typing", on });
    }
  }

  offerFile(file: FileLike): Transfer {
    const transfer: Transfer = { id: this.nextFile++, direction: "out", name: file.name, size: file.size, done: 0, state: "offered" };
    this.outgoing.set(transfer.id, { transfer, file });
    this.send({ type: "fileOffer", id: transfer.id, name: file.name, size: file.size });
    this.push({ kind: "file", from: "me", transfer, at: this.now() });
    return transfer;
  }

  accept(id: number): void {
    const entry = this.incoming.get(id);
    if (!entry || entry.transfer.state !== "offered") return;
    entry.transfer.state = "receiving";
    this.send({ type: "fileAccept", id });
    this.handlers.onChange();
  }

  decline(id: number): void {
    const entry = this.incoming.get(id);
    if (!entry || entry.transfer.state !== "offered") return;
    entry.transfer.state = "declined";
    this.incoming.delete(id);
    this.send({ type: "fileDecline", id });
    this.handlers.onChange();
  }

  /** Stops a transfer either way. */
  cancel(id: number): void {
    const transfer = this.outgoing.get(id)?.transfer ?? this.incoming.get(id)?.transfer;
    if (!transfer || !isOpen(transfer.state)) return;
    transfer.state = "cancelled";
    this.outgoing.delete(id);
    this.incoming.delete(id);
    this.send({ type: "fileCancel", id });
    this.handlers.onChange();
  }

  /** The session is over (either side left): transfers under way fail, typing stops. */
  end(why: string): void {
    if (this.ended) return;
    this.ended = true;
    for (const { transfer } of [...this.outgoing.values(), ...this.incoming.values()]) {
      if (isOpen(transfer.state)) {
        transfer.state = "failed";
        transfer.why = why;
      }
    }
    this.outgoing.clear();
    this.incoming.clear();
    this.peerTyping = false;
    this.notice(why);
  }

  /** Says goodbye (the caller closes the connection after). */
  leave(): void {
    if (!this.ended) this.send({ type: "bye" });
  }

  onMessage(message: Record<string, unknown>): void {
    const chat = asChatMessage(message);
    if (!chat) return;
    switch (chat.type) {
      case "hello":
        this.peerName = chat.name.slice(0, 100);
        this.notice(`${this.peerName} joined the chat.`);
        break;
      case "text":
        this.setPeerTyping(false);
        this.push({ kind: "text", from: "peer", text: chat.text.slice(0, MAX_TEXT_CHARS * 2), at: this.now() });
        break;
      case "typing":
        this.setPeerTyping(chat.on);
        break;
      case "fileOffer": {
        if (this.incoming.has(chat.id)) return;
        const transfer: Transfer = { id: chat.id, direction: "in", name: chat.name, size: chat.size, done: 0, state: "offered" };
        this.incoming.set(chat.id, { transfer, chunks: [] });
        this.push({ kind: "file", from: "peer", transfer, at: this.now() });
        break;
      }
      case "fileAccept": {
        const entry = this.outgoing.get(chat.id);
        if (entry?.transfer.state === "offered") void this.stream(entry.transfer, entry.file);
        break;
      }
      case "fileDecline":
      case "fileCancel": {
        const transfer = this.outgoing.get(chat.id)?.transfer ?? this.incoming.get(chat.id)?.transfer;
        if (transfer && isOpen(transfer.state)) {
          transfer.state = chat.type === "fileDecline" ? "declined" : "cancelled";
          this.outgoing.delete(chat.id);
          this.incoming.delete(chat.id);
          this.handlers.onChange();
        }
        break;
      }
      case "fileEnd":
        this.finishIncoming(chat.id);
        break;
      case "bye":
        this.end(`${this.peerName ?? "The other side"} left the chat.`);
        break;
      case "callOffer":
      case "callAnswer":
      case "callCandidate":
      case "callDecline":
      case "callEnd":
        if (!this.ended) this.handlers.onCall?.(chat);
        break;
    }
  }

  onBytes(frame: Uint8Array): void {
    if (frame.length < 4) return;
    const id = new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0);
    const entry = this.incoming.get(id);
    if (!entry || entry.transfer.state !== "receiving") return;
    const data = frame.slice(4);
    if (entry.transfer.done + data.length > entry.transfer.size) {
      this.failIncoming(id, "the other side sent more than it offered");
      return;
    }
    entry.chunks.push(data);
    entry.transfer.done += data.length;
    this.handlers.onChange();
  }

  private finishIncoming(id: number): void {
    const entry = this.incoming.get(id);
    if (!entry || entry.transfer.state !== "receiving") return;
    this.incoming.delete(id);
    if (entry.transfer.done !== entry.transfer.size) {
      entry.transfer.state = "failed";
      entry.transfer.why = `${entry.transfer.done} of ${entry.transfer.size} bytes arrived`;
    } else {
      entry.transfer.state = "complete";
      entry.transfer.blob = new Blob(entry.chunks as BlobPart[]);
    }
    this.handlers.onChange();
  }

  private failIncoming(id: number, why: string): void {
    const entry = this.incoming.get(id);
    if (!entry) return;
    this.incoming.delete(id);
    entry.transfer.state = "failed";
    entry.transfer.why = why;
    this.send({ type: "fileCancel", id });
    this.handlers.onChange();
  }

  /** Sends an accepted file, never holding more than the window in the socket's buffer. */
  private async stream(transfer: Transfer, file: FileLike): Promise<void> {
    transfer.state = "sending";
    this.handlers.onChange();
    try {
      for (let offset = 0; offset < transfer.size; ) {
        while (this.channel.bufferedAmount > SEND_WINDOW - FILE_CHUNK) {
          await this.pause(10);
          if (transfer.state !== "sending") return;
        }
        if (transfer.state !== "sending" || this.ended) return;
        const end = Math.min(offset + FILE_CHUNK, transfer.size);
        const data = new Uint8Array(await file.slice(offset, end).arrayBuffer());
        if (transfer.state !== "sending" || this.ended) return;
        const frame = new Uint8Array(4 + data.length);
        new DataView(frame.buffer).setUint32(0, transfer.id);
        frame.set(data, 4);
        this.channel.sendBytes(frame);
        offset = end;
        transfer.done = offset;
        this.handlers.onChange();
      }
      this.send({ type: "fileEnd", id: transfer.id });
      transfer.state = "complete";
      this.outgoing.delete(transfer.id);
    } catch (e) {
      transfer.state = "failed";
      transfer.why = `the file could not be read: ${String(e)}`;
      this.outgoing.delete(transfer.id);
      this.send({ type: "fileCancel", id: transfer.id });
    }
    this.handlers.onChange();
  }

  private setPeerTyping(on: boolean): void {
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = on ? setTimeout(() => this.setPeerTyping(false), TYPING_TIMEOUT_MS) : null;
    if (this.peerTyping !== on) {
      this.peerTyping = on;
      this.handlers.onChange();
    }
  }

  /** A line in the chat's log that is neither side's message (a call started or ended). */
  notice(text: string): void {
    this.push({ kind: "notice", text, at: this.now() });
  }

  private push(entry: ChatEntry): void {
    this.entries.push(entry);
    this.handlers.onChange();
  }

  private send(message: ChatMessage): void {
    this.channel.sendJson(message);
  }
}

function isOpen(state: TransferState): boolean {
  return state === "offered" || state === "sending" || state === "receiving";
}

const isId = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffff_ffff;

/** The chat message a parsed frame is, checked; `null` for anything else. */
export function asChatMessage(m: Record<string, unknown>): ChatMessage | null {
  switch (m.type) {
    case "hello":
      return typeof m.name === "string" ? { type: "hello", name: m.name } : null;
    case "text":
      return isId(m.id) && typeof m.text === "string" ? { type: "text", id: m.id, text: m.text } : null;
    case "typing":
      return typeof m.on === "boolean" ? { type: "typing", on: m.on } : null;
    case "fileOffer":
      return isId(m.id) && typeof m.name === "string" && m.name !== "" && typeof m.size === "number" && Number.isSafeInteger(m.size) && m.size >= 0
        ? { type: "fileOffer", id: m.id, name: m.name.slice(0, 255), size: m.size }
        : null;
    case "fileAccept":
    case "fileDecline":
    case "fileCancel":
    case "fileEnd":
      return isId(m.id) ? { type: m.type, id: m.id } : null;
    case "bye":
      return { type: "bye" };
    case "callOffer":
    case "callAnswer":
      return typeof m.sdp === "string" && m.sdp.length <= MAX_SDP && typeof m.audio === "boolean" && typeof m.video === "boolean"
        ? { type: m.type, sdp: m.sdp, audio: m.audio, video: m.video }
        : null;
    case "callCandidate":
      return typeof m.candidate === "string" && m.candidate.length <= 1024 && (m.mid == null || typeof m.mid === "string")
        ? { type: "callCandidate", candidate: m.candidate, mid: typeof m.mid === "string" ? m.mid : null }
        : null;
    case "callDecline":
    case "callEnd":
      return { type: m.type };
    default:
      return null;
  }
}
