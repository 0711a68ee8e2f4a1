//! Printing: aligned tables for people, JSON for scripts.
//!
//! Names, OS strings, event messages, file names and error messages come from the server, and
//! through it from agents and other users; none of it reaches the terminal raw. A control
//! character could be an escape sequence (OSC 52 writes the clipboard, others hide or rewrite
//! what is on screen) and a bidi or invisible character could make one name pass for another, so
//! human output shows them escaped (`\x1b`, `\u{202e}`) and JSON writes them as `\uXXXX`.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that must not reach a terminal as they are: C0 and C1 controls and DEL (escape
/// sequences, carriage returns, backspaces), bidi controls (reordering), and invisible or
/// line-breaking format characters (look-alike names).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

/// `text` with every character [`needs_escape`] written visibly: `\t`, `\n`, `\r`, `\x1b`
/// (other ASCII controls), `\u{202e}` (the rest).
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Human output of several lines: each line made [`printable`], the line breaks kept.
pub(crate) fn printable_lines(text: &str) -> String {
    text.split('\n')
        .map(printable)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Prints human output (see [`printable_lines`]).
pub(crate) fn print_human(text: &str) {
    println!("{}", printable_lines(text));
}

/// Columns separated by two spaces, each as wide as its widest cell (counted in characters).
/// Cells are made [`printable`], so a line break or an escape in one cannot break the table.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| printable(cell).into_owned())
                .collect()
        })
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(width - cell.chars().count() + 2));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints `value` (a typed result, serialized with the wire's camelCase names) as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) {
    let json = serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"could not print the result: {e}\"}}"));
    println!("{}", terminal_safe_json(&json));
}

/// serde_json escapes C0 controls in strings but writes DEL, C1 controls and bidi characters
/// as they are. Each of those becomes its `\uXXXX` escape: the same JSON value, nothing raw on a
/// terminal. (Outside strings, JSON has only ASCII punctuation and whitespace, which are safe; all
/// the characters escaped are in the Basic Multilingual Plane, so one `\uXXXX` each.)
fn terminal_safe_json(json: &str) -> Cow<'_, str> {
    if !json.chars().any(|c| needs_escape(c) && c != '\n') {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs_escape(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `YYYY-MM-DD HH:MM:SS` UTC, or `-` for zero ("never").
pub(crate) fn time_secs(secs: i64) -> String {
    if secs <= 0 {
        return "-".to_owned();
    }
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => secs.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let rows = vec![
            vec!["Office".into(), "3".into()],
            vec!["Lab ü".into(), "12".into()],
        ];
        assert_eq!(
            table(&["NAME", "N"], &rows),
            "NAME    N\nOffice  3\nLab ü   12"
        );
    }

    #[test]
    fn controls_bidi_and_invisible_characters_are_shown_escaped() {
        assert_eq!(printable("plain ü 名前"), "plain ü 名前");
        assert_eq!(printable("a\u{1b}[31mb\u{7}"), "a\\x1b[31mb\\x07");
        assert_eq!(
            printable("\u{1b}]52;c;ZXZpbA==\u{7}"),
            "\\x1b]52;c;ZXZpbA==\\x07"
        );
        assert_eq!(printable("db\u{202e}10-dorp"), "db\\u{202e}10-dorp");
        assert_eq!(printable("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(printable("x\u{9b}y\u{7f}"), "x\\u{9b}y\\x7f");
        assert_eq!(printable("1\t2\r\n3"), "1\\t2\\r\\n3");
        assert_eq!(printable_lines("one\u{1b}\ntwo"), "one\\x1b\ntwo");
    }

    #[test]
    fn table_cells_cannot_carry_escapes_or_line_breaks() {
        let rows = vec![vec!["evil\u{1b}[2K\nline".into(), "ok".into()]];
        let out = table(&["NAME", "N"], &rows);
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert_eq!(out.lines().count(), 2, "{out:?}");
        assert!(out.contains("evil\\x1b[2K\\nline"), "{out:?}");
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw_and_stays_the_same_value() {
        let value = serde_json::json!({
            "name": "a\u{1b}b\u{202e}c\u{9b}d\u{7f}e\u{2066}",
            "fine": "ü 名",
        });
        let raw = serde_json::to_string_pretty(&value).unwrap();
        let safe = terminal_safe_json(&raw);
        assert!(
            !safe.chars().any(|c| needs_escape(c) && c != '\n'),
            "{safe}"
        );
        assert!(safe.contains("ü 名"), "{safe}");
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), value);
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(time_secs(0), "-");
        assert_eq!(time_secs(86_400 + 3661), "1970-01-02 01:01:01");
    }
}
