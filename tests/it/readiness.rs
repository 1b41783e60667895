//! Readiness and health with real processes: `starting` until READY=1 or a
//! probe succeeds, `start-process` waiting for it, ready_timeout, STATUS=,
//! the notify socket's credential check, the watchdog, and health checks
//! that restart a service.

use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::*;

/// `python3 notify.py MSG...` sends its arguments, one per line, as one
/// datagram to $NOTIFY_SOCKET, as sd_notify(3) does, then waits as
/// sd_notify_barrier(3) does: BARRIER=1 with a pipe's write end, which the
/// daemon closes once it has handled what came before. Without that, a
/// sender that exits at once may be gone (with the process group it
/// proved) before a slow daemon reads its message, as systemd-notify's
/// users know; under qemu that happens.
const NOTIFY_PY: &str = r#"import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(os.environ["NOTIFY_SOCKET"])
s.send("\n".join(sys.argv[1:]).encode())
r, w = os.pipe()
socket.send_fds(s, [b"BARRIER=1"], [w])
os.close(w)
os.read(r, 1)
"#;

/// `python3 watchdog.py SECS` sends READY=1, then WATCHDOG=1 every 0.1 s for
/// SECS seconds, appends the time (ns since the epoch) to `silent` and says
/// nothing more.
const WATCHDOG_PY: &str = r#"import os, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
send = lambda m: s.sendto(m, os.environ["NOTIFY_SOCKET"])
send(b"READY=1\nWATCHDOG=1")
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    time.sleep(0.1)
    send(b"WATCHDOG=1")
with open("silent", "a") as f:
    f.write(f"{time.time_ns()}\n")
time.sleep(1000)
"#;

/// The times (ns since the epoch) appended to `file`, one a line.
fn times(dir: &TestDir, file: &str) -> Vec<i128> {
    dir.read(file).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Runs `start-process name` in a thread; the thread returns the output and
/// how long the command took.
fn start_in_background(dir: &TestDir, name: &str) -> JoinHandle<(Output, Duration)> {
    let (path, name) = (dir.path.clone(), name.to_string());
    std::thread::spawn(move || {
        let begun = Instant::now();
        let out = run_bounded(&path, &["-c", "daemon.toml", "start-process", &name], secs(20));
        (out, begun.elapsed())
    })
}

/// The table's row for `name` and the line that follows it.
fn table_row_and_status(daemon: &Daemon, name: &str) -> (String, String) {
    let out = daemon.cli(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    let mut lines = out.stdout.lines().skip_while(|l| !l.starts_with(&format!("{name} ")));
    let row = lines.next().unwrap_or_default().to_string();
    (row, lines.next().unwrap_or_default().to_string())
}

/// The value of `key` in the environment `pid` was exec'ed with.
fn env_of(pid: i32, key: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    String::from_utf8_lossy(&environ).split('\0').find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn ready_1_makes_a_service_running_and_start_process_waits_for_it() {
    let dir = TestDir::new("rdy-notify");
    dir.write("notify.py", NOTIFY_PY);
    // READY=1 comes from a child of the shell: a member of the service's
    // process group, not its main process.
    let script = "sleep 1.5; python3 notify.py READY=1; exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\"\nautostart = false"));
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.process("svc").state, "stopped");

    let cli = start_in_background(&dir, "svc");
    wait_until(secs(5), "svc is starting", || daemon.process("svc").state == "starting");
    let (out, elapsed) = cli.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("svc: started (pid"), "{out:?}");
    assert!(elapsed >= Duration::from_millis(1500), "start-process answered after {elapsed:?}, before READY=1");
    let p = daemon.process("svc");
    assert_eq!((p.state.as_str(), p.restarts), ("running", 0), "{p:?}");
    let log = daemon.log();
    assert!(log.contains("svc: ready (READY=1)"), "{log}");
}

