//! The restart policy with real processes: which exits restart, the
//! crash-loop backoff and its jitter, the start limit, and what a crash loop
//! costs the daemon.

use std::fs;

use crate::support::*;

/// The start times (ns since the epoch) a service appended to `file` with
/// `date +%s%N`.
fn start_times(dir: &TestDir, file: &str) -> Vec<i128> {
    dir.read(file).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn n_lines(dir: &TestDir, file: &str) -> usize {
    dir.read(file).lines().count()
}

#[test]
fn the_restart_policy_decides_which_exits_restart() {
    let dir = TestDir::new("pol-exits");
    // (name, policy keys, exit code, whether it is restarted)
    let cases = [
        ("onfail-0", "restart = \"on-failure\"", 0, false),
        ("onfail-1", "restart = \"on-failure\"", 1, true),
        ("onfail-3", "restart = \"on-failure\"\nsuccess_exit_codes = [0, 3]", 3, false),
        ("never-1", "restart = \"never\"", 1, false),
        ("always-0", "restart = \"always\"", 0, true),
        ("auto-true-0", "auto_restart = true", 0, true),
        ("auto-false-1", "auto_restart = false", 1, false),
    ];
    let config: String = cases
        .iter()
        .map(|(name, keys, code, _)| {
            sh_service(
                name,
                &format!("echo x >> {name}.starts; exit {code}"),
                &format!("{keys}\nbackoff_initial = 0.1"),
            )
        })
        .collect();
    dir.config(&config);
    let daemon = Daemon::start(&dir);
    for (name, _, code, restarted) in cases {
        let starts = format!("{name}.starts");
        if restarted {
            wait_until(secs(10), &format!("{name} is restarted after exit {code}"), || {
                n_lines(&dir, &starts) >= 2 && daemon.process(name).restarts >= 1
            });
        } else {
            // Restarting would cycle through backoff and running, never exited.
            wait_until(secs(10), &format!("{name} is exited"), || daemon.process(name).state == "exited");
            let p = daemon.process(name);
            let exit = format!("exit {code}");
            assert_eq!((p.restarts, p.last_exit.as_deref(), p.pid), (0, Some(exit.as_str()), None), "{name}: {p:?}");
            assert_eq!(n_lines(&dir, &starts), 1, "{name} ran more than once");
        }
    }
}

#[test]
fn on_failure_restarts_a_service_killed_by_a_signal() {
    let dir = TestDir::new("pol-killed");
    let keys = "restart = \"on-failure\"\nmin_uptime = 0";
    dir.config(
        &(sh_service("onfail", "exec sleep 1020", keys)
            + &sh_service("never", "exec sleep 1021", "restart = \"never\"")),
    );
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("onfail", None);
    let never = daemon.wait_running("never", None);
    kill(first, "KILL");
    kill(never, "KILL");
    let second = daemon.wait_running("onfail", Some(first));
    let p = daemon.process("onfail");
    assert_eq!((p.restarts, p.last_exit.as_deref()), (1, Some("signal 9 (KILL)")), "{p:?}");
    assert!(alive(second));
    wait_until(secs(10), "never is exited", || daemon.process("never").state == "exited");
    assert_eq!(daemon.process("never").last_exit.as_deref(), Some("signal 9 (KILL)"));
}

#[test]
fn auto_restart_true_with_restart_never_is_a_config_error() {
    let dir = TestDir::new("pol-conflict");
    // Line 9 is auto_restart (the [daemon] table takes lines 1 to 4).
    dir.config(&sh_service("svc", "echo ran >> ran.txt", "auto_restart = true\nrestart = \"never\""));
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "check"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    let prefix = "mi7soft-daemon: error: daemon.toml:9:16: [[processes]] \"svc\": ";
    assert!(out.stderr.starts_with(prefix), "stderr should start with {prefix:?}: {out:?}");
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(first.contains("auto_restart"), "{out:?}");
    assert!(first.replace("auto_restart", "").contains("restart"), "both keys should be named: {out:?}");
    assert!(!dir.join("ran.txt").exists(), "check ran the service");
}

#[test]
fn a_crash_loop_backs_off_with_growing_gaps_up_to_backoff_max() {
    let dir = TestDir::new("pol-backoff");
    let keys = "backoff_initial = 0.2\nbackoff_max = 1\nstart_limit_burst = 0";
    dir.config(&sh_service("crash", "date +%s%N >> starts; exit 1", keys));
    let daemon = Daemon::start(&dir);
    let mut p = None;
    wait_until(secs(10), "crash is in backoff", || {
        p = Some(daemon.process("crash"));
        p.as_ref().is_some_and(|p| p.state == "backoff")
    });
    let p = p.unwrap();
    // At most backoff_max plus 20% jitter, rounded up.
    assert!(matches!(p.next_start_secs, Some(1..=2)), "{p:?}");
    assert_eq!((p.pid, p.uptime_secs, p.last_exit.as_deref()), (None, None, Some("exit 1")), "{p:?}");

    let mut row = Vec::new();
    wait_until(secs(10), "the table shows crash in backoff", || {
        let out = daemon.cli(&["status"]);
        let line = out.stdout.lines().find(|l| l.starts_with("crash ")).unwrap_or_default();
        row = line.split_whitespace().map(str::to_string).collect();
        row.get(1).is_some_and(|state| state == "backoff")
    });
    // NAME STATE PID UPTIME...: the UPTIME column says when it starts again.
    assert!(row[2] == "-" && row[3] == "in" && (row[4] == "1s" || row[4] == "2s"), "{row:?}");

    let mut restarts = vec![daemon.process("crash").restarts];
    wait_until(secs(20), "crash has started 7 times", || {
        restarts.push(daemon.process("crash").restarts);
        n_lines(&dir, "starts") >= 7
    });
    assert!(restarts.windows(2).all(|w| w[0] <= w[1]), "restarts went down: {restarts:?}");
    assert!(restarts.last() > restarts.first(), "restarts did not grow: {restarts:?}");

    let times = start_times(&dir, "starts");
    let gaps: Vec<f64> = times.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e9).collect();
    // Nominal waits 0.2, 0.4, 0.8, then capped at 1; each ±20%. A gap is the
    // wait plus the run and the spawn, so only the lower bound is tight.
    for (i, nominal) in [0.2, 0.4, 0.8, 1.0, 1.0, 1.0].into_iter().enumerate() {
        assert!(gaps[i] >= 0.8 * nominal, "gap {i} shorter than the backoff: {gaps:?}");
    }
    for i in 2..6 {
        assert!(gaps[i] > gaps[0], "gap {i} not longer than the first: {gaps:?}");
    }
    // Uncapped, gaps 4 and 5 would be at least 2.56 s and 5.12 s.
    assert!(gaps[4] < 2.5 && gaps[5] < 2.5, "backoff_max = 1 not honoured: {gaps:?}");
}

