//! Service output capture: turning the bytes a service writes to its stdout
//! and stderr into whole, optionally timestamped lines in a size-bounded,
//! rotated log file, or in the system log.
//!
//! The daemon reads each capturing service's pipe in its poll loop and hands
//! the bytes to that service's [`Capture`]. Lines are not split unless they
//! must be: a partial line waits in a buffer for its end, up to [`MAX_LINE`]
//! bytes or what fits in one file (`log_max_size`, less the time stamp and
//! the newline), whichever is smaller; a longer line is cut into pieces of
//! that length, written as lines of their own. Rotation happens only between
//! lines, before the one that would take the file past `log_max_size`. So
//! no file is ever larger than `log_max_size`, and the disk use of a
//! service's log is bounded by `log_max_size * (log_keep + 1)`.
//!
//! The daemon (root, usually) writes these files in a directory its
//! services may be able to reach, so nothing here follows a symbolic link:
//! logs are opened with `O_NOFOLLOW` and must be regular files of the
//! daemon's user with one link (see `files.rs`), rotation refuses to rename
//! anything but regular files, and a log directory the service's user could
//! change is refused (by the config check, and again here at each open).
//!
//! A full disk, a vanished log directory or a refused file must not hurt
//! the service: the bytes are dropped and counted, the daemon logs the
//! failure once, and the next write tries again (reopening the file),
//! logging the recovery with the number of bytes lost.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::sys::Credentials;

/// The longest line kept whole; a longer one is cut into pieces this long.
pub const MAX_LINE: usize = 64 * 1024;

/// Where a service's output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sink {
    /// A file rotated by size: `path`, `path.1` … `path.KEEP`. When the
    /// service runs as another user than the daemon, `service_user` is
    /// that user, who must not be able to change the log's directory.
    File { path: PathBuf, max_size: u64, keep: u32, service_user: Option<Credentials> },
    /// The system log (/dev/log), tagged with the service name.
    Syslog,
    /// The daemon's own log, each line after the service's name: where a
    /// service with neither `log_file` nor `syslog` writes. It never holds
    /// the daemon's stdout or stderr, which may be a pipe or a terminal
    /// that goes away with the daemon (procd closes its pipe when it
    /// respawns the daemon), nor can it truncate the daemon's log.
    Log,
}

/// The capture of one instance's output.
pub struct Capture {
    tag: String,
    sink: Sink,
    timestamps: bool,
    /// A line still waiting for its newline.
    partial: Vec<u8>,
    out: Option<Output>,
    /// Bytes dropped since the sink last failed; `Some` while failing.
    lost: Option<u64>,
    /// Bytes dropped in all (reported by /metrics).
    dropped: u64,
    /// Whole lines for the file, written with one write(2) per read of the
    /// pipe rather than one per line.
    batch: Vec<u8>,
    /// The timestamp of the lines of the current read (one clock read and
    /// one formatting per read, not per line).
    stamp: Option<String>,
}

enum Output {
    File { file: File, size: u64 },
    Syslog(UnixDatagram),
    Log,
}

/// Something the daemon should log about a capture (once per episode; a
/// failure and the recovery from it may come out of one read).
#[derive(Debug, PartialEq, Eq)]
pub enum Note {
    Failing(String),
    Recovered { lost: u64 },
}

impl Capture {
    /// `tag` names the service in syslog lines ("web" or "web:1").
    pub fn new(tag: &str, sink: Sink, timestamps: bool) -> Capture {
        Capture {
            tag: tag.to_string(),
            sink,
            timestamps,
            partial: Vec::new(),
            out: None,
            lost: None,
            dropped: 0,
            batch: Vec::new(),
            stamp: None,
        }
    }

    pub fn sink(&self) -> &Sink {
        &self.sink
    }

    /// Bytes dropped because the sink failed, since this capture was made.
    #[cfg(feature = "web")]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The longest piece of a line written as one line: [`MAX_LINE`], or
    /// less when a file could not hold that much with its stamp and newline.
    fn line_limit(&self) -> usize {
        match &self.sink {
            Sink::File { max_size, .. } => {
                let overhead = 1 + if self.timestamps { STAMP_LEN + 1 } else { 0 };
                let fits = usize::try_from(*max_size).unwrap_or(usize::MAX).saturating_sub(overhead).max(1);
                fits.min(MAX_LINE)
            }
            Sink::Syslog | Sink::Log => MAX_LINE,
        }
    }

