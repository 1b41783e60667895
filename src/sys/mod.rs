//! The only module that calls libc: every system call the daemon makes that
//! std does not offer, each behind a small safe wrapper that returns
//! `io::Result`.
//!
//! Keeping `unsafe` here lets the rest of the crate deny it (see the crate
//! root), so a reviewer reads one file to audit memory safety. The rules this
//! file keeps:
//!
//! - Every `unsafe` block says why it is sound in a `// SAFETY:` comment.
//! - Between `fork` and `execve` the child only makes async-signal-safe calls
//!   and allocates nothing: argv, envp and every path are built before the
//!   fork (see [`Spawn`]).
//! - The signal handler only writes one byte to a non-blocking pipe (the
//!   self-pipe trick), so all real work happens in the event loop.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// A process id.
pub type Pid = libc::pid_t;

/// Turns the `-1` convention of libc into an `io::Error` carrying `errno`.
fn cerr<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Like [`cerr`] but retries while the call is interrupted by a signal.
fn cerr_retry<T: Copy + PartialEq + From<i8>>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        match cerr(call()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------
// Signals through a self-pipe.

/// The write end of the self-pipe, read by the signal handler.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// The signals the event loop wants to hear about.
pub const HANDLED_SIGNALS: [libc::c_int; 4] = [libc::SIGCHLD, libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe calls here: load, write, and errno save/restore.
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: errno is a thread-local int; saving and restoring it keeps
        // the interrupted code's view of errno intact. write(2) on a valid fd
        // with a one-byte buffer on our stack is async-signal-safe; a full
        // pipe (EAGAIN) is fine because one pending byte already wakes the
        // loop.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, (&byte as *const u8).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// The read end of the self-pipe; readable whenever a handled signal arrived.
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Installs the handlers for [`HANDLED_SIGNALS`] and ignores SIGPIPE (a
    /// client that hangs up must not kill the daemon). Call once.
    pub fn install() -> io::Result<SignalPipe> {
        let (read, write) = pipe(libc::O_CLOEXEC | libc::O_NONBLOCK)?;
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        for signal in HANDLED_SIGNALS {
            set_handler(signal, on_signal as *const () as libc::sighandler_t)?;
        }
        set_handler(libc::SIGPIPE, libc::SIG_IGN)?;
        Ok(SignalPipe { read, _write: write })
    }

    pub fn fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Reads every pending signal number, in arrival order.
    pub fn drain(&self) -> Vec<libc::c_int> {
        let mut signals = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: `buf` is a valid writable buffer of the given length.
            let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            signals.extend(buf[..n as usize].iter().map(|&b| libc::c_int::from(b)));
        }
        signals
    }
}

fn set_handler(signal: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; we
    // then fill in the handler. SA_RESTART keeps slow calls from failing with
    // EINTR where std does not retry them.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART | if signal == libc::SIGCHLD { libc::SA_NOCLDSTOP } else { 0 };
        libc::sigemptyset(&mut action.sa_mask);
        cerr(libc::sigaction(signal, &action, std::ptr::null_mut()))?;
    }
    Ok(())
}

