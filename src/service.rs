//! One supervised process instance as a pure state machine.
//!
//! This is s6-supervise's `actions[state][event]` table written as an
//! exhaustive `match`, so the compiler checks that every state answers every
//! event. [`Service::step`] takes an [`Event`] and the current time and
//! returns the [`Action`]s the event loop must perform; it makes no system
//! call, which is why it is unit-tested below with an explicit `now` and no
//! processes.
//!
//! As in runit, what the user *wants* ([`Want`]) is kept apart from what the
//! process *is* ([`State`]): a `restart` is "want up" arriving while the
//! process is stopping, and the exit then leads straight to a new spawn.
//!
//! A service is its whole process group (it runs in its own session), not
//! just its main process: when the main process ends and others of its
//! group live on, the instance is `Draining` until the group is gone, so a
//! restart never runs beside leftovers of the previous run.
//!
//! Each instance has at most one deadline (backoff end, stop timeout); when
//! it passes, the loop feeds [`Event::Deadline`]. The policy (restart kind,
//! backoff, start limit, stop signal and timeout) is plain data from the
//! config and can be replaced while the process runs.
//!
//! A run that ends without having been ready, or within `min_uptime` of its
//! start, is a *failed start*, however it ended (an exit, a ready timeout,
//! a watchdog or health-check kill): it backs off, and the start after the
//! backoff counts toward the start limit. A run that was ready and lasted
//! `min_uptime` is restarted at once, so a service that ran for hours and
//! then hung comes back without delay.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use crate::config::{Policy, Ready, Restart};
use crate::msg;
use crate::sys::{ExitStatus, Pid};

/// What the process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running, and not asked to (never started, or stopped by the user).
    Stopped,
    /// Wanted up, but a service it depends on is not ready yet.
    Waiting,
    /// A spawn was asked for and its outcome is not in yet. Only ever seen
    /// between a `Spawn` action and the `Spawned`/`SpawnFailed` event.
    Spawning,
    /// The process runs; `ready` once its readiness condition held (shown
    /// as `starting` before, `running` after).
    Running { pid: Pid, since: Instant, ready: bool },
    /// The stop signal was sent; waiting for the exit (or the deadline).
    /// `since` is still the start of the run.
    Stopping { pid: Pid, since: Instant },
    /// The main process `pgid` ended with `exit` but others of its process
    /// group live on; they were signalled and the instance waits for the
    /// group to be gone. `requested`: the end was a stop or restart the
    /// user asked for, so the restart policy does not apply.
    Draining { pgid: Pid, since: Instant, exit: ExitStatus, requested: bool },
    /// Exited too soon; a new start is due at the deadline.
    Backoff,
    /// Exited and the policy says not to restart.
    Exited,
    /// A oneshot that exited with a success code: its work is done, and it
    /// counts as ready for its dependents. Only `restart` (or a changed
    /// definition) runs it again.
    Done,
    /// Started too often; left alone until the user asks again.
    Fatal,
}

impl State {
    /// The name shown in `status` and the JSON document.
    pub fn name(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Waiting => "waiting",
            State::Spawning | State::Running { ready: false, .. } => "starting",
            State::Running { ready: true, .. } => "running",
            State::Stopping { .. } | State::Draining { .. } => "stopping",
            State::Backoff => "backoff",
            State::Exited => "exited",
            State::Done => "done",
            State::Fatal => "fatal",
        }
    }

    /// The pid of the main process, or of the group's leader while draining.
    pub fn pid(self) -> Option<Pid> {
        match self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            State::Draining { pgid, .. } => Some(pgid),
            State::Stopped
            | State::Waiting
            | State::Spawning
            | State::Backoff
            | State::Exited
            | State::Done
            | State::Fatal => None,
        }
    }

    /// The main process, while it lives (what SIGCHLD and pidfds report on).
    pub fn main_pid(self) -> Option<Pid> {
        match self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            State::Draining { .. }
            | State::Stopped
            | State::Waiting
            | State::Spawning
            | State::Backoff
            | State::Exited
            | State::Done
            | State::Fatal => None,
        }
    }

    /// Whether any process of this instance exists.
    pub fn is_up(self) -> bool {
        self.pid().is_some()
    }

    /// Running and ready, or a oneshot that is done: what dependents and
    /// `start-process` wait for.
    pub fn is_ready(self) -> bool {
        matches!(self, State::Running { ready: true, .. } | State::Done)
    }
}

