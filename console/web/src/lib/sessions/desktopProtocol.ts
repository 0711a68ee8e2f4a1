// The desktop session's messages (mirrors common/src/relay/desktop.rs, the contract): JSON text
// frames both ways, and binary picture frames from the agent, each starting with a kind byte.
// Parsing only: no DOM, no timers, so every malformed case is unit-tested.

/** Pictures the agent may have unacknowledged before it waits (`FRAME_WINDOW`). */
export const FRAME_WINDOW = 2;
export const MIN_FPS = 1;
export const MAX_FPS = 60;
export const MIN_QUALITY = 1;
export const MAX_QUALITY = 100;

export type Codec = "h264" | "vp8" | "jpeg";
export const CODECS: readonly Codec[] = ["h264", "vp8", "jpeg"];

/** `"all"` (the whole X screen) or one monitor's id. */
export type DisplaySelection = "all" | number;

export type MouseButton = "left" | "middle" | "right" | "back" | "forward";

export interface StreamSettings {
  codec?: Codec;
  quality?: number;
  fps?: number;
  maxWidth?: number;
}

/** Console → agent. */
export type DesktopRequest =
  | ({ type: "start"; display: DisplaySelection } & StreamSettings)
  | ({ type: "settings" } & StreamSettings)
  | { type: "display"; display: DisplaySelection }
  | { type: "keyframe" }
  | { type: "ack"; seq: number }
  | { type: "mouseMove"; x: number; y: number }
  | { type: "mouseButton"; button: MouseButton; down: boolean }
  | { type: "wheel"; dx: number; dy: number }
  | { type: "key"; code: string; down: boolean }
  | { type: "text"; text: string }
  | { type: "combo"; codes: string[] }
  | { type: "clipboardSet"; text: string }
  | { type: "clipboardGet" }
  | { type: "snapshot" }
  | { type: "ping"; t: number }
  /** Start or stop the device's sound, or its microphone (where the group allows it). */
  | { type: "audio"; on: boolean; source: AudioSource };

export interface DisplayInfo {
  id: number;
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  primary: boolean;
}

export interface StreamInfo {
  codec: Codec;
  /** The WebCodecs codec string (`"avc1.42e01f"`, `"vp8"`), or `"jpeg"`. */
  codecString: string;
  width: number;
  height: number;
  quality: number;
  fps: number;
  viewOnly: boolean;
  /** The pictures come on the direct path's video track (`desktopTrack.ts`), not in band. */
  track: boolean;
}

/** Agent → console. */
export type DesktopEvent =
  | { type: "displays"; displays: DisplayInfo[]; selected: DisplaySelection }
  | ({ type: "stream" } & StreamInfo)
  | { type: "pointer"; x: number; y: number }
  | { type: "clipboard"; text: string }
  /** `captureUs`/`encodeUs`: what the agent's latest picture cost it (absent before the first). */
  | { type: "pong"; t: number; captureUs?: number; encodeUs?: number }
  | { type: "notice"; message: string }
  | { type: "error"; message: string }
  /** Whether the device's sound flows (Opus, 48 kHz, `channels`), and when not, why. */
  | { type: "audio"; on: boolean; source: AudioSource; channels?: number; why?: string };

/** What the viewer hears of the device: what it plays, or its microphone. */
export type AudioSource = "output" | "microphone";

// ---- text frames ----

const isNumber = (value: unknown): value is number => typeof value === "number" && Number.isFinite(value);
const isString = (value: unknown): value is string => typeof value === "string";

function parseSelection(value: unknown): DisplaySelection | null {
  if (value === "all") return "all";
  return isNumber(value) && value >= 0 ? value : null;
}

function parseDisplay(value: unknown): DisplayInfo | null {
  if (typeof value !== "object" || value === null) return null;
  const d = value as Record<string, unknown>;
  if (!isNumber(d.id) || !isString(d.name)) return null;
  if (!isNumber(d.x) || !isNumber(d.y) || !isNumber(d.width) || !isNumber(d.height)) return null;
  return { id: d.id, name: d.name, x: d.x, y: d.y, width: d.width, height: d.height, primary: d.primary === true };
}

