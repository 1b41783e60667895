//! A oneshot's waiter: how a daemon learns the exit status of a task that
//! was started by a daemon that has since died.
//!
//! Only a process's parent learns how it ended; a new daemon that adopted a
//! running oneshot is not its parent, yet must tell `done` (run it never
//! again) from a failure (retry). So a oneshot runs under a waiter: the
//! daemon spawns its own binary as `mi7soft-daemon oneshot-wait FD --
//! PROGRAM ARGS...` (as the service, in the service's new session, as any
//! service is spawned), and the waiter forks and execs the program in the
//! same session and process group, waits for it, writes how it ended to
//! the descriptor FD, and exits with the same status (128+N for signal N).
//!
//! FD is the status file `STATE_FILE.NAME.INSTANCE.exit`, which the daemon
//! creates empty (as its own user, in the state file's trusted directory)
//! before each run and hands down, so the waiter needs no right to that
//! directory; the program does not inherit it. Whichever daemon sees the
//! waiter end, its parent by `waitpid` or an adopter by pidfd or polling,
//! reads the file: `exit N` or `signal N`. Empty means the waiter itself was
//! killed, which counts as a failure.
//!
//! Signals: the waiter blocks every signal, so what the daemon sends to the
//! group (`stop_signal`, SIGKILL after `stop_timeout`) reaches the program,
//! and the waiter stays to record its end; only SIGKILL ends the waiter, and
//! its death takes the program with it (PR_SET_PDEATHSIG), so no oneshot
//! ever runs without a waiter. The waiter is a few hundred bytes of code
//! and a process of a few hundred KiB of shared pages while the task runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::msg;
use crate::sys::{self, ExitStatus};

/// Where the status of one oneshot instance is recorded.
pub(crate) fn status_path(state_file: &Path, name: &str, instance: u32) -> PathBuf {
    let mut path = state_file.as_os_str().to_owned();
    path.push(format!(".{name}.{instance}.exit"));
    PathBuf::from(path)
}

/// Reads a status file's `exit N` or `signal N`; `None` when it holds
/// neither (empty: the waiter died before the program ended).
pub(crate) fn parse_status(text: &str) -> Option<ExitStatus> {
    let (kind, number) = text.trim_end().split_once(' ')?;
    let number: i32 = number.parse().ok()?;
    match kind {
        "exit" => Some(ExitStatus::Code(number)),
        "signal" => Some(ExitStatus::Signal(number)),
        _ => None,
    }
}

/// `mi7soft-daemon oneshot-wait FD -- PROGRAM ARGS...`.
pub fn main(args: Vec<String>) -> i32 {
    let (fd, program, args) = match args.as_slice() {
        [fd, dashes, program, args @ ..] if dashes == "--" => match fd.parse() {
            Ok(fd) => (fd, program, args),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    sys::block_signals();
    let mut file = match sys::take_inherited(fd) {
        Ok(file) => file,
        Err(e) => {
            msg::error(format_args!("oneshot-wait: status descriptor {fd}: {}", msg::io_error(&e)));
            return 1;
        }
    };
    let env = sys::inherited_environment();
    let stdin = match std::fs::File::open("/dev/null") {
        Ok(stdin) => stdin,
        Err(e) => {
            msg::error(format_args!("oneshot-wait: /dev/null: {}", msg::io_error(&e)));
            return 1;
        }
    };
    let started = sys::Spawn::new(program, args, &env, None)
        .map_err(|e| format!("{program}: {}", msg::io_error(&e)))
        .and_then(|spawn| {
            spawn.under_waiter().run(&stdin).map_err(|e| match e.stage {
                sys::SpawnStage::Exec => format!("exec {program}: {}", msg::io_error(&e.error)),
                _ => format!("spawn {program}: {}", msg::io_error(&e.error)),
            })
        });
    let status =
        match started.and_then(|pid| sys::wait_child(pid).map_err(|e| format!("waitpid: {}", msg::io_error(&e)))) {
            Ok(status) => status,
            Err(reason) => {
                // On the service's output, so in its log: why it never ran.
                msg::error(reason);
                ExitStatus::Code(127)
            }
        };
    let (text, code) = match status {
        ExitStatus::Code(code) => (format!("exit {code}\n"), code),
        ExitStatus::Signal(signal) => (format!("signal {signal}\n"), 128 + signal),
        ExitStatus::Unknown => (String::new(), 1),
    };
    // One small write to a file nobody else writes: read whole or not at all.
    if let Err(e) = file.write_all(text.as_bytes()) {
        msg::error(format_args!("oneshot-wait: status file: {}", msg::io_error(&e)));
    }
    code
}

fn usage() -> i32 {
    msg::error("oneshot-wait: usage: oneshot-wait FD -- PROGRAM [ARGS...] (internal to the daemon)");
    2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_written() {
        assert_eq!(parse_status("exit 0\n"), Some(ExitStatus::Code(0)));
        assert_eq!(parse_status("exit 3\n"), Some(ExitStatus::Code(3)));
        assert_eq!(parse_status("signal 15\n"), Some(ExitStatus::Signal(15)));
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("exit"), None);
        assert_eq!(parse_status("exit x"), None);
        assert_eq!(parse_status("ended 1"), None);
        assert_eq!(status_path(Path::new("/run/d.state"), "prep", 0), Path::new("/run/d.state.prep.0.exit"));
    }
}
