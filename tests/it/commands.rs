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

/// The uid this test runs as, as the daemon logs who asked.
fn my_uid() -> String {
    let out = std::process::Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `trap` writes each signal the shell gets to `got.PID`; a short sleep in
/// the background keeps the shell free to run its traps at once.
const TRAPS: &str = "trap 'echo HUP >> got.$$' HUP; trap 'echo USR1 >> got.$$' USR1
    while :; do sleep 0.1 & wait $!; done";

#[test]
fn signal_reaches_the_main_process_by_name_number_and_instance() {
    let dir = TestDir::new("cmd-signal");
    dir.script("traps.sh", TRAPS);
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./traps.sh\"\nmax_instances = 2\n");
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("svc", None);
    assert_eq!(daemon.cli(&["start-process", "svc"]).code, 0);
    let second = daemon.wait_running("svc:1", None);
    let got = |pid: i32| dir.read(&format!("got.{pid}"));

    let out = daemon.cli(&["signal", "svc", "HUP"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("svc: sent SIGHUP to pid {first}")), "{out:?}");
    assert!(out.stdout.contains(&format!("svc:1: sent SIGHUP to pid {second}")), "{out:?}");
    wait_until(secs(5), "both instances got HUP", || got(first) == "HUP\n" && got(second) == "HUP\n");

    let out = daemon.cli(&["signal", "svc:1", "SIGUSR1"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(5), "svc:1 got USR1", || got(second) == "HUP\nUSR1\n");
    let out = daemon.cli(&["signal", "svc:0", "1"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(5), "svc:0 got HUP by number", || got(first) == "HUP\nHUP\n");
    assert_eq!(got(second), "HUP\nUSR1\n", "svc:1 was not named");
    // Trapped signals do not end the processes.
    assert_eq!((daemon.process("svc").pid, daemon.process("svc:1").pid), (Some(first), Some(second)));
    let uid = my_uid();
    assert!(daemon.log().contains(&format!("signal svc HUP (asked by uid {uid}")), "{}", daemon.log());
}

#[test]
fn signal_exits_3_when_not_running_and_2_for_an_unknown_signal() {
    let dir = TestDir::new("cmd-signal-codes");
    let daemon = two_services(&dir);
    daemon.wait_running("svc", None);
    let out = daemon.cli(&["signal", "idle", "HUP"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stderr, "mi7soft-daemon: error: idle: not running\n", "{out:?}");
    for bad in ["HUPP", "SIGNOPE", "0", "65"] {
        let out = daemon.cli(&["signal", "svc", bad]);
        assert_eq!(out.code, 2, "{bad}: {out:?}");
        assert!(out.stderr.starts_with("mi7soft-daemon: error: signal: unknown signal "), "{out:?}");
        assert!(out.stderr.contains(&format!("\"{bad}\"")), "the message should name {bad:?}: {out:?}");
    }
    let out = daemon.cli(&["signal", "nosuch", "HUP"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("\"nosuch\""), "{out:?}");
    assert!(!daemon.log().contains("signal svc"), "a refused signal was sent: {}", daemon.log());
}

#[test]
fn every_command_that_changes_something_is_logged_with_who_asked() {
    let dir = TestDir::new("cmd-who");
    let mut daemon = two_services(&dir);
    daemon.wait_running("svc", None);
    let commands: &[&[&str]] =
        &[&["stop", "svc"], &["start-process", "svc"], &["restart", "svc"], &["reload"], &["signal", "svc", "CONT"]];
    for args in commands {
        assert_eq!(daemon.cli(args).code, 0, "{args:?}");
    }
    assert_eq!(daemon.cli(&["shutdown"]).code, 0);
    assert_eq!(daemon.wait_exit(), 0);
    let log = daemon.log();
    let uid = my_uid();
    // As root, the name from /etc/passwd follows the number.
    let who = if uid == "0" { "uid 0, root".to_string() } else { format!("uid {uid}") };
    for line in ["stop svc", "start-process svc", "restart svc", "reload", "signal svc CONT", "shutdown"] {
        let expected = format!("info: {line} (asked by {who}");
        assert!(log.lines().any(|l| l.contains(&expected)), "no {expected:?} in\n{log}");
    }
    assert!(log.contains("info: reloaded "), "reload's outcome goes to the log too:\n{log}");
    assert!(!log.contains("status (asked"), "status changes nothing and is not logged:\n{log}");
}

#[test]
fn sighup_is_logged_as_the_asker_of_its_reload() {
    let dir = TestDir::new("cmd-who-hup");
    let daemon = two_services(&dir);
    kill(daemon.pid(), "HUP");
    wait_until(secs(5), "the reload is logged", || daemon.log().contains("info: reload (asked by SIGHUP)"));
    wait_until(secs(5), "and its outcome", || daemon.log().contains("info: reloaded "));
}

#[test]
fn status_name_prints_the_whole_record_and_the_last_output() {
    let dir = TestDir::new("cmd-record");
    dir.script("svc.sh", "for i in $(seq 1 15); do echo line $i; done; exec sleep 1000");
    let long = "a-rather-long-service-name-for-a-status-table";
    dir.config(&format!(
        "[[processes]]\nname = \"{long}\"\ncommand = \"./svc.sh\"\nargs = [\"x y\", \"z\"]\n\
         log_file = \"svc.log\"\nlog_timestamps = false\n"
    ));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running(long, None);
    wait_until(secs(5), "svc.sh has written its lines", || dir.read("svc.log").contains("line 15\n"));
    let out = daemon.cli(&["status", long]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let log_file = daemon.process(long).log_file.clone().expect("log_file in the JSON");
    assert!(log_file.ends_with("svc.log"), "{log_file}");
    assert_eq!(
        lines[..9],
        [
            format!("name: {long}").as_str(),
            "state: running",
            &format!("pid: {pid}"),
            lines[3],
            "restarts: 0",
            "last exit: -",
            "status text: -",
            // Relative to the config's directory, as the daemon runs it.
            &format!("command: {}/./svc.sh 'x y' z", dir.path.display()),
            &format!("log file: {log_file}"),
        ],
        "{out:?}"
    );
    assert!(lines[3].starts_with("uptime: ") && lines[3].ends_with('s'), "{out:?}");
    assert_eq!(lines[9..11], ["", &format!("last lines of {log_file}:")], "{out:?}");
    let tail: Vec<String> = (6..=15).map(|i| format!("line {i}")).collect();
    assert_eq!(lines[11..], tail, "{out:?}");
}

#[test]
fn restarts_counts_only_automatic_restarts() {
    let dir = TestDir::new("cmd-restarts");
    dir.script("svc.sh", "if [ -e die ]; then rm die; exit 1; fi; exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\nmin_uptime = 0\n");
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("svc", None);
    assert_eq!(daemon.cli(&["restart", "svc"]).code, 0);
    assert_eq!(daemon.cli(&["stop", "svc"]).code, 0);
    assert_eq!(daemon.cli(&["start-process", "svc"]).code, 0);
    let p = daemon.process("svc");
    assert_ne!(p.pid, Some(first));
    assert_eq!(p.restarts, 0, "a user's restart or start is no restart: {p:?}");
    dir.write("die", "");
    kill(p.pid.unwrap(), "KILL");
    wait_until(secs(10), "two automatic restarts", || {
        let p = daemon.process("svc");
        p.restarts == 2 && p.state == "running"
    });
}

#[test]
fn the_table_has_no_colour_on_a_dumb_terminal() {
    let dir = TestDir::new("cmd-colour");
    let daemon = two_services(&dir);
    daemon.wait_running("svc", None);
    // `script` gives the command a terminal; TERM then decides.
    let on_terminal = |term: Option<&str>| {
        let command = format!("{} -c daemon.toml status", bin().display());
        let mut script = std::process::Command::new("script");
        script.args(["-qec", &command, "/dev/null"]).current_dir(&dir.path).stdin(std::process::Stdio::null());
        match term {
            Some(term) => script.env("TERM", term),
            None => script.env_remove("TERM"),
        };
        let out = script.output().expect("script(1) from util-linux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(on_terminal(Some("xterm")).contains("\x1b["), "colour on a terminal with colours");
    for term in [Some("dumb"), None] {
        let out = on_terminal(term);
        assert!(out.contains("running") && !out.contains("\x1b["), "TERM={term:?}: {out:?}");
    }
}

#[test]
fn help_fits_80_columns_and_names_signal() {
    let dir = TestDir::new("cmd-help80");
    let out = run(&dir.path, &["--help"]);
    for line in out.stdout.lines() {
        assert!(line.chars().count() <= 80, "{line:?} is {} columns", line.chars().count());
    }
    assert!(out.stdout.contains("signal NAME SIGNAL"), "{out:?}");
}

#[test]
fn counts_agree_with_their_noun() {
    let dir = TestDir::new("cmd-plural");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let out = run(&dir.path, &["-c", "daemon.toml", "check"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.trim_end().ends_with(": ok, 1 process"), "{out:?}");
    let mut daemon = Daemon::start(&dir);
    daemon.wait_running("svc", None);
    let out = daemon.cli(&["shutdown", "--stop-all"]);
    assert_eq!(out.stdout, "stopped 1 service; daemon exiting\n", "{out:?}");
    daemon.wait_exit();
}

#[test]
fn start_process_that_fails_says_failed_to_start() {
    let dir = TestDir::new("cmd-startfail");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config(
        "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\nautostart = false\nready = \"notify\"\nready_timeout = 1\n",
    );
    let daemon = Daemon::start(&dir);
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "start-process", "svc"], secs(20));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("svc: failed to start: not ready within 1s"), "{out:?}");
    assert!(!out.stderr.contains("restart"), "{out:?}");
    drop(daemon);
}

#[test]
fn an_adopted_process_that_ends_reads_exit_status_unknown() {
    let dir = TestDir::new("cmd-adopted-end");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let mut daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    assert_eq!(daemon.cli(&["shutdown"]).code, 0);
    daemon.wait_exit();
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.wait_running("svc", None), pid, "adopted, same pid");
    kill(pid, "KILL");
    let expected = format!("svc: pid {pid} ended (adopted: exit status unknown)");
    wait_until(secs(10), "the end is logged", || daemon.log().contains(&expected));
    assert!(!daemon.log().contains("ended with ended"), "{}", daemon.log());
    wait_until(secs(10), "svc restarted", || daemon.process("svc").pid.is_some_and(|p| p != pid));
}

/// Issue 18, item 9: a service's words reach an admin's terminal shown, not
/// obeyed. Its STATUS= text (clear screen, window title, a carriage return
/// that would overwrite the line) is escaped in the table and in `status
/// NAME`, and its captured output in `logs` on a terminal; into a pipe,
/// `logs` passes the bytes as they are.
#[test]
fn terminal_escapes_from_a_service_are_shown_not_obeyed() {
    let dir = TestDir::new("cmd-escapes");
    dir.write(
        "notify.py",
        "import os, socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(b'READY=1\\nSTATUS=\\x1b[2J\\x1b]0;owned\\x07ok\\rfake', os.environ['NOTIFY_SOCKET'])\n",
    );
    let script = "python3 notify.py; printf 'plain\\033[31mred\\rforged\\n'; exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\"\nlog_file = \"svc.log\""));
    let daemon = Daemon::start(&dir);
    daemon.wait_running("svc", None);
    wait_until(secs(5), "the output is captured", || dir.read("svc.log").contains("forged"));
    let table = daemon.cli(&["status"]);
    assert!(!table.stdout.contains('\x1b') && !table.stdout.contains('\r'), "{table:?}");
    assert!(table.stdout.contains("\\x1b[2J\\x1b]0;owned\\x07ok\\x0dfake"), "{table:?}");
    let record = daemon.cli(&["status", "svc"]);
    assert!(!record.stdout.contains('\x1b') && record.stdout.contains("\\x1b[31mred\\x0dforged"), "{record:?}");
    let on_terminal = {
        let command = format!("{} -c daemon.toml logs svc", bin().display());
        let out = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(&dir.path)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script(1) from util-linux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(on_terminal.contains("plain\\x1b[31mred\\x0dforged") && !on_terminal.contains('\x1b'), "{on_terminal:?}");
    let piped = daemon.cli(&["logs", "svc"]);
    assert!(piped.stdout.contains("plain\x1b[31mred\rforged"), "{piped:?}");
}
