//! Output pipes: one per service, shared by its instances, read in the poll
//! loop and written out by [`Capture`] (to its log file, the system log, or
//! the daemon's own log after its name); each pipe is also held by the fd
//! holder (see `holder.rs`) so that it outlives the daemon. No service ever
//! holds a descriptor of the daemon's own (a terminal or procd's pipe), which
//! would die with the daemon and take the service with it (SIGPIPE).
//!
//! The holder also keeps the sd_notify socket, so that it stays bound while
//! the daemon is away: messages sent meanwhile wait in it for the next
//! daemon, and clients that connected once keep working.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::*;
use crate::capture::{Capture, Note};
use crate::holder::Holder;

/// How much of one pipe is read per pass, so that a chatty service cannot
/// starve the rest of the loop.
const READ_PER_PASS: usize = 256 * 1024;
/// The pipe buffer asked for: output that waits while the daemon is away.
const PIPE_SIZE: usize = 1 << 20;

/// The holder's name for the notify socket (no service is named so).
const NOTIFY: &str = "@notify";

/// Where a service's output goes: its log file or syslog, else the
/// daemon's log.
fn sink_of(def: &ServiceDef) -> crate::capture::Sink {
    def.capture.clone().unwrap_or(crate::capture::Sink::Log)
}

/// One service's output pipe.
pub(super) struct Pipe {
    pub(super) name: String,
    pub(super) read: File,
    write: OwnedFd,
    pub(super) capture: Capture,
}

impl Daemon {
    /// The holder's socket: next to the pid file.
    fn holder_socket(&self) -> std::path::PathBuf {
        self.config.daemon.pid_file.with_extension("fds")
    }

    /// At start: reach the fd holder (starting one if there is a service)
    /// and take back the pipes and the notify socket it kept for the
    /// previous daemon.
    pub(super) fn attach_holder(&mut self) {
        let socket = self.holder_socket();
        let needed = !self.config.services.is_empty();
        if !needed && !socket.exists() {
            return;
        }
        let holder = match self.connect_holder(&socket) {
            Ok(holder) => holder,
            Err(e) => {
                self.log.error(format_args!(
                    "fd holder {}; output capture will not survive a restart",
                    msg::path_error(&socket, &e)
                ));
                return;
            }
        };
        match holder.list() {
            Ok(held) => {
                for (name, fds) in held {
                    if name == NOTIFY {
                        self.take_notify(&holder, fds);
                        continue;
                    }
                    let def = self.config.services.iter().find(|d| d.name == name);
                    let (Some(def), Ok([read, write])) = (def, <[OwnedFd; 2]>::try_from(fds)) else {
                        let _ = holder.drop_pipe(&name);
                        continue;
                    };
                    let _ = sys::set_nonblocking(read.as_raw_fd());
                    let capture = Capture::new(&name, sink_of(def), def.log_timestamps);
                    self.pipes.push(Pipe { name, read: File::from(read), write, capture });
                }
                if !self.pipes.is_empty() {
                    self.log.info(format_args!("took back {} capture pipes from the fd holder", self.pipes.len()));
                }
            }
            Err(e) => self.log.warning(format_args!("fd holder: list: {}", msg::io_error(&e))),
        }
        self.holder = Some(holder);
    }

    /// Starts `mi7soft-daemon fd-holder SOCKET` in its own session.
    /// Reaches the holder at `socket`, starting one if none answers. One
    /// call site of the generic `Holder::connect`, so one copy of it.
    fn connect_holder(&self, socket: &Path) -> io::Result<Holder> {
        Holder::connect(socket, || self.start_holder())
    }

    fn start_holder(&self) -> io::Result<()> {
        let exe = std::env::current_exe()?;
        let exe = exe.to_str().ok_or_else(|| io::Error::other("the daemon's path is not UTF-8"))?;
        let socket = self.holder_socket().display().to_string();
        let spawn = Spawn::new(exe, &["fd-holder".into(), socket], &self.env, Some(Path::new("/")))?;
        spawn.run(&self.stdin).map(drop).map_err(|e| e.error)
    }

    /// The notify socket the previous daemon left with the holder, if it
    /// is still the one bound at the path (else it is forgotten).
    fn take_notify(&mut self, holder: &Holder, fds: Vec<OwnedFd>) {
        let path = self.notify_path();
        match <[OwnedFd; 1]>::try_from(fds) {
            Ok([fd]) if sys::bound_to(fd.as_raw_fd(), &path) => {
                let socket = std::os::unix::net::UnixDatagram::from(fd);
                let _ = socket.set_nonblocking(true);
                self.notify = Some(socket);
            }
            _ => {
                let _ = holder.drop_pipe(NOTIFY);
            }
        }
    }

