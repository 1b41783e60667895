//! The fd holder: a tiny process that keeps every capture pipe open while
//! the daemon is away (s6-fdholder's idea).
//!
//! A service writes its output into a pipe; the daemon reads the other end.
//! If the daemon exited with the only read end, the service's next write
//! would raise SIGPIPE. So the daemon gives the holder a copy of both ends
//! of every capture pipe; while the daemon is gone, the service's output
//! waits in the pipe's buffer (grown to 1 MiB), and the new daemon gets the
//! pipes back from the holder and reads on from where the old one stopped.
//! A service blocks only once that buffer is full, and only until the
//! daemon is back.
//!
//! The holder is the daemon's own binary, exec'ed as `mi7soft-daemon
//! fd-holder SOCKET` in its own session, so it costs only the pages it
//! touches. It serves one connection at a time on a Unix socket (mode
//! 0600) with fixed-size messages of [`MESSAGE`] bytes, each with its
//! descriptors attached:
//!
//! - `put NAME` + [read, write]: hold this service's pipe (replacing any);
//!   `put @notify` + [socket]: hold the sd_notify socket;
//! - `drop NAME`: close it;
//! - `list`: the holder answers `fd NAME` + its descriptors per entry, then `end`;
//! - `quit`: the holder exits (after `shutdown --stop-all`).
//!
//! Its failure modes: if the holder dies while the daemon runs, the daemon
//! starts a new one and hands it every pipe again; if the holder and the
//! daemon both die, a service's next write fails with EPIPE (it was
//! started with SIGPIPE at its default, so most programs end and are
//! restarted by the next daemon).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys;

/// Every message is exactly this long, padded with spaces.
pub const MESSAGE: usize = 128;

fn message(text: &str) -> [u8; MESSAGE] {
    let mut buf = [b' '; MESSAGE];
    let n = text.len().min(MESSAGE);
    buf[..n].copy_from_slice(&text.as_bytes()[..n]);
    buf
}

fn text(buf: &[u8]) -> String {
    String::from_utf8_lossy(buf).trim_end().to_string()
}

/// The holder process: serves until `quit`. Returns the exit status.
pub fn main(socket: &Path) -> i32 {
    let _ = std::fs::remove_file(socket);
    let old = sys::umask(0o177);
    let listener = UnixListener::bind(socket);
    sys::umask(old);
    let listener = match listener {
        Ok(listener) => listener,
        Err(e) => {
            crate::msg::error(format_args!("fd-holder: {}", crate::msg::path_error(socket, &e)));
            return 1;
        }
    };
    // A few dozen entries at most: a Vec is smaller than a map's code.
    let mut pipes: Vec<(String, Vec<OwnedFd>)> = Vec::new();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        // Only a daemon of our own user may hand over or take pipes.
        if !sys::peer_credentials(stream.as_raw_fd()).is_ok_and(|(_, uid, _)| uid == sys::geteuid()) {
            continue;
        }
        if serve(&stream, &mut pipes) {
            let _ = std::fs::remove_file(socket);
            return 0;
        }
    }
    0
}

/// Serves one daemon until it hangs up; `true` when told to quit.
fn serve(stream: &UnixStream, pipes: &mut Vec<(String, Vec<OwnedFd>)>) -> bool {
    let fd = stream.as_raw_fd();
    let mut buf = [0u8; MESSAGE];
    loop {
        let fds = match sys::recv_fds(fd, &mut buf, 2) {
            Ok(Some(fds)) => fds,
            Ok(None) | Err(_) => return false,
        };
        let request = text(&buf);
        let mut words = request.splitn(2, ' ');
        match (words.next(), words.next()) {
            (Some("put"), Some(name)) if !fds.is_empty() => {
                pipes.retain(|(n, _)| n != name);
                pipes.push((name.to_string(), fds));
            }
            (Some("drop"), Some(name)) => {
                pipes.retain(|(n, _)| n != name);
            }
            (Some("list"), None) => {
                for (name, fds) in pipes.iter() {
                    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                    if sys::send_fds(fd, &message(&format!("fd {name}")), &raw).is_err() {
                        return false;
                    }
                }
                if sys::send_fds(fd, &message("end"), &[]).is_err() {
                    return false;
                }
            }
            (Some("quit"), None) => return true,
            // Anything else is not from a daemon of ours: ignore it.
            _ => {}
        }
    }
}

/// The daemon's connection to the holder.
pub struct Holder {
    stream: UnixStream,
}

impl Holder {
    /// Connects to the holder at `socket`, starting one (`exe fd-holder
    /// socket`, through `start`) if none answers.
    pub fn connect(socket: &Path, start: impl FnOnce() -> io::Result<()>) -> io::Result<Holder> {
        if let Ok(stream) = UnixStream::connect(socket) {
            return Holder::new(stream);
        }
        start()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match UnixStream::connect(socket) {
                Ok(stream) => return Holder::new(stream),
                Err(e) if Instant::now() >= deadline => return Err(e),
                // The holder was just exec'ed; it binds in a few ms. This
                // wait happens at setup or after the holder died, never in
                // the steady state of the loop.
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn new(stream: UnixStream) -> io::Result<Holder> {
        // A socket someone else bound at our path would read every
        // service's output: the holder must run as the daemon's user.
        let (_, uid, _) = sys::peer_credentials(stream.as_raw_fd())?;
        if uid != sys::geteuid() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("the process at the holder's socket runs as uid {uid}, not the daemon's"),
            ));
        }
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Holder { stream })
    }

    /// Hold `fds` (a pipe's two ends, or one socket) under `name`.
    pub fn put(&self, name: &str, fds: &[RawFd]) -> io::Result<()> {
        sys::send_fds(self.stream.as_raw_fd(), &message(&format!("put {name}")), fds)
    }

    pub fn drop_pipe(&self, name: &str) -> io::Result<()> {
        sys::send_fds(self.stream.as_raw_fd(), &message(&format!("drop {name}")), &[])
    }

    pub fn quit(&self) -> io::Result<()> {
        sys::send_fds(self.stream.as_raw_fd(), &message("quit"), &[])
    }

    /// Everything the holder keeps, by name, with its descriptors.
    pub fn list(&self) -> io::Result<Vec<(String, Vec<OwnedFd>)>> {
        let fd = self.stream.as_raw_fd();
        sys::send_fds(fd, &message("list"), &[])?;
        let mut out = Vec::new();
        let mut buf = [0u8; MESSAGE];
        loop {
            let Some(fds) = sys::recv_fds(fd, &mut buf, 2)? else {
                return Err(io::ErrorKind::UnexpectedEof.into());
            };
            let reply = text(&buf);
            if reply == "end" {
                return Ok(out);
            }
            if let Some(name) = reply.strip_prefix("fd ") {
                out.push((name.to_string(), fds));
            }
        }
    }
}
