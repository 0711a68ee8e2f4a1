// The file-manager session (mirrors common/src/relay/files.rs): requests with ids answered by
// replies with the same id, a download's bytes between `downloadStart` and `downloadEnd`, and an
// upload's bytes after `uploadReady` followed by `uploadEnd`. One transfer per direction at a time.
//
// Flow control: the protocol has no acknowledgements; the relay forwards one frame at a time per
// direction and back-pressure travels over TCP. A browser WebSocket never blocks `send`, it
// queues, so an upload reads the next chunk from the file only once the socket's queue
// (`bufferedAmount`) is below a few chunks. Nothing holds more than that in memory.

import type { RelayChannel } from "./relay";

/** Bytes per binary frame (the protocol's CHUNK_SIZE). */
export const CHUNK_SIZE = 64 * 1024;
/** An upload waits while more than this is queued in the browser's socket. */
export const UPLOAD_WINDOW = 4 * CHUNK_SIZE;

export type FileKind = "file" | "dir" | "symlink" | "other";

export interface FileEntry {
  name: string;
  kind: FileKind;
  size: number;
  /** Unix seconds. */
  mtime: number;
  /** Unix permission bits; 0 where the platform has none. */
  mode: number;
}

export interface Listing {
  path: string;
  entries: FileEntry[];
}

export class FilesError extends Error {
  override name = "FilesError";
}

/** The start and end of each chunk of a `size`-byte file. */
export function* chunkRanges(size: number, chunk = CHUNK_SIZE): Generator<[number, number]> {
  for (let start = 0; start < size; start += chunk) yield [start, Math.min(size, start + chunk)];
}

/** What the upload reads its chunks from (a File or Blob in the browser). */
export interface ByteSource {
  readonly size: number;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

export interface TransferOptions {
  onProgress?: (done: number, total: number | null) => void;
  signal?: AbortSignal;
}

interface Waiter {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  /** The reply types that settle this request (an `error` always does). */
  expects: readonly string[];
}

interface ActiveDownload {
  id: number;
  parts: Uint8Array[];
  received: number;
  size: number | null;
  options: TransferOptions;
}

export class FilesSession {
  private nextId = 1;
  private readonly waiters = new Map<number, Waiter>();
  private download: ActiveDownload | null = null;
  /** Errors the agent sent for an upload while its bytes were still going out. */
  private readonly uploadFailures = new Map<number, string>();
  private failure: string | null = null;
  private uploading = false;

  constructor(
    private readonly channel: RelayChannel,
    private readonly pause: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  list(path: string): Promise<Listing> {
    return this.call({ type: "list", path }, ["listing"]).then((reply) => ({
      path: String(reply.path),
      entries: Array.isArray(reply.entries) ? (reply.entries as FileEntry[]) : [],
    }));
  }

  async mkdir(path: string): Promise<void> {
    await this.call({ type: "mkdir", path }, ["done"]);
  }

  async rename(from: string, to: string): Promise<void> {
    await this.call({ type: "rename", from, to }, ["done"]);
  }

  async remove(path: string, recursive: boolean): Promise<void> {
    await this.call({ type: "remove", path, recursive }, ["done"]);
  }

  /** The file's bytes, gathered into a Blob (the browser may keep large blobs on disk). */
  async downloadBlob(path: string, options: TransferOptions = {}): Promise<Blob> {
    if (this.download) throw new FilesError("Another download is running; wait for it to finish.");
    const id = this.nextId++;
    const download: ActiveDownload = { id, parts: [], received: 0, size: null, options };
    this.download = download;
    const abort = () => {
      this.channel.sendJson({ type: "cancel", id });
      this.settle(id, new FilesError("Download cancelled."));
    };
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      const start = await this.send(id, { type: "download", id, path, offset: 0 }, ["downloadStart"]);
      download.size = typeof start.size === "number" ? start.size : null;
      options.onProgress?.(0, download.size);
      await this.wait(id, ["downloadEnd"]);
      if (options.signal?.aborted) throw new FilesError("Download cancelled.");
      return new Blob(download.parts as BlobPart[]);
    } finally {
      options.signal?.removeEventListener("abort", abort);
      if (this.download === download) this.download = null;
    }
  }

