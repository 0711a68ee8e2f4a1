// The console's path switch, checked the way `common/tests/relay_switch_props.rs` checks the
// agent's: two ends, two paths per direction, and many random interleavings of sends, deliveries
// and channel openings. Every message must arrive exactly once, in order, in both directions.
import { describe, expect, it } from "vitest";
import { PathSwitch, SwitchError, asSwitchSignal, signalText, type Payload, type Transmit } from "../src/lib/sessions/pathSwitch";

/** Deterministic, so a failing seed can be replayed. */
function rng(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

type Wire = { relay: Transmit[]; direct: Payload[] };

class End {
  readonly switch = new PathSwitch();
  readonly got: Payload[] = [];
  sent = 0;
  constructor(readonly name: string) {}

  /** Moves what the switch hands out onto the outgoing paths. */
  flush(out: Wire): void {
    for (let t = this.switch.pollTransmit(); t; t = this.switch.pollTransmit()) {
      if (t.kind === "data" && (t.path === "direct")) out.direct.push(t.payload);
      else out.relay.push(t);
    }
  }

  collect(): void {
    for (let p = this.switch.pollDeliver(); p !== undefined; p = this.switch.pollDeliver()) this.got.push(p);
  }

  receiveRelay(t: Transmit): void {
    if (t.kind === "signal") this.switch.relaySignal(t.signal);
    else this.switch.relayData(t.payload);
    this.collect();
  }

  receiveDirect(p: Payload): void {
    this.switch.directData(p);
    this.collect();
  }
}

function payload(from: string, n: number): Payload {
  // Alternate text and bytes: the switch must keep both kinds in one order.
  return n % 2 === 0 ? `${from}${n}` : new Uint8Array(new TextEncoder().encode(`${from}${n}`));
}

function text(p: Payload): string {
  return typeof p === "string" ? p : new TextDecoder().decode(p);
}

function run(seed: number): void {
  const random = rng(seed);
  const a = new End("a");
  const b = new End("b");
  const ab: Wire = { relay: [], direct: [] };
  const ba: Wire = { relay: [], direct: [] };
  const total = 40;
  for (let step = 0; step < 2000; step += 1) {
    const roll = random();
    if (roll < 0.2 && a.sent < total) a.switch.send(payload("a", a.sent++));
    else if (roll < 0.4 && b.sent < total) b.switch.send(payload("b", b.sent++));
    else if (roll < 0.45) a.switch.directOpened();
    else if (roll < 0.5) b.switch.directOpened();
    else if (roll < 0.625 && ab.relay.length) b.receiveRelay(ab.relay.shift()!);
    else if (roll < 0.75 && ab.direct.length) b.receiveDirect(ab.direct.shift()!);
    else if (roll < 0.875 && ba.relay.length) a.receiveRelay(ba.relay.shift()!);
    else if (ba.direct.length) a.receiveDirect(ba.direct.shift()!);
    a.flush(ab);
    b.flush(ba);
  }
  // Let everything in flight arrive.
  while (ab.relay.length || ab.direct.length || ba.relay.length || ba.direct.length) {
    if (ab.relay.length) b.receiveRelay(ab.relay.shift()!);
    else if (ab.direct.length) b.receiveDirect(ab.direct.shift()!);
    if (ba.relay.length) a.receiveRelay(ba.relay.shift()!);
    else if (ba.direct.length) a.receiveDirect(ba.direct.shift()!);
    a.flush(ab);
    b.flush(ba);
  }
  const expected = (from: string, n: number) => Array.from({ length: n }, (_, i) => `${from}${i}`);
  expect(b.got.map(text), `seed ${seed}`).toEqual(expected("a", a.sent));
  expect(a.got.map(text), `seed ${seed}`).toEqual(expected("b", b.sent));
}

describe("path switch", () => {
  it("delivers every message once and in order over random interleavings of both paths", () => {
    for (let seed = 1; seed <= 1000; seed += 1) run(seed);
  });

  it("switches each side's sending once both channels are open, marking the splice", () => {
    const a = new PathSwitch();
    a.send("1");
    a.directOpened();
    a.send("2");
    a.relaySignal("rtcReady");
    a.send("3");
    const sent = [] as Transmit[];
    for (let t = a.pollTransmit(); t; t = a.pollTransmit()) sent.push(t);
    expect(sent).toEqual([
      { kind: "data", path: "relay", payload: "1" },
      { kind: "signal", signal: "rtcReady" },
      { kind: "data", path: "relay", payload: "2" },
      { kind: "signal", signal: "rtcSwitch" },
      { kind: "data", path: "direct", payload: "3" },
    ]);
    expect(a.sendingPath).toBe("direct");
    expect(a.isSwitched).toBe(false);
  });

  it("stays on the relay when the channel fails before the switch, and ends the session after it", () => {
    const early = new PathSwitch();
    early.directOpened();
    early.directFailed();
    early.relaySignal("rtcReady");
    expect(early.sendingPath).toBe("relay");

    const late = new PathSwitch();
    late.directOpened();
    late.relaySignal("rtcReady");
    expect(() => late.directFailed()).toThrow(SwitchError);
  });

  it("refuses a peer that breaks the protocol", () => {
    expect(() => new PathSwitch().relaySignal("rtcSwitch")).toThrow(/before rtcReady/);
    const twice = new PathSwitch();
    twice.relaySignal("rtcReady");
    twice.relaySignal("rtcSwitch");
    expect(() => twice.relaySignal("rtcSwitch")).toThrow(/twice/);
    expect(() => twice.relayData("late")).toThrow(/after its rtcSwitch/);
    const flood = new PathSwitch(4);
    expect(() => flood.directData("12345")).toThrow(/more than 4 bytes/);
  });

  it("ends a closing side's channel data with rtcEnd, and holds the peer's close until it is read", () => {
    const [a, b] = [new PathSwitch(), new PathSwitch()];
    for (const side of [a, b]) {
      side.directOpened();
      side.relaySignal("rtcReady");
      side.relaySignal("rtcSwitch");
      while (side.pollTransmit());
    }
    a.send("last");
    a.finish();
    a.finish();
    const sent = [] as Transmit[];
    for (let t = a.pollTransmit(); t; t = a.pollTransmit()) sent.push(t);
    expect(sent).toEqual([
      { kind: "data", path: "direct", payload: "last" },
      { kind: "data", path: "direct", payload: '{"type":"rtcEnd"}' },
    ]);
    expect(b.peerDone).toBe(false);
    for (const t of sent) if (t.kind === "data") b.directData(t.payload);
    expect(b.peerDone).toBe(true);
    expect(b.pollDeliver()).toBe("last");
    expect(b.pollDeliver()).toBeUndefined();
    expect(() => b.directFailed()).not.toThrow();
    expect(() => b.directData("more")).toThrow(/after its rtcEnd/);
    expect(() => new PathSwitch().relaySignal("rtcEnd")).toThrow(/on the relay/);
  });

  it("needs no rtcEnd from a side that never switched", () => {
    const a = new PathSwitch();
    a.send("x");
    a.finish();
    expect(a.pollTransmit()).toEqual({ kind: "data", path: "relay", payload: "x" });
    expect(a.pollTransmit()).toBeUndefined();
    expect(new PathSwitch().peerDone).toBe(true);
  });

  it("speaks the same signal texts as the agent", () => {
    expect(signalText("rtcEnd")).toBe('{"type":"rtcEnd"}');
    expect(signalText("rtcReady")).toBe('{"type":"rtcReady"}');
    expect(asSwitchSignal(JSON.parse(signalText("rtcSwitch")) as Record<string, unknown>)).toBe("rtcSwitch");
    expect(asSwitchSignal({ type: "resize" })).toBeNull();
  });
});
