//! The state file: what the daemon needs to take its services back after it
//! exits, crashes or is upgraded, and to go on exactly where it was.
//!
//! Format (version 2), line-oriented text, documented in ARCHITECTURE.md:
//!
//! ```text
//! mi7soft-daemon state 2
//! # name instance state want pid starttime session group started_at restarts fingerprint deadline last_exit status
//! web 0 running up 1234 5678901 1234 1234 1796043901 3 9f0c2d4e8a1b3c5d 81234567 =exit%201 =serving%20requests
//! cron 0 stopped down 0 0 0 0 0 0 0c1d2e3f4a5b6c7d - - -
//! ```
//!
//! One line per instance, whether a process runs or not, so a service the
//! user stopped stays stopped and one given up on stays `fatal`.
//! - `state`: the name `status` shows; `want`: `up` or `down`.
//! - `pid`, `starttime` (field 22 of /proc/PID/stat, clock ticks after
//!   boot), `session` and `group` (its session and process group ids):
//!   the main process as the kernel describes it, 0 when none. A recorded
//!   process is the same one only when its pid and start time agree and
//!   so does its session or its process group: facts a process cannot
//!   forge, unlike its environment or its title.
//! - `started_at`: wall-clock seconds since the epoch, for people.
//! - `fingerprint`: a hash of what the instance was started with, so a
//!   definition edited while the daemon was down is noticed.
//! - `deadline`: the instance's one deadline (ready timeout, watchdog,
//!   backoff end, stop timeout) in CLOCK_MONOTONIC milliseconds, which every
//!   process of one boot shares, or `-`.
//! - `last_exit`, `status`: texts, `-` for none, else `=` and the text with
//!   `%`, spaces and control characters written as `%XX`.
//!
//! Version 1 files (`name instance pid starttime started_at restarts
//! fingerprint`, live processes only) are still read, as running and
//! wanted up, so an upgrade adopts what the old version started.
//!
//! Writing is atomic (temporary file, then rename) so a crash of the daemon
//! leaves the old file or the new one, never a mix. There is no fsync: the
//! file only matters while the kernel that runs the services does, and a
//! process's crash does not lose the page cache; after a power loss or a
//! reboot every recorded process is gone anyway, whatever the file says.
//! So each change costs no disk flush (nor, on a router, flash wear).
//! Reading is forgiving: every bad line is reported and skipped, and the
//! daemon always starts.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::sys::Pid;

pub const HEADER: &str = "mi7soft-daemon state 2";
const HEADER_V1: &str = "mi7soft-daemon state 1";
const COLUMNS: &str =
    "# name instance state want pid starttime session group started_at restarts fingerprint deadline last_exit status";

/// What an instance was doing, as `status` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Stopped,
    Waiting,
    Starting,
    Running,
    Stopping,
    Backoff,
    Exited,
    /// A oneshot that finished its work (no process).
    Done,
    Fatal,
}

const PHASES: [(Phase, &str); 9] = [
    (Phase::Stopped, "stopped"),
    (Phase::Waiting, "waiting"),
    (Phase::Starting, "starting"),
    (Phase::Running, "running"),
    (Phase::Stopping, "stopping"),
    (Phase::Backoff, "backoff"),
    (Phase::Exited, "exited"),
    (Phase::Done, "done"),
    (Phase::Fatal, "fatal"),
];

impl Phase {
    pub fn name(self) -> &'static str {
        PHASES.iter().find(|(p, _)| *p == self).map_or("stopped", |(_, n)| n)
    }

    pub fn from_name(name: &str) -> Option<Phase> {
        PHASES.iter().find(|(_, n)| *n == name).map(|(p, _)| *p)
    }
}

/// One instance, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub instance: u32,
    pub phase: Phase,
    pub want_up: bool,
    /// The main process, 0 when none; with `starttime`, `session` and
    /// `group` it names one exact process.
    pub pid: Pid,
    pub starttime: u64,
    pub session: Pid,
    pub group: Pid,
    pub started_at: u64,
    pub restarts: u32,
    pub fingerprint: u64,
    /// CLOCK_MONOTONIC milliseconds.
    pub deadline: Option<u64>,
    pub last_exit: Option<String>,
    pub status: Option<String>,
}

