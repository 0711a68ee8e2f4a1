// A chat's call in the desktop app. WebKitGTK has no WebRTC, so the call's peer runs in the app
// (`console/src/call.rs`, the same str0m stack as its direct paths) and so does its sound: the
// app captures the chosen microphone and plays the other side on the chosen output, and nothing
// of the sound enters the page. The page keeps the call's signalling (`call.ts`), which travels
// the chat's own path. Sound only: the app neither sends nor shows a camera.

import { Channel, invoke as tauriInvoke } from "@tauri-apps/api/core";
import type { DirectPath } from "../protocol.gen";
import type { CallMedia, CallPeer, CallPeerEvents, CallPeers } from "./call";
import { inputChoice, outputChoice } from "./nativeSound";
import { decodeNews, type Invoke } from "./nativePeer";

/** Calls on the app's own peer. */
export function nativeCalls(invoke: Invoke = tauriInvoke as Invoke, makeChannel = () => new Channel<ArrayBuffer>()): CallPeers {
  return {
    available: true,
    camera: false,
    open: (config, events) => new NativeCallPeer(config, events, invoke, makeChannel),
  };
}

/** What `call_start` and `call_take` return. */
interface Opened {
  id: number;
  sdp: string;
}

export class NativeCallPeer implements CallPeer {
  readonly remoteStream = null;
  readonly localStream = null;
  private id: number | null = null;
  private closed = false;

  constructor(
    private readonly config: DirectPath | null,
    private readonly events: CallPeerEvents,
    private readonly invoke: Invoke,
    private readonly makeChannel: () => Channel<ArrayBuffer>,
  ) {}

  async offer(media: CallMedia): Promise<string> {
    return this.opened(await this.invoke("call_start", { config: this.path(), settings: settings(media), events: this.channel() }));
  }

  async answer(offer: string, media: CallMedia): Promise<string> {
    return this.opened(await this.invoke("call_take", { config: this.path(), offer, settings: settings(media), events: this.channel() }));
  }

  async acceptAnswer(sdp: string): Promise<void> {
    if (this.id === null) throw new Error("the call has ended");
    await this.invoke("call_answer", { id: this.id, sdp });
  }

  async addCandidate(candidate: string): Promise<void> {
    if (this.id !== null) await this.invoke("call_candidate", { id: this.id, candidate });
  }

  setMuted(muted: boolean): void {
    if (this.id !== null) void this.invoke("call_mute", { id: this.id, muted }).catch(() => undefined);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.end();
  }

  /** The app's peer: its id, and its SDP (whose candidates are all in it: no trickling out). */
  private opened(value: unknown): string {
    const { id, sdp } = value as Opened;
    this.id = id;
    // Hung up while the app was gathering: end the call it just made.
    if (this.closed) this.end();
    return sdp;
  }

  private end(): void {
    const id = this.id;
    this.id = null;
    if (id !== null) void this.invoke("call_end", { id }).catch(() => undefined);
  }

  /** The chat's ICE servers; without a direct-path ticket, host candidates only. */
  private path(): DirectPath {
    return this.config ?? { iceServers: [], relayOnly: false };
  }

  private channel(): Channel<ArrayBuffer> {
    const channel = this.makeChannel();
    channel.onmessage = (frame) => this.hear(frame);
    return channel;
  }

  private hear(frame: ArrayBuffer): void {
    const news = frame instanceof ArrayBuffer ? decodeNews(frame) : null;
    if (!news || this.closed) return;
    switch (news.kind) {
      case "open":
        this.events.onConnected();
        break;
      case "closed":
        this.id = null;
        this.events.onFailed(news.why);
        break;
      case "soundRate":
        this.events.onAudioKbps(news.kbps);
        break;
      case "message":
        break;
    }
  }
}

function settings(media: CallMedia): { microphone: boolean; input: string | null; output: string | null } {
  return { microphone: media.audio, input: inputChoice.get(), output: outputChoice.get() };
}
