// The remote cursor, drawn on a small canvas laid over the picture and moved with a CSS
// transform (set through the CSSOM, which the CSP allows). It keeps its real size whatever the
// picture's scale. While the local pointer is over the picture and input is allowed, the cursor
// follows the local pointer at once instead of waiting for the agent's `pointer` echo.

import type { CursorShape } from "./desktopProtocol";
import type { Point } from "./desktopInput";

export class CursorOverlay {
  private shape: CursorShape | null = null;

  constructor(private readonly element: HTMLCanvasElement) {
    this.show(false);
  }

  get hasShape(): boolean {
    return this.shape !== null && this.shape.width > 0 && this.shape.height > 0;
  }

  setShape(shape: CursorShape): void {
    this.shape = shape;
    this.element.width = Math.max(1, shape.width);
    this.element.height = Math.max(1, shape.height);
    const context = this.element.getContext("2d");
    if (!context || !this.hasShape) return;
    const pixels = new Uint8ClampedArray(shape.pixels.length);
    pixels.set(shape.pixels);
    context.putImageData(new ImageData(pixels, shape.width, shape.height), 0, 0);
  }

  /** Puts the hot spot at `offset` (CSS pixels from the picture's top-left); null hides it. */
  moveTo(offset: Point | null): void {
    if (!offset || !this.hasShape) {
      this.show(false);
      return;
    }
    const shape = this.shape!;
    this.show(true);
    this.element.style.transform = `translate(${Math.round(offset.x - shape.hotX)}px, ${Math.round(offset.y - shape.hotY)}px)`;
  }

  private show(visible: boolean): void {
    this.element.style.visibility = visible ? "visible" : "hidden";
  }
}
