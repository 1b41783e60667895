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

mod adoption;
mod clients;
mod forking;
mod notify;
mod output;
mod probes;
mod requests;
#[cfg(feature = "web")]
mod web;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{fs::File, io, io::Write};

use crate::config::Restart;
use crate::config::{self, Config, ServiceDef};
use crate::control::{MAX_LINE, Request, Target};
use crate::msg::{self, Log};
use crate::pidfile::{PidFile, PidFileError};
use crate::procfs;
use crate::service::{Action, Event, Service, State, Want};
use crate::state::{self, Record};
use crate::status;
use crate::sys::{self, ExitStatus, PollFd, SignalPipe, Spawn};

/// How long a new client may stay silent.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a client may take to send its request line, from its first byte.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read its reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `stop`, `restart` and `shutdown --stop-all` wait beyond the
/// longest stop timeout involved (for SIGKILL to take effect).
const WAIT_SLACK: Duration = Duration::from_secs(5);
/// How often the group of a draining instance is checked for being gone.
const DRAIN_CHECK: Duration = Duration::from_millis(20);
/// Connections of users other than root and the daemon's served at once;
/// more are refused (root's and the daemon's user's never are).
const MAX_CLIENTS: usize = 64;
/// Connections of one such user served at once.
const MAX_PER_UID: usize = 8;
/// How long accepting pauses after it failed (out of descriptors).
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

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
    /// The session of its current process: the one the spawn made (the
    /// service leads it), or the one of the process `MAINPID=` named.
    session: sys::Pid,
    /// Wall-clock start of its current process, seconds since the epoch.
    started_at: u64,
    /// The last STATUS= it sent over the notify socket.
    status_text: Option<String>,
    /// Its started process exited and its pid file is awaited.
    pid_wait: Option<forking::PidWait>,
}

impl Slot {
    fn new(def: Rc<ServiceDef>, instance: u32) -> Slot {
        Slot {
            service: Service::new(&def.name, instance, Rc::clone(&def.policy)),
            def,
            retired: false,
            watch: Watch::Child,
            starttime: 0,
            session: 0,
            started_at: 0,
            status_text: None,
            pid_wait: None,
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
    access: Access,
    asker: Asker,
    /// The peer's uid (u32::MAX when unknown).
    uid: u32,
}

/// Who asked for a request, named in the log line of every request that
/// changes something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    /// A control-socket peer, by its SO_PEERCRED uid (none if unknown).
    Uid(Option<u32>),
    /// The web API.
    #[cfg(feature = "web")]
    Web,
    /// A signal to the daemon (SIGHUP: reload).
    Signal(libc::c_int),
}

impl std::fmt::Display for Asker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Asker::Uid(Some(uid)) => {
                // Named from /etc/passwd when it says (as `ls -l` does);
                // read per request, which only changing requests do.
                let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
                match crate::users::find_user(&passwd, &uid.to_string()).filter(|u| u.name != uid.to_string()) {
                    Some(user) => write!(f, "uid {uid}, {}", user.name),
                    None => write!(f, "uid {uid}"),
                }
            }
            Asker::Uid(None) => f.write_str("an unknown peer"),
            #[cfg(feature = "web")]
            Asker::Web => f.write_str("web"),
            Asker::Signal(signal) => write!(f, "SIG{}", sys::signal_name(signal)),
        }
    }
}

