//! Fuzzes `config::parse`, the checker of daemon.toml.
//!
//! Properties: it never panics; an error lists at least one problem, each at
//! a line and column inside the text, with a message of one line (the
//! control socket sends one problem a line, and the client takes a line
//! `ok` for success); a config that loads has unique, valid service names.
//!
//! The config is read as if from a directory that does not exist, so
//! relative paths lead nowhere. Inputs that name `token_file` are skipped:
//! the checker reads that file, and a fuzzer that found `/dev/zero` or a
//! FIFO would hang or exhaust memory rather than find a bug.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::config;

fuzz_target!(|data: &[u8]| {
    // The daemon reads daemon.toml with read_to_string: UTF-8 or nothing.
    let Ok(text) = std::str::from_utf8(data) else { return };
    if text.contains("token_file") {
        return;
    }
    match config::parse(text, Path::new("/nonexistent-mi7soft-fuzz/daemon.toml")) {
        Ok(config) => {
            let mut names: Vec<&str> = config.services.iter().map(|s| s.name.as_str()).collect();
            assert!(names.iter().all(|n| config::valid_name(n)), "invalid name loaded: {names:?}");
            names.sort_unstable();
            let n_names = names.len();
            names.dedup();
            assert_eq!(names.len(), n_names, "duplicate names loaded");
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "an error without a problem");
            let lines: Vec<&str> = text.split('\n').collect();
            for problem in &problems {
                assert!((1..=lines.len()).contains(&problem.line), "{problem:?} in a text of {} lines", lines.len());
                let width = lines[problem.line - 1].chars().count();
                assert!((1..=width + 1).contains(&problem.column), "{problem:?} on a line of {width} characters");
                assert!(!problem.message.is_empty(), "{problem:?} has no message");
                assert!(!problem.message.contains('\n'), "{problem:?} spans lines");
            }
        }
    }
});