/// What the user wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Up,
    Down,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The user (or autostart) wants it running; `deps_ready`: every
    /// service it depends on is ready, so it may start now.
    Start { deps_ready: bool },
    /// The user wants it stopped.
    Stop,
    /// The spawn asked for by [`Action::Spawn`] succeeded.
    Spawned(Pid),
    /// The spawn failed before exec; the text says why.
    SpawnFailed(String),
    /// The main process ended; `group_alive`: others of its process group
    /// still exist.
    Exited { status: ExitStatus, group_alive: bool },
    /// The process group of a draining instance is gone.
    GroupGone,
    /// The instance's deadline passed.
    Deadline,
    /// Its readiness condition holds (READY=1, a probe succeeded).
    Ready,
    /// A WATCHDOG=1 ping.
    Ping,
    /// Health checks failed; the text says how.
    Unhealthy(String),
    /// The service named another process as its main one (`MAINPID=`,
    /// or its `pid_file` after the started process exited), already
    /// checked to be its own; `group` is that process's group.
    MainPid { pid: Pid, group: Pid },
    /// The started process of a service with `pid_file` exited
    /// successfully, but the file named no process of the service within
    /// the ready timeout (missing, stale, foreign): a failed start. The
    /// text says why; `group_alive` as for `Exited`.
    NoMainPid { reason: String, group_alive: bool },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fork and exec the service, then feed back `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send a signal to the process group.
    Signal(Pid, libc::c_int),
}

/// A stop or restart someone asked for ended the run.
pub const ENDED_BY_USER: &str = "user";
/// The daemon ended it: not ready in time, a silent watchdog, failed health checks.
pub const ENDED_BY_DAEMON: &str = "daemon";
/// It exited, or died of a signal the daemon did not send, or never started.
pub const ENDED_BY_ITSELF: &str = "itself";

/// The instance's record: its state machine plus what `status` reports.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub instance: u32,
    pub state: State,
    /// The process group that signals go to while a process is up: the
    /// main process's own at spawn (it runs in its own session), that of
    /// the process `MAINPID=` named after that.
    pub group: Pid,
    pub want: Want,
    pub deadline: Option<Instant>,
    /// Shared with the definition it came from.
    pub policy: Rc<Policy>,
    /// Automatic restarts (by the restart policy); a user's start or
    /// restart is not one, so the count says how often it failed on its own.
    pub n_restarts: u32,
    /// Quick failures in a row (died before min_uptime or failed to spawn),
    /// the exponent of the backoff.
    n_quick_failures: u32,
    /// When the automatic starts within the start-limit interval happened.
    recent_starts: VecDeque<Instant>,
    /// The last way it ended: "exit 1", "signal 9 (KILL)", or a spawn error.
    pub last_exit: Option<String>,
    /// When that was, and who ended the run: [`ENDED_BY_USER`],
    /// [`ENDED_BY_DAEMON`] or [`ENDED_BY_ITSELF`]; `None` when unknown (it
    /// ended while no daemon watched).
    pub last_exit_at: Option<Instant>,
    pub ended_by: Option<&'static str>,
    /// Why the daemon is killing it (not ready in time, watchdog, health);
    /// the exit then counts as a failure.
    failure: Option<String>,
    /// The current (or last) run became ready at some point; one that ends
    /// without having been ready is a failed start.
    run_was_ready: bool,
    rng: fastrand::Rng,
}

impl Service {
    pub fn new(name: &str, instance: u32, policy: Rc<Policy>) -> Service {
        Service {
            name: name.to_string(),
            instance,
            state: State::Stopped,
            group: 0,
            want: Want::Down,
            deadline: None,
            policy,
            n_restarts: 0,
            n_quick_failures: 0,
            recent_starts: VecDeque::new(),
            last_exit: None,
            last_exit_at: None,
            ended_by: None,
            failure: None,
            run_was_ready: false,
            rng: fastrand::Rng::new(),
        }
    }

    /// An instance taken back from an earlier daemon's state file, in the
    /// state that daemon recorded (with its process, if one runs). The
    /// caller restores the rest of the record into the public fields: what
    /// the user wants, the process group, the one deadline, the restarts.
    pub fn resumed(name: &str, instance: u32, policy: Rc<Policy>, state: State) -> Service {
        let mut service = Service::new(name, instance, policy);
        service.state = state;
        service.run_was_ready = !matches!(state, State::Running { ready: false, .. });
        service
    }

    /// Advances the state machine by one event at time `now`.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use State::*;
        match (self.state, event) {
            (Stopped | Waiting | Backoff | Exited | Fatal, Event::Start { deps_ready: true }) => {
                // A user's start forgives past failures.
                self.want = Want::Up;
                self.n_quick_failures = 0;
                self.recent_starts.clear();
                self.spawn(now)
            }
            (Stopped | Waiting | Backoff | Exited | Fatal, Event::Start { deps_ready: false }) => {
                self.want = Want::Up;
                self.state = Waiting;
                self.deadline = None;
                vec![]
            }
            (Spawning | Running { .. } | Stopping { .. }, Event::Start { .. }) => {
                // Stopping: the exit will lead to a new spawn (a restart).
                self.want = Want::Up;
                vec![]
            }
            (Done, Event::Start { .. }) => {
                // Its work is done; `restart` (a stop first) runs it again.
                self.want = Want::Up;
                vec![]
            }
            (Draining { pgid, since, exit, .. }, Event::Start { .. }) => {
                self.want = Want::Up;
                self.state = Draining { pgid, since, exit, requested: true };
                vec![]
            }

            (Running { pid, since, .. }, Event::Stop) => {
                self.want = Want::Down;
                self.failure = None;
                self.state = Stopping { pid, since };
                self.signal_stop(now)
            }
            (Draining { pgid, since, exit, .. }, Event::Stop) => {
                self.want = Want::Down;
                self.state = Draining { pgid, since, exit, requested: true };
                vec![]
            }
            (Stopping { .. }, Event::Stop) => {
                // A stop asked while the daemon kills it for a failure is
                // now a stop: no restart after it.
                self.want = Want::Down;
                self.failure = None;
                vec![]
            }
            (Spawning | Stopped | Exited | Fatal, Event::Stop) => {
                self.want = Want::Down;
                vec![]
            }
            (Waiting | Backoff | Done, Event::Stop) => {
                self.want = Want::Down;
                self.state = Stopped;
                self.deadline = None;
                vec![]
            }

            (Spawning, Event::Spawned(pid)) => {
                let wait = match self.policy.ready {
                    // Ready once the pid file names its process.
                    Ready::Uptime if self.policy.pid_file.is_some() => self.policy.ready_timeout,
                    Ready::Uptime => self.policy.min_uptime,
                    Ready::Notify | Ready::Probe(_) => self.policy.ready_timeout,
                };
                // A oneshot is ready when it is done, not while it runs; with
                // pid_file, at the pid file's hand-over.
                let ready = self.policy.ready == Ready::Uptime
                    && self.policy.pid_file.is_none()
                    && wait.is_zero()
                    && !self.policy.oneshot;
                self.state = Running { pid, since: now, ready };
                self.run_was_ready = ready;
                self.group = pid;
                self.deadline = (!ready && !self.policy.oneshot).then(|| now + wait);
                if self.want == Want::Down {
                    // A stop arrived while the spawn was in flight.
                    return self.step(Event::Stop, now);
                }
                vec![]
            }
            (Spawning, Event::SpawnFailed(reason)) => {
                self.ended(reason, ENDED_BY_ITSELF, now);
                self.state = Exited;
                if self.want == Want::Up && self.policy.restart != Restart::Never { self.back_off(now) } else { vec![] }
            }

            (Running { pid, since, ready: false }, Event::Ready) => {
                self.state = Running { pid, since, ready: true };
                self.run_was_ready = true;
                self.deadline = None;
                vec![]
            }
            (Running { ready: true, .. }, Event::Ping) => {
                if let Some(watchdog) = self.policy.watchdog {
                    self.deadline = Some(now + watchdog);
                }
                vec![]
            }
            (Running { ready: false, .. }, Event::Deadline) if self.policy.oneshot => {
                // A oneshot has no deadline while it runs; a stale one is moot.
                self.deadline = None;
                vec![]
            }
            (Running { pid, since, ready: false }, Event::Deadline) => match self.policy.ready {
                Ready::Uptime if self.policy.pid_file.is_some() => {
                    // The started process still runs: it never forked away.
                    let secs = msg::seconds(self.policy.ready_timeout);
                    self.fail(pid, since, format!("did not go to the background within {secs}s"), now)
                }
                Ready::Uptime => {
                    self.state = Running { pid, since, ready: true };
                    self.run_was_ready = true;
                    self.deadline = None;
                    vec![]
                }
                Ready::Notify | Ready::Probe(_) => {
                    let secs = msg::seconds(self.policy.ready_timeout);
                    self.fail(pid, since, format!("not ready within {secs}s"), now)
                }
            },
            (Running { pid, since, ready: true }, Event::Deadline) => {
                let secs = msg::seconds(self.policy.watchdog.unwrap_or_default());
                self.fail(pid, since, format!("no WATCHDOG=1 for {secs}s"), now)
            }
            (Running { pid, since, .. }, Event::Unhealthy(reason)) => self.fail(pid, since, reason, now),

            (Running { since, .. }, Event::Exited { status, group_alive: true }) => {
                // The main process died but left workers behind: they must
                // go before anything starts again.
                self.ended(status.to_string(), ENDED_BY_ITSELF, now);
                self.state = Draining { pgid: self.group, since, exit: status, requested: false };
                self.signal_stop(now)
            }
            (Running { since, .. }, Event::Exited { status, group_alive: false }) => {
                self.deadline = None;
                self.after_exit(status, since, now)
            }
            (Stopping { since, .. }, Event::Exited { status, group_alive: true }) => {
                let by = if self.failure.is_none() { ENDED_BY_USER } else { ENDED_BY_DAEMON };
                self.ended(status.to_string(), by, now);
                // The stop signal already went to the group; keep the stop
                // deadline, or KILL at once if it already passed.
                self.deadline = Some(self.deadline.unwrap_or(now));
                let requested = self.failure.is_none();
                self.state = Draining { pgid: self.group, since, exit: status, requested };
                vec![]
            }
            (Stopping { since, .. }, Event::Exited { status, group_alive: false }) => {
                self.deadline = None;
                if self.failure.is_some() {
                    return self.after_exit(status, since, now);
                }
                self.ended(status.to_string(), ENDED_BY_USER, now);
                self.after_requested_stop(now)
            }

            (Draining { exit, since, requested, .. }, Event::GroupGone) => {
                self.deadline = None;
                if requested { self.after_requested_stop(now) } else { self.after_exit(exit, since, now) }
            }

            (Stopping { .. } | Draining { .. }, Event::Deadline) => {
                // It ignored the stop signal. KILL cannot be ignored; the
                // exit (or the group's end) arrives as usual.
                self.deadline = None;
                vec![Action::Signal(self.group, libc::SIGKILL)]
            }

            (Running { since, ready, .. }, Event::MainPid { pid, group }) => {
                self.state = Running { pid, since, ready };
                self.group = group;
                vec![]
            }
            (Stopping { since, .. }, Event::MainPid { pid, group }) => {
                self.state = Stopping { pid, since };
                if group == self.group {
                    return vec![];
                }
                // The stop signal went to the old group; the new one gets
                // it too, under the same deadline.
                self.group = group;
                let deadline = self.deadline;
                let actions = self.signal_stop(now);
                self.deadline = deadline;
                actions
            }
            (Running { pid, since, .. }, Event::NoMainPid { reason, group_alive }) => {
                // As if the daemon had stopped it for the reason, and it
                // then ended (with what is left of its group to go).
                self.failure = Some(reason);
                self.state = Stopping { pid, since };
                let status = ExitStatus::Code(0);
                if group_alive {
                    self.last_exit = Some(status.to_string());
                    self.state = Draining { pgid: self.group, since, exit: status, requested: false };
                    return self.signal_stop(now);
                }
                self.deadline = None;
                self.after_exit(status, since, now)
            }
            (Backoff, Event::Deadline) => {
                self.deadline = None;
                self.spawn_again(now)
            }

            // Events that cannot apply to the state: a spawn result with no
            // spawn in flight, an exit with no main process, a stale
            // deadline, a notification from a process that is not up.
            (
                Stopped
                | Waiting
                | Running { .. }
                | Stopping { .. }
                | Draining { .. }
                | Backoff
                | Exited
                | Done
                | Fatal,
                Event::Spawned(_) | Event::SpawnFailed(_),
            )
            | (
                Stopped | Waiting | Spawning | Draining { .. } | Backoff | Exited | Done | Fatal,
                Event::Exited { .. },
            )
            | (
                Stopped | Waiting | Spawning | Running { .. } | Stopping { .. } | Backoff | Exited | Done | Fatal,
                Event::GroupGone,
            )
            | (Stopped | Waiting | Spawning | Exited | Done | Fatal, Event::Deadline)
            | (Running { ready: true, .. }, Event::Ready)
            | (Running { ready: false, .. }, Event::Ping)
            | (
                Stopped | Waiting | Spawning | Stopping { .. } | Draining { .. } | Backoff | Exited | Done | Fatal,
                Event::Ready | Event::Ping | Event::Unhealthy(_),
            )
            | (
                Stopped | Waiting | Spawning | Draining { .. } | Backoff | Exited | Done | Fatal,
                Event::MainPid { .. },
            )
            | (
                Stopped | Waiting | Spawning | Stopping { .. } | Draining { .. } | Backoff | Exited | Done | Fatal,
                Event::NoMainPid { .. },
            ) => {
                vec![]
            }
        }
    }

    /// Why the daemon is stopping the process, while it does: "not ready
    /// within 60s", "no WATCHDOG=1 for 30s", "health check failed 3 times:
    /// …". `None` for a stop the user asked for.
    pub fn failure(&self) -> Option<&str> {
        match self.state {
            State::Stopping { .. } | State::Draining { requested: false, .. } => self.failure.as_deref(),
            State::Draining { requested: true, .. }
            | State::Stopped
            | State::Waiting
            | State::Spawning
            | State::Running { .. }
            | State::Backoff
            | State::Exited
            | State::Done
            | State::Fatal => None,
        }
    }

    /// The daemon gives up on a running process (not ready in time, silent
    /// watchdog, failed health checks): stop it, and count its exit as a
    /// failure so the restart policy applies.
    /// `since` stays the start of the run, so a service that was ready and
    /// ran long before failing is restarted at once, not backed off; one
    /// that never became ready is a failed start (see `failed_start`).
    fn fail(&mut self, pid: Pid, since: Instant, reason: String, now: Instant) -> Vec<Action> {
        self.failure = Some(reason);
        self.state = State::Stopping { pid, since };
        self.signal_stop(now)
    }

    /// The stop signal (and SIGCONT, so a stopped process can act on it) to
    /// the group, with the stop timeout as the deadline for SIGKILL.
    fn signal_stop(&mut self, now: Instant) -> Vec<Action> {
        let pgid = self.group;
        self.deadline = Some(now + self.policy.stop_timeout);
        let mut actions = vec![Action::Signal(pgid, self.policy.stop_signal)];
        if self.policy.stop_signal != libc::SIGKILL && self.policy.stop_signal != libc::SIGCONT {
            actions.push(Action::Signal(pgid, libc::SIGCONT));
        }
        actions
    }

    /// A stop or restart the user asked for has finished.
    fn after_requested_stop(&mut self, now: Instant) -> Vec<Action> {
        match self.want {
            Want::Up => self.spawn(now),
            Want::Down => {
                self.state = State::Stopped;
                vec![]
            }
        }
    }

    /// Records how a run ended, when, and by whose doing.
    fn ended(&mut self, how: String, by: &'static str, now: Instant) {
        self.last_exit = Some(how);
        self.last_exit_at = Some(now);
        self.ended_by = Some(by);
    }

    /// The process ended on its own: apply the restart policy.
    fn after_exit(&mut self, status: ExitStatus, since: Instant, now: Instant) -> Vec<Action> {
        self.state = State::Exited;
        let failed = match (self.failure.take(), status) {
            (Some(reason), _) => {
                self.ended(format!("{reason} ({status})"), ENDED_BY_DAEMON, now);
                true
            }
            (None, ExitStatus::Code(code)) => {
                self.ended(status.to_string(), ENDED_BY_ITSELF, now);
                !self.policy.success_exit_codes.contains(&code)
            }
            // A signal the daemon did not send, or an end it could not see.
            (None, ExitStatus::Signal(_) | ExitStatus::Unknown) => {
                self.ended(status.to_string(), ENDED_BY_ITSELF, now);
                true
            }
        };
        if self.policy.oneshot && !failed {
            // The task did its work: done, and its dependents may start.
            self.state = State::Done;
            self.n_quick_failures = 0;
            return vec![];
        }
        let restart = self.want == Want::Up
            && match self.policy.restart {
                Restart::Always => true,
                Restart::OnFailure => failed,
                Restart::Never => false,
            };
        if !restart {
            return vec![];
        }
        if self.failed_start(since, now) {
            self.back_off(now)
        } else {
            self.n_quick_failures = 0;
            self.spawn_again(now)
        }
    }

    /// Whether the run that began at `since` and ended at `now` was a failed
    /// start: it never became ready, or it ended within min_uptime. With
    /// uptime readiness, being ready *is* lasting min_uptime (and an exit
    /// seen in the same pass as that deadline, before it, still counts as
    /// a run of min_uptime).
    fn failed_start(&self, since: Instant, now: Instant) -> bool {
        if self.policy.oneshot {
            // A oneshot that failed never became ready (done is ready).
            return true;
        }
        // With pid_file, uptime readiness is the pid file's hand-over.
        let became_ready = self.run_was_ready || (self.policy.ready == Ready::Uptime && self.policy.pid_file.is_none());
        !became_ready || now.saturating_duration_since(since) < self.policy.min_uptime
    }

    /// Died too soon or failed to spawn: wait `backoff_initial`, doubling
    /// with each failure in a row up to `backoff_max`, with ±20% jitter so
    /// that services failing together do not restart in lockstep.
    fn back_off(&mut self, now: Instant) -> Vec<Action> {
        self.n_quick_failures += 1;
        let doublings = self.n_quick_failures.saturating_sub(1).min(30);
        let delay = self.policy.backoff_initial.saturating_mul(1 << doublings).min(self.policy.backoff_max);
        let jitter = 0.8 + 0.4 * self.rng.f64();
        self.state = State::Backoff;
        self.deadline = Some(now + delay.mul_f64(jitter));
        vec![]
    }

    /// When the next automatic start is due (in backoff).
    pub fn next_start(&self) -> Option<Instant> {
        match self.state {
            State::Backoff => self.deadline,
            _ => None,
        }
    }

    /// An automatic start, unless the start limit says give up.
    fn spawn_again(&mut self, now: Instant) -> Vec<Action> {
        let interval = self.policy.start_limit_interval;
        while self.recent_starts.front().is_some_and(|&t| now.saturating_duration_since(t) >= interval) {
            self.recent_starts.pop_front();
        }
        let burst = self.policy.start_limit_burst as usize;
        if burst > 0 && self.recent_starts.len() >= burst {
            self.state = State::Fatal;
            self.deadline = None;
            return vec![];
        }
        self.n_restarts += 1;
        self.spawn(now)
    }

    fn spawn(&mut self, now: Instant) -> Vec<Action> {
        self.state = State::Spawning;
        self.deadline = None;
        // A failure the daemon was stopping the last run for ends with it,
        // even when a user's stop or restart overtook it while draining.
        self.failure = None;
        self.run_was_ready = false;
        self.recent_starts.push_back(now);
        if self.recent_starts.len() > self.policy.start_limit_burst as usize + 1 {
            self.recent_starts.pop_front();
        }
        vec![Action::Spawn]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: Duration = Duration::from_secs(1);

    fn exited(status: ExitStatus) -> Event {
        Event::Exited { status, group_alive: false }
    }

    fn running_with(policy: Policy, now: Instant) -> Service {
        let mut s = Service::new("web", 0, Rc::new(policy));
        assert_eq!(s.step(Event::Start { deps_ready: true }, now), vec![Action::Spawn]);
        assert_eq!(s.step(Event::Spawned(42), now), vec![]);
        s
    }

    fn running(now: Instant) -> Service {
        running_with(Policy::default(), now)
    }

    #[test]
    fn start_spawns_and_runs() {
        let now = Instant::now();
        let s = running(now);
        assert_eq!(s.state, State::Running { pid: 42, since: now, ready: false });
        assert_eq!(s.state.name(), "starting");
        assert_eq!(s.want, Want::Up);
        assert_eq!(s.n_restarts, 0);
    }

    #[test]
    fn exit_after_min_uptime_restarts_at_once() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let t1 = t0 + SECOND;
        assert_eq!(s.step(exited(ExitStatus::Signal(9)), t1), vec![Action::Spawn]);
        assert_eq!(s.last_exit.as_deref(), Some("signal 9 (KILL)"));
        s.step(Event::Spawned(43), t1);
        assert_eq!(s.n_restarts, 1);
    }

    #[test]
    fn a_users_restart_or_start_is_not_counted_as_a_restart() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let t1 = t0 + SECOND;
        // `restart`: stop, then start while stopping; the exit spawns again.
        s.step(Event::Stop, t1);
        assert_eq!(s.step(Event::Start { deps_ready: true }, t1), vec![]);
        assert_eq!(s.step(exited(ExitStatus::Signal(libc::SIGTERM)), t1), vec![Action::Spawn]);
        s.step(Event::Spawned(43), t1);
        // `stop`, then `start-process`.
        s.step(Event::Stop, t1);
        s.step(exited(ExitStatus::Signal(libc::SIGTERM)), t1);
        assert_eq!(s.step(Event::Start { deps_ready: true }, t1), vec![Action::Spawn]);
        s.step(Event::Spawned(44), t1);
        assert_eq!(s.n_restarts, 0);
        // Only the restart policy's own starts count.
        let t2 = t1 + 2 * SECOND;
        assert_eq!(s.step(exited(ExitStatus::Code(1)), t2), vec![Action::Spawn]);
        assert_eq!(s.n_restarts, 1);
    }

    #[test]
    fn quick_exits_back_off_exponentially_with_jitter_and_reset_after_a_good_run() {
        let policy =
            Policy { backoff_initial: SECOND, backoff_max: 8 * SECOND, start_limit_burst: 0, ..Policy::default() };
        let mut now = Instant::now();
        let mut s = running_with(policy, now);
        for expected in [1u32, 2, 4, 8, 8, 8] {
            assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![]);
            assert_eq!(s.state, State::Backoff);
            let delay = s.deadline.unwrap() - now;
            let nominal = SECOND * expected;
            assert!(delay >= nominal.mul_f64(0.8) && delay <= nominal.mul_f64(1.2), "{delay:?} vs {nominal:?}");
            assert_eq!(s.next_start(), s.deadline);
            now = s.deadline.unwrap();
            assert_eq!(s.step(Event::Deadline, now), vec![Action::Spawn]);
            s.step(Event::Spawned(100), now);
        }
        // A run longer than min_uptime resets the backoff.
        now += SECOND;
        assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![Action::Spawn]);
        s.step(Event::Spawned(101), now);
        s.step(exited(ExitStatus::Code(1)), now);
        assert!(s.deadline.unwrap() - now <= SECOND.mul_f64(1.2));
    }

    #[test]
    fn jitter_spreads_services_failing_together() {
        let now = Instant::now();
        let deadlines: Vec<Instant> = (0..20)
            .map(|_| {
                let mut s = running(now);
                s.step(exited(ExitStatus::Code(1)), now);
                s.deadline.unwrap()
            })
            .collect();
        let first = deadlines[0];
        assert!(deadlines.iter().any(|&d| d != first), "20 services backed off to the same instant");
    }

    #[test]
    fn too_many_starts_within_the_interval_is_fatal() {
        let policy =
            Policy { start_limit_burst: 3, start_limit_interval: Duration::from_secs(10), ..Policy::default() };
        let mut now = Instant::now();
        let mut s = running_with(policy, now);
        // Each run lasts min_uptime, so each restart is immediate.
        for _ in 0..2 {
            now += SECOND;
            assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![Action::Spawn]);
            s.step(Event::Spawned(7), now);
        }
        now += SECOND;
        assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![]);
        assert_eq!((s.state, s.deadline), (State::Fatal, None));
        // The user can always start it again.
        assert_eq!(s.step(Event::Start { deps_ready: true }, now), vec![Action::Spawn]);
    }

    #[test]
    fn starts_spread_beyond_the_interval_are_not_fatal() {
        let policy = Policy { start_limit_burst: 2, start_limit_interval: 3 * SECOND, ..Policy::default() };
        let mut now = Instant::now();
        let mut s = running_with(policy, now);
        for _ in 0..10 {
            now += 2 * SECOND;
            assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![Action::Spawn]);
            s.step(Event::Spawned(7), now);
        }
    }

    #[test]
    fn on_failure_restarts_only_failures() {
        let policy = Policy { restart: Restart::OnFailure, success_exit_codes: vec![0, 3], ..Policy::default() };
        let now = Instant::now();
        let later = now + SECOND;
        for (status, restarts) in [
            (ExitStatus::Code(0), false),
            (ExitStatus::Code(3), false),
            (ExitStatus::Code(1), true),
            (ExitStatus::Signal(libc::SIGTERM), true),
            (ExitStatus::Unknown, true),
        ] {
            let mut s = running_with(policy.clone(), now);
            let actions = s.step(exited(status), later);
            assert_eq!(actions == vec![Action::Spawn], restarts, "{status:?}");
            if !restarts {
                assert_eq!(s.state, State::Exited);
            }
        }
    }

    #[test]
    fn never_means_exited() {
        let now = Instant::now();
        let mut s = running_with(Policy { restart: Restart::Never, ..Policy::default() }, now);
        assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![]);
        assert_eq!(s.state, State::Exited);
    }

    #[test]
    fn spawn_failure_backs_off_and_is_kept_as_last_exit() {
        let now = Instant::now();
        let mut s = Service::new("web", 0, Rc::default());
        s.step(Event::Start { deps_ready: true }, now);
        s.step(Event::SpawnFailed("exec /nope: No such file or directory".into()), now);
        assert_eq!(s.state, State::Backoff);
        assert_eq!(s.last_exit.as_deref(), Some("exec /nope: No such file or directory"));
    }

    #[test]
    fn stop_sends_the_configured_signal_then_kills_at_the_timeout() {
        let policy = Policy { stop_signal: libc::SIGINT, stop_timeout: 3 * SECOND, ..Policy::default() };
        let now = Instant::now();
        let mut s = running_with(policy, now);
        assert_eq!(s.step(Event::Stop, now), vec![Action::Signal(42, libc::SIGINT), Action::Signal(42, libc::SIGCONT)]);
        assert_eq!(s.deadline, Some(now + 3 * SECOND));
        assert_eq!(s.step(Event::Deadline, now + 3 * SECOND), vec![Action::Signal(42, libc::SIGKILL)]);
        assert_eq!(s.step(exited(ExitStatus::Signal(9)), now + 3 * SECOND), vec![]);
        assert_eq!(s.state, State::Stopped);
        assert_eq!(s.want, Want::Down);
    }

    #[test]
    fn a_stop_waits_for_the_whole_group() {
        let now = Instant::now();
        let mut s = running(now);
        s.step(Event::Stop, now);
        let drained = Event::Exited { status: ExitStatus::Signal(15), group_alive: true };
        assert_eq!(s.step(drained, now), vec![]);
        assert!(matches!(s.state, State::Draining { pgid: 42, requested: true, .. }));
        assert!(s.state.is_up() && s.state.main_pid().is_none());
        // Leftovers that ignore the stop signal are killed at the timeout.
        let timeout = s.deadline.unwrap();
        assert_eq!(s.step(Event::Deadline, timeout), vec![Action::Signal(42, libc::SIGKILL)]);
        assert_eq!(s.step(Event::GroupGone, timeout), vec![]);
        assert_eq!(s.state, State::Stopped);
    }

    #[test]
    fn mainpid_moves_the_watched_process_and_the_signalled_group() {
        let now = Instant::now();
        let mut s = running(now);
        let term = |group| vec![Action::Signal(group, libc::SIGTERM), Action::Signal(group, libc::SIGCONT)];
        assert_eq!(s.step(Event::MainPid { pid: 77, group: 42 }, now), vec![]);
        assert_eq!(s.state.main_pid(), Some(77));
        assert_eq!(s.step(Event::Stop, now), term(42));
        let timeout = s.deadline.unwrap();
        // Named while stopping, in a group of its own: that group is told
        // too, under the same deadline.
        assert_eq!(s.step(Event::MainPid { pid: 88, group: 88 }, now + SECOND), term(88));
        assert_eq!(s.deadline, Some(timeout));
        let drained = Event::Exited { status: ExitStatus::Signal(15), group_alive: true };
        assert_eq!(s.step(drained, now), vec![]);
        assert!(matches!(s.state, State::Draining { pgid: 88, .. }));
        assert_eq!(s.step(Event::Deadline, timeout), vec![Action::Signal(88, libc::SIGKILL)]);
        // Not up: nothing to hand over.
        assert_eq!(s.step(Event::GroupGone, timeout), vec![]);
        assert_eq!(s.step(Event::MainPid { pid: 99, group: 99 }, timeout), vec![]);
        assert_eq!(s.state, State::Stopped);
    }

    #[test]
    fn a_pid_file_service_is_ready_when_its_pid_file_names_a_process() {
        let policy = Policy { pid_file: Some("/run/x.pid".into()), ready_timeout: 5 * SECOND, ..Policy::default() };
        let now = Instant::now();
        let mut s = running_with(policy.clone(), now);
        // Not ready at min_uptime: the wait is the ready timeout.
        assert_eq!(s.deadline, Some(now + 5 * SECOND));
        assert_eq!(s.step(Event::MainPid { pid: 77, group: 77 }, now), vec![]);
        assert_eq!(s.step(Event::Ready, now), vec![]);
        assert_eq!((s.state.main_pid(), s.state.is_ready(), s.group), (Some(77), true, 77));

        // A started process that never forks away is stopped at the timeout.
        let mut s = running_with(policy, now);
        let actions = s.step(Event::Deadline, now + 5 * SECOND);
        assert_eq!(actions[0], Action::Signal(42, libc::SIGTERM));
        assert_eq!(s.failure(), Some("did not go to the background within 5s"));
    }

    #[test]
    fn no_main_pid_from_the_pid_file_is_a_failed_start() {
        let policy = Policy { pid_file: Some("/run/x.pid".into()), ..Policy::default() };
        let now = Instant::now();
        let later = now + 10 * SECOND;
        let mut s = running_with(policy.clone(), now);
        let stale = || "pid file /run/x.pid names pid 9, which does not run".to_string();
        assert_eq!(s.step(Event::NoMainPid { reason: stale(), group_alive: false }, later), vec![]);
        assert_eq!(s.state, State::Backoff);
        assert_eq!(s.last_exit, Some(format!("{} (exit 0)", stale())));

        // What is left of the group drains first.
        let mut s = running_with(policy, now);
        let term = vec![Action::Signal(42, libc::SIGTERM), Action::Signal(42, libc::SIGCONT)];
        assert_eq!(s.step(Event::NoMainPid { reason: stale(), group_alive: true }, later), term);
        assert_eq!(s.failure(), Some(stale().as_str()));
        assert_eq!(s.step(Event::GroupGone, later), vec![]);
        assert_eq!(s.state, State::Backoff);
        // Not up: nothing to fail.
        assert_eq!(s.step(Event::NoMainPid { reason: stale(), group_alive: false }, later), vec![]);
        assert_eq!(s.state, State::Backoff);
    }

    #[test]
    fn a_crash_that_leaves_workers_drains_them_before_restarting() {
        let now = Instant::now();
        let mut s = running(now);
        let later = now + SECOND;
        let crash = Event::Exited { status: ExitStatus::Signal(9), group_alive: true };
        assert_eq!(s.step(crash, later), vec![Action::Signal(42, libc::SIGTERM), Action::Signal(42, libc::SIGCONT)]);
        assert_eq!(s.state.name(), "stopping");
        assert_eq!(s.step(Event::GroupGone, later), vec![Action::Spawn]);
    }

    #[test]
    fn uptime_readiness_is_min_uptime_without_an_exit() {
        let now = Instant::now();
        let mut s = running(now);
        assert_eq!(s.deadline, Some(now + SECOND));
        assert_eq!(s.step(Event::Deadline, now + SECOND), vec![]);
        assert!(s.state.is_ready());
        assert_eq!(s.state.name(), "running");
        assert_eq!(s.deadline, None);
    }

    #[test]
    fn notify_readiness_waits_for_ready_and_fails_at_the_timeout() {
        let policy = Policy { ready: Ready::Notify, ready_timeout: 5 * SECOND, ..Policy::default() };
        let now = Instant::now();
        let mut s = running_with(policy.clone(), now);
        assert_eq!(s.step(Event::Ping, now), vec![], "pings before READY=1 are ignored");
        assert_eq!(s.step(Event::Ready, now + SECOND), vec![]);
        assert!(s.state.is_ready());

        let mut s = running_with(policy, now);
        let actions = s.step(Event::Deadline, now + 5 * SECOND);
        assert_eq!(actions[0], Action::Signal(42, libc::SIGTERM));
        assert_eq!(s.failure(), Some("not ready within 5s"));
        // Killed for not being ready: a failed start, so it backs off.
        let later = now + 6 * SECOND;
        assert_eq!(s.step(exited(ExitStatus::Signal(15)), later), vec![]);
        assert_eq!((s.state, s.failure()), (State::Backoff, None));
        assert_eq!(s.last_exit.as_deref(), Some("not ready within 5s (signal 15 (TERM))"));
    }

    #[test]
    fn ready_timeouts_back_off_with_growing_delays_then_are_fatal() {
        let policy = Policy {
            ready: Ready::Notify,
            ready_timeout: 5 * SECOND,
            backoff_initial: SECOND,
            backoff_max: 8 * SECOND,
            start_limit_burst: 3,
            start_limit_interval: Duration::from_secs(60),
            ..Policy::default()
        };
        let mut now = Instant::now();
        let mut s = running_with(policy, now);
        for (n, expected) in [1u32, 2, 4].into_iter().enumerate() {
            now += 5 * SECOND;
            assert_eq!(s.step(Event::Deadline, now)[0], Action::Signal(42, libc::SIGTERM), "run {n}");
            assert_eq!(s.step(exited(ExitStatus::Signal(15)), now), vec![], "run {n}");
            assert_eq!(s.state, State::Backoff, "run {n}");
            let delay = s.deadline.unwrap() - now;
            let nominal = SECOND * expected;
            assert!(delay >= nominal.mul_f64(0.8) && delay <= nominal.mul_f64(1.2), "{delay:?} vs {nominal:?}");
            now = s.deadline.unwrap();
            if n < 2 {
                assert_eq!(s.step(Event::Deadline, now), vec![Action::Spawn]);
                s.step(Event::Spawned(42), now);
            }
        }
        // Three starts within 60 s, each never ready: the fourth is refused.
        assert_eq!(s.step(Event::Deadline, now), vec![]);
        assert_eq!((s.state, s.deadline, s.n_restarts), (State::Fatal, None, 2));
        assert_eq!(s.last_exit.as_deref(), Some("not ready within 5s (signal 15 (TERM))"));
    }

    #[test]
    fn a_run_that_never_became_ready_is_a_failed_start_however_it_ends() {
        let policy = Policy { ready: Ready::Notify, ..Policy::default() };
        let now = Instant::now();
        // It exits on its own after min_uptime, without READY=1.
        let mut s = running_with(policy.clone(), now);
        assert_eq!(s.step(exited(ExitStatus::Code(1)), now + 10 * SECOND), vec![]);
        assert_eq!(s.state, State::Backoff);
        // The same, leaving workers to drain first.
        let mut s = running_with(policy.clone(), now);
        let crash = Event::Exited { status: ExitStatus::Code(1), group_alive: true };
        s.step(crash, now + 10 * SECOND);
        assert_eq!(s.step(Event::GroupGone, now + 10 * SECOND), vec![]);
        assert_eq!(s.state, State::Backoff);
        // Ready, then the same exit: restarted at once.
        let mut s = running_with(policy, now);
        s.step(Event::Ready, now);
        assert_eq!(s.step(exited(ExitStatus::Code(1)), now + 10 * SECOND), vec![Action::Spawn]);
    }

    #[test]
    fn a_silent_watchdog_restarts_the_service() {
        let policy = Policy { ready: Ready::Notify, watchdog: Some(2 * SECOND), ..Policy::default() };
        let now = Instant::now();
        let mut s = running_with(policy, now);
        s.step(Event::Ready, now);
        assert_eq!(s.deadline, None, "the watchdog starts with the first ping");
        s.step(Event::Ping, now + SECOND);
        assert_eq!(s.deadline, Some(now + 3 * SECOND));
        assert_eq!(s.step(Event::Deadline, now + 3 * SECOND)[0], Action::Signal(42, libc::SIGTERM));
        assert_eq!(s.failure(), Some("no WATCHDOG=1 for 2s"));
        assert_eq!(s.step(exited(ExitStatus::Signal(15)), now + 4 * SECOND), vec![Action::Spawn]);
        assert_eq!(s.last_exit.as_deref(), Some("no WATCHDOG=1 for 2s (signal 15 (TERM))"));
    }

    #[test]
    fn a_watchdog_failure_after_a_long_run_restarts_at_once_and_one_within_min_uptime_backs_off() {
        let policy = Policy { ready: Ready::Notify, watchdog: Some(30 * SECOND), ..Policy::default() };
        let now = Instant::now();
        let hours = now + Duration::from_secs(5 * 3600);
        let mut s = running_with(policy.clone(), now);
        s.step(Event::Ready, now);
        s.step(Event::Ping, hours);
        let silent = hours + 30 * SECOND;
        assert_eq!(s.deadline, Some(silent));
        assert_eq!(s.step(Event::Deadline, silent)[0], Action::Signal(42, libc::SIGTERM));
        assert_eq!(s.step(exited(ExitStatus::Signal(15)), silent), vec![Action::Spawn], "no backoff after hours");

        // Ready and pinging, but silent before min_uptime: a failed start.
        let policy = Policy { watchdog: Some(SECOND / 4), min_uptime: 2 * SECOND, ..policy };
        let mut s = running_with(policy, now);
        s.step(Event::Ready, now);
        s.step(Event::Ping, now);
        let silent = now + SECOND / 4;
        assert_eq!(s.step(Event::Deadline, silent)[0], Action::Signal(42, libc::SIGTERM));
        assert_eq!(s.step(exited(ExitStatus::Signal(15)), silent), vec![]);
        assert_eq!(s.state, State::Backoff);
    }

    #[test]
    fn a_failure_overtaken_by_a_restart_does_not_follow_the_next_run() {
        let policy = Policy { ready: Ready::Notify, ready_timeout: 5 * SECOND, ..Policy::default() };
        let now = Instant::now();
        let later = now + 5 * SECOND;
        let mut s = running_with(policy, now);
        s.step(Event::Deadline, later);
        s.step(Event::Exited { status: ExitStatus::Signal(15), group_alive: true }, later);
        assert_eq!(s.failure(), Some("not ready within 5s"));
        // The user restarts it while the group drains.
        s.step(Event::Stop, later);
        s.step(Event::Start { deps_ready: true }, later);
        assert_eq!(s.failure(), None);
        assert_eq!(s.step(Event::GroupGone, later), vec![Action::Spawn]);
        s.step(Event::Spawned(43), later);
        s.step(Event::Ready, later);
        // Its own exit, well after min_uptime, is its own.
        assert_eq!(s.step(exited(ExitStatus::Code(0)), later + 10 * SECOND), vec![Action::Spawn]);
        assert_eq!(s.last_exit.as_deref(), Some("exit 0"));
    }

    #[test]
    fn a_long_run_killed_as_unhealthy_restarts_at_once() {
        let now = Instant::now();
        let mut s = running(now);
        let later = now + 10 * SECOND;
        s.step(Event::Deadline, now + SECOND);
        s.step(Event::Unhealthy("health check failed".into()), later);
        assert_eq!(
            s.step(exited(ExitStatus::Signal(15)), later),
            vec![Action::Spawn],
            "no backoff after 10 s of running"
        );
    }

    #[test]
    fn unhealthy_is_a_failure_but_a_user_stop_wins() {
        let now = Instant::now();
        let mut s = running(now);
        assert_eq!(
            s.step(Event::Unhealthy("health check failed 3 times".into()), now)[0],
            Action::Signal(42, libc::SIGTERM)
        );
        // The user stops it meanwhile: it stays down.
        s.step(Event::Stop, now);
        assert_eq!(s.step(exited(ExitStatus::Signal(15)), now + SECOND), vec![]);
        assert_eq!(s.state, State::Stopped);
    }

    #[test]
    fn a_start_before_the_dependencies_are_ready_waits() {
        let now = Instant::now();
        let mut s = Service::new("web", 0, Rc::default());
        assert_eq!(s.step(Event::Start { deps_ready: false }, now), vec![]);
        assert_eq!((s.state, s.want), (State::Waiting, Want::Up));
        assert_eq!(s.step(Event::Start { deps_ready: true }, now), vec![Action::Spawn]);
        let mut s = Service::new("web", 0, Rc::default());
        s.step(Event::Start { deps_ready: false }, now);
        s.step(Event::Stop, now);
        assert_eq!(s.state, State::Stopped);
    }

    #[test]
    fn restart_is_stop_then_start() {
        let now = Instant::now();
        let mut s = running(now);
        s.step(Event::Stop, now);
        assert_eq!(s.step(Event::Start { deps_ready: true }, now), vec![]);
        assert_eq!(s.step(exited(ExitStatus::Signal(15)), now), vec![Action::Spawn]);
    }

    fn oneshot() -> Policy {
        Policy { oneshot: true, restart: Restart::OnFailure, ..Policy::default() }
    }

    #[test]
    fn a_oneshot_is_done_after_a_successful_exit_and_only_a_restart_runs_it_again() {
        let now = Instant::now();
        let mut s = running_with(oneshot(), now);
        assert_eq!((s.state.is_ready(), s.state.name(), s.deadline), (false, "starting", None), "no uptime readiness");
        assert_eq!(s.step(Event::Deadline, now + 5 * SECOND), vec![], "no deadline while it runs");
        assert!(!s.state.is_ready());
        assert_eq!(s.step(exited(ExitStatus::Code(0)), now + 10 * SECOND), vec![]);
        assert_eq!((s.state, s.state.name(), s.state.pid(), s.deadline), (State::Done, "done", None, None));
        assert!(s.state.is_ready(), "done counts as ready for dependents");
        assert_eq!(s.last_exit.as_deref(), Some("exit 0"));
        // Asked to start again, it stays done; a restart (stop, then start) runs it.
        assert_eq!(s.step(Event::Start { deps_ready: true }, now), vec![]);
        assert_eq!(s.step(Event::Deadline, now), vec![]);
        assert_eq!(s.state, State::Done);
        assert_eq!(s.step(Event::Stop, now), vec![]);
        assert_eq!((s.state, s.want), (State::Stopped, Want::Down));
        assert_eq!(s.step(Event::Start { deps_ready: true }, now), vec![Action::Spawn]);
        // Any code of success_exit_codes is a success.
        let mut s = running_with(Policy { success_exit_codes: vec![0, 7], ..oneshot() }, now);
        s.step(exited(ExitStatus::Code(7)), now);
        assert_eq!(s.state, State::Done);
    }

    #[test]
    fn a_failing_oneshot_backs_off_however_long_it_ran_then_is_fatal() {
        let policy = Policy { start_limit_burst: 3, start_limit_interval: Duration::from_secs(600), ..oneshot() };
        let mut now = Instant::now();
        let mut s = running_with(policy, now);
        for n in 0..3 {
            now += 100 * SECOND;
            assert_eq!(s.step(exited(ExitStatus::Code(1)), now), vec![], "run {n}");
            assert_eq!(s.state, State::Backoff, "a failed oneshot never became ready: run {n}");
            now = s.deadline.unwrap();
            if n < 2 {
                assert_eq!(s.step(Event::Deadline, now), vec![Action::Spawn]);
                s.step(Event::Spawned(42), now);
            }
        }
        assert_eq!(s.step(Event::Deadline, now), vec![]);
        assert_eq!(s.state, State::Fatal);
        // A signal, or an end nobody saw, is a failure too.
        for status in [ExitStatus::Signal(libc::SIGKILL), ExitStatus::Unknown] {
            let mut s = running_with(oneshot(), now);
            s.step(exited(status), now);
            assert_eq!(s.state, State::Backoff, "{status:?}");
        }
    }

    #[test]
    fn a_oneshot_that_left_workers_is_done_once_they_are_gone() {
        let now = Instant::now();
        let mut s = running_with(oneshot(), now);
        let exit = Event::Exited { status: ExitStatus::Code(0), group_alive: true };
        assert_eq!(s.step(exit, now)[0], Action::Signal(42, libc::SIGTERM));
        assert!(!s.state.is_ready(), "not done while its workers live");
        assert_eq!(s.step(Event::GroupGone, now), vec![]);
        assert_eq!(s.state, State::Done);
    }

    #[test]
    fn a_oneshot_with_restart_never_is_exited_after_a_failure_and_a_stopped_one_is_stopped() {
        let now = Instant::now();
        let mut s = running_with(Policy { restart: Restart::Never, ..oneshot() }, now);
        s.step(exited(ExitStatus::Code(2)), now);
        assert_eq!(s.state, State::Exited);
        assert!(!s.state.is_ready());
        let mut s = running_with(oneshot(), now);
        s.step(Event::Stop, now);
        s.step(exited(ExitStatus::Signal(libc::SIGTERM)), now);
        assert_eq!(s.state, State::Stopped);
    }

    #[test]
    fn stop_during_backoff_cancels_the_restart() {
        let now = Instant::now();
        let mut s = running(now);
        s.step(exited(ExitStatus::Code(1)), now);
        assert_eq!(s.state, State::Backoff);
        s.step(Event::Stop, now);
        assert_eq!((s.state, s.deadline), (State::Stopped, None));
        assert_eq!(s.step(Event::Deadline, now + SECOND), vec![]);
    }
}
