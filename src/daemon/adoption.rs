//! Taking services back from an earlier daemon, and the state file that
//! makes it possible: adoption at start, watching adopted processes (pidfd,
//! or a periodic check on kernels without it), and writing the state file
//! when, and only when, what it records changed.

use super::*;
use crate::state::Phase;

impl Daemon {
    // -- Adoption and the state file ----------------------------------------

    /// Takes back every recorded instance: a process that still runs is
    /// adopted in the state it was in (starting, running or stopping, with
    /// its deadline), one that is not is put back as it was (stopped,
    /// fatal, in backoff), and one whose process ended meanwhile meets its
    /// restart policy. Then starts what is missing, then applies config
    /// changes made while the daemon was down, exactly as a reload would.
    pub(super) fn adopt_and_start(&mut self) {
        let path = self.config.daemon.state_file.clone();
        let (records, warnings) = state::read(&path);
        for warning in warnings {
            self.log.warning(format_args!("state file {}: {warning}", path.display()));
        }
        let now = Instant::now();
        let mut changed = Vec::new();
        for record in &records {
            let label = key_label(&(record.name.clone(), record.instance));
            if self.slots.iter().any(|s| s.service.name == record.name && s.service.instance == record.instance) {
                self.log
                    .warning(format_args!("state file {}: {label} recorded twice; using the first", path.display()));
                continue;
            }
            let def = self.config.services.iter().find(|d| d.name == record.name).cloned();
            let removed = def.is_none();
            if record.pid == 0 {
                // Nothing ran; only what the user and the policy decided is
                // kept. A removed service has nothing left to do.
                let Some(def) = def else { continue };
                if record.phase == Phase::Stopped && record.instance > 0 {
                    continue;
                }
                let state = match record.phase {
                    Phase::Waiting => State::Waiting,
                    Phase::Backoff => State::Backoff,
                    Phase::Exited => State::Exited,
                    // Never run again by a new daemon: its work is done.
                    Phase::Done => State::Done,
                    Phase::Fatal => State::Fatal,
                    _ => State::Stopped,
                };
                let mut slot = Slot::new(Rc::clone(&def), record.instance);
                slot.service = Service::resumed(&def.name, record.instance, Rc::clone(&def.policy), state);
                self.restore(&mut slot, record);
                if state == State::Backoff && slot.service.deadline.is_none() {
                    slot.service.deadline = Some(now);
                }
                if state == State::Done && record.fingerprint != def.fingerprint() && !changed.contains(&def.name) {
                    changed.push(def.name.clone());
                }
                self.slots.push(slot);
                continue;
            }
            // A service removed while the daemon was down is adopted only to
            // be stopped, as a reload would; it keeps the recorded command.
            let def = def.unwrap_or_else(|| Rc::new(ServiceDef::removed(&record.name)));
            let Some(since) = self.is_ours(record).then(|| process_since(record.starttime, now)) else {
                self.ended_while_down(record, def, removed, now);
                continue;
            };
            let pid = record.pid;
            let policy = &def.policy;
            let (state, fallback) = match (record.phase, record.want_up) {
                (Phase::Starting, true) => {
                    let wait = match policy.ready {
                        crate::config::Ready::Uptime => policy.min_uptime,
                        _ => policy.ready_timeout,
                    };
                    (State::Running { pid, since, ready: false }, Some(now + wait))
                }
                (Phase::Stopping, _) | (_, false) => (State::Stopping { pid, since }, Some(now + policy.stop_timeout)),
                _ => (State::Running { pid, since, ready: true }, None),
            };
            let mut slot = Slot::new(Rc::clone(&def), record.instance);
            slot.service = Service::resumed(&def.name, record.instance, Rc::clone(&def.policy), state);
            self.restore(&mut slot, record);
            slot.service.deadline = slot.service.deadline.or(fallback);
            if let (State::Running { ready: true, .. }, Some(period)) = (state, policy.watchdog) {
                // Pings are not written down (a quiet daemon writes
                // nothing), so the watchdog starts a full period anew.
                slot.service.deadline = Some(now + period);
            }
            slot.watch = self.watch(pid);
            slot.retired = removed;
            self.log.info(format_args!(
                "{label}: adopted pid {pid} ({}, up {})",
                state.name(),
                msg::short_duration(now.saturating_duration_since(since).as_secs())
            ));
            self.slots.push(slot);
            let index = self.slots.len() - 1;
            if removed {
                self.log.info(format_args!("{label}: removed from the config while the daemon was down; stopping it"));
                self.dispatch(index, Event::Stop, now);
            } else if record.fingerprint != def.fingerprint() && !changed.contains(&def.name) {
                changed.push(def.name.clone());
            }
        }
        let defs = self.config.services.clone();
        for def in defs {
            if !self.slots.iter().any(|s| s.service.name == def.name) {
                self.add(def);
            }
        }
        // Status lists services in config order (removed ones last), as if
        // the daemon had never been away.
        let order = |name: &str| self.config.services.iter().position(|d| d.name == name).unwrap_or(usize::MAX);
        let mut slots = std::mem::take(&mut self.slots);
        slots.sort_by_key(|s| (order(&s.service.name), s.service.instance));
        self.slots = slots;
        for name in changed {
            self.log.info(format_args!("{name}: definition changed while the daemon was down; restarting"));
            for index in self.select(&name).unwrap_or_default() {
                let state = self.slots[index].service.state;
                if (state.is_up() || state == State::Done) && self.slots[index].service.want == Want::Up {
                    self.dispatch(index, Event::Stop, now);
                    self.start(index, now);
                }
            }
        }
        let n_polled = self.slots.iter().filter(|s| matches!(s.watch, Watch::Poll)).count();
        let n_pidfd = self.slots.iter().filter(|s| matches!(s.watch, Watch::Pidfd(_))).count();
        if n_pidfd > 0 {
            self.log.info(format_args!("watching {n_pidfd} adopted processes with pidfds"));
        }
        if n_polled > 0 {
            self.log.info(format_args!(
                "watching {n_polled} adopted processes by checking every {}s (no pidfd)",
                self.config.daemon.check_interval
            ));
        }
    }

