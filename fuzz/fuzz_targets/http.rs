//! Fuzzes `http::parse`, the web UI's incremental HTTP/1.1 request parser,
//! which sees whatever bytes a client sends.
//!
//! Properties, beyond not panicking:
//! - a request's byte count is within the input and covers the head and the
//!   body, and re-parsing exactly those bytes gives the same request (bytes
//!   that follow, a pipelined request, change nothing);
//! - the parser is incremental: any shorter prefix of a request is
//!   `Incomplete`, so a request is answered the same however the network cuts
//!   it into reads;
//! - a refusal uses one of the statuses the parser documents.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mi7soft_daemon::http::{self, Parsed};

fuzz_target!(|data: &[u8]| {
    match http::parse(data) {
        Parsed::Incomplete => {}
        Parsed::Refuse(status) => {
            assert!([400, 411, 413, 431, 505].contains(&status), "refused with {status}");
        }
        Parsed::Request(request, used) => {
            assert!(used <= data.len(), "took {used} bytes of {}", data.len());
            let head_end = data.windows(4).position(|w| w == b"\r\n\r\n").expect("a request has a blank line");
            assert_eq!(used, head_end + 4 + request.body.len(), "byte count is not head + body");
            assert_eq!(&data[head_end + 4..used], request.body.as_slice());
            let consumed = &data[..used];
            let again = http::parse(consumed);
            assert!(
                matches!(&again, Parsed::Request(r, n) if *r == request && *n == used),
                "the consumed prefix parses differently: {again:?}, not {request:?}"
            );
            // Every cut inside the blank line and inside the body, and the
            // longest prefix; the cuts before the blank line have no
            // "\r\n\r\n", like the first three.
            let cuts = (head_end + 1..head_end + 4).chain([used / 2, used - 1, head_end + 4 + request.body.len() / 2]);
            for cut in cuts.filter(|&cut| cut < used) {
                let partial = http::parse(&data[..cut]);
                assert_eq!(partial, Parsed::Incomplete, "the first {cut} of {used} bytes of a request");
            }
        }
    }
});