    /// Takes bytes read from the service's pipe; writes every line they
    /// complete. Returns what the daemon should log: the sink started
    /// failing, or recovered (both, in that order, can happen in one read).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Note> {
        self.stamp = None;
        let mut notes = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.write_line(line, &mut notes);
            } else {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.write_line(&whole, &mut notes);
            }
        }
        self.partial.extend_from_slice(rest);
        let limit = self.line_limit();
        while self.partial.len() >= limit {
            let piece: Vec<u8> = self.partial.drain(..limit).collect();
            self.write_piece(&piece, &mut notes);
        }
        notes.extend(self.write_batch());
        notes
    }

    /// Writes what is left of an unfinished line (the service is gone).
    pub fn flush(&mut self) -> Vec<Note> {
        let mut notes = Vec::new();
        if self.partial.is_empty() {
            return notes;
        }
        self.stamp = None;
        let line = std::mem::take(&mut self.partial);
        self.write_line(&line, &mut notes);
        notes.extend(self.write_batch());
        notes
    }

    /// Writes one line, cut into pieces when it is longer than a piece may be.
    fn write_line(&mut self, line: &[u8], notes: &mut Vec<Note>) {
        if line.is_empty() {
            return self.write_piece(line, notes);
        }
        for piece in line.chunks(self.line_limit()) {
            self.write_piece(piece, notes);
        }
    }

    fn write_piece(&mut self, line: &[u8], notes: &mut Vec<Note>) {
        let mut text = Vec::with_capacity(line.len() + 22);
        if self.timestamps && matches!(self.sink, Sink::File { .. }) {
            let stamp = self.stamp.get_or_insert_with(|| crate::msg::utc_timestamp(SystemTime::now()));
            text.extend_from_slice(stamp.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(line);
        let note = match self.try_write(&mut text) {
            // Queued for the file: only the batch's write says how it went.
            Ok(false) => None,
            Ok(true) => self.outcome(Ok(()), text.len()),
            Err(e) => self.outcome(Err(e), text.len()),
        };
        notes.extend(note);
    }

    /// Writes the batched lines out.
    fn write_batch(&mut self) -> Option<Note> {
        if self.batch.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.batch);
        let result = match (&self.sink, self.out.as_mut()) {
            (Sink::File { path, .. }, Some(Output::File { file, size })) => {
                let written = file.write_all(&batch).map_err(|e| crate::msg::path_error(path, &e));
                *size += batch.len() as u64;
                written
            }
            _ => Err("capture output does not match its sink".into()),
        };
        self.outcome(result, batch.len())
    }

    /// Turns a write's result into a note, counting what a failure lost.
    fn outcome(&mut self, result: Result<(), String>, len: usize) -> Option<Note> {
        match result {
            Ok(()) => self.lost.take().map(|lost| Note::Recovered { lost }),
            Err(e) => {
                self.out = None;
                let dropped = len + self.batch.len();
                self.batch.clear();
                let first = self.lost.is_none();
                *self.lost.get_or_insert(0) += dropped as u64;
                self.dropped += dropped as u64;
                first.then_some(Note::Failing(e))
            }
        }
    }

    /// Writes (syslog) or queues (file) one line; `Ok(true)` when it was
    /// really written.
    fn try_write(&mut self, text: &mut Vec<u8>) -> Result<bool, String> {
        if self.out.is_none() {
            self.out = Some(self.open()?);
        }
        match (&self.sink, self.out.as_mut()) {
            (Sink::File { path, max_size, keep, .. }, Some(Output::File { file, size })) => {
                text.push(b'\n');
                let len = text.len() as u64;
                let batched = self.batch.len() as u64;
                // Rotate between lines, before the one that would overflow:
                // what is batched goes to the old file first.
                if *size + batched > 0 && *size + batched + len > *max_size {
                    file.write_all(&self.batch).map_err(|e| crate::msg::path_error(path, &e))?;
                    self.batch.clear();
                    rotate(path, *keep)?;
                    *file = open_append(path).map_err(|e| crate::msg::path_error(path, &e))?;
                    *size = 0;
                }
                self.batch.extend_from_slice(text);
                Ok(false)
            }
            (Sink::Syslog, Some(Output::Syslog(socket))) => {
                // <14>: facility user, severity info; the tag is the service.
                let mut datagram = format!("<14>{}: ", self.tag).into_bytes();
                datagram.extend_from_slice(text);
                socket.send(&datagram).map(|_| true).map_err(|e| format!("/dev/log: {}", crate::msg::io_error(&e)))
            }
            (Sink::Log, Some(Output::Log)) => {
                // Control characters (a CR, an escape sequence) could forge
                // or hide log lines on a terminal: written as \xNN.
                let line = String::from_utf8_lossy(text);
                crate::msg::Log.info(format_args!("{}: {}", self.tag, crate::msg::printable(&line)));
                Ok(true)
            }
            _ => Err("capture output does not match its sink".into()),
        }
    }

    fn open(&self) -> Result<Output, String> {
        match &self.sink {
            Sink::File { path, service_user, .. } => {
                if let Some(user) = service_user {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    if let Ok(Some(why)) = crate::files::unsafe_dir_for(dir, user) {
                        return Err(format!("{}: refusing to write: {why}", path.display()));
                    }
                }
                let file = open_append(path).map_err(|e| crate::msg::path_error(path, &e))?;
                let size = file.metadata().map_or(0, |m| m.len());
                Ok(Output::File { file, size })
            }
            Sink::Syslog => {
                let socket = UnixDatagram::unbound().map_err(|e| crate::msg::io_error(&e))?;
                socket.connect("/dev/log").map_err(|e| format!("/dev/log: {}", crate::msg::io_error(&e)))?;
                socket.set_nonblocking(true).map_err(|e| crate::msg::io_error(&e))?;
                Ok(Output::Syslog(socket))
            }
            Sink::Log => Ok(Output::Log),
        }
    }
}

