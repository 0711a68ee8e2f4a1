// A session's direct path as the console drives it, with a scripted relay socket and peer
// connection: signalling goes out on the relay, the switch is marked there, and the session sees
// the agent's messages once and in order whichever path they took. Real browsers and agents are
// exercised by the e2e tests; this pins the console's half of the protocol.
import { afterEach, describe, expect, it, vi } from "vitest";
import { DIRECT_LOST, END_WAIT_MS, RelayConnection } from "../src/lib/sessions/relay";
import {
  CLOSE_LINGER_MS,
  OPEN_DEADLINE_MS,
  rtcConfiguration,
  type DataChannelLike,
  type PeerConnectionLike,
} from "../src/lib/sessions/direct";
import { PIECE } from "../src/lib/sessions/directPieces";
import { FakeRelaySocket } from "./fakeRelaySocket";

class FakeChannel implements DataChannelLike {
  binaryType = "blob";
  readyState = "connecting";
  bufferedAmount = 0;
  sent: Array<string | Uint8Array> = [];
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  send(data: string | Uint8Array): void {
    this.sent.push(data);
  }
  close(): void {
    this.readyState = "closed";
  }
  open(): void {
    this.readyState = "open";
    this.onopen?.({});
  }
}

class FakePeer implements PeerConnectionLike {
  readonly channel = new FakeChannel();
  remote: string | null = null;
  candidates: string[] = [];
  connectionState = "new";
  closed = false;
  onicecandidate: ((event: { candidate: { candidate: string } | null }) => void) | null = null;
  onconnectionstatechange: ((event: unknown) => void) | null = null;
  createDataChannel(): DataChannelLike {
    this.offeredChannel = true;
    return this.channel;
  }
  async createOffer() {
    return { type: "offer", sdp: "v=0 offer" };
  }
  async createAnswer() {
    return { type: "answer", sdp: "v=0 answer" };
  }
  ondatachannel: ((event: { channel: DataChannelLike }) => void) | null = null;
  offeredChannel = false;
  async setLocalDescription(): Promise<void> {}
  async setRemoteDescription(description: { sdp: string }): Promise<void> {
    this.remote = description.sdp;
  }
  async addIceCandidate(candidate: { candidate: string }): Promise<void> {
    this.candidates.push(candidate.candidate);
  }
  close(): void {
    this.closed = true;
  }
}

const DIRECT = { iceServers: [{ urls: ["stun:h:8443"] }], relayOnly: false };

