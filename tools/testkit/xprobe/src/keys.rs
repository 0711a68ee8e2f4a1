//! What a key press types: keycode + modifier state → keysym → a character or a name.

use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::ConnectionExt as _;

use crate::keysyms::{self, NO_SYMBOL};

const SHIFT: u16 = 1 << 0;
const LOCK: u16 = 1 << 1;
const ISO_LEVEL3_SHIFT: u32 = 0xfe03;
const MODE_SWITCH: u32 = 0xff7e;

/// The server's keyboard mapping, as the core protocol lists it (with XKB: group 1 levels 1–2,
/// group 2 levels 1–2, group 1 levels 3–4, …).
pub(crate) struct Keyboard {
    min_keycode: u8,
    per_keycode: usize,
    keysyms: Vec<u32>,
    /// The modifier bit that selects level 3 (AltGr), if a key is bound to it.
    level3_mask: u16,
}

impl Keyboard {
    pub(crate) fn fetch(conn: &impl Connection) -> Result<Keyboard, ReplyError> {
        let setup = conn.setup();
        let (min, max) = (setup.min_keycode, setup.max_keycode);
        let mapping = conn.get_keyboard_mapping(min, max - min + 1)?.reply()?;
        let modifiers = conn.get_modifier_mapping()?.reply()?;
        let mut keyboard = Keyboard {
            min_keycode: min,
            per_keycode: usize::from(mapping.keysyms_per_keycode).max(1),
            keysyms: mapping.keysyms,
            level3_mask: 0,
        };
        let per_modifier = usize::from(modifiers.keycodes_per_modifier()).max(1);
        for (bit, row) in modifiers.keycodes.chunks(per_modifier).enumerate() {
            let selects_level3 = row.iter().any(|&keycode| {
                keycode != 0
                    && keyboard
                        .row(keycode)
                        .iter()
                        .any(|&sym| sym == ISO_LEVEL3_SHIFT || sym == MODE_SWITCH)
            });
            if selects_level3 {
                keyboard.level3_mask |= 1 << bit;
            }
        }
        Ok(keyboard)
    }

    fn row(&self, keycode: u8) -> &[u32] {
        let Some(index) = keycode.checked_sub(self.min_keycode) else {
            return &[];
        };
        let start = usize::from(index) * self.per_keycode;
        self.keysyms
            .get(start..start + self.per_keycode)
            .unwrap_or(&[])
    }

    /// The keysym a press of `keycode` in modifier `state` produces.
    pub(crate) fn keysym(&self, keycode: u8, state: u16) -> u32 {
        let row = self.row(keycode);
        let get = |index: usize| row.get(index).copied().unwrap_or(NO_SYMBOL);
        let group = usize::from((state >> 13) & 1);
        let level3 = self.level3_mask != 0 && state & self.level3_mask != 0;
        let mut base = match (group, level3) {
            (0, false) => 0,
            (1, false) => 2,
            (0, true) => 4,
            _ => 6,
        };
        if get(base) == NO_SYMBOL && get(base + 1) == NO_SYMBOL {
            base = if level3 { 4 } else { 0 };
        }
        let first = get(base);
        let second = get(base + 1);
        let lower = keysyms::char_for_keysym(first);
        let alphabetic = lower.is_some_and(|c| c.is_lowercase())
            && (second == NO_SYMBOL
                || keysyms::char_for_keysym(second).is_some_and(|c| c.is_uppercase()));
        let shifted = (state & SHIFT != 0) != (state & LOCK != 0 && alphabetic);
        match (shifted, second) {
            (false, _) => first,
            (true, NO_SYMBOL) => match lower.and_then(|c| c.to_uppercase().next()) {
                Some(upper) if alphabetic => keysyms::keysyms_for_char(upper)[0],
                _ => first,
            },
            (true, second) => second,
        }
    }
}

/// The line xprobe prints for a keysym: the character, or the keysym's name, or its number.
pub(crate) fn describe(keysym: u32) -> String {
    if let Some(c) = keysyms::char_for_keysym(keysym) {
        return c.to_string();
    }
    let named = NAMES.iter().find(|(sym, _)| *sym == keysym);
    match named {
        Some((_, name)) => (*name).to_owned(),
        None if (0xffbe..=0xffd5).contains(&keysym) => format!("F{}", keysym - 0xffbe + 1),
        None => format!("{keysym:#x}"),
    }
}

const NAMES: &[(u32, &str)] = &[
    (0xff08, "BackSpace"),
    (0xff09, "Tab"),
    (0xff0d, "Return"),
    (0xff13, "Pause"),
    (0xff14, "Scroll_Lock"),
    (0xff1b, "Escape"),
    (0xff50, "Home"),
    (0xff51, "Left"),
    (0xff52, "Up"),
    (0xff53, "Right"),
    (0xff54, "Down"),
    (0xff55, "Prior"),
    (0xff56, "Next"),
    (0xff57, "End"),
    (0xff61, "Print"),
    (0xff63, "Insert"),
    (0xff67, "Menu"),
    (0xff7e, "Mode_switch"),
    (0xff7f, "Num_Lock"),
    (0xff8d, "KP_Enter"),
    (0xffe1, "Shift_L"),
    (0xffe2, "Shift_R"),
    (0xffe3, "Control_L"),
    (0xffe4, "Control_R"),
    (0xffe5, "Caps_Lock"),
    (0xffe7, "Meta_L"),
    (0xffe8, "Meta_R"),
    (0xffe9, "Alt_L"),
    (0xffea, "Alt_R"),
    (0xffeb, "Super_L"),
    (0xffec, "Super_R"),
    (0xffff, "Delete"),
    (0xfe03, "ISO_Level3_Shift"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn keyboard(rows: &[[u32; 4]], level3_mask: u16) -> Keyboard {
        Keyboard {
            min_keycode: 8,
            per_keycode: 4,
            keysyms: rows.concat(),
            level3_mask,
        }
    }

    #[test]
    fn shift_and_caps_lock_pick_the_level() {
        let kb = keyboard(
            &[[0x61, 0x41, 0, 0], [0x31, 0x21, 0, 0], [0x7a, 0, 0, 0]],
            0,
        );
        assert_eq!(kb.keysym(8, 0), 0x61);
        assert_eq!(kb.keysym(8, SHIFT), 0x41);
        assert_eq!(kb.keysym(8, LOCK), 0x41);
        assert_eq!(kb.keysym(8, SHIFT | LOCK), 0x61);
        assert_eq!(kb.keysym(9, LOCK), 0x31, "Caps Lock leaves digits alone");
        assert_eq!(kb.keysym(9, SHIFT), 0x21);
        assert_eq!(
            kb.keysym(10, SHIFT),
            0x5a,
            "a lone lower-case letter has an upper case"
        );
    }

    #[test]
    fn keysyms_are_described_as_characters_or_names() {
        assert_eq!(describe(0x61), "a");
        assert_eq!(describe(0x20ac), "€");
        assert_eq!(describe(0xff0d), "Return");
        assert_eq!(describe(0xffbe), "F1");
        assert_eq!(describe(0x1008ff13), "0x1008ff13");
    }
}
