import { describe, expect, it } from "vitest";
import {
  DOM_DELTA_LINE,
  DOM_DELTA_PAGE,
  DOM_DELTA_PIXEL,
  HeldInput,
  PIXELS_PER_STEP,
  SPECIAL_KEYS,
  WheelAccumulator,
  buttonBit,
  buttonChanges,
  buttonName,
  classifyKey,
  fitSize,
  toCssOffset,
  toPicturePoint,
} from "../src/lib/sessions/desktopInput";
import type { KeyInfo } from "../src/lib/sessions/desktopInput";

describe("pointer coordinates", () => {
  const picture = { width: 1920, height: 1080 };

  it("maps to picture pixels at any scale", () => {
    // Shown at half size, 100 px from the left and 50 from the top of the window.
    const half = { left: 100, top: 50, width: 960, height: 540 };
    expect(toPicturePoint({ x: 100, y: 50 }, half, picture)).toEqual({ x: 0, y: 0 });
    expect(toPicturePoint({ x: 580, y: 320 }, half, picture)).toEqual({ x: 960, y: 540 });
    expect(toPicturePoint({ x: 100.4, y: 50.9 }, half, picture)).toEqual({ x: 0, y: 1 });
    // 1:1.
    const actual = { left: -300, top: -20, width: 1920, height: 1080 };
    expect(toPicturePoint({ x: 0, y: 0 }, actual, picture)).toEqual({ x: 300, y: 20 });
    // Enlarged ×1.5 (a small screen fitted into a big window): several CSS pixels per picture pixel.
    const big = { left: 0, top: 0, width: 960, height: 600 };
    expect(toPicturePoint({ x: 959.9, y: 599.9 }, big, { width: 640, height: 400 })).toEqual({ x: 639, y: 399 });
    expect(toPicturePoint({ x: 1.4, y: 1.6 }, big, { width: 640, height: 400 })).toEqual({ x: 0, y: 1 });
    // A non-uniform CSS size (stretched) still maps each axis on its own.
    expect(toPicturePoint({ x: 50, y: 50 }, { left: 0, top: 0, width: 100, height: 200 }, { width: 100, height: 100 })).toEqual(
      { x: 50, y: 25 },
    );
  });

  it("clamps positions off the picture to its edges", () => {
    const box = { left: 10, top: 10, width: 192, height: 108 };
    expect(toPicturePoint({ x: 0, y: 500 }, box, picture)).toEqual({ x: 0, y: 1079 });
    expect(toPicturePoint({ x: 9999, y: -5 }, box, picture)).toEqual({ x: 1919, y: 0 });
    expect(toPicturePoint({ x: 5, y: 5 }, { left: 0, top: 0, width: 0, height: 0 }, picture)).toEqual({ x: 0, y: 0 });
  });

  it("maps picture pixels back to CSS offsets, and fits pictures into a box", () => {
    expect(toCssOffset({ x: 960, y: 540 }, { left: 0, top: 0, width: 960, height: 540 }, picture)).toEqual({ x: 480, y: 270 });
    expect(fitSize(picture, { width: 960, height: 1000 })).toEqual({ width: 960, height: 540, scale: 0.5 });
    expect(fitSize(picture, { width: 4000, height: 1620 })).toEqual({ width: 2880, height: 1620, scale: 1.5 });
    expect(fitSize({ width: 0, height: 0 }, { width: 10, height: 10 })).toEqual({ width: 0, height: 0, scale: 1 });
  });
});

describe("mouse buttons", () => {
  it("names DOM button numbers", () => {
    expect([0, 1, 2, 3, 4].map(buttonName)).toEqual(["left", "middle", "right", "back", "forward"]);
    expect(buttonName(7)).toBeNull();
    expect([0, 1, 2, 3, 4].map(buttonBit)).toEqual([1, 4, 2, 8, 16]);
  });

  it("turns button-mask changes into presses and releases, chords included", () => {
    expect(buttonChanges(0, 1)).toEqual([{ button: "left", down: true }]);
    expect(buttonChanges(1, 1 | 2)).toEqual([{ button: "right", down: true }]);
    expect(buttonChanges(1 | 2, 4)).toEqual([
      { button: "left", down: false },
      { button: "middle", down: true },
      { button: "right", down: false },
    ]);
    expect(buttonChanges(8 | 16, 0)).toEqual([
      { button: "back", down: false },
      { button: "forward", down: false },
    ]);
    expect(buttonChanges(5, 5)).toEqual([]);
  });

  it("releases everything held, last key first", () => {
    const held = new HeldInput();
    expect(held.setButtons(1)).toEqual([{ button: "left", down: true }]);
    expect(held.keyDown("ControlLeft")).toBe(true);
    expect(held.keyDown("ShiftLeft")).toBe(true);
    expect(held.keyDown("ShiftLeft"), "auto-repeat").toBe(false);
    expect(held.keyUp("KeyQ"), "never sent down").toBe(false);
    expect(held.releaseAll()).toEqual([
      { type: "mouseButton", button: "left", down: false },
      { type: "key", code: "ShiftLeft", down: false },
      { type: "key", code: "ControlLeft", down: false },
    ]);
    expect(held.releaseAll()).toEqual([]);
    expect(held.buttonMask).toBe(0);
  });
});

