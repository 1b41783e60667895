//! `reload` and SIGHUP: applying an edited config to the running services,
//! and refusing a broken one without touching anything.

use crate::support::*;

fn service(name: &str) -> String {
    format!("[[processes]]\nname = \"{name}\"\ncommand = \"./svc.sh\"\n\n")
}

/// A daemon running `keep` and `gone`.
fn keep_and_gone(dir: &TestDir) -> (Daemon, i32, i32) {
    dir.script("svc.sh", "exec sleep 1000");
    dir.config(&(service("keep") + &service("gone")));
    let daemon = Daemon::start(dir);
    let keep = daemon.wait_running("keep", None);
    let gone = daemon.wait_running("gone", None);
    (daemon, keep, gone)
}

/// After `keep, gone` became `keep, new`: new runs, gone is stopped and
/// forgotten, keep still runs the same process.
fn assert_applied(daemon: &mut Daemon, keep: i32, gone: i32) {
    wait_until(secs(10), "new runs", || daemon.find("new").is_some_and(|p| p.state == "running"));
    wait_until(secs(15), "gone's process has ended", || !alive(gone));
    wait_until(secs(5), "gone has left the status", || daemon.find("gone").is_none());
    assert_eq!(daemon.process("keep").pid, Some(keep), "an unchanged service was restarted");
    assert!(alive(keep));
    let names: Vec<String> = daemon.status().processes.into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["keep", "new"]);
    assert!(daemon.is_up());
}

#[test]
fn reload_applies_added_and_removed_services() {
    let dir = TestDir::new("rl-cmd");
    let (mut daemon, keep, gone) = keep_and_gone(&dir);
    dir.config(&(service("keep") + &service("new")));
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("added (new)") && out.stdout.contains("removed (gone)"), "{out:?}");
    assert_applied(&mut daemon, keep, gone);
}

#[test]
fn sighup_applies_added_and_removed_services() {
    let dir = TestDir::new("rl-hup");
    let (mut daemon, keep, gone) = keep_and_gone(&dir);
    dir.config(&(service("keep") + &service("new")));
    kill(daemon.pid(), "HUP");
    assert_applied(&mut daemon, keep, gone);
}

/// The broken edit: `new` with a misspelt key, at line 15.
fn broken_config(dir: &TestDir) {
    dir.config(&(service("keep") + &service("gone") + "[[processes]]\nname = \"new\"\ncomand = \"./svc.sh\"\n"));
}

fn assert_unchanged(daemon: &mut Daemon, keep: i32, gone: i32) {
    assert!(daemon.is_up(), "a bad config killed the daemon");
    let status = daemon.status();
    let running: Vec<(&str, Option<i32>)> = status.processes.iter().map(|p| (p.name.as_str(), p.pid)).collect();
    assert_eq!(running, [("keep", Some(keep)), ("gone", Some(gone))]);
    assert!(alive(keep) && alive(gone));
}

#[test]
fn reload_refuses_an_invalid_config_and_changes_nothing() {
    let dir = TestDir::new("rl-bad");
    let (mut daemon, keep, gone) = keep_and_gone(&dir);
    let good = dir.read("daemon.toml");
    broken_config(&dir);
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("daemon.toml:15:1: "), "the error should be located: {out:?}");
    assert!(out.stderr.contains("\"comand\""), "{out:?}");
    // The daemon itself refuses it too (the client may have checked first).
    let reply = raw_request(&dir, "reload");
    assert!(reply.lines().last().is_some_and(|l| l.starts_with("err ")), "{reply:?}");
    assert!(reply.contains("daemon.toml:15:1: "), "{reply:?}");
    // Put the old file back only to let the CLI read the socket path.
    dir.write("daemon.toml", &good);
    assert_unchanged(&mut daemon, keep, gone);
    assert_eq!(dir.count("sleep 1000"), 2);
}

#[test]
fn sighup_with_an_invalid_config_changes_nothing() {
    let dir = TestDir::new("rl-badhup");
    let (mut daemon, keep, gone) = keep_and_gone(&dir);
    let good = dir.read("daemon.toml");
    broken_config(&dir);
    kill(daemon.pid(), "HUP");
    wait_until(secs(10), "the daemon logs the rejection", || daemon.log().contains("daemon.toml:15:1: "));
    dir.write("daemon.toml", &good);
    assert_unchanged(&mut daemon, keep, gone);
    // Fixed, it applies.
    dir.config(&(service("keep") + &service("new")));
    kill(daemon.pid(), "HUP");
    assert_applied(&mut daemon, keep, gone);
}

/// One request straight over the control socket; the whole reply.
fn raw_request(dir: &TestDir, line: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(dir.join("d.sock")).unwrap();
    stream.set_read_timeout(Some(secs(10))).unwrap();
    stream.write_all(format!("{line}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply
}

/// Adding `log_file` to a running service makes a reload restart it with a
/// new capture pipe in the same loop pass that reaps it; the poll set of
/// that pass must not be read by position afterwards (it panicked: "index
/// out of bounds: the len is 2 but the index is 2"). Twice, through the
/// socket and through SIGHUP, with output flowing the whole time.
#[test]
fn reload_that_adds_capture_to_a_running_service_keeps_the_daemon_alive() {
    let dir = TestDir::new("rl-cap");
    let chatty = "while :; do echo tick; sleep 0.01; done";
    dir.config(&(sh_service("a", chatty, "log_file = \"a.log\"") + &sh_service("b", chatty, "")));
    let daemon = Daemon::start(&dir);
    let a = daemon.wait_running("a", None);
    let b = daemon.wait_running("b", None);
    dir.config(&(sh_service("a", chatty, "log_file = \"a.log\"") + &sh_service("b", chatty, "log_file = \"b.log\"")));
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    let b2 = daemon.wait_running("b", Some(b));
    wait_until(secs(10), "b's output reaches its new log file", || {
        std::fs::read_to_string(dir.join("b.log")).is_ok_and(|t| t.contains("tick"))
    });
    dir.config(&(sh_service("a", chatty, "log_file = \"a2.log\"") + &sh_service("b", chatty, "log_file = \"b.log\"")));
    kill(daemon.pid(), "HUP");
    wait_until(secs(10), "a's output reaches a2.log", || {
        std::fs::read_to_string(dir.join("a2.log")).is_ok_and(|t| t.contains("tick"))
    });
    assert_eq!(daemon.process("b").pid, Some(b2), "b was restarted by an unrelated edit");
    let status = daemon.status();
    assert!(status.processes.iter().all(|p| p.state == "running"), "{status:?}");
    wait_until(secs(5), "the state file records both", || {
        let state = dir.read("d.state");
        state.lines().any(|l| l.starts_with("a ")) && state.lines().any(|l| l.starts_with("b "))
    });
    let _ = a;
}
