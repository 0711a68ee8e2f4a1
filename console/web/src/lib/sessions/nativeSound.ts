// The desktop app plays the device's sound itself (`console/src/sound.rs`: libopus and cpal, on
// the output chosen here), so the viewer hands it the Opus packets as they come, in order, one
// raw `sound_push` at a time. The browser's player is `desktopAudio.ts`.

import { invoke } from "@tauri-apps/api/core";

/** A sound device the app lists (`sound.rs`), by the name it is chosen by. */
export interface SoundDevice {
  name: string;
  default: boolean;
}

/** A device the user chose, kept by this page; `null` means the system's default. */
export interface DeviceChoice {
  get(): string | null;
  set(name: string | null): void;
}

function rememberedChoice(key: string): DeviceChoice {
  return {
    get() {
      try {
        return localStorage.getItem(key);
      } catch {
        return null;
      }
    },
    set(name) {
      try {
        if (name) localStorage.setItem(key, name);
        else localStorage.removeItem(key);
      } catch {
        // The choice lasts for this page only.
      }
    },
  };
}

/** The output for the device's sound and calls (the viewer's settings, the call bar). */
export const outputChoice = rememberedChoice("tether.app.soundOutput");
/** The microphone for calls (the call bar). */
export const inputChoice = rememberedChoice("tether.app.microphone");

export function listOutputs(): Promise<SoundDevice[]> {
  return invoke<SoundDevice[]>("sound_outputs");
}

export function listInputs(): Promise<SoundDevice[]> {
  return invoke<SoundDevice[]>("sound_inputs");
}

export class NativeSound {
  /** Packets handed to the app, for the tests and the overlay. */
  played = 0;
  private readonly id: Promise<number | null>;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(channels: number, private readonly onError: (why: string) => void) {
    this.id = invoke<number>("sound_open", { channels, output: outputChoice.get() }).catch((e: unknown) => {
      onError(`The app cannot play the device's sound: ${String(e)}`);
      return null;
    });
  }

  push(packet: Uint8Array): void {
    if (this.closed) return;
    // A copy: the packet is a view into the frame, and only its own bytes must go.
    const bytes = packet.slice();
    this.queue = this.queue.then(async () => {
      const id = await this.id;
      if (id === null || this.closed) return;
      await invoke("sound_push", bytes, { headers: { "tether-sound": String(id) } }).then(
        () => (this.played += 1),
        (e: unknown) => {
          this.closed = true;
          this.onError(`The device's sound stopped: ${String(e)}`);
        },
      );
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.id.then((id) => (id === null ? undefined : invoke("sound_close", { id }).catch(() => undefined)));
  }
}
