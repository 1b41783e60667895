//! Fuzzes `sdnotify::parse`, the reader of sd_notify datagrams that any
//! local process can send to a service's `$NOTIFY_SOCKET`.
//!
//! Properties: every key is a non-empty upper-case identifier, every value is
//! one line of at most 1024 characters, and parsing is idempotent: the pairs
//! written back as a message parse to the same pairs.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::sdnotify;

fuzz_target!(|data: &[u8]| {
    let pairs = sdnotify::parse(data);
    assert!(pairs.len() <= data.iter().filter(|&&b| b == b'\n').count() + 1);
    for (key, value) in &pairs {
        assert!(!key.is_empty(), "empty key in {pairs:?}");
        assert!(key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'), "key {key:?}");
        assert!(!value.contains('\n'), "value {value:?} spans lines");
        assert!(value.chars().count() <= 1024, "value of {key} is {} characters", value.chars().count());
    }
    let message: String = pairs.iter().map(|(key, value)| format!("{key}={value}\n")).collect();
    assert_eq!(sdnotify::parse(message.as_bytes()), pairs, "not idempotent through {message:?}");
});
