// An audio/video call inside a chat: a WebRTC peer connection of its own (apart from the chat's
// data path), signalled with the chat's `callOffer`/`callAnswer`/`callCandidate`/`callDecline`/
// `callEnd` messages, which travel whichever path the chat is on. Each side chooses what it sends
// (microphone, camera, or nothing: one-way calls are the common support case) and receives what
// the other sends. The browser's permission prompt is the person's consent to being heard or seen.
//
// `Call` is the call's state and signalling; its media are a `CallPeer`: the browser's
// `RTCPeerConnection` (below), or in the desktop app, whose WebKitGTK has no WebRTC, the app's own
// peer, which captures and plays the sound itself (`nativeCall.ts`, `console/src/call.rs`).

import type { ChatMessage, DirectPath } from "../protocol.gen";
import { rtcConfiguration } from "./direct";
import { nativeCalls } from "./nativeCall";
import { inDesktopApp } from "./nativePeer";

/** How often an active call's statistics are read. */
const STATS_EVERY_MS = 2000;

export type CallState = "idle" | "calling" | "ringing" | "connecting" | "active";

export interface CallMedia {
  audio: boolean;
  video: boolean;
}

/** What a call's media tell the call. */
export interface CallPeerEvents {
  onCandidate(candidate: string, mid: string | null): void;
  onConnected(): void;
  onFailed(why: string): void;
  /** The other side's stream changed (a track arrived). */
  onRemoteStream(): void;
  /** What the other side's sound arrives at, kbit/s. */
  onAudioKbps(kbps: number): void;
}

/** A call's media: one peer connection, for one call. */
export interface CallPeer {
  /** What the page plays and shows of the other side; `null` when it is played elsewhere. */
  readonly remoteStream: MediaStream | null;
  /** Our camera's picture, for the page to show. */
  readonly localStream: MediaStream | null;
  /** Our offer, sending `media`. */
  offer(media: CallMedia): Promise<string>;
  /** Our answer to `offer`, sending `media`; `remote` is what the offer said it sends. */
  answer(offer: string, media: CallMedia, remote: CallMedia): Promise<string>;
  acceptAnswer(sdp: string): Promise<void>;
  addCandidate(candidate: string, mid: string | null): Promise<void>;
  setMuted(muted: boolean): void;
  close(): void;
}

/** Where a page's calls get their media. */
export interface CallPeers {
  /** Whether calls can be made here at all. */
  available: boolean;
  /** Whether cameras are sent and shown (the desktop app carries sound only). */
  camera: boolean;
  open(config: DirectPath | null, events: CallPeerEvents): CallPeer;
}

/** What the browser provides; tests give stand-ins. */
export interface CallEnvironment {
  createPeer(config: RTCConfiguration): RTCPeerConnection;
  getUserMedia(media: CallMedia): Promise<MediaStream>;
}

const browserEnvironment: CallEnvironment = {
  createPeer: (config) => new RTCPeerConnection(config),
  getUserMedia: (media) => navigator.mediaDevices.getUserMedia(media),
};

/** Calls on the browser's own WebRTC. */
export function browserCalls(env: CallEnvironment = browserEnvironment): CallPeers {
  return {
    available: typeof RTCPeerConnection !== "undefined" || env !== browserEnvironment,
    camera: true,
    open: (config, events) => new BrowserCallPeer(env, config, events),
  };
}

function defaultCalls(): CallPeers {
  return inDesktopApp() ? nativeCalls() : browserCalls();
}

export class Call {
  state: CallState = "idle";
  /** What the other side sends (known from its offer or answer). */
  remoteMedia: CallMedia = { audio: false, video: false };
  /** What we send. */
  localMedia: CallMedia = { audio: false, video: false };
  muted = false;
  /** What the other side's sound arrives at, kbit/s (measured every STATS_EVERY_MS). */
  audioKbps: number | null = null;
  private peer: CallPeer | null = null;
  private offerSdp: string | null = null;
  /** Whether the peer has the other side's description, so candidates may go to it. */
  private remoteKnown = false;
  private pendingCandidates: Array<{ candidate: string; mid: string | null }> = [];

  constructor(
    private readonly send: (message: ChatMessage) => void,
    private config: DirectPath | null,
    private readonly handlers: { onChange(): void; onNotice(text: string): void },
    private readonly peers: CallPeers = defaultCalls(),
  ) {}

  /** The ICE servers to gather with (the chat's direct-path offer, when it had one). */
  setConfig(config: DirectPath): void {
    this.config ??= config;
  }

  get available(): boolean {
    return this.peers.available;
  }

  /** Whether a camera may be sent and shown here. */
  get camera(): boolean {
    return this.peers.camera;
  }