/// What a control-socket client may do (from its SO_PEERCRED credentials).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Full,
    /// Only `status`; the uid, for the refusal.
    Status(u32),
    /// Nothing; the uid, for the refusal.
    None(u32),
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
    /// Capture pipes, one per capturing service.
    pipes: Vec<output::Pipe>,
    /// The connection to the fd holder, when output is captured.
    holder: Option<crate::holder::Holder>,
    /// `shutdown --stop-all` was asked: the fd holder can go too.
    stop_all: bool,
    /// When the daemon exits even if services it is stopping still run.
    stop_all_until: Option<Instant>,
    /// Stops deferred until the services that depend on them are down.
    pending_stops: Vec<Key>,
    /// Dependents (restart_dependents) to start again once they are down.
    restart_after: Vec<Key>,
    /// The sd_notify socket, when a service uses it.
    notify: Option<std::os::unix::net::UnixDatagram>,
    /// Readiness probes and health checks.
    checks: Vec<probes::Check>,
    /// Counts changes of any instance's state or pid (for event streams).
    generation: u64,
    /// The daemon is a child subreaper: orphans of its services are its own.
    subreaper: bool,
    /// Turns deadlines into numbers that outlive the daemon.
    clock: adoption::Clock,
    /// Accepting on the control socket is paused until then (it failed).
    accept_paused: Option<Instant>,
    /// A connection limit of the control socket was hit and logged;
    /// cleared when another user's connection fits again.
    clients_crowded: bool,
    /// The web UI's server, when `[web]` is configured.
    #[cfg(feature = "web")]
    web: Option<web::Web>,
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
    let (pid_file, listener, signals, stdin, subreaper) = setup?;
    let env = sys::inherited_environment();

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
        pipes: Vec::new(),
        holder: None,
        stop_all: false,
        stop_all_until: None,
        pending_stops: Vec::new(),
        restart_after: Vec::new(),
        notify: None,
        checks: Vec::new(),
        generation: 0,
        subreaper,
        clock: adoption::Clock::now(Instant::now()),
        accept_paused: None,
        clients_crowded: false,
        #[cfg(feature = "web")]
        web: None,
    };
    daemon.log.info(format_args!(
        "started (pid {}), config {}, {} services",
        sys::getpid(),
        daemon.config.path.display(),
        daemon.config.services.len()
    ));
    daemon.attach_holder();
    daemon.open_notify();
    #[cfg(feature = "web")]
    daemon.open_web();
    daemon.warn_world_writable();
    daemon.adopt_and_start();
    daemon.persist();
    daemon.run_loop();

    let _ = std::fs::remove_file(&daemon.config.daemon.control_socket);
    if daemon.stop_all && !daemon.slots.iter().any(|s| s.service.state.is_up()) {
        // Everything was stopped: nothing is left to adopt, and the next
        // daemon starts as at boot (an init script's stop, then start),
        // not with every service remembered as stopped by the user.
        let _ = std::fs::remove_file(&daemon.config.daemon.state_file);
    } else {
        daemon.persist();
    }
    if daemon.stop_all {
        daemon.release_holder();
        daemon.log.info("exiting; every service was stopped");
    } else {
        daemon.log.info("exiting; services left running");
    }
    pid_file.remove();
    // Only now close the clients: a `shutdown` client waits for this EOF,
    // which thus means the pid file is free for the next daemon.
    drop(daemon);
    Ok(())
}

/// Makes the missing directories of the daemon's files (pid file, control
/// socket, state file, log file) and of every service's log file, mode
/// 0755: on routers /var is a tmpfs, empty at each boot. Only the daemon's
/// own may fail the start; a service's log directory that cannot be made
/// is the service's capture problem, reported when it opens the log.
pub fn make_directories(config: &Config) -> Result<(), SetupError> {
    let d = &config.daemon;
    let log_file = d.log_file.clone().unwrap_or_else(|| d.pid_file.with_extension("log"));
    for (key, path) in [
        ("pid_file", &d.pid_file),
        ("control_socket", &d.control_socket),
        ("state_file", &d.state_file),
        ("log_file", &log_file),
    ] {
        make_parent(path)
            .map_err(|(dir, e)| SetupError(format!("{key} {}: mkdir {}", path.display(), msg::path_error(&dir, &e))))?;
    }
    for dir in service_log_dirs(config) {
        let _ = make_parent(&dir);
    }
    Ok(())
}

/// The log files of the services that capture to one.
fn service_log_dirs(config: &Config) -> impl Iterator<Item = std::path::PathBuf> + '_ {
    config.services.iter().filter_map(|def| match &def.capture {
        Some(crate::capture::Sink::File { path, .. }) => Some(path.clone()),
        _ => None,
    })
}

/// Makes the directory of `path` and its missing parents, mode 0755.
fn make_parent(path: &Path) -> Result<(), (std::path::PathBuf, io::Error)> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else { return Ok(()) };
    std::fs::DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(|e| (dir.to_path_buf(), e))
}

