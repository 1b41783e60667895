//! Processes: starting services (fork and execve, with an error pipe that
//! reports a failure before exec as its stage and errno), reaping and
//! decoding their exits, signalling their process groups, watching processes
//! that are not our children (pidfd, subreaper), and the double fork of
//! `--daemonize`.
//!
//! Every `fork` of the daemon is here, because that is where the strictest
//! rule of the sys module applies: between `fork` and `execve` the child only
//! makes async-signal-safe calls on data built before the fork
//! ([`Spawn::new`] builds argv, envp and every PATH candidate), and
//! [`detach`] may run ordinary Rust code after `fork` only because the
//! daemon is single-threaded when it calls it.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::signal::{HANDLED_SIGNALS, signal_name};
use super::{ORIGINAL_NOFILE, Pid, cerr, cerr_retry, pipe};

/// How a child ended, decoded from its wait status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// An adopted process (not our child) ended; the kernel tells only
    /// its parent how.
    Unknown,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(code) => write!(f, "exit {code}"),
            ExitStatus::Signal(signal) => write!(f, "signal {} ({})", signal, signal_name(*signal)),
            ExitStatus::Unknown => write!(f, "adopted: exit status unknown"),
        }
    }
}

/// Reaps one exited child without blocking: `None` when no child has exited
/// (or there are no children at all).
pub fn reap_one() -> Option<(Pid, ExitStatus)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer for waitpid.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            return Some((pid, decode_wait_status(status)));
        }
        if pid < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return None;
    }
}

fn decode_wait_status(status: libc::c_int) -> ExitStatus {
    if libc::WIFSIGNALED(status) {
        ExitStatus::Signal(libc::WTERMSIG(status))
    } else {
        ExitStatus::Code(libc::WEXITSTATUS(status))
    }
}

/// Waits for the child `pid` to end, however long it takes (a oneshot's
/// waiter, which has nothing else to do).
pub fn wait_child(pid: Pid) -> io::Result<ExitStatus> {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer for waitpid.
    cerr_retry(|| unsafe { libc::waitpid(pid, &mut status, 0) })?;
    Ok(decode_wait_status(status))
}

/// Blocks every signal that can be blocked, so that what is sent to the
/// process group (a stop's TERM) ends the oneshot's program and not its
/// waiter, which then still records how the program ended. Children start
/// with an empty mask (see `child_after_fork`).
pub fn block_signals() {
    // SAFETY: `set` is a local sigset_t that sigfillset initialises before
    // sigprocmask reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Takes ownership of the descriptor `fd` that the parent passed on
/// (checked to be open), and marks it close-on-exec so it goes no further.
pub fn take_inherited(fd: RawFd) -> io::Result<File> {
    // SAFETY: fcntl with F_GETFD/F_SETFD takes no pointers.
    let flags = cerr(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cerr(unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) })?;
    // SAFETY: the descriptor is open (F_GETFD succeeded) and was handed to
    // this process for it alone; nothing else here owns or closes it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Sends `signal` to every process in the process group `pgid`.
pub fn kill_group(pgid: Pid, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers; a negative pid names a process group.
    cerr(unsafe { libc::kill(-pgid, signal) }).map(drop)
}

/// Sends `signal` to the one process `pid` (`signal NAME SIGNAL`).
pub fn kill(pid: Pid, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers; the caller passes a positive pid.
    cerr(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// What the child was doing when it failed before exec, sent back to the
/// parent over the close-on-exec error pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnStage {
    Chdir = 1,
    Exec = 2,
    Setup = 3,
    Nice = 4,
    /// The limit at `SpawnError::index` of [`Spawn::limits`].
    Limit = 5,
    Groups = 6,
    Gid = 7,
    Uid = 8,
}

/// A spawn that failed in the child before `execve` succeeded.
#[derive(Debug)]
pub struct SpawnError {
    pub stage: SpawnStage,
    /// Which limit failed, for [`SpawnStage::Limit`].
    pub index: usize,
    pub error: io::Error,
}

/// Who a service runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

/// A resource limit (`RLIMIT_*`), set as both soft and hard limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub resource: i32,
    /// `None`: unlimited.
    pub value: Option<u64>,
}

/// The `RLIMIT_*` number of a resource by its `ulimit`/systemd name.
pub fn limit_resource(name: &str) -> Option<i32> {
    let resource = match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    };
    Some(resource as i32)
}

