// The terminal session's messages (mirrors common/src/relay/terminal.rs): after "c" the console
// sends `start` with its size (and optionally the account to run as), then keystrokes as UTF-8 binary frames and `resize` when its size
// changes; the agent sends output as binary frames and ends with `exit` (or `error`).

/** Largest size the agent accepts in each direction. */
export const MAX_TERMINAL_CELLS = 1000;

export interface TerminalSize {
  cols: number;
  rows: number;
}

export type TerminalEnd = { kind: "exit"; status: number } | { kind: "error"; message: string };

export function clampSize({ cols, rows }: TerminalSize): TerminalSize {
  const clamp = (n: number) => Math.min(MAX_TERMINAL_CELLS, Math.max(1, Math.floor(n) || 1));
  return { cols: clamp(cols), rows: clamp(rows) };
}

export interface StartMessage {
  type: "start";
  cols: number;
  rows: number;
  pty: true;
  /** A local account on the device to run as; absent: the agent's own account. */
  asUser?: string;
}

/**
 * The first frame after "c": an interactive login shell of this size, of `asUser` when given (a
 * root agent may run as any account; others only as themselves, and say so in an `error`).
 */
export function startMessage(size: TerminalSize, asUser?: string): StartMessage {
  const { cols, rows } = clampSize(size);
  const start: StartMessage = { type: "start", cols, rows, pty: true };
  if (asUser) start.asUser = asUser;
  return start;
}

/**
 * The accounts a "Run as" choice offers besides the agent's own: the device's logged-in users
 * (from its agent report), sorted, plus the current choice so a user who logged out meanwhile
 * stays selected.
 */
export function runAsChoices(loggedIn: readonly string[] | undefined, current: string): string[] {
  const names = new Set(loggedIn ?? []);
  if (current) names.add(current);
  return [...names].filter((name) => name !== "").sort();
}

export function resizeMessage(size: TerminalSize): { type: "resize"; cols: number; rows: number } {
  const { cols, rows } = clampSize(size);
  return { type: "resize", cols, rows };
}

/**
 * How the agent said the session ended: the exit status a shell would report (the code, or
 * 128 + signal), or the agent's error. `null` for any other message.
 */
export function parseTerminalEnd(message: Record<string, unknown>): TerminalEnd | null {
  if (message.type === "exit") {
    const code = message.code;
    const signal = message.signal;
    if (typeof code === "number") return { kind: "exit", status: code };
    if (typeof signal === "number") return { kind: "exit", status: 128 + signal };
    return { kind: "exit", status: 255 };
  }
  if (message.type === "error") {
    return { kind: "error", message: typeof message.message === "string" ? message.message : "unknown error" };
  }
  return null;
}

export function describeEnd(end: TerminalEnd): string {
  return end.kind === "exit" ? `session ended (exit code ${end.status})` : `session failed: ${end.message}`;
}

const encoder = new TextEncoder();

/** xterm's `onData` gives text: it goes to the shell as UTF-8. */
export function encodeInput(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(text);
}

/** xterm's `onBinary` gives one character per byte (some mouse reports): sent as those bytes. */
export function encodeBinaryInput(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}
