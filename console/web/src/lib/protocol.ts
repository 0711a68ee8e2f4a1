// The /control protocol. Every type comes from protocol.gen.ts, which a Rust unit test generates
// from common/src/control.rs (the source of truth; see that file's header to regenerate). This
// file adds only what cannot be generated: reading frames off the socket.

import type { EventFrame, Reply } from "./protocol.gen";

export * from "./protocol.gen";

/** Reads one text frame from the server: a reply, an event, or `null` for anything else. */
export function parseFrame(text: string): Reply | EventFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const frame = value as Record<string, unknown>;
  if (frame.action === "event") {
    const event = frame.event as Record<string, unknown> | undefined;
    return typeof event?.type === "string" ? (frame as unknown as EventFrame) : null;
  }
  if (typeof frame.ok !== "boolean") return null;
  return frame as unknown as Reply;
}

export function isEventFrame(frame: Reply | EventFrame): frame is EventFrame {
  return frame.action === "event" && "event" in frame;
}
