//! The supervisor: setup, then one poll(2) loop that never sleeps.
//!
//! [`run`] has two phases, as in s6-supervise. Setup (pid file, control
//! socket, signal handlers) may fail and return an error, which `main` turns
//! into exit status 1. After setup "we must not die": a failure to spawn, to
//! signal or to answer a client is logged and retried or dropped, never
//! fatal.
//!
//! Each pass of the loop is mechanical:
//! 1. poll the self-pipe, the control socket and its clients, with the
//!    earliest deadline as the timeout (or none: an idle daemon sleeps);
//! 2. drain the self-pipe and note TERM/INT/HUP;
//! 3. reap every exited child with `waitpid(-1, WNOHANG)` and feed the exit
//!    to its instance's state machine;
//! 4. fire due deadlines;
//! 5. serve clients: read requests, answer finished waits, write replies;
//! 6. drop retired instances that are down, and exit when asked.
//!
//! Only this module turns [`Action`]s into system calls.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{fs::File, io, io::Write};

use crate::config::{self, Config, ServiceDef};
use crate::control::{MAX_LINE, Request, Target};
use crate::msg::{self, Log};
use crate::pidfile::{PidFile, PidFileError};
use crate::service::{Action, Event, STOP_TIMEOUT, Service, State, Want};
use crate::state::{self, Record};
use crate::status;
use crate::sys::{self, ExitStatus, PollFd, SignalPipe, Spawn};
use nanoserde::SerJson;

/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `stop`, `restart` and `shutdown --stop-all` wait for the
/// processes: the stop timeout, then SIGKILL, then some slack.
const WAIT_TIMEOUT: Duration = Duration::from_secs(STOP_TIMEOUT.as_secs() + 5);
/// Connections served at once; more are refused.
const MAX_CLIENTS: usize = 64;

/// A setup failure, printed by `main` before exiting 1.
pub struct SetupError(pub String);

/// One instance and the definition it runs.
struct Slot {
    service: Service,
    def: Rc<ServiceDef>,
    /// Removed from the config (or an extra instance): dropped once down.
    retired: bool,
    /// How the end of its process is noticed.
    watch: Watch,
    /// /proc start time (clock ticks after boot) of its current process,
    /// which with the pid names that exact process in the state file.
    starttime: u64,
    /// Wall-clock start of its current process, seconds since the epoch.
    started_at: u64,
}

impl Slot {
    fn new(def: Rc<ServiceDef>, instance: u32) -> Slot {
        Slot {
            service: Service::new(&def.name, instance, def.auto_restart),
            def,
            retired: false,
            watch: Watch::Child,
            starttime: 0,
            started_at: 0,
        }
    }
}

/// How the daemon learns that an instance's process ended.
enum Watch {
    /// Our own child: SIGCHLD and waitpid.
    Child,
    /// Adopted, on Linux 5.3+: the pidfd becomes readable.
    Pidfd(OwnedFd),
    /// Adopted, without pidfd: checked every check_interval seconds.
    Poll,
}

/// An instance named across loop passes (slots may move).
type Key = (String, u32);

/// A reply: payload lines then `ok`, or payload lines then `err MESSAGE`.
type Answer = Result<Vec<String>, (Vec<String>, String)>;

/// What handling a request leads to.
enum Outcome {
    Reply(Answer),
    Wait(Wait),
}

/// A request whose answer waits for processes to change.
enum Wait {
    /// Until each instance is down; the pids they had.
    Down(Vec<(Key, Option<sys::Pid>)>),
    /// Until each instance runs a new process (or failed to).
    Restarted(Vec<(Key, Option<sys::Pid>)>),
    /// Until every instance is down, then the daemon exits.
    ShutdownAll,
}

enum Phase {
    Reading,
    Waiting(Wait),
    Writing,
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    phase: Phase,
    deadline: Instant,
}

