// The device list as the console holds it: a map kept current by pushed events, and the
// filtered, sorted view the table shows. Plain data, so that 10,000 devices stay cheap: an event
// touches one entry, and the view is recomputed at most once per batch by the store.

import type { DeviceId, DeviceInfo, GroupId, ServerEvent } from "./protocol";

export type StatusFilter = "all" | "online" | "offline";
export type SortKey = "name" | "status" | "os" | "group" | "lastseen";

export interface DeviceFilter {
  text: string;
  group: GroupId | null;
  status: StatusFilter;
  /** An OS family from [`osFamily`], or null for all. */
  os: string | null;
  sort: SortKey;
  descending: boolean;
}

export const NO_FILTER: DeviceFilter = {
  text: "",
  group: null,
  status: "all",
  os: null,
  sort: "name",
  descending: false,
};

export class DeviceIndex {
  private readonly byId = new Map<DeviceId, DeviceInfo>();

  get size(): number {
    return this.byId.size;
  }

  get(id: DeviceId): DeviceInfo | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<DeviceInfo> {
    return this.byId.values();
  }

  replaceAll(devices: readonly DeviceInfo[]): void {
    this.byId.clear();
    for (const device of devices) this.byId.set(device.id, device);
  }

  /**
   * Applies one pushed event; true when the device list changed. Entries are replaced, never
   * mutated, so a view holding an old object is not changed under its feet.
   */
  apply(event: ServerEvent, nowSecs: number): boolean {
    switch (event.type) {
      case "deviceAdded":
      case "deviceChanged":
        this.byId.set(event.device.id, event.device);
        return true;
      case "deviceRemoved":
        return this.byId.delete(event.device);
      case "deviceOnline":
      case "deviceOffline": {
        const device = this.byId.get(event.device);
        if (!device) return false;
        const online = event.type === "deviceOnline";
        // The server stamps last-seen at connect and at disconnect; mirror it without a round trip.
        this.byId.set(device.id, { ...device, online, lastseen: nowSecs });
        return true;
      }
      case "groupDeleted":
        return this.removeGroup(event.group);
      default:
        return false;
    }
  }

  /** Drops every device of a group (deleted, or no longer visible to this user). */
  removeGroup(group: GroupId): boolean {
    let changed = false;
    for (const [id, device] of this.byId) {
      if (device.group === group) {
        this.byId.delete(id);
        changed = true;
      }
    }
    return changed;
  }

  counts(): { total: number; online: number } {
    let online = 0;
    for (const device of this.byId.values()) if (device.online) online += 1;
    return { total: this.byId.size, online };
  }
}

/** "Debian GNU/Linux 12 (bookworm)" → "Linux"; used for the OS filter and icons. */
export function osFamily(os: string): string {
  const text = os.toLowerCase();
  if (text === "") return "Unknown";
  if (text.includes("windows")) return "Windows";
  if (text.includes("mac") || text.includes("darwin")) return "macOS";
  if (text.includes("android")) return "Android";
  if (text.includes("bsd")) return "BSD";
  return "Linux";
}

function matchesText(device: DeviceInfo, needle: string, groupName: string): boolean {
  if (needle === "") return true;
  return (
    device.name.toLowerCase().includes(needle) ||
    device.hostname.toLowerCase().includes(needle) ||
    device.os.toLowerCase().includes(needle) ||
    groupName.toLowerCase().includes(needle)
  );
}

/** The devices the table shows, in order. Sort keys are computed once per device, not per compare. */
export function filterDevices(
  devices: Iterable<DeviceInfo>,
  filter: DeviceFilter,
  groupNames: ReadonlyMap<GroupId, string>,
): DeviceInfo[] {
  const needle = filter.text.trim().toLowerCase();
  const keyed: Array<{ key: string | number; name: string; device: DeviceInfo }> = [];
  for (const device of devices) {
    if (filter.group !== null && device.group !== filter.group) continue;
    if (filter.status === "online" && !device.online) continue;
    if (filter.status === "offline" && device.online) continue;
    if (filter.os !== null && osFamily(device.os) !== filter.os) continue;
    const groupName = groupNames.get(device.group) ?? "";
    if (!matchesText(device, needle, groupName)) continue;
    keyed.push({ key: sortKey(device, filter.sort, groupName), name: device.name.toLowerCase(), device });
  }
  const direction = filter.descending ? -1 : 1;
  keyed.sort((a, b) => {
    if (a.key !== b.key) return (a.key < b.key ? -1 : 1) * direction;
    if (a.name !== b.name) return a.name < b.name ? -1 : 1;
    return a.device.id < b.device.id ? -1 : 1;
  });
  return keyed.map((entry) => entry.device);
}

function sortKey(device: DeviceInfo, sort: SortKey, groupName: string): string | number {
  switch (sort) {
    case "name":
      return device.name.toLowerCase();
    case "status":
      // Online first when ascending.
      return device.online ? 0 : 1;
    case "os":
      return device.os.toLowerCase();
    case "group":
      return groupName.toLowerCase();
    case "lastseen":
      // Most recent first when ascending, as admins expect.
      return -device.lastseen;
  }
}

/** The OS families present, for the filter menu. */
export function osFamilies(devices: Iterable<DeviceInfo>): string[] {
  const families = new Set<string>();
  for (const device of devices) families.add(osFamily(device.os));
  return [...families].sort();
}
