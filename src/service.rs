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
//! Each instance has at most one deadline (backoff end, stop timeout); when
//! it passes, the loop feeds [`Event::Deadline`].

use std::time::{Duration, Instant};

use crate::sys::{ExitStatus, Pid};

/// A service that ran at least this long is restarted at once when it exits.
pub const MIN_UPTIME: Duration = Duration::from_secs(1);
/// The pause before restarting an instance that died sooner than [`MIN_UPTIME`].
pub const RESTART_DELAY: Duration = Duration::from_secs(1);
/// After this many quick failures in a row, the instance gives up: `fatal`.
pub const MAX_QUICK_FAILURES: u32 = 10;
/// How long a stopping process gets between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running, and not asked to (never started, or stopped by the user).
    Stopped,
    /// A spawn was asked for and its outcome is not in yet. Only ever seen
    /// between a `Spawn` action and the `Spawned`/`SpawnFailed` event.
    Starting,
    Running {
        pid: Pid,
        since: Instant,
    },
    /// The stop signal was sent; waiting for the exit (or the deadline).
    Stopping {
        pid: Pid,
        since: Instant,
    },
    /// Exited too soon; a new start is due at the deadline.
    Backoff,
    /// Exited and the policy says not to restart.
    Exited,
    /// Failed too often in a row; left alone until the user asks again.
    Fatal,
}

impl State {
    /// The name shown in `status` and the JSON document.
    pub fn name(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running { .. } => "running",
            State::Stopping { .. } => "stopping",
            State::Backoff => "backoff",
            State::Exited => "exited",
            State::Fatal => "fatal",
        }
    }

    pub fn pid(self) -> Option<Pid> {
        match self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            State::Stopped | State::Starting | State::Backoff | State::Exited | State::Fatal => None,
        }
    }

    /// Whether a process exists for this instance.
    pub fn is_up(self) -> bool {
        self.pid().is_some()
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
    /// The user (or autostart) wants it running.
    Start,
    /// The user wants it stopped.
    Stop,
    /// The spawn asked for by [`Action::Spawn`] succeeded.
    Spawned(Pid),
    /// The spawn failed before exec; the text says why.
    SpawnFailed(String),
    /// The process ended.
    Exited(ExitStatus),
    /// The instance's deadline passed.
    Deadline,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fork and exec the service, then feed back `Spawned` or `SpawnFailed`.
    Spawn,
    /// Send a signal to the process group.
    Signal(Pid, libc::c_int),
}

/// The instance's record: its state machine plus what `status` reports.
#[derive(Clone, Debug)]
pub struct Service {
    pub name: String,
    pub instance: u32,
    pub state: State,
    pub want: Want,
    pub deadline: Option<Instant>,
    /// Spawns after the first one.
    pub n_restarts: u32,
    n_spawns: u32,
    /// Quick failures in a row (died before MIN_UPTIME or failed to spawn).
    n_quick_failures: u32,
    /// The last way it ended: "exit 1", "signal 9 (KILL)", or a spawn error.
    pub last_exit: Option<String>,
    /// Whether the process should be started again when it exits.
    pub auto_restart: bool,
}

impl Service {
    pub fn new(name: &str, instance: u32, auto_restart: bool) -> Service {
        Service {
            name: name.to_string(),
            instance,
            state: State::Stopped,
            want: Want::Down,
            deadline: None,
            n_restarts: 0,
            n_spawns: 0,
            n_quick_failures: 0,
            last_exit: None,
            auto_restart,
        }
    }

    /// An instance found running from an earlier daemon's state file: up,
    /// wanted up, with its old pid, start and restart count.
    pub fn adopted(
        name: &str,
        instance: u32,
        auto_restart: bool,
        pid: Pid,
        since: Instant,
        n_restarts: u32,
    ) -> Service {
        let mut service = Service::new(name, instance, auto_restart);
        service.state = State::Running { pid, since };
        service.want = Want::Up;
        service.n_restarts = n_restarts;
        service.n_spawns = 1;
        service
    }

