//! Fuzzes `json::Flat`, the reader of every request body the web API takes
//! (an unauthenticated client's bytes), the way `daemon/web.rs` calls it:
//! login reads the field `token`, the other POST routes take no fields.
//!
//! Properties, beyond not panicking (a panic aborts the daemon):
//! - a body is read the same every time; one that a field-less route
//!   takes has no token; a token read, written into a body again, reads
//!   back as the same token;
//! - a body is one whole JSON object: a shorter prefix of an accepted body
//!   that is not just white space is refused, so a body cut short never
//!   counts as a smaller one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::json::Flat;

/// The login route's reading of a body, as in `daemon/web.rs`.
fn login(body: &[u8]) -> Result<String, String> {
    let flat = Flat::parse(body)?;
    flat.only(&["token"])?;
    flat.string("token")
}

/// A route that takes no fields, as in `daemon/web.rs`.
fn no_fields(body: &[u8]) -> Result<(), String> {
    Flat::parse(body)?.only(&[])
}

/// `s` as a JSON string.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fuzz_target!(|data: &[u8]| {
    let token = login(data);
    assert_eq!(token, login(data), "read twice, read differently");
    if no_fields(data).is_ok() {
        assert!(token.is_err(), "a body without fields gave a token");
    }
    if let Ok(token) = &token {
        let written = format!("{{\"token\":{}}}", quoted(token));
        assert_eq!(login(written.as_bytes()).as_ref(), Ok(token), "changed through the writer: {written}");
    }
    if Flat::parse(data).is_ok() {
        let end = data.len() - data.iter().rev().take_while(|b| is_space(b)).count();
        let cuts = [end / 2, end.saturating_sub(1), end.saturating_sub(2)];
        for cut in cuts.into_iter().filter(|&cut| cut < end && !data[..cut].iter().all(is_space)) {
            let partial = Flat::parse(&data[..cut]);
            assert!(partial.is_err(), "the first {cut} of {end} bytes of a body are a body");
        }
    }
});
