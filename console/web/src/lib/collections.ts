// Groups and users as the console holds them, kept current by pushed events.

import type { GroupId, GroupInfo, ServerEvent, UserId, UserInfo } from "./protocol";

/** Sorted by name, case-insensitively: the order every list shows. */
export function byName<T extends { name: string }>(items: Iterable<T>): T[] {
  return [...items].sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
}

export interface Viewer {
  id: UserId;
  siteAdmin: boolean;
}

/**
 * Applies a group event to the list. A `groupChanged` that no longer names the viewer among its
 * members means the viewer's rights were removed: the group disappears (site admins see all).
 * Returns the new list, or null when nothing changed; `lost` names a group that disappeared.
 */
export function applyGroupEvent(
  groups: readonly GroupInfo[],
  event: ServerEvent,
  viewer: Viewer,
): { groups: GroupInfo[]; lost: GroupId | null } | null {
  switch (event.type) {
    case "groupCreated":
    case "groupChanged": {
      const group = event.group;
      const visible = viewer.siteAdmin || group.members.some((m) => m.user === viewer.id && m.rights !== 0);
      const rest = groups.filter((g) => g.id !== group.id);
      if (!visible) {
        return rest.length === groups.length ? null : { groups: rest, lost: group.id };
      }
      return { groups: byName([...rest, group]), lost: null };
    }
    case "groupDeleted": {
      const rest = groups.filter((g) => g.id !== event.group);
      return rest.length === groups.length ? null : { groups: rest, lost: event.group };
    }
    default:
      return null;
  }
}

/** Applies a user event; null when the event is not about users. */
export function applyUserEvent(users: readonly UserInfo[], event: ServerEvent): UserInfo[] | null {
  switch (event.type) {
    case "userAdded":
    case "userChanged":
      return byName([...users.filter((u) => u.id !== event.user.id), event.user]);
    case "userRemoved":
      return users.filter((u) => u.id !== event.user);
    default:
      return null;
  }
}

/** The viewer's rights on a group (site admins have all). */
export function rightsOn(group: GroupInfo, viewer: Viewer): number {
  if (viewer.siteAdmin) return 0xffffffff;
  return group.members.find((m) => m.user === viewer.id)?.rights ?? 0;
}
