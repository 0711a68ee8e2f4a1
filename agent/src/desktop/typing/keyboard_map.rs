//! The core keyboard mapping as the typist reads it: which keysyms each keycode types at each
//! level and group, which keycodes are free to borrow, and which keys are modifiers.

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::{ConnectionExt as _, Keycode};

use crate::desktop::keysyms::{self, NO_SYMBOL};

/// Rows of the modifier mapping (core protocol order).
pub(super) const SHIFT_ROW: usize = 0;
const LOCK_ROW: usize = 1;

/// The core keyboard mapping: keysyms per keycode and the keycodes of each modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyboardMap {
    min_keycode: Keycode,
    per_keycode: usize,
    keysyms: Vec<u32>,
    /// Eight rows (Shift, Lock, Control, Mod1…Mod5); 0 marks an unused slot.
    modifiers: Vec<Vec<Keycode>>,
}

/// Where a keysym is on the keyboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyPlace {
    pub keycode: Keycode,
    /// Level 2 (Shift) rather than level 1.
    pub shifted: bool,
    /// The key's two levels are a lower/upper-case pair, so Caps Lock swaps them.
    pub alphabetic: bool,
}

impl KeyboardMap {
    pub(super) fn fetch(conn: &impl Connection) -> Result<KeyboardMap, ReplyError> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let mapping = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        let modifiers = conn.get_modifier_mapping()?.reply()?;
        let per_modifier = usize::from(modifiers.keycodes_per_modifier()).max(1);
        Ok(KeyboardMap::new(
            min,
            usize::from(mapping.keysyms_per_keycode),
            mapping.keysyms,
            modifiers
                .keycodes
                .chunks(per_modifier)
                .map(<[u8]>::to_vec)
                .collect(),
        ))
    }

    pub(super) fn new(
        min_keycode: Keycode,
        per_keycode: usize,
        keysyms: Vec<u32>,
        modifiers: Vec<Vec<Keycode>>,
    ) -> KeyboardMap {
        KeyboardMap {
            min_keycode,
            per_keycode: per_keycode.max(1),
            keysyms,
            modifiers,
        }
    }

    /// The keysyms of one keycode (empty outside the mapping).
    pub(super) fn row(&self, keycode: Keycode) -> &[u32] {
        let Some(index) = keycode.checked_sub(self.min_keycode) else {
            return &[];
        };
        let start = usize::from(index) * self.per_keycode;
        self.keysyms
            .get(start..start + self.per_keycode)
            .unwrap_or(&[])
    }

    fn keycodes(&self) -> impl Iterator<Item = Keycode> + '_ {
        let count = self.keysyms.len() / self.per_keycode;
        (0..count).filter_map(|index| u8::try_from(usize::from(self.min_keycode) + index).ok())
    }

    /// Keycodes with no symbol at all: free to borrow. Highest first, away from real keys.
    pub(super) fn free_keycodes(&self) -> Vec<Keycode> {
        let mut free: Vec<Keycode> = self
            .keycodes()
            .filter(|&keycode| self.row(keycode).iter().all(|&sym| sym == NO_SYMBOL))
            .collect();
        free.reverse();
        free
    }

    /// The first key typing one of `wanted` (best first) in `group` (0 or 1; other groups are
    /// searched as group 0), preferring level 1 over level 2.
    pub(super) fn locate(&self, wanted: &[u32], group: u8) -> Option<KeyPlace> {
        let base = if group == 1 { 2 } else { 0 };
        for &keysym in wanted {
            for shifted in [false, true] {
                for keycode in self.keycodes() {
                    let levels = self.levels(keycode, base);
                    let at = if shifted { levels[1] } else { levels[0] };
                    if at == keysym && keysym != NO_SYMBOL {
                        return Some(KeyPlace {
                            keycode,
                            shifted,
                            alphabetic: is_case_pair(levels[0], levels[1]),
                        });
                    }
                }
            }
        }
        None
    }

    /// Level 1 and 2 of a key in the group whose symbols start at `base`, with the core
    /// protocol's rules: a missing level 2 repeats level 1, an empty group falls back to group 1.
    fn levels(&self, keycode: Keycode, base: usize) -> [u32; 2] {
        let row = self.row(keycode);
        let get = |index: usize| row.get(index).copied().unwrap_or(NO_SYMBOL);
        let (mut first, mut second) = (get(base), get(base + 1));
        if first == NO_SYMBOL && second == NO_SYMBOL && base != 0 {
            (first, second) = (get(0), get(1));
        }
        if second == NO_SYMBOL {
            second = first;
        }
        [first, second]
    }

    /// The keycodes bound to a modifier row (Shift = 0, Lock = 1, …).
    pub(super) fn modifier_keys(&self, row: usize) -> impl Iterator<Item = Keycode> + '_ {
        self.modifiers
            .get(row)
            .into_iter()
            .flatten()
            .copied()
            .filter(|&keycode| keycode != 0)
    }

    /// The keys of every modifier except Lock (which latches rather than being held).
    pub(super) fn held_modifier_keys(&self) -> impl Iterator<Item = Keycode> + '_ {
        (0..self.modifiers.len())
            .filter(|&row| row != LOCK_ROW)
            .flat_map(|row| self.modifier_keys(row))
    }
}

