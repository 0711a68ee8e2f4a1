// Toast notifications as a bounded list: the newest always shows. When events arrive faster than
// anyone can read (a hundred devices coming online after a power cut), the oldest are folded into
// one "N earlier notifications" line at the top instead of piling up.

export type Tone = "info" | "success" | "warning" | "error";

export interface Toast {
  id: number;
  message: string;
  tone: Tone;
  /** Set on the summary toast: how many notifications it stands for. */
  more?: number;
}

export class ToastQueue {
  private summary: Toast | null = null;
  private recent: Toast[] = [];
  private nextId = 1;

  constructor(private readonly max = 4) {}

  /** The summary (if any) first, then the newest toasts, oldest first. */
  get items(): readonly Toast[] {
    return this.summary ? [this.summary, ...this.recent] : this.recent;
  }

  /** Adds a toast. Returns it, and the summary when one was just created (to time it out too). */
  push(message: string, tone: Tone = "info"): { toast: Toast; newSummary: Toast | null } {
    const toast: Toast = { id: this.nextId++, message, tone };
    this.recent = [...this.recent, toast];
    let newSummary: Toast | null = null;
    while (this.recent.length > this.max) {
      this.recent = this.recent.slice(1);
      const more = (this.summary?.more ?? 0) + 1;
      if (!this.summary) {
        newSummary = { id: this.nextId++, message: "", tone: "info" };
      }
      this.summary = { ...(this.summary ?? newSummary!), more, message: summaryText(more) };
    }
    return { toast, newSummary: newSummary ? this.summary : null };
  }

  dismiss(id: number): void {
    if (this.summary?.id === id) this.summary = null;
    this.recent = this.recent.filter((t) => t.id !== id);
  }

  clear(): void {
    this.summary = null;
    this.recent = [];
  }
}

function summaryText(count: number): string {
  return count === 1 ? "1 earlier notification" : `${count} earlier notifications`;
}
