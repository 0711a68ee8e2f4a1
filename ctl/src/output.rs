//! Printing: aligned tables for people, JSON for scripts.

use serde_json::Value;

/// Columns separated by two spaces, each as wide as its widest cell (counted in characters).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
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

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// `YYYY-MM-DD HH:MM:SS` UTC, or `-` for zero ("never").
pub fn time_secs(secs: i64) -> String {
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

/// A string field of a JSON object, or "" when absent.
pub fn text(value: &Value, field: &str) -> String {
    match value.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn times_are_utc() {
        assert_eq!(time_secs(0), "-");
        assert_eq!(time_secs(86_400 + 3661), "1970-01-02 01:01:01");
    }
}
