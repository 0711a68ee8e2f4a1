// The console's one store: login phase, the control connection, and the groups, devices and
// users it keeps current from pushed events. Components read its fields and call its methods;
// nothing else talks to the server.

import { api, ApiError } from "../lib/api";
import { applyGroupEvent, applyUserEvent, byName } from "../lib/collections";
import { ControlClient, ControlError, controlUrl } from "../lib/control";
import type { ConnectionState, SocketFactory, StateChange } from "../lib/control";
import { notifyApp } from "../lib/appNotify";
import { describeEvent } from "../lib/describe";
import { DeviceIndex } from "../lib/devices";
import type { Action, Actions, CampaignInfo, EventRecord, GroupInfo, ServerEvent, ServerInfo, UserInfo } from "../lib/protocol";
import type { Route } from "../lib/routes";
import type { SessionStart } from "../lib/sessions/relay";
import { throttle } from "../lib/throttle";
import { ToastQueue } from "../lib/toasts";
import type { Toast, Tone } from "../lib/toasts";

export type Phase = "loading" | "setup" | "login" | "console" | "unreachable";

/** How long a toast stays up, in milliseconds. */
const TOAST_MS = 6000;
/** The newest audit records kept for live views. */
const LIVE_EVENTS = 200;

export class ConsoleStore {
  phase = $state<Phase>("loading");
  /** Why the login screen is showing (e.g. the session ended), if not a plain start. */
  loginNotice = $state<string | null>(null);
  newAccounts = $state(false);
  user = $state.raw<UserInfo | null>(null);
  connection = $state<ConnectionState>("idle");
  /** When offline: the time of the next attempt (ms since epoch). */
  retryAt = $state<number | null>(null);
  /** True once the first full load after login has arrived. */
  loaded = $state(false);
  /** The site requires a second factor of this account and it has none yet: only My account works. */
  secondFactorNeeded = $state(false);
  server = $state.raw<ServerInfo | null>(null);
  groups = $state.raw<GroupInfo[]>([]);
  users = $state.raw<UserInfo[]>([]);
  /** Audit records pushed since login, newest first. */
  liveEvents = $state.raw<EventRecord[]>([]);
  /** The agent update campaign as last pushed (site admins; `screens/Updates.svelte`). */
  agentCampaign = $state.raw<CampaignInfo | null>(null);
  /** Chat invitations from other users, waiting for an answer (newest last). */
  chatInvitations = $state.raw<ChatInvitation[]>([]);
  /** The chat with another user open now (one at a time), or null. */
  userChat = $state.raw<UserChat | null>(null);
  /** The list of whom to chat with is showing (the top bar's Chat button). */
  chatPicking = $state(false);
  /** Bumped (throttled) whenever `devices` changes; views derive from it. */
  deviceVersion = $state(0);
  toasts = $state.raw<readonly Toast[]>([]);

  readonly devices = new DeviceIndex();
  private client: ControlClient | null = null;
  private readonly toastQueue = new ToastQueue(4);
  private readonly bumpDevices = throttle(() => (this.deviceVersion += 1), 120);

  constructor(
    private readonly createSocket: SocketFactory = (url) =>
      new WebSocket(url) as unknown as ReturnType<SocketFactory>,
  ) {}

  get isAdmin(): boolean {
    return this.user?.siteAdmin ?? false;
  }

  /** Reads the login state and shows the right first screen. */
  async init(): Promise<void> {
    try {
      const status = await api.status();
      this.newAccounts = status.new_accounts;
      if (status.user) this.enter(status.user);
      else this.phase = status.setup_required ? "setup" : "login";
    } catch {
      this.phase = "unreachable";
    }
  }

  /** After setup or login: opens the control connection. */
  enter(user: UserInfo): void {
    this.user = user;
    this.loginNotice = null;
    this.phase = "console";
    this.loaded = false;
    this.client?.stop();
    const client = new ControlClient({ url: controlUrl(location), createSocket: this.createSocket });
    this.client = client;
    client.onState((change) => this.onConnection(change));
    client.onEvent((event) => this.onEvent(event));
    client.start();
  }

  async logout(): Promise<void> {
    await api.logout().catch(() => undefined);
    this.leave(null);
  }

  /** Sends a control request (the only way components reach the server). */
  request<A extends Action>(action: A, args: Actions[A]["args"]): Promise<Actions[A]["result"]> {
    if (!this.client) return Promise.reject(new ControlError("offline", "Not logged in."));
    return this.client.request(action, args);
  }

  retryNow(): void {
    this.client?.retryNow();
  }

  toast(message: string, tone: Tone = "info"): void {
    const { toast, newSummary } = this.toastQueue.push(message, tone);
    this.toasts = [...this.toastQueue.items];
    setTimeout(() => this.dismissToast(toast.id), TOAST_MS);
    if (newSummary) setTimeout(() => this.dismissToast(newSummary.id), TOAST_MS);
  }

