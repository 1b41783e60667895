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

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};
use std::{fs::File, io};

use crate::config::{self, Config, ServiceDef};
use crate::control::{MAX_LINE, Request, Target};
use crate::msg::{self, Log};
use crate::pidfile::{PidFile, PidFileError};
use crate::service::{Action, Event, STOP_TIMEOUT, Service, State, Want};
use crate::status;
use nanoserde::SerJson;
use crate::sys::{self, PollFd, SignalPipe, Spawn};

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
}

/// An instance named across loop passes (slots may move).
type Key = (String, u32);

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
}

/// Runs the supervisor in the foreground until TERM, INT or `shutdown`.
pub fn run(config: Config) -> Result<(), SetupError> {
    let pid_file = PidFile::acquire(&config.daemon.pid_file).map_err(|e| match e {
        PidFileError::Locked(Some(pid)) => SetupError(format!("already running (pid {pid})")),
        PidFileError::Locked(None) => SetupError(format!("already running ({} is locked)", config.daemon.pid_file.display())),
        PidFileError::Io(e) => SetupError(format!("pid file {}", msg::path_error(&config.daemon.pid_file, &e))),
    })?;
    let socket = &config.daemon.control_socket;
    let listener = bind_control_socket(socket).map_err(|e| SetupError(format!("control socket {}", msg::path_error(socket, &e))))?;
    let signals = SignalPipe::install().map_err(|e| SetupError(format!("signal handlers: {}", msg::io_error(&e))))?;
    let stdin = File::open("/dev/null").map_err(|e| SetupError(msg::path_error(Path::new("/dev/null"), &e)))?;
    let env = std::env::vars_os().map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes()].concat()).collect();

    // From now on, we must not die.
    let mut daemon = Daemon {
        config,
        slots: Vec::new(),
        log: Log::stderr(),
        signals,
        listener,
        clients: Vec::new(),
        stdin,
        env,
        exit: false,
    };
    daemon.log.info(format_args!("started (pid {}), config {}, {} services", sys::getpid(), daemon.config.path.display(), daemon.config.services.len()));
    let defs: Vec<ServiceDef> = daemon.config.services.clone();
    for def in defs {
        daemon.add(def);
    }
    daemon.run_loop();

    let _ = std::fs::remove_file(&daemon.config.daemon.control_socket);
    daemon.log.info("exiting; services left running");
    pid_file.remove();
    Ok(())
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
            let mut fds = vec![PollFd::new(self.signals.fd(), sys::POLLIN), PollFd::new(self.listener.as_raw_fd(), sys::POLLIN)];
            for client in &self.clients {
                let events = match client.phase {
                    Phase::Reading => sys::POLLIN,
                    Phase::Waiting(_) => 0,
                    Phase::Writing => sys::POLLOUT,
                };
                fds.push(PollFd::new(client.stream.as_raw_fd(), events));
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
            self.fire_deadlines(now);
            if fds[1].ready() {
                self.accept(now);
            }
            let ready: Vec<bool> = fds[2..].iter().map(PollFd::ready).collect();
            self.serve_clients(&ready, now);
            self.drop_retired();

            if self.exit && !self.clients.iter().any(|c| matches!(c.phase, Phase::Waiting(Wait::ShutdownAll))) {
                self.flush_clients();
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let services = self.slots.iter().filter_map(|s| s.service.deadline);
        let clients = self.clients.iter().map(|c| c.deadline);
        services.chain(clients).min()
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

    // -- Processes ---------------------------------------------------------

    /// Adds instance 0 of a new service and starts it if autostart says so.
    fn add(&mut self, def: ServiceDef) {
        let def = Rc::new(def);
        self.slots.push(Slot {
            service: Service::new(&def.name, 0, def.auto_restart),
            def: Rc::clone(&def),
            retired: false,
        });
        if def.autostart {
            let index = self.slots.len() - 1;
            self.dispatch(index, Event::Start, Instant::now());
        }
    }

    /// Feeds one event to an instance and performs the resulting actions.
    fn dispatch(&mut self, index: usize, event: Event, now: Instant) {
        let actions = self.slots[index].service.step(event, now);
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
                            self.log.warning(format_args!("{label}: signal {} to process group {pid}: {}", sys::signal_name(signal), msg::io_error(&e)));
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
        let result = Spawn::new(&def.command, &def.args, &env, cwd).map_err(|e| format!("{}: {}", def.command, msg::io_error(&e))).and_then(|spawn| {
            spawn.run(&self.stdin).map_err(|e| match e.stage {
                sys::SpawnStage::Exec => format!("exec {}: {}", def.command, msg::io_error(&e.error)),
                sys::SpawnStage::Chdir => format!("chdir {}: {}", cwd.unwrap_or(Path::new("/")).display(), msg::io_error(&e.error)),
                sys::SpawnStage::Setup => format!("spawn: {}", msg::io_error(&e.error)),
            })
        });
        match result {
            Ok(pid) => {
                self.log.info(format_args!("{label}: started (pid {pid})"));
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
                State::Backoff => format!("exited too soon; next start in {}s", service.deadline.map_or(0, |d| d.saturating_duration_since(now).as_secs_f64().ceil() as u64)),
                State::Fatal => "failed too often in a row; giving up (fatal) until start-process or restart".to_string(),
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
                    self.log.warning(format_args!("{}: pid {pid} did not stop within {}s; sending KILL", label(&self.slots[index].service), STOP_TIMEOUT.as_secs()));
                }
                self.dispatch(index, Event::Deadline, now);
            }
        }
    }

    fn drop_retired(&mut self) {
        self.slots.retain(|s| !(s.retired && !s.service.state.is_up()));
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
    fn handle(&mut self, request: Request, now: Instant) -> Result<(Vec<String>, Option<Wait>), (Vec<String>, String)> {
        match request {
            Request::Status { name } => {
                let indices = match &name {
                    Some(name) => self.select(name).map_err(|e| (vec![], e))?,
                    None => (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect(),
                };
                Ok((vec![self.status_document(&indices, now).serialize_json()], None))
            }
            Request::Start { name } => {
                let index = self.start_target(&name).map_err(|e| (vec![], e))?;
                self.dispatch(index, Event::Start, now);
                let service = &self.slots[index].service;
                match service.state.pid() {
                    Some(pid) => Ok((vec![format!("{}: started (pid {pid})", label(service))], None)),
                    None => Err((vec![], format!("{}: failed to start: {}", label(service), service.last_exit.as_deref().unwrap_or("unknown error")))),
                }
            }
            Request::Stop { target } => {
                let indices = match target {
                    Target::All => (0..self.slots.len()).collect(),
                    Target::Name(name) => self.select(&name).map_err(|e| (vec![], e))?,
                };
                let keys = indices.iter().map(|&i| (self.key(i), self.slots[i].service.state.pid())).collect();
                for index in indices {
                    self.dispatch(index, Event::Stop, now);
                }
                Ok((vec![], Some(Wait::Down(keys))))
            }
            Request::Restart { name } => {
                let indices = self.select(&name).map_err(|e| (vec![], e))?;
                let keys = indices.iter().map(|&i| (self.key(i), self.slots[i].service.state.pid())).collect();
                for index in indices {
                    self.dispatch(index, Event::Stop, now);
                    self.dispatch(index, Event::Start, now);
                }
                Ok((vec![], Some(Wait::Restarted(keys))))
            }
            Request::Reload => match self.reload(now) {
                (true, lines) => Ok((lines, None)),
                (false, lines) => Err((lines, "reload rejected; the running config is unchanged".into())),
            },
            Request::Shutdown { stop_all: false } => {
                self.log.info("shutdown requested: exiting, services keep running");
                self.exit = true;
                Ok((vec!["daemon exiting; services left running".into()], None))
            }
            Request::Shutdown { stop_all: true } => {
                self.log.info("shutdown --stop-all requested: stopping every service, then exiting");
                for index in 0..self.slots.len() {
                    self.dispatch(index, Event::Stop, now);
                }
                self.exit = true;
                Ok((vec![], Some(Wait::ShutdownAll)))
            }
        }
    }

    /// Which instance `start-process NAME` starts: the named instance, the
    /// first one that is down, or a new one while under max_instances.
    fn start_target(&mut self, name: &str) -> Result<usize, String> {
        let indices = self.select(name)?;
        if name.contains(':') || indices.len() > 1 && indices.iter().all(|&i| !self.slots[i].service.state.is_up()) {
            return Ok(indices[0]);
        }
        if let Some(&index) = indices.iter().find(|&&i| !self.slots[i].service.state.is_up() || self.slots[i].service.want == Want::Down) {
            return Ok(index);
        }
        let def = Rc::clone(&self.slots[indices[0]].def);
        if indices.len() as u32 >= def.max_instances {
            return Err(format!("{name}: already running (max_instances = {})", def.max_instances));
        }
        let instance = (0..).find(|n| !indices.iter().any(|&i| self.slots[i].service.instance == *n)).unwrap_or(0);
        let at = indices[indices.len() - 1] + 1;
        self.slots.insert(
            at,
            Slot {
                service: Service::new(&def.name, instance, def.auto_restart),
                def,
                retired: false,
            },
        );
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
            let indices: Vec<usize> = (0..self.slots.len()).filter(|&i| !self.slots[i].retired && self.slots[i].service.name == def.name).collect();
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
        let list = |names: &[String]| if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) };
        lines.push(format!("reloaded {}: {} added{}, {} removed{}, {} restarted{}, {unchanged} unchanged", new.path.display(), added.len(), list(&added), removed.len(), list(&removed), changed.len(), list(&changed)));
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
                        State::Running { since, .. } | State::Stopping { since, .. } => Some(now.saturating_duration_since(since).as_secs()),
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
                        (Some(pid), Some(s)) => format!("{}: stopped (pid {pid}, {})", label(s), s.last_exit.as_deref().unwrap_or("?")),
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
                        State::Running { pid, .. } if Some(pid) != *old => lines.push(format!("{}: restarted (pid {pid})", label(s))),
                        State::Running { .. } | State::Stopping { .. } | State::Starting => return None,
                        State::Stopped | State::Backoff | State::Exited | State::Fatal => {
                            return Some(Err(format!("{}: failed to restart: {}", label(s), s.last_exit.as_deref().unwrap_or("unknown error"))));
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
                        let result = match std::str::from_utf8(&line).map_err(|_| "request is not UTF-8".to_string()).and_then(|l| Request::parse(l.trim_end_matches('\r'))) {
                            Ok(request) => self.handle(request, now),
                            Err(e) => Err((vec![], e)),
                        };
                        match result {
                            Ok((lines, Some(wait))) => {
                                client.output = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
                                client.phase = Phase::Waiting(wait);
                                client.deadline = now + WAIT_TIMEOUT;
                            }
                            Ok((lines, None)) => client.reply(Ok(lines), now),
                            Err(e) => client.reply(Err(e), now),
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
                None if now >= client.deadline => client.reply(Err((vec![], "timed out waiting for the processes".into())), now),
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
    fn reply(&mut self, result: Result<Vec<String>, (Vec<String>, String)>, now: Instant) {
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
