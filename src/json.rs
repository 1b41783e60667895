//! Reading JSON from outside: the one reader, for the status document the
//! client gets and for the request bodies the web API gets.
//!
//! Both come from a peer that may be of another version, broken or hostile,
//! so the reader is written to fail, never to panic: every input is bytes
//! read up to a bound (the control socket's line, `http::MAX_BODY`), nesting
//! is bounded so recursion cannot exhaust the stack, and every problem is an
//! `Err` naming what was expected and at which byte. It follows RFC 8259
//! strictly (no raw control characters in strings, numbers by its grammar).
//! Numbers stay text until a field says which integer it holds, so no float
//! parsing is linked.
//!
//! nanoserde's `DeJson` is not used anywhere in the daemon: it panics on a
//! truncated input ("not implemented: Eof"), which in a release build (panic
//! = "abort") ended the supervisor, and it links float formatting through
//! its tokens' `Debug` (see "Binary size" in ARCHITECTURE.md).

use std::str::FromStr;

/// A JSON value.
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(String),
    Array(Vec<Json<'a>>),
    Object(Vec<(String, Json<'a>)>),
}

/// Reads one whole JSON value from `text`, nested at most `max_depth`
/// containers below the outermost (0: a flat object or array).
pub(crate) fn parse(text: &str, max_depth: usize) -> Result<Json<'_>, String> {
    let mut reader = Reader { text, at: 0, max_depth };
    let json = reader.value(0)?;
    reader.skip_space();
    if reader.at < text.len() {
        return reader.fail("the end of the document");
    }
    Ok(json)
}

/// A request body: one JSON object whose fields are strings, numbers,
/// booleans or null; an empty body reads as `{}`. Every route of the web
/// API that is POSTed to reads its body with this, and says which keys it
/// takes ([`Flat::only`]), so a body no route asked for is refused too.
pub struct Flat<'a> {
    fields: Vec<(String, Json<'a>)>,
}

impl<'a> Flat<'a> {
    /// Reads `body`. The HTTP parser has bounded its length.
    pub fn parse(body: &'a [u8]) -> Result<Flat<'a>, String> {
        let text =
            std::str::from_utf8(body).map_err(|e| format!("at byte {}: expected UTF-8 text", e.valid_up_to()))?;
        if text.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            return Ok(Flat { fields: Vec::new() });
        }
        match parse(text, 0)? {
            Json::Object(fields) => Ok(Flat { fields }),
            _ => Err("expected a JSON object".into()),
        }
    }

    /// Refuses a key that is not one of `keys`.
    pub fn only(&self, keys: &[&str]) -> Result<(), String> {
        match self.fields.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
            Some((key, _)) if keys.is_empty() => Err(format!("unknown key {key:?} (this endpoint takes no fields)")),
            Some((key, _)) => Err(format!("unknown key {key:?} (expected {})", keys.join(", "))),
            None => Ok(()),
        }
    }

    pub fn string(&self, key: &str) -> Result<String, String> {
        Object(&self.fields).string(key)
    }
}

/// The fields of a JSON object, read by name; the last of a repeated key
/// wins, as in nanoserde.
pub(crate) struct Object<'j, 'a>(&'j [(String, Json<'a>)]);

impl<'j, 'a> Object<'j, 'a> {
    pub(crate) fn of(json: &'j Json<'a>, what: &str) -> Result<Object<'j, 'a>, String> {
        match json {
            Json::Object(fields) => Ok(Object(fields)),
            _ => Err(format!("{what}: expected an object")),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<&'j Json<'a>, String> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v).ok_or_else(|| format!("missing key {key:?}"))
    }

    pub(crate) fn string(&self, key: &str) -> Result<String, String> {
        match self.get(key)? {
            Json::String(s) => Ok(s.clone()),
            _ => Err(format!("{key}: expected a string")),
        }
    }

