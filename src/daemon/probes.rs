//! Readiness probes and health checks, run without blocking the loop.
//!
//! A probe is a TCP connect (a non-blocking socket in the poll set) or a
//! command (a child in its own session, its output collected for the log,
//! its exit reaped like any other). At most one probe runs per instance at
//! a time. Readiness probes of a `starting` instance retry every
//! [`READY_RETRY`] until one succeeds (the state machine's `ready_timeout`
//! bounds the whole wait); health checks of a `running` instance run every
//! `interval`, and `retries` failures in a row make it restart.

use std::os::fd::OwnedFd;

use super::*;
use crate::config::{HealthCheck, Probe, Ready};

/// How soon a failed readiness probe is tried again.
const READY_RETRY: Duration = Duration::from_millis(250);
/// How long one readiness probe may take.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a check command's output is kept for the log.
const OUTPUT_KEPT: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Purpose {
    Ready,
    Health,
}

/// One running probe.
pub(super) enum Run {
    Tcp {
        socket: OwnedFd,
        addr: std::net::SocketAddr,
        deadline: Instant,
    },
    /// `eof`: the output pipe is closed (polling it again would spin).
    Command {
        pid: sys::Pid,
        output: File,
        text: Vec<u8>,
        eof: bool,
        deadline: Instant,
    },
}

/// The probing of one instance.
pub(super) struct Check {
    pub(super) key: Key,
    pub(super) purpose: Purpose,
    pub(super) run: Option<Run>,
    pub(super) next: Instant,
    failures: u32,
}

impl Check {
    /// The descriptor to poll while a probe runs, and for what.
    pub(super) fn poll_fd(&self) -> Option<PollFd> {
        match &self.run {
            Some(Run::Tcp { socket, .. }) => Some(PollFd::new(socket.as_raw_fd(), sys::POLLOUT)),
            Some(Run::Command { output, eof: false, .. }) => Some(PollFd::new(output.as_raw_fd(), sys::POLLIN)),
            Some(Run::Command { eof: true, .. }) | None => None,
        }
    }

    /// When this check next needs the loop: its next run or its deadline.
    pub(super) fn due(&self) -> Instant {
        match &self.run {
            Some(Run::Tcp { deadline, .. } | Run::Command { deadline, .. }) => *deadline,
            None => self.next,
        }
    }
}

impl Daemon {
    /// Makes the set of checks match the instances: a readiness probe for
    /// each `starting` instance that has one, a health check for each
    /// `running` one; checks of instances in any other state end.
    pub(super) fn schedule_checks(&mut self, now: Instant) {
        let mut wanted: Vec<(Key, Purpose)> = Vec::new();
        for slot in &self.slots {
            let key = (slot.service.name.clone(), slot.service.instance);
            match slot.service.state {
                State::Running { ready: false, .. } if matches!(slot.service.policy.ready, Ready::Probe(_)) => {
                    wanted.push((key, Purpose::Ready))
                }
                State::Running { ready: true, .. } if slot.def.health_check.is_some() => {
                    wanted.push((key, Purpose::Health))
                }
                _ => {}
            }
        }
        let mut checks = std::mem::take(&mut self.checks);
        checks.retain_mut(|check| {
            let keep = wanted.iter().any(|(k, p)| *k == check.key && *p == check.purpose);
            if !keep {
                abort(check);
            }
            keep
        });
        for (key, purpose) in wanted {
            if !checks.iter().any(|c| c.key == key && c.purpose == purpose) {
                let next = match purpose {
                    Purpose::Ready => now,
                    Purpose::Health => now + self.health_of(&key).map_or(Duration::ZERO, |h| h.interval),
                };
                checks.push(Check { key, purpose, run: None, next, failures: 0 });
            }
        }
        self.checks = checks;
    }

    fn health_of(&self, key: &Key) -> Option<HealthCheck> {
        self.slots[self.index_of(key)?].def.health_check.clone()
    }

    fn probe_of(&self, key: &Key, purpose: Purpose) -> Option<(Probe, Duration)> {
        let slot = &self.slots[self.index_of(key)?];
        match purpose {
            Purpose::Ready => match &slot.service.policy.ready {
                Ready::Probe(probe) => Some((probe.clone(), READY_PROBE_TIMEOUT)),
                Ready::Uptime | Ready::Notify => None,
            },
            Purpose::Health => slot.def.health_check.as_ref().map(|h| (h.probe.clone(), h.timeout)),
        }
    }

    /// Starts due probes, finishes TCP probes whose socket is ready, reads
    /// command output, and fails probes past their deadline.
    pub(super) fn run_checks(&mut self, probed: &[(Key, Purpose)], now: Instant) {
        for index in 0..self.checks.len() {
            let check = &self.checks[index];
            let polled_ready = probed.iter().any(|(key, purpose)| *key == check.key && *purpose == check.purpose);
            if self.checks[index].run.is_none() {
                if self.checks[index].next > now {
                    continue;
                }
                let (key, purpose) = (self.checks[index].key.clone(), self.checks[index].purpose);
                let Some((probe, timeout)) = self.probe_of(&key, purpose) else { continue };
                match self.start_probe(&key, &probe, now + timeout) {
                    Ok(run) => self.checks[index].run = Some(run),
                    Err(reason) => self.finish_check(index, Err(reason), now),
                }
                continue;
            }
            let outcome = match &mut self.checks[index].run {
                None => None,
                Some(Run::Tcp { socket, addr, deadline }) => {
                    if polled_ready {
                        Some(
                            sys::socket_error(socket.as_raw_fd())
                                .map_err(|e| format!("connect {addr}: {}", msg::io_error(&e))),
                        )
                    } else if *deadline <= now {
                        Some(Err(format!("connect {addr}: timed out")))
                    } else {
                        None
                    }
                }
                Some(Run::Command { pid, output, text, eof, deadline }) => {
                    if polled_ready {
                        *eof = collect(output, text);
                    }
                    if *deadline <= now {
                        let _ = sys::kill_group(*pid, libc::SIGKILL);
                        Some(Err("timed out".to_string()))
                    } else {
                        None
                    }
                }
            };
            if let Some(result) = outcome {
                self.finish_check(index, result, now);
            }
        }
    }

