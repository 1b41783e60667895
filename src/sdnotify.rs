//! The sd_notify message format: newline-separated `KEY=VALUE` pairs in
//! one datagram (systemd's `sd_notify(3)`). Pure, so it can be fuzzed; the
//! socket and what each key does live in `daemon/notify.rs`.

/// The assignments of one message, in order. Lines without `=` and keys
/// that are not upper-case identifiers are dropped, as systemd does.
pub fn parse(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    text.split('\n')
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(|(key, value)| (key.to_string(), value.chars().take(1024).collect()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_in_order_and_junk_dropped() {
        let parsed = parse(b"READY=1\nSTATUS=serving: 3 clients\nnot an assignment\nlower=x\n=y\nWATCHDOG=1");
        let keys: Vec<&str> = parsed.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["READY", "STATUS", "WATCHDOG"]);
        assert_eq!(parsed[1].1, "serving: 3 clients");
        assert!(parse(&[0xff, b'\n']).is_empty());
    }
}
