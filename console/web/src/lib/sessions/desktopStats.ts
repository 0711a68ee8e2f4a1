// The stats overlay's figures over a sliding window: frames drawn per second, bit rate, the last
// round trip (ping/pong), and the picture latency split into capture and encode (the agent's,
// from picture headers and pongs), network (half the round trip) and decode (ours). Callers pass
// the time in, so the maths is unit-tested without clocks.

export interface StatsFigures {
  /** Pictures drawn per second. */
  fps: number;
  /** Picture bytes received, as kilobits per second. */
  kbps: number;
  /** The device's sound (Opus packets received), as kilobits per second. */
  soundKbps: number;
  /** The last ping's round trip, in milliseconds (null before the first pong). */
  rttMs: number | null;
  /** Mean time from handing a picture to the decoder to drawing it, in milliseconds. */
  decodeMs: number | null;
  /** Mean time the agent spent encoding, in milliseconds (from the picture headers; on the
   *  video track, whose pictures have none, the last pong's). */
  encodeMs: number | null;
  /** The agent's screen grab for its latest picture, in milliseconds (the last pong's). */
  captureMs: number | null;
  /** One way through the network: half the round trip. */
  networkMs: number | null;
  /** Capture + encode + network + decode, once all four are known. */
  latencyMs: number | null;
}

/** What the agent said its latest picture cost, in microseconds. */
export interface AgentTiming {
  captureUs?: number;
  encodeUs?: number;
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
  private readonly sound: Window;
  private rtt: number | null = null;
  private agentCaptureMs: number | null = null;
  private agentEncodeMs: number | null = null;

  constructor(private readonly windowMs = 2000) {
    this.drawn = new Window(windowMs);
    this.received = new Window(windowMs);
    this.decode = new Window(windowMs);
    this.encode = new Window(windowMs);
    this.sound = new Window(windowMs);
  }

  /** One packet of the device's sound arrived. */
  audioReceived(now: number, bytes: number): void {
    this.sound.add(now, bytes);
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

  /** A decode time measured apart from drawing (the WebRTC stack's, for track frames). */
  decodeMeasured(now: number, decodeMs: number): void {
    this.decode.add(now, Math.max(0, decodeMs));
  }

  /** A picture was drawn, `decodeMs` after it was handed to the decoder (null: not known). */
  pictureDrawn(now: number, decodeMs: number | null): void {
    this.drawn.add(now, 1);
    if (decodeMs !== null) this.decode.add(now, Math.max(0, decodeMs));
  }

  /** A pong for a ping sent at `sentAt` (same clock as `now`), with the agent's timing. */
  pong(now: number, sentAt: number, agent: AgentTiming = {}): void {
    if (sentAt <= now) this.rtt = now - sentAt;
    if (agent.captureUs !== undefined) this.agentCaptureMs = agent.captureUs / 1000;
    if (agent.encodeUs !== undefined) this.agentEncodeMs = agent.encodeUs / 1000;
  }

  figures(now: number): StatsFigures {
    for (const w of [this.drawn, this.received, this.decode, this.encode, this.sound]) w.prune(now);
    const seconds = this.windowMs / 1000;
    const decodeMs = this.decode.mean();
    const encodeMs = this.encode.mean() ?? this.agentEncodeMs;
    const captureMs = this.agentCaptureMs;
    const networkMs = this.rtt === null ? null : this.rtt / 2;
    const parts = [captureMs, encodeMs, networkMs, decodeMs];
    return {
      fps: this.drawn.count() / seconds,
      kbps: (this.received.sum() * 8) / 1000 / seconds,
      soundKbps: (this.sound.sum() * 8) / 1000 / seconds,
      rttMs: this.rtt,
      decodeMs,
      encodeMs,
      captureMs,
      networkMs,
      latencyMs: parts.every((p) => p !== null) ? parts.reduce((a, b) => a! + b!, 0) : null,
    };
  }

  reset(): void {
    for (const w of [this.drawn, this.received, this.decode, this.encode, this.sound]) w.prune(Number.POSITIVE_INFINITY);
    this.rtt = null;
    this.agentCaptureMs = null;
    this.agentEncodeMs = null;
  }
}

export type ShownFigure = "fps" | "bitrate" | "sound" | "rtt" | "capture" | "encode" | "network" | "decode" | "latency";

/** Figures as the overlay shows them. */
export function formatFigures(f: StatsFigures): Record<ShownFigure, string> {
  const ms = (value: number | null) => (value === null ? "–" : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`);
  return {
    fps: f.fps.toFixed(f.fps < 10 ? 1 : 0),
    bitrate: f.kbps >= 10_000 ? `${(f.kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(f.kbps)} kbit/s`,
    sound: f.soundKbps > 0 ? `${Math.round(f.soundKbps)} kbit/s` : "off",
    rtt: ms(f.rttMs),
    capture: ms(f.captureMs),
    encode: ms(f.encodeMs),
    network: ms(f.networkMs),
    decode: ms(f.decodeMs),
    latency: ms(f.latencyMs),
  };
}