/// Creates a pipe with the given `O_*` flags on both ends.
pub fn pipe(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cerr(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A signal's conventional name without the SIG prefix ("TERM"), or its number.
pub fn signal_name(signal: libc::c_int) -> String {
    SIGNAL_NAMES.iter().find(|(n, _)| *n == signal).map_or_else(|| signal.to_string(), |(_, name)| (*name).to_string())
}

/// The number of a signal named "TERM", "SIGTERM" or "15" (1 to 64).
pub fn signal_number(name: &str) -> Option<libc::c_int> {
    if let Ok(n) = name.parse::<libc::c_int>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let bare = name.strip_prefix("SIG").unwrap_or(name);
    SIGNAL_NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(bare)).map(|(number, _)| *number)
}

const SIGNAL_NAMES: [(libc::c_int, &str); 16] = [
    (libc::SIGHUP, "HUP"),
    (libc::SIGINT, "INT"),
    (libc::SIGQUIT, "QUIT"),
    (libc::SIGILL, "ILL"),
    (libc::SIGABRT, "ABRT"),
    (libc::SIGBUS, "BUS"),
    (libc::SIGFPE, "FPE"),
    (libc::SIGKILL, "KILL"),
    (libc::SIGUSR1, "USR1"),
    (libc::SIGSEGV, "SEGV"),
    (libc::SIGUSR2, "USR2"),
    (libc::SIGPIPE, "PIPE"),
    (libc::SIGALRM, "ALRM"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGCONT, "CONT"),
    (libc::SIGSTOP, "STOP"),
];

// ---------------------------------------------------------------------------
// Processes.

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
            ExitStatus::Unknown => write!(f, "ended (adopted: status unknown)"),
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

/// Sends `signal` to every process in the process group `pgid`.
pub fn kill_group(pgid: Pid, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers; a negative pid names a process group.
    cerr(unsafe { libc::kill(-pgid, signal) }).map(drop)
}

pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail and takes no arguments.
    unsafe { libc::getpid() }
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

pub fn geteuid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

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
    /// [`raise_nofile`]): services start with what they would have had.
    nofile: Option<libc::rlimit>,
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
        })
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

    /// Forks and execs. The child gets its own session and process group
    /// (setsid), default signal handling, stdin from `stdin`, and the daemon's
    /// stdout and stderr. Returns once the child has exec'ed, or with the
    /// error it hit before that (the child is then already reaped).
    pub fn run(&self, stdin: &File) -> Result<Pid, SpawnError> {
        let setup = |error| SpawnError { stage: SpawnStage::Setup, index: 0, error };
        let argv = null_terminated(&self.argv);
        let envp = null_terminated(&self.envp);
        let (err_read, err_write) = pipe(libc::O_CLOEXEC).map_err(setup)?;

        // SAFETY: the child branch below only calls async-signal-safe
        // functions (setsid, sigaction, sigprocmask, dup2, umask,
        // setpriority, setrlimit, setgroups, setgid, setuid, chdir, execve,
        // write, _exit) on data prepared before the fork; it never returns
        // into Rust code that could allocate or unwind.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(setup(io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: see above; we are the child and end in execve or _exit.
            unsafe { child_after_fork(self, &argv, &envp, stdin.as_raw_fd(), err_write.as_raw_fd()) }
        }
        drop(err_write);

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

/// The child's half of [`Spawn::run`].
///
/// # Safety
/// Must only be called in a freshly forked child; it never returns.
unsafe fn child_after_fork(
    spawn: &Spawn,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdin: RawFd,
    err_fd: RawFd,
) -> ! {
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
        if libc::setsid() < 0 {
            fail(SpawnStage::Setup, errno());
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
// Poll.

pub const POLLIN: i16 = libc::POLLIN;
pub const POLLOUT: i16 = libc::POLLOUT;

/// One entry of a poll set.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct PollFd(libc::pollfd);

impl PollFd {
    pub fn new(fd: RawFd, events: i16) -> PollFd {
        PollFd(libc::pollfd { fd, events, revents: 0 })
    }

    /// The requested events happened, or the descriptor hung up or failed
    /// (which a read or write then reports).
    pub fn ready(&self) -> bool {
        self.0.revents != 0
    }
}

/// Waits until a descriptor is ready or `timeout` passes (`None`: forever).
/// An interrupting signal counts as a wake-up with nothing ready.
pub fn poll(fds: &mut [PollFd], timeout: Option<Duration>) -> io::Result<usize> {
    let ms = match timeout {
        None => -1,
        // Round up so we never wake just before a deadline and spin.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: PollFd is repr-identical to libc::pollfd (a newtype), and the
    // slice is valid for its length.
    let n = unsafe { libc::poll(fds.as_mut_ptr().cast(), fds.len() as libc::nfds_t, ms) };
    match cerr(n) {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        other => other.map(|n| n as usize),
    }
}

// ---------------------------------------------------------------------------
// Files.

/// Takes an exclusive flock on `file` without waiting: `Ok(false)` when
/// another process holds it.
pub fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: flock takes no pointers.
    match cerr(unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sets the file mode creation mask and returns the previous one.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask cannot fail and takes no pointers.
    unsafe { libc::umask(mask) }
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

/// Clock ticks per second, the unit of /proc/PID/stat start times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
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

/// Points `fd` (0, 1 or 2) at `file`.
pub fn redirect(file: &File, fd: RawFd) -> io::Result<()> {
    // SAFETY: dup2 takes no pointers; both descriptors are valid.
    cerr(unsafe { libc::dup2(file.as_raw_fd(), fd) }).map(drop)
}

/// Marks every open descriptor above 2 close-on-exec, so that what the
/// daemon inherited from whoever started it never reaches a service. The
/// daemon's own descriptors are all opened close-on-exec already.
pub fn cloexec_inherited() -> io::Result<()> {
    let fds: Vec<RawFd> =
        std::fs::read_dir("/proc/self/fd")?.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|&fd| fd > 2) {
        // SAFETY: fcntl with F_GETFD/F_SETFD takes no pointers; a descriptor
        // that was the directory listing's own and is closed by now just
        // fails with EBADF, which is ignored.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Passing descriptors between processes (the fd holder).

/// Sends `data` and `fds` (SCM_RIGHTS) in one message on a Unix socket.
pub fn send_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let space = cmsg_space(fds.len());
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: a zeroed msghdr is valid; we point it at `iov` and `control`,
    // which outlive the sendmsg call, and fill the one cmsg header through
    // the CMSG_* accessors within the buffer CMSG_SPACE sized for it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        }
        let mut sent = 0;
        while sent == 0 {
            let n = libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL);
            match cerr(n) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(n) => sent = n as usize,
            }
        }
        if sent < data.len() {
            // Only the first piece carries the descriptors; send the rest.
            let mut rest = &data[sent..];
            while !rest.is_empty() {
                let n = cerr(libc::send(socket, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL))?;
                rest = &rest[n as usize..];
            }
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes and any descriptors sent with them
/// (close-on-exec). `Ok(None)` at end of stream.
pub fn recv_fds(socket: RawFd, buf: &mut [u8], max_fds: usize) -> io::Result<Option<Vec<OwnedFd>>> {
    let space = cmsg_space(max_fds);
    let mut control = vec![0u8; space];
    let mut fds = Vec::new();
    let mut got = 0;
    while got < buf.len() {
        let mut iov = libc::iovec { iov_base: buf[got..].as_mut_ptr().cast(), iov_len: buf.len() - got };
        // SAFETY: as in send_fds; the kernel writes at most msg_controllen
        // bytes of control data, and every SCM_RIGHTS descriptor it hands us
        // is new and ours to own.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let n = libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n > 0 {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                        let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                        for i in 0..bytes / std::mem::size_of::<RawFd>() {
                            fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
            n
        };
        match cerr(n) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n as usize,
        }
    }
    Ok(Some(fds))
}

fn cmsg_space(n_fds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((n_fds.max(1) * std::mem::size_of::<RawFd>()) as u32) as usize }
}

/// Grows a pipe's buffer (F_SETPIPE_SZ) toward `size`, so a service can
/// keep writing while the daemon is away; returns the size it got.
pub fn grow_pipe(fd: RawFd, size: usize) -> io::Result<usize> {
    // SAFETY: fcntl with F_SETPIPE_SZ/F_GETPIPE_SZ takes an integer.
    unsafe {
        if libc::fcntl(fd, libc::F_SETPIPE_SZ, size as libc::c_int) < 0 {
            // Unprivileged processes are capped by /proc/sys/fs/pipe-max-size.
            let _ = libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20);
        }
        cerr(libc::fcntl(fd, libc::F_GETPIPE_SZ)).map(|n| n as usize)
    }
}

