// Whether a remote clipboard text may go to the local clipboard. Any program on the remote
// machine can change its clipboard at any time, and the agent passes every change on; copying
// those silently would let the remote machine choose what the administrator pastes next, perhaps
// into a root shell elsewhere ("pastejacking"). So the text is copied only as the answer to the
// user's own "Get remote clipboard"; anything else is offered, and copied only if the user clicks.

/**
 * How long a "Get remote clipboard" stays open for its answer. The agent answers within its 3 s
 * read timeout, or never (no clipboard, view-only): a request must not stay armed for a later,
 * unasked change.
 */
export const ASK_WINDOW_MS = 10_000;

export type ClipboardAction = "copy" | "offer";

export class RemoteClipboardGate {
  private askedUntil = Number.NEGATIVE_INFINITY;

  constructor(private readonly now: () => number) {}

  /** The user asked for the remote clipboard: its next text (soon) answers that. */
  ask(): void {
    this.askedUntil = this.now() + ASK_WINDOW_MS;
  }

  /** A remote clipboard text arrived: copy it (it answers the user's request) or offer it. */
  receive(): ClipboardAction {
    const asked = this.now() <= this.askedUntil;
    this.askedUntil = Number.NEGATIVE_INFINITY;
    return asked ? "copy" : "offer";
  }
}

/** The start of `text` on one line, for the offer: enough to judge it, never the whole thing. */
export function clipboardPreview(text: string, max = 48): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length <= max ? line : `${line.slice(0, max - 1)}…`;
}