    fn start_probe(&mut self, key: &Key, probe: &Probe, deadline: Instant) -> Result<Run, String> {
        match probe {
            Probe::Tcp(addr) => match sys::tcp_connect(addr) {
                Ok(socket) => Ok(Run::Tcp { socket, addr: *addr, deadline }),
                Err(e) => Err(format!("connect {addr}: {}", msg::io_error(&e))),
            },
            Probe::Command(argv) => {
                let slot = self.index_of(key).map(|index| &self.slots[index]);
                let Some(slot) = slot else { return Err("no such instance".into()) };
                let def = Rc::clone(&slot.def);
                let env = self.environment(&def, key.1);
                let cwd = def.working_directory.as_deref().or_else(|| self.config.path.parent());
                let (read, write) = sys::pipe(libc::O_CLOEXEC).map_err(|e| msg::io_error(&e))?;
                let _ = sys::set_nonblocking(read.as_raw_fd());
                let spawn = Spawn::new(&argv[0], &argv[1..], &env, cwd).map_err(|e| msg::io_error(&e))?;
                let spawn = spawn.credentials(def.credentials.as_ref()).output(Some(write.as_raw_fd()));
                match spawn.run(&self.stdin) {
                    Ok(pid) => {
                        Ok(Run::Command { pid, output: File::from(read), text: Vec::new(), eof: false, deadline })
                    }
                    Err(e) => Err(format!("{}: {}", argv[0], msg::io_error(&e.error))),
                }
            }
        }
    }

    /// Whether `pid` is a running check command.
    pub(super) fn is_check_command(&self, pid: sys::Pid) -> bool {
        self.checks.iter().any(|c| matches!(c.run, Some(Run::Command { pid: p, .. }) if p == pid))
    }

    /// A check command ended: `true` when `pid` was one.
    pub(super) fn check_command_ended(&mut self, pid: sys::Pid, status: ExitStatus, now: Instant) -> bool {
        let Some(index) =
            self.checks.iter().position(|c| matches!(c.run, Some(Run::Command { pid: p, .. }) if p == pid))
        else {
            return false;
        };
        let result = match (&mut self.checks[index].run, status) {
            (_, ExitStatus::Code(0)) => Ok(()),
            (Some(Run::Command { output, text, .. }), status) => {
                let _ = collect(output, text);
                let said = String::from_utf8_lossy(text).trim().replace('\n', " | ");
                Err(if said.is_empty() { status.to_string() } else { format!("{status}: {said}") })
            }
            (_, status) => Err(status.to_string()),
        };
        self.finish_check(index, result, now);
        true
    }

    fn finish_check(&mut self, index: usize, result: Result<(), String>, now: Instant) {
        self.checks[index].run = None;
        let (key, purpose) = (self.checks[index].key.clone(), self.checks[index].purpose);
        let label = key_label(&key);
        let Some(slot) = self.index_of(&key) else {
            return;
        };
        let health = self.health_of(&key);
        let interval = health.as_ref().map_or(Duration::ZERO, |h| h.interval);
        match (purpose, result) {
            (Purpose::Ready, Ok(())) => {
                self.log.info(format_args!("{label}: ready (probe succeeded)"));
                self.dispatch(slot, Event::Ready, now);
            }
            (Purpose::Ready, Err(_)) => self.checks[index].next = now + READY_RETRY,
            (Purpose::Health, Ok(())) => {
                if self.checks[index].failures > 0 {
                    self.log.info(format_args!("{label}: health check passes again"));
                }
                self.checks[index].failures = 0;
                self.checks[index].next = now + interval;
            }
            (Purpose::Health, Err(reason)) => {
                self.checks[index].failures += 1;
                let failures = self.checks[index].failures;
                let retries = health.as_ref().map_or(1, |h| h.retries);
                self.log.warning(format_args!("{label}: health check failed ({failures}/{retries}): {reason}"));
                self.checks[index].next = now + interval;
                if failures >= retries {
                    self.checks[index].failures = 0;
                    // dispatch logs it, as it logs every failure it acts on.
                    let why =
                        format!("health check failed {}: {reason}", msg::count(failures as usize, "time", "times"));
                    self.dispatch(slot, Event::Unhealthy(why), now);
                }
            }
        }
    }
}

/// Keeps what a check command printed, up to OUTPUT_KEPT bytes; `true`
/// once the pipe is at its end.
fn collect(output: &File, text: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match io::Read::read(&mut &*output, &mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                let room = OUTPUT_KEPT.saturating_sub(text.len());
                text.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Ends a probe that is no longer wanted.
fn abort(check: &mut Check) {
    if let Some(Run::Command { pid, .. }) = check.run.take() {
        let _ = sys::kill_group(pid, libc::SIGKILL);
    }
}
