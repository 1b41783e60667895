//! Fuzzes `state::parse`, the forgiving reader of the state file.
//!
//! Properties: it never panics; the records it read, written back with
//! `state::render`, read back as the same records without a warning; and
//! every warning that names a line names one that exists.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::state;

fuzz_target!(|data: &[u8]| {
    // The daemon reads the file lossily, so any bytes reach the parser.
    let text = String::from_utf8_lossy(data);
    let (records, warnings) = state::parse(&text);
    let n_lines = text.lines().count();
    for warning in &warnings {
        if let Some(rest) = warning.strip_prefix("line ") {
            let number: usize = rest.split(':').next().unwrap().parse().expect("a line number");
            assert!((1..=n_lines).contains(&number), "warning {warning:?} for a text of {n_lines} lines");
        }
    }
    let rendered = state::render(&records);
    let (again, again_warnings) = state::parse(&rendered);
    assert_eq!(again, records, "records changed through render:\n{rendered}");
    assert!(again_warnings.is_empty(), "render wrote what parse warns about: {again_warnings:?}\n{rendered}");
});