#[test]
fn a_service_that_never_sends_ready_is_killed_and_restarted_after_ready_timeout() {
    let dir = TestDir::new("rdy-timeout");
    let script = "echo $$ >> pids; date +%s%N >> starts; exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\"\nready_timeout = 1"));
    let daemon = Daemon::start(&dir);
    let mut states = Vec::new();
    let mut p = None;
    wait_until(secs(10), "svc is restarted for not being ready", || {
        let now = daemon.process("svc");
        if states.last() != Some(&now.state) {
            states.push(now.state.clone());
        }
        let done = now.restarts >= 1 && now.last_exit.as_deref().is_some_and(|e| e.starts_with("not ready within"));
        p = Some(now);
        done
    });
    let p = p.unwrap();
    assert!(p.last_exit.as_deref().unwrap().starts_with("not ready within 1s"), "{p:?}");
    assert!(!states.iter().any(|s| s == "running"), "a service that never sent READY=1 ran: {states:?}");
    assert!(states.iter().any(|s| s == "starting"), "{states:?}");
    wait_until(secs(5), "the second run has started", || times(&dir, "starts").len() >= 2);
    let first: i32 = dir.read("pids").lines().next().unwrap().parse().unwrap();
    wait_until(secs(5), "the first run is gone", || !alive(first));
    let starts = times(&dir, "starts");
    let gap = (starts[1] - starts[0]) as f64 / 1e9;
    assert!(gap >= 0.9, "killed {gap} s after its start, before ready_timeout = 1");
}

/// The lines of the daemon's log that contain every one of `needles`.
fn log_lines(daemon: &Daemon, needles: &[&str]) -> Vec<String> {
    daemon.log().lines().filter(|l| needles.iter().all(|n| l.contains(n))).map(str::to_string).collect()
}

#[test]
fn the_log_says_why_the_supervisor_stops_a_service_and_what_its_exit_was() {
    let dir = TestDir::new("rdy-why");
    dir.write("watchdog.py", WATCHDOG_PY);
    dir.config(
        &(sh_service("slow", "exec sleep 1000", "ready = \"notify\"\nready_timeout = 1")
            + &sh_service("silent", "exec python3 watchdog.py 0.5", "ready = \"notify\"\nwatchdog_sec = 1")),
    );
    let daemon = Daemon::start(&dir);
    for (name, reason) in [("slow", "not ready within 1s"), ("silent", "no WATCHDOG=1 for 1s")] {
        let acts = format!("{name}: {reason}: stopping");
        let ends = format!("{name}: pid ");
        let exit = format!(" ended: {reason} (signal 15 (TERM))");
        wait_until(secs(10), &format!("the log says {name}'s end was: {reason}"), || {
            !log_lines(&daemon, &[&ends, &exit]).is_empty()
        });
        let log = daemon.log();
        let acted = log.lines().position(|l| l.contains(&acts));
        let ended = log.lines().position(|l| l.contains(&ends) && l.contains(&exit));
        assert!(acted.is_some() && acted < ended, "{acts:?} should come before the exit line:\n{log}");
        assert!(log_lines(&daemon, &[&ends, " ended with "]).is_empty(), "an exit line without the reason:\n{log}");
    }
}

#[test]
fn a_service_that_is_never_ready_backs_off_and_ends_fatal() {
    let dir = TestDir::new("rdy-fatal");
    let keys = "ready = \"notify\"\nready_timeout = 1\nbackoff_initial = 0.2\n\
                start_limit_burst = 3\nstart_limit_interval = 30";
    dir.config(&sh_service("svc", "date +%s%N >> starts; exec sleep 1000", keys));
    let daemon = Daemon::start(&dir);
    let mut states = Vec::new();
    wait_until(secs(15), "svc is fatal", || {
        let state = daemon.process("svc").state;
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        state == "fatal"
    });
    assert!(states.iter().any(|s| s == "backoff"), "never in backoff: {states:?}");
    // A burst of 3: three runs, each killed at its ready timeout.
    holds_for(secs(1), "svc stays fatal after 3 starts", || {
        daemon.process("svc").state == "fatal" && times(&dir, "starts").len() == 3
    });
    assert_eq!(dir.count("sleep 1000"), 0, "a run is left over");
    let p = daemon.process("svc");
    assert_eq!((p.pid, p.last_exit.as_deref()), (None, Some("not ready within 1s (signal 15 (TERM))")), "{p:?}");
    let starts = times(&dir, "starts");
    let gaps: Vec<f64> = starts.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
    // Each gap is the 1 s ready timeout plus a backoff of 0.2 s, then 0.4 s
    // (each ±20%).
    // (Bounds a little under those, for the clocks' reading error: without
    // a backoff a gap is the 1 s timeout alone.)
    assert!(gaps[0] >= 1.1 && gaps[1] >= 1.25, "no backoff after a ready timeout: {gaps:?}");
    assert_eq!(log_lines(&daemon, &["svc: a failed start; next start in"]).len(), 3, "{}", daemon.log());
    let gave_up = log_lines(&daemon, &["svc: started more than 3 times within 30s; giving up (fatal)"]);
    assert_eq!(gave_up.len(), 1, "{}", daemon.log());
}

