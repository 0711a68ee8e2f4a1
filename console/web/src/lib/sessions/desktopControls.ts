// Joins the viewer's DOM events to desktop input requests, using the pure mapping in
// desktopInput.ts. Keys go through a visually hidden <textarea> that holds the focus while the
// viewer is active: it receives keydown/keyup like any element, and also the `input` and
// composition events that carry text typed with an IME, with dead keys or inserted by
// accessibility tools, which a canvas never gets.

import { HeldInput, WheelAccumulator, classifyKey, toPicturePoint } from "./desktopInput";
import type { Point } from "./desktopInput";
import type { InputRequest } from "./desktopSession";

export interface InputTarget {
  /** Sends input; false when it was not sent (view-only, not started). */
  send(request: InputRequest): boolean;
  /** Whether keys are captured now (the toolbar's toggle). */
  captureKeys(): boolean;
  /** The local pointer moved over the picture (CSS pixels from its top-left), or left it. */
  hover(offset: Point | null): void;
}

export class InputBinder {
  private readonly held = new HeldInput();
  private readonly wheel = new WheelAccumulator();
  private pendingMove: Point | null = null;
  private lastMove: Point | null = null;
  private frame = 0;
  private readonly cleanups: Array<() => void> = [];

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly keys: HTMLTextAreaElement,
    private readonly target: InputTarget,
  ) {
    const on = <K extends keyof HTMLElementEventMap>(
      element: HTMLElement | Window,
      type: K,
      handler: (event: HTMLElementEventMap[K]) => void,
      options?: AddEventListenerOptions,
    ) => {
      const listener = handler as EventListener;
      element.addEventListener(type, listener, options);
      this.cleanups.push(() => element.removeEventListener(type, listener, options));
    };
    on(canvas, "pointerdown", (e) => this.pointerDown(e));
    // The focus change and text selection of a click happen on mousedown, which a cancelled
    // pointerdown does not stop: without this the click would take the focus off the key catcher.
    on(canvas, "mousedown", (e) => e.preventDefault());
    on(canvas, "pointermove", (e) => this.pointerMove(e));
    on(canvas, "pointerup", (e) => this.pointerUp(e));
    on(canvas, "pointerleave", () => this.target.hover(null));
    // Not passive: the page must not scroll while the wheel scrolls the remote screen.
    on(canvas, "wheel", (e) => this.onWheel(e), { passive: false });
    on(canvas, "contextmenu", (e) => e.preventDefault());
    on(keys, "keydown", (e) => this.keyDown(e));
    on(keys, "keyup", (e) => this.keyUp(e));
    on(keys, "input", (e) => this.onInput(e as InputEvent));
    on(keys, "compositionend", (e) => this.composed(e));
    on(keys, "blur", () => this.releaseAll());
    on(window, "blur", () => this.releaseAll());
  }

  /** Focuses the key catcher (after a click on the picture, or from the toolbar). */
  focus(): void {
    this.keys.focus({ preventScroll: true });
  }

  /** Releases everything held on the remote side (keys, buttons). */
  releaseAll(): void {
    this.flushMove();
    for (const request of this.held.releaseAll()) this.target.send(request as InputRequest);
    this.wheel.reset();
  }

  detach(): void {
    this.releaseAll();
    cancelAnimationFrame(this.frame);
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }

  // ---- pointer ----

  private picturePoint(event: MouseEvent): Point {
    const box = this.canvas.getBoundingClientRect();
    return toPicturePoint({ x: event.clientX, y: event.clientY }, box, this.canvas);
  }

  private pointerDown(event: PointerEvent): void {
    // No text selection or focus change from the click: the key catcher takes the focus.
    event.preventDefault();
    this.focus();
    this.canvas.setPointerCapture?.(event.pointerId);
    this.moveTo(this.picturePoint(event), true);
    this.buttons(event.buttons);
  }

  private pointerMove(event: PointerEvent): void {
    const box = this.canvas.getBoundingClientRect();
    this.target.hover({ x: event.clientX - box.left, y: event.clientY - box.top });
    this.moveTo(this.picturePoint(event), false);
    // A second button pressed while one is held arrives as a move with a new mask.
    if (event.buttons !== this.held.buttonMask) this.buttons(event.buttons);
  }

  private pointerUp(event: PointerEvent): void {
    this.moveTo(this.picturePoint(event), true);
    this.buttons(event.buttons);
  }

  private buttons(mask: number): void {
    for (const change of this.held.setButtons(mask)) this.target.send({ type: "mouseButton", ...change });
  }

  /** Moves go out at most once per frame, except right before a button or wheel event. */
  private moveTo(point: Point, now: boolean): void {
    this.pendingMove = point;
    if (now) {
      this.flushMove();
    } else if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.flushMove();
      });
    }
  }

  private flushMove(): void {
    const point = this.pendingMove;
    this.pendingMove = null;
    if (!point) return;
    if (this.lastMove && this.lastMove.x === point.x && this.lastMove.y === point.y) return;
    if (this.target.send({ type: "mouseMove", x: point.x, y: point.y })) this.lastMove = point;
  }

  private onWheel(event: WheelEvent): void {
    event.preventDefault();
    this.moveTo(this.picturePoint(event), true);
    const { dx, dy } = this.wheel.add(event);
    if (dx !== 0 || dy !== 0) this.target.send({ type: "wheel", dx, dy });
  }

  // ---- keys ----

  private keyDown(event: KeyboardEvent): void {
    if (!this.target.captureKeys()) return;
    const kind = classifyKey({
      key: event.key,
      code: event.code,
      ctrlKey: event.ctrlKey,
      altKey: event.altKey,
      metaKey: event.metaKey,
      altGraph: event.getModifierState?.("AltGraph") ?? false,
      isComposing: event.isComposing,
    });
    if (kind === "ignore") return;
    if (kind === "text") {
      if (this.target.send({ type: "text", text: event.key })) event.preventDefault();
      return;
    }
    if (this.target.send({ type: "key", code: event.code, down: true })) {
      this.held.keyDown(event.code);
      event.preventDefault();
    }
  }

  private keyUp(event: KeyboardEvent): void {
    if (!this.held.keyUp(event.code)) return;
    event.preventDefault();
    this.target.send({ type: "key", code: event.code, down: false });
  }

  /** Text that came without a keydown we handled (IME, dead keys, insertText). */
  private onInput(event: InputEvent): void {
    if (event.isComposing) return;
    const text = event.data;
    if (this.target.captureKeys() && text && event.inputType.startsWith("insert")) {
      this.target.send({ type: "text", text });
    }
    this.keys.value = "";
  }

  private composed(event: CompositionEvent): void {
    if (this.target.captureKeys() && event.data) this.target.send({ type: "text", text: event.data });
    this.keys.value = "";
  }
}
