//! Inputs that break a property checked by a fuzz target of fuzz/ (`cargo
//! xtask fuzz`), kept as plain tests so they stay fixed without a fuzzer.
//! Each test names the target and the property it broke.

/// fuzz target `http`, property "any shorter prefix of a request is
/// `Incomplete`": a request whose head (before the blank line) is 8190 to
/// 8192 bytes long, at most `MAX_HEAD`, parses whole, but the same bytes cut
/// inside the final "\r\n\r\n" beyond `MAX_HEAD` are refused with 431: the
/// size check made while no blank line is seen forgets that the blank line
/// may still be arriving. A client whose request reaches the server in two
/// reads gets a 431 that the same request in one read does not.
#[cfg(feature = "web")]
#[test]
fn http_a_request_cut_inside_its_blank_line_is_incomplete() {
    use mi7soft_daemon::http::{MAX_HEAD, Parsed, parse};

    for head_len in MAX_HEAD - 3..=MAX_HEAD {
        let mut input = b"GET / HTTP/1.1\r\nCookie: mi7sid=".to_vec();
        input.resize(head_len, b'c');
        input.extend_from_slice(b"\r\n\r\n");
        assert!(matches!(parse(&input), Parsed::Request(_, n) if n == input.len()), "head of {head_len} bytes");
        // Shorter cuts are within MAX_HEAD, and so plainly incomplete.
        for cut in head_len - 8..input.len() {
            assert_eq!(parse(&input[..cut]), Parsed::Incomplete, "head of {head_len} bytes, first {cut} bytes");
        }
    }
}

/// fuzz target `config`, property "every problem's message is one line":
/// a quoted key may hold a newline (`"x\nok\ny" = 1`), and the unknown-key
/// message quotes it raw. The control socket sends a rejected reload one
/// problem line at a time and the client takes a line `ok` for success, so
/// `reload` of such a file prints half the message and exits 0, though the
/// daemon rejected it (`check` prints the message over three lines).
#[test]
fn config_a_key_with_a_newline_makes_a_one_line_message() {
    let text = "\"x\\nok\\ny\" = 1\n";
    let problems = mi7soft_daemon::config::parse(text, std::path::Path::new("/x/daemon.toml")).unwrap_err();
    for problem in problems {
        assert!(!problem.message.contains('\n'), "{problem:?}");
    }
}
