//! The bench's results: a list of figures, each with a value per column
//! (ours, the shell-loop floor, each peer), printed as a text table and
//! written as Markdown and JSON.
//!
//! Only this module knows the output formats; the measuring code calls
//! [`Report::set`] and nothing else. A figure that could not be measured
//! holds the reason instead of a number, shown as `–` in the tables and
//! listed under them.

use std::fmt::Write;

/// The columns, in order. The peers' ratios (peer/ours) follow them.
pub const COLUMNS: [&str; 5] = ["ours", "floor", "runit", "s6", "supervisord"];
const PEER_COLUMNS: [&str; 3] = ["runit", "s6", "supervisord"];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    Ms,
    KiB,
    Count,
    Percent,
    Bytes,
    PerSec,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::KiB => "KiB",
            Unit::Count => "",
            Unit::Percent => "% of a core",
            Unit::Bytes => "bytes",
            Unit::PerSec => "/s",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Ms | Unit::Percent | Unit::PerSec if value < 10.0 => format!("{value:.2}"),
            Unit::Ms | Unit::Percent | Unit::PerSec if value < 100.0 => format!("{value:.1}"),
            _ => format!("{value:.0}"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum Value {
    Num(f64),
    Missing(String),
}

pub struct Figure {
    pub section: &'static str,
    pub key: String,
    pub label: String,
    pub unit: Unit,
    /// Indexed like [`COLUMNS`].
    pub values: [Option<Value>; 5],
}

impl Figure {
    fn value(&self, column: &str) -> Option<&Value> {
        self.values[COLUMNS.iter().position(|c| *c == column).unwrap()].as_ref()
    }

    fn cell(&self, column: &str) -> String {
        match self.value(column) {
            Some(Value::Num(v)) => self.unit.format(*v),
            Some(Value::Missing(_)) => "–".into(),
            None => String::new(),
        }
    }

    fn ratio(&self, peer: &str) -> Option<f64> {
        match (self.value("ours"), self.value(peer)) {
            (Some(Value::Num(ours)), Some(Value::Num(peer))) if *ours > 0.0 => Some(peer / ours),
            (Some(Value::Num(_)), Some(Value::Num(peer))) if *peer == 0.0 => Some(1.0),
            (Some(Value::Num(_)), Some(Value::Num(_))) => Some(f64::INFINITY),
            _ => None,
        }
    }

    fn ratio_cell(&self, peer: &str) -> String {
        match self.ratio(peer) {
            Some(r) if r.is_infinite() => "∞ (ours 0)".into(),
            Some(r) if r >= 100.0 => format!("{r:.0}×"),
            Some(r) if r >= 10.0 => format!("{r:.1}×"),
            Some(r) => format!("{r:.2}×"),
            None => String::new(),
        }
    }

    fn title(&self) -> String {
        match self.unit.name() {
            "" => self.label.clone(),
            unit => format!("{} ({unit})", self.label),
        }
    }
}

/// Where and on what the bench ran.
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    /// The load averages at the start and at the end of the run.
    pub load: String,
}

#[derive(Default)]
pub struct Report {
    pub figures: Vec<Figure>,
    /// How the figures were taken: one sentence each.
    pub method: Vec<String>,
    /// What looked wrong, or could not be measured.
    pub notes: Vec<String>,
    /// The settings, as `key = value`.
    pub settings: Vec<(String, String)>,
    pub mode: String,
}

impl Report {
    /// Sets one cell, creating the figure (by `key`) on first use.
    pub fn set(&mut self, section: &'static str, key: &str, label: &str, unit: Unit, column: &str, value: Value) {
        let index = COLUMNS.iter().position(|c| *c == column).expect("a known column");
        let at = match self.figures.iter().position(|f| f.key == key) {
            Some(at) => at,
            None => {
                self.figures.push(Figure {
                    section,
                    key: key.to_string(),
                    label: label.to_string(),
                    unit,
                    values: Default::default(),
                });
                self.figures.len() - 1
            }
        };
        self.figures[at].values[index] = Some(value);
    }