/** A text frame from the agent as a typed event; `null` for unknown or malformed ones. */
export function parseDesktopEvent(message: Record<string, unknown>): DesktopEvent | null {
  const m = message;
  switch (m.type) {
    case "displays": {
      if (!Array.isArray(m.displays)) return null;
      const displays = m.displays.map(parseDisplay);
      const selected = parseSelection(m.selected);
      if (displays.some((d) => d === null) || selected === null) return null;
      return { type: "displays", displays: displays as DisplayInfo[], selected };
    }
    case "stream": {
      if (!isString(m.codec) || !(CODECS as readonly string[]).includes(m.codec)) return null;
      if (!isString(m.codecString) || !isNumber(m.width) || !isNumber(m.height)) return null;
      return {
        type: "stream",
        codec: m.codec as Codec,
        codecString: m.codecString,
        width: m.width,
        height: m.height,
        quality: isNumber(m.quality) ? m.quality : 0,
        fps: isNumber(m.fps) ? m.fps : 0,
        viewOnly: m.viewOnly === true,
        track: m.track === true,
      };
    }
    case "pointer":
      return isNumber(m.x) && isNumber(m.y) ? { type: "pointer", x: m.x, y: m.y } : null;
    case "clipboard":
      return isString(m.text) ? { type: "clipboard", text: m.text } : null;
    case "pong":
      if (!isNumber(m.t)) return null;
      return {
        type: "pong",
        t: m.t,
        // A malformed timing is left out; the round trip still counts.
        ...(isNumber(m.captureUs) ? { captureUs: m.captureUs } : {}),
        ...(isNumber(m.encodeUs) ? { encodeUs: m.encodeUs } : {}),
      };
    case "notice":
    case "error":
      return { type: m.type, message: isString(m.message) ? m.message : "unknown error" };
    case "audio":
      if (typeof m.on !== "boolean") return null;
      return {
        type: "audio",
        on: m.on,
        source: m.source === "microphone" ? "microphone" : "output",
        ...(isNumber(m.channels) && (m.channels === 1 || m.channels === 2) ? { channels: m.channels } : {}),
        ...(isString(m.why) ? { why: m.why } : {}),
      };
    default:
      return null;
  }
}

/** Clamps settings into what the agent accepts, dropping fields that are not set. */
export function clampSettings(settings: StreamSettings): StreamSettings {
  const out: StreamSettings = {};
  const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.round(n)));
  if (settings.codec) out.codec = settings.codec;
  if (settings.quality !== undefined) out.quality = clamp(settings.quality, MIN_QUALITY, MAX_QUALITY);
  if (settings.fps !== undefined) out.fps = clamp(settings.fps, MIN_FPS, MAX_FPS);
  if (settings.maxWidth !== undefined) out.maxWidth = Math.max(0, Math.round(settings.maxWidth));
  return out;
}

// ---- binary frames ----

export const KIND_VIDEO = 1;
export const KIND_TILES = 2;
export const KIND_CURSOR = 3;
export const KIND_SNAPSHOT = 4;
export const KIND_AUDIO = 5;
/** The bytes in front of an Opus packet: kind, flags, seq (u16), captured ms (u32). */
export const AUDIO_HEADER_LEN = 8;

/** The picture decodes on its own (a video key frame; tiles covering the whole picture). */
export const FLAG_KEY = 1 << 0;
/** More messages follow with the rest of this picture's payload. */
export const FLAG_MORE = 1 << 1;

export const PICTURE_HEADER_LEN = 20;
export const TILE_HEADER_LEN = 12;
export const CURSOR_HEADER_LEN = 12;
export const SNAPSHOT_HEADER_LEN = 2;

export interface PictureHeader {
  kind: typeof KIND_VIDEO | typeof KIND_TILES;
  flags: number;
  seq: number;
  /** Milliseconds since the session started when the screen was captured. */
  capturedMs: number;
  /** Microseconds the agent spent encoding this picture. */
  encodeUs: number;
  width: number;
  height: number;
}

export interface Tile {
  x: number;
  y: number;
  width: number;
  height: number;
  jpeg: Uint8Array;
}

