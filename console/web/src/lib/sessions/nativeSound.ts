// The desktop app plays the device's sound itself (`console/src/sound.rs`: libopus and cpal, on
// the output chosen here), so the viewer hands it the Opus packets as they come, in order, one
// raw `sound_push` at a time. The browser's player is `desktopAudio.ts`.

import { invoke } from "@tauri-apps/api/core";

/** The output the user chose in the viewer's settings; none means the system's default. */
const OUTPUT_KEY = "tether.app.soundOutput";

export interface SoundOutput {
  name: string;
  default: boolean;
}

export function listOutputs(): Promise<SoundOutput[]> {
  return invoke<SoundOutput[]>("sound_outputs");
}

export function chosenOutput(): string | null {
  try {
    return localStorage.getItem(OUTPUT_KEY);
  } catch {
    return null;
  }
}

export function chooseOutput(name: string | null): void {
  try {
    if (name) localStorage.setItem(OUTPUT_KEY, name);
    else localStorage.removeItem(OUTPUT_KEY);
  } catch {
    // The choice lasts for this page only.
  }
}

export class NativeSound {
  /** Packets handed to the app, for the tests and the overlay. */
  played = 0;
  private readonly id: Promise<number | null>;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(channels: number, private readonly onError: (why: string) => void) {
    this.id = invoke<number>("sound_open", { channels, output: chosenOutput() }).catch((e: unknown) => {
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
