//! `-d start`: the launcher exits 0 only once the detached daemon holds the
//! pid file and answers on its socket, or exits 1 with the daemon's error.

use std::fs;
use std::path::Path;

use crate::support::*;

/// Kills, when the test ends (passed or failed), every daemon started with
/// `-c DIR/daemon.toml`: a detached daemon runs in /, so TestDir's cleanup,
/// which finds processes by working directory, misses it. Declare it after
/// the TestDir so it runs first.
struct Detached {
    config: String,
}

impl Detached {
    fn new(dir: &TestDir) -> Detached {
        Detached { config: dir.join("daemon.toml").display().to_string() }
    }

    /// Live daemons started with this config.
    fn pids(&self) -> Vec<i32> {
        let bin = bin().display().to_string();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let line = cmdline(pid);
            // `contains`: under qemu (binfmt_misc) the interpreter comes first.
            if line.contains(&bin) && line.contains(&self.config) && alive(pid) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Runs `-c DIR/daemon.toml -d start`, failing the test if it hangs.
    fn start(&self, dir: &TestDir) -> Output {
        run_bounded(&dir.path, &["-c", &self.config, "-d", "start"], secs(10))
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

/// Field `n` of /proc/PID/stat (3 is the state, 4 the parent).
fn stat_field(pid: i32, n: usize) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(n - 3)).unwrap_or_default().to_string()
}

#[test]
fn daemonize_returns_once_the_daemon_answers() {
    let dir = TestDir::new("dz-ok");
    let detached = Detached::new(&dir);
    dir.write(
        "daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\nlog_file = \"bg.log\"\ncheck_interval = 1\n\n\
         [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1001\"]\n",
    );
    let out = detached.start(&dir);
    assert_eq!(out.code, 0, "{out:?}");
    // No waiting: exit 0 promises a daemon that holds the pid file and answers.
    let status = run(&dir.path, &["-c", "daemon.toml", "status", "--json"]);
    assert_eq!(status.code, 0, "status right after -d start: {status:?}");
    let pid: i32 = fs::read_to_string(dir.join("d.pid")).unwrap().trim().parse().unwrap();
    assert!(alive(pid), "the pid file names {pid}, which is not running");
    let document = <Status as nanoserde::DeJson>::deserialize_json(status.stdout.trim()).unwrap();
    assert_eq!(document.daemon.pid, pid, "{status:?}");
    // The launcher was this test's child and has been reaped; the daemon is
    // not our child and runs in /.
    assert_ne!(stat_field(pid, 4), std::process::id().to_string(), "the daemon is the launcher");
    assert_eq!(fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), Path::new("/"));
    assert_eq!(detached.pids(), vec![pid], "other daemons run for this config");
    wait_until(secs(5), "svc runs", || dir.count("sleep 1001") == 1);
    wait_until(secs(5), "the log file says started", || dir.read("bg.log").contains("started"));

    let again = detached.start(&dir);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.starts_with("mi7soft-daemon: error: "), "{again:?}");
    assert!(again.stderr.contains(&format!("already running (pid {pid})")), "{again:?}");
    assert!(alive(pid), "the refused start hurt the running daemon");
    assert_eq!(run(&dir.path, &["-c", "daemon.toml", "status"]).code, 0);
    assert_eq!(dir.count("sleep 1001"), 1, "the refused start ran svc again");

    let out = run(&dir.path, &["-c", "daemon.toml", "shutdown", "--stop-all"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(5), "the daemon exits", || !alive(pid));
    assert_eq!(dir.count("sleep 1001"), 0);
    assert!(!dir.join("d.pid").exists(), "the pid file is left behind");
}

/// `-d start` fails with `config`: exit 1, `needle` on stderr, and no daemon
/// left running.
fn daemonize_fails(name: &str, config: &str, needle: &str) {
    let dir = TestDir::new(name);
    let detached = Detached::new(&dir);
    dir.write("daemon.toml", config);
    let out = detached.start(&dir);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("mi7soft-daemon: error: "), "{out:?}");
    assert!(out.stderr.contains(needle), "stderr does not contain {needle:?}: {out:?}");
    wait_until(secs(5), "no daemon is left", || detached.pids().is_empty());
    assert_eq!(dir.count("sleep 1001"), 0, "a service was started");
}

#[test]
fn daemonize_with_a_bad_config_exits_1_with_its_location() {
    daemonize_fails(
        "dz-badconf",
        "[daemon]\npid_file = \"d.pid\"\ncheck_intervall = 1\n\n\
         [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1001\"]\n",
        "daemon.toml:3:1: [daemon] unknown key \"check_intervall\"",
    );
}

#[test]
fn daemonize_with_an_unusable_pid_file_exits_1_naming_it() {
    daemonize_fails(
        "dz-pidfile",
        // A missing directory would be made; one through a device cannot.
        "[daemon]\npid_file = \"/dev/null/x.pid\"\nlog_file = \"bg.log\"\n\n\
         [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1001\"]\n",
        "/dev/null/x.pid",
    );
}

#[test]
fn the_daemons_log_is_not_opened_through_a_link() {
    let dir = TestDir::new("dz-log-link");
    let detached = Detached::new(&dir);
    let secret = dir.write("secret", "root's secret\n");
    std::os::unix::fs::symlink(&secret, dir.join("bg.log")).unwrap();
    dir.write("daemon.toml", "[daemon]\npid_file = \"d.pid\"\nlog_file = \"bg.log\"\n");
    let out = detached.start(&dir);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("bg.log: is a symbolic link"), "{out:?}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root's secret\n");
    assert!(detached.pids().is_empty());
}

/// Issue 18: a service without a log file of its own used to share the
/// detached daemon's log descriptor, so it could truncate the daemon's log
/// and write lines that read as the daemon's. Now it writes into a pipe of
/// its own, whose lines reach the log after its name, control characters
/// escaped.
#[test]
fn a_service_can_neither_truncate_nor_forge_the_daemons_log() {
    let dir = TestDir::new("dz-forge");
    let detached = Detached::new(&dir);
    let script = "truncate -s 0 /proc/$$/fd/1; : > /proc/$$/fd/2; \
                  printf '2026-01-01T00:00:00Z error: forged\\n\\rfake-cr\\n'; exec sleep 1000";
    dir.write(
        "daemon.toml",
        &format!("[daemon]\npid_file = \"d.pid\"\nlog_file = \"d.log\"\n\n{}", sh_service("svc", script, "")),
    );
    let out = detached.start(&dir);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "the service's lines reach the daemon's log", || dir.read("d.log").contains("fake-cr"));
    let log = dir.read("d.log");
    assert!(log.lines().next().is_some_and(|l| l.contains("started (pid")), "the log was truncated: {log}");
    assert!(!log.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")), "a forged line: {log}");
    assert!(log.lines().any(|l| l.contains(" svc: 2026-01-01T00:00:00Z error: forged")), "{log}");
    assert!(log.lines().any(|l| l.contains(" svc: \\x0dfake-cr")), "{log}");
}