  dismissToast(id: number): void {
    this.toastQueue.dismiss(id);
    this.toasts = [...this.toastQueue.items];
  }

  groupName(id: string): string | undefined {
    return this.groups.find((g) => g.id === id)?.name;
  }

  private leave(notice: string | null): void {
    this.client?.stop();
    this.client = null;
    this.user = null;
    this.groups = [];
    this.users = [];
    this.liveEvents = [];
    this.agentCampaign = null;
    this.chatInvitations = [];
    this.userChat = null;
    this.devices.replaceAll([]);
    this.deviceVersion += 1;
    this.toastQueue.clear();
    this.toasts = [];
    this.loginNotice = notice;
    this.connection = "idle";
    this.phase = "login";
  }

  private onConnection(change: StateChange): void {
    this.connection = change.state;
    this.retryAt = change.retryInMs === undefined ? null : Date.now() + change.retryInMs;
    if (change.state === "open") void this.loadAll();
    // A refused upgrade or a close by the server may mean the session ended (expired, password
    // changed elsewhere, account removed): ask, and go back to the login screen if so.
    if (change.state === "offline") void this.checkSession();
  }

  private async checkSession(): Promise<void> {
    try {
      const status = await api.status();
      if (!status.user && this.phase === "console") {
        this.leave("Your session has ended. Please log in again.");
      }
    } catch (error) {
      // Unreachable: the offline banner already says so.
      if (!(error instanceof ApiError)) throw error;
    }
  }

  /** Loads everything after each (re)connection: events missed while offline are not replayed. */
  private async loadAll(): Promise<void> {
    try {
      const [server, whoami] = await Promise.all([this.request("serverInfo", {}), this.request("whoAmI", {})]);
      this.server = server;
      this.user = whoami.user;
      this.secondFactorNeeded = whoami.secondFactorNeeded;
      if (whoami.secondFactorNeeded) {
        // The server refuses everything else until a second factor is set up.
        this.loaded = true;
        return;
      }
      const [groups, devices] = await Promise.all([this.request("listGroups", {}), this.request("listDevices", {})]);
      this.groups = byName(groups);
      this.devices.replaceAll(devices);
      this.deviceVersion += 1;
      this.users = whoami.user.siteAdmin ? byName(await this.request("listUsers", {})) : [];
      this.loaded = true;
    } catch (error) {
      // A drop mid-load is retried on the next open; anything else is worth showing.
      if (error instanceof ControlError && error.code !== "disconnected" && error.code !== "offline") {
        this.toast(`Could not load the console: ${error.message}`, "error");
      }
    }
  }

  private onEvent(event: ServerEvent): void {
    const user = this.user;
    if (!user) return;
    const line = describeEvent(event, {
      device: (id) => this.devices.get(id)?.name,
      group: (id) => this.groupName(id),
      user: (id) => this.users.find((u) => u.id === id)?.name,
    });
    if (line) this.toast(line.message, line.tone);
    // The router is loaded when a notification is clicked: this store also runs without a page.
    const go = (route: Route) => void import("./router.svelte").then(({ router }) => router.go(route));
    notifyApp(event, { device: (id) => this.devices.get(id)?.name, group: (id) => this.groupName(id), me: user.id }, go);

    const grouped = applyGroupEvent(this.groups, event, user);
    if (grouped) {
      this.groups = grouped.groups;
      if (grouped.lost && this.devices.removeGroup(grouped.lost)) this.bumpDevices();
    }
    if (this.devices.apply(event, Math.floor(Date.now() / 1000))) this.bumpDevices();
    const users = applyUserEvent(this.users, event);
    if (users && this.isAdmin) this.users = users;
    if (event.type === "userChanged" && event.user.id === user.id) {
      this.user = event.user;
      // The second factor the site asked for is set up: the rest of the console opens.
      if (this.secondFactorNeeded && (event.user.secondFactor || event.user.passkeys.length > 0)) void this.loadAll();
      // Made a site admin just now: the users list becomes visible.
      if (event.user.siteAdmin && !user.siteAdmin) void this.loadAll();
    }
    if (event.type === "userRemoved" && event.user === user.id) this.leave("Your account was removed.");
    if (event.type === "agentUpdate") this.agentCampaign = event.campaign;
    if (event.type === "chatInvitation") {
      const { type: _type, ...invitation } = event;
      this.chatInvitations = [...this.chatInvitations.filter((i) => i.expiresMs > Date.now()), invitation];
    }
    if (event.type === "logged") this.liveEvents = [event.record, ...this.liveEvents].slice(0, LIVE_EVENTS);
  }
}

export type ChatInvitation = Omit<Extract<ServerEvent, { type: "chatInvitation" }>, "type">;

/** A chat with another user: whom with, and how its session starts. */
export interface UserChat {
  peerName: string;
  open: () => Promise<SessionStart>;
  /** The invitee's side answers the inviter's direct-path offer. */
  answering: boolean;
}

export const app = new ConsoleStore();
