//! Typing characters, whatever the remote keyboard layout.
//!
//! For each character we look for a key that types it in the current keyboard mapping (group 1
//! or the active group, without or with Shift) and press it, with Shift as needed. A character
//! no key types gets a *borrowed* key: a keycode with no symbols, bound to the character's keysym
//! with ChangeKeyboardMapping for as long as we type, then given back.
//!
//! Giving it back at once would race the clients: an X client turns a key event into a keysym
//! *after* the event, with its own copy of the mapping, which it refreshes when it reads the
//! MappingNotify. So borrowed keys are unbound only once typing has been idle for
//! [`RESTORE_AFTER`], and a borrowed key is rebound to another character no sooner than that after
//! its last use.

use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::{ConnectionExt as _, KeyButMask, Keycode, Window};

use super::input::fake_key;
use super::keysyms::{self, NO_SYMBOL};

mod keyboard_map;

use keyboard_map::{KeyboardMap, SHIFT_ROW};

/// How long a borrowed key keeps its character after the last use.
pub(super) const RESTORE_AFTER: Duration = Duration::from_millis(500);

/// A keycode we bound to a keysym for typing.
#[derive(Debug)]
struct Borrowed {
    keycode: Keycode,
    keysym: u32,
    used: Instant,
}

/// Types text through XTest; owned by the input thread.
pub(super) struct Typist {
    map: KeyboardMap,
    stale: bool,
    borrowed: Vec<Borrowed>,
}

impl Typist {
    pub(super) fn new(conn: &impl Connection) -> Result<Typist, ReplyError> {
        Ok(Typist {
            map: KeyboardMap::fetch(conn)?,
            stale: false,
            borrowed: Vec::new(),
        })
    }

    /// A MappingNotify arrived: read the mapping again before the next lookup.
    pub(super) fn mapping_changed(&mut self) {
        self.stale = true;
    }

    /// When the borrowed keys should be given back, if any are borrowed.
    pub(super) fn restore_at(&self) -> Option<Instant> {
        self.borrowed
            .iter()
            .map(|b| b.used)
            .max()
            .map(|used| used + RESTORE_AFTER)
    }

    /// Unbinds every borrowed key.
    pub(super) fn restore(&mut self, conn: &impl Connection) -> Result<(), ReplyError> {
        for borrowed in self.borrowed.drain(..) {
            conn.change_keyboard_mapping(1, borrowed.keycode, 2, &[NO_SYMBOL, NO_SYMBOL])?;
        }
        conn.flush()?;
        Ok(())
    }

    /// Types `text`; returns notices for characters that could not be typed.
    pub(super) fn type_text(
        &mut self,
        conn: &impl Connection,
        root: Window,
        text: &str,
    ) -> Result<Vec<String>, ReplyError> {
        self.refresh(conn)?;
        let mut notices = Vec::new();
        let pointer = conn.query_pointer(root)?.reply()?;
        let state = u16::from(pointer.mask);
        let caps_lock = state & u16::from(KeyButMask::LOCK) != 0;
        let group = ((state >> 13) & 3) as u8;
        // Modifiers the viewer (or someone at the machine) holds would change what our keys
        // type: lift them while typing and put them back after.
        let down = conn.query_keymap()?.reply()?.keys;
        let is_down = |keycode: Keycode| down[usize::from(keycode / 8)] & (1 << (keycode % 8)) != 0;
        let mut lifted: Vec<Keycode> = self
            .map
            .held_modifier_keys()
            .filter(|&k| is_down(k))
            .collect();
        lifted.dedup();
        for &keycode in &lifted {
            fake_key(conn, root, keycode, false)?;
        }
        let shift = self.map.modifier_keys(SHIFT_ROW).next();
        for c in text.chars() {
            let wanted = keysyms::keysyms_for_char(c);
            if wanted.is_empty() {
                notices.push(format!(
                    "cannot type U+{:04X}: no key makes it",
                    u32::from(c)
                ));
                continue;
            }
            let (keycode, with_shift) = match self.reuse_borrowed(&wanted) {
                Some(keycode) => (keycode, false),
                None => match self.map.locate(&wanted, group) {
                    Some(place) if !place.shifted || shift.is_some() => (
                        place.keycode,
                        place.shifted != (caps_lock && place.alphabetic),
                    ),
                    _ => match self.borrow(conn, wanted[0])? {
                        Some(keycode) => (keycode, false),
                        None => {
                            notices.push(format!("cannot type {c:?}: no free key to borrow"));
                            continue;
                        }
                    },
                },
            };
            let shift_key = shift.filter(|_| with_shift);
            if let Some(shift_key) = shift_key {
                fake_key(conn, root, shift_key, true)?;
            }
            fake_key(conn, root, keycode, true)?;
            fake_key(conn, root, keycode, false)?;
            if let Some(shift_key) = shift_key {
                fake_key(conn, root, shift_key, false)?;
            }
        }
        for &keycode in &lifted {
            fake_key(conn, root, keycode, true)?;
        }
        // A round trip: the server has handled every key before the restore clock starts.
        conn.get_input_focus()?.reply()?;
        let now = Instant::now();
        for borrowed in &mut self.borrowed {
            borrowed.used = borrowed.used.max(now);
        }
        Ok(notices)
    }

    fn refresh(&mut self, conn: &impl Connection) -> Result<(), ReplyError> {
        if !self.stale {
            return Ok(());
        }
        self.map = KeyboardMap::fetch(conn)?;
        self.stale = false;
        // Someone else (setxkbmap, a new layout) may have replaced the mapping: a key that no
        // longer holds our binding is not ours to give back.
        let map = &self.map;
        self.borrowed.retain(|b| {
            map.row(b.keycode)
                .iter()
                .all(|&s| s == b.keysym || s == NO_SYMBOL)
        });
        Ok(())
    }

    fn reuse_borrowed(&mut self, wanted: &[u32]) -> Option<Keycode> {
        let borrowed = self
            .borrowed
            .iter_mut()
            .find(|b| wanted.contains(&b.keysym))?;
        borrowed.used = Instant::now();
        Some(borrowed.keycode)
    }

    /// Binds a free keycode (or the least recently used borrowed one) to `keysym`.
    fn borrow(
        &mut self,
        conn: &impl Connection,
        keysym: u32,
    ) -> Result<Option<Keycode>, ReplyError> {
        let free = self
            .map
            .free_keycodes()
            .into_iter()
            .find(|&keycode| self.borrowed.iter().all(|b| b.keycode != keycode));
        let keycode = match free {
            Some(keycode) => keycode,
            None => {
                let Some(oldest) = self.borrowed.iter().min_by_key(|b| b.used) else {
                    return Ok(None);
                };
                let keycode = oldest.keycode;
                let wait = (oldest.used + RESTORE_AFTER).saturating_duration_since(Instant::now());
                // Its last character may still be waiting to be looked up (see the module doc).
                conn.get_input_focus()?.reply()?;
                std::thread::sleep(wait);
                self.borrowed.retain(|b| b.keycode != keycode);
                keycode
            }
        };
        conn.change_keyboard_mapping(1, keycode, 2, &[keysym, keysym])?;
        self.borrowed.push(Borrowed {
            keycode,
            keysym,
            used: Instant::now(),
        });
        Ok(Some(keycode))
    }
}