#[test]
fn restart_of_a_service_that_is_never_ready_answers_with_the_reason_at_the_timeout() {
    let dir = TestDir::new("rdy-restart");
    dir.write("notify.py", NOTIFY_PY);
    // Ready the first time only.
    let script = "if [ ! -e once ]; then touch once; python3 notify.py READY=1; fi; exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\"\nready_timeout = 1"));
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("svc", None);

    let begun = Instant::now();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "restart", "svc"], secs(30));
    let elapsed = begun.elapsed();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("svc: failed to restart: not ready within 1s"), "{out:?}");
    // Not before the ready timeout, and well before the wait's own limit
    // (stop_timeout 10 s + ready_timeout + 5 s), where it used to end.
    assert!(elapsed >= Duration::from_millis(900), "answered after {elapsed:?}, before the ready timeout");
    assert!(elapsed < secs(5), "answered after {elapsed:?}");
    assert!(!alive(first), "the old run {first} still runs");
    // The daemon goes on: the failed run backs off and is tried again.
    wait_until(secs(10), "svc backs off", || daemon.process("svc").state == "backoff");
}

#[test]
fn status_shows_in_the_json_and_the_table() {
    let dir = TestDir::new("rdy-status");
    dir.write("notify.py", NOTIFY_PY);
    let script = "python3 notify.py READY=1 'STATUS=warming up'
        while [ ! -e go ]; do sleep 0.05; done
        python3 notify.py 'STATUS=serving 42 clients'
        exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\""));
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "svc runs and says it is warming up", || {
        let p = daemon.process("svc");
        p.state == "running" && p.status_text.as_deref() == Some("warming up")
    });
    let (row, status) = table_row_and_status(&daemon, "svc");
    assert!(row.ends_with("  -"), "the STATUS= text does not hide the last exit: {row:?}");
    assert_eq!(status, "  status: warming up", "the STATUS= text has a line of its own under its row");

    dir.write("go", "");
    wait_until(secs(5), "svc's status text changes", || {
        daemon.process("svc").status_text.as_deref() == Some("serving 42 clients")
    });
    let (_, status) = table_row_and_status(&daemon, "svc");
    assert_eq!(status, "  status: serving 42 clients");
}

#[test]
fn ready_1_from_a_process_outside_the_service_is_ignored() {
    let dir = TestDir::new("rdy-stray");
    dir.write("notify.py", NOTIFY_PY);
    // The service itself says READY=1 only once the test creates `go`.
    let script = "while [ ! -e go ]; do sleep 0.05; done; python3 notify.py READY=1; exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\""));
    let daemon = Daemon::start(&dir);
    let mut pid = None;
    wait_until(secs(5), "svc is starting", || {
        let p = daemon.process("svc");
        pid = p.pid.filter(|_| p.state == "starting");
        pid.is_some()
    });
    let socket = env_of(pid.unwrap(), "NOTIFY_SOCKET").expect("the service has no NOTIFY_SOCKET");

    // A process the test started (so in no service's process group) sends
    // READY=1 to the same socket and stays alive while the test watches.
    let mut stray = Command::new("python3")
        .args(["-c", &format!("{NOTIFY_PY}open('sent', 'w').close()\nimport time; time.sleep(30)"), "READY=1"])
        .env("NOTIFY_SOCKET", &socket)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(secs(5), "the stray READY=1 is sent", || dir.join("sent").exists());
    holds_for(secs(1), "svc stays starting after a stray READY=1", || {
        assert!(stray.try_wait().unwrap().is_none(), "the stray sender exited early");
        daemon.process("svc").state == "starting"
    });
    stray.kill().unwrap();
    stray.wait().unwrap();

    // The socket works: the service's own READY=1 is heard.
    dir.write("go", "");
    assert_eq!(daemon.wait_running("svc", None), pid.unwrap());
}

