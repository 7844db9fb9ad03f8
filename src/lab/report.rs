//! A lab report: one row per variant (strategy or cache), printed as an aligned table, and
//! written as JSON (every figure) and Markdown (the table) when asked.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// A table: headers and rows of cells, all text.
#[derive(Debug, Clone, Serialize)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per header).
    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.headers.len());
        self.rows.push(row);
    }

    /// Columns padded to their widest cell, numbers right-aligned.
    pub fn text(&self) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let numeric = self.numeric_columns();
        let line = |cells: &[String], header: bool| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&numeric)
                .map(|((cell, &w), &numeric)| {
                    let pad = w.saturating_sub(cell.chars().count());
                    if numeric && (header || is_number(cell)) {
                        format!("{}{cell}", " ".repeat(pad))
                    } else {
                        format!("{cell}{}", " ".repeat(pad))
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = line(&self.headers, true);
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(*w))
                .collect::<Vec<_>>()
                .join("  "),
        );
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row, false));
        }
        out.push('\n');
        out
    }

    /// Which columns hold only numbers.
    fn numeric_columns(&self) -> Vec<bool> {
        (0..self.headers.len())
            .map(|i| !self.rows.is_empty() && self.rows.iter().all(|r| is_number(&r[i])))
            .collect()
    }

    /// A GitHub-flavoured Markdown table, numbers right-aligned.
    pub fn markdown(&self) -> String {
        let escape = |c: &str| c.replace('|', "\\|");
        let numeric = self.numeric_columns();
        let mut out = format!(
            "| {} |\n|{}|\n",
            self.headers
                .iter()
                .map(|h| escape(h))
                .collect::<Vec<_>>()
                .join(" | "),
            numeric
                .iter()
                .map(|n| if *n { "---:" } else { "---" })
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                row.iter()
                    .map(|c| escape(c))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        out
    }
}

/// Tells whether a cell reads as a number (`1,234`, `12.5`, `–` for no data).
fn is_number(cell: &str) -> bool {
    cell == "–"
        || (!cell.is_empty()
            && cell
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '%')))
}

/// A figure with `digits` decimals, or `–` when there is none.
pub fn figure(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.digits$}"),
        _ => "–".to_owned(),
    }
}

/// A whole number with thousands separators.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Prints the table under its title with its notes, then writes the report files asked for.
pub fn publish(
    report: &impl Serialize,
    title: &str,
    table: &Table,
    notes: &[String],
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> anyhow::Result<()> {
    println!("\n{title}\n\n{}", table.text());
    for note in notes {
        println!("{note}");
    }
    write(report, title, table, notes, json, markdown)
}

/// Writes the JSON report and the Markdown one where asked.
fn write(
    report: &impl Serialize,
    title: &str,
    table: &Table,
    notes: &[String],
    json: Option<&Path>,
    markdown: Option<&Path>,
) -> anyhow::Result<()> {
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    if let Some(path) = markdown {
        let mut text = format!("## {title}\n\n{}", table.markdown());
        for note in notes {
            text.push_str(&format!("\n- {note}"));
        }
        text.push('\n');
        std::fs::write(path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(&["strategy", "p99 ms", "exact"]);
        t.push(vec!["db-lock".into(), "1,204.5".into(), "yes".into()]);
        t.push(vec!["redis-gate".into(), "98.0".into(), "no".into()]);
        t
    }

    #[test]
    fn text_aligns_words_left_and_numbers_right() {
        let text = table().text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "strategy     p99 ms  exact");
        assert_eq!(lines[1], "----------  -------  -----");
        assert_eq!(lines[2], "db-lock     1,204.5  yes");
        assert_eq!(lines[3], "redis-gate     98.0  no");
    }

    #[test]
    fn markdown_right_aligns_numeric_columns_and_escapes_bars() {
        let mut t = table();
        t.push(vec!["a|b".into(), "–".into(), "yes".into()]);
        let md = t.markdown();
        assert!(
            md.starts_with("| strategy | p99 ms | exact |\n|---|---:|---|\n"),
            "{md}"
        );
        assert!(md.contains("| a\\|b | – | yes |"), "{md}");
    }

    #[test]
    fn figures_and_counts() {
        assert_eq!(figure(Some(1.234), 1), "1.2");
        assert_eq!(figure(None, 1), "–");
        assert_eq!(figure(Some(f64::NAN), 1), "–");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(count(0), "0");
    }
}
