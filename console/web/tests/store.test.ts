// The console store end to end over a fake socket: login state, the first load, pushed events
// applied to devices, groups and users, toasts, and the return to the login screen when the
// session is gone.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConsoleStore } from "../src/stores/console.svelte";
import type { DeviceInfo, GroupInfo, UserInfo } from "../src/lib/protocol";
import { FakeSocket } from "./fakeSocket";

const admin: UserInfo = { id: "admin", name: "admin", email: null, siteAdmin: true, created: 0, secondFactor: false, passkeys: [] };
const office: GroupInfo = { id: "g1", name: "Office", description: "", members: [{ user: "admin", rights: 0xffffffff }], created: 0, directConnections: true, recordSessions: false, chatTranscripts: false, microphone: false, consent: { desktop: "none", terminal: "none", files: "none", promptSecs: 30, whenNobody: "allow" } };
const pc = (id: string, online = false): DeviceInfo => ({
  id,
  name: `pc-${id}`,
  group: "g1",
  online,
  os: "Debian GNU/Linux 12",
  hostname: id,
  lastseen: 0,
  agent: null,
  amtUuid: null,
});

let status: { setup_required: boolean; new_accounts: boolean; user: UserInfo | null };

beforeEach(() => {
  vi.useFakeTimers();
  status = { setup_required: false, new_accounts: false, user: admin };
  vi.stubGlobal("location", { protocol: "https:", host: "console.test", pathname: "/" });
  vi.stubGlobal(
    "fetch",
    vi.fn(async () => new Response(JSON.stringify(status), { status: 200, headers: { "Content-Type": "application/json" } })),
  );
});

afterEach(() => {
  vi.useRealTimers();
  vi.unstubAllGlobals();
});

function answer(socket: FakeSocket, results: Record<string, unknown>) {
  for (const request of socket.sent.splice(0)) {
    const action = request.action as string;
    socket.receive({ action, id: request.id, ok: true, result: results[action] });
  }
}

async function connected(devices: DeviceInfo[]) {
  const sockets: FakeSocket[] = [];
  const store = new ConsoleStore((url) => {
    const socket = new FakeSocket(url);
    sockets.push(socket);
    return socket;
  });
  await store.init();
  expect(store.phase).toBe("console");
  const socket = sockets[0]!;
  expect(socket.url).toBe("wss://console.test/control");
  socket.open();
  answer(socket, {
    serverInfo: { name: "localhost", version: "0.1.0", protocol: 1, agentCertHash: "", webCertHash: "", httpsPort: 443 },
    whoAmI: { user: admin, secondFactorNeeded: false },
  });
  await vi.waitFor(() => expect(socket.sent.map((r) => r.action)).toEqual(["listGroups", "listDevices"]));
  answer(socket, { listGroups: [office], listDevices: devices });
  await vi.waitFor(() => expect(socket.sent.map((r) => r.action)).toEqual(["listUsers"]));
  answer(socket, { listUsers: [admin] });
  await vi.waitFor(() => expect(store.loaded).toBe(true));
  return { store, socket, sockets };
}

describe("ConsoleStore", () => {
  it("shows setup or login when nobody is signed in", async () => {
    status = { setup_required: true, new_accounts: false, user: null };
    const store = new ConsoleStore(() => new FakeSocket(""));
    await store.init();
    expect(store.phase).toBe("setup");
    status = { setup_required: false, new_accounts: false, user: null };
    await store.init();
    expect(store.phase).toBe("login");
  });

  it("loads everything on connect and applies pushed device events", async () => {
    const { store, socket } = await connected([pc("a"), pc("b", true)]);
    expect(store.groups.map((g) => g.name)).toEqual(["Office"]);
    expect(store.devices.counts()).toEqual({ total: 2, online: 1 });

    const version = store.deviceVersion;
    socket.receive({ action: "event", event: { type: "deviceOnline", device: "a", group: "g1" } });
    socket.receive({ action: "event", event: { type: "deviceAdded", device: pc("c", true) } });
    expect(store.devices.counts()).toEqual({ total: 3, online: 3 });
    // One re-render for the burst, once the throttle fires.
    vi.advanceTimersByTime(200);
    expect(store.deviceVersion).toBe(version + 1);
    expect(store.toasts.map((t) => t.message)).toEqual(["pc-a is online", "New device pc-c joined Office"]);

    socket.receive({ action: "event", event: { type: "groupDeleted", group: "g1" } });
    expect(store.groups).toEqual([]);
    expect(store.devices.size).toBe(0);
  });

  it("keeps users and audit records current", async () => {
    const { store, socket } = await connected([]);
    socket.receive({ action: "event", event: { type: "userAdded", user: { id: "bob", name: "bob", siteAdmin: false, created: 1 } } });
    expect(store.users.map((u) => u.id)).toEqual(["admin", "bob"]);
    const record = { id: 7, time: 1, kind: "login", message: "bob logged in" };
    socket.receive({ action: "event", event: { type: "logged", record } });
    expect(store.liveEvents).toEqual([record]);
  });

  it("asks for nothing else while the site requires a second factor the account lacks", async () => {
    const sockets: FakeSocket[] = [];
    const store = new ConsoleStore((url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    });
    await store.init();
    const socket = sockets[0]!;
    socket.open();
    answer(socket, {
      serverInfo: { name: "localhost", version: "0.1.0", protocol: 1, agentCertHash: "", webCertHash: "", httpsPort: 443 },
      whoAmI: { user: admin, secondFactorNeeded: true },
    });
    await vi.waitFor(() => expect(store.loaded).toBe(true));
    expect(store.secondFactorNeeded).toBe(true);
    expect(socket.sent).toEqual([]);
    // Set up: the account's change opens the rest of the console.
    socket.receive({ action: "event", event: { type: "userChanged", user: { ...admin, secondFactor: true } } });
    expect(socket.sent.map((r) => r.action)).toEqual(["serverInfo", "whoAmI"]);
  });

  it("goes offline, reconnects and reloads; back to login when the session ended", async () => {
    const { store, socket, sockets } = await connected([pc("a")]);
    socket.drop();
    expect(store.connection).toBe("offline");
    expect(store.retryAt).not.toBeNull();
    vi.advanceTimersByTime(1000);
    expect(sockets).toHaveLength(2);
    sockets[1]!.open();
    expect(sockets[1]!.sent.map((r) => r.action)).toEqual(["serverInfo", "whoAmI"]);

    status = { setup_required: false, new_accounts: false, user: null };
    sockets[1]!.drop();
    await vi.waitFor(() => expect(store.phase).toBe("login"));
    expect(store.loginNotice).toMatch(/session has ended/);
    expect(store.devices.size).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(sockets).toHaveLength(2);
  });
});
