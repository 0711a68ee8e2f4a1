// The few HTTP calls that are not on the control socket: login state, first-run setup, login,
// logout and password change (they set or clear the session cookie, which a WebSocket cannot).

import type { UserInfo } from "./protocol";
import type { GuestTicket } from "./protocol.gen";

export interface Status {
  setup_required: boolean;
  new_accounts: boolean;
  user: UserInfo | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter?: number,
    /** The whole answer (a passkey challenge rides on `second_factor_required`). */
    readonly body: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? null : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "The server cannot be reached. Check the connection and try again.");
  }
  const data = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) {
    const message = typeof data.message === "string" ? data.message : `The request failed (HTTP ${response.status}).`;
    const code = typeof data.error === "string" ? data.error : "error";
    const retry = typeof data.retryAfter === "number" ? data.retryAfter : undefined;
    throw new ApiError(response.status, code, message, retry, data);
  }
  return data as T;
}

export const api = {
  status: () => call<Status>("GET", "/api/status"),
  setup: (name: string, password: string, email: string | null) =>
    call<{ user: UserInfo }>("POST", "/api/setup", { name, password, email }),
  /**
   * `second`: the second factor for accounts that have one: `otp` (a code from the app, or a
   * backup code) or `passkey` (the answer to the challenge the first try was given).
   */
  login: (user: string, password: string, second: { otp?: string; passkey?: { challengeId: string; credential: unknown } } = {}) =>
    call<{ user: UserInfo }>("POST", "/api/login", { user, password, ...second }),
  logout: () => call<{ ok: boolean }>("POST", "/api/logout", {}),
  /** A guest trades a sharing link's token (its `#` fragment) for one session ticket. */
  guestSession: (token: string) => call<GuestTicket>("POST", "/api/share/session", { token }),
  changePassword: (old_password: string, new_password: string) =>
    call<{ user: UserInfo }>("POST", "/api/password", { old_password, new_password }),
};
