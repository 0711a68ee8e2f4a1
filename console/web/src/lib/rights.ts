// Per-group rights as bit flags: common/src/rights.rs. Every bit is a grant.

export const RIGHTS = {
  view: 1 << 0,
  manage: 1 << 1,
  desktop: 1 << 2,
  viewonly: 1 << 3,
  terminal: 1 << 4,
  files: 1 << 5,
  chat: 1 << 6,
  power: 1 << 7,
  events: 1 << 8,
  uninstall: 1 << 9,
  devices: 1 << 10,
} as const;

export type RightName = keyof typeof RIGHTS;

/** `Rights::FULL`: every bit, including rights added later. */
export const FULL_RIGHTS = 0xffffffff;

/** The named rights in the order the server lists them, with a label for people. */
export const NAMED_RIGHTS: ReadonlyArray<{ name: RightName; bit: number; label: string }> = [
  { name: "view", bit: RIGHTS.view, label: "See the group and its devices" },
  { name: "manage", bit: RIGHTS.manage, label: "Manage the group and its users" },
  { name: "devices", bit: RIGHTS.devices, label: "Rename and remove devices" },
  { name: "desktop", bit: RIGHTS.desktop, label: "Remote desktop" },
  { name: "viewonly", bit: RIGHTS.viewonly, label: "Remote desktop, view only" },
  { name: "terminal", bit: RIGHTS.terminal, label: "Terminal" },
  { name: "files", bit: RIGHTS.files, label: "Files" },
  { name: "chat", bit: RIGHTS.chat, label: "Chat" },
  { name: "power", bit: RIGHTS.power, label: "Wake and power actions" },
  { name: "events", bit: RIGHTS.events, label: "Read events" },
  { name: "uninstall", bit: RIGHTS.uninstall, label: "Uninstall the agent" },
];

/** Bitwise ops in JS are signed 32-bit; `>>> 0` keeps masks unsigned so FULL stays 0xffffffff. */
export function hasRight(mask: number, bit: number): boolean {
  return ((mask & bit) >>> 0) === bit >>> 0;
}

export function withRight(mask: number, bit: number, on: boolean): number {
  return (on ? mask | bit : mask & ~bit) >>> 0;
}

/** As `Rights::normalized`: any right implies seeing the group. */
export function normalizeRights(mask: number): number {
  return mask === 0 ? 0 : (mask | RIGHTS.view) >>> 0;
}

/** "full", "none", or the comma-separated names, as the server's Display prints them. */
export function describeRights(mask: number): string {
  if (mask >>> 0 === FULL_RIGHTS) return "full";
  if (mask === 0) return "none";
  return NAMED_RIGHTS.filter((r) => hasRight(mask, r.bit))
    .map((r) => r.name)
    .join(", ");
}

/** Every named right (what "full" minus future rights is). */
export const ALL_NAMED_RIGHTS = NAMED_RIGHTS.reduce((mask, r) => (mask | r.bit) >>> 0, 0);

/** What a new member gets ticked by default: see, terminal, files, events. */
export const DEFAULT_MEMBER_RIGHTS = RIGHTS.view | RIGHTS.terminal | RIGHTS.files | RIGHTS.events;
