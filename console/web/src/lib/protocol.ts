// The /control protocol's shapes, mirroring common/src/control.rs (the Rust side is the source of
// truth; its module doc lists each action's result). Ids are opaque strings.

export type UserId = string;
export type GroupId = string;
export type DeviceId = string;

export interface ServerInfo {
  name: string;
  version: string;
  protocol: number;
  agent_cert_hash: string;
  web_cert_hash: string;
  https_port: number;
}

export interface UserInfo {
  id: UserId;
  name: string;
  email?: string | null;
  site_admin: boolean;
  created: number;
}

export interface GroupMember {
  user: UserId;
  rights: number;
}

export interface GroupInfo {
  id: GroupId;
  name: string;
  description: string;
  members: GroupMember[];
  created: number;
}

export interface NetInterface {
  name: string;
  mac: string;
  addresses: string[];
}

/** What an agent reports about its machine (common/src/agent_proto.rs `AgentInfo`). */
export interface AgentInfo {
  protocol?: number;
  hostname?: string;
  os_name?: string;
  os_version?: string;
  arch?: string;
  agent_version?: string;
  interfaces?: NetInterface[];
  users?: string[];
  uptime_secs?: number;
}

export interface DeviceInfo {
  id: DeviceId;
  name: string;
  group: GroupId;
  online: boolean;
  os: string;
  hostname: string;
  /** Unix seconds; 0 when never seen. */
  lastseen: number;
  agent: AgentInfo | null;
}

export interface EventRecord {
  id: number;
  /** Unix milliseconds. */
  time: number;
  kind: string;
  user?: UserId | null;
  group?: GroupId | null;
  device?: DeviceId | null;
  message: string;
}

/** `createInvite`'s result (common/src/install.rs `Invite`). */
export interface Invite {
  id: string;
  group: GroupId;
  token: string;
  /** Unix seconds. */
  expires: number;
  msh_url: string;
  agent_url: string;
  install_url: string;
  root_cert_url: string;
  root_cert_sha256: string;
  install_command: string;
}

export type InviteStatus = "active" | "revoked" | "expired" | "used_up";

/** One invite as `listInvites` shows it (common/src/install.rs `InviteInfo`): never its link. */
export interface InviteInfo {
  id: string;
  group: GroupId;
  created_by: UserId;
  /** Unix seconds. */
  created: number;
  expires: number;
  /** New devices enrolled with it. */
  enrolled: number;
  max_devices?: number | null;
  status: InviteStatus;
  revoked?: number | null;
  revoked_by?: UserId | null;
}

/** A device id kept from enrolling again (common/src/install.rs `BlockedDevice`). */
export interface BlockedDevice {
  device: DeviceId;
  group: GroupId;
  name: string;
  blocked_by: UserId;
  /** Unix seconds. */
  time: number;
}

export type ServerEvent =
  | { type: "groupCreated"; group: GroupInfo }
  | { type: "groupChanged"; group: GroupInfo }
  | { type: "groupDeleted"; group: GroupId }
  | { type: "deviceAdded"; device: DeviceInfo }
  | { type: "deviceChanged"; device: DeviceInfo }
  | { type: "deviceRemoved"; device: DeviceId; group: GroupId }
  | { type: "deviceOnline"; device: DeviceId; group: GroupId }
  | { type: "deviceOffline"; device: DeviceId; group: GroupId }
  | { type: "userAdded"; user: UserInfo }
  | { type: "userChanged"; user: UserInfo }
  | { type: "userRemoved"; user: UserId }
  | { type: "logged"; record: EventRecord };

export type ErrorCode =
  | "bad_request"
  | "unknown_action"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "rate_limited"
  | "internal";

export interface ErrorBody {
  code: ErrorCode;
  message: string;
}

export interface Reply {
  action: string;
  id?: number;
  ok: boolean;
  result?: unknown;
  error?: ErrorBody;
}

export interface EventFrame {
  action: "event";
  event: ServerEvent;
}

/** What a relayed session is for (`tether_common::relay::SessionKind`). */
export type SessionKind = "terminal" | "files" | "desktop" | "chat";

/** `createSession`'s answer: where the console joins the session. */
export interface SessionTicket {
  /** A path on this server (`/meshrelay.ashx?id=TOKEN`); the session cookie goes along. */
  url: string;
  device: DeviceId;
  kind: SessionKind;
  rights: number;
  /** Unix milliseconds; connect before then. */
  expires_ms: number;
}

/** Every request: its arguments and the result type of a successful reply. */
export interface Actions {
  serverInfo: { args: Record<string, never>; result: ServerInfo };
  whoAmI: { args: Record<string, never>; result: { user: UserInfo } };
  listGroups: { args: Record<string, never>; result: GroupInfo[] };
  createGroup: { args: { name: string; description?: string }; result: GroupInfo };
  editGroup: { args: { group: GroupId; name?: string; description?: string }; result: GroupInfo };
  deleteGroup: { args: { group: GroupId }; result: { deleted: string } };
  listDevices: { args: { group?: GroupId }; result: DeviceInfo[] };
  renameDevice: { args: { device: DeviceId; name: string }; result: DeviceInfo };
  deleteDevice: { args: { device: DeviceId; block?: boolean }; result: { deleted: string } };
  listUsers: { args: Record<string, never>; result: UserInfo[] };
  addUser: {
    args: { name: string; password: string; email?: string | null; site_admin?: boolean };
    result: UserInfo;
  };
  removeUser: { args: { user: UserId }; result: { deleted: string } };
  resetPassword: { args: { user: UserId; password: string }; result: UserInfo };
  editUser: { args: { user: UserId; email?: string | null; site_admin?: boolean }; result: UserInfo };
  changePassword: { args: { old_password: string; new_password: string }; result: Record<string, never> };
  setGroupRights: { args: { group: GroupId; user: UserId; rights: number }; result: GroupInfo };
  agentConfig: { args: { group: GroupId }; result: { group: GroupId; msh: string } };
  createInvite: {
    args: { group: GroupId; expires_minutes?: number; max_devices?: number };
    result: Invite;
  };
  rotateEnrolmentKey: { args: { group: GroupId }; result: { group: GroupId; msh: string } };
  listInvites: { args: { group: GroupId }; result: InviteInfo[] };
  revokeInvite: { args: { invite: string }; result: InviteInfo };
  listBlockedDevices: { args: { group: GroupId }; result: BlockedDevice[] };
  unblockDevice: { args: { device: DeviceId }; result: { unblocked: DeviceId } };
  createSession: { args: { device: DeviceId; kind: SessionKind }; result: SessionTicket };
  listEvents: {
    args: { limit?: number; group?: GroupId; device?: DeviceId };
    result: EventRecord[];
  };
}

export type Action = keyof Actions;

/** Reads one text frame from the server: a reply, an event, or `null` for anything else. */
export function parseFrame(text: string): Reply | EventFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const frame = value as Record<string, unknown>;
  if (frame.action === "event") {
    const event = frame.event as Record<string, unknown> | undefined;
    return typeof event?.type === "string" ? (frame as unknown as EventFrame) : null;
  }
  if (typeof frame.ok !== "boolean") return null;
  return frame as unknown as Reply;
}

export function isEventFrame(frame: Reply | EventFrame): frame is EventFrame {
  return frame.action === "event" && "event" in frame;
}
