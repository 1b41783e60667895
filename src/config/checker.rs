//! The machinery every table's checks share: a `Checker` that collects
//! problems located at line and column, the readers of typed values
//! (string, path, boolean, integer, seconds, array of strings) with their
//! "expected X, found Y" messages, unknown keys with a "did you mean"
//! suggestion, and `TableRef`, the one view of both kinds of TOML table.
//!
//! Nothing here knows a key of daemon.toml; the tables' own checks live in
//! `daemon.rs` and `processes.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Problem;
use crate::msg;
use toml_edit::{InlineTable, Item, Table, TableLike, Value};

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One check of one file's text: every problem found is collected here,
/// and relative paths resolve against `base`, the file's directory.
pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) base: &'a Path,
    pub(super) problems: Vec<Problem>,
    /// The file's name in messages when it is an included one; `None` for
    /// the main config (named by `ConfigError::file`).
    pub(super) file: Option<String>,
}

impl Checker<'_> {
    pub(super) fn report(&mut self, span: Option<std::ops::Range<usize>>, message: String) {
        let (line, column) = span.map_or((1, 1), |s| line_col(self.text, s.start));
        self.problems.push(Problem { file: self.file.clone(), line, column, message });
    }

    /// A program to run: a relative path with a slash means "relative to
    /// this file"; a bare name is searched in PATH at spawn time.
    pub(super) fn program(&self, path: String) -> String {
        if path.contains('/') && !path.starts_with('/') { self.base.join(&path).display().to_string() } else { path }
    }

    /// `CONTEXT KEY: expected WHAT, found TYPE`.
    pub(super) fn wrong_type(
        &mut self,
        span: Option<std::ops::Range<usize>>,
        cx: &str,
        key: &str,
        expected: &str,
        found: &str,
    ) {
        self.report(span, format!("{cx}{key}: expected {expected}, found {found}"));
    }

    pub(super) fn unknown_keys(&mut self, table: TableRef<'_>, known: &[&str], context: &str) {
        for (key, _) in table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = table.get_key_value(key).and_then(|(k, _)| k.span());
            let hint = did_you_mean(key, known);
            // {:?} quotes and escapes: a quoted TOML key may hold a newline,
            // and every message must stay one line.
            self.report(span, format!("{context}unknown key {key:?}{hint}"));
        }
    }

    /// A duration in seconds, integer or fractional, at least `min`.
    /// The number is quoted as written, and `min` printed with integers:
    /// formatting an `f64` would link std's float printing (see "Binary
    /// size" in ARCHITECTURE.md).
    pub(super) fn seconds(&mut self, table: TableRef<'_>, key: &str, cx: &str, min: Duration) -> Option<Duration> {
        let item =
            self.value(table, key, cx, "a number of seconds", |i| i.as_integer().is_some() || i.as_float().is_some())?;
        let secs = item.as_float().or_else(|| item.as_integer().map(|n| n as f64))?;
        if !(min.as_secs_f64()..=31_536_000.0).contains(&secs) {
            let written = item.span().and_then(|span| self.text.get(span)).unwrap_or_default().trim();
            let min = msg::seconds(min);
            self.report(item.span(), format!("{cx}{key}: {written} is out of range ({min} to 31536000 seconds)"));
            return None;
        }
        Some(Duration::from_secs_f64(secs))
    }

    pub(super) fn value<'t>(
        &mut self,
        table: TableRef<'t>,
        key: &str,
        cx: &str,
        expected: &str,
        // A function pointer, not a generic: one copy of this for all callers.
        ok: fn(&Item) -> bool,
    ) -> Option<&'t Item> {
        let item = table.get(key)?;
        if ok(item) {
            Some(item)
        } else {
            let span = item.span().or_else(|| table.get_key_value(key).and_then(|(k, _)| k.span()));
            self.wrong_type(span, cx, key, expected, type_name(item));
            None
        }
    }

    pub(super) fn string(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<String> {
        let s = self.value(table, key, cx, "a string", |i| i.is_str())?.as_str()?.to_string();
        if s.contains('\0') {
            self.report(value_span(table, key), format!("{cx}{key}: contains a NUL byte"));
            return None;
        }
        Some(s)
    }

    pub(super) fn path(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<PathBuf> {
        let s = self.string(table, key, cx)?;
        if s.is_empty() {
            self.report(value_span(table, key), format!("{cx}{key}: must not be empty"));
            return None;
        }
        Some(self.base.join(s))
    }

    pub(super) fn boolean(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<bool> {
        self.value(table, key, cx, "true or false", |i| i.as_bool().is_some())?.as_bool()
    }

    pub(super) fn integer(&mut self, table: TableRef<'_>, key: &str, cx: &str, min: i64, max: i64) -> Option<i64> {
        let n = self.value(table, key, cx, "an integer", |i| i.as_integer().is_some())?.as_integer()?;
        if n < min || n > max {
            self.report(value_span(table, key), format!("{cx}{key}: {n} is out of range ({min} to {max})"));
            return None;
        }
        Some(n)
    }

    pub(super) fn strings(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<Vec<String>> {
        let array = self.value(table, key, cx, "an array of strings", |i| i.as_array().is_some())?.as_array()?;
        let mut out = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(s) if !s.contains('\0') => out.push(s.to_string()),
                Some(_) => self.report(value.span(), format!("{cx}{key}: contains a NUL byte")),
                None => self.report(
                    value.span(),
                    format!("{cx}{key}: expected an array of strings, found {} in it", value.type_name()),
                ),
            }
        }
        Some(out)
    }
}

/// A table or an inline table: what toml_edit's `Item::as_table_like`
/// gives as a `&dyn TableLike`, without the trait object. Its vtables would
/// link every method of the trait for both kinds of table, with the
/// editing code and `Debug` impls behind them (see "Binary size" in
/// ARCHITECTURE.md); calls through this enum link only the four we read.
#[derive(Clone, Copy)]
pub(super) enum TableRef<'a> {
    Table(&'a Table),
    Inline(&'a InlineTable),
}

impl<'a> TableRef<'a> {
    pub(super) fn of(item: &'a Item) -> Option<TableRef<'a>> {
        match item {
            Item::Table(t) => Some(TableRef::Table(t)),
            Item::Value(Value::InlineTable(t)) => Some(TableRef::Inline(t)),
            _ => None,
        }
    }

    pub(super) fn get(self, key: &str) -> Option<&'a Item> {
        match self {
            TableRef::Table(t) => TableLike::get(t, key),
            TableRef::Inline(t) => TableLike::get(t, key),
        }
    }

    pub(super) fn get_key_value(self, key: &str) -> Option<(&'a toml_edit::Key, &'a Item)> {
        match self {
            TableRef::Table(t) => TableLike::get_key_value(t, key),
            TableRef::Inline(t) => TableLike::get_key_value(t, key),
        }
    }

    pub(super) fn contains_key(self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(super) fn iter(self) -> toml_edit::Iter<'a> {
        match self {
            TableRef::Table(t) => TableLike::iter(t),
            TableRef::Inline(t) => TableLike::iter(t),
        }
    }
}

impl<'a> From<&'a Table> for TableRef<'a> {
    fn from(table: &'a Table) -> TableRef<'a> {
        TableRef::Table(table)
    }
}

impl<'a> From<&'a InlineTable> for TableRef<'a> {
    fn from(table: &'a InlineTable) -> TableRef<'a> {
        TableRef::Inline(table)
    }
}

pub(super) fn value_span(table: TableRef<'_>, key: &str) -> Option<std::ops::Range<usize>> {
    table.get(key).and_then(Item::span)
}

pub(super) fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => v.type_name(),
        Item::Table(_) => "table",
        Item::ArrayOfTables(_) => "array of tables",
    }
}

/// ` (did you mean "KEY"?)` for the known key closest to `key`, when it is
/// close enough to be a typo; else nothing.
pub(super) fn did_you_mean(key: &str, known: &[&str]) -> String {
    nearest(key, known).map(|k| format!(" (did you mean \"{k}\"?)")).unwrap_or_default()
}

/// The known key closest to `key`, when it is close enough to be a typo.
pub(super) fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        // Close enough to be a typo, and not a mere replacement of the
        // whole word (which would match any short name).
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < key.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
