//! A lossless PNG of the selected display, at full size, for `snapshot` requests (and so for
//! `tetherctl screenshot`).

use tether_common::relay::MAX_RELAY_FRAME;
use tether_common::relay::desktop::{SNAPSHOT_HEADER_LEN, split_payload, write_snapshot_header};

use super::encode::EncodeError;
use super::frame::Frame;

/// The PNG bytes of `frame` (8-bit RGB; "fast" compression: a screenshot of text and flat colour
/// still shrinks well, and a 1080p one takes tens of milliseconds, not seconds).
pub(super) fn png(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&frame.to_rgb())?;
    writer.finish()?;
    Ok(out)
}

/// The relay messages carrying `png` (split when over the relay's message limit).
pub(super) fn snapshot_messages(png: &[u8]) -> Vec<Vec<u8>> {
    split_payload(
        png,
        SNAPSHOT_HEADER_LEN,
        MAX_RELAY_FRAME,
        write_snapshot_header,
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_common::relay::desktop::{BinaryKind, FLAG_MORE};

    #[test]
    fn a_png_decodes_to_the_frame() {
        let frame = Frame::filled(33, 20, [12, 34, 56]);
        let bytes = png(&frame).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (33, 20));
        assert_eq!(&pixels[..3], &[12, 34, 56]);
        assert_eq!(pixels[..info.buffer_size()], frame.to_rgb()[..]);
    }

    #[test]
    fn big_snapshots_are_split() {
        let png = vec![7u8; MAX_RELAY_FRAME + 10];
        let messages = snapshot_messages(&png);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0][0], BinaryKind::Snapshot as u8);
        assert_eq!(messages[0][1] & FLAG_MORE, FLAG_MORE);
        assert_eq!(messages[1][1] & FLAG_MORE, 0);
        let joined: usize = messages.iter().map(|m| m.len() - SNAPSHOT_HEADER_LEN).sum();
        assert_eq!(joined, png.len());
    }
}
