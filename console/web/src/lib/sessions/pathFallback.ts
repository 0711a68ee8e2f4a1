// What a desktop or files view does when its session's direct path dies after the switch: data in
// flight on that path may be lost, so the session ends (DIRECT_LOST), and the view opens a new one
// at once, relayed, instead of leaving the user with a dead tab. Once per view: a path that failed
// may fail again, and the relay always works. (A terminal cannot do this quietly: a new session is
// a new shell, so the terminal says what happened instead.)

import type { DirectPath } from "../protocol.gen";
import { DIRECT_LOST } from "./relay";

export class PathFallback {
  private relayedOnly = false;

  /** The ticket's offer of a direct path, unless this view already lost one. */
  direct(offered: DirectPath | null): DirectPath | null {
    return this.relayedOnly ? null : offered;
  }

  /** The session closed with `reason`: true when the view should reopen it on the relay. */
  reopenAfter(reason: string): boolean {
    if (reason !== DIRECT_LOST.reason || this.relayedOnly) return false;
    this.relayedOnly = true;
    return true;
  }
}

/** What the view tells the user when it reopens. */
export const REOPENED_RELAYED = "The direct path was lost; the session goes on through the server.";
