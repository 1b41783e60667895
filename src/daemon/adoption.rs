//! Taking services back from an earlier daemon, and the state file that
//! makes it possible: adoption at start, watching adopted processes (pidfd,
//! or a periodic check on kernels without it), and writing the state file
//! when, and only when, what it records changed.

use super::*;

impl Daemon {
    // -- Adoption and the state file ----------------------------------------

    /// Takes back every recorded process that still runs, then starts what
    /// is missing, then applies config changes made while the daemon was
    /// down, exactly as a reload would.
    pub(super) fn adopt_and_start(&mut self) {
        let path = self.config.daemon.state_file.clone();
        let (records, warnings) = state::read(&path);
        for warning in warnings {
            self.log.warning(format_args!("state file {}: {warning}", path.display()));
        }
        let records = self.merge_marked(records);
        let now = Instant::now();
        let mut changed = Vec::new();
        for record in &records {
            let label = key_label(&(record.name.clone(), record.instance));
            if self.slots.iter().any(|s| s.service.name == record.name && s.service.instance == record.instance) {
                self.log
                    .warning(format_args!("state file {}: {label} recorded twice; using the first", path.display()));
                continue;
            }
            if !self.is_ours(record) {
                self.log.info(format_args!(
                    "{label}: pid {} ended while the daemon was down (or the pid now belongs to another process)",
                    record.pid
                ));
                // The restart policy applies as if the exit had been seen.
                let Some(def) = self.config.services.iter().find(|d| d.name == record.name) else { continue };
                let restart = def.policy.restart != Restart::Never;
                if !restart && record.instance > 0 {
                    continue;
                }
                let mut slot = Slot::new(Rc::clone(def), record.instance);
                slot.service.n_restarts = record.restarts;
                slot.service.last_exit = Some("ended while the daemon was down".into());
                slot.service.state = State::Exited;
                self.slots.push(slot);
                if restart {
                    let index = self.slots.len() - 1;
                    self.start(index, now);
                }
                continue;
            }
            let def = self.config.services.iter().find(|d| d.name == record.name).cloned();
            let removed = def.is_none();
            // A service removed while the daemon was down is adopted only to
            // be stopped, as a reload would; it keeps the recorded command.
            let def = def.unwrap_or_else(|| Rc::new(ServiceDef::removed(&record.name)));
            let uptime = procfs::seconds_since_boot()
                .map(|boot| boot - record.starttime as f64 / sys::clock_ticks() as f64)
                .map_or(Duration::ZERO, |secs| Duration::from_secs_f64(secs.max(0.0)));
            let since = now.checked_sub(uptime).unwrap_or(now);
            let mut slot = Slot::new(Rc::clone(&def), record.instance);
            // The group signals go to: the process's own, or the one it was
            // in when a MAINPID= named it.
            let group = procfs::stat(record.pid).map_or(record.pid, |s| s.pgid);
            slot.service = Service::adopted(
                &def.name,
                record.instance,
                Rc::clone(&def.policy),
                (record.pid, group),
                since,
                record.restarts,
            );
            slot.starttime = record.starttime;
            slot.started_at = record.started_at;
            slot.watch = self.watch(record.pid);
            slot.retired = removed;
            self.log.info(format_args!(
                "{label}: adopted pid {} (up {})",
                record.pid,
                msg::short_duration(uptime.as_secs())
            ));
            self.slots.push(slot);
            if removed {
                let index = self.slots.len() - 1;
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
                if self.slots[index].service.state.is_up() {
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

    /// Adds the services that carry this daemon's marker but that the state
    /// file does not name (a daemon that crashed between a spawn and its
    /// state write). Where two live processes claim one instance, the newer
    /// one is kept and the older one's group is stopped: none runs twice.
    fn merge_marked(&mut self, mut records: Vec<Record>) -> Vec<Record> {
        let mut marked = procfs::marked(&self.marker_owner());
        marked.sort_by_key(|m| std::cmp::Reverse(m.starttime));
        for found in marked {
            let label = key_label(&(found.name.clone(), found.instance));
            let known = records.iter().position(|r| r.name == found.name && r.instance == found.instance);
            if let Some(i) = known {
                let record = &records[i];
                if record.pid == found.pid {
                    continue;
                }
                let recorded_alive = self.is_ours(record);
                if recorded_alive && procfs::related(record.pid, found.pid) {
                    // One run of the service: a worker that made a session
                    // of its own inherits the marker, and so does a process
                    // MAINPID= named; neither is a second copy.
                    continue;
                }
                if recorded_alive && record.starttime >= found.starttime {
                    self.stop_duplicate(&label, found.pid);
                    continue;
                }
                if recorded_alive {
                    self.stop_duplicate(&label, record.pid);
                }
            }
            let fingerprint = self.config.services.iter().find(|d| d.name == found.name).map_or(0, |d| d.fingerprint());
            let uptime = procfs::seconds_since_boot()
                .map_or(0.0, |boot| boot - found.starttime as f64 / sys::clock_ticks() as f64);
            let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let record = Record {
                name: found.name.clone(),
                instance: found.instance,
                pid: found.pid,
                starttime: found.starttime,
                started_at: wall.saturating_sub(uptime.max(0.0) as u64),
                restarts: known.map_or(0, |i| records[i].restarts + 1),
                fingerprint,
            };
            self.log
                .info(format_args!("{label}: found pid {} by its marker; the state file did not record it", found.pid));
            match known {
                Some(i) => records[i] = record,
                None => records.push(record),
            }
        }
        records
    }

    /// Whether a state-file line names a live process this daemon started:
    /// same pid, same start time, and its environment carries this
    /// daemon's marker for that instance. A tampered or stale line can
    /// never make the daemon adopt, or signal, an unrelated process.
    fn is_ours(&self, record: &Record) -> bool {
        procfs::process_starttime(record.pid) == Some(record.starttime)
            && procfs::has_marker(record.pid, &self.marker(&record.name, record.instance))
    }

    fn stop_duplicate(&mut self, label: &str, pid: sys::Pid) {
        self.log.warning(format_args!("{label}: pid {pid} is a second copy left by a crashed daemon; stopping it"));
        let _ = sys::kill_group(pid, libc::SIGTERM);
        let _ = sys::kill_group(pid, libc::SIGCONT);
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
        let records: Vec<Record> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let pid = slot.service.state.pid()?;
                Some(Record {
                    name: slot.service.name.clone(),
                    instance: slot.service.instance,
                    pid,
                    starttime: slot.starttime,
                    started_at: slot.started_at,
                    restarts: slot.service.n_restarts,
                    fingerprint: slot.def.fingerprint(),
                })
            })
            .collect();
        let text = state::render(&records);
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
