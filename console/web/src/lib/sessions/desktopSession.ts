// A desktop session over a relay channel, without the DOM: sends `start`, turns text frames into
// typed events and binary frames into whole pictures, acknowledges what the viewer drew, asks
// for key frames (at most one outstanding), pings every 2 s for the round trip, keeps the stats,
// and drops input while the stream is view-only. The viewer component does the drawing.

import type { Timers } from "../control";
import type { RelayChannel } from "./relay";
import { FrameAssembler, FLAG_KEY, clampSettings, parseDesktopEvent } from "./desktopProtocol";
import type {
  AudioSource,
  CursorShape,
  DesktopRequest,
  DisplayInfo,
  DisplaySelection,
  Picture,
  StreamInfo,
  StreamSettings,
} from "./desktopProtocol";
import { DesktopStats } from "./desktopStats";

export const PING_INTERVAL_MS = 2000;
/** A key frame asked for and not come is asked for again after this long. */
export const KEYFRAME_RETRY_MS = 1000;

export interface DesktopHandlers {
  /** The stream's parameters changed (size, codec, view-only): reconfigure the decoder. */
  stream(info: StreamInfo): void;
  displays(displays: DisplayInfo[], selected: DisplaySelection): void;
  /** A whole picture to draw; call `drawn(seq)` (or `dropped(seq)`) when done with it. */
  picture(picture: Picture): void;
  cursor(shape: CursorShape): void;
  pointer(x: number, y: number): void;
  clipboard(text: string): void;
  snapshot(png: Uint8Array): void;
  notice(message: string): void;
  /** The agent gave up; it closes the session after this. */
  error(message: string): void;
  /** The device's sound (or microphone) started (`channels`) or stopped (`why`, when not asked to). */
  audioState?(on: boolean, source: AudioSource, channels: number, why: string | null): void;
  /** One Opus packet of the device's sound. */
  audio?(packet: Uint8Array, capturedMs: number): void;
}

export type InputRequest = Extract<
  DesktopRequest,
  { type: "mouseMove" | "mouseButton" | "wheel" | "key" | "text" | "combo" }
>;

export class DesktopSession {
  readonly stats: DesktopStats;
  private readonly assembler = new FrameAssembler();
  private streamInfo: StreamInfo | null = null;
  private keyframeAskedAt: number | null = null;
  private pingTimer: unknown = null;
  private closed = false;

  constructor(
    private readonly channel: RelayChannel,
    private readonly handlers: DesktopHandlers,
    private readonly now: () => number,
    private readonly timers: Timers,
  ) {
    this.stats = new DesktopStats();
  }

  get stream(): StreamInfo | null {
    return this.streamInfo;
  }

  /** Input is sent only once the stream is known and is not view-only. */
  get inputAllowed(): boolean {
    return this.streamInfo !== null && !this.streamInfo.viewOnly;
  }

  /** The first frame after "c"; starts the pings. */
  start(display: DisplaySelection, settings: StreamSettings): void {
    this.send({ type: "start", display, ...clampSettings(settings) });
    this.ping();
  }

  handleMessage(message: Record<string, unknown>): void {
    const event = parseDesktopEvent(message);
    if (!event) return;
    switch (event.type) {
      case "stream": {
        const { type: _type, ...info } = event;
        this.streamInfo = info;
        // The agent sends a key frame after a stream change; no need to ask.
        this.keyframeAskedAt = null;
        this.handlers.stream(info);
        break;
      }
      case "displays":
        this.handlers.displays(event.displays, event.selected);
        break;
      case "pointer":
        this.handlers.pointer(event.x, event.y);
        break;
      case "clipboard":
        this.handlers.clipboard(event.text);
        break;
      case "pong":
        this.stats.pong(this.now(), event.t / 1000, event);
        break;
      case "notice":
        this.handlers.notice(event.message);
        break;
      case "error":
        this.handlers.error(event.message);
        break;
      case "audio":
        this.handlers.audioState?.(event.on, event.source, event.channels ?? 2, event.why ?? null);
        break;
    }
  }

  handleBytes(bytes: Uint8Array): void {
    for (const message of this.assembler.push(bytes)) {
      switch (message.kind) {
        case "picture":
          this.stats.pictureReceived(this.now(), message.picture.wireBytes, message.picture.header.encodeUs);
          if (message.picture.header.flags & FLAG_KEY) this.keyframeAskedAt = null;
          this.handlers.picture(message.picture);
          break;
        case "cursor":
          this.handlers.cursor(message.cursor);
          break;
        case "snapshot":
          this.handlers.snapshot(message.png);
          break;
        case "audio":
          this.stats.audioReceived(this.now(), message.packet.length);
          this.handlers.audio?.(message.packet, message.capturedMs);
          break;
        case "malformed":
          // A picture that cannot be shown still counts against the agent's window.
          if (message.seq !== undefined) this.dropped(message.seq);
          break;
        case "partial":
          break;
      }
    }
  }

  /** The viewer has drawn picture `seq`. */
  drawn(seq: number, decodeMs: number): void {
    this.stats.pictureDrawn(this.now(), decodeMs);
    this.ack(seq);
  }

  /**
   * The viewer could not use picture `seq` (a decoder error, a delta frame before any key
   * frame): acknowledge it so the agent's window moves on, and ask for a key frame if needed.
   */
  dropped(seq: number, needKey = true): void {
    this.ack(seq);
    if (needKey) this.requestKeyframe();
  }

  /** Asks for a key frame unless one was asked for within KEYFRAME_RETRY_MS. */
  requestKeyframe(): void {
    const now = this.now();
    if (this.keyframeAskedAt !== null && now - this.keyframeAskedAt < KEYFRAME_RETRY_MS) return;
    this.keyframeAskedAt = now;
    this.send({ type: "keyframe" });
  }

  settings(settings: StreamSettings): void {
    const clamped = clampSettings(settings);
    if (Object.keys(clamped).length > 0) this.send({ type: "settings", ...clamped });
  }

  display(display: DisplaySelection): void {
    this.send({ type: "display", display });
  }

  snapshot(): void {
    this.send({ type: "snapshot" });
  }

  /** Turns the device's sound or microphone on or off (answered with an `audio` event). */
  setAudio(on: boolean, source: AudioSource = "output"): void {
    this.send({ type: "audio", on, source });
  }

  clipboardGet(): void {
    this.send({ type: "clipboardGet" });
  }

  /** Puts text on the remote clipboard (not while view-only: the agent would refuse it). */
  clipboardSet(text: string): boolean {
    if (!this.inputAllowed) return false;
    this.send({ type: "clipboardSet", text });
    return true;
  }

  /** Sends pointer or keyboard input; dropped (false) while view-only. */
  input(request: InputRequest): boolean {
    if (!this.inputAllowed) return false;
    if (request.type === "text" && request.text === "") return false;
    this.send(request);
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.pingTimer !== null) this.timers.clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }

  private ack(seq: number): void {
    this.send({ type: "ack", seq });
  }

  private ping(): void {
    // Microseconds of the viewer's clock: the pong carries it back, so no table of sent pings.
    this.send({ type: "ping", t: Math.round(this.now() * 1000) });
    this.schedulePing();
  }

  private schedulePing(): void {
    if (this.closed) return;
    if (this.pingTimer !== null) this.timers.clearTimeout(this.pingTimer);
    this.pingTimer = this.timers.setTimeout(() => this.ping(), PING_INTERVAL_MS);
  }

  private send(request: DesktopRequest): void {
    if (!this.closed) this.channel.sendJson(request);
  }
}
