//! The client commands against a running daemon: what each prints, how it
//! exits, and what it does to the real processes.

use crate::support::*;

/// A daemon with `svc` (running) and `idle` (autostart = false).
fn two_services(dir: &TestDir) -> Daemon {
    dir.script("svc.sh", "exec sleep 1000");
    dir.script("idle.sh", "exec sleep 1002");
    dir.config(
        "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n\n\
         [[processes]]\nname = \"idle\"\ncommand = \"./idle.sh\"\nautostart = false\n",
    );
    Daemon::start(dir)
}

#[test]
fn start_process_starts_a_stopped_service() {
    let dir = TestDir::new("cmd-startp");
    let daemon = two_services(&dir);
    assert_eq!(daemon.process("idle").state, "stopped");
    let out = daemon.cli(&["start-process", "idle"]);
    assert_eq!(out.code, 0, "{out:?}");
    let p = daemon.process("idle");
    assert_eq!(p.state, "running", "{p:?}");
    let pid = p.pid.unwrap();
    assert!(out.stdout.contains(&format!("started (pid {pid})")), "{out:?}");
    assert!(alive(pid));
    wait_until(secs(5), "idle.sh has exec'd sleep", || cmdline(pid).contains("sleep 1002"));
}

#[test]
fn stop_returns_once_the_process_is_gone() {
    let dir = TestDir::new("cmd-stop");
    let daemon = two_services(&dir);
    let pid = daemon.wait_running("svc", None);
    wait_until(secs(5), "svc.sh has exec'd sleep", || cmdline(pid).contains("sleep 1000"));
    let out = daemon.cli(&["stop", "svc"]);
    assert!(!alive(pid), "pid {pid} still alive after stop returned: {out:?}");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("pid {pid}")), "{out:?}");
    assert!(out.stdout.contains("signal 15"), "stop should say how it ended: {out:?}");
    let p = daemon.process("svc");
    assert_eq!((p.state.as_str(), p.pid), ("stopped", None), "{p:?}");
    assert_eq!(daemon.cli(&["status", "svc"]).code, 3);
}

