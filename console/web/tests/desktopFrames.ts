// Desktop frames as the agent writes them (common/src/relay/desktop.rs), for the tests.

import { PICTURE_HEADER_LEN } from "../src/lib/sessions/desktopProtocol";

/** A picture message as the agent writes it (PictureHeader::write, big-endian). */
export function pictureFrame(
  kind: number,
  flags: number,
  seq: number,
  payload: Uint8Array | number[],
  extra: { capturedMs?: number; encodeUs?: number; width?: number; height?: number } = {},
): Uint8Array {
  const body = payload instanceof Uint8Array ? payload : new Uint8Array(payload);
  const frame = new Uint8Array(PICTURE_HEADER_LEN + body.length);
  const v = new DataView(frame.buffer);
  v.setUint8(0, kind);
  v.setUint8(1, flags);
  v.setUint32(4, seq);
  v.setUint32(8, extra.capturedMs ?? 0);
  v.setUint32(12, extra.encodeUs ?? 0);
  v.setUint16(16, extra.width ?? 0);
  v.setUint16(18, extra.height ?? 0);
  frame.set(body, PICTURE_HEADER_LEN);
  return frame;
}

/** A tiles payload: TileHeader::write + JPEG bytes for each tile. */
export function tilesPayload(tiles: Array<{ x: number; y: number; w: number; h: number; jpeg: number[] }>): Uint8Array {
  const out: number[] = [];
  for (const t of tiles) {
    const header = new Uint8Array(12);
    const v = new DataView(header.buffer);
    v.setUint16(0, t.x);
    v.setUint16(2, t.y);
    v.setUint16(4, t.w);
    v.setUint16(6, t.h);
    v.setUint32(8, t.jpeg.length);
    out.push(...header, ...t.jpeg);
  }
  return new Uint8Array(out);
}