    pub(crate) fn number<T: FromStr>(&self, key: &str) -> Result<T, String> {
        match self.get(key)? {
            Json::Number(n) => n.parse().map_err(|_| format!("{key}: {n} is not an integer in range")),
            _ => Err(format!("{key}: expected a number")),
        }
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<bool, String> {
        match self.get(key)? {
            Json::Bool(b) => Ok(*b),
            _ => Err(format!("{key}: expected true or false")),
        }
    }

    /// A field that may be missing or `null`.
    pub(crate) fn optional<T>(
        &self,
        key: &str,
        read: fn(&Self, &str) -> Result<T, String>,
    ) -> Result<Option<T>, String> {
        match self.get(key) {
            Err(_) | Ok(Json::Null) => Ok(None),
            Ok(_) => read(self, key).map(Some),
        }
    }
}

/// A JSON reader over `text` (RFC 8259), from byte `at`.
struct Reader<'a> {
    text: &'a str,
    at: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, expected: &str) -> Result<T, String> {
        Err(format!("at byte {}: expected {expected}", self.at))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Skips white space, then consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// Consumes ASCII digits; whether there was one.
    fn digits(&mut self) -> bool {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at > start
    }

    fn value(&mut self, depth: usize) -> Result<Json<'a>, String> {
        self.skip_space();
        if matches!(self.peek(), Some(b'{' | b'[')) && depth > self.max_depth {
            // The bound keeps the recursion, and so the stack, bounded.
            return self.fail(if self.max_depth == 0 { "a string, number, boolean or null" } else { "less nesting" });
        }
        if self.eat(b'{') {
            let mut fields = Vec::new();
            if !self.eat(b'}') {
                loop {
                    self.skip_space();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return self.fail("':'");
                    }
                    fields.push((key, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        break;
                    }
                    if !self.eat(b',') {
                        return self.fail("',' or '}'");
                    }
                }
            }
            return Ok(Json::Object(fields));
        }
        if self.eat(b'[') {
            let mut items = Vec::new();
            if !self.eat(b']') {
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        break;
                    }
                    if !self.eat(b',') {
                        return self.fail("',' or ']'");
                    }
                }
            }
            return Ok(Json::Array(items));
        }
        if self.peek() == Some(b'"') {
            return self.string().map(Json::String);
        }
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_lowercase()) {
            self.at += 1;
        }
        match &self.text[start..self.at] {
            "null" => return Ok(Json::Null),
            word @ ("true" | "false") => return Ok(Json::Bool(word == "true")),
            "" => {}
            _ => {
                self.at = start;
                return self.fail("a value");
            }
        }
        // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
        self.at += usize::from(self.peek() == Some(b'-'));
        let int_start = self.at;
        if !self.digits() {
            self.at = start;
            return self.fail("a value");
        }
        if self.text.as_bytes()[int_start] == b'0' && self.at > int_start + 1 {
            self.at = int_start + 1;
            return self.fail("no leading zero");
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.digits() {
                return self.fail("a digit");
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            self.at += usize::from(matches!(self.peek(), Some(b'+' | b'-')));
            if !self.digits() {
                return self.fail("a digit");
            }
        }
        Ok(Json::Number(&self.text[start..self.at]))
    }

    /// A string, at its opening quote.
    fn string(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return self.fail("a string");
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.at..];
            let Some(end) = rest.find(['"', '\\']) else {
                return self.fail("the end of the string");
            };
            if let Some(control) = rest[..end].bytes().position(|b| b < 0x20) {
                self.at += control;
                return self.fail("an escape, not a control character");
            }
            out.push_str(&rest[..end]);
            self.at += end + 1;
            if rest.as_bytes()[end] == b'"' {
                return Ok(out);
            }
            let c = match self.peek() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    self.at += 1;
                    let unit = self.hex4()?;
                    let code = match unit {
                        0xD800..0xDC00 if self.text[self.at..].starts_with("\\u") => {
                            self.at += 2;
                            match self.hex4()? {
                                low @ 0xDC00..0xE000 => 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00),
                                // A high surrogate and no low one: no char.
                                _ => u32::MAX,
                            }
                        }
                        _ => unit,
                    };
                    match char::from_u32(code) {
                        Some(c) => {
                            out.push(c);
                            continue;
                        }
                        None => return self.fail("a valid \\u escape"),
                    }
                }
                _ => return self.fail("an escape"),
            };
            out.push(c);
            self.at += 1;
        }
    }

    /// The four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.at..self.at + 4).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        let Some(digits) = digits else { return self.fail("four hex digits") };
        self.at += 4;
        Ok(u32::from_str_radix(digits, 16).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &[u8]) -> Result<Flat<'_>, String> {
        Flat::parse(text)
    }

    fn login(text: &[u8]) -> Result<String, String> {
        let flat = body(text)?;
        flat.only(&["token"])?;
        flat.string("token")
    }

    #[test]
    fn a_body_is_a_flat_object_of_scalars() {
        assert_eq!(login(br#" {"token" : "s3cret\u00e9\n"} "#).unwrap(), "s3cret\u{e9}\n");
        assert_eq!(login(br#"{"token":"a","token":"b"}"#).unwrap(), "b", "the last of a repeated key wins");
        let flat = body(br#"{"s":"x","n":-1.5e+3,"z":0,"t":true,"f":false,"u":null}"#).unwrap();
        assert_eq!(flat.fields.len(), 6);
        assert!(flat.only(&["s", "n", "z", "t", "f", "u"]).is_ok());
        for empty in [&b""[..], b" \r\n", b"{}", b" { } "] {
            assert!(body(empty).unwrap().only(&[]).is_ok(), "{empty:?}");
        }
    }

    #[test]
    fn a_bad_body_says_what_is_wrong_and_where() {
        let err = |text: &[u8]| login(text).unwrap_err();
        // The body that killed the daemon through nanoserde's DeJson.
        assert_eq!(err(br#"{"x":"#), "at byte 5: expected a value");
        assert_eq!(err(br#"{"token":"#), "at byte 9: expected a value");
        assert_eq!(err(br#"{"token":"abc"#), "at byte 10: expected the end of the string");
        assert_eq!(err(br#"{"token""#), "at byte 8: expected ':'");
        assert_eq!(err(br#"{"token":"a""#), "at byte 12: expected ',' or '}'");
        assert_eq!(err(br#"{"token":"a"} {}"#), "at byte 14: expected the end of the document");
        assert_eq!(err(b"{\"token\":\"\xff\"}"), "at byte 10: expected UTF-8 text");
        assert_eq!(err(b"{\"token\":\"a\tb\"}"), "at byte 11: expected an escape, not a control character");
        assert_eq!(err(br#"{"token":["a"]}"#), "at byte 9: expected a string, number, boolean or null");
        assert_eq!(err(br#"{"token":{"a":1}}"#), "at byte 9: expected a string, number, boolean or null");
        assert_eq!(err(&[b'['; 10_000]), "at byte 1: expected a string, number, boolean or null");
        assert_eq!(err(br#"["token"]"#), "expected a JSON object");
        assert_eq!(err(br#""token""#), "expected a JSON object");
        assert_eq!(err(b"token"), "at byte 0: expected a value");
        assert_eq!(err(b""), "missing key \"token\"");
        assert_eq!(err(br#"{"token":1}"#), "token: expected a string");
        assert_eq!(err(br#"{"token":nul}"#), "at byte 9: expected a value");
        assert_eq!(err(br#"{"token":"a","x":1}"#), "unknown key \"x\" (expected token)");
        assert_eq!(err(br#"{token:"a"}"#), "at byte 1: expected a string");
        assert_eq!(err(br#"{"token":"a",}"#), "at byte 13: expected a string");
        assert_eq!(
            body(br#"{"x":1}"#).unwrap().only(&[]).unwrap_err(),
            "unknown key \"x\" (this endpoint takes no fields)"
        );
    }

    #[test]
    fn numbers_follow_the_grammar_and_stay_text() {
        fn number(text: &str) -> Result<&str, String> {
            match parse(text, 0) {
                Ok(Json::Number(n)) => Ok(n),
                Ok(_) => Err("not a number".to_string()),
                Err(e) => Err(e),
            }
        }
        for good in ["0", "-0", "12", "1.5", "1e9", "1E-9", "-1.25e+10", &"9".repeat(5000)] {
            assert_eq!(number(good).as_deref(), Ok(good));
        }
        assert_eq!(number("01").unwrap_err(), "at byte 1: expected no leading zero");
        assert_eq!(number("-").unwrap_err(), "at byte 0: expected a value");
        assert_eq!(number("+1").unwrap_err(), "at byte 0: expected a value");
        assert_eq!(number("1.").unwrap_err(), "at byte 2: expected a digit");
        assert_eq!(number("1e").unwrap_err(), "at byte 2: expected a digit");
        assert_eq!(number(".5").unwrap_err(), "at byte 0: expected a value");
        assert_eq!(number("1-2").unwrap_err(), "at byte 1: expected the end of the document");
        let huge = format!("{{\"n\":{}}}", "9".repeat(100));
        let json = parse(&huge, 0).unwrap();
        let n = Object::of(&json, "body").unwrap().number::<u64>("n").unwrap_err();
        assert!(n.starts_with("n: 999") && n.ends_with(" is not an integer in range"), "{n}");
    }

    #[test]
    fn every_prefix_of_a_body_is_an_error_not_a_panic() {
        let whole = br#"{"token":"s3cret \u00e9\ud83d\ude00","n":-1.5e3,"b":true,"z":null}"#;
        for cut in 0..whole.len() {
            let result = body(&whole[..cut]);
            // The empty body reads as `{}`; any other prefix is cut short.
            assert_eq!(result.is_ok(), cut == 0, "{:?}", String::from_utf8_lossy(&whole[..cut]));
        }
        assert!(body(whole).is_ok());
    }
}
