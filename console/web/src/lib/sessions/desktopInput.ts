// Browser input → desktop requests, as pure functions and small state holders (no DOM types
// beyond plain fields), so the mapping is unit-tested: pointer positions into picture pixels,
// button masks into presses and releases, wheel deltas into steps, keys into `text` or `key`.

import type { DesktopRequest, MouseButton } from "./desktopProtocol";

export interface Point {
  x: number;
  y: number;
}

export interface Box {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * The picture pixel under a pointer: `client` is the event's clientX/Y, `box` the canvas's
 * bounding rectangle (its CSS size, whatever the scale), `picture` its pixel size. Positions off
 * the picture are clamped to its edge (a drag that leaves the canvas keeps moving the pointer).
 */
export function toPicturePoint(client: Point, box: Box, picture: { width: number; height: number }): Point {
  if (box.width <= 0 || box.height <= 0 || picture.width <= 0 || picture.height <= 0) return { x: 0, y: 0 };
  const x = Math.floor(((client.x - box.left) * picture.width) / box.width);
  const y = Math.floor(((client.y - box.top) * picture.height) / box.height);
  return { x: clamp(x, 0, picture.width - 1), y: clamp(y, 0, picture.height - 1) };
}

/** The inverse, for drawing something at a picture pixel: its CSS offset inside the canvas. */
export function toCssOffset(point: Point, box: Box, picture: { width: number; height: number }): Point {
  if (picture.width <= 0 || picture.height <= 0) return { x: 0, y: 0 };
  return { x: (point.x * box.width) / picture.width, y: (point.y * box.height) / picture.height };
}

/** The largest size with the picture's aspect ratio that fits in `room` (up or down). */
export function fitSize(picture: { width: number; height: number }, room: { width: number; height: number }) {
  if (picture.width <= 0 || picture.height <= 0) return { width: 0, height: 0, scale: 1 };
  const scale = Math.max(0, Math.min(room.width / picture.width, room.height / picture.height));
  return { width: Math.floor(picture.width * scale), height: Math.floor(picture.height * scale), scale };
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

// ---- buttons ----

/** `MouseEvent.button` numbers. */
const BUTTON_BY_NUMBER: readonly MouseButton[] = ["left", "middle", "right", "back", "forward"];
/** `MouseEvent.buttons` bits, in the same order (note: right is 2 and middle 4 here). */
const BUTTON_BITS: ReadonlyArray<[number, MouseButton]> = [
  [1, "left"],
  [4, "middle"],
  [2, "right"],
  [8, "back"],
  [16, "forward"],
];

export function buttonName(button: number): MouseButton | null {
  return BUTTON_BY_NUMBER[button] ?? null;
}

/**
 * The presses and releases that turn the `before` button mask into `after` (`MouseEvent.buttons`).
 * Diffing masks rather than reading `button` copes with chords (a second button pressed while one
 * is held comes as a pointermove, not a pointerdown) and with releases outside the window.
 */
export function buttonChanges(before: number, after: number): Array<{ button: MouseButton; down: boolean }> {
  const changes: Array<{ button: MouseButton; down: boolean }> = [];
  for (const [bit, button] of BUTTON_BITS) {
    const was = (before & bit) !== 0;
    const now = (after & bit) !== 0;
    if (was !== now) changes.push({ button, down: now });
  }
  return changes;
}

/** The `MouseEvent.buttons` bit of a `MouseEvent.button` number (0 for unknown buttons). */
export function buttonBit(button: number): number {
  const name = buttonName(button);
  return BUTTON_BITS.find(([, n]) => n === name)?.[0] ?? 0;
}

// ---- wheel ----

/** Pixels of scrolling that make one wheel step (one notch of a mouse wheel in most browsers). */
export const PIXELS_PER_STEP = 100;
/** `WheelEvent.deltaMode` values. */
export const DOM_DELTA_PIXEL = 0;
export const DOM_DELTA_LINE = 1;
export const DOM_DELTA_PAGE = 2;
const PIXELS_PER_LINE = PIXELS_PER_STEP / 3;
const PIXELS_PER_PAGE = 800;

/**
 * Turns wheel deltas into whole steps. Touchpads send many small pixel deltas; they add up, and a
 * step goes out per PIXELS_PER_STEP. Turning back drops what was left over in the old direction,
 * so a reversal responds at once.
 */
export class WheelAccumulator {
  private restX = 0;
  private restY = 0;

  add(event: { deltaX: number; deltaY: number; deltaMode: number }): { dx: number; dy: number } {
    const unit =
      event.deltaMode === DOM_DELTA_LINE ? PIXELS_PER_LINE : event.deltaMode === DOM_DELTA_PAGE ? PIXELS_PER_PAGE : 1;
    const [dx, restX] = this.step(this.restX, event.deltaX * unit);
    const [dy, restY] = this.step(this.restY, event.deltaY * unit);
    this.restX = restX;
    this.restY = restY;
    return { dx, dy };
  }

  reset(): void {
    this.restX = 0;
    this.restY = 0;
  }

  private step(rest: number, delta: number): [number, number] {
    if (delta === 0 || !Number.isFinite(delta)) return [0, rest];
    const total = Math.sign(rest) === -Math.sign(delta) ? delta : rest + delta;
    const steps = Math.trunc(total / PIXELS_PER_STEP) || 0; // never -0
    return [steps, total - steps * PIXELS_PER_STEP];
  }
}

// ---- keys ----

export interface KeyInfo {
  key: string;
  code: string;
  ctrlKey: boolean;
  altKey: boolean;
  metaKey: boolean;
  /** `getModifierState("AltGraph")`: on Windows AltGr also sets ctrlKey and altKey. */
  altGraph: boolean;
  isComposing: boolean;
}

/**
 * What a keydown becomes:
 * - `text`: one printable character with no Ctrl/Alt/Meta held. Sent as the character, so a
 *   German or French keyboard types on the remote what its user sees, whatever the remote layout.
 * - `key`: anything else (Enter, arrows, F-keys, modifiers, Ctrl-C) by its physical `code`.
 * - `ignore`: dead keys and IME composition (the composed text arrives as an input event), and
 *   keys without a code.
 */
export function classifyKey(info: KeyInfo): "text" | "key" | "ignore" {
  if (info.isComposing || info.key === "Dead" || info.key === "Process" || info.key === "Unidentified") return "ignore";
  const printable = [...info.key].length === 1 && info.key >= " " && info.key !== "\u007f";
  const commandHeld = info.metaKey || ((info.ctrlKey || info.altKey) && !info.altGraph);
  if (printable && !commandHeld) return "text";
  return info.code ? "key" : "ignore";
}

/**
 * The keys and buttons held down on the remote side because of this viewer, so that all of them
 * can be released when the viewer loses focus (otherwise a Ctrl held while switching windows
 * stays stuck on the remote machine).
 */
export class HeldInput {
  private keys = new Set<string>();
  private buttons = 0;

  /** Call on keydown of a `key`; false when it was already down (an auto-repeat). */
  keyDown(code: string): boolean {
    const fresh = !this.keys.has(code);
    this.keys.add(code);
    return fresh;
  }

  /** Call on keyup; true when the key had been sent down (so its release must be sent). */
  keyUp(code: string): boolean {
    return this.keys.delete(code);
  }

  /** Records the new button mask and returns the changes to send. */
  setButtons(mask: number): Array<{ button: MouseButton; down: boolean }> {
    const changes = buttonChanges(this.buttons, mask);
    this.buttons = mask;
    return changes;
  }

  get buttonMask(): number {
    return this.buttons;
  }

  /** The releases for everything held; forgets it all. */
  releaseAll(): DesktopRequest[] {
    const out: DesktopRequest[] = [];
    for (const change of buttonChanges(this.buttons, 0)) out.push({ type: "mouseButton", ...change });
    for (const code of [...this.keys].reverse()) out.push({ type: "key", code, down: false });
    this.keys.clear();
    this.buttons = 0;
    return out;
  }
}

/** The special-keys menu: combos the local machine would otherwise keep for itself. */
export const SPECIAL_KEYS: ReadonlyArray<{ label: string; codes: string[] }> = [
  { label: "Ctrl-Alt-Del", codes: ["ControlLeft", "AltLeft", "Delete"] },
  { label: "Alt-Tab", codes: ["AltLeft", "Tab"] },
  { label: "Alt-F4", codes: ["AltLeft", "F4"] },
  { label: "Super", codes: ["MetaLeft"] },
  { label: "Print Screen", codes: ["PrintScreen"] },
  { label: "Ctrl-Esc", codes: ["ControlLeft", "Escape"] },
];