  get remoteStream(): MediaStream | null {
    return this.peer?.remoteStream ?? null;
  }

  get localStream(): MediaStream | null {
    return this.peer?.localStream ?? null;
  }

  /** Calls the other side, sending `media`. */
  async start(media: CallMedia): Promise<void> {
    if (this.state !== "idle") return;
    this.state = "calling";
    this.localMedia = this.allowed(media);
    this.handlers.onChange();
    try {
      const sdp = await this.open().offer(this.localMedia);
      if (this.state !== "calling") return;
      this.send({ type: "callOffer", sdp, audio: this.localMedia.audio, video: this.localMedia.video });
    } catch (e) {
      this.finish(`The call could not start: ${reason(e)}`, true);
    }
  }

  /** Takes the ringing call, sending `media`. */
  async accept(media: CallMedia): Promise<void> {
    if (this.state !== "ringing" || !this.offerSdp) return;
    this.state = "connecting";
    this.localMedia = this.allowed(media);
    this.handlers.onChange();
    try {
      const sdp = await this.open().answer(this.offerSdp, this.localMedia, this.remoteMedia);
      if (this.state !== "connecting") return;
      this.remoteKnown = true;
      await this.addPendingCandidates();
      this.send({ type: "callAnswer", sdp, audio: this.localMedia.audio, video: this.localMedia.video });
    } catch (e) {
      this.finish(`The call could not start: ${reason(e)}`, true);
    }
  }

  decline(): void {
    if (this.state !== "ringing") return;
    this.send({ type: "callDecline" });
    this.finish("You declined the call.", false);
  }

  hangUp(): void {
    if (this.state === "idle") return;
    this.finish("The call ended.", true);
  }

  setMuted(muted: boolean): void {
    this.muted = muted;
    this.peer?.setMuted(muted);
    this.handlers.onChange();
  }

  /** A call message from the other side. */
  onMessage(message: ChatMessage): void {
    switch (message.type) {
      case "callOffer":
        if (this.state !== "idle") {
          // Both called at once, or a second call: one at a time.
          this.send({ type: "callDecline" });
          return;
        }
        this.offerSdp = message.sdp;
        this.remoteMedia = { audio: message.audio, video: message.video };
        this.state = "ringing";
        this.handlers.onChange();
        break;
      case "callAnswer": {
        const peer = this.peer;
        if (this.state !== "calling" || !peer) return;
        this.remoteMedia = { audio: message.audio, video: message.video };
        this.state = "connecting";
        this.handlers.onChange();
        void peer
          .acceptAnswer(message.sdp)
          .then(() => {
            this.remoteKnown = true;
            return this.addPendingCandidates();
          })
          .catch((e) => this.finish(`The call's answer was refused: ${reason(e)}`, true));
        break;
      }
      case "callCandidate":
        this.pendingCandidates.push({ candidate: message.candidate, mid: message.mid });
        if (this.remoteKnown) void this.addPendingCandidates();
        break;
      case "callDecline":
        if (this.state === "calling") this.finish("The other side declined the call.", false);
        break;
      case "callEnd":
        if (this.state !== "idle") this.finish("The other side hung up.", false);
        break;
      default:
        break;
    }
  }

  /** The chat ended: so does the call. */
  close(): void {
    if (this.state !== "idle") this.finish("The call ended with the chat.", false);
  }

  /** What may be sent here: no camera where cameras are not carried. */
  private allowed(media: CallMedia): CallMedia {
    return { audio: media.audio, video: media.video && this.peers.camera };
  }

  /** A new peer whose news count only while it is the call's. */
  private open(): CallPeer {
    const peer = this.peers.open(this.config, {
      onCandidate: (candidate, mid) => {
        if (this.peer === peer) this.send({ type: "callCandidate", candidate, mid });
      },
      onConnected: () => {
        if (this.peer !== peer || this.state !== "connecting") return;
        this.state = "active";
        this.handlers.onChange();
      },
      onFailed: (why) => {
        if (this.peer === peer) this.finish(`The call lost its connection: ${why}`, true);
      },
      onRemoteStream: () => {
        if (this.peer === peer) this.handlers.onChange();
      },
      onAudioKbps: (kbps) => {
        if (this.peer !== peer) return;
        this.audioKbps = kbps;
        this.handlers.onChange();
      },
    });
    this.peer = peer;
    return peer;
  }

  private async addPendingCandidates(): Promise<void> {
    const peer = this.peer;
    if (!peer) return;
    for (const { candidate, mid } of this.pendingCandidates.splice(0)) {
      // A candidate this side cannot use is no reason to end the call.
      await peer.addCandidate(candidate, mid).catch(() => undefined);
    }
  }