    /// What a record keeps beyond the state: the user's wish, the process
    /// as the kernel names it, the deadline, the texts and the counts.
    fn restore(&self, slot: &mut Slot, record: &Record) {
        slot.service.want = if record.want_up { Want::Up } else { Want::Down };
        slot.service.group = record.group;
        slot.service.deadline = record.deadline.map(|ms| self.clock.instant(ms));
        slot.service.n_restarts = record.restarts;
        slot.service.last_exit = record.last_exit.clone();
        slot.starttime = record.starttime;
        slot.session = record.session;
        slot.started_at = record.started_at;
        slot.status_text = record.status.clone();
    }

    /// A recorded process is gone (or its pid is another process's now).
    /// What is left of its process group is stopped first (the pid of a
    /// group's leader is not reused while the group lives, so survivors of
    /// a group whose leader's pid is free, or still the recorded process,
    /// are the service's); then the restart policy applies as if the exit
    /// had been seen, unless the user had asked it to stop.
    fn ended_while_down(&mut self, record: &Record, def: Rc<ServiceDef>, removed: bool, now: Instant) {
        let label = key_label(&(record.name.clone(), record.instance));
        let leader_free = procfs::stat(record.group)
            .is_none_or(|leader| record.group == record.pid && leader.starttime == record.starttime);
        let survivors = leader_free && procfs::group_alive(record.group);
        self.log.info(format_args!(
            "{label}: pid {} ended while the daemon was down (or the pid now belongs to another process){}",
            record.pid,
            if survivors {
                format!("; stopping what is left of process group {}", record.group)
            } else {
                String::new()
            }
        ));
        let restart = def.policy.restart != Restart::Never && record.want_up && !removed;
        if !survivors && (removed || (!restart && record.instance > 0)) {
            return;
        }
        let since = process_since(record.starttime, now);
        let state = if record.want_up && !removed {
            State::Running { pid: record.pid, since, ready: true }
        } else {
            State::Stopping { pid: record.pid, since }
        };
        let mut slot = Slot::new(Rc::clone(&def), record.instance);
        slot.service = Service::resumed(&def.name, record.instance, Rc::clone(&def.policy), state);
        slot.service.want = if record.want_up && !removed { Want::Up } else { Want::Down };
        slot.service.group = record.group;
        slot.service.n_restarts = record.restarts;
        slot.retired = removed;
        self.slots.push(slot);
        let index = self.slots.len() - 1;
        // A oneshot's waiter recorded how it ended; anything else ended unseen.
        let status = match def.policy.oneshot {
            true => self.oneshot_status(&record.name, record.instance).unwrap_or(ExitStatus::Unknown),
            false => ExitStatus::Unknown,
        };
        if survivors {
            self.dispatch(index, Event::Exited { status, group_alive: true }, now);
            return;
        }
        self.dispatch(index, Event::Exited { status, group_alive: false }, now);
        if status == ExitStatus::Unknown {
            let service = &mut self.slots[index].service;
            service.last_exit = Some("ended while the daemon was down".into());
        }
    }

