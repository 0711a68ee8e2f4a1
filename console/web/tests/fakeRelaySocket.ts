// A scripted stand-in for a session's relay WebSocket: records what the console sends and lets a
// test play the server's side.

import type { RelaySocketLike } from "../src/lib/sessions/relay";

export class FakeRelaySocket implements RelaySocketLike {
  binaryType = "blob";
  bufferedAmount = 0;
  sent: Array<string | Uint8Array> = [];
  closedWith: { code?: number; reason?: string } | null = null;
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  send(data: string | Uint8Array): void {
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { code, reason };
  }

  /** The server sends a text frame (an object is sent as its JSON). */
  text(message: object | string): void {
    this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  /** The text frames the console sent, parsed as JSON. */
  json(): Array<Record<string, unknown>> {
    return this.sent.filter((s): s is string => typeof s === "string").map((s) => JSON.parse(s) as Record<string, unknown>);
  }
}