/// The names [`limit_resource`] knows.
pub const LIMIT_NAMES: [&str; 15] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "sigpending",
    "stack",
];

/// Everything the child needs, built before `fork` so the child allocates
/// nothing.
pub struct Spawn {
    /// Paths to try with execve, in order (PATH search already expanded).
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: Option<CString>,
    umask: Option<libc::mode_t>,
    nice: Option<i32>,
    limits: Vec<Limit>,
    credentials: Option<Credentials>,
    /// Where stdout and stderr go; `None` keeps the daemon's.
    output: Option<RawFd>,
    /// The open-files limit the daemon had before raising its own (see
    /// [`raise_nofile`](super::raise_nofile)): services start with what they would have had.
    nofile: Option<libc::rlimit>,
    /// The name of a variable the child sets to its own pid
    /// (`WATCHDOG_PID`), which only the child knows before exec.
    pid_variable: Option<&'static str>,
    /// Whether the child leads a session of its own (a service), or stays
    /// in the caller's session and process group (a oneshot's program,
    /// under its waiter).
    new_session: bool,
    /// The child is killed when the process that forked it dies
    /// (PR_SET_PDEATHSIG): a oneshot's program never outlives its waiter.
    die_with_parent: bool,
    /// A descriptor the child keeps across exec (a oneshot's status file,
    /// for its waiter).
    inherit: Option<RawFd>,
}

/// The most bytes a `NAME=PID` entry of [`Spawn::pid_variable`] takes.
const PID_ENTRY: usize = 48;

/// A forked child that waits, before exec, for the parent's word
/// ([`Forked::release`]): the parent can record the child's pid first, so
/// no crash of the parent can leave a service running that no record names.
/// Should the parent die first, the child reads end-of-file instead and
/// exits without running anything.
pub struct Forked {
    pub pid: Pid,
    go: OwnedFd,
    err_read: OwnedFd,
}