struct Daemon {
    config: Config,
    slots: Vec<Slot>,
    log: Log,
    signals: SignalPipe,
    listener: UnixListener,
    clients: Vec<Client>,
    stdin: File,
    /// The daemon's environment, `NAME=value`, captured at start.
    env: Vec<Vec<u8>>,
    /// Set by TERM, INT or `shutdown`: leave the loop once no
    /// `shutdown --stop-all` is still waiting for its processes.
    exit: bool,
    /// Whether adopted processes are watched with pidfds (else polled).
    use_pidfd: bool,
    /// When polled adopted processes are checked next.
    next_check: Option<Instant>,
    /// Something the state file records changed since the last write.
    dirty: bool,
    /// The text last written to the state file (no rewrite without change).
    last_state: String,
    /// The last state-file write failed (logged once until one succeeds).
    state_failing: bool,
}

/// Runs the supervisor until TERM, INT or `shutdown`. With `report` (daemon
/// mode), `ok` is written to it once setup has succeeded, so the launcher
/// can exit 0 only when the daemon really runs.
pub fn run(config: Config, report: Option<File>) -> Result<(), SetupError> {
    let setup = setup(&config);
    if let Some(mut report) = report {
        // Dropped right after: the launcher reads one line and exits.
        let _ = match &setup {
            Ok(_) => writeln!(report, "ok"),
            Err(e) => writeln!(report, "err {}", e.0),
        };
    }
    let (pid_file, listener, signals, stdin) = setup?;
    let env = std::env::vars_os().map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat()).collect();

    // From now on, we must not die.
    let mut daemon = Daemon {
        config,
        slots: Vec::new(),
        log: Log,
        signals,
        listener,
        clients: Vec::new(),
        stdin,
        env,
        exit: false,
        use_pidfd: std::env::var_os("MI7SOFT_NO_PIDFD").is_none(),
        next_check: None,
        dirty: true,
        last_state: String::new(),
        state_failing: false,
    };
    daemon.log.info(format_args!(
        "started (pid {}), config {}, {} services",
        sys::getpid(),
        daemon.config.path.display(),
        daemon.config.services.len()
    ));
    daemon.adopt_and_start();
    daemon.persist();
    daemon.run_loop();

    let _ = std::fs::remove_file(&daemon.config.daemon.control_socket);
    daemon.persist();
    daemon.log.info("exiting; services left running");
    pid_file.remove();
    Ok(())
}

/// Everything that may still fail and stop the daemon from starting.
fn setup(config: &Config) -> Result<(PidFile, UnixListener, SignalPipe, File), SetupError> {
    let pid_file = PidFile::acquire(&config.daemon.pid_file).map_err(|e| match e {
        PidFileError::Locked(Some(pid)) => SetupError(format!("already running (pid {pid})")),
        PidFileError::Locked(None) => {
            SetupError(format!("already running ({} is locked)", config.daemon.pid_file.display()))
        }
        PidFileError::Io(e) => SetupError(format!("pid file {}", msg::path_error(&config.daemon.pid_file, &e))),
    })?;
    let socket = &config.daemon.control_socket;
    let listener = bind_control_socket(socket)
        .map_err(|e| SetupError(format!("control socket {}", msg::path_error(socket, &e))))?;
    let signals = SignalPipe::install().map_err(|e| SetupError(format!("signal handlers: {}", msg::io_error(&e))))?;
    let stdin = File::open("/dev/null").map_err(|e| SetupError(msg::path_error(Path::new("/dev/null"), &e)))?;
    if config.daemon.subreaper {
        sys::become_subreaper().map_err(|e| SetupError(format!("subreaper = true: {}", msg::io_error(&e))))?;
    }
    // Whatever the daemon inherited (beyond stdio) is not for its services.
    sys::cloexec_inherited().map_err(|e| SetupError(format!("/proc/self/fd: {}", msg::io_error(&e))))?;
    Ok((pid_file, listener, signals, stdin))
}

