// Which server events become desktop-app notifications, and with what text (the app then decides
// from the user's settings, `console/src/notify.rs`).
import { describe, expect, it } from "vitest";
import { notificationFor } from "../src/lib/appNotify";
import type { ServerEvent } from "../src/lib/protocol";

const names = {
  device: (id: string) => ({ d1: "web-01" })[id],
  group: (id: string) => ({ g1: "Servers" })[id],
  me: "user//admin",
};

describe("desktop app notifications", () => {
  it("name the device and its group when one goes offline or comes online", () => {
    expect(notificationFor({ type: "deviceOffline", device: "d1", group: "g1" } as ServerEvent, names)).toEqual({
      kind: "devices",
      group: "g1",
      title: "web-01 went offline",
      body: "In Servers",
      open: { screen: "device", id: "d1", tab: "general" },
    });
    expect(notificationFor({ type: "deviceOnline", device: "d9", group: "g9" } as ServerEvent, names)).toMatchObject({
      title: "A device is online",
      body: "In a device group",
    });
  });

  it("tell of chat invitations and of others' sessions, not of one's own", () => {
    const invitation = { type: "chatInvitation", invitation: "i", from: "user//bob", fromName: "bob", url: "/x", expiresMs: 1 } as ServerEvent;
    expect(notificationFor(invitation, names)).toMatchObject({ kind: "chat", group: null, title: "bob invites you to chat", open: null });
    const record = { id: 1, time: 1, kind: "session_started", user: "user//bob", group: "g1", device: "d1", message: "bob opened a desktop session to web-01" };
    expect(notificationFor({ type: "logged", record } as ServerEvent, names)).toEqual({
      kind: "sessions",
      group: "g1",
      title: "A session was opened",
      body: "bob opened a desktop session to web-01",
      open: { screen: "device", id: "d1", tab: "events" },
    });
    expect(notificationFor({ type: "logged", record: { ...record, user: names.me } } as ServerEvent, names)).toBeNull();
    expect(notificationFor({ type: "logged", record: { ...record, kind: "login" } } as ServerEvent, names)).toBeNull();
  });

  it("leave other events alone", () => {
    expect(notificationFor({ type: "groupDeleted", group: "g1" } as ServerEvent, names)).toBeNull();
  });
});
