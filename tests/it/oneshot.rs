//! `type = "oneshot"`: a task that runs to completion, is `done` after a
//! successful exit (ready for its dependents, never run again, across
//! daemons), retried after a failure; and, through its waiter, a new daemon
//! that adopted it running still learns how it ended.

use crate::support::*;

/// The times (ns since the epoch) appended to `file`, one a line.
fn times(dir: &TestDir, file: &str) -> Vec<i128> {
    dir.read(file).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// `web` depends on `prep` and appends its start time to web.starts.
fn web() -> String {
    sh_service("web", "date +%s%N >> web.starts; exec sleep 1000", "depends_on = [\"prep\"]")
}

fn state(daemon: &Daemon, name: &str) -> String {
    daemon.process(name).state
}

/// Waits until `name` is `done`; a oneshot never has a pid then.
fn wait_done(daemon: &Daemon, name: &str) {
    wait_until(secs(15), &format!("{name} is done"), || {
        let p = daemon.process(name);
        p.state == "done" && p.pid.is_none()
    });
}

#[test]
fn a_oneshot_that_fails_twice_then_succeeds_is_done_and_only_then_its_dependent_starts() {
    let dir = TestDir::new("os-retry");
    let prep = sh_service(
        "prep",
        "n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count; date +%s%N >> prep.ends; [ $n -ge 3 ]",
        "type = \"oneshot\"\nbackoff_initial = 0.2\nbackoff_max = 0.4",
    );
    dir.config(&(web() + &prep));
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "web waits while prep is retried", || {
        dir.read("count").trim() == "2" && state(&daemon, "web") == "waiting"
    });
    wait_done(&daemon, "prep");
    daemon.wait_running("web", None);
    let (ends, starts) = (times(&dir, "prep.ends"), times(&dir, "web.starts"));
    assert_eq!((ends.len(), starts.len()), (3, 1), "{ends:?} {starts:?}");
    assert!(starts[0] > ends[2], "web started before prep's successful run ended");
    let prep = daemon.process("prep");
    assert_eq!((prep.restarts, prep.last_exit.as_deref()), (2, Some("exit 0")));
    assert!(dir.read("d.state").lines().any(|l| l.starts_with("prep 0 done up 0 ")), "{}", dir.read("d.state"));
    let table = daemon.cli(&["status"]).stdout;
    assert!(table.lines().any(|l| l.starts_with("prep") && l.contains(" done ")), "{table}");
    let log = daemon.log();
    assert!(log.contains("prep: pid ") && log.contains("ended with exit 1"), "{log}");
}

#[test]
fn a_done_oneshot_is_never_run_again_by_a_new_daemon_and_its_dependents_keep_running() {
    let dir = TestDir::new("os-done");
    let prep = sh_service("prep", "date +%s%N >> prep.runs", "type = \"oneshot\"");
    dir.config(&(prep.clone() + &web()));
    let daemon = Daemon::start(&dir);
    wait_done(&daemon, "prep");
    let web = daemon.wait_running("web", None);
    drop(daemon); // SIGKILL
    let daemon = Daemon::start(&dir);
    assert_eq!(state(&daemon, "prep"), "done");
    assert_eq!(daemon.wait_running("web", None), web, "web was restarted");
    holds_for(secs(1), "prep is not run again", || times(&dir, "prep.runs").len() == 1);
    assert_eq!(times(&dir, "web.starts").len(), 1);

    // restart runs it again; its dependents are left alone.
    let out = daemon.cli(&["restart", "prep"]);
    assert!(out.code == 0 && out.stdout.contains("prep: done (exit 0)"), "{out:?}");
    assert_eq!(times(&dir, "prep.runs").len(), 2);
    // A reload that changes what it runs runs it again.
    dir.config(&(prep.replace("type = ", "environment = { V = \"2\" }\ntype = ") + &self::web()));
    let out = daemon.cli(&["reload"]);
    assert!(out.code == 0 && out.stdout.contains("1 restarted (prep)"), "{out:?}");
    wait_until(secs(10), "prep ran a third time", || times(&dir, "prep.runs").len() == 3);
    wait_done(&daemon, "prep");
    assert_eq!(daemon.process("web").pid, Some(web));
}

