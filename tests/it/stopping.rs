//! Stopping with real processes: the configured stop signal and timeout,
//! whole process groups (workers included), and stopping every service at
//! once in parallel and in reverse config order.

use std::time::Instant;

use crate::support::*;

/// Pids of live processes from `dir` whose command line is exactly `command`
/// (so not the `sh -c` that started them).
fn pids_of(dir: &TestDir, command: &str) -> Vec<i32> {
    dir.processes().into_iter().filter(|&pid| cmdline(pid).trim_end() == command).collect()
}

/// A service that ignores TERM, with no child to outlive it: the ignored
/// disposition survives the exec. It writes `NAME.ready` once it is ignoring.
fn stubborn(name: &str, seconds: u32, keys: &str) -> String {
    sh_service(name, &format!("trap '' TERM; echo > {name}.ready; exec sleep {seconds}"), keys)
}

/// A service that traps `signal`, writes `got SIGNAL` to SIGNAL.sig and exits
/// 0; `stop_signal` is the TOML value configured for it.
fn trapping(name: &str, signal: &str, stop_signal: &str) -> String {
    let script = format!(
        "trap 'echo got {signal} > {signal}.sig; exit 0' {signal}; echo > {name}.ready; while :; do sleep 0.1; done"
    );
    sh_service(name, &script, &format!("stop_signal = {stop_signal}"))
}

#[test]
fn the_stop_signal_reaches_the_service() {
    let dir = TestDir::new("stop-sig");
    // By name, and by number: 3 is QUIT on every Linux architecture (10,
    // USR1 on x86 and ARM, is BUS on MIPS).
    dir.config(&(trapping("int", "INT", "\"INT\"") + &trapping("quit", "QUIT", "3")));
    let daemon = Daemon::start(&dir);
    for (name, signal) in [("int", "INT"), ("quit", "QUIT")] {
        let pid = daemon.wait_running(name, None);
        wait_until(secs(5), &format!("{name} has set its trap"), || dir.join(&format!("{name}.ready")).exists());
        let out = daemon.cli(&["stop", name]);
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.contains(&format!("stopped (pid {pid}, exit 0)")), "the trap should have run: {out:?}");
        assert_eq!(dir.read(&format!("{signal}.sig")), format!("got {signal}\n"));
    }
}

#[test]
fn stop_kills_a_service_that_ignores_term_after_stop_timeout() {
    let dir = TestDir::new("stop-timeout");
    dir.config(&stubborn("stubborn", 1050, "stop_timeout = 1"));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("stubborn", None);
    wait_until(secs(5), "stubborn ignores TERM", || dir.join("stubborn.ready").exists());
    let started = Instant::now();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "stop", "stubborn"], secs(5));
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("stubborn: stopped (pid {pid}, signal 9 (KILL))")), "{out:?}");
    assert!(elapsed.as_secs_f64() >= 0.9, "stop returned after {elapsed:?}, before the timeout: {out:?}");
    assert!(!alive(pid), "left running after stop returned");
    assert!(daemon.log().contains("did not stop within 1s; sending KILL"), "{}", daemon.log());
}

#[test]
fn an_invalid_stop_signal_is_a_config_error() {
    let dir = TestDir::new("stop-badsig");
    // Line 9 is stop_signal (the [daemon] table takes lines 1 to 4).
    dir.config(&sh_service("svc", "echo ran >> ran.txt", "stop_signal = \"FOO\""));
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "check"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    let prefix = "mi7soft-daemon: error: daemon.toml:9:15: [[processes]] \"svc\": stop_signal";
    assert!(out.stderr.starts_with(prefix), "stderr should start with {prefix:?}: {out:?}");
    assert!(!dir.join("ran.txt").exists(), "check ran the service");
}

