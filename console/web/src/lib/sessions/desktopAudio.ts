// Plays the device's sound in the desktop viewer: Opus packets (20 ms each) decoded with
// WebCodecs' AudioDecoder and scheduled back to back on an AudioContext, a little ahead of the
// clock so that network jitter does not click. When the schedule falls behind (a gap in the
// packets), it starts again LEAD_S ahead; when it runs too far ahead (the tab was busy), it
// drops what it holds and starts again, so the delay never grows.

import { inDesktopApp } from "./nativePeer";
import { NativeSound } from "./nativeSound";

/** How far ahead of the context's clock playback starts: the jitter buffer. */
export const LEAD_S = 0.06;
/** Scheduled further ahead than this, the player starts over (the delay must stay small). */
export const MAX_AHEAD_S = 0.3;

/** Where the next piece of sound goes on the context's clock; pure, so it is unit-tested. */
export function nextStart(now: number, scheduledUntil: number): { at: number; restarted: boolean } {
  if (scheduledUntil < now + 0.005 || scheduledUntil > now + MAX_AHEAD_S) {
    return { at: now + LEAD_S, restarted: true };
  }
  return { at: scheduledUntil, restarted: false };
}

/** Whether this browser can decode Opus with WebCodecs (the desktop app plays sound itself). */
export function canPlayOpus(): boolean {
  return inDesktopApp() || (typeof AudioDecoder !== "undefined" && typeof AudioContext !== "undefined");
}

/** What plays the device's sound: this page's WebAudio, or the desktop app (`nativeSound.ts`). */
export interface SoundPlayer {
  push(packet: Uint8Array): void;
  close(): void;
  readonly played: number;
}

export function openSoundPlayer(channels: number, onError: (why: string) => void): SoundPlayer {
  return inDesktopApp() ? new NativeSound(channels, onError) : new DesktopAudio(channels, onError);
}

export class DesktopAudio {
  private readonly context: AudioContext;
  private readonly decoder: AudioDecoder;
  private scheduledUntil = 0;
  private timestampUs = 0;
  /** Pieces played, for the tests and the overlay. */
  played = 0;

  /** Call from a click (browsers start sound only after a gesture). */
  constructor(channels: number, private readonly onError: (why: string) => void) {
    this.context = new AudioContext({ sampleRate: 48_000, latencyHint: "interactive" });
    this.decoder = new AudioDecoder({
      output: (data) => this.play(data),
      error: (e) => onError(`the sound could not be decoded: ${e.message}`),
    });
    this.decoder.configure({ codec: "opus", sampleRate: 48_000, numberOfChannels: channels });
    void this.context.resume();
  }

  push(packet: Uint8Array): void {
    if (this.decoder.state !== "configured") return;
    this.decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: this.timestampUs, duration: 20_000, data: packet }));
    this.timestampUs += 20_000;
  }

  close(): void {
    if (this.decoder.state !== "closed") this.decoder.close();
    void this.context.close();
  }

  private play(data: AudioData): void {
    const buffer = this.context.createBuffer(data.numberOfChannels, data.numberOfFrames, data.sampleRate);
    for (let channel = 0; channel < data.numberOfChannels; channel++) {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: channel, format: "f32-planar" });
      buffer.copyToChannel(samples, channel);
    }
    data.close();
    const { at } = nextStart(this.context.currentTime, this.scheduledUntil);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect(this.context.destination);
    source.start(at);
    this.scheduledUntil = at + buffer.duration;
    this.played++;
  }
}