  /** Sends `source` to `path` chunk by chunk; the agent renames it into place when complete. */
  async upload(path: string, source: ByteSource, overwrite: boolean, options: TransferOptions = {}): Promise<void> {
    if (this.uploading) throw new FilesError("Another upload is running; wait for it to finish.");
    this.uploading = true;
    const id = this.nextId++;
    try {
      await this.call({ type: "upload", path, size: source.size, overwrite }, ["uploadReady"], id);
      options.onProgress?.(0, source.size);
      for (const [start, end] of chunkRanges(source.size)) {
        await this.drain(id);
        this.checkUpload(id, options.signal);
        const bytes = new Uint8Array(await source.slice(start, end).arrayBuffer());
        this.channel.sendBytes(bytes);
        options.onProgress?.(end, source.size);
      }
      this.checkUpload(id, options.signal);
      await this.call({ type: "uploadEnd" }, ["done"], id);
    } catch (error) {
      if (options.signal?.aborted) this.channel.sendJson({ type: "cancel", id });
      throw error;
    } finally {
      this.uploadFailures.delete(id);
      this.uploading = false;
    }
  }

  /** A text frame from the agent. */
  onMessage(message: Record<string, unknown>): void {
    const id = typeof message.id === "number" ? message.id : 0;
    const type = String(message.type);
    if (type === "error" && id === 0) {
      this.fail(typeof message.message === "string" ? message.message : "the session failed");
      return;
    }
    const waiter = this.waiters.get(id);
    if (type === "error") {
      const text = typeof message.message === "string" ? message.message : "the request failed";
      if (waiter) {
        this.waiters.delete(id);
        waiter.reject(new FilesError(text));
      } else {
        this.uploadFailures.set(id, text);
      }
      return;
    }
    if (waiter && waiter.expects.includes(type)) {
      this.waiters.delete(id);
      waiter.resolve(message);
    }
  }

  /** A binary frame from the agent: the running download's next bytes. */
  onBytes(bytes: Uint8Array): void {
    const download = this.download;
    if (!download) return;
    download.parts.push(bytes);
    download.received += bytes.length;
    download.options.onProgress?.(download.received, download.size);
  }

  /** The session ended: every pending request fails with `reason`. */
  fail(reason: string): void {
    this.failure = reason;
    for (const waiter of this.waiters.values()) waiter.reject(new FilesError(reason));
    this.waiters.clear();
  }

  private settle(id: number, error: Error): void {
    const waiter = this.waiters.get(id);
    this.waiters.delete(id);
    waiter?.reject(error);
  }

  private call(body: Record<string, unknown>, expects: readonly string[], id = this.nextId++) {
    return this.send(id, { ...body, id }, expects);
  }

  private send(id: number, message: Record<string, unknown>, expects: readonly string[]) {
    const reply = this.wait(id, expects);
    this.channel.sendJson(message);
    return reply;
  }

  private wait(id: number, expects: readonly string[]): Promise<Record<string, unknown>> {
    if (this.failure !== null) return Promise.reject(new FilesError(this.failure));
    return new Promise((resolve, reject) => this.waiters.set(id, { resolve, reject, expects }));
  }

  /** Waits until the socket's queue has room for one more chunk (or the upload failed). */
  private async drain(id: number): Promise<void> {
    while (
      this.channel.bufferedAmount > UPLOAD_WINDOW - CHUNK_SIZE &&
      this.failure === null &&
      !this.uploadFailures.has(id)
    ) {
      await this.pause(10);
    }
  }

  private checkUpload(id: number, signal: AbortSignal | undefined): void {
    if (this.failure !== null) throw new FilesError(this.failure);
    const failed = this.uploadFailures.get(id);
    if (failed !== undefined) throw new FilesError(failed);
    if (signal?.aborted) throw new FilesError("Upload cancelled.");
  }
}
