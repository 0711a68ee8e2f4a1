// The desktop's notification service, for the app's tests: a private D-Bus session bus
// (dbus-daemon) on which this process owns org.freedesktop.Notifications, as a desktop's
// notification daemon would. It keeps every notification the app shows, and clicks one as a
// person would (the ActionInvoked signal with the "default" action), or closes it.

import { spawn } from "node:child_process";
import dbus from "@particle/dbus-next";
import { stopChild } from "./support.mjs";

const { Interface } = dbus.interface;

/** Why a notification closed, in the specification's numbering. */
const CLOSED_BY_USER = 2;

class NotificationService extends Interface {
  constructor(shown) {
    super("org.freedesktop.Notifications");
    this.shown = shown;
    this.nextId = 1;
  }

  Notify(appName, replacesId, icon, summary, body, actions, _hints, timeout) {
    const id = replacesId || this.nextId++;
    // Actions come as key, label pairs.
    const keys = actions.filter((_, i) => i % 2 === 0);
    this.shown.push({ id, appName, icon, summary, body, actions: keys, timeout });
    return id;
  }

  CloseNotification(id) {
    this.NotificationClosed(id, 3);
  }

  GetCapabilities() {
    return ["actions", "body", "body-markup"];
  }

  GetServerInformation() {
    return ["tether-test", "tether", "1", "1.2"];
  }

  NotificationClosed(id, reason) {
    return [id, reason];
  }

  ActionInvoked(id, action) {
    return [id, action];
  }
}

NotificationService.configureMembers({
  methods: {
    Notify: { inSignature: "susssasa{sv}i", outSignature: "u" },
    CloseNotification: { inSignature: "u", outSignature: "" },
    GetCapabilities: { inSignature: "", outSignature: "as" },
    GetServerInformation: { inSignature: "", outSignature: "ssss" },
  },
  signals: {
    NotificationClosed: { signature: "uu" },
    ActionInvoked: { signature: "us" },
  },
});

/**
 * A private session bus with a notification service on it. `shown` lists what was shown, oldest
 * first; `click(id)` and `close(id)` act on one as its user would.
 */
export async function startNotificationService() {
  const daemon = spawn("dbus-daemon", ["--session", "--nofork", "--print-address=1"], { stdio: ["ignore", "pipe", "ignore"] });
  const address = await new Promise((resolve, reject) => {
    daemon.stdout.once("data", (chunk) => resolve(String(chunk).trim().split("\n")[0]));
    daemon.once("exit", (code) => reject(new Error(`dbus-daemon exited (${code})`)));
  });
  const bus = dbus.sessionBus({ busAddress: address });
  const shown = [];
  const service = new NotificationService(shown);
  bus.export("/org/freedesktop/Notifications", service);
  const reply = await bus.requestName("org.freedesktop.Notifications", dbus.NameFlag.DO_NOT_QUEUE);
  if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) throw new Error(`could not own the notification service's name (${reply})`);
  return {
    address,
    shown,
    click(id) {
      service.ActionInvoked(id, "default");
      service.NotificationClosed(id, CLOSED_BY_USER);
    },
    close(id) {
      service.NotificationClosed(id, CLOSED_BY_USER);
    },
    async stop() {
      bus.disconnect();
      await stopChild(daemon);
    },
  };
}