#[test]
fn a_service_that_stops_pinging_the_watchdog_is_killed_and_restarted() {
    let dir = TestDir::new("rdy-watchdog");
    dir.write("watchdog.py", WATCHDOG_PY);
    // Pings for 1.5 s, more than the 1 s watchdog, then falls silent.
    let script = "date +%s%N >> starts; exec python3 watchdog.py 1.5";
    dir.config(&sh_service("svc", script, "ready = \"notify\"\nwatchdog_sec = 1"));
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("svc", None);
    wait_until(secs(10), "svc is restarted by the watchdog", || times(&dir, "starts").len() >= 2);
    let p = daemon.process("svc");
    assert!(p.last_exit.as_deref().is_some_and(|e| e.starts_with("no WATCHDOG=1 for 1s")), "{p:?}");
    assert!(p.restarts >= 1, "{p:?}");
    assert!(!alive(first), "the silent process {first} still runs");
    let (starts, silent) = (times(&dir, "starts"), times(&dir, "silent"));
    // While it pinged it lived past the watchdog; it died once it fell silent.
    assert!(!silent.is_empty() && starts[1] > silent[0], "restarted while still pinging: {starts:?} {silent:?}");
    let gap = (starts[1] - starts[0]) as f64 / 1e9;
    assert!(gap >= 2.0, "the first run lasted {gap} s: 1.5 s of pings plus the 1 s watchdog is 2.5 s");
}

#[test]
fn a_tcp_probe_makes_a_service_running_once_its_port_opens() {
    let dir = TestDir::new("rdy-tcp");
    dir.write("listen.py", LISTEN_PY);
    let port = free_port();
    let keys = format!("ready = {{ tcp = \"127.0.0.1:{port}\" }}\nautostart = false");
    dir.config(&sh_service("svc", &format!("exec python3 listen.py {port} 1"), &keys));
    let daemon = Daemon::start(&dir);

    let cli = start_in_background(&dir, "svc");
    wait_until(secs(5), "svc is starting", || daemon.process("svc").state == "starting");
    let (out, elapsed) = cli.join().unwrap();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(elapsed >= Duration::from_secs(1), "start-process answered after {elapsed:?}, before the port opened");
    assert_eq!(times(&dir, "listening").len(), 1, "start-process answered before the port opened");
    assert_eq!(daemon.process("svc").state, "running");
    std::net::TcpStream::connect(("127.0.0.1", port)).expect("the port the probe saw open");
    assert!(daemon.log().contains("svc: ready (probe succeeded)"), "{}", daemon.log());
}

#[test]
fn a_command_probe_makes_a_service_running_once_it_succeeds() {
    let dir = TestDir::new("rdy-cmd");
    let keys = "ready = { command = [\"sh\", \"-c\", \"test -e ready.flag\"] }";
    dir.config(&sh_service("svc", "exec sleep 1000", keys));
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "svc is starting", || daemon.process("svc").state == "starting");
    // The probe runs every 250 ms and fails while the flag is missing.
    holds_for(secs(1), "svc stays starting while its probe fails", || daemon.process("svc").state == "starting");
    let pid = daemon.process("svc").pid.unwrap();
    dir.write("ready.flag", "");
    assert_eq!(daemon.wait_running("svc", None), pid);
    assert!(daemon.log().contains("svc: ready (probe succeeded)"), "{}", daemon.log());
}

#[test]
fn a_failing_health_check_command_restarts_the_service_and_logs_its_output() {
    let dir = TestDir::new("rdy-health");
    let keys = "min_uptime = 0.2\nhealth_check = { command = [\"sh\", \"-c\", \
                \"if [ -e sick ]; then echo db unreachable; exit 1; fi\"], interval = 0.2, retries = 2 }";
    dir.config(&sh_service("svc", "exec sleep 1000", keys));
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("svc", None);
    holds_for(secs(1), "svc keeps running while its health check passes", || {
        let p = daemon.process("svc");
        p.state == "running" && p.pid == Some(first) && p.restarts == 0
    });

    dir.write("sick", "");
    let mut states = Vec::new();
    wait_until(secs(10), "svc is restarted", || {
        let p = daemon.process("svc");
        if states.last() != Some(&p.state) {
            states.push(p.state);
        }
        p.pid.is_some_and(|pid| pid != first)
    });
    // Healthy again from now on, so the new run stays.
    std::fs::remove_file(dir.join("sick")).unwrap();
    assert!(!alive(first));
    // It ran well past min_uptime before it was killed: no backoff.
    assert!(!states.iter().any(|s| s == "backoff"), "restarted through backoff: {states:?}\n{}", daemon.log());
    let second = daemon.wait_running("svc", Some(first));
    let p = daemon.process("svc");
    let last_exit = p.last_exit.clone().unwrap_or_default();
    assert!(last_exit.starts_with("health check failed"), "{p:?}");
    assert!(last_exit.contains("db unreachable"), "{p:?}");
    assert_eq!((p.restarts, p.pid), (1, Some(second)), "{p:?}");
    let log = daemon.log();
    assert!(
        log.lines().any(|l| l.contains("svc: health check failed") && l.contains("db unreachable")),
        "the log should have the check's output: {log}"
    );
    assert!(
        log.lines().any(|l| l.contains("svc: health check failed 2 times: ")
            && l.contains("db unreachable")
            && l.ends_with(": stopping")),
        "the log should say why the daemon stopped it: {log}"
    );
}

