// The file manager's browser-side steps that are not protocol: uploading a batch of files one
// after the other with progress, and handing a downloaded Blob to the browser as a file.

import type { FilesSession } from "./files";
import { joinPath } from "./paths";
import type { TransferList } from "./transfers.svelte";

/** Uploads `files` into `dir` one at a time (the protocol runs one upload at a time). */
export async function uploadAll(
  session: FilesSession,
  transfers: TransferList,
  dir: string,
  files: readonly File[],
  overwrite: boolean,
  onError: (error: unknown) => void,
): Promise<void> {
  const started = files.map((file) => ({ file, transfer: transfers.start("upload", file.name, file.size) }));
  for (const { file, transfer } of started) {
    const signal = transfer.controller.signal;
    if (signal.aborted) {
      transfer.state = "cancelled";
      continue;
    }
    try {
      await session.upload(joinPath(dir, file.name), file, overwrite, {
        signal,
        onProgress: (done) => (transfer.done = done),
      });
      transfer.state = "done";
    } catch (error) {
      transfer.state = signal.aborted ? "cancelled" : "failed";
      transfer.error = error instanceof Error ? error.message : String(error);
      if (!signal.aborted) onError(new Error(`${file.name}: ${transfer.error}`));
    }
  }
}

/**
 * Saves a Blob under `name` through the browser's download manager. (The whole file is in the
 * Blob first; streaming to disk with the File System Access API is a later step.)
 */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
  // The download has taken the URL by the next turn; free the memory a little later.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