#[test]
fn stop_returns_only_when_the_whole_group_is_gone() {
    let dir = TestDir::new("stop-group");
    dir.config(&sh_service("workers", "sleep 1011 & sleep 1011 & wait", ""));
    let daemon = Daemon::start(&dir);
    daemon.wait_running("workers", None);
    wait_until(secs(5), "both workers run", || pids_of(&dir, "sleep 1011").len() == 2);
    let out = daemon.cli(&["stop", "workers"]);
    assert_eq!(pids_of(&dir, "sleep 1011"), Vec::<i32>::new(), "workers outlived stop: {out:?}");
    assert_eq!(dir.count("wait"), 0, "the shell outlived stop: {out:?}");
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn restart_replaces_the_whole_group() {
    let dir = TestDir::new("stop-regroup");
    dir.config(&sh_service("workers", "sleep 1013 & sleep 1013 & wait", ""));
    let daemon = Daemon::start(&dir);
    daemon.wait_running("workers", None);
    wait_until(secs(5), "both workers run", || pids_of(&dir, "sleep 1013").len() == 2);
    let old = pids_of(&dir, "sleep 1013");
    let out = daemon.cli(&["restart", "workers"]);
    assert_eq!(out.code, 0, "{out:?}");
    let left: Vec<i32> = old.iter().copied().filter(|&pid| alive(pid)).collect();
    assert_eq!(left, Vec::<i32>::new(), "old workers outlived the restart: {out:?}");
    wait_until(secs(5), "the new group has its 2 workers", || pids_of(&dir, "sleep 1013").len() == 2);
    let new = pids_of(&dir, "sleep 1013");
    assert!(new.iter().all(|pid| !old.contains(pid)), "old {old:?}, new {new:?}");
}

#[test]
fn a_crashed_main_process_has_its_workers_stopped_before_the_restart() {
    let dir = TestDir::new("stop-orphan");
    // Each start notes whether the previous run's worker is still alive (a
    // zombie waiting for a slow init to reap it is dead, not alive).
    let script = "if [ -f worker ] && [ -e /proc/$(cat worker) ] && ! grep -q ') Z' /proc/$(cat worker)/stat; \
                  then echo overlap >> log; fi; \
                  sleep 1012 & echo $! > worker; echo start >> log; wait";
    dir.config(&sh_service("svc", script, "min_uptime = 0"));
    let daemon = Daemon::start(&dir);
    let main = daemon.wait_running("svc", None);
    wait_until(secs(5), "the worker runs", || dir.read("log") == "start\n" && pids_of(&dir, "sleep 1012").len() == 1);
    let worker: i32 = dir.read("worker").trim().parse().unwrap();
    kill(main, "KILL");
    daemon.wait_running("svc", Some(main));
    wait_until(secs(10), "the replacement has started its worker", || {
        dir.read("log").lines().count() >= 2 && dir.read("worker").trim() != worker.to_string()
    });
    assert!(!alive(worker), "the old worker {worker} lives beside the replacement");
    assert_eq!(dir.read("log"), "start\nstart\n", "the replacement started while the old worker lived");
    wait_until(secs(5), "one worker runs", || pids_of(&dir, "sleep 1012").len() == 1);
    let p = daemon.process("svc");
    assert_eq!((p.restarts, p.last_exit.as_deref()), (1, Some("signal 9 (KILL)")), "{p:?}");
}

/// Three services `a`, `b`, `c` that ignore TERM, so each stop lasts the
/// whole stop_timeout of 1 s; their pids.
fn three_stubborn(dir: &TestDir) -> (Daemon, Vec<i32>) {
    let names = ["a", "b", "c"];
    let config: String = names.iter().zip(1051..).map(|(name, n)| stubborn(name, n, "stop_timeout = 1")).collect();
    dir.config(&config);
    let daemon = Daemon::start(dir);
    let mut pids = Vec::new();
    for name in names {
        pids.push(daemon.wait_running(name, None));
        wait_until(secs(5), &format!("{name} ignores TERM"), || dir.join(&format!("{name}.ready")).exists());
    }
    (daemon, pids)
}

#[test]
fn stop_all_stops_in_parallel_and_in_reverse_config_order() {
    let dir = TestDir::new("stop-all");
    let (daemon, pids) = three_stubborn(&dir);
    let started = Instant::now();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "stop", "--all"], secs(10));
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    // One after the other would take 3 s.
    assert!(elapsed.as_secs_f64() < 2.5, "stop --all took {elapsed:?}: {out:?}");
    let left: Vec<i32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
    assert_eq!(left, Vec::<i32>::new(), "left running after stop --all returned");
    // The stops overlap, so the order shows in the reply, not in the services.
    let names: Vec<&str> = out.stdout.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(names, ["c", "b", "a"], "{out:?}");
    for p in daemon.status().processes {
        assert_eq!(p.state, "stopped", "{p:?}");
    }
}

#[test]
fn shutdown_stop_all_stops_in_parallel_then_exits() {
    let dir = TestDir::new("stop-shutdown");
    let (mut daemon, pids) = three_stubborn(&dir);
    let started = Instant::now();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "shutdown", "--stop-all"], secs(10));
    let elapsed = started.elapsed();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(elapsed.as_secs_f64() < 2.5, "shutdown --stop-all took {elapsed:?}: {out:?}");
    let left: Vec<i32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
    assert_eq!(left, Vec::<i32>::new(), "left running after shutdown --stop-all returned");
    assert_eq!(daemon.wait_exit(), 0);
}
