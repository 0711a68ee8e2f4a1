// The file manager's list of uploads and downloads with their progress, newest first. Each one
// can be cancelled while it runs; finished ones can be cleared.

export interface Transfer {
  id: number;
  direction: "upload" | "download";
  name: string;
  done: number;
  /** Unknown until the agent says (downloads). */
  total: number | null;
  state: "running" | "done" | "failed" | "cancelled";
  error: string | null;
  controller: AbortController;
}

export class TransferList {
  items = $state<Transfer[]>([]);
  private nextId = 1;

  start(direction: Transfer["direction"], name: string, total: number | null): Transfer {
    const transfer: Transfer = {
      id: this.nextId++,
      direction,
      name,
      done: 0,
      total,
      state: "running",
      error: null,
      controller: new AbortController(),
    };
    this.items = [transfer, ...this.items];
    // The proxied copy, so that updates through it re-render.
    return this.items[0]!;
  }

  clearFinished(): void {
    this.items = this.items.filter((t) => t.state === "running");
  }

  get running(): boolean {
    return this.items.some((t) => t.state === "running");
  }
}
