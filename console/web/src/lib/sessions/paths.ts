// Remote paths as the agent sees them (absolute, '/'-separated) and how the file list shows
// entries: breadcrumbs, names a user may type, permission strings.

import type { FileEntry, FileKind } from "./files";

export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

export function parentPath(path: string): string {
  const trimmed = normalize(path);
  const cut = trimmed.lastIndexOf("/");
  return cut <= 0 ? "/" : trimmed.slice(0, cut);
}

/** "/a//b/" → "/a/b"; anything not starting with '/' is taken from the root. */
export function normalize(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return `/${parts.join("/")}`;
}

/** "/home/alice" → [{"/", "/"}, {"home", "/home"}, {"alice", "/home/alice"}]. */
export function breadcrumbs(path: string): Array<{ name: string; path: string }> {
  const parts = normalize(path).split("/").filter((p) => p !== "");
  const crumbs = [{ name: "/", path: "/" }];
  parts.forEach((name, i) => crumbs.push({ name, path: `/${parts.slice(0, i + 1).join("/")}` }));
  return crumbs;
}

/** Why `name` cannot be a file name, or null when it can. */
export function invalidName(name: string): string | null {
  if (name.trim() === "") return "Enter a name.";
  if (name.includes("/")) return "A name cannot contain '/'.";
  if (name === "." || name === "..") return "That name is reserved.";
  if (name.includes("\0")) return "A name cannot contain NUL.";
  return null;
}

const KIND_LETTER: Record<FileKind, string> = { file: "-", dir: "d", symlink: "l", other: "?" };

/** 0o755 for a folder → "drwxr-xr-x"; "" where the platform has no permission bits. */
export function permissions(kind: FileKind, mode: number): string {
  if (mode === 0) return "";
  const bits = "rwxrwxrwx";
  let text = KIND_LETTER[kind];
  for (let i = 0; i < 9; i++) text += mode & (1 << (8 - i)) ? bits[i] : "-";
  return text;
}

/** 1536 → "1.5 KiB". */
export function fileSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

/** Folders first, then by name (natural order, case-insensitive). */
export function sortEntries(entries: readonly FileEntry[]): FileEntry[] {
  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  const rank = (e: FileEntry) => (e.kind === "dir" ? 0 : 1);
  return [...entries].sort((a, b) => rank(a) - rank(b) || collator.compare(a.name, b.name));
}
