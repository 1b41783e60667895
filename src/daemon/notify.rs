//! The sd_notify socket: services that speak systemd's notify protocol
//! (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`, `MAINPID=…`) work
//! unchanged, through `NOTIFY_SOCKET`.
//!
//! One datagram socket serves every service. The kernel attaches the
//! sender's pid and uid to each message (SO_PASSCRED), and a message counts
//! only when that pid is a service's main process, a member of its process
//! group, or a process of its session that runs as its user; anything else
//! is dropped, so one service cannot speak for another.
//!
//! `MAINPID=` hands the service over to another process (a daemon that
//! forks and lets its parent exit). It is taken only when that process is
//! in the service's session or descends from its main process (so the
//! service started it), and belongs to the sender's user, unless the
//! sender is root. From then on that process is the one watched and recorded,
//! and signals go to its process group; the old main process may exit
//! without that counting as the service's end, provided the message is
//! sent before it does.

use std::os::unix::net::UnixDatagram;

use super::*;

impl Daemon {
    /// Where the notify socket lives: next to the pid file.
    pub(super) fn notify_path(&self) -> std::path::PathBuf {
        self.config.daemon.pid_file.with_extension("notify")
    }

    /// Opens the notify socket if any service uses it (unless the fd
    /// holder gave back the one an earlier daemon opened).
    pub(super) fn open_notify(&mut self) {
        let wanted = self.config.services.iter().any(|d| uses_notify(d));
        if !wanted || self.notify.is_some() {
            return;
        }
        let path = self.notify_path();
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).and_then(|socket| {
            sys::set_passcred(socket.as_raw_fd())?;
            socket.set_nonblocking(true)?;
            // Services may run as other users; the credentials check, not
            // the file mode, decides who is heard.
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
            Ok(socket)
        });
        match socket {
            Ok(socket) => {
                // Kept by the fd holder too, so it stays bound and queues
                // messages while the daemon is away.
                self.hold_notify(Some(socket.as_raw_fd()));
                self.notify = Some(socket);
            }
            Err(e) => self.log.error(format_args!("notify socket {}", msg::path_error(&path, &e))),
        }
    }

    /// Reads every waiting notification and acts on it.
    pub(super) fn read_notify(&mut self, now: Instant) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(socket) = &self.notify else { return };
            let (n, sender) = match sys::recv_with_sender(socket.as_raw_fd(), &mut buf) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(e) => {
                    self.log.warning(format_args!("notify socket: {}", msg::io_error(&e)));
                    return;
                }
            };
            let Some((index, sender)) = sender.and_then(|s| Some((self.slot_of(s)?, s))) else { continue };
            for (key, value) in crate::sdnotify::parse(&buf[..n]) {
                let value = value.as_str();
                let label = label(&self.slots[index].service);
                match key.as_str() {
                    "READY" if value == "1" => {
                        if !self.slots[index].service.state.is_ready() {
                            self.log.info(format_args!("{label}: ready (READY=1)"));
                        }
                        self.dispatch(index, Event::Ready, now);
                    }
                    "WATCHDOG" if value == "1" => self.dispatch(index, Event::Ping, now),
                    "STATUS" => self.slots[index].status_text = Some(value.chars().take(200).collect()),
                    "STOPPING" if value == "1" => self.log.info(format_args!("{label}: says it is stopping")),
                    "MAINPID" => {
                        if let Err(why) = self.take_main_pid(index, sender, value, now) {
                            self.log.warning(format_args!("{label}: MAINPID={value:?} ignored: {why}"));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Makes `value` the instance's main process, if it may be (see the
    /// module's documentation); the error says why not.
    fn take_main_pid(&mut self, index: usize, sender: sys::Sender, value: &str, now: Instant) -> Result<(), String> {
        let pid = value.parse::<sys::Pid>().ok().filter(|&pid| pid > 0).ok_or("not a process id")?;
        let slot = &self.slots[index];
        let Some(current) = slot.service.state.main_pid() else {
            return Err("the service's main process has already ended".into());
        };
        if pid == current {
            return Ok(());
        }
        let stat = procfs::stat(pid).filter(procfs::Stat::is_alive).ok_or("no such process")?;
        if stat.sid != slot.session && !procfs::descends(pid, current) {
            return Err(format!(
                "process {pid} is neither in the service's session ({}) nor a descendant of its main process {current}",
                slot.session
            ));
        }
        if sender.uid != 0 && procfs::uid(pid) != Some(sender.uid) {
            return Err(format!("process {pid} belongs to another user than the sender"));
        }
        self.hand_over(index, pid, stat, &format!("MAINPID= from pid {}", sender.pid), now);
        Ok(())
    }

    /// Makes `pid` (whose /proc stat is `stat`, already proven the
    /// service's) the instance's main process: watched, recorded and
    /// signalled from now on. `how` says who named it, for the log. The
    /// one path of `MAINPID=` and `pid_file`.
    pub(super) fn hand_over(&mut self, index: usize, pid: sys::Pid, stat: procfs::Stat, how: &str, now: Instant) {
        let slot = &self.slots[index];
        let current = slot.service.state.main_pid().unwrap_or(0);
        self.log.info(format_args!("{}: main process is now pid {pid} ({how}; was {current})", label(&slot.service)));
        let watch = if stat.ppid == sys::getpid() { Watch::Child } else { self.watch(pid) };
        let slot = &mut self.slots[index];
        slot.watch = watch;
        slot.starttime = stat.starttime;
        slot.session = stat.sid;
        self.dispatch(index, Event::MainPid { pid, group: stat.pgid }, now);
        // Recorded at once: the old main process may be gone already, and
        // a crash before the end of the pass would lose the new one.
        self.dirty = true;
        self.persist();
    }

    /// The instance a sender belongs to: its main process, a member of its
    /// process group, or a process of its session (a worker that made a
    /// process group of its own) or a descendant of its main process (one
    /// that made a session of its own), either running as the same user as
    /// its main process, or as root. Sessions and groups are the kernel's word; a
    /// process can neither forge nor join another user's.
    fn slot_of(&self, sender: sys::Sender) -> Option<usize> {
        let pid = sender.pid;
        if let Some(index) = self.slots.iter().position(|s| s.service.state.pid() == Some(pid)) {
            return Some(index);
        }
        let stat = procfs::stat(pid)?;
        if let Some(index) = self.slots.iter().position(|s| s.service.state.is_up() && s.service.group == stat.pgid) {
            return Some(index);
        }
        let index = match self.slots.iter().position(|s| s.service.state.is_up() && s.session == stat.sid) {
            Some(index) => index,
            None => {
                // A descendant in a session of its own (a daemon's child
                // that called setsid before its MAINPID=).
                let ancestors = procfs::ancestors(pid);
                self.slots.iter().position(|s| s.service.state.main_pid().is_some_and(|m| ancestors.contains(&m)))?
            }
        };
        let main = self.slots[index].service.state.main_pid()?;
        (sender.uid == 0 || procfs::uid(main) == Some(sender.uid)).then_some(index)
    }
}

/// Whether a service needs NOTIFY_SOCKET.
pub(super) fn uses_notify(def: &ServiceDef) -> bool {
    def.policy.ready == crate::config::Ready::Notify || def.policy.watchdog.is_some()
}
