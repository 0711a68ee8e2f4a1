// One session from the console's side. It starts on the relay socket (`/meshrelay.ashx?id=TOKEN`):
// waits for the server's "c" (both ends joined), then hands text frames (JSON control messages)
// and binary frames (the session's bytes) to the session. When the server offers a direct path
// (the ticket's `direct`), it also tries a WebRTC data channel to the agent (`direct.ts`) and
// moves the session onto it exactly once per direction (`pathSwitch.ts`); the session code sees
// the same messages in the same order either way. No DOM or framework here, so it is unit-tested
// with a fake socket and a fake peer connection.

import type { ConsentMode, DirectPath } from "../protocol.gen";
import { DirectAttempt, asRtcSignal, type PeerConnectionFactory, type Role, type RtcSignal, type TrackEventLike } from "./direct";
import { PathSwitch, SwitchError, asSwitchSignal, signalText, type Path, type Payload } from "./pathSwitch";
import { PiecesError, PiecesJoiner, splitPayload } from "./directPieces";

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
  /** Where the session's data now travels (both directions on the data channel: "direct"). */
  onPath?(path: Path, detail: string): void;
  /** The agent's video track arrived (only with the `video` option). */
  onTrack?(event: TrackEventLike): void;
  /** A chat's answering page learnt the console's ICE configuration (from its offer). */
  onPeerConfig?(config: DirectPath): void;
  /** The person at the device is being asked to accept; they have `timeoutSecs` to answer. */
  onConsentAsked?(timeoutSecs: number): void;
}

export interface RelayOptions {
  /** The ticket's offer of a direct path; absent or null keeps the session on the relay. */
  direct?: DirectPath | null;
  createSocket?: RelaySocketFactory;
  createPeer?: PeerConnectionFactory;
  /** Offer a receive-only video track beside the data channel (desktop sessions). */
  video?: boolean;
  /** The device this session is with: its key must sign the direct-path answer (`pathProof.ts`). */
  device?: string;
  /** The ticket's `consent`: with "prompt" the session starts only once the agent says granted. */
  consent?: ConsentMode;
  /**
   * A chat: the other end is a browser. The console's offer carries its ICE configuration, and
   * the device user's page (`answer`) answers offers instead of making one.
   */
  peer?: "browser-offer" | "browser-answer";
}

/** What a view needs to start (or restart) its session: `createSession`'s ticket, or a guest's. */
export interface SessionStart {
  url: string;
  direct: DirectPath | null;
  consent: ConsentMode;
}

/** The close code of an agent that refused a session for want of consent (its reason says why). */
export const CONSENT_REFUSED_CODE = 4003;

/** Why a session ended before it started, as a sentence: the agent's reason when it refused. */
export function notStartedText(code: number, reason: string): string {
  return code === CONSENT_REFUSED_CODE && reason ? sentence(reason) : "The device did not join the session.";
}

/** What a view shows while the person at the device decides. */
export function consentWaitText(timeoutSecs: number): string {
  return `Waiting for the person at the device to accept (up to ${timeoutSecs} s)…`;
}

