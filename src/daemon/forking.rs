//! Classic forking daemons: nginx with `daemon on;`, dnsmasq without `-k`.
//! They fork, the child calls setsid, and the started process exits 0.
//!
//! With `pid_file` (systemd's PIDFile=, procd's pidfile), that exit is a
//! hand-over: the daemon reads the file on a short deadline, as probes
//! retry (the loop never sleeps), until it names a process of the service
//! or the ready timeout passes. The pid is believed only on kernel facts:
//! it is in the started process's session, or it was inherited by the
//! daemon, a child subreaper, from a tree that began no earlier than the
//! spawn (the started process's child that made a session of its own and
//! whose parent exited is reparented to the daemon); it is no other
//! instance's main process; and it runs as the service's user (any user,
//! for a service that runs as root, as `MAINPID=` from root). Then it
//! becomes the main process through `MAINPID=`'s path (`hand_over`). A
//! stale, unreadable or foreign file is waited out and then refused: a
//! failed start, logged with the last reason.
//!
//! Without `pid_file`, a main process that ends while a process it started
//! still runs (in its session, or inherited from it) left something in the
//! background: the log says so, and that process's group is drained as
//! the service's own group would be, so it neither escapes a `stop` nor
//! keeps a port from the next start.

use super::*;

/// How often a pid file is read while the daemon waits for it.
pub(super) const PID_FILE_RETRY: Duration = Duration::from_millis(20);

/// How long a named process that is still in the started process's
/// session is given to leave it: Debian's nginx writes the pid file in the
/// parent, before the child's setsid, and a session or group recorded
/// before that would not match at adoption.
const SETTLE: Duration = Duration::from_millis(200);

/// An instance whose started process exited successfully, waiting for its
/// pid file to name its new main process.
pub(super) struct PidWait {
    /// How the started process ended.
    pub(super) status: ExitStatus,
    /// When it is given up on: the ready timeout.
    pub(super) until: Instant,
    /// When the started process's exit was seen.
    pub(super) exited: Instant,
}

impl Daemon {
    /// The started process of a `pid_file` service ended. `true` when that
    /// is a hand-over to wait for (a successful exit of the process the
    /// daemon started), not the service's end.
    pub(super) fn forked_away(&mut self, index: usize, pid: sys::Pid, status: ExitStatus, now: Instant) -> bool {
        let slot = &self.slots[index];
        let handing_over = matches!(slot.service.state, State::Running { .. })
            && slot.service.policy.pid_file.is_some()
            && slot.session == pid
            && matches!(status, ExitStatus::Code(code) if slot.service.policy.success_exit_codes.contains(&code));
        if handing_over {
            self.log.info(format_args!(
                "{}: pid {pid} exited with {status}; waiting for its pid file",
                label(&self.slots[index].service)
            ));
            let service = &self.slots[index].service;
            let until = match service.state {
                State::Running { ready: false, .. } => service.deadline,
                _ => None,
            };
            let until = until.unwrap_or(now + service.policy.ready_timeout);
            self.slots[index].pid_wait = Some(PidWait { status, until, exited: now });
        }
        handing_over
    }

