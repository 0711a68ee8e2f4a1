// Reconnect delays: exponential with jitter, capped, reset once a connection succeeds. Jitter
// spreads a fleet of consoles so that a server restart is not met by all of them at once.

export interface BackoffOptions {
  /** First delay, in milliseconds. */
  initialMs: number;
  /** Largest delay, in milliseconds. */
  maxMs: number;
  /** Growth per failed attempt. */
  factor: number;
  /** Share of each delay that is randomised: 0 = none, 0.5 = between 50% and 100% of it. */
  jitter: number;
  /** A number in [0, 1); injectable so tests are deterministic. */
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  initialMs: 500,
  maxMs: 30_000,
  factor: 2,
  jitter: 0.5,
  random: Math.random,
};

export class Backoff {
  private attempt = 0;
  private readonly options: BackoffOptions;

  constructor(options: Partial<BackoffOptions> = {}) {
    this.options = { ...DEFAULT_BACKOFF, ...options };
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt; each call grows the following one. */
  next(): number {
    const { initialMs, maxMs, factor, jitter, random } = this.options;
    const ceiling = Math.min(maxMs, initialMs * factor ** this.attempt);
    this.attempt += 1;
    const spread = ceiling * jitter * random();
    return Math.round(ceiling - spread);
  }

  reset(): void {
    this.attempt = 0;
  }
}
