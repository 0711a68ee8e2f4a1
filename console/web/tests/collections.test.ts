import { describe, expect, it } from "vitest";
import { applyGroupEvent, applyUserEvent, rightsOn } from "../src/lib/collections";
import { describeEvent } from "../src/lib/describe";
import type { GroupInfo, UserInfo } from "../src/lib/protocol";
import { ALL_NAMED_RIGHTS, FULL_RIGHTS, RIGHTS, describeRights, hasRight, normalizeRights, withRight } from "../src/lib/rights";
import { parseRoute, routePath } from "../src/lib/routes";
import { ToastQueue } from "../src/lib/toasts";

const group = (id: string, name: string, members: GroupInfo["members"] = []): GroupInfo => ({
  id,
  name,
  description: "",
  members,
  directConnections: true, recordSessions: false, chatTranscripts: false, microphone: false,
  consent: { desktop: "none", terminal: "none", files: "none", promptSecs: 30, whenNobody: "allow" },
  created: 0,
});
const user = (id: string, siteAdmin = false): UserInfo => ({ id, name: id, email: null, siteAdmin, created: 0, secondFactor: false, passkeys: [] });

describe("group events", () => {
  const bob = { id: "bob", siteAdmin: false };

  it("adds and renames groups, kept sorted by name", () => {
    let groups = applyGroupEvent([], { type: "groupCreated", group: group("1", "Zeta", [{ user: "bob", rights: 1 }]) }, bob)!.groups;
    groups = applyGroupEvent(groups, { type: "groupCreated", group: group("2", "alpha", [{ user: "bob", rights: 1 }]) }, bob)!.groups;
    expect(groups.map((g) => g.name)).toEqual(["alpha", "Zeta"]);
    groups = applyGroupEvent(groups, { type: "groupChanged", group: group("1", "Beta", [{ user: "bob", rights: 1 }]) }, bob)!.groups;
    expect(groups.map((g) => g.name)).toEqual(["alpha", "Beta"]);
  });

  it("drops a group whose members no longer include the viewer, and says which", () => {
    const groups = [group("1", "Office", [{ user: "bob", rights: 1 }])];
    const result = applyGroupEvent(groups, { type: "groupChanged", group: group("1", "Office", []) }, bob);
    expect(result).toEqual({ groups: [], lost: "1" });
    // A site admin keeps seeing it.
    const admin = applyGroupEvent(groups, { type: "groupChanged", group: group("1", "Office", []) }, { id: "root", siteAdmin: true });
    expect(admin?.groups).toHaveLength(1);
  });

  it("deletes groups and ignores unrelated events", () => {
    const groups = [group("1", "Office")];
    expect(applyGroupEvent(groups, { type: "groupDeleted", group: "1" }, bob)).toEqual({ groups: [], lost: "1" });
    expect(applyGroupEvent(groups, { type: "groupDeleted", group: "9" }, bob)).toBeNull();
    expect(applyGroupEvent(groups, { type: "userRemoved", user: "x" }, bob)).toBeNull();
  });

  it("reads the viewer's rights", () => {
    const g = group("1", "Office", [{ user: "bob", rights: RIGHTS.view | RIGHTS.terminal }]);
    expect(rightsOn(g, bob)).toBe(RIGHTS.view | RIGHTS.terminal);
    expect(rightsOn(g, { id: "eve", siteAdmin: false })).toBe(0);
    expect(rightsOn(g, { id: "root", siteAdmin: true })).toBe(FULL_RIGHTS);
  });
});

describe("user events", () => {
  it("adds, replaces and removes users", () => {
    let users = applyUserEvent([user("carol")], { type: "userAdded", user: user("alice") })!;
    expect(users.map((u) => u.id)).toEqual(["alice", "carol"]);
    users = applyUserEvent(users, { type: "userChanged", user: user("alice", true) })!;
    expect(users[0]?.siteAdmin).toBe(true);
    users = applyUserEvent(users, { type: "userRemoved", user: "carol" })!;
    expect(users.map((u) => u.id)).toEqual(["alice"]);
    expect(applyUserEvent(users, { type: "groupDeleted", group: "g" })).toBeNull();
  });
});

describe("rights", () => {
  it("match common/src/rights.rs bit values", () => {
    expect(RIGHTS.view).toBe(1);
    expect(RIGHTS.terminal).toBe(16);
    expect(RIGHTS.devices).toBe(1024);
    expect(ALL_NAMED_RIGHTS).toBe(0x7ff);
  });

  it("treat FULL as unsigned and containing everything", () => {
    expect(hasRight(FULL_RIGHTS, RIGHTS.uninstall)).toBe(true);
    expect(withRight(FULL_RIGHTS, RIGHTS.view, true)).toBe(FULL_RIGHTS);
    expect(describeRights(FULL_RIGHTS)).toBe("full");
    expect(describeRights(0)).toBe("none");
    expect(describeRights(normalizeRights(RIGHTS.files))).toBe("view, files");
    expect(withRight(RIGHTS.view | RIGHTS.files, RIGHTS.files, false)).toBe(RIGHTS.view);
  });
});

describe("routes", () => {
  it("round-trip, with device ids that need escaping", () => {
    const id = "ab@c$d+/=";
    const route = { screen: "device", id, tab: "events" } as const;
    expect(parseRoute(routePath(route))).toEqual(route);
    expect(parseRoute("/")).toEqual({ screen: "devices" });
    expect(parseRoute(`/devices/${encodeURIComponent(id)}`)).toEqual({ screen: "device", id, tab: "general" });
    expect(parseRoute("/groups/g1")).toEqual({ screen: "group", id: "g1" });
    expect(parseRoute("/nowhere")).toEqual({ screen: "notFound", path: "/nowhere" });
  });
});

describe("toasts", () => {
  it("always show the newest, folding the oldest into a summary", () => {
    const queue = new ToastQueue(2);
    queue.push("a");
    queue.push("b");
    const third = queue.push("c");
    expect(third.newSummary?.message).toBe("1 earlier notification");
    const fourth = queue.push("d");
    expect(fourth.newSummary).toBeNull();
    expect(queue.items.map((t) => t.message)).toEqual(["2 earlier notifications", "c", "d"]);
    queue.dismiss(queue.items[0]!.id);
    expect(queue.items.map((t) => t.message)).toEqual(["c", "d"]);
    queue.dismiss(fourth.toast.id);
    expect(queue.push("e").newSummary).toBeNull();
    expect(queue.items.map((t) => t.message)).toEqual(["c", "e"]);
  });

  it("describe device events with the names the console knows", () => {
    const names = { device: (id: string) => (id === "d1" ? "web-01" : undefined), group: () => "Office", user: () => undefined };
    expect(describeEvent({ type: "deviceOnline", device: "d1", group: "g" }, names)).toEqual({
      message: "web-01 is online",
      tone: "success",
    });
    expect(describeEvent({ type: "deviceOffline", device: "zz", group: "g" }, names)?.message).toBe("A device went offline");
    expect(describeEvent({ type: "deviceChanged", device: { id: "d1" } as never }, names)).toBeNull();
  });
});