/// Puts a descriptor into non-blocking mode.
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with F_GETFL/F_SETFL takes no pointers.
    unsafe {
        let flags = cerr(libc::fcntl(fd, libc::F_GETFL))?;
        cerr(libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Probes and the notify socket.

/// Starts a non-blocking TCP connect; the socket turns writable when it
/// finished, and [`socket_error`] then says how.
pub fn tcp_connect(addr: &std::net::SocketAddr) -> io::Result<OwnedFd> {
    let (family, storage, len) = socket_addr(addr);
    // SAFETY: socket takes no pointers; connect reads `len` bytes of
    // `storage`, a sockaddr_storage that socket_addr filled in for `family`.
    unsafe {
        let fd = cerr(libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0))?;
        let fd = OwnedFd::from_raw_fd(fd);
        let ret = libc::connect(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len);
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(fd)
    }
}

fn socket_addr(addr: &std::net::SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we write the variant
    // for the address family into it through a properly aligned cast.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        match addr {
            std::net::SocketAddr::V4(v4) => {
                let sin = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = v4.port().to_be();
                (*sin).sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) };
                (libc::AF_INET, storage, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            std::net::SocketAddr::V6(v6) => {
                let sin6 = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = v6.port().to_be();
                (*sin6).sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
                (*sin6).sin6_scope_id = v6.scope_id();
                (libc::AF_INET6, storage, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }
}

/// The result of a finished non-blocking connect (SO_ERROR).
pub fn socket_error(fd: RawFd) -> io::Result<()> {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `error`.
    cerr(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut error as *mut libc::c_int).cast(), &mut len)
    })?;
    if error == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(error)) }
}

/// Asks the kernel to attach the sender's credentials to every datagram.
pub fn set_passcred(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `on`.
    cerr(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Who sent a datagram, as the kernel says (SCM_CREDENTIALS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    pub pid: Pid,
    pub uid: u32,
}

/// Receives one datagram and its sender (SCM_CREDENTIALS, with SO_PASSCRED
/// set); `Ok(None)` when nothing is waiting.
pub fn recv_with_sender(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Option<Sender>)>> {
    let space = creds_cmsg_space();
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: as in recv_fds: the kernel fills at most msg_controllen bytes;
    // an SCM_CREDENTIALS payload is a ucred, read unaligned.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
        }
        let mut sender = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                sender = Some(Sender { pid: cred.pid, uid: cred.uid });
            } else if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                // Descriptors nobody asked for: close them.
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    drop(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(Some((n as usize, sender)))
    }
}