/// Everything that may still fail and stop the daemon from starting.
fn setup(config: &Config) -> Result<(PidFile, UnixListener, SignalPipe, File, bool), SetupError> {
    // Where others can add entries, they can plant a link under the state
    // file's name (or its temporary's) for the daemon to write through.
    if let Some(why) = crate::files::shared_dir(&config.daemon.state_file) {
        return Err(SetupError(format!("state file {}: {why}; refusing it", config.daemon.state_file.display())));
    }
    let pid_file = PidFile::acquire(&config.daemon.pid_file).map_err(|e| match e {
        PidFileError::Locked(Some(pid)) => SetupError(format!("already running (pid {pid})")),
        PidFileError::Locked(None) => {
            SetupError(format!("already running ({} is locked)", config.daemon.pid_file.display()))
        }
        PidFileError::Io(e) => SetupError(format!("pid file {}", msg::path_error(&config.daemon.pid_file, &e))),
    })?;
    let socket = &config.daemon.control_socket;
    let listener = bind_control_socket(socket, config.daemon.control_group)
        .map_err(|e| SetupError(format!("control socket {}", msg::path_error(socket, &e))))?;
    let signals = SignalPipe::install().map_err(|e| SetupError(format!("signal handlers: {}", msg::io_error(&e))))?;
    let stdin = File::open("/dev/null").map_err(|e| SetupError(msg::path_error(Path::new("/dev/null"), &e)))?;
    // Always where the kernel allows: only as a subreaper does the daemon
    // inherit what a service's process left when it went to the background
    // (its own session, its parent gone), the one proof that a forking
    // daemon's pid file or leftover is the service's. `subreaper = true`
    // makes a kernel without it an error.
    let subreaper = match sys::become_subreaper() {
        Err(e) if config.daemon.subreaper => {
            return Err(SetupError(format!("subreaper = true: {}", msg::io_error(&e))));
        }
        result => result.is_ok(),
    };
    adoption::check_state_file(&config.daemon.state_file).map_err(SetupError)?;
    // A failure here only means fewer services fit; not a reason to stop.
    let _ = sys::raise_nofile();
    // Whatever the daemon inherited (beyond stdio) is not for its services.
    sys::cloexec_inherited().map_err(|e| SetupError(format!("/proc/self/fd: {}", msg::io_error(&e))))?;
    Ok((pid_file, listener, signals, stdin, subreaper))
}

