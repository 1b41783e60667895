//! Every word the program says to a person goes through here: command-line
//! errors and warnings on stderr, and the daemon's own log.
//!
//! Messages follow one shape, context first, lowercase, no final period:
//! `mi7soft-daemon: error: daemon.toml:12:5: [[processes]] "web": unknown key`.
//! Log lines add a UTC timestamp and a level so they sort and grep:
//! `2026-11-29T14:05:01Z info: web: started (pid 123)`.

use std::fmt::Display;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const PROG: &str = "mi7soft-daemon";

/// Prints `mi7soft-daemon: error: …` on stderr.
pub fn error(message: impl Display) {
    eprintln!("{PROG}: error: {message}");
}

/// Prints `mi7soft-daemon: warning: …` on stderr.
pub fn warning(message: impl Display) {
    eprintln!("{PROG}: warning: {message}");
}

/// An io::Error as a person reads it: "No such file or directory", without
/// Rust's " (os error 2)" suffix.
pub fn io_error(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A path and what went wrong with it: "/run/x.pid: Permission denied".
pub fn path_error(path: &Path, error: &io::Error) -> String {
    format!("{}: {}", path.display(), io_error(error))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// The daemon's log. It always writes to stderr: in the foreground that is
/// the terminal or the init system's log; with --daemonize, stderr is the
/// log file (see `cli::detach_stdio`).
pub struct Log;

impl Log {
    /// Writes one line. A failing log (disk full) must never stop
    /// supervision, so write errors are dropped here on purpose.
    pub fn write(&mut self, level: Level, message: impl Display) {
        let line = format!("{} {}: {}\n", utc_timestamp(SystemTime::now()), level.name(), message);
        let _ = io::stderr().write_all(line.as_bytes());
    }

    pub fn info(&mut self, message: impl Display) {
        self.write(Level::Info, message);
    }

    pub fn warning(&mut self, message: impl Display) {
        self.write(Level::Warning, message);
    }

    pub fn error(&mut self, message: impl Display) {
        self.write(Level::Error, message);
    }
}

/// `2026-11-29T14:05:01Z` for a wall-clock time.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a (year, month, day) date, after Howard Hinnant's
/// `civil_from_days`, so no date crate is needed.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A duration as `status` shows it: "45s", "3m12s", "2h03m", "4d02h".
pub fn short_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// A number of seconds as the config gives it: "10", "0.25". Integer
/// arithmetic on purpose: formatting an `f64` would link std's float
/// printing (~9 KiB) for these few messages.
pub fn seconds(duration: Duration) -> String {
    let (secs, nanos) = (duration.as_secs(), duration.subsec_nanos());
    if nanos == 0 {
        return secs.to_string();
    }
    let fraction = format!("{nanos:09}");
    format!("{secs}.{}", fraction.trim_end_matches('0'))
}

/// Seconds rounded to tenths, half up: "2.5", "0.0".
pub fn tenths(duration: Duration) -> String {
    let tenths = duration.as_secs() * 10 + u64::from((duration.subsec_nanos() + 50_000_000) / 100_000_000);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// A count and the noun that agrees with it: "1 process", "2 processes".
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `text` with its control characters written as `\xNN` (`\u{NNNN}` beyond
/// Latin-1): a service's words (STATUS=, its output) shown on an admin's
/// terminal can then neither clear the screen, retitle the window, nor
/// forge a line with a carriage return.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !c.is_control() {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\x{:02x}", c as u32));
        } else {
            let _ = std::fmt::Write::write_fmt(&mut out, format_args!("\\u{{{:x}}}", c as u32));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// At most the first `max` characters of `s`, for quoting untrusted text.
pub fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("plain text"), "plain text");
        assert_eq!(printable("a\x1b[2Jb\rc\u{9b}d"), "a\\x1b[2Jb\\x0dc\\x9bd");
        assert_eq!(printable("\u{2028}"), "\u{2028}");
    }

    #[test]
    fn timestamps_are_utc_iso8601() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_796_043_901)), "2026-11-30T13:05:01Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(45), "45s");
        assert_eq!(short_duration(192), "3m12s");
        assert_eq!(short_duration(7380), "2h03m");
        assert_eq!(short_duration(352_800), "4d02h");
    }

    #[test]
    fn seconds_read_as_written_or_in_tenths() {
        assert_eq!(seconds(Duration::from_secs(10)), "10");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::from_secs_f64(0.2)), "0.2");
        assert_eq!(seconds(Duration::new(3, 1)), "3.000000001");
        assert_eq!(tenths(Duration::ZERO), "0.0");
        assert_eq!(tenths(Duration::from_millis(2449)), "2.4");
        assert_eq!(tenths(Duration::from_millis(2450)), "2.5");
        assert_eq!(tenths(Duration::from_millis(9960)), "10.0");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "process", "processes"), "1 process");
        assert_eq!(count(0, "process", "processes"), "0 processes");
        assert_eq!(count(2, "service", "services"), "2 services");
    }

    #[test]
    fn io_errors_lose_the_os_error_suffix() {
        assert_eq!(io_error(&io::Error::from_raw_os_error(2)), "No such file or directory");
    }
}
