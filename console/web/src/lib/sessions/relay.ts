// One relayed session socket (`/meshrelay.ashx?id=TOKEN`) from the console's side: waits for the
// server's "c" (both ends joined), then hands text frames (JSON control messages) and binary
// frames (the session's bytes) to the session. No DOM or framework here, so it is unit-tested
// with a fake socket.

/** The text frame the server sends once both ends are in. */
export const PAIRED = "c";

/** The subset of the browser's WebSocket a relay session uses. */
export interface RelaySocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type RelaySocketFactory = (url: string) => RelaySocketLike;

export interface RelayHandlers {
  /** Both ends are in: the session may send now. */
  onPaired(): void;
  /** A text frame, parsed as JSON (frames that are not JSON objects are dropped). */
  onMessage(message: Record<string, unknown>): void;
  onBytes(bytes: Uint8Array): void;
  /** The socket closed; `paired` says whether the session had started. */
  onClosed(info: { paired: boolean; code: number; reason: string }): void;
}

/** What a session needs to send; also what the file transfer code is tested against. */
export interface RelayChannel {
  sendJson(message: object): void;
  sendBytes(bytes: Uint8Array<ArrayBuffer>): void;
  /** Bytes queued in the browser and not yet handed to the network. */
  readonly bufferedAmount: number;
}

/** `wss://host/meshrelay.ashx?id=…` for the path the server answered `createSession` with. */
export function relaySocketUrl(path: string, location: { protocol: string; host: string }): string {
  if (!path.startsWith("/")) throw new Error(`unexpected relay URL ${path}`);
  const scheme = location.protocol === "http:" ? "ws:" : "wss:";
  return `${scheme}//${location.host}${path}`;
}

export class RelayConnection implements RelayChannel {
  private readonly socket: RelaySocketLike;
  private paired = false;
  private closed = false;

  constructor(url: string, handlers: RelayHandlers, createSocket: RelaySocketFactory = browserSocket) {
    const socket = createSocket(url);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      const data = event.data;
      if (typeof data === "string") {
        if (!this.paired) {
          if (data === PAIRED) {
            this.paired = true;
            handlers.onPaired();
          }
          return;
        }
        const message = parseJsonObject(data);
        if (message) handlers.onMessage(message);
      } else if (data instanceof ArrayBuffer) {
        if (this.paired) handlers.onBytes(new Uint8Array(data));
      }
    };
    socket.onclose = (event) => {
      if (this.closed) return;
      this.closed = true;
      handlers.onClosed({ paired: this.paired, code: event.code, reason: event.reason });
    };
    socket.onerror = () => undefined;
    this.socket = socket;
  }

  get isPaired(): boolean {
    return this.paired && !this.closed;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  sendJson(message: object): void {
    if (this.isPaired) this.socket.send(JSON.stringify(message));
  }

  sendBytes(bytes: Uint8Array<ArrayBuffer>): void {
    if (this.isPaired) this.socket.send(bytes);
  }

  /** Ends the session (the agent stops the shell or transfer when its side closes). */
  close(): void {
    this.closed = true;
    this.socket.close(1000, "closed by the console");
  }
}

function browserSocket(url: string): RelaySocketLike {
  return new WebSocket(url) as unknown as RelaySocketLike;
}

function parseJsonObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}