/// This process's environment as `NAME=value` entries, the form
/// [`Spawn::new`] takes: one copy of the conversion for the daemon and a
/// oneshot's waiter.
pub fn inherited_environment() -> Vec<Vec<u8>> {
    std::env::vars_os().map(|(k, v)| [k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()).collect()
}

impl Spawn {
    /// Prepares a spawn of `program` (a path, or a bare name searched in the
    /// PATH of `env` like execvp does) with `args`, the full environment
    /// `env` (entries `NAME=value`) and an optional working directory.
    /// Fails on an interior NUL byte.
    pub fn new(program: &str, args: &[String], env: &[Vec<u8>], cwd: Option<&Path>) -> io::Result<Spawn> {
        let cstring = |s: Vec<u8>| {
            CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "contains a NUL byte"))
        };
        // Each list is gathered as bytes first: one conversion for all three.
        let cstrings = |list: Vec<Vec<u8>>| list.into_iter().map(cstring).collect::<io::Result<Vec<CString>>>();
        let candidates = if program.contains('/') {
            vec![program.into()]
        } else {
            let path_var = env
                .iter()
                .rev()
                .find_map(|entry| entry.strip_prefix(b"PATH="))
                .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
            path_var
                .split(|&b| b == b':')
                .map(|dir| if dir.is_empty() { &b"."[..] } else { dir })
                .map(|dir| [dir, b"/", program.as_bytes()].concat())
                .collect()
        };
        let candidates = cstrings(candidates)?;
        let argv = cstrings(std::iter::once(program).chain(args.iter().map(String::as_str)).map(Vec::from).collect())?;
        let envp = cstrings(env.to_vec())?;
        let cwd = cwd.map(|dir| cstring(dir.as_os_str().as_bytes().to_vec())).transpose()?;
        Ok(Spawn {
            candidates,
            argv,
            envp,
            cwd,
            umask: None,
            nice: None,
            limits: Vec::new(),
            credentials: None,
            output: None,
            nofile: ORIGINAL_NOFILE.get().copied(),
            pid_variable: None,
            new_session: true,
            die_with_parent: false,
            inherit: None,
        })
    }

    /// Keeps the child in the caller's session and process group, and
    /// kills it should the caller die: a oneshot's program under its waiter.
    pub fn under_waiter(mut self) -> Spawn {
        self.new_session = false;
        self.die_with_parent = true;
        self
    }

    /// Lets the child keep `fd` open across exec.
    pub fn inherit(mut self, fd: Option<RawFd>) -> Spawn {
        self.inherit = fd;
        self
    }

    /// Has the child set `name` to its own pid in its environment.
    pub fn pid_variable(mut self, name: Option<&'static str>) -> Spawn {
        self.pid_variable = name.filter(|n| n.len() + 12 < PID_ENTRY);
        self
    }

    /// The file mode creation mask the service starts with.
    pub fn umask(mut self, umask: Option<u32>) -> Spawn {
        self.umask = umask.map(|m| m as libc::mode_t);
        self
    }

    pub fn nice(mut self, nice: Option<i32>) -> Spawn {
        self.nice = nice;
        self
    }

    pub fn limits(mut self, limits: &[Limit]) -> Spawn {
        self.limits = limits.to_vec();
        self
    }

    /// Sends stdout and stderr to `fd` (the write end of a capture pipe).
    pub fn output(mut self, fd: Option<RawFd>) -> Spawn {
        self.output = fd;
        self
    }

    /// Drop to these credentials (supplementary groups, then gid, then uid).
    pub fn credentials(mut self, credentials: Option<&Credentials>) -> Spawn {
        self.credentials = credentials.cloned();
        self
    }

    /// Forks and execs at once: [`Spawn::fork`], then [`Forked::release`].
    pub fn run(&self, stdin: &File) -> Result<Pid, SpawnError> {
        self.fork(stdin)?.release()
    }

    /// Forks a child that gets its own session and process group (setsid)
    /// and then waits for [`Forked::release`] before it goes on: default
    /// signal handling, stdin from `stdin`, the daemon's stdout and stderr
    /// unless [`Spawn::output`] says otherwise, and exec.
    pub fn fork(&self, stdin: &File) -> Result<Forked, SpawnError> {
        let setup = |error| SpawnError { stage: SpawnStage::Setup, index: 0, error };
        let argv = null_terminated(&self.argv);
        let mut envp = null_terminated(&self.envp);
        if self.pid_variable.is_some() {
            // A slot the child points at its own `NAME=PID` entry.
            envp.insert(envp.len() - 1, std::ptr::null());
        }
        let (err_read, err_write) = pipe(libc::O_CLOEXEC).map_err(setup)?;
        let (gate, go) = pipe(libc::O_CLOEXEC).map_err(setup)?;
        // SAFETY: getpid takes no arguments and cannot fail.
        let parent = unsafe { libc::getpid() };

        // SAFETY: the child branch below only calls async-signal-safe
        // functions (setsid, prctl, getppid, fcntl, close, read, getpid, sigaction, sigprocmask,
        // dup2, umask, setpriority, setrlimit, setgroups, setgid, setuid,
        // chdir, execve, write, _exit) on data prepared before the fork; it
        // never returns into Rust code that could allocate or unwind.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(setup(io::Error::last_os_error()));
        }
        if pid == 0 {
            let fds = ChildFds {
                stdin: stdin.as_raw_fd(),
                err: err_write.as_raw_fd(),
                gate: gate.as_raw_fd(),
                go: go.as_raw_fd(),
                parent,
            };
            // SAFETY: see above; we are the child and end in execve or _exit.
            unsafe { child_after_fork(self, &argv, &mut envp, fds) }
        }
        Ok(Forked { pid, go, err_read })
    }
}

