//! The sd_notify socket: services that speak systemd's notify protocol
//! (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`, `MAINPID=…`) work
//! unchanged, through `NOTIFY_SOCKET`.
//!
//! One datagram socket serves every service. The kernel attaches the
//! sender's pid to each message (SO_PASSCRED), and a message counts only
//! when that pid is a service's main process or a member of its process
//! group; anything else is dropped, so one service cannot speak for
//! another.

use std::os::unix::net::UnixDatagram;

use super::*;

impl Daemon {
    /// Where the notify socket lives: next to the pid file.
    pub(super) fn notify_path(&self) -> std::path::PathBuf {
        self.config.daemon.pid_file.with_extension("notify")
    }

    /// Opens the notify socket if any service uses it.
    pub(super) fn open_notify(&mut self) {
        let wanted = self.config.services.iter().any(uses_notify);
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
            Ok(socket) => self.notify = Some(socket),
            Err(e) => self.log.error(format_args!("notify socket {}", msg::path_error(&path, &e))),
        }
    }

    /// Reads every waiting notification and acts on it.
    pub(super) fn read_notify(&mut self, now: Instant) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(socket) = &self.notify else { return };
            let (n, pid) = match sys::recv_with_pid(socket.as_raw_fd(), &mut buf) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(e) => {
                    self.log.warning(format_args!("notify socket: {}", msg::io_error(&e)));
                    return;
                }
            };
            let Some(index) = pid.and_then(|pid| self.slot_of(pid)) else { continue };
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
                    "MAINPID" => self.log.warning(format_args!(
                        "{label}: MAINPID={value} ignored: the service's main process is the one the daemon started"
                    )),
                    _ => {}
                }
            }
        }
    }

    /// The instance a process belongs to: its main process, or a member of
    /// its process group.
    fn slot_of(&self, pid: sys::Pid) -> Option<usize> {
        if let Some(index) = self.slots.iter().position(|s| s.service.state.pid() == Some(pid)) {
            return Some(index);
        }
        let pgid = procfs::stat(pid)?.pgid;
        self.slots.iter().position(|s| s.service.state.pid() == Some(pgid))
    }
}

/// Whether a service needs NOTIFY_SOCKET.
pub(super) fn uses_notify(def: &ServiceDef) -> bool {
    def.policy.ready == crate::config::Ready::Notify || def.policy.watchdog.is_some()
}
