//! Connecting to an X server with the cookie from a given `Xauthority` file. x11rb reads only the
//! file `$XAUTHORITY` names, and changing the agent's environment while it runs threads is not
//! sound; so the file is read here and the cookie handed to x11rb's connection directly.
//!
//! The file is a list of entries, each `family: u16 BE` then four strings (address, display
//! number, auth name, auth data), each `length: u16 BE` and bytes (libXau's format).

use std::path::Path;

use x11rb::errors::ConnectError;
use x11rb::reexports::x11rb_protocol::parse_display::parse_display;
use x11rb::reexports::x11rb_protocol::xauth::Family;
use x11rb::rust_connection::{DefaultStream, RustConnection};

/// The only scheme X servers use in practice.
const MIT_MAGIC_COOKIE: &[u8] = b"MIT-MAGIC-COOKIE-1";
const FAMILY_WILD: u16 = 65535;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub family: u16,
    pub address: Vec<u8>,
    pub number: Vec<u8>,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
}

/// The entries of an `Xauthority` file; a broken tail ends the list.
pub(super) fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0;
    let u16_at = |at: &mut usize| -> Option<u16> {
        let value = bytes.get(*at..*at + 2)?;
        *at += 2;
        Some(u16::from_be_bytes([value[0], value[1]]))
    };
    while let Some(family) = u16_at(&mut at) {
        let mut strings = Vec::with_capacity(4);
        for _ in 0..4 {
            let Some(len) = u16_at(&mut at) else {
                return out;
            };
            let Some(text) = bytes.get(at..at + usize::from(len)) else {
                return out;
            };
            strings.push(text.to_vec());
            at += usize::from(len);
        }
        let [address, number, name, data] = <[Vec<u8>; 4]>::try_from(strings).unwrap_or_default();
        out.push(Entry {
            family,
            address,
            number,
            name,
            data,
        });
    }
    out
}

/// The cookie for display number `display` reached at (`family`, `address`), libXau's rule: a
/// wildcard entry, or one for that family and address; for that display number or any.
pub(super) fn cookie_for(
    entries: &[Entry],
    family: Family,
    address: &[u8],
    display: u16,
) -> Option<Vec<u8>> {
    let number = display.to_string();
    entries
        .iter()
        .find(|e| {
            let place = e.family == FAMILY_WILD
                || (Family::from(e.family) == family && e.address == address);
            let number_ok = e.number.is_empty() || e.number == number.as_bytes();
            place && number_ok && e.name == MIT_MAGIC_COOKIE
        })
        .map(|e| e.data.clone())
}

/// As `x11rb::connect`, with the cookie from `file`.
pub(super) fn connect_with_file(
    display: &str,
    file: &Path,
) -> Result<(RustConnection, usize), ConnectError> {
    let parsed = parse_display(Some(display))?;
    let screen = usize::from(parsed.screen);
    let entries = std::fs::read(file).map(|b| entries(&b)).unwrap_or_default();
    let mut last = None;
    for address in parsed.connect_instruction() {
        match DefaultStream::connect(&address) {
            Ok((stream, (family, peer))) => {
                let (name, data) = match cookie_for(&entries, family, &peer, parsed.display) {
                    Some(cookie) => (MIT_MAGIC_COOKIE.to_vec(), cookie),
                    None => (Vec::new(), Vec::new()),
                };
                let connection =
                    RustConnection::connect_to_stream_with_auth_info(stream, screen, name, data)?;
                return Ok((connection, screen));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or(ConnectError::UnknownError, ConnectError::IoError))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry in the file format.
    pub(crate) fn entry_bytes(family: u16, address: &[u8], number: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = family.to_be_bytes().to_vec();
        for part in [address, number, MIT_MAGIC_COOKIE, data] {
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn entries_are_read_and_matched_as_libxau_does() {
        let mut file = entry_bytes(256, b"host", b"1", &[1; 16]);
        file.extend(entry_bytes(256, b"host", b"0", &[2; 16]));
        file.extend(entry_bytes(FAMILY_WILD, b"", b"", &[3; 16]));
        file.extend([0, 1, 0]); // a broken tail
        let read = entries(&file);
        assert_eq!(read.len(), 3);
        let local = Family::LOCAL;
        assert_eq!(cookie_for(&read, local, b"host", 0), Some(vec![2; 16]));
        assert_eq!(cookie_for(&read, local, b"host", 1), Some(vec![1; 16]));
        assert_eq!(
            cookie_for(&read, local, b"other", 0),
            Some(vec![3; 16]),
            "the wildcard"
        );
        assert_eq!(cookie_for(&read[..2], local, b"other", 0), None);
    }

    #[test]
    fn an_x_server_that_asks_for_a_cookie_admits_the_one_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cookie");
        let cookie: [u8; 16] = rand::random();
        std::fs::write(&file, entry_bytes(FAMILY_WILD, b"", b"", &cookie)).unwrap();
        let Some(xvfb) =
            xprobe::Xvfb::start_with(320, 240, &["-auth", &file.display().to_string()])
        else {
            return;
        };
        // Without the cookie (this test's own $XAUTHORITY, if any, has none for it): refused.
        let wrong = dir.path().join("wrong");
        std::fs::write(&wrong, entry_bytes(FAMILY_WILD, b"", b"", &[0; 16])).unwrap();
        assert!(connect_with_file(&xvfb.display, &wrong).is_err());
        let (connection, screen) = connect_with_file(&xvfb.display, &file).expect("admitted");
        use x11rb::connection::Connection;
        assert_eq!(connection.setup().roots[screen].width_in_pixels, 320);
    }
}
