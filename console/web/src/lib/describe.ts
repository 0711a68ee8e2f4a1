// Turns pushed events into the sentences toasts show. Returns null for events that are not worth
// interrupting anyone for (plain changes, audit records).

import type { ServerEvent } from "./protocol";
import type { Tone } from "./toasts";

export interface Names {
  device(id: string): string | undefined;
  group(id: string): string | undefined;
  user(id: string): string | undefined;
}

export function describeEvent(event: ServerEvent, names: Names): { message: string; tone: Tone } | null {
  const device = (id: string) => names.device(id) ?? "A device";
  const group = (id: string) => names.group(id) ?? "a group";
  switch (event.type) {
    case "deviceOnline":
      return { message: `${device(event.device)} is online`, tone: "success" };
    case "deviceOffline":
      return { message: `${device(event.device)} went offline`, tone: "warning" };
    case "deviceAdded":
      return { message: `New device ${event.device.name} joined ${group(event.device.group)}`, tone: "info" };
    case "deviceRemoved":
      return { message: `${device(event.device)} was removed`, tone: "info" };
    case "groupCreated":
      return { message: `Device group ${event.group.name} was created`, tone: "info" };
    case "groupDeleted":
      return { message: `Device group ${group(event.group)} was deleted`, tone: "info" };
    case "userAdded":
      return { message: `User ${event.user.name} was added`, tone: "info" };
    case "userRemoved":
      return { message: `User ${names.user(event.user) ?? event.user} was removed`, tone: "info" };
    case "chatDeclined":
      return { message: `${event.byName} declined your chat invitation`, tone: "warning" };
    default:
      return null;
  }
}
