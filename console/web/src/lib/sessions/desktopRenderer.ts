// Draws pictures onto the viewer's canvas: video frames through a WebCodecs VideoDecoder (H.264
// Annex B or VP8), JPEG tiles through the browser's image decoder. Each picture is reported
// drawn (to be acknowledged) or dropped (acknowledged, and a key frame asked for) exactly once,
// so the agent's window of unacknowledged pictures always moves on.

import { FLAG_KEY, KIND_VIDEO, splitTiles } from "./desktopProtocol";
import type { Picture, StreamInfo } from "./desktopProtocol";

export interface RendererHost {
  drawn(seq: number, decodeMs: number): void;
  /**
   * The picture could not be shown. `needKey`: the decoder cannot go on without a key frame
   * (false for pictures of a stream that was just replaced, whose first picture is a key frame).
   */
  dropped(seq: number, needKey: boolean): void;
  /** The decoder refuses this stream's codec: the viewer should ask for another. */
  unsupported(stream: StreamInfo, reason: string): void;
  /** The canvas got a new pixel size (the cursor overlay and the fit follow it). */
  resized(width: number, height: number): void;
}

interface Pending {
  seq: number;
  submittedAt: number;
}

export class PictureRenderer {
  private readonly context: CanvasRenderingContext2D;
  private stream: StreamInfo | null = null;
  private decoder: VideoDecoder | null = null;
  /** Nothing but a key frame can be decoded (a new decoder, or one that failed). */
  private needKey = true;
  /** Decoder inputs by chunk timestamp (a counter, not the seq: seqs may restart). */
  private readonly pending = new Map<number, Pending>();
  private nextTimestamp = 0;
  /** JPEG pictures are drawn one after the other, in order. */
  private tiles: Promise<void> = Promise.resolve();
  private generation = 0;
  private closed = false;

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly host: RendererHost,
    private readonly now: () => number = () => performance.now(),
  ) {
    const context = canvas.getContext("2d", { alpha: false });
    if (!context) throw new Error("this browser cannot draw on a canvas");
    this.context = context;
  }

  /** A `stream` event: a new size or codec. The next picture is a key frame. */
  configure(stream: StreamInfo): void {
    this.generation += 1;
    this.stream = stream;
    this.resize(stream.width, stream.height);
    this.closeDecoder(false);
    this.needKey = true;
    // Track pictures are decoded by the browser's WebRTC stack (`desktopTrack.ts`).
    if (stream.codec !== "jpeg" && !stream.track) this.openDecoder(stream);
  }

  draw(picture: Picture): void {
    if (this.closed) return;
    const { header } = picture;
    if (header.kind === KIND_VIDEO) this.decode(picture);
    else this.drawTiles(picture);
  }

  close(): void {
    this.closed = true;
    this.closeDecoder(false);
  }

  private resize(width: number, height: number): void {
    if (width <= 0 || height <= 0) return;
    if (this.canvas.width === width && this.canvas.height === height) return;
    this.canvas.width = width;
    this.canvas.height = height;
    this.host.resized(width, height);
  }

  // ---- video ----

  private openDecoder(stream: StreamInfo): void {
    const generation = this.generation;
    const decoder = new VideoDecoder({
      output: (frame) => this.output(frame, generation),
      error: (error) => this.failed(decoder, stream, error),
    });
    try {
      decoder.configure({
        codec: stream.codecString,
        codedWidth: stream.width,
        codedHeight: stream.height,
        optimizeForLatency: true,
      });
    } catch (error) {
      this.host.unsupported(stream, error instanceof Error ? error.message : String(error));
      return;
    }
    this.decoder = decoder;
  }

  private decode(picture: Picture): void {
    const { header, payload } = picture;
    const key = (header.flags & FLAG_KEY) !== 0;
    const decoder = this.decoder;
    if (!decoder || decoder.state !== "configured" || (this.needKey && !key)) {
      this.host.dropped(header.seq, true);
      return;
    }
    if (header.width > 0 && header.height > 0 && key) this.resize(header.width, header.height);
    const timestamp = this.nextTimestamp++;
    this.pending.set(timestamp, { seq: header.seq, submittedAt: this.now() });
    try {
      decoder.decode(new EncodedVideoChunk({ type: key ? "key" : "delta", timestamp, data: payload }));
      this.needKey = false;
    } catch {
      // A chunk the decoder refuses outright (e.g. a delta it cannot follow): start over.
      this.restartDecoder();
    }
  }

  private output(frame: VideoFrame, generation: number): void {
    try {
      const pending = this.pending.get(frame.timestamp);
      this.pending.delete(frame.timestamp);
      if (generation !== this.generation || this.closed) return;
      this.context.drawImage(frame, 0, 0, this.canvas.width, this.canvas.height);
      if (pending) this.host.drawn(pending.seq, this.now() - pending.submittedAt);
    } finally {
      frame.close();
    }
  }

  private failed(decoder: VideoDecoder, stream: StreamInfo, error: DOMException): void {
    if (decoder !== this.decoder || this.closed) return;
    if (error.name === "NotSupportedError") {
      this.decoder = null;
      this.dropPending(false);
      this.host.unsupported(stream, error.message);
      return;
    }
    this.restartDecoder();
  }

  /** A decoder that failed is closed for good: make a new one and wait for a key frame. */
  private restartDecoder(): void {
    const stream = this.stream;
    this.closeDecoder(true);
    this.needKey = true;
    if (stream && stream.codec !== "jpeg") this.openDecoder(stream);
  }

  private closeDecoder(needKey: boolean): void {
    const decoder = this.decoder;
    this.decoder = null;
    if (decoder && decoder.state !== "closed") decoder.close();
    this.dropPending(needKey);
  }

  /** Pictures handed to a decoder that is gone: acknowledge them (acks are cumulative). */
  private dropPending(needKey: boolean): void {
    const last = [...this.pending.values()].pop();
    this.pending.clear();
    if (last && !this.closed) this.host.dropped(last.seq, needKey);
  }

  // ---- JPEG tiles ----

  private drawTiles(picture: Picture): void {
    const generation = this.generation;
    const { header, payload } = picture;
    const submittedAt = this.now();
    this.tiles = this.tiles.then(async () => {
      const tiles = splitTiles(payload);
      if (!tiles || this.closed) {
        if (!this.closed) this.host.dropped(header.seq, true);
        return;
      }
      const images = await Promise.allSettled(
        tiles.map((tile) => createImageBitmap(new Blob([tile.jpeg as Uint8Array<ArrayBuffer>], { type: "image/jpeg" }))),
      );
      let failed = false;
      for (const [index, result] of images.entries()) {
        if (result.status === "rejected") {
          failed = true;
          continue;
        }
        const tile = tiles[index]!;
        if (generation === this.generation && !this.closed) {
          this.context.drawImage(result.value, tile.x, tile.y, tile.width, tile.height);
        }
        result.value.close();
      }
      if (failed) this.host.dropped(header.seq, true);
      else this.host.drawn(header.seq, this.now() - submittedAt);
    });
  }
}
