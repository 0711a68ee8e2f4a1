// asciicast v2 (what the server serves for a recorded terminal session): a JSON header line, then
// one JSON array per event, [seconds, "o" | "r", data]. The player keeps it as data and asks
// where a time falls; drawing is xterm's.

export interface CastEvent {
  /** Seconds from the start. */
  at: number;
  kind: "o" | "r";
  data: string;
}

export interface Cast {
  width: number;
  height: number;
  events: CastEvent[];
  /** Seconds, the last event's time. */
  duration: number;
}

/** Reads a cast; lines that are not events are skipped, a missing header is an error. */
export function parseCast(text: string): Cast {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  const head = JSON.parse(lines[0] ?? "null") as { version?: number; width?: number; height?: number } | null;
  if (!head || head.version !== 2) throw new Error("not an asciicast v2 recording");
  const events: CastEvent[] = [];
  for (const line of lines.slice(1)) {
    try {
      const [at, kind, data] = JSON.parse(line) as [unknown, unknown, unknown];
      if (typeof at === "number" && (kind === "o" || kind === "r") && typeof data === "string") {
        events.push({ at, kind, data });
      }
    } catch {
      // A broken line is left out; the rest still plays.
    }
  }
  events.sort((a, b) => a.at - b.at);
  return {
    width: head.width ?? 80,
    height: head.height ?? 24,
    events,
    duration: events.length ? events[events.length - 1]!.at : 0,
  };
}

/** The index of the first event after `seconds` (so events before it have been shown). */
export function eventIndexAt(cast: Cast, seconds: number): number {
  let low = 0;
  let high = cast.events.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (cast.events[middle]!.at <= seconds) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** `COLSxROWS` of a resize event, if it is one. */
export function resizeOf(event: CastEvent): { cols: number; rows: number } | null {
  const match = /^(\d+)x(\d+)$/.exec(event.data);
  return event.kind === "r" && match ? { cols: Number(match[1]), rows: Number(match[2]) } : null;
}