    /// Whether a record names a live process this daemon's predecessor
    /// started: the same pid and start time (so not a reused pid), and the
    /// same session or process group, facts the kernel keeps and no
    /// process can forge, unlike its environment or its title. The state
    /// file itself is trusted only when nobody but the daemon's user can
    /// write it or its directory (checked at setup).
    fn is_ours(&self, record: &Record) -> bool {
        procfs::stat(record.pid).is_some_and(|stat| {
            stat.is_alive()
                && stat.starttime == record.starttime
                && (stat.sid == record.session || stat.pgid == record.group)
        })
    }

    /// How to watch an adopted process: a pidfd where the kernel has them.
    pub(super) fn watch(&mut self, pid: sys::Pid) -> Watch {
        if self.use_pidfd {
            match sys::pidfd_open(pid) {
                Ok(fd) => return Watch::Pidfd(fd),
                Err(e) => {
                    self.log.warning(format_args!(
                        "pidfd_open: {}; watching adopted processes by polling instead",
                        msg::io_error(&e)
                    ));
                    self.use_pidfd = false;
                }
            }
        }
        if self.next_check.is_none() {
            self.next_check = Some(Instant::now() + self.check_interval());
        }
        Watch::Poll
    }

    pub(super) fn check_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.daemon.check_interval))
    }

    /// An adopted process ended (its pidfd turned readable, or a check found
    /// it gone): feed the exit to its state machine.
    /// Only a watched process that is really gone counts: a pidfd's
    /// readiness may be stale by the time it is read (the slot was reaped
    /// and started again in the same pass, or a reload moved slots), and a
    /// child of the daemon (a MAINPID= process it inherited as subreaper)
    /// is left to waitpid, which knows its exit status.
    pub(super) fn adopted_ended(&mut self, index: usize, now: Instant) {
        let slot = &self.slots[index];
        if matches!(slot.watch, Watch::Child) {
            return;
        }
        if let Some(stat) = slot.service.state.main_pid().and_then(procfs::stat) {
            let ours = stat.ppid == sys::getpid();
            if stat.starttime == slot.starttime && (stat.is_alive() || ours) {
                if ours {
                    self.slots[index].watch = Watch::Child;
                }
                return;
            }
        }
        self.slots[index].watch = Watch::Child;
        self.ended(index, ExitStatus::Unknown, now);
    }

    /// The fallback watcher: an adopted process is gone when its pid no
    /// longer exists or now belongs to another process (new start time).
    pub(super) fn check_polled(&mut self, now: Instant) {
        let mut any = false;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if !matches!(slot.watch, Watch::Poll) {
                continue;
            }
            any = true;
            let Some(pid) = slot.service.state.main_pid() else { continue };
            if procfs::process_starttime(pid) != Some(slot.starttime) {
                self.adopted_ended(index, now);
            }
        }
        let any = any && self.slots.iter().any(|s| matches!(s.watch, Watch::Poll));
        self.next_check = any.then(|| now + self.check_interval());
    }

    /// Writes the state file if what it records changed.
    pub(super) fn persist(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let records: Vec<Record> =
            self.slots.iter().filter_map(|slot| record_of(slot, &slot.service, &self.clock)).collect();
        self.write_state(&records);
    }

    /// Writes `records` to the state file, unless it holds them already.
    pub(super) fn write_state(&mut self, records: &[Record]) {
        let text = state::render(records);
        if text == self.last_state {
            return;
        }
        let path = &self.config.daemon.state_file;
        match state::write(path, &text) {
            Ok(()) => {
                if self.state_failing {
                    self.log.info(format_args!("state file {}: written again", path.display()));
                }
                self.state_failing = false;
                self.last_state = text;
            }
            Err(e) => {
                if !self.state_failing {
                    self.log.error(format_args!("state file {}; will retry", msg::path_error(path, &e)));
                }
                self.state_failing = true;
                // Retry on the next change, or at the next check.
                self.dirty = true;
            }
        }
    }
}