/// Binds the control socket with mode 0600 (0660 for control_group). A leftover socket file is
/// replaced: we hold the pid file lock, so no live daemon owns it.
fn bind_control_socket(path: &Path, group: Option<u32>) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    // The mask makes the socket 0600 from the moment it exists.
    let old = sys::umask(0o177);
    let listener = UnixListener::bind(path);
    sys::umask(old);
    let listener = listener?;
    if let Some(gid) = group {
        // The group may connect; what each member may do is checked per
        // connection (SO_PEERCRED).
        std::os::unix::fs::chown(path, None, Some(gid))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

impl Daemon {
    fn run_loop(&mut self) {
        loop {
            let now = Instant::now();
            let timeout = self.next_deadline().map(|d| d.saturating_duration_since(now));
            let listening = if self.accept_paused.is_some_and(|until| now < until) { 0 } else { sys::POLLIN };
            let mut fds =
                vec![PollFd::new(self.signals.fd(), sys::POLLIN), PollFd::new(self.listener.as_raw_fd(), listening)];
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
            let first_pipe = fds.len();
            for pipe in &self.pipes {
                fds.push(PollFd::new(pipe.read.as_raw_fd(), sys::POLLIN));
            }
            let first_check = fds.len();
            let check_slots: Vec<usize> =
                (0..self.checks.len()).filter(|&i| self.checks[i].poll_fd().is_some()).collect();
            fds.extend(check_slots.iter().filter_map(|&i| self.checks[i].poll_fd()));
            let notify_at = fds.len();
            if let Some(socket) = &self.notify {
                fds.push(PollFd::new(socket.as_raw_fd(), sys::POLLIN));
            }
            #[cfg(feature = "web")]
            let first_web = fds.len();
            #[cfg(feature = "web")]
            fds.extend(self.web.as_ref().map(web::Web::poll_fds).unwrap_or_default());
            if let Err(e) = sys::poll(&mut fds, timeout) {
                self.log.error(format_args!("poll: {}", msg::io_error(&e)));
            }
            let now = Instant::now();

            // What became ready, named by what it belongs to rather than by
            // its place in `fds`: every handler below may add or drop
            // slots, pipes and checks (a reload, a restart), which would
            // leave positions stale.
            let signalled = fds[0].ready();
            let notified = fds.get(notify_at).is_some_and(PollFd::ready);
            let readable: Vec<String> = self
                .pipes
                .iter()
                .zip(&fds[first_pipe..first_check])
                .filter(|(_, fd)| fd.ready())
                .map(|(pipe, _)| pipe.name.clone())
                .collect();
            let probed: Vec<(Key, probes::Purpose)> = check_slots
                .iter()
                .zip(&fds[first_check..notify_at])
                .filter(|(_, fd)| fd.ready())
                .map(|(&i, _)| (self.checks[i].key.clone(), self.checks[i].purpose))
                .collect();
            let ended: Vec<Key> = watched
                .iter()
                .zip(&fds[2 + n_clients..first_pipe])
                .filter(|(_, fd)| fd.ready())
                .map(|(&i, _)| self.key(i))
                .collect();
            let clients_ready: Vec<bool> = fds[2..2 + n_clients].iter().map(PollFd::ready).collect();
            #[cfg(feature = "web")]
            let web_ready: Vec<bool> = fds[first_web..].iter().map(PollFd::ready).collect();
            let accepting = fds[1].ready();
            drop(fds);

            if signalled {
                for signal in self.signals.drain() {
                    self.on_signal(signal, now);
                }
            }
            // Notifications before exits: a process that says MAINPID=
            // and then exits has handed its service over, not ended it.
            if notified {
                self.read_notify(now);
            }
            self.reap(now);
            // Output first, so lines written just before an exit are
            // logged before the exit is.
            for name in readable {
                if let Some(index) = self.pipes.iter().position(|p| p.name == name) {
                    self.read_output(index);
                }
            }
            for key in ended {
                if let Some(index) = self.index_of(&key) {
                    self.adopted_ended(index, now);
                }
            }
            if self.next_check.is_some_and(|at| at <= now) {
                self.check_polled(now);
            }
            self.check_draining(now);
            // Before deadlines: a ready timeout that passed while a pid file
            // was awaited is the pid file's failure, not a stop of a process.
            self.check_pid_files(now);
            self.fire_deadlines(now);
            self.run_checks(&probed, now);
            self.advance_dependencies(now);
            self.schedule_checks(now);
            if accepting || self.accept_paused.is_some_and(|until| until <= now) {
                self.accept(now);
            }
            self.serve_clients(&clients_ready, now);
            #[cfg(feature = "web")]
            self.serve_web(&web_ready, now);
            self.drop_retired();
            self.persist();

            // Stopping everything, the daemon waits for its services, or
            // for a `shutdown --stop-all` client's wait to end.
            let waiting = self.clients.iter().any(|c| matches!(c.phase, Phase::Waiting(Wait::ShutdownAll)))
                || self
                    .stop_all_until
                    .is_some_and(|until| now < until && self.slots.iter().any(|s| s.service.state.is_up()));
            if self.exit && !waiting {
                self.flush_clients();
                return;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let services = self.slots.iter().filter_map(|s| s.service.deadline);
        let clients = self.clients.iter().map(|c| c.deadline);
        let draining = self
            .slots
            .iter()
            .any(|s| matches!(s.service.state, State::Draining { .. }))
            .then(|| Instant::now() + DRAIN_CHECK);
        let pid_files =
            self.slots.iter().any(|s| s.pid_wait.is_some()).then(|| Instant::now() + forking::PID_FILE_RETRY);
        let checks = self.checks.iter().map(probes::Check::due);
        #[cfg(feature = "web")]
        let web = self.web.as_ref().and_then(web::Web::next_deadline);
        #[cfg(not(feature = "web"))]
        let web = None;
        services
            .chain(clients)
            .chain(self.next_check)
            .chain(draining)
            .chain(pid_files)
            .chain(checks)
            .chain(web)
            .chain(self.accept_paused)
            .chain(self.stop_all_until)
            .min()
    }

    fn on_signal(&mut self, signal: libc::c_int, now: Instant) {
        match signal {
            // Nothing outlives PID 1 of a PID namespace (a container's
            // `docker stop`): the kernel would SIGKILL every service as
            // it exits, so they are stopped properly first, as by
            // `shutdown --stop-all`.
            libc::SIGTERM | libc::SIGINT if sys::getpid() == 1 => {
                if self.stop_all {
                    return;
                }
                self.log.info(format_args!(
                    "got SIG{} as PID 1: stopping every service, then exiting",
                    sys::signal_name(signal)
                ));
                let all: Vec<usize> = (0..self.slots.len()).rev().collect();
                self.shutdown_all(&all, now);
            }
            libc::SIGTERM | libc::SIGINT => {
                self.log.info(format_args!("got SIG{}: exiting, services keep running", sys::signal_name(signal)));
                self.exit = true;
            }
            libc::SIGHUP => {
                // The same request as `reload`; the handler logs what it did.
                let _ = self.handle(Request::Reload, Asker::Signal(signal), now);
            }
            _ => {} // SIGCHLD: reaping happens on every pass anyway.
        }
    }

    // -- Processes ---------------------------------------------------------

    /// Adds instance 0 of a new service and starts it if autostart says so.
    fn add(&mut self, def: Rc<ServiceDef>) {
        self.slots.push(Slot::new(Rc::clone(&def), 0));
        if def.autostart {
            let index = self.slots.len() - 1;
            self.start(index, Instant::now());
        }
    }

    /// As root, a config or a service program that anyone may rewrite is a
    /// way to become root: say so (a warning, not a refusal).
    fn warn_world_writable(&mut self) {
        if sys::geteuid() != 0 {
            return;
        }
        let writable = |path: &Path| {
            std::fs::metadata(path)
                .is_ok_and(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o002 != 0)
        };
        let mut paths = vec![self.config.path.clone()];
        for def in &self.config.services {
            if def.command.contains('/') {
                paths.push(def.command.clone().into());
            } else if let Some(found) = self.env.iter().find_map(|e| e.strip_prefix(b"PATH=")).and_then(|path| {
                path.split(|&b| b == b':')
                    .map(|dir| Path::new(std::ffi::OsStr::from_bytes(dir)).join(&def.command))
                    .find(|p| p.is_file())
            }) {
                paths.push(found);
            }
        }
        for path in paths {
            if writable(&path) {
                self.log.warning(format_args!(
                    "{} is world-writable and the daemon runs as root: anyone could change what runs as root",
                    path.display()
                ));
            }
        }
    }

    /// Starts an instance, or leaves it `waiting` until every service it
    /// depends on is ready; dependencies nobody started are started first.
    fn start(&mut self, index: usize, now: Instant) {
        let deps = self.slots[index].def.depends_on.clone();
        for dep in &deps {
            let down = (0..self.slots.len()).find(|&i| {
                let s = &self.slots[i];
                !s.retired && s.service.name == *dep && s.service.instance == 0 && s.service.want == Want::Down
            });
            if let Some(i) = down {
                self.start(i, now);
            }
        }
        let deps_ready = self.deps_ready(&deps);
        self.dispatch(index, Event::Start { deps_ready }, now);
    }

    /// Whether every named service has an instance that is running and ready.
    fn deps_ready(&self, deps: &[String]) -> bool {
        deps.iter().all(|dep| self.slots.iter().any(|s| s.service.name == *dep && s.service.state.is_ready()))
    }

    /// Each pass: waiting instances whose dependencies became ready start,
    /// and deferred stops whose dependents are down go ahead.
    fn advance_dependencies(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            if self.slots[index].service.state == State::Waiting {
                let deps = self.slots[index].def.depends_on.clone();
                if self.deps_ready(&deps) {
                    self.dispatch(index, Event::Start { deps_ready: true }, now);
                }
            }
        }
        let mut pending = std::mem::take(&mut self.pending_stops);
        pending.retain(|key| {
            let Some(index) = self.index_of(key) else {
                return false;
            };
            if self.dependents_up(&key.0) {
                return true;
            }
            self.dispatch(index, Event::Stop, now);
            false
        });
        self.pending_stops.extend(pending);
        let mut restarts = std::mem::take(&mut self.restart_after);
        restarts.retain(|key| {
            let Some(index) = self.index_of(key) else {
                return false;
            };
            if self.slots[index].service.state.is_up() {
                return true;
            }
            self.start(index, now);
            false
        });
        self.restart_after.extend(restarts);
    }

    /// Whether any instance of a service that depends on `name` is up.
    fn dependents_up(&self, name: &str) -> bool {
        self.slots.iter().any(|s| s.service.state.is_up() && s.def.depends_on.iter().any(|d| d == name))
    }

    /// Stops instances in dependency order: an instance whose dependents
    /// still run waits (in `pending_stops`) until they are down.
    fn stop_ordered(&mut self, indices: &[usize], now: Instant) {
        for &index in indices {
            let name = self.slots[index].service.name.clone();
            if self.dependents_up(&name) {
                self.slots[index].service.want = Want::Down;
                self.pending_stops.push(self.key(index));
            } else {
                self.dispatch(index, Event::Stop, now);
            }
        }
    }

    /// Feeds one event to an instance and performs the resulting actions.
    fn dispatch(&mut self, index: usize, event: Event, now: Instant) {
        let (before, wanted) = (self.slots[index].service.state, self.slots[index].service.want);
        let actions = self.slots[index].service.step(event, now);
        let after = self.slots[index].service.state;
        if let (State::Running { .. }, Some(reason)) = (before, self.slots[index].service.failure()) {
            // The daemon gives up on the process: the log says why here,
            // where it acts, not only in last_exit.
            self.log.warning(format_args!("{}: {reason}: stopping", label(&self.slots[index].service)));
        }
        // The state file follows pids, states and wishes; not pings or
        // STATUS= texts, which would make a quiet daemon write all day.
        self.dirty |=
            after.pid() != before.pid() || after.name() != before.name() || self.slots[index].service.want != wanted;
        if after.pid() != before.pid() || after.name() != before.name() {
            self.generation += 1;
        }
        for action in actions {
            match action {
                Action::Spawn => {
                    let outcome = self.spawn(index, now);
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
    ///
    /// The child waits before exec until the state file names it, so a
    /// crash of the daemon at any moment leaves no service running that
    /// the next daemon does not know: either the record was written and the
    /// service runs, or the child sees the daemon gone and exits without
    /// running anything. The record written is the one the end of the pass
    /// would write (the state machine's next step, previewed), so a spawn
    /// costs one state write, not two.
    fn spawn(&mut self, index: usize, now: Instant) -> Event {
        let def = Rc::clone(&self.slots[index].def);
        let output = if self.slots[index].retired { None } else { self.output_fd(&def) };
        let label = label(&self.slots[index].service);
        if self.slots[index].retired {
            return Event::SpawnFailed("removed from the config".into());
        }
        let instance = self.slots[index].service.instance;
        let env = self.environment(&def, instance);
        // A oneshot runs under its waiter, which records how it ended (see
        // oneshot.rs); the status file is made empty for each run.
        let status_file = match def.policy.oneshot.then(|| self.oneshot_status_file(&def.name, instance)) {
            None => None,
            Some(Ok(file)) => Some(file),
            Some(Err(reason)) => {
                self.log.error(format_args!("{label}: {reason}"));
                return Event::SpawnFailed(reason);
            }
        };
        let (program, args) = match &status_file {
            None => (def.command.clone(), def.args.clone()),
            Some((exe, file)) => {
                let mut args = vec!["oneshot-wait".to_string(), file.as_raw_fd().to_string(), "--".into()];
                args.push(def.command.clone());
                args.extend(def.args.iter().cloned());
                (exe.clone(), args)
            }
        };
        let cwd = def.working_directory.clone().or_else(|| self.config.path.parent().map(Path::to_path_buf));
        let cwd = cwd.as_deref();
        let limits: Vec<sys::Limit> = def.limits.iter().map(|(_, limit)| *limit).collect();
        let describe = |e: sys::SpawnError| {
            let what = match e.stage {
                sys::SpawnStage::Exec => format!("exec {program}"),
                sys::SpawnStage::Chdir => format!("chdir {}", cwd.unwrap_or(Path::new("/")).display()),
                sys::SpawnStage::Setup => "spawn".to_string(),
                sys::SpawnStage::Nice => format!("nice {}", def.nice.unwrap_or(0)),
                sys::SpawnStage::Limit => match def.limits.get(e.index) {
                    Some((name, limit)) => match limit.value {
                        Some(value) => format!("setrlimit {name}={value}"),
                        None => format!("setrlimit {name}=unlimited"),
                    },
                    None => "setrlimit".to_string(),
                },
                sys::SpawnStage::Groups => "setgroups".to_string(),
                sys::SpawnStage::Gid => format!("setgid {}", def.credentials.as_ref().map_or(0, |c| c.gid)),
                sys::SpawnStage::Uid => format!("setuid {}", def.credentials.as_ref().map_or(0, |c| c.uid)),
            };
            format!("{what}: {}", msg::io_error(&e.error))
        };
        let forked = Spawn::new(&program, &args, &env, cwd)
            .map_err(|e| format!("{program}: {}", msg::io_error(&e)))
            .and_then(|spawn| {
                spawn
                    .umask(def.umask)
                    .nice(def.nice)
                    .limits(&limits)
                    .credentials(def.credentials.as_ref())
                    .output(output)
                    .pid_variable(def.policy.watchdog.map(|_| "WATCHDOG_PID"))
                    .inherit(status_file.as_ref().map(|(_, file)| file.as_raw_fd()))
                    .fork(&self.stdin)
                    .map_err(describe)
            });
        let result = forked.and_then(|forked| {
            let pid = forked.pid;
            let slot = &mut self.slots[index];
            slot.watch = Watch::Child;
            slot.status_text = None;
            slot.pid_wait = None;
            slot.starttime = procfs::process_starttime(pid).unwrap_or(0);
            slot.session = pid;
            slot.started_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let mut preview = slot.service.clone();
            preview.step(Event::Spawned(pid), now);
            let records: Vec<Record> = (0..self.slots.len())
                .filter_map(|i| {
                    let slot = &self.slots[i];
                    adoption::record_of(slot, if i == index { &preview } else { &slot.service }, &self.clock)
                })
                .collect();
            self.write_state(&records);
            forked.release().map_err(describe)
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

    /// The waiter to run a oneshot under (this binary), and its status
    /// file, made anew and empty: removed first, then created exclusively
    /// (mode 0600) beside the state file, in the directory setup checked.
    fn oneshot_status_file(&self, name: &str, instance: u32) -> Result<(String, File), String> {
        let exe = std::env::current_exe().map_err(|e| format!("oneshot-wait: {}", msg::io_error(&e)))?;
        let path = crate::oneshot::status_path(&self.config.daemon.state_file, name, instance);
        let fail = |e: io::Error| format!("oneshot status file {}", msg::path_error(&path, &e));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
            _ => {}
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
            .map_err(fail)?;
        Ok((exe.display().to_string(), file))
    }

    /// How a oneshot's program ended, as its waiter recorded it; `None`
    /// when the waiter did not (it was killed, or never ran).
    fn oneshot_status(&self, name: &str, instance: u32) -> Option<ExitStatus> {
        let path = crate::oneshot::status_path(&self.config.daemon.state_file, name, instance);
        let mut file = crate::files::open(std::fs::OpenOptions::new().read(true), &path, &[sys::geteuid()]).ok()?;
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).ok()?;
        crate::oneshot::parse_status(&text)
    }

    /// A service's environment: the daemon's (or only its PATH, with
    /// clear_environment), HOME/USER/LOGNAME for its user, its own
    /// `environment` table on top, and the MI7SOFT_SERVICE marker.
    fn environment(&self, def: &ServiceDef, instance: u32) -> Vec<Vec<u8>> {
        let mut env: Vec<Vec<u8>> = if def.clear_environment {
            let path = self.env.iter().find(|e| e.starts_with(b"PATH=")).cloned();
            vec![path.unwrap_or_else(|| b"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_vec())]
        } else {
            self.env.clone()
        };
        // The daemon's own watchdog (were it run by systemd) is not theirs.
        env.retain(|e| !e.starts_with(b"WATCHDOG_USEC=") && !e.starts_with(b"WATCHDOG_PID="));
        let mut set = |key: &str, value: &[u8]| {
            env.retain(|entry| !(entry.starts_with(key.as_bytes()) && entry.get(key.len()) == Some(&b'=')));
            env.push([key.as_bytes(), b"=", value].concat());
        };
        if let Some(user) = &def.user {
            set("HOME", user.home.as_os_str().as_bytes());
            set("USER", user.name.as_bytes());
            set("LOGNAME", user.name.as_bytes());
        }
        for (key, value) in &def.environment {
            set(key, value.as_bytes());
        }
        if notify::uses_notify(def) {
            set("NOTIFY_SOCKET", self.notify_path().as_os_str().as_bytes());
        }
        // As systemd sets it: libsystemd's sd_watchdog_enabled() reads it
        // with WATCHDOG_PID, the child's own pid, which the child fills in
        // (see `Spawn::pid_variable`).
        if let Some(period) = def.policy.watchdog {
            set("WATCHDOG_USEC", period.as_micros().to_string().as_bytes());
        }
        // Last, so no config can remove it: how a daemon finds this process
        // should the previous one crash before recording it.
        set(procfs::MARKER, self.marker(&def.name, instance).as_bytes());
        env
    }

    /// Whose services a marker names: this daemon's, by its state file.
    fn marker_owner(&self) -> String {
        self.config.daemon.state_file.display().to_string()
    }

    /// The MI7SOFT_SERVICE value of one instance of this daemon.
    fn marker(&self, name: &str, instance: u32) -> String {
        procfs::marker(&self.marker_owner(), name, instance)
    }

    fn reap(&mut self, now: Instant) {
        while let Some((pid, status)) = sys::reap_one() {
            if let Some(index) = self.slots.iter().position(|s| s.service.state.main_pid() == Some(pid)) {
                self.ended(index, status, now);
            } else {
                // A check command, or an orphan inherited as a subreaper.
                self.check_command_ended(pid, status, now);
            }
        }
    }

    /// The main process of an instance ended: tell its state machine, with
    /// whether the rest of its process group lives on, and log the outcome.
    fn ended(&mut self, index: usize, status: ExitStatus, now: Instant) {
        let Some(pid) = self.slots[index].service.state.main_pid() else { return };
        // A oneshot's waiter wrote down how the program ended: the only
        // word on it when this daemon adopted the waiter, and exact (a
        // signal, not the waiter's 128+N) when it is our child.
        let status = match self.slots[index].def.policy.oneshot {
            true => self
                .oneshot_status(&self.slots[index].service.name, self.slots[index].service.instance)
                .unwrap_or(status),
            false => status,
        };
        if self.forked_away(index, pid, status, now) {
            return;
        }
        let mut group = self.slots[index].service.group;
        let mut group_alive = procfs::group_alive(group);
        let label = label(&self.slots[index].service);
        if let (false, Some((left, stat))) = (group_alive, self.left_behind(index)) {
            // What it left outside its group is the service's too: drained
            // like the group, so it neither escapes a stop nor keeps a port
            // from the next start.
            let service = &mut self.slots[index].service;
            if let ExitStatus::Code(code @ 0) = status {
                self.log.warning(format_args!(
                    "{label}: exited {code} but pid {left}, which it started, still runs: it went to the \
                     background; run it in the foreground or set pid_file"
                ));
            } else {
                self.log.warning(format_args!("{label}: pid {left}, which it started, still runs"));
            }
            group = stat.pgid;
            service.group = group;
            if let State::Stopping { .. } = service.state {
                // The stop signal went to the old group.
                let signal = service.policy.stop_signal;
                let _ = sys::kill_group(group, signal);
                let _ = sys::kill_group(group, libc::SIGCONT);
            }
            group_alive = true;
        }
        let name = self.slots[index].service.name.clone();
        self.finish_output(&name);
        let failed = self.slots[index].service.failure().is_some();
        match self.slots[index].service.failure() {
            Some(reason) => self.log.info(format_args!("{label}: pid {pid} ended: {reason} ({status})")),
            // An adopted process's end has no status to name.
            None if status == ExitStatus::Unknown => self.log.info(format_args!("{label}: pid {pid} ended ({status})")),
            None => self.log.info(format_args!("{label}: pid {pid} ended with {status}")),
        }
        self.dispatch(index, Event::Exited { status, group_alive }, now);
        let service = &self.slots[index].service;
        let then = match service.state {
            State::Backoff => format!(
                "{}; next start in {}s",
                if failed { "a failed start" } else { "exited too soon" },
                msg::tenths(service.deadline.map_or(Duration::ZERO, |d| d.saturating_duration_since(now)))
            ),
            State::Fatal => gave_up(service),
            State::Exited => match service.policy.restart {
                Restart::Never => "not restarted (restart = \"never\")".to_string(),
                Restart::OnFailure | Restart::Always => "not restarted (a successful exit)".to_string(),
            },
            State::Draining { .. } => format!("waiting for the rest of process group {group} to end"),
            State::Done => "done".to_string(),
            // Restarted (the spawn logged it) or stopped on request.
            State::Stopped | State::Waiting | State::Spawning | State::Running { .. } | State::Stopping { .. } => {
                return;
            }
        };
        self.log.info(format_args!("{label}: {then}"));
    }

    /// Feeds `GroupGone` to draining instances whose process group is gone.
    fn check_draining(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            if let State::Draining { pgid, .. } = self.slots[index].service.state {
                if !procfs::group_alive(pgid) {
                    self.dispatch(index, Event::GroupGone, now);
                }
            }
        }
    }

    fn fire_deadlines(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            if self.slots[index].service.deadline.is_some_and(|d| d <= now) {
                let service = &self.slots[index].service;
                if let State::Stopping { .. } | State::Draining { .. } = service.state {
                    self.log.warning(format_args!(
                        "{}: process group {} did not stop within {}s; sending KILL",
                        label(service),
                        service.group,
                        msg::seconds(service.policy.stop_timeout)
                    ));
                }
                let before = self.slots[index].service.state;
                self.dispatch(index, Event::Deadline, now);
                let service = &self.slots[index].service;
                if before == State::Backoff && service.state == State::Fatal {
                    self.log.error(format_args!("{}: {}", label(service), gave_up(service)));
                }
            }
        }
    }

    fn drop_retired(&mut self) {
        let before = self.slots.len();
        self.slots.retain(|s| !s.retired || s.service.state.is_up());
        if self.slots.len() != before {
            self.update_outputs();
        }
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

    /// The slot of an instance.
    fn index_of(&self, key: &Key) -> Option<usize> {
        self.slots.iter().position(|s| s.service.name == key.0 && s.service.instance == key.1)
    }

    fn find(&self, key: &Key) -> Option<&Service> {
        self.index_of(key).map(|index| &self.slots[index].service)
    }
}

/// Writes as much of `output` as a non-blocking socket takes, removing it;
/// `Ok(true)` once all is written. Shared by control and web clients.
fn write_some(stream: &mut impl Write, output: &mut Vec<u8>) -> io::Result<bool> {
    while !output.is_empty() {
        match stream.write(output) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Why an instance is `fatal`, for the log.
fn gave_up(service: &Service) -> String {
    format!(
        "started more than {} within {}s; giving up (fatal) until start-process or restart",
        msg::count(service.policy.start_limit_burst as usize, "time", "times"),
        msg::seconds(service.policy.start_limit_interval)
    )
}

/// `web` or `web:1` as used in log lines and replies.
fn label(service: &Service) -> String {
    if service.instance == 0 { service.name.clone() } else { format!("{}:{}", service.name, service.instance) }
}

fn key_label(key: &Key) -> String {
    if key.1 == 0 { key.0.clone() } else { format!("{}:{}", key.0, key.1) }
}
