import { describe, expect, it } from "vitest";
import { DeviceIndex, NO_FILTER, filterDevices, osFamilies, osFamily } from "../src/lib/devices";
import type { DeviceInfo } from "../src/lib/protocol";

function device(id: string, extra: Partial<DeviceInfo> = {}): DeviceInfo {
  return { id, name: id, group: "g1", online: false, os: "", hostname: "", lastseen: 0, agent: null, amtUuid: null, ...extra };
}

const names = new Map([
  ["g1", "Office"],
  ["g2", "Lab"],
]);

describe("DeviceIndex.apply", () => {
  it("adds, changes and removes devices from pushed events", () => {
    const index = new DeviceIndex();
    expect(index.apply({ type: "deviceAdded", device: device("a") }, 100)).toBe(true);
    expect(index.apply({ type: "deviceChanged", device: device("a", { name: "Alpha" }) }, 100)).toBe(true);
    expect(index.get("a")?.name).toBe("Alpha");
    expect(index.apply({ type: "deviceRemoved", device: "a", group: "g1" }, 100)).toBe(true);
    expect(index.size).toBe(0);
    expect(index.apply({ type: "deviceRemoved", device: "a", group: "g1" }, 100)).toBe(false);
  });

  it("flips online state and stamps last seen, replacing the entry", () => {
    const index = new DeviceIndex();
    index.replaceAll([device("a", { lastseen: 5 })]);
    const before = index.get("a");
    expect(index.apply({ type: "deviceOnline", device: "a", group: "g1" }, 200)).toBe(true);
    expect(index.get("a")).toMatchObject({ online: true, lastseen: 200 });
    expect(before?.online).toBe(false);
    index.apply({ type: "deviceOffline", device: "a", group: "g1" }, 300);
    expect(index.get("a")).toMatchObject({ online: false, lastseen: 300 });
    expect(index.counts()).toEqual({ total: 1, online: 0 });
  });

  it("ignores status events for devices it does not know and unrelated events", () => {
    const index = new DeviceIndex();
    expect(index.apply({ type: "deviceOnline", device: "ghost", group: "g1" }, 1)).toBe(false);
    expect(index.apply({ type: "userRemoved", user: "bob" }, 1)).toBe(false);
    expect(index.size).toBe(0);
  });

  it("drops a deleted group's devices", () => {
    const index = new DeviceIndex();
    index.replaceAll([device("a"), device("b", { group: "g2" })]);
    expect(index.apply({ type: "groupDeleted", group: "g1" }, 1)).toBe(true);
    expect([...index.values()].map((d) => d.id)).toEqual(["b"]);
  });

  it("keeps up with 10,000 devices and a burst of status events", () => {
    const index = new DeviceIndex();
    index.replaceAll(Array.from({ length: 10_000 }, (_, i) => device(`d${i}`)));
    for (let i = 0; i < 10_000; i += 2) index.apply({ type: "deviceOnline", device: `d${i}`, group: "g1" }, 9);
    expect(index.counts()).toEqual({ total: 10_000, online: 5_000 });
    const online = filterDevices(index.values(), { ...NO_FILTER, status: "online" }, names);
    expect(online).toHaveLength(5_000);
  });
});

describe("filterDevices", () => {
  const devices = [
    device("1", { name: "web-01", online: true, os: "Debian GNU/Linux 12", group: "g1", lastseen: 50 }),
    device("2", { name: "Build", hostname: "ci-runner", os: "Windows 11 Pro", group: "g2", lastseen: 90 }),
    device("3", { name: "alpha", os: "macOS 14", group: "g1", lastseen: 10 }),
  ];

  it("sorts by name case-insensitively by default", () => {
    expect(filterDevices(devices, NO_FILTER, names).map((d) => d.name)).toEqual(["alpha", "Build", "web-01"]);
  });

  it("searches name, host name, OS and group name", () => {
    const find = (text: string) => filterDevices(devices, { ...NO_FILTER, text }, names).map((d) => d.id);
    expect(find("WEB")).toEqual(["1"]);
    expect(find("runner")).toEqual(["2"]);
    expect(find("windows")).toEqual(["2"]);
    expect(find("lab")).toEqual(["2"]);
    expect(find("  ")).toHaveLength(3);
  });

  it("filters by group, status and OS family together", () => {
    const result = filterDevices(devices, { ...NO_FILTER, group: "g1", status: "offline", os: "macOS" }, names);
    expect(result.map((d) => d.id)).toEqual(["3"]);
  });

  it("sorts by status (online first), last seen (newest first) and descending", () => {
    expect(filterDevices(devices, { ...NO_FILTER, sort: "status" }, names)[0]?.id).toBe("1");
    expect(filterDevices(devices, { ...NO_FILTER, sort: "lastseen" }, names).map((d) => d.id)).toEqual(["2", "1", "3"]);
    expect(filterDevices(devices, { ...NO_FILTER, descending: true }, names).map((d) => d.name)).toEqual([
      "web-01",
      "Build",
      "alpha",
    ]);
  });

  it("names OS families for the filter menu", () => {
    expect(osFamily("Debian GNU/Linux 12 (bookworm)")).toBe("Linux");
    expect(osFamily("Microsoft Windows 11")).toBe("Windows");
    expect(osFamily("")).toBe("Unknown");
    expect(osFamilies(devices)).toEqual(["Linux", "Windows", "macOS"]);
  });
});