impl Forked {
    /// Lets the child go on to exec. Returns once it has exec'ed, or with
    /// the error it hit before that (the child is then already reaped).
    pub fn release(self) -> Result<Pid, SpawnError> {
        let Forked { pid, go, err_read } = self;
        // One byte says go; closing the pipe without it says exit.
        // SAFETY: writing one byte from a local buffer.
        let _ = cerr_retry(|| unsafe { libc::write(go.as_raw_fd(), b"g".as_ptr().cast(), 1) });
        drop(go);

        // The pipe is close-on-exec: EOF means exec succeeded; 5 bytes mean
        // the child reports the stage and errno it failed with.
        let mut report = [0u8; 6];
        let mut got = 0;
        while got < report.len() {
            // SAFETY: reading into the unfilled tail of `report`.
            let n = unsafe { libc::read(err_read.as_raw_fd(), report[got..].as_mut_ptr().cast(), report.len() - got) };
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        if got < report.len() {
            return Ok(pid);
        }
        // The child has told us why and is about to _exit: reap it here so
        // the event loop never sees an exit for a pid it never ran.
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let _ = cerr_retry(|| unsafe { libc::waitpid(pid, &mut status, 0) });
        let stage = match report[0] {
            1 => SpawnStage::Chdir,
            2 => SpawnStage::Exec,
            4 => SpawnStage::Nice,
            5 => SpawnStage::Limit,
            6 => SpawnStage::Groups,
            7 => SpawnStage::Gid,
            8 => SpawnStage::Uid,
            _ => SpawnStage::Setup,
        };
        let errno = i32::from_ne_bytes([report[2], report[3], report[4], report[5]]);
        Err(SpawnError { stage, index: usize::from(report[1]), error: io::Error::from_raw_os_error(errno) })
    }
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// The descriptors the child works with.
struct ChildFds {
    stdin: RawFd,
    /// Where a failure before exec is reported.
    err: RawFd,
    /// Read end of the gate: one byte means go on, end-of-file means exit.
    gate: RawFd,
    /// The parent's end of the gate, which the child must close to see
    /// end-of-file should the parent die.
    go: RawFd,
    /// The process that forked the child.
    parent: Pid,
}

/// The child's half of [`Spawn::fork`].
///
/// # Safety
/// Must only be called in a freshly forked child; it never returns.
unsafe fn child_after_fork(
    spawn: &Spawn,
    argv: &[*const libc::c_char],
    envp: &mut [*const libc::c_char],
    fds: ChildFds,
) -> ! {
    let ChildFds { stdin, err: err_fd, gate, go, parent } = fds;
    let fail_at = |stage: SpawnStage, index: usize, errno: libc::c_int| -> ! {
        let mut report = [stage as u8, index.min(255) as u8, 0, 0, 0, 0];
        report[2..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: write and _exit are async-signal-safe; `report` is on our stack.
        unsafe {
            libc::write(err_fd, report.as_ptr().cast(), report.len());
            libc::_exit(if errno == libc::ENOENT { 127 } else { 126 });
        }
    };
    let fail = |stage: SpawnStage, errno: libc::c_int| -> ! { fail_at(stage, 0, errno) };
    let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    // SAFETY: all calls below are async-signal-safe and take pointers to data
    // that was fully built before fork and is not modified.
    unsafe {
        if spawn.new_session && libc::setsid() < 0 {
            fail(SpawnStage::Setup, errno());
        }
        if spawn.die_with_parent {
            // Should the parent be gone already, the signal would never come.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) < 0 || libc::getppid() != parent {
                libc::_exit(1);
            }
        }
        if let Some(fd) = spawn.inherit {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                fail(SpawnStage::Setup, errno());
            }
        }
        // Wait for the parent's word; it records our pid meanwhile.
        libc::close(go);
        let mut byte = 0u8;
        loop {
            let n = libc::read(gate, (&raw mut byte).cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            // The parent died before it recorded us: run nothing.
            libc::_exit(0);
        }
        libc::close(gate);
        let mut pid_entry = [0u8; PID_ENTRY];
        if let Some(name) = spawn.pid_variable {
            let mut n = 0;
            for &b in name.as_bytes().iter().chain(b"=") {
                pid_entry[n] = b;
                n += 1;
            }
            let mut digits = [0u8; 10];
            let mut d = 0;
            let mut pid = libc::getpid() as u32;
            loop {
                digits[d] = b'0' + (pid % 10) as u8;
                d += 1;
                pid /= 10;
                if pid == 0 {
                    break;
                }
            }
            while d > 0 {
                d -= 1;
                pid_entry[n] = digits[d];
                n += 1;
            }
            let slot = envp.len() - 2;
            envp[slot] = pid_entry.as_ptr().cast();
        }
        // Handlers are reset by exec, but ignored signals (SIGPIPE) are not,
        // and the mask is inherited: give the service a clean slate.
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        for signal in HANDLED_SIGNALS.iter().chain(&[libc::SIGPIPE]) {
            libc::sigaction(*signal, &action, std::ptr::null_mut());
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if libc::dup2(stdin, 0) < 0 {
            fail(SpawnStage::Setup, errno());
        }
        if let Some(output) = spawn.output {
            if libc::dup2(output, 1) < 0 || libc::dup2(output, 2) < 0 {
                fail(SpawnStage::Setup, errno());
            }
        }
        if let Some(mask) = spawn.umask {
            libc::umask(mask);
        }
        if let Some(nice) = spawn.nice {
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) < 0 {
                fail(SpawnStage::Nice, errno());
            }
        }
        if let Some(original) = &spawn.nofile {
            libc::setrlimit(libc::RLIMIT_NOFILE, original);
        }
        for (index, limit) in spawn.limits.iter().enumerate() {
            let value = limit.value.map_or(libc::RLIM_INFINITY, |v| v as libc::rlim_t);
            let rlimit = libc::rlimit { rlim_cur: value, rlim_max: value };
            if libc::setrlimit(limit.resource as _, &rlimit) < 0 {
                fail_at(SpawnStage::Limit, index, errno());
            }
        }
        // Groups first, then gid, then uid: after setuid we could not.
        if let Some(credentials) = &spawn.credentials {
            if libc::setgroups(credentials.groups.len() as _, credentials.groups.as_ptr()) < 0 {
                fail(SpawnStage::Groups, errno());
            }
            if libc::setgid(credentials.gid) < 0 {
                fail(SpawnStage::Gid, errno());
            }
            if libc::setuid(credentials.uid) < 0 {
                fail(SpawnStage::Uid, errno());
            }
        }
        // After dropping privileges, so the directory is checked as the user.
        if let Some(cwd) = &spawn.cwd {
            if libc::chdir(cwd.as_ptr()) < 0 {
                fail(SpawnStage::Chdir, errno());
            }
        }
        // execvp semantics: ENOENT/ENOTDIR move on to the next PATH entry;
        // EACCES is remembered but the search goes on; anything else stops.
        let mut last = libc::ENOENT;
        let mut saw_eacces = false;
        for candidate in &spawn.candidates {
            libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr());
            last = errno();
            match last {
                libc::ENOENT | libc::ENOTDIR => continue,
                libc::EACCES => saw_eacces = true,
                _ => break,
            }
        }
        if saw_eacces && (last == libc::ENOENT || last == libc::ENOTDIR) {
            last = libc::EACCES;
        }
        fail(SpawnStage::Exec, last);
    }
}

// ---------------------------------------------------------------------------
// Watching processes that are not our children.

/// A pidfd for `pid` (Linux 5.3+): readable once the process has exited.
/// `Err(ENOSYS)` on older kernels, where callers fall back to polling.
pub fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags, no pointers; on success it
    // returns a new descriptor (close-on-exec by definition) that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = cerr(fd)?;
    // SAFETY: the syscall succeeded, so `fd` is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Makes orphaned descendants be reparented to this process, so they are
/// reaped here instead of by init (PR_SET_CHILD_SUBREAPER).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument.
    cerr(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

// ---------------------------------------------------------------------------
// Daemon mode.

/// Which side of [`detach`] we are on.
pub enum Detached {
    /// The process the user started: it reads the daemon's startup report
    /// from this pipe, then exits.
    Launcher(File),
    /// The detached daemon (in a new session, not a session leader): it
    /// writes its startup report to this pipe.
    Daemon(File),
}

/// The classic double fork: the launcher keeps a pipe to a grandchild that
/// has called setsid and whose parent has exited, so it can never regain a
/// controlling terminal.
///
/// Must be called while the process has a single thread (the daemon never
/// starts another), which is what makes running ordinary Rust code after
/// `fork` sound here.
pub fn detach() -> io::Result<Detached> {
    let (read, write) = pipe(libc::O_CLOEXEC)?;
    // SAFETY: the process is single-threaded (see above), so the child is a
    // full copy with no lock held by a vanished thread.
    let pid = cerr(unsafe { libc::fork() })?;
    if pid > 0 {
        drop(write);
        // The middle process exits at once; reap it so it leaves no zombie.
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let _ = cerr_retry(|| unsafe { libc::waitpid(pid, &mut status, 0) });
        return Ok(Detached::Launcher(File::from(read)));
    }
    drop(read);
    // SAFETY: setsid and fork take no pointers; single-threaded as above.
    unsafe {
        if libc::setsid() < 0 {
            libc::_exit(1);
        }
        match libc::fork() {
            -1 => libc::_exit(1),
            0 => {}
            _ => libc::_exit(0),
        }
    }
    Ok(Detached::Daemon(File::from(write)))
}
