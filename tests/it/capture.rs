//! Output capture with real processes: lines and timestamps in log_file,
//! size-bounded rotation, output that survives a SIGKILLed daemon through
//! the fd holder, the `logs` command (tail and follow), and syslog.

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use crate::support::*;

/// SIGKILLs, on drop, the fd holder of a test directory. The holder runs in
/// "/", so TestDir's cleanup (by cwd) does not find it; its argument, the
/// socket path inside the directory, does.
struct Holders {
    socket: String,
}

impl Holders {
    fn new(dir: &TestDir) -> Holders {
        Holders { socket: dir.join("d.fds").display().to_string() }
    }

    /// Live fd holders serving this directory's socket.
    fn pids(&self) -> Vec<i32> {
        let needle = format!("fd-holder {}", self.socket);
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            if cmdline(pid).trim_end().ends_with(&needle) && !is_zombie(pid) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// A UTC time stamp like `2026-11-29T14:05:01Z`.
fn is_timestamp(s: &str) -> bool {
    s.len() == 20
        && s.bytes()
            .zip("0000-00-00T00:00:00Z".bytes())
            .all(|(c, p)| if p == b'0' { c.is_ascii_digit() } else { c == p })
}

/// Now, as the log stamps it (from `date`, not from the code under test).
fn utc_now() -> String {
    let out = Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs `logs` with `args` against the test's config.
fn logs(dir: &TestDir, args: &[&str]) -> Output {
    let mut all = vec!["-c", "daemon.toml", "logs"];
    all.extend_from_slice(args);
    run_bounded(&dir.path, &all, secs(10))
}

#[test]
fn stdout_and_stderr_lines_reach_the_log_file_with_or_without_timestamps() {
    let dir = TestDir::new("cap-lines");
    let _holders = Holders::new(&dir);
    let script =
        "echo out one; echo err one >&2; printf 'out '; sleep 0.2; echo two; printf 'no newline'; exec sleep 1000";
    dir.config(
        &(sh_service("stamped", script, "log_file = \"stamped.log\"")
            + &sh_service("plain", script, "log_file = \"plain.log\"\nlog_timestamps = false")),
    );
    let before = utc_now();
    let _daemon = Daemon::start(&dir);
    let expected = ["out one", "err one", "out two"];
    wait_until(secs(10), "both logs have 3 lines", || {
        dir.read("stamped.log").lines().count() >= 3 && dir.read("plain.log").lines().count() >= 3
    });
    let after = utc_now();
    // A partial line waits for its end (the service is still running).
    assert_eq!(dir.read("plain.log"), "out one\nerr one\nout two\n");
    let stamped = dir.read("stamped.log");
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 3, "{stamped:?}");
    for (line, text) in lines.iter().zip(expected) {
        let (stamp, rest) = line.split_once(' ').unwrap_or_default();
        assert!(is_timestamp(stamp) && rest == text, "{line:?} is not `TIMESTAMP {text}`");
        assert!(before.as_str() <= stamp && stamp <= after.as_str(), "{stamp} not within {before}..{after}");
    }
}

#[test]
fn rotation_keeps_a_bounded_contiguous_tail_of_whole_lines() {
    let dir = TestDir::new("cap-rotate");
    let _holders = Holders::new(&dir);
    let script = "i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done; exec sleep 1000";
    dir.config(&sh_service("svc", script, "log_file = \"svc.log\"\nlog_max_size = 10000\nlog_keep = 3"));
    let _daemon = Daemon::start(&dir);
    wait_until(secs(15), "line 19999 is in svc.log", || dir.read("svc.log").contains(" line 19999\n"));
    let files = ["svc.log.3", "svc.log.2", "svc.log.1", "svc.log"];
    for file in files {
        let size = fs::metadata(dir.join(file)).map(|m| m.len()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(size <= 10000, "{file} is {size} bytes, more than log_max_size");
    }
    assert!(!dir.join("svc.log.4").exists(), "log_keep = 3 kept a fourth file");
    let mut numbers = Vec::new();
    for file in files {
        for line in dir.read(file).lines() {
            let (stamp, rest) = line.split_once(' ').unwrap_or_default();
            let n = rest.strip_prefix("line ").and_then(|n| n.parse::<u32>().ok());
            assert!(is_timestamp(stamp) && n.is_some(), "{file}: {line:?} is not `TIMESTAMP line N`");
            numbers.push(n.unwrap());
        }
    }
    let first = 20000 - numbers.len() as u32;
    assert!(numbers.iter().copied().eq(first..20000), "kept lines are not {first}..=19999 in order: {numbers:?}");
    // Four files of at most 10000 bytes with 27 to 31 bytes a line.
    assert!(numbers.len() > 1200, "only {} lines kept", numbers.len());
}

#[test]
fn capture_survives_a_sigkilled_daemon_without_losing_a_line() {
    let dir = TestDir::new("cap-survive");
    let holders = Holders::new(&dir);
    let script = "i=0; while :; do echo \"n $i $$\"; i=$((i+1)); sleep 0.01; done";
    dir.config(&sh_service("svc", script, "log_file = \"svc.log\"\nlog_timestamps = false"));
    let mut first = Daemon::start(&dir);
    let pid = first.wait_running("svc", None);
    let n_lines = || dir.read("svc.log").lines().count();
    wait_until(secs(10), "svc has logged 20 lines", || n_lines() >= 20);
    let holder = holders.pids();
    assert_eq!(holder.len(), 1, "one fd holder while a service captures");

    first.child.kill().unwrap();
    first.child.wait().unwrap();
    // The service goes on writing into the pipe the holder keeps open.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let at_restart = n_lines();
    let second = Daemon::start(&dir);
    wait_until(secs(15), "svc has logged 200 more lines", || n_lines() >= at_restart + 200);

    let text = dir.read("svc.log");
    for (i, line) in text.lines().enumerate() {
        assert_eq!(line, format!("n {i} {pid}"), "line {i} of svc.log (restart at line {at_restart})");
    }
    let svc = second.process("svc");
    assert_eq!((svc.pid, svc.state.as_str(), svc.restarts), (Some(pid), "running", 0), "{svc:?}");
    assert!(alive(pid), "svc died");
    assert_eq!(holders.pids(), holder, "the new daemon uses the same fd holder");

    let out = second.cli(&["shutdown", "--stop-all"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "the fd holder exits after shutdown --stop-all", || holders.pids().is_empty());
    assert!(!dir.join("d.fds").exists(), "the holder's socket is left behind");
}

/// A line of exactly 100 bytes with its newline, numbered `%03d`.
const PAD: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn padded(i: u32) -> String {
    format!("line {i:03} {PAD}")
}

#[test]
fn logs_n_reads_back_across_a_rotation_boundary() {
    let dir = TestDir::new("cap-tail");
    let _holders = Holders::new(&dir);
    assert_eq!(padded(0).len() + 1, 100);
    // Ten 100-byte lines fill a file of 1024 bytes; 22 lines leave 10-19 in
    // svc.log.1 and 20-21 in svc.log.
    let script =
        format!("i=0; while [ $i -lt 22 ]; do printf 'line %03d {PAD}\\n' $i; i=$((i+1)); done; exec sleep 1000");
    let keys = "log_file = \"svc.log\"\nlog_max_size = 1024\nlog_keep = 2\nlog_timestamps = false";
    dir.config(&sh_service("svc", &script, keys));
    let _daemon = Daemon::start(&dir);
    wait_until(secs(10), "line 021 is in svc.log", || dir.read("svc.log").contains("line 021 "));
    let lines = |range: std::ops::Range<u32>| range.map(|i| padded(i) + "\n").collect::<String>();
    assert_eq!(dir.read("svc.log"), lines(20..22), "svc.log");
    assert_eq!(dir.read("svc.log.1"), lines(10..20), "svc.log.1");

    let out = logs(&dir, &["svc", "-n", "5"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, lines(17..22).as_str()), "{out:?}");
    // The default is 20 lines, here from all three files.
    let out = logs(&dir, &["svc"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, lines(2..22).as_str()), "{out:?}");
}

#[test]
fn logs_f_follows_the_output_across_rotations() {
    let dir = TestDir::new("cap-follow");
    let _holders = Holders::new(&dir);
    let script = format!(
        "echo ready; while [ ! -e go ]; do sleep 0.01; done; i=0; while [ $i -lt 60 ]; do \
         printf 'line %03d {PAD}\\n' $i; i=$((i+1)); sleep 0.02; done; echo END; exec sleep 1000"
    );
    let keys = "log_file = \"svc.log\"\nlog_max_size = 1024\nlog_keep = 1\nlog_timestamps = false";
    dir.config(&sh_service("svc", &script, keys));
    let _daemon = Daemon::start(&dir);
    wait_until(secs(10), "svc.log has the ready line", || dir.read("svc.log") == "ready\n");

    let mut follower = Command::new(bin())
        .args(["-c", "daemon.toml", "logs", "svc", "-f"])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(dir.join("follower.err")).unwrap())
        .spawn()
        .unwrap();
    let (sender, receiver) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let mut got: Vec<String> = Vec::new();
    let receive = |got: &mut Vec<String>| got.extend(receiver.try_iter());
    wait_until(secs(10), "logs -f prints the last lines", || {
        receive(&mut got);
        !got.is_empty()
    });
    assert_eq!(got, ["ready"], "the tail before following");
    fs::write(dir.join("go"), "").unwrap();
    wait_until(secs(15), "logs -f prints END", || {
        receive(&mut got);
        got.iter().any(|l| l == "END")
    });
    follower.kill().unwrap();
    follower.wait().unwrap();
    reader.join().unwrap();
    assert!(dir.join("svc.log.1").exists(), "the log never rotated");

    // Following starts a moment after `ready` was printed, so the very first
    // lines may be missed; from the first one seen, nothing may be.
    let followed = &got[1..];
    let first = followed.first().and_then(|l| l.get(5..8)).and_then(|n| n.parse::<u32>().ok());
    let first = first.unwrap_or_else(|| panic!("not a numbered line first: {got:?}"));
    let expected: Vec<String> = (first..60).map(padded).chain(["END".to_string()]).collect();
    assert_eq!(followed, expected, "logs -f output after the tail");
    assert!(first < 10, "logs -f missed the first {first} lines");
    assert_eq!(fs::read_to_string(dir.join("follower.err")).unwrap(), "", "logs -f complained");
}

#[test]
fn logs_of_a_service_without_a_log_file_says_where_its_output_goes() {
    let dir = TestDir::new("cap-nologs");
    dir.config(&(sh_service("plain", "exec sleep 1000", "") + &sh_service("sys", "exec sleep 1000", "syslog = true")));
    let out = logs(&dir, &["plain"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert!(out.stderr.contains("plain") && out.stderr.contains("goes to the daemon's log"), "{out:?}");
    let out = logs(&dir, &["sys", "-n", "3"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert!(out.stderr.contains("sys") && out.stderr.contains("system log"), "{out:?}");
    let out = logs(&dir, &["nosuch"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("unknown process \"nosuch\""), "{out:?}");
}

#[test]
fn log_file_and_syslog_together_are_a_config_error() {
    let dir = TestDir::new("cap-both");
    dir.config(&sh_service("svc", "echo ran >> ran.txt; exec sleep 1000", "log_file = \"svc.log\"\nsyslog = true"));
    for command in ["check", "start"] {
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        let prefix = "mi7soft-daemon: error: daemon.toml:10:10: [[processes]] \"svc\": syslog: ";
        assert!(out.stderr.starts_with(prefix), "{command}: stderr should start with {prefix:?}: {out:?}");
        assert!(out.stderr.lines().next().unwrap().contains("log_file"), "{command}: {out:?}");
    }
    assert!(!dir.join("ran.txt").exists(), "an invalid config ran the service");
}

#[test]
fn a_syslog_service_keeps_running_when_dev_log_is_missing() {
    let dir = TestDir::new("cap-syslog");
    let _holders = Holders::new(&dir);
    let script =
        "i=0; while :; do echo \"n $i\" && echo $i > count.tmp && mv count.tmp count.txt; i=$((i+1)); sleep 0.01; done";
    dir.config(&sh_service("svc", script, "syslog = true"));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    let count = || dir.read("count.txt").trim().parse::<u32>().unwrap_or(0);
    wait_until(secs(10), "svc has written 50 lines", || count() >= 50);
    holds_for(secs(1), "svc keeps running as the same process", || {
        let svc = daemon.process("svc");
        svc.pid == Some(pid) && svc.restarts == 0 && alive(pid)
    });
    let log = daemon.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("/dev/log")).collect();
    if std::path::Path::new("/dev/log").exists() {
        assert_eq!(errors, Vec::<&str>::new(), "/dev/log exists, yet: {log}");
    } else {
        assert_eq!(errors.len(), 1, "one error about /dev/log, not one per line: {log}");
        assert!(errors[0].contains("error: svc: output capture: /dev/log: "), "{log}");
    }
}

/// A root-owned file the attacks below aim at, and what it holds.
fn secret(dir: &TestDir) -> (std::path::PathBuf, &'static str) {
    const TEXT: &str = "root's secret\n";
    (dir.write("secret", TEXT), TEXT)
}

#[test]
fn a_log_directory_the_services_user_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("cap-unsafe-dir");
    for (name, mode) in [("open", 0o777), ("sticky", 0o1777), ("safe", 0o755)] {
        fs::create_dir(dir.join(name)).unwrap();
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::create_dir(dir.join("owned")).unwrap();
    std::os::unix::fs::chown(dir.join("owned"), Some(65534), None).unwrap();
    for name in ["open", "sticky", "owned"] {
        dir.config(&sh_service("svc", "exec sleep 1000", &format!("user = \"nobody\"\nlog_file = \"{name}/svc.log\"")));
        for command in ["check", "start"] {
            let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
            assert_eq!(out.code, 1, "{name}: {command}: {out:?}");
            assert!(
                out.stderr.contains("daemon.toml:10:")
                    && out.stderr.contains("log_file: ")
                    && out.stderr.contains(name),
                "{name}: {command}: {out:?}"
            );
        }
    }
    // Where only the daemon can write, the same service is fine; and a
    // service of the daemon's own user may log anywhere the daemon can.
    dir.config(
        &(sh_service("svc", "exec sleep 1000", "user = \"nobody\"\nlog_file = \"safe/svc.log\"")
            + &sh_service("mine", "exec sleep 1000", "log_file = \"open/mine.log\"")),
    );
    let out = run(&dir.path, &["-c", "daemon.toml", "check"]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn a_link_planted_as_the_log_is_neither_written_nor_read_through() {
    let dir = TestDir::new("cap-link");
    let _holders = Holders::new(&dir);
    let (secret, text) = secret(&dir);
    fs::create_dir(dir.join("logs")).unwrap();
    let log = dir.join("logs/svc.log");
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    dir.config(&sh_service(
        "svc",
        "while :; do echo tick; sleep 0.1; done",
        "user = \"nobody\"\nlog_file = \"logs/svc.log\"",
    ));
    let daemon = Daemon::start(&dir);
    let refusal = format!("svc: output capture: {}: is a symbolic link; refusing to follow it", log.display());
    wait_until(secs(10), "the daemon logs that it refused the link", || daemon.log().contains(&refusal));
    assert_eq!(fs::read_to_string(&secret).unwrap(), text, "written through the link");
    let pid = daemon.wait_running("svc", None);
    // Neither is it read back through: not by `logs` either.
    let out = logs(&dir, &["svc"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is a symbolic link") && !out.stdout.contains("secret"), "{out:?}");
    // The service never noticed; once the link is gone, its lines come back.
    fs::remove_file(&log).unwrap();
    wait_until(secs(10), "the log has ticks again", || fs::read_to_string(&log).unwrap_or_default().contains("tick"));
    assert!(daemon.log().contains("svc: output capture works again"), "{}", daemon.log());
    assert_eq!(daemon.process("svc").pid, Some(pid));
    assert_eq!(fs::read_to_string(&secret).unwrap(), text);
}

#[test]
fn rotation_onto_a_directory_is_refused_and_logged() {
    let dir = TestDir::new("cap-rotate-dir");
    let _holders = Holders::new(&dir);
    fs::create_dir(dir.join("svc.log.1")).unwrap();
    dir.config(&sh_service(
        "svc",
        "while :; do echo 0123456789012345678901234567890123456789; sleep 0.02; done",
        "log_file = \"svc.log\"\nlog_max_size = 1024\nlog_keep = 1",
    ));
    let daemon = Daemon::start(&dir);
    let refusal =
        format!("{}: is a directory, not a regular file; refusing to rotate it", dir.join("svc.log.1").display());
    wait_until(secs(10), "the daemon logs the failed rotation", || daemon.log().contains(&refusal));
    assert!(dir.join("svc.log.1").is_dir());
    assert!(fs::metadata(dir.join("svc.log")).unwrap().len() <= 1024);
}

#[test]
fn no_log_file_grows_past_log_max_size_even_with_long_lines() {
    let dir = TestDir::new("cap-bound");
    let _holders = Holders::new(&dir);
    dir.config(&sh_service(
        "svc",
        "s=$(head -c 3000 /dev/zero | tr '\\0' a); while :; do echo $s; echo short; sleep 0.02; done",
        "log_file = \"svc.log\"\nlog_max_size = 1024\nlog_keep = 2",
    ));
    let _daemon = Daemon::start(&dir);
    let files = [dir.join("svc.log"), dir.join("svc.log.1"), dir.join("svc.log.2")];
    let sizes = || files.iter().map(|f| fs::metadata(f).map_or(0, |m| m.len())).collect::<Vec<_>>();
    wait_until(secs(10), "svc.log.2 exists", || files[2].exists());
    holds_for(secs(1), "every file holds at most log_max_size bytes", || sizes().iter().all(|&n| n <= 1024));
}
