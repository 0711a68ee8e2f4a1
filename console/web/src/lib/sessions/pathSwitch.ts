// The console's side of moving one session from the WebSocket relay onto a direct WebRTC data
// channel without losing, doubling or reordering a message in either direction. The same state
// machine as `common/src/relay/switch.rs` (whose comments explain the protocol): each side sends
// `rtcReady` on the relay when its channel opens; once it has sent and received `rtcReady` it
// sends `rtcSwitch` as its LAST data message on the relay and everything after on the channel; a
// receiver reads the relay up to the peer's `rtcSwitch`, holding early channel data aside. A side
// that closes the session sends `rtcEnd` as its last message on the channel (`finish`), and a
// receiver passes the relay's close on only once it has read it (`peerDone`): the close can
// overtake the channel's last messages.
// Sans-IO: the caller reports what happened and sends what `pollTransmit` hands out.

export type Path = "relay" | "direct";

/** One message of session data: a JSON control message (text) or the session's bytes. */
export type Payload = string | Uint8Array<ArrayBuffer>;

export type SwitchSignal = "rtcReady" | "rtcSwitch" | "rtcEnd";

export type Transmit = { kind: "signal"; signal: SwitchSignal } | { kind: "data"; path: Path; payload: Payload };

/** Why the session cannot go on. */
export class SwitchError extends Error {}

/** How much channel data may arrive before the peer's marker (as in switch.rs). */
export const DEFAULT_EARLY_LIMIT = 8 * 1024 * 1024;

/** The relay text frame of a switch signal. */
export function signalText(signal: SwitchSignal): string {
  return JSON.stringify({ type: signal });
}

/** The switch signal a parsed relay text frame is, if it is one. */
export function asSwitchSignal(message: Record<string, unknown>): SwitchSignal | null {
  return message.type === "rtcReady" || message.type === "rtcSwitch" || message.type === "rtcEnd" ? message.type : null;
}

function isEnd(payload: Payload): boolean {
  if (typeof payload !== "string" || !payload.includes('"rtcEnd"')) return false;
  try {
    const value: unknown = JSON.parse(payload);
    return typeof value === "object" && value !== null && (value as { type?: unknown }).type === "rtcEnd";
  } catch {
    return false;
  }
}

function size(payload: Payload): number {
  return typeof payload === "string" ? payload.length : payload.byteLength;
}

export class PathSwitch {
  private readySent = false;
  private peerReady = false;
  private sending: Path = "relay";
  private receiving: Path = "relay";
  private failed = false;
  private early: Payload[] = [];
  private earlyBytes = 0;
  private finished = false;
  /** The peer's `rtcEnd` came; it counts once the peer's marker is also read. */
  private earlyEnd = false;
  private peerFinished = false;
  /** Session bytes each way on the channel, for the server's audit record. */
  private directSent = 0;
  private directReceived = 0;
  private readonly transmit: Transmit[] = [];
  private readonly deliver: Payload[] = [];

  constructor(private readonly earlyLimit = DEFAULT_EARLY_LIMIT) {}

  get sendingPath(): Path {
    return this.sending;
  }

  get receivingPath(): Path {
    return this.receiving;
  }

  /** Both directions run on the data channel: the relay now carries control only. */
  get isSwitched(): boolean {
    return this.sending === "direct" && this.receiving === "direct";
  }

  /**
   * Everything the peer sent has been delivered, or is on the relay ahead of its close: the
   * relay's close may now reach the session.
   */
  get peerDone(): boolean {
    return this.receiving === "relay" || this.peerFinished;
  }

  /** Session bytes sent and received on the data channel so far (markers not counted). */
  get directBytes(): { sent: number; received: number } {
    return { sent: this.directSent, received: this.directReceived };
  }

  /** We send nothing more: on the channel, `rtcEnd` follows the last of our data. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.sending === "direct" && !this.failed) {
      this.transmit.push({ kind: "data", path: "direct", payload: signalText("rtcEnd") });
    }
  }

  /** Our data channel opened (ordered and reliable). */
  directOpened(): void {
    if (this.readySent || this.failed) return;
    this.readySent = true;
    this.transmit.push({ kind: "signal", signal: "rtcReady" });
    this.maybeSwitchSending();
  }

  /** The data channel (or ICE/DTLS below it) failed or closed. Throws when data may be lost. */
  directFailed(): void {
    this.failed = true;
    // The peer said all it had to say and is closing: its channel going is no loss.
    if (this.peerFinished) return;
    if (this.sending === "direct" || this.receiving === "direct") {
      throw new SwitchError("the direct path failed after the session had switched to it");
    }
    this.early = [];
    this.earlyBytes = 0;
  }

  /** A switch signal read on the relay. */
  relaySignal(signal: SwitchSignal): void {
    if (signal === "rtcEnd") throw new SwitchError("the peer sent rtcEnd on the relay");
    if (signal === "rtcReady") {
      this.peerReady = true;
      this.maybeSwitchSending();
      return;
    }
    if (this.receiving === "direct") throw new SwitchError("the peer sent rtcSwitch twice");
    if (!this.peerReady) throw new SwitchError("the peer sent rtcSwitch before rtcReady");
    if (this.failed) throw new SwitchError("the direct path failed after the session had switched to it");
    this.receiving = "direct";
    this.earlyBytes = 0;
    this.deliver.push(...this.early);
    this.early = [];
    this.peerFinished = this.earlyEnd;
  }

  /** Session data read on the relay. */
  relayData(payload: Payload): void {
    if (this.receiving === "direct") throw new SwitchError("the peer sent session data on the relay after its rtcSwitch");
    this.deliver.push(payload);
  }

  /** Session data read on the data channel. */
  directData(payload: Payload): void {
    if (this.earlyEnd) throw new SwitchError("the peer sent data on the data channel after its rtcEnd");
    if (isEnd(payload)) {
      this.earlyEnd = true;
      this.peerFinished = this.receiving === "direct";
      return;
    }
    this.directReceived += size(payload);
    if (this.receiving === "direct") {
      this.deliver.push(payload);
      return;
    }
    this.earlyBytes += size(payload);
    if (this.earlyBytes > this.earlyLimit) {
      throw new SwitchError(`more than ${this.earlyLimit} bytes arrived on the data channel before the peer's rtcSwitch`);
    }
    this.early.push(payload);
  }

  /** Session data to send; it comes back out of `pollTransmit` with its path. */
  send(payload: Payload): void {
    if (this.sending === "direct") this.directSent += size(payload);
    this.transmit.push({ kind: "data", path: this.sending, payload });
  }

  pollTransmit(): Transmit | undefined {
    return this.transmit.shift();
  }

  pollDeliver(): Payload | undefined {
    return this.deliver.shift();
  }

  private maybeSwitchSending(): void {
    if (this.sending === "relay" && this.readySent && this.peerReady && !this.failed && !this.finished) {
      // Queued after every earlier relay message: the last data the peer reads from the relay.
      this.transmit.push({ kind: "signal", signal: "rtcSwitch" });
      this.sending = "direct";
    }
  }
}
