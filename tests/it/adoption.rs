//! Services outlive the daemon: a daemon that exits, crashes or is
//! restarted takes its services back from the state file, starting none
//! twice and losing none. Also here: adopted processes watched with pidfds
//! or by polling, the state file's writes and forgiving reads, `status`
//! without a daemon, and the subreaper that reaps orphaned grandchildren.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A `[[processes]]` table running `sh -c SCRIPT` (no double quotes in it).
fn shell_service(name: &str, script: &str) -> String {
    format!("[[processes]]\nname = \"{name}\"\ncommand = \"sh\"\nargs = [\"-c\", \"{script}\"]\n\n")
}

/// A `[[processes]]` table running `sleep ARG`, found again by that argument.
fn sleep_service(name: &str, arg: u32) -> String {
    format!("[[processes]]\nname = \"{name}\"\ncommand = \"sleep\"\nargs = [\"{arg}\"]\n\n")
}

/// A long-running service that appends a line to `starts-NAME` each time it
/// starts, then runs as `sleep ARG`.
fn logged_sleep(name: &str, arg: u32) -> String {
    shell_service(name, &format!("echo $$ >> starts-{name}; exec sleep {arg}"))
}

fn n_starts(dir: &TestDir, name: &str) -> usize {
    dir.read(&format!("starts-{name}")).lines().count()
}

/// The pids of live processes from `dir` whose command line contains `needle`.
fn pids_of(dir: &TestDir, needle: &str) -> Vec<i32> {
    dir.processes().into_iter().filter(|&pid| cmdline(pid).contains(needle)).collect()
}

/// Fields 3 onwards of /proc/PID/stat (field 3, the state, first), or
/// nothing when the process is gone.
fn stat_fields(pid: i32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect()))
        .unwrap_or_default()
}

/// The start time of `pid` (field 22 of /proc/PID/stat).
fn starttime(pid: i32) -> u64 {
    stat_fields(pid)[22 - 3].parse().unwrap()
}

/// Every process whose parent is `ppid` (field 4 of /proc/PID/stat), with
/// its state letter (field 3).
fn children(ppid: i32) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let fields = stat_fields(pid);
        if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(ppid) {
            found.push((pid, fields[0].clone()));
        }
    }
    found
}