export interface CursorShape {
  width: number;
  height: number;
  hotX: number;
  hotY: number;
  /** width × height RGBA pixels, not premultiplied. */
  pixels: Uint8Array;
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** Reads a video or tiles frame's header; `null` if it is short or of another kind. */
export function readPictureHeader(frame: Uint8Array): { header: PictureHeader; payload: Uint8Array } | null {
  if (frame.length < PICTURE_HEADER_LEN) return null;
  const kind = frame[0];
  if (kind !== KIND_VIDEO && kind !== KIND_TILES) return null;
  const v = view(frame);
  const header: PictureHeader = {
    kind: kind as PictureHeader["kind"],
    flags: v.getUint8(1),
    seq: v.getUint32(4),
    capturedMs: v.getUint32(8),
    encodeUs: v.getUint32(12),
    width: v.getUint16(16),
    height: v.getUint16(18),
  };
  return { header, payload: frame.subarray(PICTURE_HEADER_LEN) };
}

/** Splits a whole (joined) tiles payload into tiles; `null` if it is malformed. */
export function splitTiles(payload: Uint8Array): Tile[] | null {
  const tiles: Tile[] = [];
  const v = view(payload);
  let at = 0;
  while (at < payload.length) {
    if (payload.length - at < TILE_HEADER_LEN) return null;
    const len = v.getUint32(at + 8);
    const end = at + TILE_HEADER_LEN + len;
    if (end > payload.length) return null;
    tiles.push({
      x: v.getUint16(at),
      y: v.getUint16(at + 2),
      width: v.getUint16(at + 4),
      height: v.getUint16(at + 6),
      jpeg: payload.subarray(at + TILE_HEADER_LEN, end),
    });
    at = end;
  }
  return tiles;
}

/** Reads a cursor frame; `null` unless the pixel count matches the size. */
export function readCursor(frame: Uint8Array): CursorShape | null {
  if (frame.length < CURSOR_HEADER_LEN || frame[0] !== KIND_CURSOR) return null;
  const v = view(frame);
  const width = v.getUint16(4);
  const height = v.getUint16(6);
  const pixels = frame.subarray(CURSOR_HEADER_LEN);
  if (pixels.length !== width * height * 4) return null;
  return { width, height, hotX: v.getUint16(8), hotY: v.getUint16(10), pixels };
}

/** A whole picture: its header (FLAG_MORE cleared) and the joined payload. */
export interface Picture {
  header: PictureHeader;
  payload: Uint8Array;
  /** Bytes received for it, headers included (for the bit rate). */
  wireBytes: number;
}

export type BinaryMessage =
  | { kind: "picture"; picture: Picture }
  | { kind: "cursor"; cursor: CursorShape }
  | { kind: "snapshot"; png: Uint8Array }
  /** One Opus packet of the device's sound. */
  | { kind: "audio"; seq: number; capturedMs: number; packet: Uint8Array }
  /** A frame that could not be read; `seq` is set when it was a picture's (so it can be acked). */
  | { kind: "malformed"; reason: string; seq?: number }
  /** Part of a picture or snapshot; more messages follow. */
  | { kind: "partial" };

/** A joined picture or snapshot larger than this is refused (a screen is far smaller). */
export const MAX_JOINED_BYTES = 64 * 1024 * 1024;

/**
 * Joins pictures and snapshots split over several messages with FLAG_MORE. The parts of one
 * picture arrive in order and repeat its header; a part of another picture while one is being
 * joined means the first was cut short: it is reported malformed (with its seq, so the viewer can
 * still acknowledge it) and the new part starts afresh. Pictures and snapshots are joined apart,
 * and cursor shapes may arrive between parts.
 */
export class FrameAssembler {
  private readonly pictures = new Joiner();
  private readonly snapshots = new Joiner();

