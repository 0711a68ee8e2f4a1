// The console's attempt at a direct path for one session: a WebRTC peer connection with one
// ordered, reliable data channel, signalled over the session's relay (`common/src/relay/signal.rs`
// has the messages). The console offers, the agent answers, both trickle candidates. In a chat,
// the other end is a browser too (the device user's messenger page), which takes the answering
// role here. What flows on the channel, and when, is `pathSwitch.ts`'s business; this file only
// brings the channel up and reports what happens to it.

import type { DirectPath } from "../protocol.gen";
import { inDesktopApp, nativePeer } from "./nativePeer";
import { checkProof } from "./pathProof";

/** Signalling as relay text frames. */
export type RtcSignal =
  | { type: "rtcOffer"; sdp: string; config?: DirectPath }
  | { type: "rtcAnswer"; sdp: string; proof?: unknown }
  | { type: "rtcCandidate"; candidate: string }
  | { type: "rtcUnavailable"; reason: string };

/** The signal a parsed relay text frame is, if it is one. */
export function asRtcSignal(message: Record<string, unknown>): RtcSignal | null {
  const { type } = message;
  if (type === "rtcOffer" && typeof message.sdp === "string") {
    return isDirectPath(message.config) ? { type, sdp: message.sdp, config: message.config } : { type, sdp: message.sdp };
  }
  if (type === "rtcAnswer" && typeof message.sdp === "string") return { type, sdp: message.sdp, proof: message.proof };
  if (type === "rtcCandidate" && typeof message.candidate === "string") return { type, candidate: message.candidate };
  if (type === "rtcUnavailable") return { type, reason: typeof message.reason === "string" ? message.reason : "" };
  return null;
}

/** An offer's ICE configuration, checked (the answering page gathers candidates with it). */
function isDirectPath(value: unknown): value is DirectPath {
  if (typeof value !== "object" || value === null) return false;
  const { iceServers, relayOnly } = value as { iceServers?: unknown; relayOnly?: unknown };
  const isText = (v: unknown) => typeof v === "string" && v.length < 2048;
  const isServer = (v: unknown) => {
    if (typeof v !== "object" || v === null) return false;
    const { urls, username, credential } = v as { urls?: unknown; username?: unknown; credential?: unknown };
    return Array.isArray(urls) && urls.length <= 8 && urls.every(isText) && (username == null || isText(username)) && (credential == null || isText(credential));
  };
  return Array.isArray(iceServers) && iceServers.length <= 8 && iceServers.every(isServer) && typeof relayOnly === "boolean";
}

/** The subset of `RTCDataChannel` used here. */
export interface DataChannelLike {
  binaryType: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array<ArrayBuffer>): void;
  close(): void;
  onopen: ((event: unknown) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
}

/** A remote track as `RTCPeerConnection.ontrack` reports it (the parts used here). */
export interface TrackEventLike {
  readonly track: MediaStreamTrack;
  readonly receiver: RTCRtpReceiver;
}