/// The length of a time stamp (`2026-11-29T14:05:01Z`).
const STAMP_LEN: usize = 20;

/// Opens a log for appending, creating it (as the daemon's user) if need be;
/// never through a link (see `files.rs`).
fn open_append(path: &Path) -> io::Result<File> {
    crate::files::open(OpenOptions::new().create(true).append(true).mode(0o644), path, &[crate::sys::geteuid()])
}

/// Opens a log for reading, never through a link, accepting files of one
/// of `owners`.
fn open_read(path: &Path, owners: &[u32]) -> io::Result<File> {
    crate::files::open(OpenOptions::new().read(true), path, owners)
}

/// Reads a whole log (see [`open_read`]).
fn read(path: &Path, owners: &[u32]) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut open_read(path, owners)?, &mut bytes)?;
    Ok(bytes)
}

/// The name of the `n`th rotated file: `path.n`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// `path.KEEP` is dropped, every `path.N` becomes `path.N+1`, `path`
/// becomes `path.1`. With `keep = 0` the file is simply emptied. Only
/// regular files are moved, and only onto names that are free: a link or a
/// directory under one of these names stops the rotation with an error
/// naming it, for the daemon to log.
fn rotate(path: &Path, keep: u32) -> Result<(), String> {
    let error = |path: &Path, e: io::Error| crate::msg::path_error(path, &e);
    if keep == 0 {
        rotatable(path)?;
        return fs::remove_file(path).map_err(|e| error(path, e));
    }
    let last = rotated(path, keep);
    if rotatable(&last)? {
        fs::remove_file(&last).map_err(|e| error(&last, e))?;
    }
    for n in (0..keep).rev() {
        let (from, to) = (if n == 0 { path.to_path_buf() } else { rotated(path, n) }, rotated(path, n + 1));
        if rotatable(&from)? {
            if fs::symlink_metadata(&to).is_ok() {
                return Err(format!("{}: in the way of rotation; not rotating onto it", to.display()));
            }
            fs::rename(&from, &to).map_err(|e| error(&from, e))?;
        }
    }
    Ok(())
}

/// Whether a log's name holds a regular file (`false`: nothing); an error
/// naming it when it holds something else, which rotation must not move.
fn rotatable(path: &Path) -> Result<bool, String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(true),
        Ok(meta) => Err(format!(
            "{}: is {}, not a regular file; refusing to rotate it",
            path.display(),
            crate::files::kind(&meta)
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(crate::msg::path_error(path, &e)),
    }
}