fn is_case_pair(lower: u32, upper: u32) -> bool {
    match (
        keysyms::char_for_keysym(lower),
        keysyms::char_for_keysym(upper),
    ) {
        (Some(lower), Some(upper)) if lower != upper => {
            lower.to_uppercase().eq(std::iter::once(upper))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// keycodes 10..: a/A, 1/!, ä/Ä only in group 2, a free key, Shift_L.
    fn sample() -> KeyboardMap {
        let rows: [[u32; 4]; 5] = [
            [0x61, 0x41, 0, 0],
            [0x31, 0x21, 0, 0],
            [0x71, 0x51, 0xe4, 0xc4],
            [0, 0, 0, 0],
            [0xffe1, 0, 0, 0], // Shift_L
        ];
        KeyboardMap::new(10, 4, rows.concat(), vec![vec![14, 0], vec![0, 0]])
    }

    #[test]
    fn characters_are_found_at_their_level() {
        let map = sample();
        let place = |c: char, group| map.locate(&keysyms::keysyms_for_char(c), group);
        assert_eq!(
            place('a', 0),
            Some(KeyPlace {
                keycode: 10,
                shifted: false,
                alphabetic: true
            })
        );
        assert_eq!(
            place('A', 0),
            Some(KeyPlace {
                keycode: 10,
                shifted: true,
                alphabetic: true
            })
        );
        let bang = place('!', 0).unwrap();
        assert!(
            bang.shifted && !bang.alphabetic,
            "1/! is no case pair: Caps Lock leaves it"
        );
        assert_eq!(
            place('ä', 0),
            None,
            "group 2 is not searched while group 1 is active"
        );
        assert_eq!(place('ä', 1).map(|p| p.keycode), Some(12));
        assert_eq!(
            place('a', 1).map(|p| p.keycode),
            Some(10),
            "an empty group 2 falls back"
        );
        assert_eq!(place('€', 0), None);
    }

    #[test]
    fn free_keycodes_have_no_symbols_and_modifiers_are_listed() {
        let map = sample();
        assert_eq!(map.free_keycodes(), vec![13]);
        assert_eq!(map.modifier_keys(SHIFT_ROW).collect::<Vec<_>>(), vec![14]);
        assert_eq!(map.held_modifier_keys().collect::<Vec<_>>(), vec![14]);
        assert!(map.row(9).is_empty() && map.row(15).is_empty());
    }

    #[test]
    fn case_pairs_are_letters_only() {
        assert!(is_case_pair(0x61, 0x41));
        assert!(is_case_pair(0x6d6, 0x6f6), "ж/Ж");
        assert!(!is_case_pair(0x31, 0x21));
        assert!(!is_case_pair(0x61, 0x61));
    }
}