fn creds_cmsg_space() -> usize {
    // Room for credentials plus a few stray descriptors.
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe {
        libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) as usize
            + libc::CMSG_SPACE((8 * std::mem::size_of::<RawFd>()) as u32) as usize
    }
}

#[cfg_attr(not(feature = "web"), allow(dead_code))]
/// Fills `buf` from the kernel's random source (getrandom, falling back to
/// /dev/urandom on kernels before 3.17): for session ids, never fastrand.
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most `len` bytes into the unfilled tail.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSYS) => {
                    return io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut buf[filled..]);
                }
                _ => return Err(e),
            }
        }
        filled += n as usize;
    }
    Ok(())
}

/// The credentials (pid, uid, gid) of the process at the other end of a
/// Unix stream socket (SO_PEERCRED).
pub fn peer_credentials(fd: RawFd) -> io::Result<(Pid, libc::uid_t, libc::gid_t)> {
    // SAFETY: an all-zero ucred is valid; getsockopt writes at most `len`
    // bytes into it.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        cerr(libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        ))?;
        Ok((cred.pid, cred.uid, cred.gid))
    }
}

/// The open-files limit before [`raise_nofile`].
static ORIGINAL_NOFILE: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Raises the daemon's soft open-files limit to its hard limit: each
/// service may cost a pidfd, a capture pipe and probe sockets, and 1,000
/// services need more than the usual 1,024. Services get the old limit
/// back. Returns the new limit.
pub fn raise_nofile() -> io::Result<u64> {
    // SAFETY: getrlimit and setrlimit read or write one rlimit we own.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        cerr(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit))?;
        let _ = ORIGINAL_NOFILE.set(limit);
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        cerr(libc::setrlimit(libc::RLIMIT_NOFILE, &raised))?;
        Ok(raised.rlim_cur as u64)
    }
}

/// Stand-ins for libunwind in the static builds of `cargo xtask dist`
/// (which set `--cfg no_unwind_tables`). Those builds have no unwind tables
/// (`-Cforce-unwind-tables=no`, and dist's linker script discards the C
/// code's `.eh_frame`) and abort on panic, so nothing ever unwinds and a
/// backtrace could never find a frame: libunwind is dead weight there.
/// Defining every symbol std refers to leaves it out of the link, with the
/// printf it logs with. A panic prints its message and location as before.
#[cfg(no_unwind_tables)]
mod no_unwinder {
    use std::ffi::{c_int, c_void};

    /// `_URC_END_OF_STACK`: the walk ends before the first frame.
    const END_OF_STACK: c_int = 5;

    // SAFETY: the names belong to libunwind, which this build leaves out, so
    // nothing else defines them. This one has libunwind's signature and
    // does not touch its arguments.
    #[unsafe(no_mangle)]
    extern "C" fn _Unwind_Backtrace(_trace: *const c_void, _argument: *mut c_void) -> c_int {
        END_OF_STACK
    }

    /// The rest is only called with a frame in hand (from a backtrace's
    /// callback, or by the personality routine while unwinding), which
    /// never happens here; each aborts, and reads no argument, so the
    /// signature does not matter.
    macro_rules! never_called {
        ($($name:ident),*) => {$(
            // SAFETY: as above; the function takes nothing and never returns.
            #[unsafe(no_mangle)]
            extern "C" fn $name() -> ! {
                std::process::abort()
            }
        )*};
    }

    never_called!(
        _Unwind_GetIP,
        _Unwind_GetIPInfo,
        _Unwind_GetCFA,
        _Unwind_FindEnclosingFunction,
        _Unwind_GetLanguageSpecificData,
        _Unwind_GetRegionStart,
        _Unwind_GetDataRelBase,
        _Unwind_GetTextRelBase,
        _Unwind_SetGR,
        _Unwind_SetIP,
        _Unwind_Resume,
        _Unwind_RaiseException,
        _Unwind_DeleteException
    );

    // ARM's own unwinding ABI (EHABI): what std and the exception index
    // tables of the C library refer to there.
    #[cfg(target_arch = "arm")]
    never_called!(
        _Unwind_VRS_Get,
        _Unwind_VRS_Set,
        _Unwind_VRS_Pop,
        _Unwind_Complete,
        __gnu_unwind_frame,
        __aeabi_unwind_cpp_pr0,
        __aeabi_unwind_cpp_pr1,
        __aeabi_unwind_cpp_pr2
    );
}
