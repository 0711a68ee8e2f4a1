import { describe, expect, it } from "vitest";
import { csvCell, toCsv, toJson } from "../src/lib/auditExport";
import type { EventRecord } from "../src/lib/protocol";

const record = (id: number, message: string, extra: Partial<EventRecord> = {}): EventRecord => ({
  id,
  time: Date.UTC(2026, 11, 5, 8, 30),
  kind: "login",
  user: "alice",
  group: null,
  device: null,
  message,
  ...extra,
});

describe("audit log export", () => {
  it("quotes every cell and doubles inner quotes", () => {
    expect(csvCell('say "hi", bye')).toBe('"say ""hi"", bye"');
    expect(csvCell(null)).toBe('""');
    expect(csvCell(7)).toBe('"7"');
  });

  it("keeps what a spreadsheet would run as a formula as text", () => {
    for (const hostile of ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"]) {
      expect(csvCell(hostile).startsWith(`"'`)).toBe(true);
    }
    expect(csvCell("a=b")).toBe('"a=b"');
  });

  it("writes a header, one CRLF row per record, UTC times; JSON round-trips", () => {
    const records = [record(2, "alice logged in\nfrom 10.0.0.1", { device: "d@1" }), record(1, "=cmd|' /C calc'!A0")];
    const csv = toCsv(records);
    const lines = csv.split("\r\n");
    expect(lines[0]).toBe("id,time,kind,user,group,device,message");
    expect(lines[1]).toBe('"2","2026-12-05T08:30:00.000Z","login","alice","","d@1","alice logged in\nfrom 10.0.0.1"');
    expect(lines[2]).toBe('"1","2026-12-05T08:30:00.000Z","login","alice","","","\'=cmd|\' /C calc\'!A0"');
    expect(csv.endsWith("\r\n")).toBe(true);
    expect(JSON.parse(toJson(records))).toEqual(records);
  });
});
