//! How results are printed: aligned columns for people, JSON for scripts,
//! times as RFC 3339 (UTC) and ages as `1h 2m 3s`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    std::io::stdout()
        .lock()
        .write_all(render(header, rows).as_bytes())
}

/// Prints one line on stdout; an error (a closed pipe) is returned.
pub(crate) fn line(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")
}

fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Prints `value` as pretty JSON.
pub(crate) fn json(value: &impl Serialize) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    line(format_args!("{}", serde_json::to_string_pretty(value)?))?;
    Ok(())
}

/// `t` in RFC 3339, UTC, with milliseconds.
pub(crate) fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// How long ago `t` was, in whole seconds (0 for a time in the future).
pub(crate) fn age(t: SystemTime) -> Duration {
    let age = SystemTime::now().duration_since(t).unwrap_or_default();
    Duration::from_secs(age.as_secs())
}

/// A duration as people read it (`1h 2m 3s`).
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// An optional cell: `-` when absent.
pub(crate) fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["emails".to_owned(), "12".to_owned(), "no".to_owned()],
            vec!["q".to_owned(), "3".to_owned(), "yes".to_owned()],
        ];
        assert_eq!(
            render(&["QUEUE", "DEPTH", "PAUSED"], &rows),
            "QUEUE   DEPTH  PAUSED\nemails  12     no\nq       3      yes\n"
        );
    }
}
