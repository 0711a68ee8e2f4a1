// Toast notifications as a bounded list. When events arrive faster than anyone can read (a
// hundred devices coming online after a power cut), the last slot turns into a running
// "N more" summary instead of pushing the others off screen.

export type Tone = "info" | "success" | "warning" | "error";

export interface Toast {
  id: number;
  message: string;
  tone: Tone;
  /** Set on the summary toast: how many notifications it stands for. */
  more?: number;
}

export class ToastQueue {
  private list: Toast[] = [];
  private nextId = 1;

  constructor(private readonly max = 4) {}

  get items(): readonly Toast[] {
    return this.list;
  }

  /** Adds a toast and returns the one now showing it (the summary, when full). */
  push(message: string, tone: Tone = "info"): Toast {
    const last = this.list[this.list.length - 1];
    if (last?.more !== undefined) {
      const summary = { ...last, more: last.more + 1, message: summaryText(last.more + 1) };
      this.list = [...this.list.slice(0, -1), summary];
      return summary;
    }
    if (this.list.length >= this.max) {
      const summary: Toast = { id: this.nextId++, message: summaryText(1), tone: "info", more: 1 };
      this.list = [...this.list, summary];
      return summary;
    }
    const toast: Toast = { id: this.nextId++, message, tone };
    this.list = [...this.list, toast];
    return toast;
  }

  dismiss(id: number): void {
    this.list = this.list.filter((t) => t.id !== id);
  }

  clear(): void {
    this.list = [];
  }
}

function summaryText(count: number): string {
  return count === 1 ? "1 more notification" : `${count} more notifications`;
}
