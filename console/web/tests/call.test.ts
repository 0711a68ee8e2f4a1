// A chat's call (`call.ts`) over scripted media, and the desktop app's call peer (`nativeCall.ts`)
// against scripted app commands. Real media run in the e2e tests: two Chromiums
// (`e2e/chatDirect.test.mjs`) and the app with a Chromium (`e2e/desktopAppCall.test.mjs`).
import { describe, expect, it } from "vitest";
import type { Channel } from "@tauri-apps/api/core";
import type { ChatMessage } from "../src/lib/protocol.gen";
import { Call, type CallMedia, type CallPeer, type CallPeerEvents, type CallPeers } from "../src/lib/sessions/call";
import { nativeCalls } from "../src/lib/sessions/nativeCall";

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/** Media that record what the call asks of them; `events` lets the test speak for them. */
class ScriptedPeer implements CallPeer {
  remoteStream = null;
  localStream = null;
  asked: string[] = [];
  closed = false;
  constructor(readonly events: CallPeerEvents) {}
  async offer(media: CallMedia): Promise<string> {
    this.asked.push(`offer audio=${media.audio} video=${media.video}`);
    return "offer-sdp";
  }
  async answer(offer: string, media: CallMedia): Promise<string> {
    this.asked.push(`answer ${offer} audio=${media.audio} video=${media.video}`);
    return "answer-sdp";
  }
  async acceptAnswer(sdp: string): Promise<void> {
    this.asked.push(`accept ${sdp}`);
  }
  async addCandidate(candidate: string): Promise<void> {
    this.asked.push(`candidate ${candidate}`);
  }
  setMuted(muted: boolean): void {
    this.asked.push(`muted ${muted}`);
  }
  close(): void {
    this.closed = true;
  }
}

function scriptedCall(camera = true) {
  const sent: ChatMessage[] = [];
  const notices: string[] = [];
  const peers: ScriptedPeer[] = [];
  const media: CallPeers = {
    available: true,
    camera,
    open: (_config, events) => {
      const peer = new ScriptedPeer(events);
      peers.push(peer);
      return peer;
    },
  };
  const call = new Call((m) => sent.push(m), null, { onChange: () => undefined, onNotice: (t) => notices.push(t) }, media);
  return { call, sent, notices, peers };
}

describe("a chat's call", () => {
  it("offers, holds the other side's candidates until its answer is in, and is active once connected", async () => {
    const { call, sent, peers } = scriptedCall();
    await call.start({ audio: true, video: false });
    expect(sent).toEqual([{ type: "callOffer", sdp: "offer-sdp", audio: true, video: false }]);
    call.onMessage({ type: "callCandidate", candidate: "candidate:early", mid: "0" });
    expect(peers[0]!.asked).toEqual(["offer audio=true video=false"]);
    call.onMessage({ type: "callAnswer", sdp: "answer-sdp", audio: true, video: false });
    await tick();
    expect(peers[0]!.asked.slice(1)).toEqual(["accept answer-sdp", "candidate candidate:early"]);
    expect(call.state).toBe("connecting");
    peers[0]!.events.onConnected();
    expect(call.state).toBe("active");
    peers[0]!.events.onAudioKbps(31);
    expect(call.audioKbps).toBe(31);
    call.onMessage({ type: "callEnd" });
    expect(call.state).toBe("idle");
    expect(peers[0]!.closed).toBe(true);
  });

  it("answers a ringing call with what the user chose, and sends no camera where none is carried", async () => {
    const { call, sent, peers } = scriptedCall(false);
    call.onMessage({ type: "callOffer", sdp: "their-offer", audio: true, video: true });
    expect(call.state).toBe("ringing");
    await call.accept({ audio: true, video: true });
    expect(peers[0]!.asked).toEqual(["answer their-offer audio=true video=false"]);
    expect(sent).toEqual([{ type: "callAnswer", sdp: "answer-sdp", audio: true, video: false }]);
  });

  it("ignores a hung-up call's media and ends on a lost connection with the reason", async () => {
    const { call, sent, notices, peers } = scriptedCall();
    await call.start({ audio: false, video: false });
    call.hangUp();
    expect(sent.at(-1)).toEqual({ type: "callEnd" });
    // The old peer's late news change nothing.
    peers[0]!.events.onConnected();
    peers[0]!.events.onFailed("late");
    expect(call.state).toBe("idle");
    expect(notices).toEqual(["The call ended."]);
    await call.start({ audio: true, video: false });
    peers[1]!.events.onFailed("ICE lost the path");
    expect(call.state).toBe("idle");
    expect(notices.at(-1)).toBe("The call lost its connection: ICE lost the path");
  });
});

