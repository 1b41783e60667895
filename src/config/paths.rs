//! What `check` finds on the filesystem, beyond the file's own rules: the
//! paths a config names that can never work on this machine. A file the
//! daemon must create whose directory lies on a read-only filesystem, or
//! whose path runs through a regular file; a `working_directory` that does
//! not exist. Missing directories are no problem: the daemon makes them.
//!
//! Only `check` asks. `load` (and so `start` and `reload`) judges the file
//! alone, because a directory may well appear between a check and a start
//! (a tmpfs mounted later at boot, a package installed), and a reload must
//! not be refused for the state of a disk.

use std::io;
use std::path::Path;

use super::checker::{TableRef, value_span};
use super::{Config, Problem, line_col};
use crate::capture::Sink;
use crate::msg;
use toml_edit::Document;

/// Every path of `config` that cannot work, located at the key that names
/// it (or at the file, for a path no key names: a default).
pub fn problems(config: &Config) -> Vec<Problem> {
    let text = std::fs::read_to_string(&config.path).unwrap_or_default();
    let doc = Document::parse(text.as_str()).ok();
    let root = doc.as_ref().map(|d| d.as_table());
    let mut problems = Vec::new();
    let mut report = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map_or((0, 0), |s| line_col(&text, s.start));
        problems.push(Problem { file: None, line, column, message });
    };

    let daemon = root.and_then(|r| r.get("daemon")).and_then(TableRef::of);
    let key_span = |key: &str| daemon.and_then(|t| value_span(t, key));
    let d = &config.daemon;
    let log_file = d.log_file.clone().unwrap_or_else(|| d.pid_file.with_extension("log"));
    // A default follows pid_file, so that is where the reader should look.
    for (key, path) in [
        ("pid_file", &d.pid_file),
        ("log_file", &log_file),
        ("control_socket", &d.control_socket),
        ("state_file", &d.state_file),
    ] {
        if let Some(why) = unwritable(path) {
            report(key_span(key).or_else(|| key_span("pid_file")), format!("[daemon] {key}: {why}"));
        }
    }

    let processes: Vec<TableRef<'_>> = match root.and_then(|r| r.get("processes")) {
        Some(item) => match item.as_array_of_tables() {
            Some(tables) => tables.iter().map(TableRef::from).collect(),
            None => item
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_inline_table()).map(TableRef::from).collect())
                .unwrap_or_default(),
        },
        None => Vec::new(),
    };
    for def in &config.services {
        let table =
            processes.iter().copied().find(|t| t.get("name").and_then(|n| n.as_str()) == Some(def.name.as_str()));
        let span = |key: &str| table.and_then(|t| value_span(t, key));
        let cx = format!("[[processes]] {:?}: ", def.name);
        if let Some(dir) = &def.working_directory {
            let why = match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => None,
                Ok(_) => Some("not a directory".to_string()),
                Err(e) => Some(msg::io_error(&e)),
            };
            if let Some(why) = why {
                report(span("working_directory"), format!("{cx}working_directory: {}: {why}", dir.display()));
            }
        }
        if let Some(Sink::File { path, .. }) = &def.capture {
            if let Some(why) = unwritable(path) {
                report(span("log_file"), format!("{cx}log_file: {why}"));
            }
        }
    }
    problems
}

/// Why a file at `path` could never be created or written, or `None`.
/// The daemon creates missing directories, so what counts is the nearest
/// directory that exists: the filesystem it is on, and that no component
/// on the way is something other than a directory.
fn unwritable(path: &Path) -> Option<String> {
    let mut dir = path.parent()?;
    loop {
        match std::fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => return Some(format!("{}: {} is not a directory", path.display(), dir.display())),
            // Missing, or a component higher up is not a directory: look there.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                dir = dir.parent()?;
            }
            Err(e) => return Some(format!("{}: {}", dir.display(), msg::io_error(&e))),
        }
    }
    match crate::sys::read_only(dir) {
        Ok(true) => Some(format!("{}: {} is on a read-only filesystem", path.display(), dir.display())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_through_a_regular_file_is_named() {
        let dir = std::env::temp_dir().join(format!("mi7-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), "").unwrap();
        let why = unwritable(&dir.join("file/sub/x.log")).unwrap();
        assert!(why.ends_with(&format!("{} is not a directory", dir.join("file").display())), "{why}");
        // Missing directories are fine: the daemon makes them.
        assert_eq!(unwritable(&dir.join("missing/deeper/x.log")), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