function session(device?: string) {
  const socket = new FakeRelaySocket();
  const peer = new FakePeer();
  const seen: string[] = [];
  const paths: string[] = [];
  let closed: { code: number; reason: string } | null = null;
  const relay = new RelayConnection(
    "wss://h/r",
    {
      onPaired: () => seen.push("paired"),
      onMessage: (m) => seen.push(`json:${String(m.n)}`),
      onBytes: (b) => seen.push(`bytes:${b.length}`),
      onClosed: (info) => (closed = info),
      onPath: (path) => paths.push(path),
    },
    { direct: DIRECT, createSocket: () => socket, createPeer: () => peer, device },
  );
  return { socket, peer, relay, seen, paths, closed: () => closed };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

afterEach(() => {
  vi.useRealTimers();
});

describe("direct path", () => {
  it("offers after pairing, switches once both channels are open, and keeps the agent's order", async () => {
    const s = session();
    s.socket.text("c");
    await settle();
    expect(s.socket.json()).toEqual([{ type: "rtcOffer", sdp: "v=0 offer" }]);
    s.peer.onicecandidate?.({ candidate: { candidate: "candidate:1 1 udp 1 10.0.0.2 5000 typ host" } });
    expect(s.socket.json().at(-1)).toEqual({ type: "rtcCandidate", candidate: "candidate:1 1 udp 1 10.0.0.2 5000 typ host" });
    s.socket.text({ type: "rtcAnswer", sdp: "v=0 answer" });
    s.socket.text({ type: "rtcCandidate", candidate: "candidate:2 1 udp 1 10.0.0.1 6000 typ host" });
    await settle();
    expect(s.peer.remote).toBe("v=0 answer");
    expect(s.peer.candidates).toEqual(["candidate:2 1 udp 1 10.0.0.1 6000 typ host"]);

    s.relay.sendJson({ n: 1 });
    s.peer.channel.open();
    s.relay.sendJson({ n: 2 });
    // The agent's data: one message on the relay, one that overtook it on the channel.
    s.socket.text({ n: 10 });
    s.socket.text({ type: "rtcReady" });
    s.peer.channel.onmessage?.({ data: JSON.stringify({ n: 12 }) });
    s.socket.text({ n: 11 });
    s.socket.text({ type: "rtcSwitch" });
    s.relay.sendJson({ n: 3 });
    s.peer.channel.onmessage?.({ data: new Uint8Array([1, 2]).buffer });

    const onRelay = s.socket.json().filter((m) => m.type !== "rtcOffer" && m.type !== "rtcCandidate");
    expect(onRelay).toEqual([{ n: 1 }, { type: "rtcReady" }, { n: 2 }, { type: "rtcSwitch" }]);
    expect(s.peer.channel.sent).toEqual([JSON.stringify({ n: 3 })]);
    expect(s.seen).toEqual(["paired", "json:10", "json:11", "json:12", "bytes:2"]);
    expect(s.paths).toEqual(["direct"]);
    expect(s.relay.sendingPath).toBe("direct");
  });

  it("gives up at once when gathering ends without a candidate, not at the deadline", async () => {
    const s = session();
    s.socket.text("c");
    await settle();
    // Gathering ended with candidates: nothing to give up on.
    const other = session();
    other.socket.text("c");
    await settle();
    other.peer.onicecandidate?.({ candidate: { candidate: "candidate:1 1 udp 1 10.0.0.2 5000 typ host" } });
    other.peer.onicecandidate?.({ candidate: null });
    expect(other.peer.closed).toBe(false);
    // Nothing at all (a relay-only browser whose TURN server refused it): the attempt ends and
    // the session carries on through the relay.
    s.peer.onicecandidate?.({ candidate: null });
    expect(s.peer.closed).toBe(true);
    s.socket.text({ n: 5 });
    expect(s.seen).toEqual(["paired", "json:5"]);
  });

  it("refuses an answer the device's key did not sign, and stays relayed", async () => {
    const s = session("the-device-id");
    s.socket.text("c");
    await settle();
    s.socket.text({ type: "rtcAnswer", sdp: "v=0\r\na=fingerprint:sha-256 CC:DD\r\n" });
    s.socket.text({ type: "rtcCandidate", candidate: "candidate:2 1 udp 1 10.0.0.1 6000 typ host" });
    await vi.waitFor(() => expect(s.paths).toEqual(["relay"]));
    expect(s.peer.remote).toBeNull();
    expect(s.peer.candidates).toEqual([]);
    expect(s.peer.closed).toBe(true);
    s.relay.sendJson({ n: 1 });
    expect(s.socket.json().at(-1)).toEqual({ n: 1 });
  });

  it("stays relayed when the agent declines or the channel fails before the switch", async () => {
    const declined = session();
    declined.socket.text("c");
    await settle();
    declined.socket.text({ type: "rtcUnavailable", reason: "direct connections are off for this group" });
    declined.relay.sendJson({ n: 1 });
    expect(declined.socket.json().at(-1)).toEqual({ n: 1 });
    expect(declined.paths).toEqual(["relay"]);
    expect(declined.peer.closed).toBe(true);
    expect(declined.closed()).toBeNull();

    const failed = session();
    failed.socket.text("c");
    await settle();
    failed.peer.channel.open();
    failed.peer.channel.onclose?.({});
    failed.socket.text({ type: "rtcReady" });
    failed.relay.sendJson({ n: 2 });
    expect(failed.socket.json().at(-1)).toEqual({ n: 2 });
    expect(failed.closed()).toBeNull();
  });

  it("ends the session when the channel dies after the switch, so the viewer can reopen it", async () => {
    const s = session();
    s.socket.text("c");
    await settle();
    s.peer.channel.open();
    s.socket.text({ type: "rtcReady" });
    s.peer.channel.onclose?.({});
    expect(s.closed()).toEqual({ paired: true, code: DIRECT_LOST.code, reason: DIRECT_LOST.reason });
    expect(s.socket.closedWith).toEqual({ code: DIRECT_LOST.code, reason: DIRECT_LOST.reason });
  });

  it("gives up on a device that never answers, and stays relayed", async () => {
    vi.useFakeTimers();
    const s = session();
    s.socket.text("c");
    await vi.advanceTimersByTimeAsync(OPEN_DEADLINE_MS - 1);
    expect(s.peer.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.peer.closed).toBe(true);
    expect(s.paths).toEqual(["relay"]);
    s.relay.sendJson({ n: 1 });
    expect(s.socket.json().at(-1)).toEqual({ n: 1 });
    expect(s.closed()).toBeNull();
  });

  it("keeps an open channel past the deadline", async () => {
    vi.useFakeTimers();
    const s = session();
    s.socket.text("c");
    await vi.advanceTimersByTimeAsync(10);
    s.peer.channel.open();
    await vi.advanceTimersByTimeAsync(OPEN_DEADLINE_MS * 2);
    expect(s.peer.closed).toBe(false);
    expect(s.paths).toEqual([]);
  });

  /** A session switched both ways. */
  async function switched() {
    const s = session();
    s.socket.text("c");
    await settle();
    s.peer.channel.open();
    s.socket.text({ type: "rtcReady" });
    s.socket.text({ type: "rtcSwitch" });
    expect(s.paths).toEqual(["direct"]);
    return s;
  }

  it("holds a relay close that overtook the agent's last channel messages until its rtcEnd", async () => {
    const s = await switched();
    s.socket.onclose?.({ code: 1000, reason: "the shell exited" });
    expect(s.closed()).toBeNull();
    s.peer.channel.onmessage?.({ data: JSON.stringify({ n: 7 }) });
    expect(s.closed()).toBeNull();
    s.peer.channel.onmessage?.({ data: '{"type":"rtcEnd"}' });
    expect(s.seen.at(-1)).toBe("json:7");
    expect(s.closed()).toEqual({ paired: true, code: 1000, reason: "the shell exited" });
    // The agent dropping its channel afterwards changes nothing.
    s.peer.channel.onclose?.({});
    expect(s.paths).toEqual(["direct"]);
  });

  it("ends the session as lost when the agent's rtcEnd never comes", async () => {
    const s = await switched();
    vi.useFakeTimers();
    s.socket.onclose?.({ code: 1000, reason: "" });
    await vi.advanceTimersByTimeAsync(END_WAIT_MS - 1);
    expect(s.closed()).toBeNull();
    await vi.advanceTimersByTimeAsync(1);
    expect(s.closed()).toEqual({ paired: true, code: DIRECT_LOST.code, reason: DIRECT_LOST.reason });
  });

  it("ends at once when the server revokes a switched session (a policy close)", async () => {
    const s = await switched();
    s.socket.onclose?.({ code: 1008, reason: "the sharing link was revoked or expired" });
    expect(s.closed()).toEqual({ paired: true, code: 1008, reason: "the sharing link was revoked or expired" });
    expect(s.peer.channel.readyState, "the data channel is closed too").toBe("closed");
  });

  it("closes with rtcEnd after its last message, and keeps the connection until the channel has sent them", async () => {
    const s = await switched();
    vi.useFakeTimers();
    s.relay.sendJson({ n: 9 });
    s.relay.close();
    expect(s.peer.channel.sent).toEqual([JSON.stringify({ n: 9 }), '{"type":"rtcEnd"}']);
    // The server's audit record learns what the channel carried, just before the close.
    expect(s.socket.json().at(-1)).toEqual({ type: "rtcTotals", directToDevice: 7, directFromDevice: 0 });
    expect(s.socket.closedWith).toEqual({ code: 1000, reason: "closed by the console" });
    expect(s.peer.channel.readyState).toBe("closed");
    expect(s.peer.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(CLOSE_LINGER_MS);
    expect(s.peer.closed).toBe(true);
  });

  it("sends and joins messages too big for one data-channel message in pieces", async () => {
    const s = await switched();
    const big = new Uint8Array(PIECE * 2 + 1).fill(7);
    s.relay.sendBytes(big);
    s.relay.sendJson({ n: 1 });
    const sent = s.peer.channel.sent;
    expect(sent[0]).toBe('{"type":"rtcPieces","parts":3,"text":false}');
    expect(sent.slice(1, 4).map((m) => (m as Uint8Array).byteLength)).toEqual([PIECE, PIECE, 1]);
    expect(sent[4]).toBe(JSON.stringify({ n: 1 }));
    // The agent's: a big text in pieces (as the agent splits it), then a small message.
    const text = JSON.stringify({ n: 2, pad: "é".repeat(PIECE) });
    const bytes = new TextEncoder().encode(text);
    s.peer.channel.onmessage?.({ data: '{"type":"rtcPieces","parts":3,"text":true}' });
    for (let at = 0; at < bytes.byteLength; at += PIECE) s.peer.channel.onmessage?.({ data: bytes.slice(at, at + PIECE).buffer });
    s.peer.channel.onmessage?.({ data: new Uint8Array([1, 2]).buffer });
    expect(s.seen).toEqual(["paired", "json:2", "bytes:2"]);
    // Broken framing ends the session.
    s.peer.channel.onmessage?.({ data: '{"type":"rtcPieces","parts":2,"text":false}' });
    s.peer.channel.onmessage?.({ data: "not a piece" });
    expect(s.closed()?.reason).toMatch(/where a piece was due/);
  });

  it("offers a receive-only video m-line for desktop sessions and hands the track over", async () => {
    const socket = new FakeRelaySocket();
    const peer = new FakePeer();
    const transceivers: unknown[] = [];
    const tracks: unknown[] = [];
    const withVideo = Object.assign(peer, {
      addTransceiver: (kind: string, init: unknown) => transceivers.push([kind, init]),
      ontrack: null as PeerConnectionLike["ontrack"],
    });
    new RelayConnection(
      "wss://h/r",
      {
        onPaired: () => undefined,
        onMessage: () => undefined,
        onBytes: () => undefined,
        onClosed: () => undefined,
        onTrack: (event) => tracks.push(event.track),
      },
      { direct: DIRECT, createSocket: () => socket, createPeer: () => withVideo, video: true },
    );
    socket.text("c");
    await settle();
    expect(transceivers).toEqual([["video", { direction: "recvonly" }]]);
    const track = { kind: "video" } as unknown as MediaStreamTrack;
    withVideo.ontrack?.({ track, receiver: {} as RTCRtpReceiver });
    expect(tracks).toEqual([track]);

    // Terminal and files sessions offer no video.
    const plain = session();
    const added: unknown[] = [];
    Object.assign(plain.peer, { addTransceiver: (kind: string) => added.push(kind) });
    plain.socket.text("c");
    await settle();
    expect(added).toEqual([]);
  });

  it("stays relayed in a webview without WebRTC", async () => {
    const socket = new FakeRelaySocket();
    const paths: string[] = [];
    const seen: string[] = [];
    const relay = new RelayConnection(
      "wss://h/r",
      {
        onPaired: () => seen.push("paired"),
        onMessage: (m) => seen.push(`json:${String(m.n)}`),
        onBytes: () => undefined,
        onClosed: () => undefined,
        onPath: (path, detail) => paths.push(`${path}: ${detail}`),
      },
      {
        direct: DIRECT,
        createSocket: () => socket,
        createPeer: () => {
          throw new ReferenceError("RTCPeerConnection is not defined");
        },
      },
    );
    socket.text("c");
    relay.sendJson({ n: 1 });
    socket.text({ n: 2 });
    expect(socket.json().at(-1)).toEqual({ n: 1 });
    expect(seen).toEqual(["paired", "json:2"]);
    expect(paths).toEqual(["relay: this browser cannot make a direct path: ReferenceError: RTCPeerConnection is not defined"]);
  });

  it("ends the session on a peer that breaks the switch protocol", async () => {
    const s = session();
    s.socket.text("c");
    await settle();
    s.socket.text({ type: "rtcSwitch" });
    expect(s.closed()?.reason).toMatch(/before rtcReady/);
  });
});

describe("the ticket's direct path as WebRTC's configuration", () => {
  const stun = { urls: ["stun:tether.example:443"], username: null, credential: null };
  const turn = { urls: ["turn:turn.example:3478?transport=udp"], username: "1700000000:ab12", credential: "c2VjcmV0" };

  it("keeps a server's credential only when it has one", () => {
    expect(rtcConfiguration({ iceServers: [stun, turn], relayOnly: false })).toEqual({
      iceServers: [{ urls: stun.urls }, { urls: turn.urls, username: turn.username, credential: turn.credential }],
      iceTransportPolicy: "all",
    });
  });

  it("uses the TURN server's candidates only when the server says relay only", () => {
    expect(rtcConfiguration({ iceServers: [turn], relayOnly: true }).iceTransportPolicy).toBe("relay");
  });
});

describe("a chat's answering page", () => {
  it("answers the console's offer with its ICE servers, takes the channel it opens, and switches", async () => {
    const socket = new FakeRelaySocket();
    const peers: Array<{ config: unknown; peer: FakePeer }> = [];
    const seen: string[] = [];
    const relay = new RelayConnection(
      "wss://h/r",
      {
        onPaired: () => seen.push("paired"),
        onMessage: (m) => seen.push(`json:${String(m.n)}`),
        onBytes: () => undefined,
        onClosed: () => undefined,
      },
      {
        createSocket: () => socket,
        createPeer: (config) => {
          const peer = new FakePeer();
          peers.push({ config, peer });
          return peer;
        },
        peer: "browser-answer",
      },
    );
    socket.text("c");
    await settle();
    expect(peers).toHaveLength(0);
    expect(socket.json()).toEqual([]);
    socket.text({ type: "rtcOffer", sdp: "v=0 offer", config: DIRECT });
    await settle();
    expect(peers).toHaveLength(1);
    const { config, peer } = peers[0]!;
    expect(config).toEqual(DIRECT);
    expect(peer.offeredChannel).toBe(false);
    expect(peer.remote).toBe("v=0 offer");
    expect(socket.json()).toEqual([{ type: "rtcAnswer", sdp: "v=0 answer" }]);
    // A second offer is not a second attempt.
    socket.text({ type: "rtcOffer", sdp: "v=0 again" });
    await settle();
    expect(peers).toHaveLength(1);

    const channel = new FakeChannel();
    peer.ondatachannel?.({ channel });
    channel.open();
    socket.text({ type: "rtcReady" });
    socket.text({ type: "rtcSwitch" });
    relay.sendJson({ n: 1 });
    expect(channel.sent).toEqual([JSON.stringify({ n: 1 })]);
    channel.onmessage?.({ data: JSON.stringify({ n: 2 }) });
    expect(seen).toEqual(["paired", "json:2"]);
  });

  it("the console's offer to a browser carries its ICE configuration; to an agent it does not", async () => {
    const offerOf = async (peerKind?: "browser-offer") => {
      const socket = new FakeRelaySocket();
      new RelayConnection(
        "wss://h/r",
        { onPaired: () => undefined, onMessage: () => undefined, onBytes: () => undefined, onClosed: () => undefined },
        { direct: DIRECT, createSocket: () => socket, createPeer: () => new FakePeer(), peer: peerKind },
      );
      socket.text("c");
      await settle();
      return socket.json()[0];
    };
    expect(await offerOf("browser-offer")).toEqual({ type: "rtcOffer", sdp: "v=0 offer", config: DIRECT });
    expect(await offerOf()).toEqual({ type: "rtcOffer", sdp: "v=0 offer" });
  });
});