    /// Advances the state machine by one event at time `now`.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        use State::*;
        match (self.state, event) {
            (Stopped | Backoff | Exited | Fatal, Event::Start) => {
                self.want = Want::Up;
                self.n_quick_failures = 0;
                self.spawn()
            }
            (Starting | Running { .. } | Stopping { .. }, Event::Start) => {
                // Stopping: the exit will lead to a new spawn (a restart).
                self.want = Want::Up;
                vec![]
            }

            (Running { pid, .. }, Event::Stop) => {
                self.want = Want::Down;
                self.state = Stopping { pid, since: now };
                self.deadline = Some(now + STOP_TIMEOUT);
                vec![Action::Signal(pid, libc::SIGTERM), Action::Signal(pid, libc::SIGCONT)]
            }
            (Starting | Stopping { .. } | Stopped | Exited | Fatal, Event::Stop) => {
                self.want = Want::Down;
                vec![]
            }
            (Backoff, Event::Stop) => {
                self.want = Want::Down;
                self.state = Stopped;
                self.deadline = None;
                vec![]
            }

            (Starting, Event::Spawned(pid)) => {
                self.state = Running { pid, since: now };
                if self.want == Want::Down {
                    // A stop arrived while the spawn was in flight.
                    return self.step(Event::Stop, now);
                }
                vec![]
            }
            (Starting, Event::SpawnFailed(reason)) => {
                self.last_exit = Some(reason);
                self.failed_quickly(now)
            }

            (Running { since, .. }, Event::Exited(status)) => {
                self.last_exit = Some(status.to_string());
                self.deadline = None;
                if !self.auto_restart || self.want == Want::Down {
                    self.state = Exited;
                    return vec![];
                }
                if now.duration_since(since) >= MIN_UPTIME {
                    self.n_quick_failures = 0;
                    self.spawn()
                } else {
                    self.failed_quickly(now)
                }
            }
            (Stopping { .. }, Event::Exited(status)) => {
                self.last_exit = Some(status.to_string());
                self.deadline = None;
                match self.want {
                    Want::Up => self.spawn(),
                    Want::Down => {
                        self.state = Stopped;
                        vec![]
                    }
                }
            }

            (Stopping { pid, since }, Event::Deadline) => {
                // It ignored the stop signal: no more deadline, KILL cannot be
                // ignored and its exit arrives through SIGCHLD as usual.
                self.state = Stopping { pid, since };
                self.deadline = None;
                vec![Action::Signal(pid, libc::SIGKILL)]
            }
            (Backoff, Event::Deadline) => {
                self.deadline = None;
                self.spawn()
            }

            // Events that cannot apply to the state: a spawn result with no
            // spawn in flight, an exit with no process, a stale deadline.
            (
                Stopped | Running { .. } | Stopping { .. } | Backoff | Exited | Fatal,
                Event::Spawned(_) | Event::SpawnFailed(_),
            )
            | (Stopped | Starting | Backoff | Exited | Fatal, Event::Exited(_))
            | (Stopped | Starting | Running { .. } | Exited | Fatal, Event::Deadline) => vec![],
        }
    }

    fn spawn(&mut self) -> Vec<Action> {
        self.state = State::Starting;
        self.deadline = None;
        if self.n_spawns > 0 {
            self.n_restarts += 1;
        }
        self.n_spawns += 1;
        vec![Action::Spawn]
    }

    /// Died before MIN_UPTIME or failed to spawn: wait, or give up.
    fn failed_quickly(&mut self, now: Instant) -> Vec<Action> {
        self.n_quick_failures += 1;
        if !self.auto_restart || self.want == Want::Down {
            self.state = State::Exited;
        } else if self.n_quick_failures >= MAX_QUICK_FAILURES {
            self.state = State::Fatal;
        } else {
            self.state = State::Backoff;
            self.deadline = Some(now + RESTART_DELAY);
        }
        vec![]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(now: Instant) -> Service {
        let mut s = Service::new("web", 0, true);
        assert_eq!(s.step(Event::Start, now), vec![Action::Spawn]);
        assert_eq!(s.step(Event::Spawned(42), now), vec![]);
        s
    }

    #[test]
    fn start_spawns_and_runs() {
        let now = Instant::now();
        let s = running(now);
        assert_eq!(s.state, State::Running { pid: 42, since: now });
        assert_eq!(s.want, Want::Up);
        assert_eq!(s.n_restarts, 0);
    }

    #[test]
    fn exit_after_min_uptime_restarts_at_once() {
        let t0 = Instant::now();
        let mut s = running(t0);
        let t1 = t0 + MIN_UPTIME;
        assert_eq!(s.step(Event::Exited(ExitStatus::Signal(9)), t1), vec![Action::Spawn]);
        assert_eq!(s.last_exit.as_deref(), Some("signal 9 (KILL)"));
        s.step(Event::Spawned(43), t1);
        assert_eq!(s.n_restarts, 1);
    }

    #[test]
    fn quick_exit_waits_then_gives_up() {
        let mut now = Instant::now();
        let mut s = running(now);
        for round in 1..MAX_QUICK_FAILURES {
            assert_eq!(s.step(Event::Exited(ExitStatus::Code(1)), now), vec![]);
            assert_eq!(s.state, State::Backoff, "round {round}");
            assert_eq!(s.deadline, Some(now + RESTART_DELAY));
            now += RESTART_DELAY;
            assert_eq!(s.step(Event::Deadline, now), vec![Action::Spawn]);
            s.step(Event::Spawned(100), now);
        }
        s.step(Event::Exited(ExitStatus::Code(1)), now);
        assert_eq!(s.state, State::Fatal);
        assert_eq!(s.deadline, None);
        // The user can always start it again.
        assert_eq!(s.step(Event::Start, now), vec![Action::Spawn]);
    }

    #[test]
    fn spawn_failure_is_kept_as_last_exit() {
        let now = Instant::now();
        let mut s = Service::new("web", 0, true);
        s.step(Event::Start, now);
        s.step(Event::SpawnFailed("exec /nope: No such file or directory".into()), now);
        assert_eq!(s.state, State::Backoff);
        assert_eq!(s.last_exit.as_deref(), Some("exec /nope: No such file or directory"));
    }

    #[test]
    fn stop_signals_the_group_then_kills_at_the_deadline() {
        let now = Instant::now();
        let mut s = running(now);
        assert_eq!(
            s.step(Event::Stop, now),
            vec![Action::Signal(42, libc::SIGTERM), Action::Signal(42, libc::SIGCONT)]
        );
        assert_eq!(s.deadline, Some(now + STOP_TIMEOUT));
        assert_eq!(s.step(Event::Deadline, now + STOP_TIMEOUT), vec![Action::Signal(42, libc::SIGKILL)]);
        assert_eq!(s.step(Event::Exited(ExitStatus::Signal(9)), now + STOP_TIMEOUT), vec![]);
        assert_eq!(s.state, State::Stopped);
        assert_eq!(s.want, Want::Down);
    }

    #[test]
    fn restart_is_stop_then_start() {
        let now = Instant::now();
        let mut s = running(now);
        s.step(Event::Stop, now);
        assert_eq!(s.step(Event::Start, now), vec![]);
        assert_eq!(s.step(Event::Exited(ExitStatus::Signal(15)), now), vec![Action::Spawn]);
    }

    #[test]
    fn no_auto_restart_means_exited() {
        let now = Instant::now();
        let mut s = Service::new("once", 0, false);
        s.step(Event::Start, now);
        s.step(Event::Spawned(7), now);
        assert_eq!(s.step(Event::Exited(ExitStatus::Code(0)), now + MIN_UPTIME), vec![]);
        assert_eq!(s.state, State::Exited);
    }

    #[test]
    fn stop_during_backoff_cancels_the_restart() {
        let now = Instant::now();
        let mut s = running(now);
        s.step(Event::Exited(ExitStatus::Code(1)), now);
        assert_eq!(s.state, State::Backoff);
        s.step(Event::Stop, now);
        assert_eq!((s.state, s.deadline), (State::Stopped, None));
        assert_eq!(s.step(Event::Deadline, now + RESTART_DELAY), vec![]);
    }
}
