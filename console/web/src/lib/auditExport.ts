// The audit log as files to take away: CSV for spreadsheets, JSON for programs. Every message and
// name in the log was typed by someone (a user, an agent's report), so in CSV a cell that a
// spreadsheet would read as a formula (=, +, -, @, tab, carriage return first) gets a leading
// apostrophe: it stays text when opened.

import type { EventRecord } from "./protocol";

const COLUMNS = ["id", "time", "kind", "user", "group", "device", "message"] as const;

/** One CSV cell: quoted, inner quotes doubled, formula starts defused. */
export function csvCell(value: string | number | null | undefined): string {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replaceAll('"', '""')}"`;
}

/** RFC 4180 CSV, CRLF line ends, a header row; times in UTC ISO 8601. */
export function toCsv(records: readonly EventRecord[]): string {
  const rows = records.map((r) =>
    [r.id, new Date(r.time).toISOString(), r.kind, r.user, r.group, r.device, r.message].map(csvCell).join(","),
  );
  return [COLUMNS.join(","), ...rows].join("\r\n") + "\r\n";
}

export function toJson(records: readonly EventRecord[]): string {
  return JSON.stringify(records, null, 2) + "\n";
}

/** Offers `text` as a file download. */
export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
