//! What each [`Request`] does to the daemon: the single handler behind the
//! CLI, the control socket and any later front end, plus reload and the
//! status document.

use super::*;

impl Daemon {
    // -- Requests ----------------------------------------------------------

    /// Handles a request: either the reply now, or a wait to finish later.
    /// Every request that changes something is logged with who asked.
    pub(super) fn handle(&mut self, request: Request, asker: Asker, now: Instant) -> Outcome {
        let refuse = |message: String| (vec![], message);
        if !matches!(request, Request::Status { .. }) {
            self.log.info(format_args!("{} (asked by {asker})", request.to_line()));
        }
        match request {
            Request::Status { name } => {
                let indices = match &name {
                    Some(name) => match self.select(name) {
                        Ok(indices) => indices,
                        Err(e) => return Outcome::Reply(Err(refuse(e))),
                    },
                    None => (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect(),
                };
                Outcome::Reply(Ok(vec![self.status_document(&indices, now).to_json()]))
            }
            Request::Start { name } => {
                let index = match self.start_target(&name) {
                    Ok(index) => index,
                    Err(e) => return Outcome::Reply(Err(refuse(e))),
                };
                self.start(index, now);
                // Answered once it is ready (or failed), like restart.
                Outcome::Wait(Wait::Restarted(vec![(self.key(index), None)]))
            }
            Request::Stop { target } => {
                let indices = match target {
                    // The reverse of start (config) order, as init systems do.
                    Target::All => Ok((0..self.slots.len()).rev().collect::<Vec<usize>>()),
                    Target::Name(name) => self.select(&name),
                };
                match indices {
                    Ok(indices) => Outcome::Wait(self.stop_each(&indices, false, now)),
                    Err(e) => Outcome::Reply(Err(refuse(e))),
                }
            }
            Request::Restart { name } => match self.select(&name) {
                Ok(indices) => Outcome::Wait(self.stop_each(&indices, true, now)),
                Err(e) => Outcome::Reply(Err(refuse(e))),
            },
            Request::Reload => {
                let (ok, lines) = self.reload(now);
                for line in &lines {
                    if ok {
                        self.log.info(line);
                    } else {
                        self.log.error(line);
                    }
                }
                Outcome::Reply(if ok {
                    Ok(lines)
                } else {
                    Err((lines, "reload rejected; the running config is unchanged".into()))
                })
            }
            Request::Shutdown { stop_all: false } => {
                self.log.info("exiting; services keep running");
                self.exit = true;
                Outcome::Reply(Ok(vec!["daemon exiting; services left running".into()]))
            }
            Request::Signal { name, signal } => Outcome::Reply(self.signal(&name, signal)),
            Request::Shutdown { stop_all: true } => {
                self.log.info("stopping every service, then exiting");
                let all: Vec<usize> = (0..self.slots.len()).rev().collect();
                self.shutdown_all(&all, now);
                Outcome::Wait(Wait::ShutdownAll)
            }
        }
    }

    /// `shutdown --stop-all`: stops every instance (dependents first, each
    /// with its stop_signal and stop_timeout), then the daemon exits once
    /// they are down, or at the latest when a client would stop waiting.
    pub(super) fn shutdown_all(&mut self, all: &[usize], now: Instant) {
        self.stop_all = true;
        self.stop_all_until = Some(now + self.wait_timeout());
        self.stop_ordered(all, now);
        self.exit = true;
    }

    /// `signal NAME SIGNAL`: the signal to the main process of each named
    /// instance that has one (as `sv hup` does, not to the whole group: the
    /// main process decides what its workers hear). Not running at all is
    /// [`control::not_running`], which the client turns into exit 3.
    fn signal(&mut self, name: &str, signal: libc::c_int) -> Answer {
        let indices = self.select(name).map_err(|e| (vec![], e))?;
        let (mut lines, mut failed, mut sent) = (Vec::new(), None, false);
        for index in indices {
            let service = &self.slots[index].service;
            let Some(pid) = service.state.main_pid() else {
                lines.push(format!("{}: not running", label(service)));
                continue;
            };
            let line = match sys::kill(pid, signal) {
                Ok(()) => {
                    sent = true;
                    format!("{}: sent SIG{} to pid {pid}", label(service), sys::signal_name(signal))
                }
                Err(e) => {
                    let line = format!("{}: signalling pid {pid}: {}", label(service), msg::io_error(&e));
                    failed.get_or_insert(line.clone());
                    line
                }
            };
            self.log.info(&line);
            lines.push(line);
        }
        match failed {
            Some(message) => Err((lines, message)),
            None if !sent => Err((vec![], crate::control::not_running(name))),
            None => Ok(lines),
        }
    }

    /// Stops (and with `then_start`, restarts) instances; the wait that
    /// answers once they are down (or up again).
    pub(super) fn stop_each(&mut self, indices: &[usize], then_start: bool, now: Instant) -> Wait {
        let keys = indices.iter().map(|&i| (self.key(i), self.slots[i].service.state.pid())).collect();
        if !then_start {
            self.stop_ordered(indices, now);
            return Wait::Down(keys);
        }
        for &index in indices {
            self.dispatch(index, Event::Stop, now);
            self.start(index, now);
            // Services that asked for it restart with what they depend on:
            // stopped now, started again once it is ready.
            let name = self.slots[index].service.name.clone();
            for i in 0..self.slots.len() {
                let slot = &self.slots[i];
                if slot.def.restart_dependents
                    && slot.def.depends_on.contains(&name)
                    && slot.service.state.is_up()
                    && !slot.retired
                {
                    let key = self.key(i);
                    self.dispatch(i, Event::Stop, now);
                    if !self.restart_after.contains(&key) {
                        self.restart_after.push(key);
                    }
                }
            }
        }
        Wait::Restarted(keys)
    }

    /// Which instance `start-process NAME` starts: the named instance, the
    /// first one that is down, or a new one while under max_instances.
    pub(super) fn start_target(&mut self, name: &str) -> Result<usize, String> {
        let indices = self.select(name)?;
        if name.contains(':') || indices.len() > 1 && indices.iter().all(|&i| !self.slots[i].service.state.is_up()) {
            return Ok(indices[0]);
        }
        if let Some(&index) =
            indices.iter().find(|&&i| !self.slots[i].service.state.is_up() || self.slots[i].service.want == Want::Down)
        {
            return Ok(index);
        }
        let def = Rc::clone(&self.slots[indices[0]].def);
        if indices.len() as u32 >= def.max_instances {
            return Err(format!("{name}: already running (max_instances = {})", def.max_instances));
        }
        let instance = (0..).find(|n| !indices.iter().any(|&i| self.slots[i].service.instance == *n)).unwrap_or(0);
        let at = indices[indices.len() - 1] + 1;
        self.slots.insert(at, Slot::new(def, instance));
        Ok(at)
    }

    /// Re-reads the config; on success starts added services, stops removed
    /// ones and restarts changed ones. Returns success and lines to report.
    pub(super) fn reload(&mut self, now: Instant) -> (bool, Vec<String>) {
        let new = match config::load(&self.config.path) {
            Ok(new) => new,
            Err(e) => {
                let mut lines = vec!["reload rejected; the running config is unchanged:".to_string()];
                lines.extend(e.to_string().lines().map(str::to_string));
                return (false, lines);
            }
        };
        let (mut added, mut removed, mut restarted, mut updated, mut unchanged) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        // Sorted, and searched by bisection, so a reload costs n log n for n
        // services, not n squared; no hash map, whose code would be linked
        // for these two uses alone.
        let mut new_names: Vec<&str> = new.services.iter().map(|d| d.name.as_str()).collect();
        new_names.sort_unstable();
        for index in 0..self.slots.len() {
            let name = self.slots[index].service.name.clone();
            if !self.slots[index].retired && new_names.binary_search(&name.as_str()).is_err() {
                if !removed.contains(&name) {
                    removed.push(name);
                }
                self.slots[index].retired = true;
                self.dispatch(index, Event::Stop, now);
            }
        }
        // The live slots by name, each name's in slot order (a stable sort).
        let mut by_name: Vec<usize> = (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect();
        by_name.sort_by(|&a, &b| self.slots[a].service.name.cmp(&self.slots[b].service.name));
        for def in &new.services {
            // Indices stay valid: adding appends, and nothing here removes.
            let first = by_name.partition_point(|&i| self.slots[i].service.name < def.name);
            let indices: Vec<usize> =
                by_name[first..].iter().copied().take_while(|&i| self.slots[i].service.name == def.name).collect();
            let Some(&first) = indices.first() else {
                added.push(def.name.as_str());
                self.add(Rc::clone(def));
                continue;
            };
            let old = Rc::clone(&self.slots[first].def);
            if *old == **def {
                unchanged += 1;
                continue;
            }
            // What it runs changed: restart the running instances. Only the
            // policy (or autostart, max_instances) changed: apply it live.
            let restart = old.fingerprint() != def.fingerprint();
            if restart {
                restarted.push(def.name.as_str())
            } else {
                updated.push(def.name.as_str())
            }
            for index in indices {
                let slot = &mut self.slots[index];
                slot.def = Rc::clone(def);
                slot.service.policy = Rc::clone(&def.policy);
                // A oneshot that is done runs again with what it now says.
                if restart && (slot.service.state.is_up() || slot.service.state == State::Done) {
                    self.dispatch(index, Event::Stop, now);
                    self.start(index, now);
                }
            }
        }
        let mut lines = Vec::new();
        let (old, fresh) = (&self.config.daemon, &new.daemon);
        let fixed = [
            ("pid_file", old.pid_file != fresh.pid_file),
            ("log_file", old.log_file != fresh.log_file),
            ("control_socket", old.control_socket != fresh.control_socket),
            ("state_file", old.state_file != fresh.state_file),
            ("subreaper", old.subreaper != fresh.subreaper),
        ];
        let needs_restart: Vec<&str> = fixed.iter().filter(|(_, changed)| *changed).map(|(key, _)| *key).collect();
        if !needs_restart.is_empty() {
            lines.push(format!(
                "note: [daemon] {} changed; the daemon keeps the old value until it is restarted",
                needs_restart.join(", ")
            ));
        }
        self.config.daemon.check_interval = fresh.check_interval;
        // One join for &str lists in the binary, not a second for Strings.
        let list = |names: &[&str]| {
            if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
        };
        lines.push(format!(
            "reloaded {}: {} added{}, {} removed{}, {} restarted{}, {} updated in place{}, {unchanged} unchanged",
            new.path.display(),
            added.len(),
            list(&added),
            removed.len(),
            list(&removed.iter().map(String::as_str).collect::<Vec<_>>()),
            restarted.len(),
            list(&restarted),
            updated.len(),
            list(&updated),
        ));
        self.config.services = new.services;
        // A log directory named by the new config is made before the logs open.
        for path in service_log_dirs(&self.config) {
            if let Err((dir, e)) = make_parent(&path) {
                self.log.warning(format_args!("log_file {}: mkdir {}", path.display(), msg::path_error(&dir, &e)));
            }
        }
        self.update_outputs();
        self.open_notify();
        self.generation += 1;
        (true, lines)
    }

    /// How long a waiting request may wait: the longest stop timeout of any
    /// instance, plus time for SIGKILL to work.
    pub(super) fn wait_timeout(&self) -> Duration {
        let longest = |s: &Slot| {
            let ready = match s.service.policy.ready {
                crate::config::Ready::Uptime => s.service.policy.min_uptime,
                _ => s.service.policy.ready_timeout,
            };
            s.service.policy.stop_timeout + ready
        };
        self.slots.iter().map(longest).max().unwrap_or_default() + WAIT_SLACK
    }

    /// The status of the instances at `indices`. CPU time and memory come
    /// from one pass over /proc, made only when one of them runs.
    pub(super) fn status_document(&self, indices: &[usize], now: Instant) -> status::Document {
        let any_up = indices.iter().any(|&i| self.slots[i].service.state.pid().is_some());
        let usage = if any_up { procfs::group_usage() } else { Vec::new() };
        status::Document {
            daemon: status::DaemonInfo {
                pid: sys::getpid(),
                version: env!("CARGO_PKG_VERSION").to_string(),
                config: self.config.path.display().to_string(),
            },
            processes: indices
                .iter()
                .map(|&i| {
                    let s = &self.slots[i].service;
                    let uptime = match s.state {
                        State::Running { since, .. } | State::Stopping { since, .. } => {
                            Some(now.saturating_duration_since(since).as_secs())
                        }
                        _ => None,
                    };
                    let used = s.state.pid().and_then(|_| procfs::usage_of(&usage, s.group));
                    status::ProcessInfo {
                        name: s.name.clone(),
                        instance: s.instance,
                        state: s.state.name().to_string(),
                        pid: s.state.pid(),
                        uptime_secs: uptime,
                        restarts: s.n_restarts,
                        last_exit: s.last_exit.clone(),
                        status_text: self.slots[i].status_text.clone(),
                        command: Some(command_line(&self.slots[i].def)),
                        log_file: match &self.slots[i].def.capture {
                            Some(crate::capture::Sink::File { path, .. }) => Some(path.display().to_string()),
                            Some(crate::capture::Sink::Syslog | crate::capture::Sink::Log) | None => None,
                        },
                        // Wall-clock time from the monotonic one, as the page shows it.
                        last_exit_at: s.last_exit_at.map(|at| {
                            let ago = now.saturating_duration_since(at);
                            let wall = SystemTime::now().checked_sub(ago).unwrap_or(UNIX_EPOCH);
                            wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
                        }),
                        ended_by: s.ended_by.map(str::to_string),
                        max_instances: self.slots[i].def.max_instances,
                        next_start_secs: s.next_start().map(|at| {
                            let left = at.saturating_duration_since(now);
                            left.as_secs() + u64::from(left.subsec_nanos() > 0)
                        }),
                        memory_bytes: used.map(|u| u.memory_bytes),
                        cpu_ms: used.map(|u| u.cpu_ms),
                    }
                })
                .collect(),
        }
    }

    /// The answer to a finished wait, or `None` while it must go on.
    pub(super) fn check_wait(&self, wait: &Wait) -> Option<Result<Vec<String>, String>> {
        match wait {
            Wait::Down(keys) => {
                let services: Vec<Option<&Service>> = keys.iter().map(|(k, _)| self.find(k)).collect();
                if services.iter().flatten().any(|s| s.state.is_up()) {
                    return None;
                }
                Some(Ok(keys
                    .iter()
                    .zip(services)
                    .map(|((key, pid), service)| match (pid, service) {
                        (Some(pid), Some(s)) => {
                            format!("{}: stopped (pid {pid}, {})", label(s), s.last_exit.as_deref().unwrap_or("?"))
                        }
                        (Some(pid), None) => format!("{}: stopped (pid {pid})", key.0),
                        (None, _) => format!("{}: was not running", key_label(key)),
                    })
                    .collect()))
            }
            Wait::Restarted(keys) => {
                let mut lines = Vec::new();
                for (key, old) in keys {
                    let Some(s) = self.find(key) else {
                        return Some(Err(format!("{}: removed while restarting", key_label(key))));
                    };
                    let verb = if old.is_some() { "restart" } else { "start" };
                    if let Some(reason) = s.failure() {
                        // The daemon gave up on the new run (it was not
                        // ready in time): that is the answer, without
                        // waiting for the process to be gone. It cannot be
                        // the old run's: the user's stop ended that failure.
                        return Some(Err(format!("{}: failed to {verb}: {reason}", label(s))));
                    }
                    match s.state {
                        State::Running { pid, ready: true, .. } if Some(pid) != *old => {
                            lines.push(format!("{}: {verb}ed (pid {pid})", label(s)))
                        }
                        // A oneshot's run is over once it is done.
                        State::Done => lines.push(format!(
                            "{}: done ({})",
                            label(s),
                            s.last_exit.as_deref().unwrap_or("already done")
                        )),
                        State::Running { .. }
                        | State::Stopping { .. }
                        | State::Draining { .. }
                        | State::Spawning
                        | State::Waiting => {
                            return None;
                        }
                        State::Stopped | State::Backoff | State::Exited | State::Fatal => {
                            let fatal = if s.state == State::Fatal { "; giving up (fatal)" } else { "" };
                            return Some(Err(format!(
                                "{}: failed to {verb}: {}{fatal}",
                                label(s),
                                s.last_exit.as_deref().unwrap_or("unknown error")
                            )));
                        }
                    }
                }
                Some(Ok(lines))
            }
            Wait::ShutdownAll => {
                if self.slots.iter().any(|s| s.service.state.is_up()) {
                    return None;
                }
                Some(Ok(vec![format!(
                    "stopped {}; daemon exiting",
                    msg::count(self.slots.len(), "service", "services")
                )]))
            }
        }
    }
}

/// A service's command and args as one line a shell would read back: a
/// word with anything but plain characters is single-quoted.
fn command_line(def: &config::ServiceDef) -> String {
    let plain = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    let words = std::iter::once(&def.command).chain(&def.args);
    let quoted: Vec<String> =
        words.map(|w| if plain(w) { w.clone() } else { format!("'{}'", w.replace('\'', "'\\''")) }).collect();
    quoted.join(" ")
}