    pub fn num(&mut self, section: &'static str, key: &str, label: &str, unit: Unit, column: &str, value: f64) {
        self.set(section, key, label, unit, column, Value::Num(value));
    }

    /// The figures with no number for ours: what a smoke run fails on.
    pub fn unmeasured(&self) -> Vec<String> {
        self.figures
            .iter()
            .filter(|f| {
                !matches!(f.value("ours"), Some(Value::Num(_))) && !matches!(f.value("floor"), Some(Value::Num(_)))
            })
            .map(|f| f.key.clone())
            .collect()
    }

    /// The columns that hold any value in a section.
    fn columns(&self, section: &str) -> Vec<&'static str> {
        let figures = || self.figures.iter().filter(|f| f.section == section);
        COLUMNS.into_iter().filter(|c| figures().any(|f| f.value(c).is_some())).collect()
    }

    fn sections(&self) -> Vec<&'static str> {
        let mut sections: Vec<&'static str> = Vec::new();
        for figure in &self.figures {
            if !sections.contains(&figure.section) {
                sections.push(figure.section);
            }
        }
        sections
    }

    /// The header row and the rows of one section, as cells.
    fn rows(&self, section: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let columns = self.columns(section);
        let peers: Vec<&str> = PEER_COLUMNS.into_iter().filter(|p| columns.contains(p)).collect();
        let mut header = vec![section.to_string()];
        header.extend(columns.iter().map(|c| c.to_string()));
        header.extend(peers.iter().map(|p| format!("{p}/ours")));
        let rows = self
            .figures
            .iter()
            .filter(|f| f.section == section)
            .map(|f| {
                let mut row = vec![f.title()];
                row.extend(columns.iter().map(|c| f.cell(c)));
                row.extend(peers.iter().map(|p| f.ratio_cell(p)));
                row
            })
            .collect();
        (header, rows)
    }

    /// Every reason a cell is missing, once each.
    fn missing(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for figure in &self.figures {
            for (column, value) in COLUMNS.iter().zip(&figure.values) {
                if let Some(Value::Missing(why)) = value {
                    let line = format!("{column}: {why}");
                    if !reasons.contains(&line) {
                        reasons.push(line);
                    }
                }
            }
        }
        reasons
    }

    /// The text table for the terminal.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for section in self.sections() {
            let (header, rows) = self.rows(section);
            let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let mut line = String::new();
                for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                    let pad = " ".repeat(w - cell.chars().count());
                    if i == 0 {
                        let _ = write!(line, "{cell}{pad}");
                    } else {
                        let _ = write!(line, "  {pad}{cell}");
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
            out.push('\n');
        }
        for line in self.missing().iter().chain(&self.notes) {
            let _ = writeln!(out, "note: {line}");
        }
        out
    }

    pub fn markdown(&self, machine: &Machine) -> String {
        let mut md = String::from("# Benchmarks\n\n");
        md.push_str(
            "Measured by `cargo xtask bench` (xtask/src/bench.rs); regenerate with `cargo xtask bench --peers`.\n\n",
        );
        let _ = writeln!(
            md,
            "- date: {}\n- machine: {} CPU(s), {}, Linux {}\n- load average: {}\n- run: {}\n",
            machine.date, machine.nproc, machine.cpu, machine.kernel, machine.load, self.mode
        );
        for section in self.sections() {
            let (header, rows) = self.rows(section);
            let _ = writeln!(md, "## {section}\n");
            let _ = writeln!(md, "| {} |", header.join(" | "));
            let _ = writeln!(
                md,
                "|{}",
                header.iter().enumerate().map(|(i, _)| if i == 0 { "---|" } else { "---:|" }).collect::<String>()
            );
            for row in rows {
                let _ = writeln!(md, "| {} |", row.join(" | "));
            }
            md.push('\n');
        }
        let missing = self.missing();
        if !missing.is_empty() || !self.notes.is_empty() {
            md.push_str("## Notes\n\n");
            for line in missing.iter().chain(&self.notes) {
                let _ = writeln!(md, "- {line}");
            }
            md.push('\n');
        }
        md.push_str("## Method\n\n");
        for line in &self.method {
            let _ = writeln!(md, "- {line}");
        }
        md.push_str("\nSettings: ");
        md.push_str(&self.settings.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join(", "));
        md.push('\n');
        md
    }

    pub fn json(&self, machine: &Machine) -> String {
        let mut json = String::from("{\n");
        let _ = writeln!(json, "  \"date\": {},", quote(&machine.date));
        let _ = writeln!(
            json,
            "  \"machine\": {{\"nproc\": {}, \"cpu\": {}, \"kernel\": {}, \"load\": {}}},",
            machine.nproc,
            quote(&machine.cpu),
            quote(&machine.kernel),
            quote(&machine.load)
        );
        let _ = writeln!(json, "  \"mode\": {},", quote(&self.mode));
        let settings: Vec<String> = self.settings.iter().map(|(k, v)| format!("{}: {}", quote(k), quote(v))).collect();
        let _ = writeln!(json, "  \"settings\": {{{}}},", settings.join(", "));
        let list = |items: &[String]| items.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
        let _ = writeln!(json, "  \"method\": [{}],", list(&self.method));
        let _ = writeln!(json, "  \"notes\": [{}],", list(&self.notes));
        json.push_str("  \"figures\": [\n");
        for (n, figure) in self.figures.iter().enumerate() {
            let mut values = Vec::new();
            let mut missing = Vec::new();
            for (column, value) in COLUMNS.iter().zip(&figure.values) {
                match value {
                    Some(Value::Num(v)) => values.push(format!("{}: {}", quote(column), number(*v))),
                    Some(Value::Missing(why)) => {
                        values.push(format!("{}: null", quote(column)));
                        missing.push(format!("{}: {}", quote(column), quote(why)));
                    }
                    None => {}
                }
            }
            let _ = write!(
                json,
                "    {{\"section\": {}, \"key\": {}, \"label\": {}, \"unit\": {}, \"values\": {{{}}}, \"missing\": {{{}}}}}",
                quote(figure.section),
                quote(&figure.key),
                quote(&figure.label),
                quote(figure.unit.name()),
                values.join(", "),
                missing.join(", ")
            );
            json.push_str(if n + 1 < self.figures.len() { ",\n" } else { "\n" });
        }
        json.push_str("  ]\n}\n");
        json
    }
}

