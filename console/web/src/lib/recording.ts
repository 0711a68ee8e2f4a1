// Reads a session recording as the server keeps it (`common/src/recording.rs`): one JSON header
// line, then frames `[direction u8][type u8][ms u32 BE][length u32 BE][payload]` (direction 1 is
// device → console; type 0 text, 1 binary). A file cut short (a server that died mid-session)
// gives the frames before the cut.

export interface RecordedFrame {
  fromDevice: boolean;
  text: boolean;
  atMs: number;
  payload: Uint8Array;
}

export interface Recording {
  header: Record<string, unknown>;
  frames: RecordedFrame[];
  /** The frames end early: the file was cut short or broken there. */
  truncated: boolean;
}

const FRAME_HEADER = 10;

export function parseRecording(bytes: Uint8Array): Recording {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) throw new Error("not a recording: no header line");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, newline))) as Record<string, unknown>;
  if (header.version !== 1) throw new Error(`not a recording this console reads (version ${String(header.version)})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const frames: RecordedFrame[] = [];
  let at = newline + 1;
  let truncated = false;
  while (at < bytes.length) {
    if (bytes.length - at < FRAME_HEADER) {
      truncated = true;
      break;
    }
    const direction = bytes[at]!;
    const type = bytes[at + 1]!;
    const length = view.getUint32(at + 6);
    if (direction > 1 || type > 1 || at + FRAME_HEADER + length > bytes.length) {
      truncated = true;
      break;
    }
    frames.push({
      fromDevice: direction === 1,
      text: type === 0,
      atMs: view.getUint32(at + 2),
      payload: bytes.subarray(at + FRAME_HEADER, at + FRAME_HEADER + length),
    });
    at += FRAME_HEADER + length;
  }
  return { header, frames, truncated };
}