/** The subset of `RTCPeerConnection` used here. */
export interface PeerConnectionLike {
  createDataChannel(label: string, options: { ordered: boolean }): DataChannelLike;
  /** Present on browsers; the desktop's receive-only video m-line. */
  addTransceiver?(kind: "video", init: { direction: "recvonly" }): unknown;
  ontrack?: ((event: TrackEventLike) => void) | null;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  /** The answering side's (a chat's messenger page). */
  createAnswer?(): Promise<{ type: string; sdp?: string }>;
  ondatachannel?: ((event: { channel: DataChannelLike }) => void) | null;
  setLocalDescription(description: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(description: { type: "answer" | "offer"; sdp: string }): Promise<void>;
  addIceCandidate(candidate: { candidate: string; sdpMLineIndex: number }): Promise<void>;
  close(): void;
  readonly connectionState: string;
  onicecandidate: ((event: { candidate: { candidate: string } | null }) => void) | null;
  onconnectionstatechange: ((event: unknown) => void) | null;
}

export type PeerConnectionFactory = (config: DirectPath) => PeerConnectionLike;

export interface DirectHandlers {
  /** A signal for the agent, to send on the relay as a text frame. */
  signal(message: RtcSignal): void;
  /** The data channel is open. */
  onOpen(): void;
  onMessage(payload: string | Uint8Array<ArrayBuffer>): void;
  /** The attempt ended or the channel died; `why` is for the log and the stats overlay. */
  onFailed(why: string): void;
  /** The agent's video track (desktop sessions that asked for one). */
  onTrack?(event: TrackEventLike): void;
}

/**
 * Whether this browser receives H.264 over WebRTC (what the agent's track carries). Debian's
 * Chromium has it; a browser without it keeps the desktop's pictures on the data channel.
 */
export function canReceiveH264(): boolean {
  const receiver = (globalThis as { RTCRtpReceiver?: typeof RTCRtpReceiver }).RTCRtpReceiver;
  const codecs = receiver?.getCapabilities?.("video")?.codecs ?? [];
  return codecs.some((c) => c.mimeType.toLowerCase() === "video/h264" && /packetization-mode=1/.test(c.sdpFmtpLine ?? ""));
}

/** The channel's label; the agent accepts the first data channel whatever its label. */
const LABEL = "tether";

/**
 * A channel not open by then will not open: the agent never answered (an older agent), or no
 * candidate pair works. The attempt is closed, so an idle peer connection does not live as long as
 * the session, and the session says it is relayed.
 */
export const OPEN_DEADLINE_MS = 15_000;

/** How long a closing session's channel may take to send what it still holds. */
export const CLOSE_LINGER_MS = 5_000;

/** Who makes the offer: the console always; the device user's messenger page answers it. */
export type Role = "offer" | "answer";

export class DirectAttempt {
  private readonly peer: PeerConnectionLike;
  /** The answering side has none until the offerer's arrives. */
  private channel: DataChannelLike | null = null;
  private ended = false;
  private readonly deadline: ReturnType<typeof setTimeout>;
  /** The offer sent: the agent's proof must cover its fingerprint. */
  private offerSdp: string | null = null;
  /** Our candidates so far: trickled, or in the offer itself (the desktop app's peer). */
  private gathered = 0;
  /** Signals are applied in order, one after the other (checking a proof takes a moment). */
  private signals: Promise<void> = Promise.resolve();

  /**
   * `video`: also offer a receive-only video m-line (the desktop's pictures, `desktopTrack.ts`).
   * `device`: the device whose key must sign the answer (`pathProof.ts`); absent, any answer goes.
   * `role`: "answer" waits for the offer (`onSignal`) and takes the channel the offerer opens.
   */
  constructor(
    private readonly config: DirectPath,
    private readonly handlers: DirectHandlers,
    createPeer: PeerConnectionFactory = defaultPeer,
    video = false,
    private readonly device: string | null = null,
    private readonly role: Role = "offer",
    private readonly shareConfig = false,
  ) {
    this.peer = createPeer(config);
    if (role === "offer") this.attach(this.peer.createDataChannel(LABEL, { ordered: true }));
    else this.peer.ondatachannel = (event) => (this.channel ? undefined : this.attach(event.channel));
    if (video && this.peer.addTransceiver) {
      this.peer.addTransceiver("video", { direction: "recvonly" });
      this.peer.ontrack = (event) => {
        if (!this.ended) handlers.onTrack?.(event);
      };
    }
    this.peer.onicecandidate = (event) => {
      if (this.ended) return;
      if (event.candidate && event.candidate.candidate) {
        this.gathered += 1;
        handlers.signal({ type: "rtcCandidate", candidate: event.candidate.candidate });
      } else if (!event.candidate && this.gathered === 0) {
        // Gathering ended with nothing to offer: say so now rather than at the deadline.
        this.fail(
          config.relayOnly
            ? "no candidate from the TURN server (it refused the credentials, or cannot be reached)"
            : "this browser has no address to offer",
        );
      }
    };
    this.peer.onconnectionstatechange = () => {
      if (this.peer.connectionState === "failed") this.fail("no direct path between the console and the device");
    };
    this.deadline = setTimeout(() => this.fail("no direct path came up in time"), OPEN_DEADLINE_MS);
    if (role === "offer") void this.offer();
  }

  get bufferedAmount(): number {
    return this.channel?.bufferedAmount ?? 0;
  }

  private attach(channel: DataChannelLike): void {
    const handlers = this.handlers;
    this.channel = channel;
    channel.binaryType = "arraybuffer";
    const opened = () => {
      clearTimeout(this.deadline);
      if (!this.ended) handlers.onOpen();
    };
    // A channel the offerer opened may be open by the time the answering side sees it.
    if (channel.readyState === "open") queueMicrotask(opened);
    else channel.onopen = opened;
    channel.onmessage = (event) => {
      if (this.ended) return;
      const { data } = event;
      if (typeof data === "string") handlers.onMessage(data);
      else if (data instanceof ArrayBuffer) handlers.onMessage(new Uint8Array(data));
    };
    channel.onclose = () => this.fail("the data channel closed");
    channel.onerror = () => this.fail("the data channel failed");
  }