/// Binds the control socket with mode 0600. A leftover socket file is
/// replaced: we hold the pid file lock, so no live daemon owns it.
fn bind_control_socket(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // The mask makes the socket 0600 from the moment it exists.
    let old = sys::umask(0o177);
    let listener = UnixListener::bind(path);
    sys::umask(old);
    let listener = listener?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

impl Daemon {
    fn run_loop(&mut self) {
        loop {
            let now = Instant::now();
            let timeout = self.next_deadline().map(|d| d.saturating_duration_since(now));
            let mut fds =
                vec![PollFd::new(self.signals.fd(), sys::POLLIN), PollFd::new(self.listener.as_raw_fd(), sys::POLLIN)];
            for client in &self.clients {
                let events = match client.phase {
                    Phase::Reading => sys::POLLIN,
                    Phase::Waiting(_) => 0,
                    Phase::Writing => sys::POLLOUT,
                };
                fds.push(PollFd::new(client.stream.as_raw_fd(), events));
            }
            let n_clients = self.clients.len();
            let mut watched = Vec::new();
            for (index, slot) in self.slots.iter().enumerate() {
                if let Watch::Pidfd(fd) = &slot.watch {
                    fds.push(PollFd::new(fd.as_raw_fd(), sys::POLLIN));
                    watched.push(index);
                }
            }
            if let Err(e) = sys::poll(&mut fds, timeout) {
                self.log.error(format_args!("poll: {}", msg::io_error(&e)));
            }
            let now = Instant::now();

            if fds[0].ready() {
                for signal in self.signals.drain() {
                    self.on_signal(signal, now);
                }
            }
            self.reap(now);
            let ended: Vec<usize> =
                watched.iter().zip(&fds[2 + n_clients..]).filter(|(_, fd)| fd.ready()).map(|(&i, _)| i).collect();
            for index in ended {
                self.adopted_ended(index, now);
            }
            if self.next_check.is_some_and(|at| at <= now) {
                self.check_polled(now);
            }
            self.fire_deadlines(now);
            if fds[1].ready() {
                self.accept(now);
            }
            let ready: Vec<bool> = fds[2..2 + n_clients].iter().map(PollFd::ready).collect();
            self.serve_clients(&ready, now);
            self.drop_retired();
            self.persist();

            if self.exit && !self.clients.iter().any(|c| matches!(c.phase, Phase::Waiting(Wait::ShutdownAll))) {
                self.flush_clients();
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let services = self.slots.iter().filter_map(|s| s.service.deadline);
        let clients = self.clients.iter().map(|c| c.deadline);
        services.chain(clients).chain(self.next_check).min()
    }

    fn on_signal(&mut self, signal: libc::c_int, now: Instant) {
        match signal {
            libc::SIGTERM | libc::SIGINT => {
                self.log.info(format_args!("got SIG{}: exiting, services keep running", sys::signal_name(signal)));
                self.exit = true;
            }
            libc::SIGHUP => {
                let (ok, lines) = self.reload(now);
                for line in lines {
                    if ok {
                        self.log.info(line);
                    } else {
                        self.log.error(line);
                    }
                }
            }
            _ => {} // SIGCHLD: reaping happens on every pass anyway.
        }
    }

    // -- Adoption and the state file ----------------------------------------

    /// Takes back every recorded process that still runs, then starts what
    /// is missing, then applies config changes made while the daemon was
    /// down, exactly as a reload would.
    fn adopt_and_start(&mut self) {
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
            if state::process_starttime(record.pid) != Some(record.starttime) {
                self.log.info(format_args!(
                    "{label}: pid {} ended while the daemon was down (or the pid now belongs to another process)",
                    record.pid
                ));
                // The restart policy applies as if the exit had been seen.
                let Some(def) = self.config.services.iter().find(|d| d.name == record.name) else { continue };
                if !def.auto_restart && record.instance > 0 {
                    continue;
                }
                let mut slot = Slot::new(Rc::new(def.clone()), record.instance);
                slot.service.n_restarts = record.restarts;
                slot.service.last_exit = Some("ended while the daemon was down".into());
                slot.service.state = State::Exited;
                self.slots.push(slot);
                if def.auto_restart {
                    let index = self.slots.len() - 1;
                    self.dispatch(index, Event::Start, now);
                }
                continue;
            }
            let def = self.config.services.iter().find(|d| d.name == record.name).cloned();
            let removed = def.is_none();
            // A service removed while the daemon was down is adopted only to
            // be stopped, as a reload would; it keeps the recorded command.
            let def = def.unwrap_or_else(|| ServiceDef {
                name: record.name.clone(),
                command: "(removed from the config)".into(),
                args: Vec::new(),
                working_directory: None,
                auto_restart: false,
                max_instances: 1,
                autostart: false,
                environment: Vec::new(),
            });
            let uptime = state::seconds_since_boot()
                .map(|boot| boot - record.starttime as f64 / sys::clock_ticks() as f64)
                .map_or(Duration::ZERO, |secs| Duration::from_secs_f64(secs.max(0.0)));
            let since = now.checked_sub(uptime).unwrap_or(now);
            let mut slot = Slot::new(Rc::new(def.clone()), record.instance);
            slot.service =
                Service::adopted(&def.name, record.instance, def.auto_restart, record.pid, since, record.restarts);
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
        // Keep config order: adopted instances first sorted into place,
        // then services nothing was recorded for.
        let order = |name: &str| self.config.services.iter().position(|d| d.name == name).unwrap_or(usize::MAX);
        let mut slots = std::mem::take(&mut self.slots);
        slots.sort_by_key(|s| (order(&s.service.name), s.service.instance));
        self.slots = slots;
        let defs = self.config.services.clone();
        for def in defs {
            if !self.slots.iter().any(|s| s.service.name == def.name) {
                self.add(def);
            }
        }
        for name in changed {
            self.log.info(format_args!("{name}: definition changed while the daemon was down; restarting"));
            for index in self.select(&name).unwrap_or_default() {
                if self.slots[index].service.state.is_up() {
                    self.dispatch(index, Event::Stop, now);
                    self.dispatch(index, Event::Start, now);
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

    /// How to watch an adopted process: a pidfd where the kernel has them.
    fn watch(&mut self, pid: sys::Pid) -> Watch {
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

    fn check_interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.daemon.check_interval))
    }

    /// An adopted process ended (its pidfd turned readable, or a check found
    /// it gone): feed the exit to its state machine.
    fn adopted_ended(&mut self, index: usize, now: Instant) {
        let Some(pid) = self.slots[index].service.state.pid() else { return };
        self.slots[index].watch = Watch::Child;
        self.log.info(format_args!("{}: adopted pid {pid} ended", label(&self.slots[index].service)));
        self.dispatch(index, Event::Exited(ExitStatus::Unknown), now);
    }

    /// The fallback watcher: an adopted process is gone when its pid no
    /// longer exists or now belongs to another process (new start time).
    fn check_polled(&mut self, now: Instant) {
        let mut any = false;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if !matches!(slot.watch, Watch::Poll) {
                continue;
            }
            any = true;
            let Some(pid) = slot.service.state.pid() else { continue };
            if state::process_starttime(pid) != Some(slot.starttime) {
                self.adopted_ended(index, now);
            }
        }
        let any = any && self.slots.iter().any(|s| matches!(s.watch, Watch::Poll));
        self.next_check = any.then(|| now + self.check_interval());
    }

    /// Writes the state file if what it records changed.
    fn persist(&mut self) {
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

    // -- Processes ---------------------------------------------------------

    /// Adds instance 0 of a new service and starts it if autostart says so.
    fn add(&mut self, def: ServiceDef) {
        let def = Rc::new(def);
        self.slots.push(Slot::new(Rc::clone(&def), 0));
        if def.autostart {
            let index = self.slots.len() - 1;
            self.dispatch(index, Event::Start, Instant::now());
        }
    }

    /// Feeds one event to an instance and performs the resulting actions.
    fn dispatch(&mut self, index: usize, event: Event, now: Instant) {
        let before = self.slots[index].service.state.pid();
        let actions = self.slots[index].service.step(event, now);
        self.dirty |= self.slots[index].service.state.pid() != before;
        for action in actions {
            match action {
                Action::Spawn => {
                    let outcome = self.spawn(index);
                    self.dispatch(index, outcome, now);
                }
                Action::Signal(pid, signal) => {
                    if let Err(e) = sys::kill_group(pid, signal) {
                        if e.raw_os_error() != Some(libc::ESRCH) {
                            let label = label(&self.slots[index].service);
                            self.log.warning(format_args!(
                                "{label}: signal {} to process group {pid}: {}",
                                sys::signal_name(signal),
                                msg::io_error(&e)
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Forks and execs an instance; the outcome is the next event.
    fn spawn(&mut self, index: usize) -> Event {
        let slot = &self.slots[index];
        let def = &slot.def;
        let label = label(&slot.service);
        if slot.retired {
            return Event::SpawnFailed("removed from the config".into());
        }
        let mut env = self.env.clone();
        for (k, v) in &def.environment {
            env.retain(|entry| !entry.starts_with(k.as_bytes()) || entry.get(k.len()) != Some(&b'='));
            env.push(format!("{k}={v}").into_bytes());
        }
        let cwd = def.working_directory.as_deref().or_else(|| self.config.path.parent());
        let result = Spawn::new(&def.command, &def.args, &env, cwd)
            .map_err(|e| format!("{}: {}", def.command, msg::io_error(&e)))
            .and_then(|spawn| {
                spawn.run(&self.stdin).map_err(|e| match e.stage {
                    sys::SpawnStage::Exec => {
                        format!("exec {}: {}", def.command, msg::io_error(&e.error))
                    }
                    sys::SpawnStage::Chdir => {
                        format!("chdir {}: {}", cwd.unwrap_or(Path::new("/")).display(), msg::io_error(&e.error))
                    }
                    sys::SpawnStage::Setup => format!("spawn: {}", msg::io_error(&e.error)),
                })
            });
        match result {
            Ok(pid) => {
                self.log.info(format_args!("{label}: started (pid {pid})"));
                let slot = &mut self.slots[index];
                slot.watch = Watch::Child;
                slot.starttime = state::process_starttime(pid).unwrap_or(0);
                slot.started_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                Event::Spawned(pid)
            }
            Err(reason) => {
                self.log.error(format_args!("{label}: {reason}"));
                Event::SpawnFailed(reason)
            }
        }
    }

    fn reap(&mut self, now: Instant) {
        while let Some((pid, status)) = sys::reap_one() {
            let Some(index) = self.slots.iter().position(|s| s.service.state.pid() == Some(pid)) else {
                continue; // an orphan we inherited as a subreaper, or a helper
            };
            self.log.info(format_args!("{}: pid {pid} ended with {status}", label(&self.slots[index].service)));
            self.dispatch(index, Event::Exited(status), now);
            let service = &self.slots[index].service;
            let then = match service.state {
                State::Backoff => format!(
                    "exited too soon; next start in {}s",
                    service.deadline.map_or(0, |d| d.saturating_duration_since(now).as_secs_f64().ceil() as u64)
                ),
                State::Fatal => {
                    "failed too often in a row; giving up (fatal) until start-process or restart".to_string()
                }
                State::Exited => "not restarted (auto_restart = false)".to_string(),
                // Restarted (the spawn logged it) or stopped on request.
                State::Stopped | State::Starting | State::Running { .. } | State::Stopping { .. } => continue,
            };
            self.log.info(format_args!("{}: {then}", label(service)));
        }
    }

    fn fire_deadlines(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            if self.slots[index].service.deadline.is_some_and(|d| d <= now) {
                if let State::Stopping { pid, .. } = self.slots[index].service.state {
                    self.log.warning(format_args!(
                        "{}: pid {pid} did not stop within {}s; sending KILL",
                        label(&self.slots[index].service),
                        STOP_TIMEOUT.as_secs()
                    ));
                }
                self.dispatch(index, Event::Deadline, now);
            }
        }
    }

    fn drop_retired(&mut self) {
        self.slots.retain(|s| !s.retired || s.service.state.is_up());
    }

    /// The instances a request names: `web` (all of them) or `web:1`.
    fn select(&self, name: &str) -> Result<Vec<usize>, String> {
        let (base, instance) = match name.split_once(':') {
            Some((base, n)) => (base, n.parse::<u32>().ok()),
            None => (name, None),
        };
        let found: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                !s.retired && s.service.name == base && instance.is_none_or(|n| s.service.instance == n)
            })
            .collect();
        if found.is_empty() {
            if instance.is_some() && self.slots.iter().any(|s| s.service.name == base) {
                return Err(format!("{name}: no such instance"));
            }
            return Err(format!("unknown process \"{name}\""));
        }
        Ok(found)
    }

    fn key(&self, index: usize) -> Key {
        let s = &self.slots[index].service;
        (s.name.clone(), s.instance)
    }

    fn find(&self, key: &Key) -> Option<&Service> {
        self.slots.iter().map(|s| &s.service).find(|s| s.name == key.0 && s.instance == key.1)
    }

    // -- Requests ----------------------------------------------------------

    /// Handles a request: either the reply now, or a wait to finish later.
    fn handle(&mut self, request: Request, now: Instant) -> Outcome {
        let refuse = |message: String| (vec![], message);
        match request {
            Request::Status { name } => {
                let indices = match &name {
                    Some(name) => match self.select(name) {
                        Ok(indices) => indices,
                        Err(e) => return Outcome::Reply(Err(refuse(e))),
                    },
                    None => (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect(),
                };
                Outcome::Reply(Ok(vec![self.status_document(&indices, now).serialize_json()]))
            }
            Request::Start { name } => {
                let index = match self.start_target(&name) {
                    Ok(index) => index,
                    Err(e) => return Outcome::Reply(Err(refuse(e))),
                };
                self.dispatch(index, Event::Start, now);
                let service = &self.slots[index].service;
                Outcome::Reply(match service.state.pid() {
                    Some(pid) => Ok(vec![format!("{}: started (pid {pid})", label(service))]),
                    None => Err(refuse(format!(
                        "{}: failed to start: {}",
                        label(service),
                        service.last_exit.as_deref().unwrap_or("unknown error")
                    ))),
                })
            }
            Request::Stop { target } => {
                let indices = match target {
                    Target::All => Ok((0..self.slots.len()).collect()),
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
            Request::Reload => Outcome::Reply(match self.reload(now) {
                (true, lines) => Ok(lines),
                (false, lines) => Err((lines, "reload rejected; the running config is unchanged".into())),
            }),
            Request::Shutdown { stop_all: false } => {
                self.log.info("shutdown requested: exiting, services keep running");
                self.exit = true;
                Outcome::Reply(Ok(vec!["daemon exiting; services left running".into()]))
            }
            Request::Shutdown { stop_all: true } => {
                self.log.info("shutdown --stop-all requested: stopping every service, then exiting");
                for index in 0..self.slots.len() {
                    self.dispatch(index, Event::Stop, now);
                }
                self.exit = true;
                Outcome::Wait(Wait::ShutdownAll)
            }
        }
    }

    /// Stops (and with `then_start`, restarts) instances; the wait that
    /// answers once they are down (or up again).
    fn stop_each(&mut self, indices: &[usize], then_start: bool, now: Instant) -> Wait {
        let keys = indices.iter().map(|&i| (self.key(i), self.slots[i].service.state.pid())).collect();
        for &index in indices {
            self.dispatch(index, Event::Stop, now);
            if then_start {
                self.dispatch(index, Event::Start, now);
            }
        }
        if then_start { Wait::Restarted(keys) } else { Wait::Down(keys) }
    }

    /// Which instance `start-process NAME` starts: the named instance, the
    /// first one that is down, or a new one while under max_instances.
    fn start_target(&mut self, name: &str) -> Result<usize, String> {
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
    fn reload(&mut self, now: Instant) -> (bool, Vec<String>) {
        let new = match config::load(&self.config.path) {
            Ok(new) => new,
            Err(e) => {
                let mut lines = vec!["reload rejected; the running config is unchanged:".to_string()];
                lines.extend(e.to_string().lines().map(str::to_string));
                return (false, lines);
            }
        };
        let (mut added, mut removed, mut changed, mut unchanged) = (Vec::new(), Vec::new(), Vec::new(), 0);
        for index in 0..self.slots.len() {
            let name = self.slots[index].service.name.clone();
            if !self.slots[index].retired && !new.services.iter().any(|d| d.name == name) {
                if self.slots[index].service.instance == 0 {
                    removed.push(name);
                }
                self.slots[index].retired = true;
                self.dispatch(index, Event::Stop, now);
            }
        }
        for def in &new.services {
            let indices: Vec<usize> = (0..self.slots.len())
                .filter(|&i| !self.slots[i].retired && self.slots[i].service.name == def.name)
                .collect();
            if indices.is_empty() {
                added.push(def.name.clone());
                self.add(def.clone());
            } else if *self.slots[indices[0]].def != *def {
                changed.push(def.name.clone());
                let def = Rc::new(def.clone());
                for index in indices {
                    let slot = &mut self.slots[index];
                    slot.def = Rc::clone(&def);
                    slot.service.auto_restart = def.auto_restart;
                    if slot.service.state.is_up() {
                        self.dispatch(index, Event::Stop, now);
                        self.dispatch(index, Event::Start, now);
                    }
                }
            } else {
                unchanged += 1;
            }
        }
        let mut lines = Vec::new();
        if new.daemon != self.config.daemon {
            lines.push("note: [daemon] settings changed; they take effect when the daemon is restarted".to_string());
        }
        let list = |names: &[String]| {
            if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
        };
        lines.push(format!(
            "reloaded {}: {} added{}, {} removed{}, {} restarted{}, {unchanged} unchanged",
            new.path.display(),
            added.len(),
            list(&added),
            removed.len(),
            list(&removed),
            changed.len(),
            list(&changed)
        ));
        self.config.services = new.services;
        (true, lines)
    }

    fn status_document(&self, indices: &[usize], now: Instant) -> status::Document {
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
                    status::ProcessInfo {
                        name: s.name.clone(),
                        instance: s.instance,
                        state: s.state.name().to_string(),
                        pid: s.state.pid(),
                        uptime_secs: uptime,
                        restarts: s.n_restarts,
                        last_exit: s.last_exit.clone(),
                    }
                })
                .collect(),
        }
    }

    /// The answer to a finished wait, or `None` while it must go on.
    fn check_wait(&self, wait: &Wait) -> Option<Result<Vec<String>, String>> {
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
                    match s.state {
                        State::Running { pid, .. } if Some(pid) != *old => {
                            lines.push(format!("{}: restarted (pid {pid})", label(s)))
                        }
                        State::Running { .. } | State::Stopping { .. } | State::Starting => {
                            return None;
                        }
                        State::Stopped | State::Backoff | State::Exited | State::Fatal => {
                            return Some(Err(format!(
                                "{}: failed to restart: {}",
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
                Some(Ok(vec![format!("stopped {} services; daemon exiting", self.slots.len())]))
            }
        }
    }

    // -- Clients -----------------------------------------------------------

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let mut client = Client {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        phase: Phase::Reading,
                        deadline: now + REQUEST_TIMEOUT,
                    };
                    if self.clients.len() >= MAX_CLIENTS {
                        client.reply(Err((vec![], "too many connections".into())), now);
                    }
                    self.clients.push(client);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // EMFILE and friends: the connection stays queued; say so
                    // once per pass and retry on the next.
                    self.log.warning(format_args!("control socket: accept: {}", msg::io_error(&e)));
                    return;
                }
            }
        }
    }

    fn serve_clients(&mut self, ready: &[bool], now: Instant) {
        let mut ready = ready.iter().copied().chain(std::iter::repeat(false));
        let mut clients = std::mem::take(&mut self.clients);
        clients.retain_mut(|client| {
            let is_ready = ready.next().unwrap_or(false);
            self.serve(client, is_ready, now)
        });
        clients.append(&mut self.clients); // any accepted meanwhile
        self.clients = clients;
    }

    /// Moves one client along; `false` when it is done and can be dropped.
    fn serve(&mut self, client: &mut Client, ready: bool, now: Instant) -> bool {
        if let Phase::Reading = client.phase {
            if ready {
                match client.read_line() {
                    Ok(Some(line)) => {
                        let outcome = match std::str::from_utf8(&line)
                            .map_err(|_| "request is not UTF-8".to_string())
                            .and_then(|l| Request::parse(l.trim_end_matches('\r')))
                        {
                            Ok(request) => self.handle(request, now),
                            Err(e) => Outcome::Reply(Err((vec![], e))),
                        };
                        match outcome {
                            Outcome::Wait(wait) => {
                                client.phase = Phase::Waiting(wait);
                                client.deadline = now + WAIT_TIMEOUT;
                            }
                            Outcome::Reply(answer) => client.reply(answer, now),
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        let Some(reason) = reason else { return false };
                        client.reply(Err((vec![], reason)), now);
                    }
                }
            } else if now >= client.deadline {
                client.reply(Err((vec![], "timed out waiting for a request line".into())), now);
            }
        }
        if let Phase::Waiting(wait) = &client.phase {
            match self.check_wait(wait) {
                Some(result) => client.reply(result.map_err(|e| (vec![], e)), now),
                None if now >= client.deadline => {
                    client.reply(Err((vec![], "timed out waiting for the processes".into())), now)
                }
                None => {}
            }
        }
        if let Phase::Writing = client.phase {
            if now >= client.deadline {
                return false;
            }
            match client.write_some() {
                Ok(done) => return !done,
                Err(_) => return false,
            }
        }
        true
    }

    /// Best-effort delivery of finished replies before the daemon exits.
    fn flush_clients(&mut self) {
        for client in &mut self.clients {
            if let Phase::Writing = client.phase {
                let _ = client.stream.set_nonblocking(false);
                let _ = client.stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = io::Write::write_all(&mut client.stream, &client.output);
            }
        }
    }
}

impl Client {
    /// Reads what is available. `Ok(Some(line))` for a full request line,
    /// `Ok(None)` for not yet, `Err(Some(reason))` to refuse, `Err(None)` to
    /// drop silently (the peer hung up).
    fn read_line(&mut self) -> Result<Option<Vec<u8>>, Option<String>> {
        let mut buf = [0u8; 1024];
        loop {
            match io::Read::read(&mut self.stream, &mut buf) {
                Ok(0) => return Err(None),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                        self.input.truncate(end);
                        return Ok(Some(std::mem::take(&mut self.input)));
                    }
                    if self.input.len() >= MAX_LINE {
                        return Err(Some(format!("request line longer than {MAX_LINE} bytes")));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(None),
            }
        }
    }

    /// Queues the final reply (after any payload already queued).
    fn reply(&mut self, result: Answer, now: Instant) {
        let (lines, last) = match result {
            Ok(lines) => (lines, "ok".to_string()),
            Err((lines, message)) => (lines, format!("err {}", message.replace('\n', " "))),
        };
        for line in lines.iter().chain(std::iter::once(&last)) {
            self.output.extend_from_slice(line.as_bytes());
            self.output.push(b'\n');
        }
        self.phase = Phase::Writing;
        self.deadline = now + REPLY_TIMEOUT;
    }

    /// Writes what the socket takes; `Ok(true)` once all is written.
    fn write_some(&mut self) -> io::Result<bool> {
        while !self.output.is_empty() {
            match io::Write::write(&mut self.stream, &self.output) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// `web` or `web:1` as used in log lines and replies.
fn label(service: &Service) -> String {
    if service.instance == 0 { service.name.clone() } else { format!("{}:{}", service.name, service.instance) }
}

fn key_label(key: &Key) -> String {
    if key.1 == 0 { key.0.clone() } else { format!("{}:{}", key.0, key.1) }
}
