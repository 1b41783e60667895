//! Reload touches exactly what changed: a changed command restarts that one
//! service among many, a policy change applies in place, and a [daemon] key
//! that needs a daemon restart is reported as such.

use std::time::Instant;

use crate::support::*;

fn sleeper(i: u32, seconds: u32) -> String {
    format!("[[processes]]\nname = \"s{i}\"\ncommand = \"sleep\"\nargs = [\"{seconds}\"]\n\n")
}

#[test]
fn reload_restarts_only_the_one_changed_service_of_200() {
    let dir = TestDir::new("rlp-200");
    let config = |changed: Option<u32>| -> String {
        (0..200).map(|i| sleeper(i, if Some(i) == changed { 3999 } else { 3000 + i })).collect()
    };
    dir.config(&config(None));
    let daemon = Daemon::start(&dir);
    let mut before = Vec::new();
    wait_until(secs(30), "all 200 services run", || {
        before = daemon.status().processes;
        before.len() == 200 && before.iter().all(|p| p.state == "running")
    });
    wait_until(secs(30), "200 sleeps run", || dir.count("sleep 3") == 200);

    dir.config(&config(Some(17)));
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    let summary = ": 0 added, 0 removed, 1 restarted (s17), 0 updated in place, 199 unchanged";
    assert!(out.stdout.contains(summary), "{out:?}");

    let old = before[17].pid;
    wait_until(secs(10), "s17 runs again", || daemon.find("s17").is_some_and(|p| p.state == "running" && p.pid != old));
    let after = daemon.status().processes;
    assert_eq!(after.len(), 200);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.name, b.name);
        if a.name == "s17" {
            // A restart the reload asked for is not an automatic one.
            assert_eq!(a.restarts, b.restarts, "{a:?}");
        } else {
            assert_eq!((a.pid, a.restarts), (b.pid, b.restarts), "{} was touched: {b:?} -> {a:?}", a.name);
        }
    }
    wait_until(secs(5), "the old s17 has ended", || dir.count("sleep 3017") == 0);
    assert_eq!(dir.count("sleep 3999"), 1);
}

#[test]
fn a_policy_change_applies_in_place() {
    let dir = TestDir::new("rlp-policy");
    let stubborn = "trap '' TERM; echo > ready; exec sleep 1032";
    let config = |a: &str, b: &str| {
        sh_service("a", stubborn, a) + &sh_service("b", "exec sleep 1030", b) + &sh_service("c", "exec sleep 1031", "")
    };
    dir.config(&config("", ""));
    let daemon = Daemon::start(&dir);
    let pids: Vec<i32> = ["a", "b", "c"].iter().map(|name| daemon.wait_running(name, None)).collect();
    wait_until(secs(5), "a ignores TERM", || dir.join("ready").exists());

    dir.config(&config("stop_timeout = 1", "restart = \"on-failure\""));
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("0 restarted, 2 updated in place (a, b), 1 unchanged"), "{out:?}");
    let now: Vec<Option<i32>> = daemon.status().processes.iter().map(|p| p.pid).collect();
    assert_eq!(now, pids.iter().copied().map(Some).collect::<Vec<_>>(), "a policy change restarted something");

    // The new stop_timeout is live: KILL after 1 s, not the old 10 s.
    let started = Instant::now();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "stop", "a"], secs(5));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("signal 9 (KILL)"), "{out:?}");
    assert!(started.elapsed().as_secs_f64() >= 0.9, "{out:?}");
}

#[test]
fn a_changed_pid_file_is_kept_until_the_daemon_restarts() {
    let dir = TestDir::new("rlp-pidfile");
    let config = |pid_file: &str| {
        format!(
            "[daemon]\npid_file = \"{pid_file}\"\ncontrol_socket = \"d.sock\"\nstate_file = \"d.state\"\n\n\
             [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1040\"]\n"
        )
    };
    dir.write("daemon.toml", &config("d.pid"));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    dir.write("daemon.toml", &config("d2.pid"));
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    let note = out.stdout.lines().find(|l| l.contains("until it is restarted")).unwrap_or_else(|| panic!("{out:?}"));
    assert!(note.contains("[daemon] pid_file changed"), "{out:?}");
    assert!(!note.contains("control_socket") && !note.contains("state_file"), "only pid_file changed: {out:?}");
    assert!(out.stdout.contains("0 restarted, 0 updated in place, 1 unchanged"), "{out:?}");
    assert!(dir.join("d.pid").exists() && !dir.join("d2.pid").exists(), "the daemon moved its pid file");
    assert_eq!(daemon.process("svc").pid, Some(pid));
}