/// A oneshot that records each run's pid, waits for the file `go`, and
/// exits with the code written in it (removing it).
fn gated_prep() -> String {
    sh_service(
        "prep",
        "echo $$ >> prep.runs; while [ ! -e go ]; do sleep 0.05; done; c=$(cat go); rm go; exit $c",
        "type = \"oneshot\"\nbackoff_initial = 0.2",
    )
}

/// Starts prep, SIGKILLs the daemon while prep runs, starts a new daemon
/// (with `env`), and checks it adopted prep's waiter rather than run it.
fn adopt_running_oneshot(name: &str, env: &[(&str, &str)]) -> (TestDir, Daemon, i32) {
    let dir = TestDir::new(name);
    dir.config(&(gated_prep() + &web()));
    let daemon = Daemon::start_with_env(&dir, env);
    let waiter = daemon.wait_started("prep");
    wait_until(secs(5), "prep runs", || dir.read("prep.runs").lines().count() == 1);
    assert!(cmdline(waiter).contains("oneshot-wait"), "{}", cmdline(waiter));
    assert_eq!(state(&daemon, "web"), "waiting");
    drop(daemon); // SIGKILL
    let daemon = Daemon::start_with_env(&dir, env);
    let p = daemon.process("prep");
    assert_eq!((p.state.as_str(), p.pid), ("starting", Some(waiter)), "prep was not adopted");
    assert_eq!(state(&daemon, "web"), "waiting");
    assert!(daemon.log().contains(&format!("prep: adopted pid {waiter}")), "{}", daemon.log());
    (dir, daemon, waiter)
}

#[test]
fn a_oneshot_adopted_while_running_is_done_when_it_succeeds_and_never_runs_twice() {
    let (dir, daemon, waiter) = adopt_running_oneshot("os-adopt-ok", &[]);
    dir.write("go", "0");
    wait_done(&daemon, "prep");
    assert!(!alive(waiter));
    assert_eq!(daemon.process("prep").last_exit.as_deref(), Some("exit 0"), "the adopter learnt the status");
    daemon.wait_running("web", None);
    assert_eq!(dir.read("prep.runs").lines().count(), 1, "prep ran twice");
}

#[test]
fn a_oneshot_adopted_while_running_is_retried_when_it_fails() {
    // Without pidfds the waiter's end is found by polling: the status comes
    // from its file all the same.
    let (dir, daemon, waiter) = adopt_running_oneshot("os-adopt-fail", &[("MI7SOFT_NO_PIDFD", "1")]);
    dir.write("go", "3");
    wait_until(secs(10), "prep failed with exit 3 and runs again", || dir.read("prep.runs").lines().count() == 2);
    let log = daemon.log();
    assert!(log.contains(&format!("prep: pid {waiter} ended with exit 3")), "{log}");
    assert_eq!(state(&daemon, "web"), "waiting", "web started after a failure");
    dir.write("go", "0");
    wait_done(&daemon, "prep");
    daemon.wait_running("web", None);
    assert_eq!(dir.read("prep.runs").lines().count(), 2);
}

#[test]
fn stopping_a_running_oneshot_signals_its_program_and_the_waiter_records_it() {
    let dir = TestDir::new("os-stop");
    dir.config(&gated_prep());
    let daemon = Daemon::start(&dir);
    let waiter = daemon.wait_started("prep");
    wait_until(secs(5), "prep runs", || dir.read("prep.runs").lines().count() == 1);
    let out = daemon.cli(&["stop", "prep"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("prep: stopped (pid {waiter}, signal 15 (TERM))")), "{out:?}");
    assert!(!alive(waiter));
    assert!(dir.processes().iter().all(|&pid| !cmdline(pid).contains("prep.runs")), "the program outlived its stop");
}
