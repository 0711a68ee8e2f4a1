// A view that lost its direct path reopens its session once, relayed; other closes end it.
import { describe, expect, it } from "vitest";
import { PathFallback } from "../src/lib/sessions/pathFallback";
import { DIRECT_LOST } from "../src/lib/sessions/relay";

const OFFER = { iceServers: [{ urls: ["stun:h:8443"] }], relayOnly: false };

describe("path fallback", () => {
  it("reopens once after a lost direct path, then keeps the view relayed", () => {
    const fallback = new PathFallback();
    expect(fallback.direct(OFFER)).toEqual(OFFER);
    expect(fallback.reopenAfter("session closed")).toBe(false);
    expect(fallback.reopenAfter(DIRECT_LOST.reason)).toBe(true);
    expect(fallback.direct(OFFER)).toBeNull();
    // The relayed session cannot lose a direct path; if it somehow says so, the view ends.
    expect(fallback.reopenAfter(DIRECT_LOST.reason)).toBe(false);
  });

  it("passes a ticket without a direct path through", () => {
    expect(new PathFallback().direct(null)).toBeNull();
  });
});
