//! `[daemon] include`: drop-in files that hold more `[[processes]]`, so a
//! package can ship its own service (`conf.d/dnsmasq.toml`) without
//! editing the main config, as supervisord's `[include]` and the service
//! directories of runit and s6 allow.
//!
//! A pattern is a path relative to the main config's directory whose last
//! component may hold the wildcards `*`, `?` and `[...]` (with `!` or `^`
//! to negate, and ranges `a-z`); the matcher is the few lines below, not a
//! dependency. A pattern that matches nothing is fine (an empty conf.d), a
//! directory that does not exist is an error (a typo would otherwise drop
//! services silently). Names starting with `.` match only a pattern that
//! does (editors' and package managers' temporaries), and the main config
//! never includes itself. Files are read in sorted order, each once.

use std::path::{Path, PathBuf};

/// An included file: where it is, and its text.
pub(super) struct Included {
    pub(super) path: PathBuf,
    pub(super) text: String,
}

/// The directory part of a pattern (possibly empty) and its last component.
pub(super) fn split(pattern: &str) -> (&str, &str) {
    match pattern.rsplit_once('/') {
        Some((dir, name)) => (if dir.is_empty() { "/" } else { dir }, name),
        None => ("", pattern),
    }
}

pub(super) fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// The files `patterns` name, sorted and each once, with their texts; and
/// what went wrong (a missing directory, an unreadable file).
pub(super) fn read(base: &Path, main: &Path, patterns: &[String]) -> (Vec<Included>, Vec<String>) {
    let mut paths = Vec::new();
    let mut problems = Vec::new();
    for pattern in patterns {
        let (dir, name) = split(pattern);
        let dir = base.join(dir);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                problems.push(format!("[daemon] include: {pattern:?}: {}", crate::msg::path_error(&dir, &e)));
                continue;
            }
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if file_name.starts_with('.') && !name.starts_with('.') {
                continue;
            }
            if !matches(name.as_bytes(), file_name.as_bytes()) {
                continue;
            }
            let path = dir.join(file_name);
            // Directories and sockets are not config files; links to files are.
            if path.is_file() && path != main {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths.dedup();
    let mut files = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(Included { path, text }),
            Err(e) => problems.push(format!("[daemon] include: {}", crate::msg::path_error(&path, &e))),
        }
    }
    (files, problems)
}

/// Whether `name` matches the shell pattern `pattern`: `*` any run of
/// bytes, `?` one byte, `[abc]`, `[a-z]`, `[!a-z]` (or `[^a-z]`) one byte
/// of (or not of) the set; any other byte itself. A `[` without its `]`
/// is an ordinary byte.
pub(super) fn matches(pattern: &[u8], name: &[u8]) -> bool {
    // The classic backtracking over the last `*` only: linear in practice,
    // and never worse than pattern length times name length.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, n));
                p += 1;
                continue;
            }
            Some(b'?') => Some(1),
            Some(b'[') => match class(&pattern[p..], name[n]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (name[n] == b'[').then_some(1),
            },
            Some(&byte) => (byte == name[n]).then_some(1),
            None => None,
        };
        match (step, star) {
            (Some(len), _) => {
                p += len;
                n += 1;
            }
            (None, Some((after, from))) => {
                // Let the last `*` take one more byte and try again.
                p = after;
                n = from + 1;
                star = Some((after, from + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A bracket expression at the start of `pattern` tested on `byte`:
/// whether it matches and the expression's length, or `None` when it is
/// not closed.
fn class(pattern: &[u8], byte: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let c = *pattern.get(i)?;
        if c == b']' && !first {
            return Some((found != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&end| end != b']') {
            let end = pattern[i + 2];
            found |= (c..=end).contains(&byte);
            i += 3;
        } else {
            found |= c == byte;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        matches(pattern.as_bytes(), name.as_bytes())
    }

    #[test]
    fn stars_and_question_marks() {
        assert!(m("*.toml", "dnsmasq.toml"));
        assert!(m("*.toml", ".toml"));
        assert!(!m("*.toml", "dnsmasq.toml~"));
        assert!(!m("*.toml", "dnsmasq.conf"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("??-*.toml", "10-net.toml"));
        assert!(!m("??-*.toml", "1-net.toml"));
        assert!(m("exact.toml", "exact.toml"));
        assert!(!m("exact.toml", "exact.tom"));
        assert!(!m("", "x"));
        assert!(m("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaa"));
    }

    #[test]
    fn bracket_expressions() {
        assert!(m("[0-9][0-9]-*.toml", "10-net.toml"));
        assert!(!m("[0-9][0-9]-*.toml", "1a-net.toml"));
        assert!(m("[!.]*", "web.toml"));
        assert!(!m("[!.]*", ".hidden"));
        assert!(m("[^x]", "y"));
        assert!(m("[]]", "]"));
        assert!(m("[a-]", "-"));
        assert!(m("file[", "file["), "an unclosed [ is itself");
        assert!(!m("[abc]", "d"));
    }

    #[test]
    fn split_keeps_the_directory_apart() {
        assert_eq!(split("conf.d/*.toml"), ("conf.d", "*.toml"));
        assert_eq!(split("*.toml"), ("", "*.toml"));
        assert_eq!(split("/etc/x/*.toml"), ("/etc/x", "*.toml"));
        assert!(has_wildcard("c*") && !has_wildcard("conf.d"));
    }
}