/// The last `n` lines of a rotated log, oldest first, reading back through
/// `path.1`, `path.2` … as needed (for `logs -n`). Only regular files of
/// one of `owners` are read, never through a link.
pub fn tail(path: &Path, keep: u32, n: usize, owners: &[u32]) -> io::Result<Vec<String>> {
    let mut lines: Vec<String> = Vec::new();
    for k in 0..=keep {
        let file = if k == 0 { path.to_path_buf() } else { rotated(path, k) };
        let text = match read(&file, owners) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound && k > 0 => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut older: Vec<String> = text.lines().map(str::to_string).collect();
        let need = n.saturating_sub(lines.len());
        if older.len() > need {
            older.drain(..older.len() - need);
        }
        older.append(&mut lines);
        lines = older;
        if lines.len() >= n {
            break;
        }
    }
    Ok(lines)
}

/// A run of whole lines of one file of a rotated log, for the web UI's
/// pager: `file` 0 is the log itself, `k` its `k`th rotated file, and the
/// lines are the bytes from `start` to `end` of it.
#[cfg(feature = "web")]
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub lines: Vec<String>,
    pub file: u32,
    pub start: u64,
    pub end: u64,
    /// Lines older than these exist (earlier in the file, or a further
    /// rotated file).
    pub older: bool,
}

/// Where a [`page`] is taken from.
#[cfg(feature = "web")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cursor {
    /// The last `n` lines of the file.
    Last,
    /// The last `n` lines that end at or before this offset (paging back).
    Before(u64),
    /// Every whole line from this offset on (following the log). An offset
    /// past the end means the log was rotated meanwhile: the rest of
    /// `path.1` from there comes first, then the new file from its start.
    After(u64),
}

/// Reads a [`Page`] of at most `n` lines of file `file` of the rotated log
/// at `path` (never through a link, only files of one of `owners`).
#[cfg(feature = "web")]
pub fn page(path: &Path, keep: u32, file: u32, cursor: Cursor, n: usize, owners: &[u32]) -> io::Result<Page> {
    use std::io::{Read, Seek, SeekFrom};
    if file > keep {
        return Err(io::ErrorKind::NotFound.into());
    }
    let name = |k: u32| if k == 0 { path.to_path_buf() } else { rotated(path, k) };
    let older_file = file < keep && fs::symlink_metadata(name(file + 1)).is_ok();
    let (mut bytes, start) = match cursor {
        Cursor::Last | Cursor::Before(_) => {
            let mut bytes = read(&name(file), owners)?;
            if let Cursor::Before(before) = cursor {
                bytes.truncate(before.min(bytes.len() as u64) as usize);
            }
            // Keep the last `n` whole lines: cut after the (n+1)th newline
            // from the end, not counting a final one.
            let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let cut = body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').nth(n.saturating_sub(1));
            let start = cut.map_or(0, |(i, _)| i + 1);
            (bytes[start..].to_vec(), start as u64)
        }
        Cursor::After(after) => {
            let mut current = open_read(&name(file), owners)?;
            let size = current.metadata()?.len();
            let mut bytes = Vec::new();
            let start = if after > size && file == 0 {
                if let Ok(mut old) = open_read(&name(1), owners) {
                    old.seek(SeekFrom::Start(after))?;
                    old.read_to_end(&mut bytes)?;
                }
                0
            } else {
                after.min(size)
            };
            let prefix = bytes.len() as u64;
            current.seek(SeekFrom::Start(start))?;
            current.read_to_end(&mut bytes)?;
            // A line still being written waits for its end.
            let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if (whole as u64) < prefix {
                bytes.truncate(prefix as usize);
            } else {
                bytes.truncate(whole);
            }
            let lines = String::from_utf8_lossy(&bytes).lines().map(str::to_string).collect();
            let end = start + bytes.len() as u64 - prefix;
            return Ok(Page { lines, file, start, end, older: start > 0 || older_file });
        }
    };
    let end = start + bytes.len() as u64;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    let lines = if bytes.is_empty() {
        vec![]
    } else {
        String::from_utf8_lossy(&bytes).split('\n').map(str::to_string).collect()
    };
    Ok(Page { lines, file, start, end, older: start > 0 || older_file })
}