fn number(v: f64) -> String {
    if v.is_finite() { format!("{}", (v * 1000.0).round() / 1000.0) } else { "null".into() }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut report = Report { mode: "test".into(), ..Report::default() };
        report.num("Restart", "restart.p50", "restart p50", Unit::Ms, "ours", 2.0);
        report.num("Restart", "restart.p50", "restart p50", Unit::Ms, "runit", 5.0);
        report.set("Restart", "restart.p50", "restart p50", Unit::Ms, "s6", Value::Missing("not installed".into()));
        report.num("Size", "size", "size \"host\"", Unit::Bytes, "ours", 826408.0);
        report
    }

    #[test]
    fn a_ratio_is_peer_over_ours() {
        let report = sample();
        assert_eq!(report.figures[0].ratio_cell("runit"), "2.50×");
        assert_eq!(report.figures[0].ratio_cell("s6"), "");
        let text = report.text();
        assert!(text.contains("runit/ours"), "{text}");
        assert!(text.contains("note: s6: not installed"), "{text}");
    }

    #[test]
    fn json_is_escaped_and_missing_values_are_null() {
        let machine = Machine { date: "d".into(), nproc: 2, cpu: "c".into(), kernel: "k".into(), load: "0".into() };
        let json = sample().json(&machine);
        assert!(json.contains("\"size \\\"host\\\"\""), "{json}");
        assert!(json.contains("\"s6\": null"), "{json}");
        assert!(json.contains("\"ours\": 826408"), "{json}");
    }
}
