// Which codecs this browser can show: H.264 or VP8 through WebCodecs when `VideoDecoder` says it
// can, JPEG tiles always (decoded by the browser's image decoder). The first supported one in
// PREFERENCE is the default; the user may pick another.

import type { Codec } from "./desktopProtocol";

export const PREFERENCE: readonly Codec[] = ["h264", "vp8", "jpeg"];

/** The codec strings asked about (the agent's own string is what the decoder is configured with). */
export const PROBE_STRINGS: Readonly<Record<Exclude<Codec, "jpeg">, string>> = {
  // Constrained Baseline, level 3.1: what libx264 with no B-frames produces for usual screens.
  h264: "avc1.42e01f",
  vp8: "vp8",
};

export const CODEC_LABELS: Readonly<Record<Codec, string>> = {
  h264: "H.264",
  vp8: "VP8",
  jpeg: "JPEG tiles",
};

/** The part of the WebCodecs `VideoDecoder` class this needs (absent in older browsers). */
export interface DecoderProbe {
  isConfigSupported(config: { codec: string; optimizeForLatency?: boolean }): Promise<{ supported?: boolean }>;
}

/** The codecs this browser decodes, in order of preference; always ends with `jpeg`. */
export async function supportedCodecs(probe: DecoderProbe | undefined = browserProbe()): Promise<Codec[]> {
  const out: Codec[] = [];
  for (const codec of PREFERENCE) {
    if (codec === "jpeg") continue;
    if (!probe) break;
    try {
      const answer = await probe.isConfigSupported({ codec: PROBE_STRINGS[codec], optimizeForLatency: true });
      if (answer.supported) out.push(codec);
    } catch {
      // An exception means "not this one".
    }
  }
  out.push("jpeg");
  return out;
}

/** The user's choice if it is supported, else the best supported codec. */
export function chooseCodec(supported: readonly Codec[], wanted: Codec | "auto"): Codec {
  if (wanted !== "auto" && supported.includes(wanted)) return wanted;
  return PREFERENCE.find((codec) => supported.includes(codec)) ?? "jpeg";
}

/** The next codec to try after `failed` could not be decoded. */
export function fallbackCodec(supported: readonly Codec[], failed: Codec): Codec | null {
  const rest = supported.filter((codec) => PREFERENCE.indexOf(codec) > PREFERENCE.indexOf(failed));
  return rest[0] ?? null;
}

function browserProbe(): DecoderProbe | undefined {
  return typeof VideoDecoder === "undefined" ? undefined : (VideoDecoder as unknown as DecoderProbe);
}
