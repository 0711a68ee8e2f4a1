// What the desktop app is asked to notify about (`console/src/notify.rs` decides from the user's
// settings and shows it): devices of watched groups going offline or coming online, chat
// invitations, sessions opened to devices of watched groups. In a browser nothing happens.
// Clicking one brings the app's window forward and opens what it was about.

import { Channel, invoke } from "@tauri-apps/api/core";
import type { ServerEvent } from "./protocol.gen";
import type { Route } from "./routes";
import { inDesktopApp } from "./sessions/nativePeer";

export type NotifyKind = "devices" | "chat" | "sessions";

export interface AppNotification {
  kind: NotifyKind;
  group: string | null;
  title: string;
  body: string;
  /** Where a click on it leads; null: the window only comes forward (a chat invitation waits in
   * the chat dock, on every screen). */
  open: Route | null;
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
      return {
        kind: "devices",
        group: event.group,
        title: `${device} ${what}`,
        body: `In ${group}`,
        open: { screen: "device", id: event.device, tab: "general" },
      };
    }
    case "chatInvitation":
      return { kind: "chat", group: null, title: `${event.fromName} invites you to chat`, body: "Open Tether to answer.", open: null };
    case "logged": {
      const { record } = event;
      if (record.kind !== "session_started" || record.user === names.me || record.group === null) return null;
      const open: Route | null = record.device === null ? null : { screen: "device", id: record.device, tab: "events" };
      return { kind: "sessions", group: record.group, title: "A session was opened", body: record.message, open };
    }
    default:
      return null;
  }
}

/** Hands an event's notification to the app (which may not show it), with `go` to follow its
 * link when it is clicked; nothing in a browser. */
export function notifyApp(event: ServerEvent, names: NotifyNames, go: (route: Route) => void): void {
  if (!inDesktopApp()) return;
  const note = notificationFor(event, names);
  if (!note) return;
  const { open, ...shown } = note;
  const onClick = new Channel<null>();
  onClick.onmessage = () => {
    if (open) go(open);
  };
  void invoke("notify", { ...shown, onClick }).catch((e: unknown) => console.warn(`notification: ${String(e)}`));
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
