//! The state file: what the daemon needs to take its services back after it
//! exits, crashes or is upgraded.
//!
//! Format (version 1), line-oriented text, documented in ARCHITECTURE.md:
//!
//! ```text
//! mi7soft-daemon state 1
//! # name instance pid starttime started_at restarts fingerprint
//! web 0 1234 5678901 1796043901 3 9f0c2d4e8a1b3c5d
//! ```
//!
//! - `starttime`: field 22 of /proc/PID/stat (clock ticks after boot). With
//!   the pid it names one exact process: a reused pid has another start time.
//! - `started_at`: wall-clock seconds since the epoch, for people.
//! - `fingerprint`: a hash of what the instance was started with (command,
//!   args, working directory, environment), so a definition edited while
//!   the daemon was down is noticed and applied as a reload would.
//!
//! Writing is atomic (temporary file, then rename) so a crash of the daemon
//! leaves the old file or the new one, never a mix. There is no fsync: the
//! file only matters while the kernel that runs the services does, and a
//! process's crash does not lose the page cache; after a power loss or a
//! reboot every recorded process is gone anyway, whatever the file says.
//! So each change costs no disk flush (nor, on a router, flash wear). Reading is
//! forgiving: every bad line is reported and skipped, and the daemon always
//! starts.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys::Pid;

pub const HEADER: &str = "mi7soft-daemon state 1";

/// One live instance, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub instance: u32,
    pub pid: Pid,
    pub starttime: u64,
    pub started_at: u64,
    pub restarts: u32,
    pub fingerprint: u64,
}

/// The text of a state file holding `records`.
pub fn render(records: &[Record]) -> String {
    use std::fmt::Write as _;
    let mut text = format!("{HEADER}\n# name instance pid starttime started_at restarts fingerprint\n");
    for r in records {
        let _ = writeln!(
            text,
            "{} {} {} {} {} {} {:016x}",
            r.name, r.instance, r.pid, r.starttime, r.started_at, r.restarts, r.fingerprint
        );
    }
    text
}

/// Parses a state file's text: the records it could read, and a warning for
/// everything it could not.
pub fn parse(text: &str) -> (Vec<Record>, Vec<String>) {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut lines = text.lines().enumerate();
    match lines.next() {
        None => {
            warnings.push("empty; starting with no record".to_string());
            return (records, warnings);
        }
        Some((_, HEADER)) => {}
        Some((_, other)) if other.starts_with("mi7soft-daemon state ") => {
            warnings.push(format!("line 1: unknown version {other:?}; reading the records that parse"));
        }
        Some((_, _)) => {
            warnings.push("line 1: not a mi7soft-daemon state file header; reading the records that parse".to_string());
        }
    }
    // A file cut short by a crash or a full disk ends without a newline;
    // its last line is then suspect even if it happens to parse.
    let truncated = !text.ends_with('\n');
    let n_lines = text.lines().count();
    for (i, line) in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if truncated && i + 1 == n_lines {
            warnings.push(format!("line {}: cut short (no newline at the end); ignored", i + 1));
            continue;
        }
        match parse_record(line) {
            Some(record) => records.push(record),
            None => warnings.push(format!(
                "line {}: not a valid record; ignored: {:?}",
                i + 1,
                crate::msg::truncate(line, 80)
            )),
        }
    }
    (records, warnings)
}

fn parse_record(line: &str) -> Option<Record> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let [name, instance, pid, starttime, started_at, restarts, fingerprint] = fields.as_slice() else {
        return None;
    };
    if !crate::config::valid_name(name) {
        return None;
    }
    let pid: Pid = pid.parse().ok()?;
    if pid <= 1 {
        return None;
    }
    Some(Record {
        name: name.to_string(),
        instance: instance.parse().ok()?,
        pid,
        starttime: starttime.parse().ok()?,
        started_at: started_at.parse().ok()?,
        restarts: restarts.parse().ok()?,
        fingerprint: u64::from_str_radix(fingerprint, 16).ok()?,
    })
}

/// Reads the state file. A missing file is an empty state (no warning); an
/// unreadable one is an empty state with a warning.
pub fn read(path: &Path) -> (Vec<Record>, Vec<String>) {
    match fs::read(path) {
        Ok(bytes) => parse(&String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), Vec::new()),
        Err(e) => (Vec::new(), vec![format!("cannot read: {}", crate::msg::io_error(&e))]),
    }
}

/// Replaces the state file atomically with `text`.
pub fn write(path: &Path, text: &str) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    // A leftover temporary (or a link planted under its name: remove_file
    // does not follow it) goes first; then the temporary is made new, so
    // nothing already there is written through.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// FNV-1a over `parts`, separated, as a stable fingerprint of a definition.
/// Stable across versions of this program on purpose: an upgrade must not
/// look like an edit of every service.
pub fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Record {
        Record {
            name: name.into(),
            instance: 1,
            pid: 4242,
            starttime: 123_456,
            started_at: 1_796_043_901,
            restarts: 3,
            fingerprint: 0xdead_beef,
        }
    }

    #[test]
    fn records_survive_a_round_trip() {
        let records = vec![record("web"), record("db.main")];
        assert_eq!(parse(&render(&records)), (records, vec![]));
    }

    #[test]
    fn bad_input_is_reported_and_the_rest_used() {
        let good = render(&[record("web")]);
        let (records, warnings) = parse(&format!("{good}garbage here\nweb 1 x 1 1 1 1\n"));
        assert_eq!(records, vec![record("web")]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("line 4: not a valid record"), "{warnings:?}");

        let cut = &good[..good.len() - 3];
        let (records, warnings) = parse(cut);
        assert!(records.is_empty());
        assert!(warnings[0].contains("cut short"), "{warnings:?}");

        let (records, warnings) = parse(&good.replace("state 1", "state 9"));
        assert_eq!(records.len(), 1);
        assert!(warnings[0].contains("unknown version"), "{warnings:?}");

        let (records, warnings) = parse("");
        assert!(records.is_empty() && warnings[0].contains("empty"));
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fingerprint([&b"ab"[..], b"c"]), fingerprint([&b"a"[..], b"bc"]));
        assert_eq!(fingerprint([&b"x"[..]]), fingerprint([&b"x"[..]]));
    }
}