/// What the state file says of one slot whose state machine is `service`
/// (its own, or a preview of its next step); `None` for one that is retired
/// and down (it is dropped).
pub(super) fn record_of(slot: &Slot, service: &Service, clock: &Clock) -> Option<Record> {
    if slot.retired && !service.state.is_up() {
        return None;
    }
    let phase = match service.state {
        State::Stopped => Phase::Stopped,
        State::Waiting => Phase::Waiting,
        State::Spawning | State::Running { ready: false, .. } => Phase::Starting,
        State::Running { ready: true, .. } => Phase::Running,
        State::Stopping { .. } | State::Draining { .. } => Phase::Stopping,
        State::Backoff => Phase::Backoff,
        State::Exited => Phase::Exited,
        State::Done => Phase::Done,
        State::Fatal => Phase::Fatal,
    };
    let pid = service.state.pid().unwrap_or(0);
    let up = pid != 0;
    Some(Record {
        name: service.name.clone(),
        instance: service.instance,
        phase,
        want_up: service.want == Want::Up,
        pid,
        starttime: if up { slot.starttime } else { 0 },
        session: if up { slot.session } else { 0 },
        group: if up { service.group } else { 0 },
        started_at: if up { slot.started_at } else { 0 },
        restarts: service.n_restarts,
        fingerprint: slot.def.fingerprint(),
        deadline: service.deadline.map(|d| clock.millis(d)),
        last_exit: service.last_exit.clone(),
        status: slot.status_text.clone(),
    })
}

/// Converts between this process's `Instant`s and CLOCK_MONOTONIC
/// milliseconds, which outlive it (the state file's deadlines). Both read
/// the same clock, so one pair of readings, taken at start, converts
/// exactly, and the same deadline always gives the same number.
pub(super) struct Clock {
    instant: Instant,
    millis: u64,
}

impl Clock {
    pub(super) fn now(instant: Instant) -> Clock {
        Clock { instant, millis: sys::monotonic().as_millis() as u64 }
    }

    fn millis(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(ahead) => self.millis + ahead.as_millis() as u64,
            None => self.millis.saturating_sub(self.instant.duration_since(at).as_millis() as u64),
        }
    }

    fn instant(&self, millis: u64) -> Instant {
        let instant = if millis >= self.millis {
            self.instant.checked_add(Duration::from_millis(millis - self.millis))
        } else {
            self.instant.checked_sub(Duration::from_millis(self.millis - millis))
        };
        instant.unwrap_or(self.instant)
    }
}

/// When a process with this /proc start time started, as an `Instant`.
fn process_since(starttime: u64, now: Instant) -> Instant {
    let uptime = procfs::seconds_since_boot()
        .map(|boot| boot - starttime as f64 / sys::clock_ticks() as f64)
        .map_or(Duration::ZERO, |secs| Duration::from_secs_f64(secs.max(0.0)));
    now.checked_sub(uptime).unwrap_or(now)
}

/// The state file is the daemon's memory of which processes are its own:
/// whoever can rewrite it could aim the daemon at any process. So it and
/// its directory must be writable by the daemon's user alone (a sticky
/// directory such as /tmp excepted, where others cannot replace the file).
pub(super) fn check_state_file(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let euid = sys::geteuid();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let writable_by_others = |m: &std::fs::Metadata| m.mode() & 0o022 != 0;
    if let Ok(meta) = std::fs::metadata(dir) {
        if writable_by_others(&meta) && meta.mode() & 0o1000 == 0 {
            return Err(format!(
                "state file {}: its directory {} is writable by others (mode {:04o}), who could rewrite it and \
                 aim the daemon at any process; refusing to adopt from it (chmod go-w {})",
                path.display(),
                dir.display(),
                meta.mode() & 0o7777,
                dir.display()
            ));
        }
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.uid() != euid || writable_by_others(&meta) || !meta.file_type().is_file() => {
            let what = if !meta.file_type().is_file() {
                "not a regular file"
            } else if meta.uid() != euid {
                "owned by another user"
            } else {
                "writable by others"
            };
            Err(format!(
                "state file {}: {what} (owner uid {}, mode {:04o}); only the daemon's user (uid {euid}) may write \
                 it, so refusing to adopt from it",
                path.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ))
        }
        _ => Ok(()),
    }
}
