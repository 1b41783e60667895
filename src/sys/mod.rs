//! The only module that calls libc: every system call the daemon makes that
//! std does not offer, each behind a small safe wrapper that returns
//! `io::Result`.
//!
//! Keeping `unsafe` here lets the rest of the crate deny it (see the crate
//! root), so a reviewer reads one module to audit memory safety. It is split
//! by concern so that each file can be read at one sitting:
//!
//! - `process.rs`: fork and exec, waitpid, signalling process groups,
//!   pidfds, the subreaper flag, and the double fork of `--daemonize`;
//! - `socket.rs`: the non-blocking TCP connect of probes, the credentials of
//!   a socket's peer or a datagram's sender, and descriptors passed over a
//!   Unix socket (SCM_RIGHTS);
//! - `signal.rs`: the self-pipe and signal names;
//! - this file: what they share (`cerr`, `Pid`, pipes and descriptors),
//!   poll, flock, this process's ids, umask and open-files limit,
//!   randomness, and the libunwind stand-ins of the static builds.
//!
//! The submodules are private and what the rest of the crate uses from them
//! is re-exported here, so callers name it `sys::X` wherever it lives. The
//! rules every file here keeps:
//!
//! - Every `unsafe` block says why it is sound in a `// SAFETY:` comment.
//! - Between `fork` and `execve` the child only makes async-signal-safe calls
//!   and allocates nothing: argv, envp and every path are built before the
//!   fork (see [`Spawn`]).
//! - The signal handler only writes one byte to a non-blocking pipe (the
//!   self-pipe trick), so all real work happens in the event loop.

mod process;
mod signal;
mod socket;

pub use process::{
    Credentials, Detached, ExitStatus, LIMIT_NAMES, Limit, Spawn, SpawnError, SpawnStage, become_subreaper,
    block_signals, detach, inherited_environment, kill, kill_group, limit_resource, pidfd_open, reap_one,
    take_inherited, wait_child,
};
pub use signal::{SignalPipe, signal_name, signal_number};
pub use socket::{
    Sender, bound_to, peer_credentials, recv_fds, recv_with_sender, send_fds, set_passcred, socket_error, tcp_connect,
};

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
// This process: its ids, file mode mask, open-files limit and clock.

pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail and takes no arguments.
    unsafe { libc::getpid() }
}

pub fn geteuid() -> libc::uid_t {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

/// Sets the file mode creation mask and returns the previous one.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask cannot fail and takes no pointers.
    unsafe { libc::umask(mask) }
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

/// Clock ticks per second, the unit of /proc/PID/stat start times.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// The size of a memory page, the unit of /proc/PID/stat's resident set.
pub fn page_size() -> u64 {
    // SAFETY: sysconf takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 { size as u64 } else { 4096 }
}

/// CLOCK_MONOTONIC: the clock std's `Instant` reads, as a number every
/// process of this boot shares, so a deadline can outlive the daemon that
/// set it (the state file records deadlines this way).
pub fn monotonic() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
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
// Files, pipes and descriptors.

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

/// Creates a pipe with the given `O_*` flags on both ends.
pub fn pipe(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    cerr(unsafe { libc::pipe2(fds.as_mut_ptr(), flags) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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

/// Whether the filesystem that holds `path` is mounted read-only (for
/// `check`: a file there can never be written).
pub fn read_only(path: &std::path::Path) -> io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and
    // `stat` is writable memory of the type statvfs fills.
    cerr(unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) })?;
    // SAFETY: statvfs succeeded, so it filled `stat` (which was zeroed anyway).
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_flag & libc::ST_RDONLY != 0)
}
