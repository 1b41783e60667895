//! A small, strict HTTP/1.1 request parser and response writer for the web
//! UI, with every size bounded.
//!
//! The parser is incremental and pure: [`parse`] looks at the bytes a
//! connection has received so far and says "need more", "here is a request
//! (and how many bytes it took)", or "refuse with this status". It knows
//! nothing of sockets, so it is unit-tested (and fuzzed) on plain bytes.
//! Only `Content-Length` bodies are accepted; chunked uploads are refused
//! (no client of ours sends them).

/// The request line and headers together may not exceed this.
pub const MAX_HEAD: usize = 8 * 1024;
/// A request body may not exceed this.
pub const MAX_BODY: usize = 16 * 1024;
/// At most this many header lines.
const MAX_HEADERS: usize = 64;

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: String,
    /// Header names in lowercase, values trimmed, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client wants the connection kept open after the response.
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// A query parameter, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| decode(v))
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet.
    Incomplete,
    /// A request, and how many bytes of the input it took.
    Request(Request, usize),
    /// Refuse with this status and close.
    Refuse(u16),
}

/// Parses one request from the start of `input`.
pub fn parse(input: &[u8]) -> Parsed {
    let Some(head_end) = find(input, b"\r\n\r\n") else {
        // A head of MAX_HEAD bytes may still be waiting for its blank line.
        return if input.len() >= MAX_HEAD + 4 { Parsed::Refuse(431) } else { Parsed::Incomplete };
    };
    if head_end > MAX_HEAD {
        return Parsed::Refuse(431);
    }
    let Ok(head) = std::str::from_utf8(&input[..head_end]) else { return Parsed::Refuse(400) };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Refuse(400);
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Parsed::Refuse(505);
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) || !target.starts_with('/') {
        return Parsed::Refuse(400);
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { return Parsed::Refuse(400) };
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Parsed::Refuse(400);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        if headers.len() > MAX_HEADERS {
            return Parsed::Refuse(431);
        }
    }
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    if header("transfer-encoding").is_some() {
        return Parsed::Refuse(411);
    }
    let length = match header("content-length") {
        None => 0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= MAX_BODY => n,
            Ok(_) => return Parsed::Refuse(413),
            Err(_) => return Parsed::Refuse(400),
        },
    };
    let body_start = head_end + 4;
    if input.len() < body_start + length {
        return Parsed::Incomplete;
    }
    let connection = header("connection").map(str::to_ascii_lowercase);
    let keep_alive = match version {
        "HTTP/1.1" => connection.as_deref() != Some("close"),
        _ => connection.as_deref() == Some("keep-alive"),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Parsed::Request(
        Request {
            method: method.to_string(),
            path: decode(path),
            query: query.to_string(),
            headers,
            body: input[body_start..body_start + length].to_vec(),
            keep_alive,
        },
        body_start + length,
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-decoding (and `+` as space in queries is not used by our client).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reason phrase of the statuses we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        421 => "Misdirected Request",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A whole response: status line, headers (plus Content-Length and
/// Connection), blank line, body.
pub fn response(status: u16, headers: &[(&str, String)], body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    out.push_str(if keep_alive { "Connection: keep-alive\r\n" } else { "Connection: close\r\n" });
    // The UI is only ever framed by nobody.
    out.push_str("X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_a_body_and_a_pipelined_successor() {
        let input = b"POST /api/login?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nCookie: a=1; mi7sid=abc\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n";
        let Parsed::Request(req, used) = parse(input) else { panic!("{:?}", parse(input)) };
        assert_eq!((req.method.as_str(), req.path.as_str(), req.query.as_str()), ("POST", "/api/login", "x=1"));
        assert_eq!(req.body, b"hello");
        assert_eq!(req.cookie("mi7sid"), Some("abc"));
        assert!(req.keep_alive);
        assert!(matches!(parse(&input[used..]), Parsed::Request(r, _) if r.path == "/"));
    }

    #[test]
    fn incomplete_input_waits() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n"), Parsed::Incomplete);
        assert_eq!(parse(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"), Parsed::Incomplete);
    }

    #[test]
    fn bad_and_oversized_input_is_refused() {
        assert_eq!(parse(b"GARBAGE\r\n\r\n"), Parsed::Refuse(400));
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Parsed::Refuse(505));
        assert_eq!(parse(b"get / HTTP/1.1\r\n\r\n"), Parsed::Refuse(400));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nNoColon\r\n\r\n"), Parsed::Refuse(400));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"), Parsed::Refuse(413));
        assert_eq!(parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), Parsed::Refuse(411));
        assert_eq!(parse(&vec![b'a'; MAX_HEAD + 3]), Parsed::Incomplete, "the blank line may still come");
        assert_eq!(parse(&vec![b'a'; MAX_HEAD + 4]), Parsed::Refuse(431));
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()), Parsed::Refuse(431));
    }

    #[test]
    fn percent_decoding_and_params() {
        let Parsed::Request(req, _) = parse(b"GET /api/processes/web%3A1/logs?lines=50 HTTP/1.1\r\n\r\n") else {
            panic!()
        };
        assert_eq!(req.path, "/api/processes/web:1/logs");
        assert_eq!(req.param("lines").as_deref(), Some("50"));
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%é%"), "%é%");
    }
}