#[test]
fn a_tcp_health_check_against_a_closed_port_restarts_the_service() {
    let dir = TestDir::new("rdy-healthtcp");
    // The test holds one port open; the other was free a moment ago and
    // nobody listens on it.
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = free_port();
    let check = |port: u16| {
        format!("min_uptime = 0.2\nhealth_check = {{ tcp = \"127.0.0.1:{port}\", interval = 0.2, retries = 2 }}")
    };
    dir.config(
        &(sh_service("good", "exec sleep 1000", &check(open_port))
            + &sh_service("bad", "exec sleep 1000", &check(closed_port))),
    );
    let daemon = Daemon::start(&dir);
    let good = daemon.wait_running("good", None);
    let bad = daemon.wait_running("bad", None);

    daemon.wait_running("bad", Some(bad));
    let p = daemon.process("bad");
    assert!(p.last_exit.as_deref().is_some_and(|e| e.starts_with("health check failed")), "{p:?}");
    let log = daemon.log();
    assert!(
        log.lines().any(|l| l.contains("bad: health check failed") && l.contains("connect")),
        "the log should say the connect failed: {log}"
    );
    let g = daemon.process("good");
    assert_eq!((g.state.as_str(), g.pid, g.restarts), ("running", Some(good), 0), "{g:?}");
    assert!(!log.contains("good: health check failed"), "{log}");
    drop(open);
}

#[test]
fn mainpid_hands_the_service_to_a_forked_process_that_outlives_its_parent() {
    let dir = TestDir::new("rdy-mainpid");
    dir.write("notify.py", NOTIFY_PY);
    // The classic daemon: the main process forks a child into a session of
    // its own and exits once the child has said it is the main process.
    let script = "setsid sh -c 'echo $$ > child; python3 notify.py MAINPID=$$ READY=1; touch sent; exec sleep 1000' &
        while [ ! -e sent ]; do sleep 0.05; done
        exit 0";
    dir.config(&sh_service("svc", script, "ready = \"notify\""));
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "the child has sent MAINPID=", || dir.join("sent").exists());
    let child: i32 = dir.read("child").trim().parse().unwrap();
    assert_eq!(daemon.wait_running("svc", None), child);
    // The parent's exit is not the service's end: no restart, same pid.
    holds_for(secs(1), "svc keeps running as the child", || {
        let p = daemon.process("svc");
        (p.state.as_str(), p.pid, p.restarts) == ("running", Some(child), 0)
    });
    let log = daemon.log();
    assert!(log.contains(&format!("svc: main process is now pid {child}")), "{log}");
    assert!(!log.contains("ended with"), "{log}");

    // A new daemon adopts the child, as the state file now names it.
    drop(daemon);
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.wait_running("svc", None), child);
    assert_eq!(dir.count("sleep 1000"), 1, "{}", daemon.log());

    // Stopping signals the child's own process group.
    let out = daemon.cli(&["stop", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(5), "the child is gone", || !alive(child));
    assert_eq!(daemon.process("svc").state, "stopped");
}

#[test]
fn mainpid_naming_a_process_the_service_did_not_start_is_refused() {
    let dir = TestDir::new("rdy-mainpid-no");
    dir.write("notify.py", NOTIFY_PY);
    let script = "python3 notify.py MAINPID=1; python3 notify.py MAINPID=x READY=1; exec sleep 1000";
    dir.config(&sh_service("svc", script, "ready = \"notify\""));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    // Still the process the daemon started (READY=1 came before its exec).
    wait_until(secs(5), "the service's own process runs sleep", || cmdline(pid).starts_with("sleep 1000"));
    let log = daemon.log();
    assert!(log.contains("svc: MAINPID=\"1\" ignored: process 1 is neither in the service's session"), "{log}");
    assert!(log.contains("svc: MAINPID=\"x\" ignored: not a process id"), "{log}");
}
