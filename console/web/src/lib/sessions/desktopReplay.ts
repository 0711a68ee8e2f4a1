// Plays a recorded desktop session: the agent's own frames, as the viewer got them, handed to a
// sink (the viewer's picture renderer) at their recorded times. Seeking starts again from the
// last key picture at or before the target, with the stream event that set up its decoder, and
// decodes forward from there; the relay asks recorded desktops for a key picture every 10 s
// (`server/src/relay/recording.rs`), so a seek decodes at most that much.

import type { RecordedFrame } from "../recording";
import { FLAG_KEY, FrameAssembler, parseDesktopEvent, readPictureHeader } from "./desktopProtocol";
import type { CursorShape, Picture, StreamInfo } from "./desktopProtocol";

export interface ReplaySink {
  configure(stream: StreamInfo): void;
  draw(picture: Picture): void;
  cursor?(shape: CursorShape): void;
  pointer?(x: number, y: number): void;
}

interface SeekPoint {
  /** Index of the key picture's first frame. */
  frame: number;
  atMs: number;
  /** Index of the last stream event before it (-1: none). */
  stream: number;
}

export class DesktopReplay {
  private readonly frames: RecordedFrame[];
  private readonly points: SeekPoint[] = [];
  private assembler = new FrameAssembler();
  /** Index of the next frame to apply. */
  private next = 0;
  readonly durationMs: number;

  constructor(
    frames: RecordedFrame[],
    private readonly sink: ReplaySink,
  ) {
    this.frames = frames.filter((f) => f.fromDevice);
    this.durationMs = this.frames.at(-1)?.atMs ?? 0;
    let stream = -1;
    let lastSeq: number | null = null;
    this.frames.forEach((frame, index) => {
      if (frame.text) {
        if (eventType(frame) === "stream") stream = index;
        return;
      }
      const read = readPictureHeader(frame.payload);
      if (!read) return;
      const first = read.header.seq !== lastSeq;
      lastSeq = read.header.seq;
      if (first && read.header.flags & FLAG_KEY && stream >= 0) {
        this.points.push({ frame: index, atMs: frame.atMs, stream });
      }
    });
  }

  /** Places to which a seek jumps straight (for tests and the seek bar's marks). */
  get seekPoints(): readonly number[] {
    return this.points.map((p) => p.atMs);
  }

  /** Applies every frame recorded at or before `ms`, in order. */
  advanceTo(ms: number): void {
    while (this.next < this.frames.length && this.frames[this.next]!.atMs <= ms) {
      this.apply(this.frames[this.next]!);
      this.next += 1;
    }
  }

  /**
   * Shows the recording as it was at `ms` (before the first key picture: that picture, since
   * nothing before it can be shown). Returns how many frames it applied to get there.
   */
  seek(ms: number): number {
    const before = this.next;
    const point = [...this.points].reverse().find((p) => p.atMs <= ms) ?? this.points[0];
    const behind = this.next > 0 && this.frames[this.next - 1]!.atMs > ms;
    // Jump when going back, or when a key picture lies ahead of where we are.
    if (point && (behind || point.frame > this.next)) {
      this.assembler = new FrameAssembler();
      this.apply(this.frames[point.stream]!);
      this.next = point.frame;
      const start = this.next;
      this.advanceTo(Math.max(ms, point.atMs));
      return this.next - start + 1;
    }
    if (behind) {
      // No key picture at all (a recording cut before its first): from the start.
      this.assembler = new FrameAssembler();
      this.next = 0;
    }
    this.advanceTo(ms);
    return this.next - (behind ? 0 : before);
  }

  private apply(frame: RecordedFrame): void {
    if (frame.text) {
      const event = parseEvent(frame);
      if (event?.type === "stream") {
        const { type: _type, ...info } = event;
        this.sink.configure(info);
      } else if (event?.type === "pointer") {
        this.sink.pointer?.(event.x, event.y);
      }
      return;
    }
    for (const message of this.assembler.push(frame.payload)) {
      if (message.kind === "picture") this.sink.draw(message.picture);
      else if (message.kind === "cursor") this.sink.cursor?.(message.cursor);
    }
  }
}

function parseEvent(frame: RecordedFrame) {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(frame.payload));
    return typeof value === "object" && value !== null ? parseDesktopEvent(value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function eventType(frame: RecordedFrame): string | undefined {
  return parseEvent(frame)?.type;
}