  /** A signal the agent sent on the relay. */
  onSignal(message: RtcSignal): void {
    if (this.ended) return;
    switch (message.type) {
      case "rtcAnswer": {
        if (this.role === "answer") return this.fail("the other side sent an answer to no offer");
        const { sdp, proof } = message;
        this.signals = this.signals.then(async () => {
          if (this.device !== null) {
            const why = await checkProof(proof, this.device, this.offerSdp ?? "", sdp);
            if (why) return this.fail(`the agent's direct-path identity did not verify: ${why}`);
          }
          if (this.ended) return;
          await this.peer.setRemoteDescription({ type: "answer", sdp }).catch((e) => this.fail(`the agent's answer was refused: ${String(e)}`));
        });
        break;
      }
      case "rtcCandidate": {
        // One m-line (the data channel), so every candidate belongs to index 0. A candidate this
        // browser cannot use (an address family it lacks, say) is no reason to give up.
        const { candidate } = message;
        this.signals = this.signals.then(() => {
          if (!this.ended) return this.peer.addIceCandidate({ candidate, sdpMLineIndex: 0 }).catch(() => undefined);
        });
        break;
      }
      case "rtcUnavailable":
        this.fail(message.reason || "the device does not offer a direct path");
        break;
      case "rtcOffer":
        // The console is always the offerer; an offer from the agent is a protocol error.
        if (this.role === "offer") this.fail("the device sent an offer");
        else this.answer(message.sdp);
        break;
    }
  }

  send(payload: string | Uint8Array<ArrayBuffer>): void {
    if (!this.ended && this.channel?.readyState === "open") this.channel.send(payload);
  }

  /**
   * Ends the attempt without reporting a failure (the session is closing). The channel sends what
   * is queued on it (the session's last messages, `rtcEnd`) before it closes, so the connection
   * goes only once it has, or after CLOSE_LINGER_MS.
   */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.deadline);
    const closePeer = () => this.peer.close();
    if (!this.channel) return closePeer();
    this.channel.onclose = closePeer;
    setTimeout(closePeer, CLOSE_LINGER_MS);
    this.channel.close();
  }

  private answer(sdp: string): void {
    this.signals = this.signals.then(async () => {
      try {
        if (!this.peer.createAnswer) throw new Error("this browser cannot answer");
        await this.peer.setRemoteDescription({ type: "offer", sdp });
        const answer = await this.peer.createAnswer();
        // The desktop app's answer carries its candidates, as its offer does.
        this.gathered += (answer.sdp?.match(/^a=candidate:/gm) ?? []).length;
        await this.peer.setLocalDescription(answer);
        if (!answer.sdp) throw new Error("the browser made an empty answer");
        if (!this.ended) this.handlers.signal({ type: "rtcAnswer", sdp: answer.sdp });
      } catch (e) {
        this.fail(`could not answer: ${String(e)}`);
      }
    });
  }

  private async offer(): Promise<void> {
    try {
      const offer = await this.peer.createOffer();
      this.gathered += (offer.sdp?.match(/^a=candidate:/gm) ?? []).length;
      await this.peer.setLocalDescription(offer);
      if (!offer.sdp) throw new Error("the browser made an empty offer");
      this.offerSdp = offer.sdp;
      // A chat's other end is a browser, which gathers its candidates with the same servers.
      const config = this.shareConfig ? { config: this.config } : {};
      if (!this.ended) this.handlers.signal({ type: "rtcOffer", sdp: offer.sdp, ...config });
    } catch (e) {
      this.fail(`could not make an offer: ${String(e)}`);
    }
  }

  private fail(why: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.deadline);
    this.channel?.close();
    this.peer.close();
    this.handlers.onFailed(why);
  }
}

/** The ticket's direct path as WebRTC's configuration. */
export function rtcConfiguration(config: DirectPath): RTCConfiguration {
  // The wire's optional fields are `null` when absent; RTCIceServer wants them left out.
  const iceServers: RTCIceServer[] = config.iceServers.map(({ urls, username, credential }) => ({
    urls,
    ...(username ? { username } : {}),
    ...(credential ? { credential } : {}),
  }));
  // Relay only: our candidates are the TURN server's, so the device never sees our address.
  return { iceServers, iceTransportPolicy: config.relayOnly ? "relay" : "all" };
}

/** The desktop app's peer runs in Rust (`nativePeer.ts`); a browser's is its own. */
function defaultPeer(config: DirectPath): PeerConnectionLike {
  return inDesktopApp() ? nativePeer(config) : browserPeer(config);
}

function browserPeer(config: DirectPath): PeerConnectionLike {
  return new RTCPeerConnection(rtcConfiguration(config)) as unknown as PeerConnectionLike;
}