    /// Gives the holder the notify socket (and forgets it with `None`).
    pub(super) fn hold_notify(&mut self, fd: Option<RawFd>) {
        match fd {
            Some(fd) => self.hold(NOTIFY, &[fd]),
            None => {
                if let Some(holder) = &self.holder {
                    let _ = holder.drop_pipe(NOTIFY);
                }
            }
        }
    }

    /// The write end a service's stdout and stderr go to, creating its pipe
    /// on first use; `None` when no pipe could be made (which is logged;
    /// the service then writes to /dev/null rather than to anything of the
    /// daemon's).
    pub(super) fn output_fd(&mut self, def: &ServiceDef) -> Option<RawFd> {
        let sink = sink_of(def);
        if let Some(pipe) = self.pipes.iter().find(|p| p.name == def.name) {
            return Some(pipe.write.as_raw_fd());
        }
        let (read, write) = match sys::pipe(libc::O_CLOEXEC) {
            Ok(ends) => ends,
            Err(e) => {
                self.log.error(format_args!("{}: capture pipe: {}", def.name, msg::io_error(&e)));
                return None;
            }
        };
        let _ = sys::set_nonblocking(read.as_raw_fd());
        let _ = sys::grow_pipe(read.as_raw_fd(), PIPE_SIZE);
        let read = File::from(read);
        self.hold(&def.name, &[read.as_raw_fd(), write.as_raw_fd()]);
        let fd = write.as_raw_fd();
        self.pipes.push(Pipe {
            name: def.name.clone(),
            read,
            write,
            capture: Capture::new(&def.name, sink, def.log_timestamps),
        });
        Some(fd)
    }

    /// Gives the holder a copy of a pipe's ends (or of the notify socket);
    /// a holder that died is replaced and given everything again.
    fn hold(&mut self, name: &str, fds: &[RawFd]) {
        if let Some(holder) = &self.holder {
            if holder.put(name, fds).is_ok() {
                return;
            }
        }
        if self.holder.is_some() {
            self.log.warning("fd holder gone; starting a new one");
        }
        let socket = self.holder_socket();
        match self.connect_holder(&socket) {
            Ok(holder) => {
                let _ = holder.put(name, fds);
                for pipe in &self.pipes {
                    let _ = holder.put(&pipe.name, &[pipe.read.as_raw_fd(), pipe.write.as_raw_fd()]);
                }
                if let Some(notify) = &self.notify {
                    let _ = holder.put(NOTIFY, &[notify.as_raw_fd()]);
                }
                self.holder = Some(holder);
            }
            Err(e) => {
                self.log.error(format_args!("fd holder {}", msg::path_error(&socket, &e)));
                self.holder = None;
            }
        }
    }

    /// Reads what the service wrote into pipe `index` and writes its lines.
    pub(super) fn read_output(&mut self, index: usize) {
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        while total < READ_PER_PASS {
            let pipe = &mut self.pipes[index];
            match io::Read::read(&mut &pipe.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    let notes = pipe.capture.feed(&buf[..n]);
                    let name = pipe.name.clone();
                    for note in notes {
                        self.note(&name, note);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: all read
            }
        }
    }

    /// A service's main process ended: take in the last of its output.
    pub(super) fn finish_output(&mut self, name: &str) {
        if let Some(index) = self.pipes.iter().position(|p| p.name == name) {
            self.read_output(index);
            for note in self.pipes[index].capture.flush() {
                self.note(name, note);
            }
        }
    }

    fn note(&mut self, name: &str, note: Note) {
        match note {
            Note::Failing(e) => {
                self.log.error(format_args!("{name}: output capture: {e}; dropping output until it works again"))
            }
            Note::Recovered { lost } => {
                self.log.info(format_args!("{name}: output capture works again ({lost} bytes were lost)"))
            }
        }
    }

    /// After a reload or removal: new sinks apply at once; pipes of
    /// services that are gone and have no process are closed and dropped
    /// from the holder.
    pub(super) fn update_outputs(&mut self) {
        let mut index = 0;
        while index < self.pipes.len() {
            let name = self.pipes[index].name.clone();
            let def = self.config.services.iter().find(|d| d.name == name);
            let up = self.slots.iter().any(|s| s.service.name == name && s.service.state.is_up());
            match def.map(|d| (sink_of(d), d.log_timestamps)) {
                Some((sink, timestamps)) => {
                    if *self.pipes[index].capture.sink() != sink {
                        self.pipes[index].capture = Capture::new(&name, sink, timestamps);
                    }
                    index += 1;
                }
                None if up => index += 1,
                None => {
                    self.read_output(index);
                    let pipe = self.pipes.remove(index);
                    if let Some(holder) = &self.holder {
                        let _ = holder.drop_pipe(&pipe.name);
                    }
                }
            }
        }
    }

    /// After `shutdown --stop-all`: nothing is left to hold.
    pub(super) fn release_holder(&mut self) {
        if let Some(holder) = self.holder.take() {
            let _ = holder.quit();
        }
    }
}