/// The text of a state file holding `records`.
pub fn render(records: &[Record]) -> String {
    let mut text = format!("{HEADER}\n{COLUMNS}\n");
    for r in records {
        let _ = write!(
            text,
            "{} {} {} {} {} {} {} {} {} {} {:016x} ",
            r.name,
            r.instance,
            r.phase.name(),
            if r.want_up { "up" } else { "down" },
            r.pid,
            r.starttime,
            r.session,
            r.group,
            r.started_at,
            r.restarts,
            r.fingerprint
        );
        match r.deadline {
            Some(ms) => {
                let _ = write!(text, "{ms}");
            }
            None => text.push('-'),
        }
        for field in [&r.last_exit, &r.status] {
            text.push(' ');
            escape_into(&mut text, field.as_deref());
        }
        text.push('\n');
    }
    text
}

/// `-` for none, else `=` and the text with `%`, spaces and control
/// characters as `%XX`, so every field is one word.
fn escape_into(out: &mut String, text: Option<&str>) {
    let Some(text) = text else {
        out.push('-');
        return;
    };
    out.push('=');
    for c in text.chars() {
        if c == '%' || c == ' ' || c.is_control() {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
    }
}

fn unescape(field: &str) -> Option<Option<String>> {
    if field == "-" {
        return Some(None);
    }
    let text = field.strip_prefix('=')?;
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok().map(Some)
}

/// Parses a state file's text: the records it could read, and a warning for
/// everything it could not.
pub fn parse(text: &str) -> (Vec<Record>, Vec<String>) {
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    let mut lines = text.lines().enumerate();
    let parse_line: fn(&str) -> Option<Record> = match lines.next() {
        None => {
            warnings.push("empty; starting with no record".to_string());
            return (records, warnings);
        }
        Some((_, HEADER)) => parse_record,
        Some((_, HEADER_V1)) => parse_record_v1,
        Some((_, other)) if other.starts_with("mi7soft-daemon state ") => {
            warnings.push(format!("line 1: unknown version {other:?}; reading the records that parse"));
            parse_record
        }
        Some((_, _)) => {
            warnings.push("line 1: not a mi7soft-daemon state file header; reading the records that parse".to_string());
            parse_record
        }
    };
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
        match parse_line(line) {
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
    let [
        name,
        instance,
        phase,
        want,
        pid,
        starttime,
        session,
        group,
        started_at,
        restarts,
        fingerprint,
        deadline,
        last_exit,
        status,
    ] = fields.as_slice()
    else {
        return None;
    };
    let pid: Pid = pid.parse().ok()?;
    let phase = Phase::from_name(phase)?;
    // A live phase names a process; the others name none.
    let live = matches!(phase, Phase::Starting | Phase::Running | Phase::Stopping);
    if (pid == 1 || pid < 0) || live != (pid > 1) {
        return None;
    }
    Some(Record {
        name: valid_name(name)?,
        instance: instance.parse().ok()?,
        phase,
        want_up: match *want {
            "up" => true,
            "down" => false,
            _ => return None,
        },
        pid,
        starttime: starttime.parse().ok()?,
        session: session.parse().ok()?,
        group: group.parse().ok()?,
        started_at: started_at.parse().ok()?,
        restarts: restarts.parse().ok()?,
        fingerprint: u64::from_str_radix(fingerprint, 16).ok()?,
        deadline: if *deadline == "-" { None } else { Some(deadline.parse().ok()?) },
        last_exit: unescape(last_exit)?,
        status: unescape(status)?,
    })
}

/// A version 1 line: a live process, running and wanted up, in the session
/// and process group it leads (as version 1 started every service).
fn parse_record_v1(line: &str) -> Option<Record> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    let [name, instance, pid, starttime, started_at, restarts, fingerprint] = fields.as_slice() else {
        return None;
    };
    let pid: Pid = pid.parse().ok()?;
    if pid <= 1 {
        return None;
    }
    Some(Record {
        name: valid_name(name)?,
        instance: instance.parse().ok()?,
        phase: Phase::Running,
        want_up: true,
        pid,
        starttime: starttime.parse().ok()?,
        session: pid,
        group: pid,
        started_at: started_at.parse().ok()?,
        restarts: restarts.parse().ok()?,
        fingerprint: u64::from_str_radix(fingerprint, 16).ok()?,
        deadline: None,
        last_exit: None,
        status: None,
    })
}

fn valid_name(name: &str) -> Option<String> {
    crate::config::valid_name(name).then(|| name.to_string())
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
    // The temporary is made new (O_EXCL), so nothing already there is
    // written through: a leftover one (or a link planted under its name,
    // which remove_file does not follow) is removed first.
    let create = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
    };
    let result = (|| {
        let mut file = match create() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&tmp)?;
                create()?
            }
            // Its directory went away (a /var/run wiped while the daemon
            // runs): made again, so the services stay recorded.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o755).create(dir)?;
                create()?
            }
            other => other?,
        };
        file.write_all(text.as_bytes())?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> Record {
        Record {
            name: name.into(),
            instance: 1,
            phase: Phase::Running,
            want_up: true,
            pid: 4242,
            starttime: 123_456,
            session: 4242,
            group: 4243,
            started_at: 1_796_043_901,
            restarts: 3,
            fingerprint: 0xdead_beef,
            deadline: Some(987_654_321),
            last_exit: Some("exit 1".into()),
            status: Some("50% done, 100% sure\tok\n-".into()),
        }
    }

    #[test]
    fn records_survive_a_round_trip() {
        let stopped = Record {
            phase: Phase::Stopped,
            want_up: false,
            pid: 0,
            starttime: 0,
            session: 0,
            group: 0,
            deadline: None,
            last_exit: None,
            status: Some(String::new()),
            ..record("cron")
        };
        let records = vec![record("web"), record("db.main"), stopped];
        let text = render(&records);
        assert_eq!(parse(&text), (records, vec![]));
        assert!(text.lines().all(|l| l.starts_with('#') || l.split(' ').count() == 14 || l == HEADER), "{text}");
    }

    #[test]
    fn version_1_files_are_read_as_running_processes() {
        let text = "mi7soft-daemon state 1\n# name instance pid starttime started_at restarts fingerprint\n\
                    web 0 1234 5678901 1796043901 3 9f0c2d4e8a1b3c5d\n";
        let (records, warnings) = parse(text);
        assert!(warnings.is_empty(), "{warnings:?}");
        let r = &records[0];
        assert_eq!((r.phase, r.want_up, r.pid, r.session, r.group), (Phase::Running, true, 1234, 1234, 1234));
        assert_eq!((r.starttime, r.restarts, r.fingerprint), (5_678_901, 3, 0x9f0c_2d4e_8a1b_3c5d));
    }

    #[test]
    fn bad_input_is_reported_and_the_rest_used() {
        let good = render(&[record("web")]);
        let no_pid = render(&[Record { pid: 0, ..record("web") }]);
        let no_pid = no_pid.lines().last().unwrap();
        let (records, warnings) =
            parse(&format!("{good}garbage here\nweb 1 x 1 1 1 1\n{no_pid}\nweb 2 running up 9 9 9 9 9 9 0 - =%Z -\n"));
        assert_eq!(records, vec![record("web")]);
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("line 4: not a valid record"), "{warnings:?}");

        let cut = &good[..good.len() - 3];
        let (records, warnings) = parse(cut);
        assert!(records.is_empty());
        assert!(warnings[0].contains("cut short"), "{warnings:?}");

        let (records, warnings) = parse(&good.replace("state 2", "state 9"));
        assert_eq!(records.len(), 1);
        assert!(warnings[0].contains("unknown version"), "{warnings:?}");

        let (records, warnings) = parse("");
        assert!(records.is_empty() && warnings[0].contains("empty"));
    }
}