  /** Reads one binary message; returns what it completes. */
  push(frame: Uint8Array): BinaryMessage[] {
    const kind = frame[0];
    if (kind === KIND_VIDEO || kind === KIND_TILES) return this.pushPicture(frame);
    if (kind === KIND_SNAPSHOT) return this.pushSnapshot(frame);
    if (kind === KIND_AUDIO) {
      if (frame.length <= AUDIO_HEADER_LEN) return [{ kind: "malformed", reason: "short audio frame" }];
      const v = new DataView(frame.buffer, frame.byteOffset, AUDIO_HEADER_LEN);
      return [{ kind: "audio", seq: v.getUint16(2), capturedMs: v.getUint32(4), packet: frame.subarray(AUDIO_HEADER_LEN) }];
    }
    if (kind === KIND_CURSOR) {
      const cursor = readCursor(frame);
      return [cursor ? { kind: "cursor", cursor } : { kind: "malformed", reason: "cursor size does not match its pixels" }];
    }
    return [{ kind: "malformed", reason: kind === undefined ? "empty binary frame" : `unknown frame kind ${kind}` }];
  }

  private pushPicture(frame: Uint8Array): BinaryMessage[] {
    const read = readPictureHeader(frame);
    if (!read) return [{ kind: "malformed", reason: "short picture header" }];
    const { header, payload } = read;
    const out: BinaryMessage[] = [];
    const cut = this.pictures.add(`${header.kind}:${header.seq}`, header.seq, payload, frame.length);
    if (cut) out.push({ kind: "malformed", reason: "a split picture was cut short", seq: cut.seq });
    if (header.flags & FLAG_MORE) {
      const tooBig = this.pictures.checkSize();
      if (tooBig) out.push({ kind: "malformed", reason: tooBig, seq: header.seq });
      else out.push({ kind: "partial" });
      return out;
    }
    const joined = this.pictures.take();
    out.push({
      kind: "picture",
      picture: { header: { ...header, flags: header.flags & ~FLAG_MORE }, payload: joined.bytes, wireBytes: joined.wireBytes },
    });
    return out;
  }

  private pushSnapshot(frame: Uint8Array): BinaryMessage[] {
    if (frame.length < SNAPSHOT_HEADER_LEN) return [{ kind: "malformed", reason: "short snapshot header" }];
    const out: BinaryMessage[] = [];
    const cut = this.snapshots.add("snapshot", 0, frame.subarray(SNAPSHOT_HEADER_LEN), frame.length);
    if (cut) out.push({ kind: "malformed", reason: "a split snapshot was cut short" });
    if (frame[1]! & FLAG_MORE) {
      const tooBig = this.snapshots.checkSize();
      out.push(tooBig ? { kind: "malformed", reason: tooBig } : { kind: "partial" });
      return out;
    }
    out.push({ kind: "snapshot", png: this.snapshots.take().bytes });
    return out;
  }
}

/** The parts of one split payload being joined. */
class Joiner {
  private parts: Uint8Array[] = [];
  private bytes = 0;
  private wireBytes = 0;
  private key: string | null = null;
  private seq = 0;

  /**
   * Adds a part; if it belongs to another payload than the one pending, drops that one first and
   * returns its seq.
   */
  add(key: string, seq: number, part: Uint8Array, frameBytes: number): { seq: number } | null {
    let cut: { seq: number } | null = null;
    if (this.key !== null && this.key !== key) {
      cut = { seq: this.seq };
      this.reset();
    }
    this.key = key;
    this.seq = seq;
    this.parts.push(part);
    this.bytes += part.length;
    this.wireBytes += frameBytes;
    return cut;
  }

  /** Refuses (and drops) a payload that grew past MAX_JOINED_BYTES. */
  checkSize(): string | null {
    if (this.bytes <= MAX_JOINED_BYTES) return null;
    this.reset();
    return `a split picture is larger than ${MAX_JOINED_BYTES} bytes`;
  }

  take(): { bytes: Uint8Array; wireBytes: number } {
    let bytes: Uint8Array;
    if (this.parts.length === 1) {
      bytes = this.parts[0]!;
    } else {
      bytes = new Uint8Array(this.bytes);
      let at = 0;
      for (const part of this.parts) {
        bytes.set(part, at);
        at += part.length;
      }
    }
    const wireBytes = this.wireBytes;
    this.reset();
    return { bytes, wireBytes };
  }

  private reset(): void {
    this.parts = [];
    this.bytes = 0;
    this.wireBytes = 0;
    this.key = null;
  }
}
