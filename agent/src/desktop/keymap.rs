//! DOM `KeyboardEvent.code` names → Linux evdev scancodes.
//!
//! A `code` names a physical key position ("the key right of Tab"), not what it types, which is
//! exactly what an evdev scancode is. Xorg and Xvfb use the evdev XKB rules, where the X keycode
//! is the evdev code + 8, so pressing that keycode lets the *remote* layout decide the character,
//! just as if someone pressed that key on the remote keyboard.
//!
//! Names follow the UI Events KeyboardEvent code values (W3C), with the older "OSLeft"/"OSRight"
//! that some browsers still send for the Meta keys; numbers follow `linux/input-event-codes.h`.

/// The offset between evdev scancodes and X keycodes under the evdev XKB rules.
pub(super) const X_KEYCODE_OFFSET: u16 = 8;

/// The evdev scancode of the key a DOM `code` names, if we know it.
pub(super) fn evdev_code(dom_code: &str) -> Option<u16> {
    CODES
        .iter()
        .find(|(name, _)| *name == dom_code)
        .map(|(_, code)| *code)
}

/// The X keycode of that key under the evdev rules (`None` if it does not fit in a keycode).
pub(super) fn x_keycode(dom_code: &str) -> Option<u8> {
    evdev_code(dom_code).and_then(|code| u8::try_from(code + X_KEYCODE_OFFSET).ok())
}

