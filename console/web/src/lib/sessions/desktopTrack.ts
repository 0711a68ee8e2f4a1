// The desktop's pictures from the direct path's H.264 video track (issue 13). The browser's
// WebRTC stack receives and decodes the track (and sends PLI/FIR itself when it loses pictures);
// every decoded frame is drawn onto the same canvas the in-band pictures use, so the cursor
// overlay, input mapping, screenshots and the stats overlay work unchanged. Frames are read with
// MediaStreamTrackProcessor where the browser has it (Chromium): each as soon as it is decoded,
// which saves the compositor's frame or two of a <video>; elsewhere a hidden <video> plays the
// track and requestVideoFrameCallback draws what it presents. The <video> plays in both cases
// (tests and the devtools look at it). The agent says when its pictures move to the track (`stream`
// with `track: true`) and back; until then the canvas shows in-band pictures.

import type { TrackEventLike } from "./direct";
import type { DesktopStats } from "./desktopStats";

/** How often the received bytes are read for the stats overlay's bit rate. */
export const BYTES_EVERY_MS = 1000;

type FrameMetadata = { processingDuration?: number };
type ProcessorConstructor = new (init: { track: MediaStreamTrack }) => { readable: ReadableStream<VideoFrame> };
type VideoWithFrames = HTMLVideoElement & {
  requestVideoFrameCallback?(callback: (now: number, metadata: FrameMetadata) => void): number;
  cancelVideoFrameCallback?(handle: number): void;
};

export class TrackPictures {
  private readonly video: VideoWithFrames;
  private readonly context: CanvasRenderingContext2D | null;
  private receiver: RTCRtpReceiver | null = null;
  private active = false;
  private frameHandle: number | null = null;
  private bytesTimer: ReturnType<typeof setInterval> | null = null;
  private lastCounters: InboundCounters | null = null;
  private reader: ReadableStreamDefaultReader<VideoFrame> | null = null;
  /** Frames drawn from the track (shown as the canvas's `data-track-frames`). */
  private frames = 0;
  private closed = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly stats: DesktopStats,
  ) {
    this.context = canvas.getContext("2d", { alpha: false });
    const video = document.createElement("video") as VideoWithFrames;
    video.muted = true;
    video.autoplay = true;
    video.playsInline = true;
    video.dataset.testid = "desktop-track";
    // In the document (a detached video may not present frames), but invisible and inert.
    video.style.cssText = "position:absolute;width:1px;height:1px;opacity:0;pointer-events:none;";
    canvas.parentElement?.appendChild(video);
    this.video = video;
  }

  /** The agent's track arrived; it shows once the agent says its pictures are there. */
  attach(event: TrackEventLike): void {
    if (this.closed) return;
    this.receiver = event.receiver;
    // A remote desktop wants the newest picture now, not smooth playback: no extra buffering.
    const tunable = event.receiver as RTCRtpReceiver & { jitterBufferTarget?: number | null };
    if ("jitterBufferTarget" in tunable) tunable.jitterBufferTarget = 0;
    this.video.srcObject = new MediaStream([event.track]);
    void this.video.play().catch(() => undefined);
    const Processor = (globalThis as { MediaStreamTrackProcessor?: ProcessorConstructor }).MediaStreamTrackProcessor;
    if (Processor) {
      this.reader = new Processor({ track: event.track }).readable.getReader();
      void this.pump(this.reader);
    } else {
      this.schedule();
    }
  }

  private async pump(reader: ReadableStreamDefaultReader<VideoFrame>): Promise<void> {
    try {
      for (;;) {
        const { value: frame, done } = await reader.read();
        if (done || !frame) return;
        try {
          // The decode time of a track frame is the WebRTC stack's business: not known here.
          this.draw(frame, null);
        } finally {
          frame.close();
        }
      }
    } catch {
      // The track ended or the reader was cancelled (the session is over).
    }
  }

  /** Whether the pictures come on the track (the latest `stream` event says). */
  setActive(active: boolean): void {
    this.active = active && !this.closed;
    if (this.active && this.bytesTimer === null) {
      this.bytesTimer = setInterval(() => void this.readBytes(), BYTES_EVERY_MS);
    } else if (!this.active && this.bytesTimer !== null) {
      clearInterval(this.bytesTimer);
      this.bytesTimer = null;
      this.lastCounters = null;
    }
  }

  get isActive(): boolean {
    return this.active;
  }

  close(): void {
    this.closed = true;
    this.setActive(false);
    if (this.frameHandle !== null) this.video.cancelVideoFrameCallback?.(this.frameHandle);
    void this.reader?.cancel().catch(() => undefined);
    this.reader = null;
    this.video.srcObject = null;
    this.video.remove();
  }

  private schedule(): void {
    if (this.closed || this.frameHandle !== null || !this.video.requestVideoFrameCallback) return;
    this.frameHandle = this.video.requestVideoFrameCallback((now, metadata) => {
      this.frameHandle = null;
      this.presented(now, metadata);
      this.schedule();
    });
  }

  private presented(_now: number, metadata: FrameMetadata): void {
    // processingDuration: seconds from the frame's arrival to its decoding (WebRTC sources).
    this.draw(this.video, (metadata.processingDuration ?? 0) * 1000);
  }

  private draw(source: CanvasImageSource, decodeMs: number | null): void {
    if (!this.active || this.closed || !this.context) return;
    this.context.drawImage(source, 0, 0, this.canvas.width, this.canvas.height);
    this.frames += 1;
    this.canvas.dataset.trackFrames = String(this.frames);
    this.stats.pictureDrawn(performance.now(), decodeMs);
  }

  /** Reads the receiver's counters: bytes for the bit rate, and (where frames are drawn without
   * a decode time of their own) the stack's decode time per frame since the last reading. */
  private async readBytes(): Promise<void> {
    const receiver = this.receiver;
    if (!receiver) return;
    const report = await receiver.getStats();
    let now = null as InboundCounters | null;
    report.forEach((entry: InboundCounters & { type?: string }) => {
      if (entry.type === "inbound-rtp" && typeof entry.bytesReceived === "number") now = entry;
    });
    if (now === null || !this.active) return;
    const at = performance.now();
    const last = this.lastCounters;
    if (last !== null) {
      this.stats.bytesReceived(at, Math.max(0, now.bytesReceived - last.bytesReceived));
      const decodeMs = decodePerFrameMs(last, now);
      if (decodeMs !== null && this.reader) this.stats.decodeMeasured(at, decodeMs);
    }
    this.lastCounters = now;
  }
}

/** What an `inbound-rtp` stats entry says of received bytes and decoding. */
interface InboundCounters {
  bytesReceived: number;
  /** Seconds spent decoding, in all. */
  totalDecodeTime?: number;
  framesDecoded?: number;
}

/** The mean decode time (ms) of the frames decoded between two readings; null without frames. */
export function decodePerFrameMs(before: InboundCounters, after: InboundCounters): number | null {
  const frames = (after.framesDecoded ?? 0) - (before.framesDecoded ?? 0);
  const seconds = (after.totalDecodeTime ?? 0) - (before.totalDecodeTime ?? 0);
  if (frames <= 0 || seconds < 0) return null;
  return (seconds * 1000) / frames;
}
