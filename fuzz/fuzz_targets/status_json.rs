//! Fuzzes `status::Document::from_json`, the client's reader of the
//! daemon's status document.
//!
//! Properties: it never panics, whatever the bytes (a client may meet a
//! daemon of another version, or a truncated reply); and a document it
//! read, written again by the daemon's writer (`Document::to_json`), reads
//! back as the same document.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::status::Document;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(document) = Document::from_json(text) else { return };
    let written = document.to_json();
    let again = Document::from_json(&written).unwrap_or_else(|e| panic!("{e}: the writer's own output:\n{written}"));
    assert_eq!(again, document, "changed through the writer:\n{written}");
});