/** The app's commands, recorded; `call_start`/`call_take` give the call id 3. */
function scriptedApp() {
  const calls: Array<{ command: string; args: Record<string, unknown> }> = [];
  let events: { onmessage: (frame: ArrayBuffer) => void } | null = null;
  let release: (() => void) | null = null;
  const invoke = (command: string, args?: unknown) => {
    calls.push({ command, args: args as Record<string, unknown> });
    if (command === "call_start" || command === "call_take") {
      events = (args as { events: typeof events }).events;
      return new Promise((resolve) => (release = () => resolve({ id: 3, sdp: `${command}-sdp` })));
    }
    return Promise.resolve(undefined);
  };
  const tell = (...bytes: number[]) => events?.onmessage(new Uint8Array(bytes).buffer);
  const fakeChannel = () => ({ onmessage: () => undefined }) as unknown as Channel<ArrayBuffer>;
  return { calls, invoke, tell, release: () => release?.(), peers: nativeCalls(invoke, fakeChannel) };
}

function recordingEvents() {
  const heard: string[] = [];
  const events: CallPeerEvents = {
    onCandidate: (c) => heard.push(`candidate ${c}`),
    onConnected: () => heard.push("connected"),
    onFailed: (why) => heard.push(`failed ${why}`),
    onRemoteStream: () => heard.push("stream"),
    onAudioKbps: (kbps) => heard.push(`kbps ${kbps}`),
  };
  return { heard, events };
}

describe("the app's call peer", () => {
  it("hands the call to the app with the user's choice, and turns the app's news into the call's", async () => {
    const app = scriptedApp();
    const { heard, events } = recordingEvents();
    expect(app.peers).toMatchObject({ available: true, camera: false });
    const peer = app.peers.open({ iceServers: [{ urls: ["stun:10.0.0.1:3478"] }], relayOnly: false }, events);
    const offered = peer.offer({ audio: true, video: false });
    app.release();
    expect(await offered).toBe("call_start-sdp");
    expect(app.calls[0]).toMatchObject({
      command: "call_start",
      args: { config: { iceServers: [{ urls: ["stun:10.0.0.1:3478"] }], relayOnly: false }, settings: { microphone: true, input: null, output: null } },
    });
    await peer.acceptAnswer("their-answer");
    await peer.addCandidate("candidate:1", null);
    peer.setMuted(true);
    expect(app.calls.slice(1)).toEqual([
      { command: "call_answer", args: { id: 3, sdp: "their-answer" } },
      { command: "call_candidate", args: { id: 3, candidate: "candidate:1" } },
      { command: "call_mute", args: { id: 3, muted: true } },
    ]);
    app.tell(1);
    app.tell(5, 0, 0, 0, 42);
    app.tell(2, ...new TextEncoder().encode("ICE lost the path"));
    expect(heard).toEqual(["connected", "kbps 42", "failed ICE lost the path"]);
    expect(peer.remoteStream).toBeNull();
  });

  it("ends the app's call once, even when hung up while the app was still making it", async () => {
    const app = scriptedApp();
    const { heard, events } = recordingEvents();
    const peer = app.peers.open(null, events);
    const answered = peer.answer("their-offer", { audio: false, video: false }, { audio: true, video: false });
    peer.close();
    app.release();
    await answered;
    peer.close();
    expect(app.calls.map((c) => c.command)).toEqual(["call_take", "call_end"]);
    expect(app.calls[0]?.args).toMatchObject({ config: { iceServers: [], relayOnly: false }, offer: "their-offer", settings: { microphone: false } });
    // News after hanging up are nobody's business.
    app.tell(1);
    expect(heard).toEqual([]);
  });
});