  private finish(text: string, tellPeer: boolean): void {
    if (tellPeer && this.state !== "idle") this.send({ type: "callEnd" });
    this.audioKbps = null;
    const peer = this.peer;
    this.peer = null;
    peer?.close();
    this.offerSdp = null;
    this.remoteKnown = false;
    this.pendingCandidates = [];
    this.state = "idle";
    this.muted = false;
    this.handlers.onNotice(text);
    this.handlers.onChange();
  }
}

/** A call's media on the browser's `RTCPeerConnection`: camera and microphone from `getUserMedia`. */
class BrowserCallPeer implements CallPeer {
  remoteStream: MediaStream | null = null;
  localStream: MediaStream | null = null;
  private readonly peer: RTCPeerConnection;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private lastAudio: { bytes: number; at: number } | null = null;

  constructor(
    private readonly env: CallEnvironment,
    config: DirectPath | null,
    private readonly events: CallPeerEvents,
  ) {
    const peer = env.createPeer(config ? rtcConfiguration(config) : {});
    this.peer = peer;
    peer.onicecandidate = (event) => {
      if (event.candidate?.candidate) events.onCandidate(event.candidate.candidate, event.candidate.sdpMid);
    };
    peer.ontrack = (event) => {
      this.remoteStream ??= new MediaStream();
      this.remoteStream.addTrack(event.track);
      events.onRemoteStream();
    };
    peer.onconnectionstatechange = () => {
      if (peer.connectionState === "connected") {
        this.statsTimer ??= setInterval(() => void this.measure(), STATS_EVERY_MS);
        events.onConnected();
      } else if (peer.connectionState === "failed") {
        events.onFailed("the peer connection failed");
      }
    };
  }

  async offer(media: CallMedia): Promise<string> {
    await this.capture(media);
    for (const kind of ["audio", "video"] as const) {
      const track = this.localStream?.getTracks().find((t) => t.kind === kind);
      // Receive both kinds whatever we send: the callee decides what it sends.
      const transceiver = this.peer.addTransceiver(kind, { direction: track ? "sendrecv" : "recvonly" });
      if (track) await transceiver.sender.replaceTrack(track);
    }
    const offer = await this.peer.createOffer();
    await this.peer.setLocalDescription(offer);
    return offer.sdp ?? "";
  }

  async answer(offer: string, media: CallMedia, remote: CallMedia): Promise<string> {
    await this.capture(media);
    await this.peer.setRemoteDescription({ type: "offer", sdp: offer });
    for (const transceiver of this.peer.getTransceivers()) {
      const kind = transceiver.receiver.track.kind as "audio" | "video";
      const track = this.localStream?.getTracks().find((t) => t.kind === kind);
      const theySend = remote[kind];
      if (track) await transceiver.sender.replaceTrack(track);
      transceiver.direction = track ? (theySend ? "sendrecv" : "sendonly") : theySend ? "recvonly" : "inactive";
    }
    const answer = await this.peer.createAnswer();
    await this.peer.setLocalDescription(answer);
    return answer.sdp ?? "";
  }

  async acceptAnswer(sdp: string): Promise<void> {
    await this.peer.setRemoteDescription({ type: "answer", sdp });
  }

  async addCandidate(candidate: string, mid: string | null): Promise<void> {
    await this.peer.addIceCandidate({ candidate, sdpMid: mid ?? "0" });
  }

  setMuted(muted: boolean): void {
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = !muted;
  }

  close(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this.peer.close();
    this.localStream = null;
    this.remoteStream = null;
  }

  private async capture(media: CallMedia): Promise<void> {
    if (media.audio || media.video) this.localStream = await this.env.getUserMedia(media);
  }

  /** The received sound's bit rate, from the connection's statistics. */
  private async measure(): Promise<void> {
    const report = await this.peer.getStats().catch(() => null);
    if (!report || !this.statsTimer) return;
    report.forEach((stat: { type?: string; kind?: string; bytesReceived?: number; timestamp?: number }) => {
      if (stat.type !== "inbound-rtp" || stat.kind !== "audio" || stat.bytesReceived === undefined) return;
      const now = { bytes: stat.bytesReceived, at: stat.timestamp ?? Date.now() };
      if (this.lastAudio && now.at > this.lastAudio.at) {
        this.events.onAudioKbps(Math.round(((now.bytes - this.lastAudio.bytes) * 8) / (now.at - this.lastAudio.at)));
      }
      this.lastAudio = now;
    });
  }
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** "microphone and camera", "microphone", …: what a side sends, for people. */
export function mediaText(media: CallMedia): string {
  const parts = [media.audio && "microphone", media.video && "camera"].filter(Boolean);
  return parts.length ? parts.join(" and ") : "nothing (listening only)";
}
