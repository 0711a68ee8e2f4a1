// The viewer's choices that outlive a session (codec, quality, frame rate, scaling, stats),
// kept in localStorage. Anything unreadable falls back to the defaults.

import { CODECS, MAX_FPS, MAX_QUALITY, MIN_FPS, MIN_QUALITY } from "./desktopProtocol";
import type { Codec } from "./desktopProtocol";

export type ScaleMode = "fit" | "actual";

export interface DesktopPrefs {
  codec: Codec | "auto";
  quality: number;
  fps: number;
  scale: ScaleMode;
  stats: boolean;
}

export const DEFAULT_PREFS: DesktopPrefs = { codec: "auto", quality: 60, fps: 30, scale: "fit", stats: false };

/** The frame rates the settings menu offers. */
export const FPS_CHOICES: readonly number[] = [5, 10, 15, 24, 30, 60];

const KEY = "tether.desktop";

export function parsePrefs(text: string | null): DesktopPrefs {
  let raw: Record<string, unknown> = {};
  try {
    const value: unknown = text ? JSON.parse(text) : {};
    if (typeof value === "object" && value !== null && !Array.isArray(value)) raw = value as Record<string, unknown>;
  } catch {
    // Keep the defaults.
  }
  const number = (value: unknown, low: number, high: number, fallback: number) =>
    typeof value === "number" && Number.isFinite(value) ? Math.min(high, Math.max(low, Math.round(value))) : fallback;
  return {
    codec:
      raw.codec === "auto" || (CODECS as readonly unknown[]).includes(raw.codec)
        ? (raw.codec as Codec | "auto")
        : DEFAULT_PREFS.codec,
    quality: number(raw.quality, MIN_QUALITY, MAX_QUALITY, DEFAULT_PREFS.quality),
    fps: number(raw.fps, MIN_FPS, MAX_FPS, DEFAULT_PREFS.fps),
    scale: raw.scale === "actual" ? "actual" : "fit",
    stats: raw.stats === true,
  };
}

export function loadPrefs(storage: Pick<Storage, "getItem"> | undefined = safeStorage()): DesktopPrefs {
  try {
    return parsePrefs(storage?.getItem(KEY) ?? null);
  } catch {
    return { ...DEFAULT_PREFS };
  }
}

export function savePrefs(prefs: DesktopPrefs, storage: Pick<Storage, "setItem"> | undefined = safeStorage()): void {
  try {
    storage?.setItem(KEY, JSON.stringify(prefs));
  } catch {
    // Storage may be full or disabled; the choice just lasts for this page.
  }
}

function safeStorage(): Storage | undefined {
  try {
    return typeof localStorage === "undefined" ? undefined : localStorage;
  } catch {
    return undefined;
  }
}
