// The stats overlay's figures over a sliding window: frames drawn per second, bit rate, the last
// round trip (ping/pong), and mean decode and encode times. Callers pass the time in, so the
// maths is unit-tested without clocks.

export interface StatsFigures {
  /** Pictures drawn per second. */
  fps: number;
  /** Picture bytes received, as kilobits per second. */
  kbps: number;
  /** The last ping's round trip, in milliseconds (null before the first pong). */
  rttMs: number | null;
  /** Mean time from handing a picture to the decoder to drawing it, in milliseconds. */
  decodeMs: number | null;
  /** Mean time the agent spent encoding, in milliseconds (from the picture headers). */
  encodeMs: number | null;
}

interface Sample {
  at: number;
  value: number;
}

/** Samples of the last `windowMs` milliseconds. */
class Window {
  private samples: Sample[] = [];

  constructor(private readonly windowMs: number) {}

  add(at: number, value: number): void {
    this.samples.push({ at, value });
  }

  /** Forgets samples older than the window before `now`. */
  prune(now: number): void {
    const oldest = now - this.windowMs;
    let drop = 0;
    while (drop < this.samples.length && this.samples[drop]!.at <= oldest) drop++;
    if (drop > 0) this.samples = this.samples.slice(drop);
  }

  count(): number {
    return this.samples.length;
  }

  sum(): number {
    return this.samples.reduce((total, s) => total + s.value, 0);
  }

  mean(): number | null {
    return this.samples.length === 0 ? null : this.sum() / this.samples.length;
  }
}

export class DesktopStats {
  private readonly drawn: Window;
  private readonly received: Window;
  private readonly decode: Window;
  private readonly encode: Window;
  private rtt: number | null = null;

  constructor(private readonly windowMs = 2000) {
    this.drawn = new Window(windowMs);
    this.received = new Window(windowMs);
    this.decode = new Window(windowMs);
    this.encode = new Window(windowMs);
  }

  /** A whole picture arrived: its bytes on the wire and the agent's encode time. */
  pictureReceived(now: number, wireBytes: number, encodeUs: number): void {
    this.received.add(now, wireBytes);
    this.encode.add(now, encodeUs / 1000);
  }

  /** Bytes that came on the video track (its pictures are not counted one by one). */
  bytesReceived(now: number, bytes: number): void {
    this.received.add(now, bytes);
  }

  /** A picture was drawn, `decodeMs` after it was handed to the decoder (null: not known). */
  pictureDrawn(now: number, decodeMs: number | null): void {
    this.drawn.add(now, 1);
    if (decodeMs !== null) this.decode.add(now, Math.max(0, decodeMs));
  }

  /** A pong for a ping sent at `sentAt` (same clock as `now`). */
  pong(now: number, sentAt: number): void {
    if (sentAt <= now) this.rtt = now - sentAt;
  }

  figures(now: number): StatsFigures {
    for (const w of [this.drawn, this.received, this.decode, this.encode]) w.prune(now);
    const seconds = this.windowMs / 1000;
    return {
      fps: this.drawn.count() / seconds,
      kbps: (this.received.sum() * 8) / 1000 / seconds,
      rttMs: this.rtt,
      decodeMs: this.decode.mean(),
      encodeMs: this.encode.mean(),
    };
  }

  reset(): void {
    for (const w of [this.drawn, this.received, this.decode, this.encode]) w.prune(Number.POSITIVE_INFINITY);
    this.rtt = null;
  }
}

/** Figures as the overlay shows them. */
export function formatFigures(f: StatsFigures): Record<"fps" | "bitrate" | "rtt" | "decode" | "encode", string> {
  const ms = (value: number | null) => (value === null ? "–" : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);
  return {
    fps: f.fps.toFixed(f.fps < 10 ? 1 : 0),
    bitrate: f.kbps >= 10_000 ? `${(f.kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(f.kbps)} kbit/s`,
    rtt: ms(f.rttMs),
    decode: ms(f.decodeMs),
    encode: ms(f.encodeMs),
  };
}
