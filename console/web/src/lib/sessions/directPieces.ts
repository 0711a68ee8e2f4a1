// Session messages too big for one data-channel message: the console's half of
// `common/src/relay/pieces.rs` (whose comments explain why). On the data channel a message bigger
// than PIECE bytes travels as a text header `{"type":"rtcPieces","parts":N,"text":bool}` followed
// by exactly N binary pieces; smaller messages pass unchanged. Applied on the direct path only.

import type { Payload } from "./pathSwitch";

/** Largest data-channel message either side sends (RFC 8841's default max-message-size). */
export const PIECE = 64 * 1024;
/** Largest session message (`MAX_RELAY_FRAME`). */
export const MAX_MESSAGE = 1024 * 1024;

const HEADER_PREFIX = '{"type":"rtcPieces",';

export class PiecesError extends Error {}

/** The data-channel messages that carry `payload`. */
export function splitPayload(payload: Payload): Payload[] {
  let bytes: Uint8Array<ArrayBuffer>;
  let text: boolean;
  if (typeof payload === "string") {
    // A UTF-16 unit is at most 3 UTF-8 bytes: most texts are known to fit without encoding them.
    if (payload.length * 3 <= PIECE) return [payload];
    bytes = new TextEncoder().encode(payload) as Uint8Array<ArrayBuffer>;
    if (bytes.byteLength <= PIECE) return [payload];
    text = true;
  } else {
    if (payload.byteLength <= PIECE) return [payload];
    bytes = payload;
    text = false;
  }
  const parts = Math.ceil(bytes.byteLength / PIECE);
  const messages: Payload[] = [`${HEADER_PREFIX}"parts":${parts},"text":${text}}`];
  for (let at = 0; at < bytes.byteLength; at += PIECE) messages.push(bytes.slice(at, at + PIECE));
  return messages;
}

/** Joins what `splitPayload` (or the agent) made; feed it every data-channel message in order. */
export class PiecesJoiner {
  private pending: { left: number; text: boolean; chunks: Uint8Array[]; size: number } | null = null;

  /** The session message `message` completes, if any; throws `PiecesError` on broken framing. */
  push(message: Payload): Payload | null {
    const pending = this.pending;
    if (!pending) {
      if (typeof message !== "string" || !message.startsWith(HEADER_PREFIX)) return message;
      let header: unknown;
      try {
        header = JSON.parse(message);
      } catch {
        return message;
      }
      const { parts, text } = header as { parts?: unknown; text?: unknown };
      if (typeof parts !== "number" || typeof text !== "boolean") return message;
      if (!Number.isInteger(parts) || parts < 1 || parts > Math.ceil(MAX_MESSAGE / PIECE)) {
        throw new PiecesError(`a pieces header announces ${parts} parts`);
      }
      this.pending = { left: parts, text, chunks: [], size: 0 };
      return null;
    }
    if (typeof message === "string") throw new PiecesError("a text message came where a piece was due");
    if (message.byteLength > PIECE) throw new PiecesError(`a piece is larger than ${PIECE} bytes`);
    pending.chunks.push(message);
    pending.size += message.byteLength;
    pending.left -= 1;
    if (pending.left > 0) return null;
    this.pending = null;
    const joined = new Uint8Array(pending.size);
    let at = 0;
    for (const chunk of pending.chunks) {
      joined.set(chunk, at);
      at += chunk.byteLength;
    }
    if (!pending.text) return joined;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(joined);
    } catch {
      throw new PiecesError("a message sent in pieces is not UTF-8 text");
    }
  }
}