#[test]
fn too_many_starts_make_a_service_fatal_until_start_process() {
    let dir = TestDir::new("pol-fatal");
    let keys = "min_uptime = 0.1\nstart_limit_burst = 3\nstart_limit_interval = 10";
    dir.config(&sh_service("flappy", "date +%s%N >> starts; sleep 0.3; exit 1", keys));
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "flappy is fatal", || daemon.process("flappy").state == "fatal");
    // As systemd's StartLimitBurst: a burst of 3 allows 3 starts (the first
    // one included) within the interval; a 4th is refused.
    assert_eq!(n_lines(&dir, "starts"), 3, "a burst of 3 allows 3 starts in all");
    holds_for(secs(1), "flappy stays fatal after 3 starts", || {
        daemon.process("flappy").state == "fatal" && n_lines(&dir, "starts") == 3
    });
    let p = daemon.process("flappy");
    assert_eq!((p.pid, p.last_exit.as_deref()), (None, Some("exit 1")), "{p:?}");
    let log = daemon.log();
    assert!(log.lines().any(|l| l.contains("flappy") && l.contains("fatal")), "the log should say it gave up: {log}");

    let out = daemon.cli(&["start-process", "flappy"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(5), "flappy runs again", || n_lines(&dir, "starts") >= 5);
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of its stat).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // fields[0] is field 3 (the state).
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn a_crash_loop_costs_the_daemon_little_cpu() {
    let dir = TestDir::new("pol-cpu");
    let names: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let config: String =
        names.iter().map(|name| sh_service(name, &format!("date +%s%N >> {name}.starts; exit 1"), "")).collect();
    dir.config(&config);
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "every service has started", || {
        names.iter().all(|n| n_lines(&dir, &format!("{n}.starts")) >= 1)
    });
    let before = cpu_ticks(daemon.pid());
    // With the default backoff (1 s, then 2 s) the third start comes at about 3 s.
    wait_until(secs(15), "every service has started 3 times", || {
        names.iter().all(|n| n_lines(&dir, &format!("{n}.starts")) >= 3)
    });
    let used = cpu_ticks(daemon.pid()) - before;
    assert!(used < 30, "the daemon used {used} clock ticks of CPU during a 3 s crash loop of 5 services");
}

#[test]
fn services_failing_together_do_not_restart_in_lockstep() {
    let dir = TestDir::new("pol-jitter");
    let names: Vec<String> = (0..10).map(|i| format!("j{i}")).collect();
    let config: String = names
        .iter()
        .map(|name| sh_service(name, &format!("date +%s%N >> {name}.starts; exit 1"), "backoff_initial = 0.5"))
        .collect();
    dir.config(&config);
    let _daemon = Daemon::start(&dir);
    wait_until(secs(10), "every service has started twice", || {
        names.iter().all(|n| n_lines(&dir, &format!("{n}.starts")) >= 2)
    });
    let times: Vec<Vec<i128>> = names.iter().map(|n| start_times(&dir, &format!("{n}.starts"))).collect();
    let spread = |values: Vec<i128>| values.iter().max().unwrap() - values.iter().min().unwrap();
    let second = spread(times.iter().map(|t| t[1]).collect());
    assert!(second > 1_000_000, "second starts all within {second} ns: {times:?}");
    // The waits are 0.4 to 0.6 s; without jitter they would differ only by
    // how long each shell took to run.
    let waits = spread(times.iter().map(|t| t[1] - t[0]).collect());
    assert!(waits > 50_000_000, "waits before the second start all within {waits} ns: {times:?}");
}
