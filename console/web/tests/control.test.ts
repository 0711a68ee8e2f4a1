import { describe, expect, it } from "vitest";
import { Backoff } from "../src/lib/backoff";
import { ControlClient, ControlError, controlUrl } from "../src/lib/control";
import type { StateChange } from "../src/lib/control";
import type { ServerEvent } from "../src/lib/protocol";
import { FakeSocket, FakeTimers } from "./fakeSocket";

function setup(requestTimeoutMs = 30_000) {
  const sockets: FakeSocket[] = [];
  const timers = new FakeTimers();
  const client = new ControlClient({
    url: "wss://example.test/control",
    createSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    timers,
    backoff: new Backoff({ initialMs: 500, maxMs: 8000, factor: 2, jitter: 0, random: () => 0 }),
    requestTimeoutMs,
  });
  const states: StateChange[] = [];
  client.onState((s) => states.push(s));
  const current = () => {
    const socket = sockets[sockets.length - 1];
    if (!socket) throw new Error("no socket yet");
    return socket;
  };
  return { client, sockets, timers, states, current };
}

describe("ControlClient requests", () => {
  it("matches replies to requests by id, whatever their order", async () => {
    const { client, current } = setup();
    client.start();
    current().open();
    const groups = client.request("listGroups", {});
    const created = client.request("createGroup", { name: "Office" });
    const [first, second] = current().sent;
    expect(first).toMatchObject({ action: "listGroups" });
    expect(second).toMatchObject({ action: "createGroup", name: "Office" });
    expect(first?.id).not.toEqual(second?.id);

    current().receive({ action: "createGroup", id: second?.id, ok: true, result: { id: "g1", name: "Office" } });
    current().receive({ action: "listGroups", id: first?.id, ok: true, result: [] });
    await expect(created).resolves.toMatchObject({ id: "g1" });
    await expect(groups).resolves.toEqual([]);
  });

  it("turns error replies into ControlErrors with the server's code and message", async () => {
    const { client, current } = setup();
    client.start();
    current().open();
    const pending = client.request("deleteGroup", { group: "nope" });
    current().receive({
      action: "deleteGroup",
      id: current().lastRequest().id,
      ok: false,
      error: { code: "not_found", message: "no such group" },
    });
    const error = await pending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ControlError);
    expect(error).toMatchObject({ code: "not_found", message: "no such group" });
  });

  it("refuses requests while not connected instead of queueing them", async () => {
    const { client } = setup();
    client.start();
    await expect(client.request("listUsers", {})).rejects.toMatchObject({ code: "offline" });
  });

  it("fails pending requests when the connection drops", async () => {
    const { client, current } = setup();
    client.start();
    current().open();
    const pending = client.request("listDevices", {});
    current().drop();
    await expect(pending).rejects.toMatchObject({ code: "disconnected" });
  });

  it("times out a request the server never answers", async () => {
    const { client, current, timers } = setup(1000);
    client.start();
    current().open();
    const pending = client.request("serverInfo", {});
    timers.advance(1000);
    await expect(pending).rejects.toMatchObject({ code: "timeout" });
    // A late reply for it is ignored.
    current().receive({ action: "serverInfo", id: current().lastRequest().id, ok: true, result: {} });
  });

  it("ignores frames that are not JSON, unknown ids and malformed events", () => {
    const { client, current } = setup();
    const events: ServerEvent[] = [];
    client.onEvent((e) => events.push(e));
    client.start();
    current().open();
    current().onmessage?.({ data: "not json" });
    current().receive({ action: "listGroups", id: 999, ok: true, result: [] });
    current().receive({ action: "event", event: { nope: 1 } });
    expect(events).toEqual([]);
  });
});

describe("ControlClient events", () => {
  it("hands pushed events to every listener until it unsubscribes", () => {
    const { client, current } = setup();
    const a: string[] = [];
    const b: string[] = [];
    client.onEvent((e) => a.push(e.type));
    const unsubscribe = client.onEvent((e) => b.push(e.type));
    client.start();
    current().open();
    current().receive({ action: "event", event: { type: "deviceOnline", device: "d1", group: "g1" } });
    unsubscribe();
    current().receive({ action: "event", event: { type: "deviceOffline", device: "d1", group: "g1" } });
    expect(a).toEqual(["deviceOnline", "deviceOffline"]);
    expect(b).toEqual(["deviceOnline"]);
  });
});

describe("ControlClient reconnects", () => {
  it("reconnects with growing delays, and starts over after a success", () => {
    const { client, sockets, timers, states, current } = setup();
    client.start();
    expect(current().url).toBe("wss://example.test/control");
    current().drop(); // refused before opening
    expect(states.at(-1)).toEqual({ state: "offline", retryInMs: 500, wasOpen: false });
    timers.advance(499);
    expect(sockets).toHaveLength(1);
    timers.advance(1);
    expect(sockets).toHaveLength(2);
    current().drop();
    expect(states.at(-1)?.retryInMs).toBe(1000);
    timers.advance(1000);
    current().drop();
    expect(states.at(-1)?.retryInMs).toBe(2000);
    timers.advance(2000);

    current().open();
    expect(client.state).toBe("open");
    current().drop();
    expect(states.at(-1)).toEqual({ state: "offline", retryInMs: 500, wasOpen: true });
  });

  it("caps the delay", () => {
    const { client, timers, states, current } = setup();
    client.start();
    for (let i = 0; i < 10; i++) {
      current().drop();
      timers.advance(states.at(-1)?.retryInMs ?? 0);
    }
    expect(Math.max(...states.map((s) => s.retryInMs ?? 0))).toBe(8000);
  });

  it("retries at once on request, and never after stop", () => {
    const { client, sockets, timers, current } = setup();
    client.start();
    current().drop();
    client.retryNow();
    expect(sockets).toHaveLength(2);
    expect(timers.pending()).toEqual([]);
    current().open();
    client.stop();
    expect(current().closed).toBe(true);
    expect(client.state).toBe("idle");
    timers.advance(60_000);
    expect(sockets).toHaveLength(2);
  });
});

describe("Backoff", () => {
  it("randomises within the jitter share and grows", () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 30_000, factor: 2, jitter: 0.5, random: () => 0.999 });
    expect(backoff.next()).toBe(501);
    expect(backoff.next()).toBe(1001);
    const low = new Backoff({ initialMs: 1000, maxMs: 30_000, factor: 2, jitter: 0.5, random: () => 0 });
    expect(low.next()).toBe(1000);
    expect(low.next()).toBe(2000);
    low.reset();
    expect(low.attempts).toBe(0);
    expect(low.next()).toBe(1000);
  });
});

describe("controlUrl", () => {
  it("uses wss for https pages and ws behind a TLS-offloading proxy", () => {
    expect(controlUrl({ protocol: "https:", host: "h:8443" })).toBe("wss://h:8443/control");
    expect(controlUrl({ protocol: "http:", host: "h" })).toBe("ws://h/control");
  });
});