function sentence(text: string): string {
  const capital = text.charAt(0).toUpperCase() + text.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
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

/** WebSocket close code 1008: the server ended the session by its policy. */
export const POLICY_CLOSE = 1008;

/** The close code and reason when the direct path dies after the switch (the viewer may reopen). */
export const DIRECT_LOST = { code: 4001, reason: "the direct path was lost" };

/**
 * How long the relay's close waits for the agent's last messages on the data channel (its
 * `rtcEnd`): the close can overtake them. After that, what is missing is lost: DIRECT_LOST.
 */
export const END_WAIT_MS = 10_000;

export class RelayConnection implements RelayChannel {
  private readonly socket: RelaySocketLike;
  private readonly paths = new PathSwitch();
  private attempt: DirectAttempt | null = null;
  /** Big messages arrive on the data channel in pieces (`directPieces.ts`). */
  private readonly joiner = new PiecesJoiner();
  private paired = false;
  /** "c" came, but the person at the device has not accepted yet. */
  private awaitingConsent = false;
  private closed = false;
  private path: Path = "relay";
  /** The relay closed before the agent's last channel messages arrived; passed on once they have. */
  private heldClose: { code: number; reason: string; timer: ReturnType<typeof setTimeout> } | null = null;

  private readonly device: string | null;
  private readonly options: RelayOptions;

  constructor(url: string, private readonly handlers: RelayHandlers, options: RelayOptions = {}) {
    this.device = options.device ?? null;
    this.options = options;
    const socket = (options.createSocket ?? browserSocket)(url);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => {
      const data = event.data;
      if (typeof data === "string") {
        const start = () => {
          this.paired = true;
          handlers.onPaired();
          if (options.direct) this.tryDirect(options.direct, options.createPeer, options.video ?? false);
        };
        if (this.awaitingConsent) {
          const consent = parseJsonObject(data);
          if (consent?.type !== "consent") return; // the refusal's reason comes with the close
          if (consent.state === "asking" && typeof consent.timeoutSecs === "number") {
            handlers.onConsentAsked?.(consent.timeoutSecs);
          } else if (consent.state === "granted") {
            this.awaitingConsent = false;
            start();
          }
          return;
        }
        if (!this.paired) {
          if (data === PAIRED) {
            if (options.consent === "prompt") this.awaitingConsent = true;
            else start();
          }
          return;
        }
        this.onRelayText(data);
      } else if (data instanceof ArrayBuffer) {
        if (this.paired) this.guard(() => this.paths.relayData(new Uint8Array(data)));
      }
    };
    socket.onclose = (event) => {
      if (this.closed || this.heldClose) return;
      // A policy close is the server ending the session (a right or a guest link revoked): it
      // ends now, whatever may still be on its way on the direct path.
      if (this.paired && !this.paths.peerDone && event.code !== POLICY_CLOSE) {
        const timer = setTimeout(() => this.endSession(DIRECT_LOST.code, DIRECT_LOST.reason), END_WAIT_MS);
        this.heldClose = { code: event.code, reason: event.reason, timer };
        return;
      }
      this.closed = true;
      this.attempt?.close();
      handlers.onClosed({ paired: this.paired, code: event.code, reason: event.reason });
    };
    socket.onerror = () => undefined;
    this.socket = socket;
  }

  get isPaired(): boolean {
    return this.paired && !this.closed;
  }

  /** Where our data goes now. */
  get sendingPath(): Path {
    return this.paths.sendingPath;
  }

  /** Bytes queued in the browser on the path our data now takes. */
  get bufferedAmount(): number {
    return this.paths.sendingPath === "direct" && this.attempt ? this.attempt.bufferedAmount : this.socket.bufferedAmount;
  }

  sendJson(message: object): void {
    if (!this.isPaired) return;
    this.paths.send(JSON.stringify(message));
    this.flush();
  }

  sendBytes(bytes: Uint8Array<ArrayBuffer>): void {
    if (!this.isPaired) return;
    this.paths.send(bytes);
    this.flush();
  }

  /** Ends the session (the agent stops the shell or transfer when its side closes). */
  close(): void {
    if (this.closed) return;
    // On the channel, `rtcEnd` tells the agent it has everything even if this close overtakes.
    this.paths.finish();
    this.flush();
    if (this.paths.sendingPath === "direct" || this.paths.receivingPath === "direct") {
      // For the server's audit record, which cannot see the channel (`RtcTotals` in signal.rs).
      const { sent, received } = this.paths.directBytes;
      this.socket.send(JSON.stringify({ type: "rtcTotals", directToDevice: sent, directFromDevice: received }));
    }
    this.closed = true;
    if (this.heldClose) clearTimeout(this.heldClose.timer);
    this.attempt?.close();
    this.socket.close(1000, "closed by the console");
  }

  private tryDirect(direct: DirectPath, createPeer: PeerConnectionFactory | undefined, video: boolean, role: Role = "offer"): void {
    try {
      this.startAttempt(direct, createPeer, video, role);
    } catch (e) {
      // A webview without WebRTC (the desktop app's WebKitGTK): the session stays relayed.
      this.attempt = null;
      this.handlers.onPath?.("relay", `this browser cannot make a direct path: ${String(e)}`);
    }
  }

  private startAttempt(direct: DirectPath, createPeer: PeerConnectionFactory | undefined, video: boolean, role: Role): void {
    this.attempt = new DirectAttempt(
      direct,
      {
        signal: (message: RtcSignal) => {
          if (!this.closed) this.socket.send(JSON.stringify(message));
        },
        onOpen: () => this.guard(() => this.paths.directOpened()),
        onMessage: (message) =>
          this.guard(() => {
            const payload = this.joiner.push(message);
            if (payload !== null) this.paths.directData(payload);
          }),
        onFailed: (why) => {
          try {
            this.paths.directFailed();
            // The agent ended the session and dropped its channel: its close is on the way.
            if (this.paths.receivingPath === "direct") return;
            this.handlers.onPath?.("relay", why);
          } catch {
            // Data may have been lost on the dead path: end the session; the viewer may reopen it.
            this.endSession(DIRECT_LOST.code, DIRECT_LOST.reason);
          }
        },
        onTrack: (event) => {
          if (!this.closed) this.handlers.onTrack?.(event);
        },
      },
      createPeer,
      video,
      this.device,
      role,
      this.options.peer === "browser-offer",
    );
  }

  private onRelayText(text: string): void {
    const message = parseJsonObject(text);
    if (message) {
      const switchSignal = asSwitchSignal(message);
      if (switchSignal) return this.guard(() => this.paths.relaySignal(switchSignal));
      const rtcSignal = asRtcSignal(message);
      if (rtcSignal) {
        // The device user's messenger page answers the console's first offer.
        if (rtcSignal.type === "rtcOffer" && !this.attempt && this.options.peer === "browser-answer") {
          const config = rtcSignal.config ?? { iceServers: [], relayOnly: false };
          if (rtcSignal.config) this.handlers.onPeerConfig?.(rtcSignal.config);
          this.tryDirect(config, this.options.createPeer, false, "answer");
        }
        return this.attempt?.onSignal(rtcSignal);
      }
      // A signal this console does not know (a newer agent's) is not session data either.
      if (typeof message.type === "string" && message.type.startsWith("rtc")) return;
    }
    this.guard(() => this.paths.relayData(text));
  }

  /** Runs one input of the path switch, then sends and delivers what it produced. */
  private guard(input: () => void): void {
    if (this.closed) return;
    try {
      input();
    } catch (e) {
      if (e instanceof PiecesError) {
        this.endSession(1002, `data channel: ${e.message}`);
        return;
      }
      if (!(e instanceof SwitchError)) throw e;
      this.endSession(1002, `path switch: ${e.message}`);
      return;
    }
    this.flush();
  }

  private flush(): void {
    for (let t = this.paths.pollTransmit(); t; t = this.paths.pollTransmit()) {
      if (t.kind === "signal") this.socket.send(signalText(t.signal));
      else if (t.path === "direct") for (const message of splitPayload(t.payload)) this.attempt?.send(message);
      else this.socket.send(t.payload);
    }
    for (let p: Payload | undefined = this.paths.pollDeliver(); p !== undefined; p = this.paths.pollDeliver()) {
      if (typeof p === "string") {
        const message = parseJsonObject(p);
        if (message) this.handlers.onMessage(message);
      } else {
        this.handlers.onBytes(p);
      }
    }
    const path: Path = this.paths.isSwitched ? "direct" : "relay";
    if (path !== this.path) {
      this.path = path;
      this.handlers.onPath?.(path, path === "direct" ? "both directions on the data channel" : "");
    }
    if (this.heldClose && this.paths.peerDone) {
      const { code, reason, timer } = this.heldClose;
      clearTimeout(timer);
      this.closed = true;
      this.attempt?.close();
      this.handlers.onClosed({ paired: this.paired, code, reason });
    }
  }

  private endSession(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.heldClose) clearTimeout(this.heldClose.timer);
    this.attempt?.close();
    this.socket.close(code === 1002 ? 1000 : code, reason);
    this.handlers.onClosed({ paired: this.paired, code, reason });
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
