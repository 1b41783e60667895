//! Fuzzes `control::Request::parse`, the reader of control-socket lines.
//!
//! Besides not panicking, every line that parses must survive the round trip
//! through `Request::to_line`: the CLI writes requests with `to_line` and the
//! daemon reads them with `parse`, so the two must agree on every request.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::control::Request;

fuzz_target!(|data: &[u8]| {
    // The daemon reads a line as UTF-8 and refuses anything else.
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok(request) = Request::parse(line) else { return };
    let encoded = request.to_line();
    assert!(!encoded.contains('\n'), "to_line of {request:?} spans lines: {encoded:?}");
    assert_eq!(Request::parse(&encoded).as_ref(), Ok(&request), "round trip of {line:?} through {encoded:?}");
});