/// Every DOM code we map, with its evdev scancode. Aliases (two names, one key) are allowed only
/// where browsers disagree on the name; see the test.
pub(super) const CODES: &[(&str, u16)] = &[
    // Writing system keys, row by row.
    ("Escape", 1),
    ("Digit1", 2),
    ("Digit2", 3),
    ("Digit3", 4),
    ("Digit4", 5),
    ("Digit5", 6),
    ("Digit6", 7),
    ("Digit7", 8),
    ("Digit8", 9),
    ("Digit9", 10),
    ("Digit0", 11),
    ("Minus", 12),
    ("Equal", 13),
    ("Backspace", 14),
    ("Tab", 15),
    ("KeyQ", 16),
    ("KeyW", 17),
    ("KeyE", 18),
    ("KeyR", 19),
    ("KeyT", 20),
    ("KeyY", 21),
    ("KeyU", 22),
    ("KeyI", 23),
    ("KeyO", 24),
    ("KeyP", 25),
    ("BracketLeft", 26),
    ("BracketRight", 27),
    ("Enter", 28),
    ("ControlLeft", 29),
    ("KeyA", 30),
    ("KeyS", 31),
    ("KeyD", 32),
    ("KeyF", 33),
    ("KeyG", 34),
    ("KeyH", 35),
    ("KeyJ", 36),
    ("KeyK", 37),
    ("KeyL", 38),
    ("Semicolon", 39),
    ("Quote", 40),
    ("Backquote", 41),
    ("ShiftLeft", 42),
    ("Backslash", 43),
    ("KeyZ", 44),
    ("KeyX", 45),
    ("KeyC", 46),
    ("KeyV", 47),
    ("KeyB", 48),
    ("KeyN", 49),
    ("KeyM", 50),
    ("Comma", 51),
    ("Period", 52),
    ("Slash", 53),
    ("ShiftRight", 54),
    ("NumpadMultiply", 55),
    ("AltLeft", 56),
    ("Space", 57),
    ("CapsLock", 58),
    ("F1", 59),
    ("F2", 60),
    ("F3", 61),
    ("F4", 62),
    ("F5", 63),
    ("F6", 64),
    ("F7", 65),
    ("F8", 66),
    ("F9", 67),
    ("F10", 68),
    ("NumLock", 69),
    ("ScrollLock", 70),
    ("Numpad7", 71),
    ("Numpad8", 72),
    ("Numpad9", 73),
    ("NumpadSubtract", 74),
    ("Numpad4", 75),
    ("Numpad5", 76),
    ("Numpad6", 77),
    ("NumpadAdd", 78),
    ("Numpad1", 79),
    ("Numpad2", 80),
    ("Numpad3", 81),
    ("Numpad0", 82),
    ("NumpadDecimal", 83),
    ("Lang5", 85), // Zenkaku/Hankaku
    ("IntlBackslash", 86),
    ("F11", 87),
    ("F12", 88),
    ("IntlRo", 89),
    ("Lang3", 90), // Katakana
    ("Lang4", 91), // Hiragana
    ("Convert", 92),
    ("KanaMode", 93),
    ("NonConvert", 94),
    ("NumpadEnter", 96),
    ("ControlRight", 97),
    ("NumpadDivide", 98),
    ("PrintScreen", 99),
    ("AltRight", 100),
    ("Home", 102),
    ("ArrowUp", 103),
    ("PageUp", 104),
    ("ArrowLeft", 105),
    ("ArrowRight", 106),
    ("End", 107),
    ("ArrowDown", 108),
    ("PageDown", 109),
    ("Insert", 110),
    ("Delete", 111),
    ("AudioVolumeMute", 113),
    ("AudioVolumeDown", 114),
    ("AudioVolumeUp", 115),
    ("Power", 116),
    ("NumpadEqual", 117),
    ("Pause", 119),
    ("NumpadComma", 121),
    ("Lang1", 122), // Hangul/English
    ("Lang2", 123), // Hanja
    ("IntlYen", 124),
    ("MetaLeft", 125),
    ("OSLeft", 125),
    ("MetaRight", 126),
    ("OSRight", 126),
    ("ContextMenu", 127),
    ("BrowserStop", 128),
    ("Again", 129),
    ("Props", 130),
    ("Undo", 131),
    ("Copy", 133),
    ("Open", 134),
    ("Paste", 135),
    ("Find", 136),
    ("Cut", 137),
    ("Help", 138),
    ("LaunchApp2", 140), // Calculator
    ("Sleep", 142),
    ("WakeUp", 143),
    ("LaunchMail", 155),
    ("BrowserFavorites", 156),
    ("LaunchApp1", 157), // My Computer
    ("BrowserBack", 158),
    ("BrowserForward", 159),
    ("Eject", 161),
    ("MediaTrackNext", 163),
    ("MediaPlayPause", 164),
    ("MediaTrackPrevious", 165),
    ("MediaStop", 166),
    ("BrowserHome", 172),
    ("BrowserRefresh", 173),
    ("NumpadParenLeft", 179),
    ("NumpadParenRight", 180),
    ("F13", 183),
    ("F14", 184),
    ("F15", 185),
    ("F16", 186),
    ("F17", 187),
    ("F18", 188),
    ("F19", 189),
    ("F20", 190),
    ("F21", 191),
    ("F22", 192),
    ("F23", 193),
    ("F24", 194),
    ("BrowserSearch", 217),
    ("MediaSelect", 226),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_keys_a_viewer_sends_most_map_to_their_evdev_numbers() {
        let expected = [
            ("KeyA", 30),
            ("KeyZ", 44),
            ("KeyY", 21),
            ("KeyQ", 16),
            ("Digit1", 2),
            ("Digit0", 11),
            ("ShiftLeft", 42),
            ("ShiftRight", 54),
            ("ControlLeft", 29),
            ("ControlRight", 97),
            ("AltLeft", 56),
            ("AltRight", 100),
            ("MetaLeft", 125),
            ("MetaRight", 126),
            ("Enter", 28),
            ("Escape", 1),
            ("Backspace", 14),
            ("Tab", 15),
            ("Space", 57),
            ("Delete", 111),
            ("Insert", 110),
            ("Home", 102),
            ("End", 107),
            ("PageUp", 104),
            ("PageDown", 109),
            ("ArrowUp", 103),
            ("ArrowDown", 108),
            ("ArrowLeft", 105),
            ("ArrowRight", 106),
            ("F1", 59),
            ("F10", 68),
            ("F11", 87),
            ("F12", 88),
            ("Minus", 12),
            ("Equal", 13),
            ("BracketLeft", 26),
            ("BracketRight", 27),
            ("Backslash", 43),
            ("Semicolon", 39),
            ("Quote", 40),
            ("Backquote", 41),
            ("Comma", 51),
            ("Period", 52),
            ("Slash", 53),
            ("IntlBackslash", 86),
            ("CapsLock", 58),
            ("NumLock", 69),
            ("Numpad0", 82),
            ("Numpad5", 76),
            ("Numpad9", 73),
            ("NumpadEnter", 96),
            ("NumpadDecimal", 83),
            ("NumpadAdd", 78),
            ("NumpadSubtract", 74),
            ("NumpadMultiply", 55),
            ("NumpadDivide", 98),
            ("PrintScreen", 99),
            ("ContextMenu", 127),
        ];
        for (name, code) in expected {
            assert_eq!(evdev_code(name), Some(code), "{name}");
        }
        assert_eq!(
            x_keycode("KeyA"),
            Some(38),
            "'a' is X keycode 38 under evdev"
        );
        assert_eq!(x_keycode("Escape"), Some(9));
        assert_eq!(
            evdev_code("keya"),
            None,
            "names are case-sensitive, as in the DOM"
        );
        assert_eq!(evdev_code("Teleport"), None);
    }

    #[test]
    fn every_letter_digit_and_function_key_is_there() {
        for letter in 'A'..='Z' {
            assert!(evdev_code(&format!("Key{letter}")).is_some(), "Key{letter}");
        }
        for digit in 0..=9 {
            assert!(evdev_code(&format!("Digit{digit}")).is_some());
            assert!(evdev_code(&format!("Numpad{digit}")).is_some());
        }
        for f in 1..=24 {
            assert!(evdev_code(&format!("F{f}")).is_some(), "F{f}");
        }
    }

    #[test]
    fn names_are_unique_and_keys_have_one_name_except_known_aliases() {
        let mut by_code: HashMap<u16, Vec<&str>> = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for (name, code) in CODES {
            assert!(names.insert(*name), "{name} is listed twice");
            assert!(x_keycode(name).is_some(), "{name} must fit in an X keycode");
            by_code.entry(*code).or_default().push(name);
        }
        for (code, names) in by_code {
            if names.len() > 1 {
                let mut names = names.clone();
                names.sort();
                let allowed = [vec!["MetaLeft", "OSLeft"], vec!["MetaRight", "OSRight"]];
                assert!(allowed.contains(&names), "evdev {code} has names {names:?}");
            }
        }
    }
}