/// The state file and the end of the daemon log, for a failure message.
fn evidence(dir: &TestDir) -> String {
    let log = dir.read("daemon.log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" crash: ")).collect();
    format!("{}---\n{}", dir.read("d.state"), lines[lines.len().saturating_sub(12)..].join("\n"))
}

/// Checks the state file's shape (see `parse_state`). A missing file is
/// fine (a daemon killed before its first write).
fn state_records(dir: &TestDir) -> Result<Vec<Vec<String>>, String> {
    let Ok(text) = fs::read_to_string(dir.join("d.state")) else { return Ok(Vec::new()) };
    parse_state(&text)
}

#[test]
fn sigkill_at_random_moments_loses_no_service_and_starts_none_twice() {
    // MI7_SEED=N replays the run whose failure message named seed N.
    let seed = std::env::var("MI7_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = TestDir::new("ad-loop");
    let long = [("a", 1001), ("b", 1002), ("c", 1003)];
    let mut config: String = long.iter().map(|&(name, arg)| logged_sleep(name, arg)).collect();
    config.push_str(&shell_service("crash", "sleep 0.3; exit 1"));
    dir.config(&config);
    // Starts each long-running service had to make up for the test killing it.
    let mut n_kills: HashMap<&str, usize> = HashMap::new();
    let started = Instant::now();
    for round in 0..30 {
        let at = format!("seed {seed}, round {round}");
        let daemon = Daemon::spawn(&dir, &["-c", "daemon.toml", "start"]);
        std::thread::sleep(Duration::from_millis(rng.u64(0..=150)));
        drop(daemon); // SIGKILL, then reaped.

        // What the dead daemon forked but had not recorded yet exits without
        // exec (the fd holder, also the daemon's binary, stays); a
        // long-running service has logged its start once it runs sleep.
        wait_until(secs(5), &format!("{at}: no half-spawned service is left"), || {
            dir.processes()
                .iter()
                .map(|&pid| cmdline(pid))
                .all(|c| !c.contains("mi7soft-daemon") || c.contains(" fd-holder "))
        });
        for &(name, arg) in &long {
            let needle = format!("sleep {arg}");
            wait_until(secs(5), &format!("{at}: {name} has exec'd sleep"), || {
                pids_of(&dir, &needle).iter().all(|&pid| cmdline(pid).starts_with(&needle))
            });
        }
        for &(name, arg) in &long {
            let (count, starts) = (dir.count(&format!("sleep {arg}")), n_starts(&dir, name));
            let expected = 1 + n_kills.get(name).copied().unwrap_or(0);
            assert!(count <= 1, "{at}: {name} runs {count} times; state file and log:\n{}", evidence(&dir));
            assert!(
                starts <= expected,
                "{at}: {name} started {starts} times, at most {expected} expected:\n{}",
                evidence(&dir)
            );
            // Once its last start happened, it must be running: not lost.
            assert_eq!(count, usize::from(starts == expected), "{at}: {name} started {starts} of {expected} times");
        }
        state_records(&dir).unwrap_or_else(|e| panic!("{at}: state file: {e}"));

        // Now and then the test kills a service while the daemon is down.
        if rng.u8(0..4) == 0 {
            let (name, arg) = long[rng.usize(0..long.len())];
            if let [pid] = pids_of(&dir, &format!("sleep {arg}"))[..] {
                kill(pid, "KILL");
                wait_until(secs(5), &format!("{at}: killed {name} (pid {pid}) is gone"), || !alive(pid));
                *n_kills.entry(name).or_default() += 1;
            }
        }
    }
    let at = format!("seed {seed}, after the rounds");
    let daemon = Daemon::start(&dir);
    for &(name, arg) in &long {
        let pid = daemon.wait_running(name, None);
        let expected = 1 + n_kills.get(name).copied().unwrap_or(0);
        wait_until(secs(5), &format!("{at}: {name} logged {expected} starts"), || n_starts(&dir, name) >= expected);
        assert_eq!(n_starts(&dir, name), expected, "{at}: {name} started too often");
        assert_eq!(pids_of(&dir, &format!("sleep {arg}")), vec![pid], "{at}: {name} is not exactly its status pid");
    }
    assert!(daemon.find("crash").is_some(), "{at}: crash is not in status");
    let records = state_records(&dir).unwrap_or_else(|e| panic!("{at}: state file: {e}"));
    for &(name, _) in &long {
        assert!(records.iter().any(|r| r[0] == name), "{at}: {name} not in the state file: {records:?}");
    }
    let elapsed = started.elapsed();
    assert!(elapsed < secs(20), "{at}: the rounds took {elapsed:?}");
}

#[test]
fn a_service_killed_while_the_daemon_is_down_is_restarted() {
    let dir = TestDir::new("ad-killed");
    dir.config(&(sleep_service("svc", 1001) + &sleep_service("other", 1002)));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    let other = daemon.wait_running("other", None);
    drop(daemon);
    kill(pid, "KILL");
    wait_until(secs(5), "the killed service is gone", || !alive(pid));
    let daemon = Daemon::start(&dir);
    let new = daemon.wait_running("svc", Some(pid));
    assert!(alive(new));
    assert_eq!(dir.count("sleep 1001"), 1);
    assert_eq!(daemon.process("other").pid, Some(other), "the live service was not adopted");
    assert_eq!(dir.count("sleep 1002"), 1);
    let log = daemon.log();
    assert!(log.contains(&format!("svc: pid {pid} ended while the daemon was down")), "{log}");
}

#[test]
fn a_reused_pid_is_neither_adopted_nor_signalled() {
    let dir = TestDir::new("ad-reuse");
    dir.config(&sleep_service("svc", 1010));
    let mut stranger = Command::new("sleep").arg("1000").current_dir(&dir.path).stdin(Stdio::null()).spawn().unwrap();
    let pid = stranger.id() as i32;
    // The record names the stranger's pid but another start time: the
    // process it recorded has ended and the pid went to someone else.
    dir.write(
        "d.state",
        &format!(
            "mi7soft-daemon state 1\n# name instance pid starttime started_at restarts fingerprint\n\
             svc 0 {pid} {} 1796043901 0 0123456789abcdef\n",
            starttime(pid) + 1
        ),
    );
    let daemon = Daemon::start(&dir);
    let new = daemon.wait_running("svc", Some(pid));
    assert!(cmdline(new).contains("sleep 1010"), "svc runs as {new}: {}", cmdline(new));
    assert_eq!(dir.count("sleep 1010"), 1);
    assert!(alive(pid), "the stranger was killed");
    // Stopping svc must not reach the stranger either.
    let out = daemon.cli(&["stop", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!alive(new));
    assert!(alive(pid), "stopping svc killed the stranger");
    assert_eq!(stranger.try_wait().unwrap(), None, "the stranger exited");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

/// Adopts three services after a SIGKILL with the daemon's environment
/// `env`, checks the log names `watcher` (and not `not_watcher`), then
/// restarts one, stops one (a process group) and kills one.
fn adopted_services_are_supervised(name: &str, env: &[(&str, &str)], watcher: &str, not_watcher: &str) {
    let dir = TestDir::new(name);
    dir.config(
        &(sleep_service("killed", 1001)
            + &sleep_service("restarted", 1002)
            + &shell_service("tree", "sleep 1003 & exec sleep 1004")),
    );
    let daemon = Daemon::start_with_env(&dir, env);
    let killed = daemon.wait_running("killed", None);
    let restarted = daemon.wait_running("restarted", None);
    let tree = daemon.wait_running("tree", None);
    wait_until(secs(5), "tree runs sleep 1003 and sleep 1004", || {
        dir.count("sleep 1003") == 1 && cmdline(tree).starts_with("sleep 1004")
    });
    drop(daemon);

    let daemon = Daemon::start_with_env(&dir, env);
    for (label, pid) in [("killed", killed), ("restarted", restarted), ("tree", tree)] {
        let p = daemon.process(label);
        assert_eq!((p.state.as_str(), p.pid), ("running", Some(pid)), "{label} was not adopted: {p:?}");
    }
    let log = daemon.log();
    assert!(log.contains(watcher), "the log does not say {watcher:?}:\n{log}");
    assert!(!log.contains(not_watcher), "the log says {not_watcher:?}:\n{log}");

    let out = daemon.cli(&["restart", "restarted"]);
    assert_eq!(out.code, 0, "{out:?}");
    let new = daemon.process("restarted");
    assert_eq!(new.state, "running", "{new:?}");
    assert!(new.pid.is_some_and(|p| p != restarted), "{new:?}");
    assert!(!alive(restarted), "the adopted process outlived its restart");
    assert_eq!(dir.count("sleep 1002"), 1);

    let out = daemon.cli(&["stop", "tree"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(daemon.process("tree").state, "stopped");
    assert!(!alive(tree), "the adopted process outlived stop");
    wait_until(secs(2), "no process of tree's group is left", || {
        dir.count("sleep 1003") + dir.count("sleep 1004") == 0
    });

    // An exit within MIN_UPTIME would be a quick failure, restarted only
    // after a delay; be past it so the time measured is the watcher's.
    wait_until(secs(5), "killed has been up 2 s", || daemon.process("killed").uptime_secs >= Some(2));
    kill(killed, "KILL");
    // Noticed: no longer shown running as that pid. The fallback checks
    // every check_interval (1 s).
    wait_until(secs(2), "the end of the killed adopted process is noticed", || {
        let p = daemon.process("killed");
        p.state != "running" || p.pid != Some(killed)
    });
    daemon.wait_running("killed", Some(killed));
    assert_eq!(dir.count("sleep 1001"), 1);
    let log = daemon.log();
    let ended = format!("pid {killed} ended");
    assert!(log.lines().any(|l| l.contains("killed: ") && l.contains(&ended)), "no {ended:?} in:\n{log}");
}

#[test]
fn adopted_services_are_watched_with_pidfds() {
    adopted_services_are_supervised("ad-pidfd", &[], "watching 3 adopted processes with pidfds", "checking every");
}

#[test]
fn adopted_services_are_polled_without_pidfds() {
    adopted_services_are_supervised(
        "ad-poll",
        &[("MI7SOFT_NO_PIDFD", "1")],
        "watching 3 adopted processes by checking every 1s",
        "pidfds",
    );
}

/// The state file's identity and modification time.
fn stamp(dir: &TestDir) -> (u64, i64, i64) {
    let meta = fs::metadata(dir.join("d.state")).unwrap();
    (meta.ino(), meta.mtime(), meta.mtime_nsec())
}

/// With `daemon` idle for about 3 s and asked for its status now and then,
/// the state file is not rewritten; once a service is killed, it is.
fn idle_means_no_write(dir: &TestDir, daemon: &Daemon) {
    let pid = daemon.wait_running("a", None);
    daemon.wait_running("b", None);
    let before = stamp(dir);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(daemon.cli(&["status"]).code, 0);
    }
    assert_eq!(stamp(dir), before, "an idle daemon rewrote its state file");
    kill(pid, "KILL");
    wait_until(secs(5), "the state file is written after a change", || stamp(dir) != before);
    let new = daemon.wait_running("a", Some(pid));
    wait_until(secs(5), "the state file names the new pid", || {
        state_records(dir).is_ok_and(|r| r.iter().any(|f| f[0] == "a" && f[STATE_PID] == new.to_string()))
    });
}

#[test]
fn an_idle_daemon_does_not_rewrite_its_state_file() {
    let dir = TestDir::new("ad-idle");
    dir.config(&(sleep_service("a", 1001) + &sleep_service("b", 1002)));
    let daemon = Daemon::start(&dir);
    idle_means_no_write(&dir, &daemon);
}

#[test]
fn an_idle_daemon_polling_adopted_services_does_not_rewrite_its_state_file() {
    let dir = TestDir::new("ad-idlepoll");
    dir.config(&(sleep_service("a", 1001) + &sleep_service("b", 1002)));
    let daemon = Daemon::start(&dir);
    daemon.wait_running("a", None);
    daemon.wait_running("b", None);
    drop(daemon);
    let daemon = Daemon::start_with_env(&dir, &[("MI7SOFT_NO_PIDFD", "1")]);
    assert!(daemon.log().contains("checking every 1s"), "{}", daemon.log());
    idle_means_no_write(&dir, &daemon);
}

/// Starts a daemon over a state file that `spoil` prepared (given the pid of
/// service `a` from an earlier, SIGKILLed daemon); checks it logs a warning
/// that names the state file and says `warning`, and that `a` runs once.
/// Returns `a`'s earlier pid and its pid now.
fn starts_despite_the_state_file(name: &str, spoil: impl FnOnce(&TestDir, i32), warning: &str) -> (i32, i32) {
    let dir = TestDir::new(name);
    dir.config(&(sleep_service("a", 1001) + &sleep_service("b", 1002)));
    let daemon = Daemon::start(&dir);
    let before = daemon.wait_running("a", None);
    drop(daemon);
    spoil(&dir, before);
    let daemon = Daemon::start(&dir);
    let now = daemon.wait_running("a", None);
    daemon.wait_running("b", None);
    let log = daemon.log();
    let expected = format!("warning: state file {}: ", dir.join("d.state").display());
    let line = log.lines().find(|l| l.contains(&expected)).unwrap_or_else(|| panic!("no {expected:?} in:\n{log}"));
    assert!(line.contains(warning), "{line:?} does not say {warning:?}");
    assert_eq!(dir.count("sleep 1001"), 1, "a runs twice");
    assert_eq!(dir.count("sleep 1002"), 1, "b runs twice");
    (before, now)
}

#[test]
fn an_empty_state_file_is_reported_and_the_services_run() {
    let (before, now) = starts_despite_the_state_file(
        "ad-empty",
        |dir, _| {
            dir.kill_all();
            dir.write("d.state", "");
        },
        "empty",
    );
    assert_ne!(before, now);
}

#[test]
fn garbage_lines_are_reported_and_the_good_records_adopted() {
    let (before, now) = starts_despite_the_state_file(
        "ad-garbage",
        |dir, _| {
            let mut bytes = fs::read(dir.join("d.state")).unwrap();
            bytes.extend_from_slice(b"garbage here\n\xff\xfe\x00 binary\nb 0 notapid 1 1 0 00\n\n");
            fs::write(dir.join("d.state"), bytes).unwrap();
        },
        "not a valid record",
    );
    assert_eq!(before, now, "a was not adopted");
}

#[test]
fn a_truncated_last_line_is_reported_and_the_services_run() {
    let (before, now) = starts_despite_the_state_file(
        "ad-cut",
        |dir, _| {
            dir.kill_all();
            let text = dir.read("d.state");
            let text = text.trim_end();
            dir.write("d.state", &text[..text.len() - 3]);
        },
        "cut short",
    );
    assert_ne!(before, now);
}

#[test]
fn an_unknown_version_is_reported_and_the_records_adopted() {
    let (before, now) = starts_despite_the_state_file(
        "ad-version",
        |dir, _| {
            let text = dir.read("d.state");
            dir.write("d.state", &text.replace("mi7soft-daemon state 2", "mi7soft-daemon state 9"));
        },
        "unknown version",
    );
    assert_eq!(before, now, "a was not adopted");
}

#[test]
fn config_edits_made_while_the_daemon_was_down_are_applied() {
    let dir = TestDir::new("ad-edit");
    dir.config(&(sleep_service("keep", 1001) + &sleep_service("change", 1002) + &sleep_service("gone", 1003)));
    let daemon = Daemon::start(&dir);
    let keep = daemon.wait_running("keep", None);
    let change = daemon.wait_running("change", None);
    let gone = daemon.wait_running("gone", None);
    drop(daemon);
    dir.config(&(sleep_service("keep", 1001) + &sleep_service("change", 1022) + &sleep_service("new", 1004)));
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "gone's process has ended", || !alive(gone));
    wait_until(secs(5), "gone leaves the status", || daemon.find("gone").is_none());
    assert_eq!(dir.count("sleep 1003"), 0);
    let changed = daemon.wait_running("change", Some(change));
    assert!(cmdline(changed).contains("sleep 1022"), "change runs {:?}", cmdline(changed));
    assert!(!alive(change), "change's old process still runs");
    assert_eq!(dir.count("sleep 1002"), 0);
    assert_eq!(dir.count("sleep 1022"), 1);
    assert_eq!(daemon.process("keep").pid, Some(keep), "the unchanged service was restarted");
    assert_eq!(daemon.process("keep").state, "running");
    assert_eq!(dir.count("sleep 1001"), 1);
    let new = daemon.wait_running("new", None);
    assert!(cmdline(new).contains("sleep 1004"));
    assert_eq!(dir.count("sleep 1004"), 1);
}

#[test]
fn status_without_a_daemon_shows_the_last_known_state() {
    let dir = TestDir::new("ad-lastknown");
    dir.config(&(sleep_service("alive", 1001) + &sleep_service("ended", 1002)));
    let daemon = Daemon::start(&dir);
    let alive_pid = daemon.wait_running("alive", None);
    let ended_pid = daemon.wait_running("ended", None);
    drop(daemon);
    kill(ended_pid, "KILL");
    wait_until(secs(5), "ended has ended", || !alive(ended_pid));
    let out = run(&dir.path, &["-c", "daemon.toml", "status"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("daemon not running"), "{out:?}");
    let mut lines = out.stdout.lines();
    assert!(lines.next().is_some_and(|l| l.contains("last known state")), "{out:?}");
    let row = |name: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}: {out:?}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    let alive_row = row("alive");
    assert_eq!(alive_row[1..3], ["running".to_string(), alive_pid.to_string()], "{out:?}");
    assert_eq!(row("ended")[1], "gone", "{out:?}");
}

#[test]
fn a_subreaper_daemon_reaps_orphaned_grandchildren() {
    let dir = TestDir::new("ad-subreaper");
    if under_qemu() {
        // qemu-user 7.2 answers prctl(PR_SET_CHILD_SUBREAPER) with EINVAL, as
        // a kernel without subreapers would: the daemon must refuse the
        // setting it cannot honour, clearly, instead of running without it.
        dir.write("daemon.toml", "[daemon]\npid_file = \"d.pid\"\nsubreaper = true\n");
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", "start"], secs(10));
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("subreaper = true: Invalid argument"), "{out:?}");
        eprintln!("under qemu: no subreaper there; checked that the daemon refuses `subreaper = true`");
        return;
    }
    dir.write(
        "daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\ncheck_interval = 1\nsubreaper = true\n\n\
         [[processes]]\nname = \"forks\"\ncommand = \"sh\"\nargs = [\"-c\", \"setsid sh -c 'trap \\\"\\\" TERM; touch left; exec sleep 1.55' & \
         until [ -e left ]; do sleep 0.01; done; exit 0\"]\n\
         auto_restart = false\n",
    );
    // The grandchild leaves the service's process group (as a program that
    // daemonizes does), and the service waits for that before it exits: a
    // leftover in the group would be stopped with it. What a service leaves
    // in the background is drained when it exits, so the grandchild ignores
    // the stop signal and lives out its time, to end as the daemon's orphan.
    let mut daemon = Daemon::start(&dir);
    let mut orphan = None;
    wait_until(secs(5), "sleep 1.55 is orphaned to the daemon", || {
        orphan =
            children(daemon.pid()).into_iter().map(|(pid, _)| pid).find(|&pid| cmdline(pid).starts_with("sleep 1.55"));
        orphan.is_some()
    });
    let orphan = orphan.unwrap();
    wait_until(secs(5), "the orphan has exited and been reaped", || {
        !std::path::Path::new(&format!("/proc/{orphan}")).exists()
    });
    let zombies: Vec<(i32, String)> = children(daemon.pid()).into_iter().filter(|(_, state)| state == "Z").collect();
    assert!(zombies.is_empty(), "zombie children of the daemon: {zombies:?}");
    assert!(daemon.is_up());
}

/// A worker that left for a session of its own carries the service's
/// marker like a service does; a new daemon must not take it for a second
/// copy of the service and stop one of them.
#[test]
fn a_worker_in_a_session_of_its_own_is_no_second_copy() {
    let dir = TestDir::new("ad-setsid");
    dir.config(&sh_service("svc", "setsid sleep 1001 & exec sleep 1000", ""));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    wait_until(secs(5), "the worker runs", || dir.count("sleep 1001") == 1);
    let worker = pids_of(&dir, "sleep 1001")[0];
    drop(daemon);
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.wait_running("svc", None), pid);
    holds_for(secs(1), "the service and its worker live on", || alive(pid) && alive(worker));
    let log = daemon.log();
    assert!(!log.contains("second copy"), "{log}");
}