#[test]
fn restart_gives_a_new_pid() {
    let dir = TestDir::new("cmd-restart");
    let daemon = two_services(&dir);
    let old = daemon.wait_running("svc", None);
    let out = daemon.cli(&["restart", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!alive(old), "the old process is still alive");
    let p = daemon.process("svc");
    assert_eq!(p.state, "running", "{p:?}");
    let new = p.pid.unwrap();
    assert_ne!(new, old);
    assert!(alive(new));
    assert!(out.stdout.contains(&format!("pid {new}")), "{out:?}");
}

#[test]
fn the_status_table_fits_80_columns_without_colour() {
    let dir = TestDir::new("cmd-table");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config(
        "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n\n\
         [[processes]]\nname = \"a-rather-long-service-name-for-a-table\"\n\
         command = \"/nonexistent/a-very-long-directory-name/and-another-one/prog\"\n\n\
         [[processes]]\nname = \"idle\"\ncommand = \"./svc.sh\"\nautostart = false\n",
    );
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    wait_until(secs(10), "the long one has failed", || {
        daemon.process("a-rather-long-service-name-for-a-table").last_exit.is_some()
    });
    let out = daemon.cli(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "a header and one line per instance: {out:?}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "MEM", "CPU", "LAST", "EXIT"], "{out:?}");
    assert!(lines[0].contains("LAST EXIT"), "{out:?}");
    for line in &lines {
        assert!(line.chars().count() <= 80, "{line:?} is {} columns", line.chars().count());
        assert!(!line.contains('\x1b'), "ANSI escape in {line:?}");
    }
    let svc = lines.iter().find(|l| l.starts_with("svc ")).expect("a line for svc");
    assert!(svc.split_whitespace().any(|w| w == pid.to_string()), "{svc:?}");
    assert!(svc.contains("running"), "{svc:?}");
    // Memory in K, M or G, and CPU seconds, for what runs; dashes for the rest.
    assert!(svc.split_whitespace().any(|w| w.len() <= 5 && w.ends_with(['K', 'M', 'G'])), "{svc:?}");
    assert!(svc.split_whitespace().any(|w| w.ends_with('s') && w.contains('.')), "{svc:?}");
    let idle = lines.iter().find(|l| l.starts_with("idle ")).expect("a line for idle");
    assert!(idle.contains("stopped"), "{idle:?}");
}

#[test]
fn status_name_exits_0_when_running_and_3_when_stopped() {
    let dir = TestDir::new("cmd-stname");
    let daemon = two_services(&dir);
    daemon.wait_running("svc", None);
    let running = daemon.cli(&["status", "svc"]);
    assert_eq!(running.code, 0, "{running:?}");
    assert!(running.stdout.contains("svc"), "{running:?}");
    let stopped = daemon.cli(&["status", "idle"]);
    assert_eq!(stopped.code, 3, "{stopped:?}");
    assert!(stopped.stdout.contains("idle"), "{stopped:?}");
    assert!(!stopped.stdout.contains("svc"), "status NAME shows only NAME: {stopped:?}");
}

#[test]
fn status_json_has_the_documented_keys() {
    let dir = TestDir::new("cmd-json");
    let daemon = two_services(&dir);
    let pid = daemon.wait_running("svc", None);
    let out = daemon.cli(&["status", "--json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim().lines().count(), 1, "one JSON document: {out:?}");
    for key in [
        "daemon",
        "pid",
        "version",
        "config",
        "processes",
        "name",
        "instance",
        "state",
        "uptime_secs",
        "restarts",
        "last_exit",
    ] {
        assert!(out.stdout.contains(&format!("\"{key}\":")), "no {key:?} in {out:?}");
    }
    let status = daemon.status();
    assert_eq!(status.daemon.pid, daemon.pid());
    assert_eq!(status.daemon.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.daemon.config, dir.join("daemon.toml").display().to_string());
    assert_eq!(status.processes.len(), 2);
    let svc = &status.processes[0];
    assert_eq!((svc.name.as_str(), svc.instance, svc.state.as_str(), svc.pid), ("svc", 0, "running", Some(pid)));
    assert!(svc.uptime_secs.is_some());
    let idle = &status.processes[1];
    assert_eq!((idle.name.as_str(), idle.state.as_str(), idle.pid, idle.uptime_secs), ("idle", "stopped", None, None));
    // Absent values are present as null, not left out.
    assert!(out.stdout.contains("\"pid\":null"), "{out:?}");
}

#[test]
fn an_unknown_name_is_refused_by_every_command() {
    let dir = TestDir::new("cmd-unknown");
    let mut daemon = two_services(&dir);
    for command in ["status", "start-process", "stop", "restart"] {
        let out = daemon.cli(&[command, "nosuch"]);
        assert_eq!(out.code, 1, "{command}: {out:?}");
        assert!(out.stderr.starts_with("mi7soft-daemon: error: "), "{command}: {out:?}");
        assert!(out.stderr.contains("\"nosuch\""), "{command}: the message should name it: {out:?}");
    }
    assert!(daemon.is_up());
    assert_eq!(daemon.status().processes.len(), 2);
}

#[test]
fn stop_all_stops_every_service() {
    let dir = TestDir::new("cmd-stopall");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config(
        "[[processes]]\nname = \"a\"\ncommand = \"./svc.sh\"\n\n[[processes]]\nname = \"b\"\ncommand = \"./svc.sh\"\n\n\
         [[processes]]\nname = \"m\"\ncommand = \"./svc.sh\"\nmax_instances = 2\n",
    );
    let mut daemon = Daemon::start(&dir);
    let a = daemon.wait_running("a", None);
    let b = daemon.wait_running("b", None);
    daemon.wait_running("m", None);
    let out = daemon.cli(&["start-process", "m"]);
    assert_eq!(out.code, 0, "{out:?}");
    let pids: Vec<i32> = daemon.status().processes.iter().filter_map(|p| p.pid).collect();
    assert_eq!(pids.len(), 4, "a, b, m:0, m:1 should run");
    assert!(pids.contains(&a) && pids.contains(&b));
    let out = daemon.cli(&["stop", "--all"]);
    let left: Vec<i32> = pids.iter().copied().filter(|&pid| alive(pid)).collect();
    assert_eq!(left, Vec::<i32>::new(), "still alive after stop --all returned: {out:?}");
    assert_eq!(out.code, 0, "{out:?}");
    for p in daemon.status().processes {
        assert_eq!((p.state.as_str(), p.pid), ("stopped", None), "{p:?}");
    }
    assert!(daemon.is_up(), "stop --all must not stop the daemon");
}

#[test]
fn usage_errors_exit_2() {
    let dir = TestDir::new("cmd-usage");
    let cases: &[&[&str]] = &[
        &[],
        &["launch"],
        &["stop"],
        &["restart"],
        &["start-process"],
        &["status", "--bogus"],
        &["--bogus", "status"],
        &["stop", "a", "b"],
        &["-c"],
    ];
    for args in cases {
        let out = run_bounded(&dir.path, args, secs(10));
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stderr.starts_with("mi7soft-daemon: error: "), "{args:?}: {out:?}");
    }
    assert!(!dir.join("daemon.toml").exists(), "a usage error must not write a config");
}

#[test]
fn version_and_help_exit_0() {
    let dir = TestDir::new("cmd-help");
    for flag in ["--version", "-V"] {
        let out = run(&dir.path, &[flag]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout.trim(), format!("mi7soft-daemon {}", env!("CARGO_PKG_VERSION")));
    }
    for flag in ["--help", "-h"] {
        let out = run(&dir.path, &[flag]);
        assert_eq!(out.code, 0, "{out:?}");
        for command in ["start", "start-process", "stop", "restart", "status", "reload", "shutdown", "check"] {
            assert!(out.stdout.contains(command), "help does not mention {command}: {out:?}");
        }
    }
}

#[test]
fn max_instances_allows_that_many_and_no_more() {
    let dir = TestDir::new("cmd-maxi");
    dir.script("multi.sh", "exec sleep 1001");
    dir.config("[[processes]]\nname = \"multi\"\ncommand = \"./multi.sh\"\nmax_instances = 2\n");
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("multi", None);
    let out = daemon.cli(&["start-process", "multi"]);
    assert_eq!(out.code, 0, "{out:?}");
    let second = daemon.wait_running("multi:1", None);
    assert_ne!(first, second);
    assert!(out.stdout.contains(&format!("started (pid {second})")), "{out:?}");
    let status = daemon.status();
    let instances: Vec<(u32, &str)> = status.processes.iter().map(|p| (p.instance, p.state.as_str())).collect();
    assert_eq!(instances, [(0, "running"), (1, "running")]);
    assert_eq!(daemon.process("multi").pid, Some(first), "instance 0 kept its process");
    wait_until(secs(5), "two real processes", || dir.count("sleep 1001") == 2);

    let out = daemon.cli(&["start-process", "multi"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("max_instances"), "{out:?}");
    assert_eq!(daemon.status().processes.len(), 2);

    let table = daemon.cli(&["status"]);
    let labels: Vec<&str> = table.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(labels, ["multi:0", "multi:1"], "{table:?}");
    assert_eq!(dir.count("sleep 1001"), 2, "the refused start must not run a third");
}