/// Copies what is appended to `path` to `out`, forever, across rotations:
/// when the name points at a new file (another inode) or the file shrank,
/// the rest of the old one is read and the new one is followed from its
/// start. Ends when `out` fails (the reader went away). Like [`tail`], it
/// reads only regular files of one of `owners`.
pub fn follow(path: &Path, out: &mut impl Write, owners: &[u32]) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    // Like `tail -F`: a log that does not exist yet is waited for.
    let mut file = loop {
        match open_read(path, owners) {
            Ok(file) => break file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(e) => return Err(e),
        }
    };
    file.seek(SeekFrom::End(0))?;
    let mut inode = file.metadata()?.ino();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
            continue;
        }
        match fs::metadata(path) {
            Ok(meta) if meta.ino() != inode => {
                // Rotated. Lines may have reached the old file between our
                // last read and the rename: take them, then follow the new
                // file from its start.
                let mut rest = Vec::new();
                file.read_to_end(&mut rest)?;
                if out.write_all(&rest).is_err() {
                    return Ok(());
                }
                file = open_read(path, owners)?;
                inode = meta.ino();
            }
            Ok(meta) if meta.len() < file.stream_position()? => {
                file.seek(SeekFrom::Start(0))?;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mi7-capture-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn lines_are_kept_whole_across_reads_and_rotation() {
        let dir = dir("whole");
        let path = dir.join("svc.log");
        let mut capture =
            Capture::new("svc", Sink::File { path: path.clone(), max_size: 100, keep: 2, service_user: None }, false);
        let mut sent = Vec::new();
        for i in 0..40 {
            let line = format!("line {i:03} {}", "x".repeat(i % 7));
            sent.push(line.clone());
            // Feed in awkward pieces: each line split in two.
            let bytes = format!("{line}\n").into_bytes();
            let (a, b) = bytes.split_at(bytes.len() / 2);
            assert_eq!(capture.feed(a), []);
            assert_eq!(capture.feed(b), []);
        }
        for file in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            let size = fs::metadata(&file).unwrap().len();
            assert!(size <= 100, "{} is {size} bytes", file.display());
        }
        assert!(!rotated(&path, 3).exists());
        // What is kept is exactly the newest lines, in order, none split.
        let kept = tail(&path, 2, 1000, &[crate::sys::geteuid()]).unwrap();
        assert!(!kept.is_empty());
        assert_eq!(kept[..], sent[sent.len() - kept.len()..]);
        assert_eq!(tail(&path, 2, 3, &[crate::sys::geteuid()]).unwrap(), sent[sent.len() - 3..]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(feature = "web")]
    #[test]
    fn pages_go_back_through_rotated_files_and_follow_across_a_rotation() {
        let dir = dir("pages");
        let path = dir.join("svc.log");
        let me = [crate::sys::geteuid()];
        fs::write(rotated(&path, 1), "a\nb\nc\n").unwrap();
        fs::write(&path, "d\ne\npart").unwrap();
        let last = page(&path, 2, 0, Cursor::Last, 5, &me).unwrap();
        assert_eq!(
            (last.lines.clone(), last.start, last.older),
            (vec!["d".into(), "e".into(), "part".into()], 0, true)
        );
        let back = page(&path, 2, 0, Cursor::Before(4), 1, &me).unwrap();
        assert_eq!((back.lines, back.start, back.end), (vec!["e".to_string()], 2, 4));
        let older = page(&path, 2, 1, Cursor::Last, 2, &me).unwrap();
        assert_eq!((older.lines, older.start, older.older), (vec!["b".to_string(), "c".into()], 2, true));
        let oldest = page(&path, 2, 1, Cursor::Before(2), 9, &me).unwrap();
        assert_eq!((oldest.lines, oldest.older), (vec!["a".to_string()], false));
        // Following: only whole lines, then the rest once it ends.
        let follow = page(&path, 2, 0, Cursor::After(2), 100, &me).unwrap();
        assert_eq!((follow.lines, follow.end), (vec!["e".to_string()], 4));
        // Rotated meanwhile: the old file's rest, then the new file.
        fs::write(&path, "d\ne\npart\n").unwrap();
        fs::rename(&path, rotated(&path, 1)).unwrap();
        fs::write(&path, "f\n").unwrap();
        let after = page(&path, 2, 0, Cursor::After(4), 100, &me).unwrap();
        assert_eq!((after.lines, after.start, after.end), (vec!["part".to_string(), "f".into()], 0, 2));
        assert_eq!(page(&path, 2, 0, Cursor::After(2), 100, &me).unwrap().lines, Vec::<String>::new());
        assert!(page(&path, 2, 3, Cursor::Last, 1, &me).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn timestamps_prefix_each_line() {
        let dir = dir("stamps");
        let path = dir.join("svc.log");
        let mut capture = Capture::new(
            "svc",
            Sink::File { path: path.clone(), max_size: 1 << 20, keep: 1, service_user: None },
            true,
        );
        capture.feed(b"hello\nworld\npart");
        capture.flush();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        for (line, word) in lines.iter().zip(["hello", "world", "part"]) {
            assert!(line.len() == 21 + word.len() && line.ends_with(&format!("Z {word}")), "{line:?}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_vanished_directory_is_reported_once_then_recovered() {
        let dir = dir("vanish");
        let path = dir.join("sub").join("svc.log");
        let mut capture = Capture::new(
            "svc",
            Sink::File { path: path.clone(), max_size: 1 << 20, keep: 1, service_user: None },
            false,
        );
        assert!(matches!(capture.feed(b"lost 1\n")[..], [Note::Failing(_)]));
        assert_eq!(capture.feed(b"lost 2\n"), [], "reported once");
        assert_eq!(capture.feed(b"lost 3\nlost 4\n"), [], "reported once, also for a batch of lines");
        fs::create_dir_all(dir.join("sub")).unwrap();
        assert_eq!(capture.feed(b"back\n"), [Note::Recovered { lost: 24 }]);
        assert_eq!(capture.dropped, 24);
        assert_eq!(fs::read_to_string(&path).unwrap(), "back\n");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn overlong_lines_are_cut_not_held_forever() {
        let dir = dir("long");
        let path = dir.join("svc.log");
        let mut capture = Capture::new(
            "svc",
            Sink::File { path: path.clone(), max_size: 1 << 30, keep: 0, service_user: None },
            false,
        );
        capture.feed(&vec![b'a'; MAX_LINE * 2 + 5]);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_file_grows_past_max_size_even_with_overlong_lines() {
        let dir = dir("bound");
        let path = dir.join("svc.log");
        for timestamps in [false, true] {
            let sink = Sink::File { path: path.clone(), max_size: 1024, keep: 2, service_user: None };
            let mut capture = Capture::new("svc", sink, timestamps);
            // Whole long lines in one read, long partial lines, and short ones.
            capture.feed(&[vec![b'a'; 5000], b"\n".to_vec(), vec![b'b'; 3000]].concat());
            capture.feed(b"short\n");
            capture.feed(&vec![b'c'; MAX_LINE + 10]);
            capture.flush();
            let mut total = 0;
            for file in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
                let size = fs::metadata(&file).unwrap().len();
                assert!(size <= 1024, "{} is {size} bytes", file.display());
                total += size;
            }
            assert!(total > 2 * 1024, "the files are filled, not just rotated: {total}");
            assert!(!rotated(&path, 3).exists());
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_refuses_links_and_directories_and_says_so() {
        let dir = dir("refuse");
        let path = dir.join("svc.log");
        let secret = dir.join("secret");
        fs::write(&secret, "secret\n").unwrap();
        let sink = Sink::File { path: path.clone(), max_size: 1024, keep: 1, service_user: None };
        let mut capture = Capture::new("svc", sink, false);
        assert_eq!(capture.feed(&vec![b'x'; 1020]), []);
        // The next line rotates: onto a directory planted as svc.log.1.
        fs::create_dir(rotated(&path, 1)).unwrap();
        let notes = capture.feed(b"\nmore\n");
        assert!(matches!(&notes[..], [Note::Failing(e)] if e.contains("svc.log.1: is a directory")), "{notes:?}");
        fs::remove_dir(rotated(&path, 1)).unwrap();
        assert!(matches!(capture.feed(b"back\n")[..], [Note::Recovered { .. }]));
        assert_eq!(tail(&path, 1, 1, &[crate::sys::geteuid()]).unwrap(), ["back"]);
        // A link planted as the log is neither written nor read through.
        fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&secret, &path).unwrap();
        let sink = Sink::File { path: path.clone(), max_size: 1024, keep: 1, service_user: None };
        let notes = Capture::new("svc", sink, false).feed(b"through the link\n");
        assert!(matches!(&notes[..], [Note::Failing(e)] if e.contains("symbolic link")), "{notes:?}");
        assert_eq!(fs::read_to_string(&secret).unwrap(), "secret\n");
        let e = tail(&path, 1, 10, &[crate::sys::geteuid()]).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        fs::remove_dir_all(dir).unwrap();
    }
}