describe("wheel steps", () => {
  it("sends one step per notch in every delta mode", () => {
    const wheel = new WheelAccumulator();
    expect(wheel.add({ deltaX: 0, deltaY: 100, deltaMode: DOM_DELTA_PIXEL })).toEqual({ dx: 0, dy: 1 });
    expect(wheel.add({ deltaX: 0, deltaY: 3, deltaMode: DOM_DELTA_LINE })).toEqual({ dx: 0, dy: 1 });
    expect(wheel.add({ deltaX: 0, deltaY: -6, deltaMode: DOM_DELTA_LINE })).toEqual({ dx: 0, dy: -2 });
    expect(wheel.add({ deltaX: -1, deltaY: 0, deltaMode: DOM_DELTA_PAGE })).toEqual({ dx: -8, dy: 0 });
  });

  it("adds up small touchpad deltas and drops the rest when turning back", () => {
    const wheel = new WheelAccumulator();
    const steps: number[] = [];
    for (let i = 0; i < 10; i++) steps.push(wheel.add({ deltaX: 0, deltaY: 30, deltaMode: DOM_DELTA_PIXEL }).dy);
    // 300 px: three steps, at 120, 210 and 300 px... i.e. on the 4th, 7th and 10th event.
    expect(steps).toEqual([0, 0, 0, 1, 0, 0, 1, 0, 0, 1]);
    wheel.add({ deltaX: 0, deltaY: 90, deltaMode: DOM_DELTA_PIXEL }); // 90 px pending downwards
    expect(wheel.add({ deltaX: 0, deltaY: -60, deltaMode: DOM_DELTA_PIXEL }).dy, "the 90 px are dropped").toBe(0);
    expect(wheel.add({ deltaX: 0, deltaY: -40, deltaMode: DOM_DELTA_PIXEL }).dy).toBe(-1);
    expect(wheel.add({ deltaX: 250, deltaY: 0, deltaMode: DOM_DELTA_PIXEL })).toEqual({ dx: 2, dy: 0 });
    wheel.reset();
    expect(wheel.add({ deltaX: 60, deltaY: 0, deltaMode: DOM_DELTA_PIXEL }).dx, "reset forgot the 50 px").toBe(0);
    expect(PIXELS_PER_STEP).toBe(100);
  });
});

describe("keys: text or key", () => {
  const key = (k: string, code: string, mods: Partial<KeyInfo> = {}): KeyInfo => ({
    key: k,
    code,
    ctrlKey: false,
    altKey: false,
    metaKey: false,
    altGraph: false,
    isComposing: false,
    ...mods,
  });

  it("types printable characters as text, whatever the layout", () => {
    expect(classifyKey(key("a", "KeyA"))).toBe("text");
    expect(classifyKey(key("A", "KeyA"))).toBe("text");
    expect(classifyKey(key(" ", "Space"))).toBe("text");
    expect(classifyKey(key("ä", "Quote")), "German layout").toBe("text");
    expect(classifyKey(key("z", "KeyY")), "German layout: Y is where z is").toBe("text");
    expect(classifyKey(key("€", "KeyE", { ctrlKey: true, altKey: true, altGraph: true })), "AltGr on Windows").toBe("text");
    expect(classifyKey(key("😀", ""))).toBe("text");
  });

  it("sends shortcuts, named keys and modifiers by their code", () => {
    expect(classifyKey(key("c", "KeyC", { ctrlKey: true }))).toBe("key");
    expect(classifyKey(key("x", "KeyX", { altKey: true }))).toBe("key");
    expect(classifyKey(key("l", "KeyL", { metaKey: true }))).toBe("key");
    for (const [k, code] of [
      ["Enter", "Enter"],
      ["Tab", "Tab"],
      ["ArrowLeft", "ArrowLeft"],
      ["F5", "F5"],
      ["Shift", "ShiftLeft"],
      ["Control", "ControlRight"],
      ["Escape", "Escape"],
      ["Backspace", "Backspace"],
    ]) {
      expect(classifyKey(key(k!, code!)), k).toBe("key");
    }
  });

  it("leaves dead keys and composition to the input events", () => {
    expect(classifyKey(key("Dead", "BracketLeft"))).toBe("ignore");
    expect(classifyKey(key("Process", "KeyA"))).toBe("ignore");
    expect(classifyKey(key("a", "KeyA", { isComposing: true }))).toBe("ignore");
    expect(classifyKey(key("Unidentified", ""))).toBe("ignore");
    expect(classifyKey(key("F13", ""))).toBe("ignore");
  });

  it("offers the special combinations by code", () => {
    expect(SPECIAL_KEYS.find((k) => k.label === "Ctrl-Alt-Del")?.codes).toEqual(["ControlLeft", "AltLeft", "Delete"]);
    expect(SPECIAL_KEYS.map((k) => k.label)).toEqual(["Ctrl-Alt-Del", "Alt-Tab", "Alt-F4", "Super", "Print Screen", "Ctrl-Esc"]);
  });
});