    /// Each pass while instances wait for their pid files: a file that
    /// names the service's process hands the service over to it; at the
    /// ready timeout (or once a stop was asked), one that does not is a
    /// failed start.
    pub(super) fn check_pid_files(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let Some(wait) = &self.slots[index].pid_wait else { continue };
            let (status, until, exited) = (wait.status, wait.until, wait.exited);
            let Some(path) = self.slots[index].service.policy.pid_file.clone() else {
                // A reload took the key away: the exit is the exit.
                self.slots[index].pid_wait = None;
                let group_alive = procfs::group_alive(self.slots[index].service.group);
                self.dispatch(index, Event::Exited { status, group_alive }, now);
                continue;
            };
            match self.read_pid_file(index, &path) {
                Ok((_, stat)) if stat.sid == self.slots[index].session && now < exited + SETTLE => {}
                Ok((pid, stat)) => {
                    self.slots[index].pid_wait = None;
                    let ready = matches!(self.slots[index].service.policy.ready, crate::config::Ready::Uptime);
                    self.hand_over(index, pid, stat, &format!("from pid file {}", path.display()), now);
                    if ready {
                        self.log.info(format_args!("{}: ready (pid file)", label(&self.slots[index].service)));
                        self.dispatch(index, Event::Ready, now);
                    }
                }
                Err(why) => {
                    let stopping = matches!(self.slots[index].service.state, State::Stopping { .. });
                    if !stopping && until > now {
                        continue;
                    }
                    self.slots[index].pid_wait = None;
                    let group_alive = procfs::group_alive(self.slots[index].service.group);
                    if stopping {
                        // A stop overtook the hand-over: the exit ends it.
                        self.dispatch(index, Event::Exited { status, group_alive }, now);
                        continue;
                    }
                    let reason = format!("pid file {}: {why}; not adopted", path.display());
                    self.log.error(format_args!("{}: {reason}", label(&self.slots[index].service)));
                    self.dispatch(index, Event::NoMainPid { reason, group_alive }, now);
                }
            }
        }
    }

    /// The process the pid file names, if it is the service's (see the
    /// module's documentation); the error says why not.
    fn read_pid_file(&self, index: usize, path: &Path) -> Result<(sys::Pid, procfs::Stat), String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err("it does not exist".into()),
            Err(e) => return Err(format!("cannot be read: {}", msg::io_error(&e))),
        };
        let text = text.trim();
        let pid = text.parse::<sys::Pid>().ok().filter(|&pid| pid > 0).ok_or_else(|| {
            if text.is_empty() { "it is empty".to_string() } else { format!("{text:?} is not a process id") }
        })?;
        let slot = &self.slots[index];
        let Some(stat) = procfs::stat(pid).filter(procfs::Stat::is_alive) else {
            return Err(format!("it names pid {pid}, which does not run (a stale pid file?)"));
        };
        let since = slot.starttime;
        let in_session = stat.sid == slot.session && stat.starttime >= since;
        let inherited = procfs::inherited_since(pid, sys::getpid(), since);
        let another = self.slots.iter().enumerate().any(|(i, s)| {
            i != index && s.service.state.is_up() && (s.service.state.main_pid() == Some(pid) || s.session == stat.sid)
        });
        if !(in_session || inherited) || another || procfs::runs_our_program(pid) {
            return Err(format!(
                "it names pid {pid}, which is neither in the service's session ({}) nor a process its started \
                 process left to the supervisor",
                slot.session
            ));
        }
        let user = slot.def.credentials.as_ref().map_or(sys::geteuid(), |c| c.uid);
        if user != 0 && procfs::uid(pid) != Some(user) {
            return Err(format!("it names pid {pid}, which runs as another user than the service (uid {user})"));
        }
        Ok((pid, stat))
    }

    /// A process the ended main process of `index` left running outside
    /// its process group: in its session, or inherited by the daemon from
    /// it, started since, and nobody else's. One /proc scan, made only when
    /// a main process ends with its group gone.
    pub(super) fn left_behind(&self, index: usize) -> Option<(sys::Pid, procfs::Stat)> {
        let slot = &self.slots[index];
        let me = sys::getpid();
        let user = slot.def.credentials.as_ref().map_or(sys::geteuid(), |c| c.uid);
        let others: Vec<sys::Pid> = (0..self.slots.len())
            .filter(|&i| i != index && self.slots[i].service.state.is_up())
            .flat_map(|i| [self.slots[i].session, self.slots[i].service.group])
            .collect();
        let is_leftover = |&(pid, stat): &(sys::Pid, procfs::Stat)| {
            let in_session = stat.sid == slot.session && stat.starttime >= slot.starttime;
            let inherited = stat.ppid == me && stat.starttime >= slot.starttime;
            (in_session || inherited)
                && !others.contains(&stat.sid)
                && !others.contains(&stat.pgid)
                && !self.is_check_command(pid)
                && !procfs::runs_our_program(pid)
                && (user == 0 || procfs::uid(pid) == Some(user))
        };
        // As a subreaper the daemon inherits every orphan, so what a service
        // left running descends from one of the daemon's children (the top
        // of what is left, in its session or inherited, is one): reading
        // those is far cheaper than all of /proc, on a restart's path.
        match procfs::children(me).filter(|_| self.subreaper) {
            Some(children) => children
                .into_iter()
                .filter_map(|pid| Some((pid, procfs::stat(pid).filter(procfs::Stat::is_alive)?)))
                .find(is_leftover),
            None => procfs::live().find(is_leftover),
        }
    }
}
