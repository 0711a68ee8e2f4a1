// What the desktop app is asked to notify about (`console/src/notify.rs` decides from the user's
// settings and shows it): devices of watched groups going offline or coming online, chat
// invitations, sessions opened to devices of watched groups. In a browser nothing happens.

import { invoke } from "@tauri-apps/api/core";
import type { ServerEvent } from "./protocol.gen";
import { inDesktopApp } from "./sessions/nativePeer";

export type NotifyKind = "devices" | "chat" | "sessions";

export interface AppNotification {
  kind: NotifyKind;
  group: string | null;
  title: string;
  body: string;
}

export interface NotifyNames {
  device(id: string): string | undefined;
  group(id: string): string | undefined;
  /** The signed-in user's id: their own sessions are no news to them. */
  me: string;
}

/** The notification an event makes, if any; pure, so it is unit-tested. */
export function notificationFor(event: ServerEvent, names: NotifyNames): AppNotification | null {
  switch (event.type) {
    case "deviceOnline":
    case "deviceOffline": {
      const device = names.device(event.device) ?? "A device";
      const group = names.group(event.group) ?? "a device group";
      const what = event.type === "deviceOnline" ? "is online" : "went offline";
      return { kind: "devices", group: event.group, title: `${device} ${what}`, body: `In ${group}` };
    }
    case "chatInvitation":
      return { kind: "chat", group: null, title: `${event.fromName} invites you to chat`, body: "Open Tether to answer." };
    case "logged": {
      const { record } = event;
      if (record.kind !== "session_started" || record.user === names.me || record.group === null) return null;
      return { kind: "sessions", group: record.group, title: "A session was opened", body: record.message };
    }
    default:
      return null;
  }
}

/** Hands an event's notification to the app (which may not show it); nothing in a browser. */
export function notifyApp(event: ServerEvent, names: NotifyNames): void {
  if (!inDesktopApp()) return;
  const note = notificationFor(event, names);
  if (note) void invoke("notify", { ...note }).catch((e: unknown) => console.warn(`notification: ${String(e)}`));
}

export interface AppNotifySettings {
  devices: boolean;
  chat: boolean;
  sessions: boolean;
  /** Watched group ids on this server. */
  watched: string[];
}

export function loadNotifySettings(): Promise<AppNotifySettings> {
  return invoke<AppNotifySettings>("notify_settings");
}

export function saveNotifySettings(settings: AppNotifySettings): Promise<void> {
  return invoke("notify_configure", { settings });
}
