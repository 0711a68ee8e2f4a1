// An audio/video call inside a chat: a WebRTC peer connection of its own (apart from the chat's
// data path), signalled with the chat's `callOffer`/`callAnswer`/`callCandidate`/`callDecline`/
// `callEnd` messages, which travel whichever path the chat is on. Each side chooses what it sends
// (microphone, camera, or nothing: one-way calls are the common support case) and receives what
// the other sends. The browser's permission prompt is the person's consent to being heard or seen.

import type { ChatMessage, DirectPath } from "../protocol.gen";
import { rtcConfiguration } from "./direct";

/** How often an active call's statistics are read. */
const STATS_EVERY_MS = 2000;

export type CallState = "idle" | "calling" | "ringing" | "connecting" | "active";

export interface CallMedia {
  audio: boolean;
  video: boolean;
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

export class Call {
  state: CallState = "idle";
  /** What the other side sends (known from its offer or answer). */
  remoteMedia: CallMedia = { audio: false, video: false };
  /** What we send. */
  localMedia: CallMedia = { audio: false, video: false };
  remoteStream: MediaStream | null = null;
  localStream: MediaStream | null = null;
  muted = false;
  /** What the other side's sound arrives at, kbit/s (measured every STATS_EVERY_MS). */
  audioKbps: number | null = null;
  private peer: RTCPeerConnection | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;
  private lastAudio: { bytes: number; at: number } | null = null;
  private offerSdp: string | null = null;
  private pendingCandidates: Array<{ candidate: string; mid: string | null }> = [];

  constructor(
    private readonly send: (message: ChatMessage) => void,
    private config: DirectPath | null,
    private readonly handlers: { onChange(): void; onNotice(text: string): void },
    private readonly env: CallEnvironment = browserEnvironment,
  ) {}

  /** The ICE servers to gather with (the chat's direct-path offer, when it had one). */
  setConfig(config: DirectPath): void {
    this.config ??= config;
  }

  get available(): boolean {
    return typeof RTCPeerConnection !== "undefined" || this.env !== browserEnvironment;
  }

  /** Calls the other side, sending `media`. */
  async start(media: CallMedia): Promise<void> {
    if (this.state !== "idle") return;
    this.state = "calling";
    this.localMedia = media;
    this.handlers.onChange();
    try {
      const peer = await this.open(media);
      for (const kind of ["audio", "video"] as const) {
        const track = this.localStream?.getTracks().find((t) => t.kind === kind);
        // Receive both kinds whatever we send: the callee decides what it sends.
        const transceiver = peer.addTransceiver(kind, { direction: track ? "sendrecv" : "recvonly" });
        if (track) await transceiver.sender.replaceTrack(track);
      }
      const offer = await peer.createOffer();
      await peer.setLocalDescription(offer);
      this.send({ type: "callOffer", sdp: offer.sdp ?? "", audio: media.audio, video: media.video });
    } catch (e) {
      this.finish(`The call could not start: ${reason(e)}`, true);
    }
  }

  /** Takes the ringing call, sending `media`. */
  async accept(media: CallMedia): Promise<void> {
    if (this.state !== "ringing" || !this.offerSdp) return;
    this.state = "connecting";
    this.localMedia = media;
    this.handlers.onChange();
    try {
      const peer = await this.open(media);
      await peer.setRemoteDescription({ type: "offer", sdp: this.offerSdp });
      for (const transceiver of peer.getTransceivers()) {
        const kind = transceiver.receiver.track.kind as "audio" | "video";
        const track = this.localStream?.getTracks().find((t) => t.kind === kind);
        const theySend = this.remoteMedia[kind];
        if (track) await transceiver.sender.replaceTrack(track);
        transceiver.direction = track ? (theySend ? "sendrecv" : "sendonly") : theySend ? "recvonly" : "inactive";
      }
      await this.addPendingCandidates();
      const answer = await peer.createAnswer();
      await peer.setLocalDescription(answer);
      this.send({ type: "callAnswer", sdp: answer.sdp ?? "", audio: media.audio, video: media.video });
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
    for (const track of this.localStream?.getAudioTracks() ?? []) track.enabled = !muted;
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
      case "callAnswer":
        if (this.state !== "calling" || !this.peer) return;
        this.remoteMedia = { audio: message.audio, video: message.video };
        this.state = "connecting";
        this.handlers.onChange();
        void this.peer
          .setRemoteDescription({ type: "answer", sdp: message.sdp })
          .then(() => this.addPendingCandidates())
          .catch((e) => this.finish(`The call's answer was refused: ${reason(e)}`, true));
        break;
      case "callCandidate":
        this.pendingCandidates.push({ candidate: message.candidate, mid: message.mid });
        if (this.peer?.remoteDescription) void this.addPendingCandidates();
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

  private async open(media: CallMedia): Promise<RTCPeerConnection> {
    if (media.audio || media.video) this.localStream = await this.env.getUserMedia(media);
    const peer = this.env.createPeer(this.config ? rtcConfiguration(this.config) : {});
    this.peer = peer;
    peer.onicecandidate = (event) => {
      if (event.candidate?.candidate) {
        this.send({ type: "callCandidate", candidate: event.candidate.candidate, mid: event.candidate.sdpMid });
      }
    };
    peer.ontrack = (event) => {
      this.remoteStream ??= new MediaStream();
      this.remoteStream.addTrack(event.track);
      this.handlers.onChange();
    };
    peer.onconnectionstatechange = () => {
      if (peer !== this.peer) return;
      if (peer.connectionState === "connected" && this.state === "connecting") {
        this.state = "active";
        this.statsTimer = setInterval(() => void this.measure(peer), STATS_EVERY_MS);
        this.handlers.onChange();
      } else if (peer.connectionState === "failed") {
        this.finish("The call lost its connection.", true);
      }
    };
    return peer;
  }

  private async addPendingCandidates(): Promise<void> {
    const peer = this.peer;
    if (!peer) return;
    for (const { candidate, mid } of this.pendingCandidates.splice(0)) {
      // A candidate this browser cannot use is no reason to end the call.
      await peer.addIceCandidate({ candidate, sdpMid: mid ?? "0" }).catch(() => undefined);
    }
  }

  /** The received sound's bit rate, from the connection's statistics. */
  private async measure(peer: RTCPeerConnection): Promise<void> {
    const report = await peer.getStats().catch(() => null);
    if (!report || peer !== this.peer) return;
    report.forEach((stat: { type?: string; kind?: string; bytesReceived?: number; timestamp?: number }) => {
      if (stat.type !== "inbound-rtp" || stat.kind !== "audio" || stat.bytesReceived === undefined) return;
      const now = { bytes: stat.bytesReceived, at: stat.timestamp ?? Date.now() };
      if (this.lastAudio && now.at > this.lastAudio.at) {
        this.audioKbps = Math.round(((now.bytes - this.lastAudio.bytes) * 8) / (now.at - this.lastAudio.at));
      }
      this.lastAudio = now;
    });
    this.handlers.onChange();
  }

  private finish(text: string, tellPeer: boolean): void {
    if (tellPeer && this.state !== "idle") this.send({ type: "callEnd" });
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
    this.lastAudio = null;
    this.audioKbps = null;
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    this.peer?.close();
    this.peer = null;
    this.localStream = null;
    this.remoteStream = null;
    this.offerSdp = null;
    this.pendingCandidates = [];
    this.state = "idle";
    this.muted = false;
    this.handlers.onNotice(text);
    this.handlers.onChange();
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
