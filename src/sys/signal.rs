//! Signals: the handlers that turn a signal into an ordinary event of the
//! poll loop, and signal names.
//!
//! A handler only writes the signal's number, one byte, to a non-blocking
//! pipe (the self-pipe trick); the loop polls the pipe's read end and does
//! the real work. So the handler stays async-signal-safe and the rest of the
//! daemon never runs inside one. The names ("TERM", "SIGTERM", "15") are here
//! so that the config, messages and exit statuses spell a signal one way.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use super::{cerr, pipe};

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
