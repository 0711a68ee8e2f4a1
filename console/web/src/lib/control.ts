// The control WebSocket client: one connection, requests matched to replies by id, pushed events
// fanned out to listeners, and reconnection with backoff. No DOM or framework here, so the whole
// protocol is unit-tested with a fake socket.

import { Backoff } from "./backoff";
import { isEventFrame, parseFrame } from "./protocol";
import type { Action, Actions, ErrorCode, ServerEvent } from "./protocol";

/** The subset of the browser's WebSocket the client uses. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type SocketFactory = (url: string) => SocketLike;

export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export type ConnectionState = "idle" | "connecting" | "open" | "offline";

export interface StateChange {
  state: ConnectionState;
  /** When offline: milliseconds until the next attempt. */
  retryInMs?: number;
  /** When offline: whether the attempt that just ended had ever opened. */
  wasOpen?: boolean;
}

/** Why a request failed: the server's error code, or one of the client's own. */
export type ControlErrorCode = ErrorCode | "offline" | "disconnected" | "timeout";

export class ControlError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = "ControlError";
  }
}

interface Pending {
  action: string;
  resolve: (result: unknown) => void;
  reject: (error: ControlError) => void;
  timer: unknown;
}

export interface ControlClientOptions {
  url: string;
  createSocket: SocketFactory;
  backoff?: Backoff;
  timers?: Timers;
  /** A request without a reply after this long fails with "timeout". */
  requestTimeoutMs?: number;
}

const OPEN = 1;

const browserTimers: Timers = {
  setTimeout: (callback, ms) => globalThis.setTimeout(callback, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export class ControlClient {
  private socket: SocketLike | null = null;
  private running = false;
  private opened = false;
  private nextId = 1;
  private reconnectTimer: unknown = null;
  private readonly pending = new Map<number, Pending>();
  private readonly eventListeners = new Set<(event: ServerEvent) => void>();
  private readonly stateListeners = new Set<(change: StateChange) => void>();
  private readonly backoff: Backoff;
  private readonly timers: Timers;
  private readonly requestTimeoutMs: number;
  private current: ConnectionState = "idle";

  constructor(private readonly options: ControlClientOptions) {
    this.backoff = options.backoff ?? new Backoff();
    this.timers = options.timers ?? browserTimers;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** Connects, and keeps reconnecting until [`stop`]. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  /** Closes the connection for good (logout); pending requests fail. */
  stop(): void {
    this.running = false;
    if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onclose = socket.onmessage = socket.onerror = null;
      socket.close(1000, "logout");
    }
    this.failPending("disconnected", "The connection was closed.");
    this.setState({ state: "idle" });
  }

  /** Tries now instead of waiting for the backoff timer (the "retry now" button). */
  retryNow(): void {
    if (!this.running || this.current !== "offline") return;
    if (this.reconnectTimer !== null) this.timers.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.connect();
  }

  onEvent(listener: (event: ServerEvent) => void): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  onState(listener: (change: StateChange) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  /**
   * Sends one request and resolves with its result. Fails at once while not connected: a click
   * made offline must not silently run minutes later.
   */
  request<A extends Action>(action: A, args: Actions[A]["args"]): Promise<Actions[A]["result"]> {
    const socket = this.socket;
    if (!socket || this.current !== "open" || socket.readyState !== OPEN) {
      return Promise.reject(new ControlError("offline", "Not connected to the server."));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(id);
        reject(new ControlError("timeout", "The server did not answer in time."));
      }, this.requestTimeoutMs);
      this.pending.set(id, {
        action,
        resolve: resolve as (result: unknown) => void,
        reject,
        timer,
      });
      socket.send(JSON.stringify({ ...args, action, id }));
    });
  }

  private connect(): void {
    this.reconnectTimer = null;
    this.opened = false;
    this.setState({ state: "connecting" });
    let socket: SocketLike;
    try {
      socket = this.options.createSocket(this.options.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => {
      this.opened = true;
      this.backoff.reset();
      this.setState({ state: "open" });
    };
    socket.onmessage = (event) => {
      if (typeof event.data === "string") this.receive(event.data);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.failPending("disconnected", "The connection to the server was lost.");
      this.scheduleReconnect();
    };
    // An error is always followed by a close; the close does the work.
    socket.onerror = () => {};
  }

  private scheduleReconnect(): void {
    if (!this.running) return;
    const delay = this.backoff.next();
    this.setState({ state: "offline", retryInMs: delay, wasOpen: this.opened });
    this.reconnectTimer = this.timers.setTimeout(() => this.connect(), delay);
  }

  private receive(text: string): void {
    const frame = parseFrame(text);
    if (!frame) return;
    if (isEventFrame(frame)) {
      for (const listener of this.eventListeners) listener(frame.event);
      return;
    }
    if (frame.id === undefined) return;
    const pending = this.pending.get(frame.id);
    if (!pending) return;
    this.pending.delete(frame.id);
    this.timers.clearTimeout(pending.timer);
    if (frame.ok) {
      pending.resolve(frame.result);
    } else {
      const code = frame.error?.code ?? "internal";
      pending.reject(new ControlError(code, frame.error?.message ?? "The request failed."));
    }
  }

  private failPending(code: ControlErrorCode, message: string): void {
    for (const pending of this.pending.values()) {
      this.timers.clearTimeout(pending.timer);
      pending.reject(new ControlError(code, message));
    }
    this.pending.clear();
  }

  private setState(change: StateChange): void {
    this.current = change.state;
    for (const listener of this.stateListeners) listener(change);
  }
}

/** `wss://host/control` for the page's own origin. */
export function controlUrl(location: { protocol: string; host: string }): string {
  const scheme = location.protocol === "http:" ? "ws:" : "wss:";
  return `${scheme}//${location.host}/control`;
}
