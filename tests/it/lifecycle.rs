//! Starting, restarting and stopping services through the real daemon.

use crate::support::*;

#[test]
fn a_killed_service_is_restarted_at_once() {
    let dir = TestDir::new("restart");
    dir.script("svc.sh", "echo started >> starts\nexec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let daemon = Daemon::start(&dir);
    let first = daemon.wait_running("svc", None);
    // Old enough that the restart is immediate, not a crash-loop backoff.
    wait_until(secs(5), "svc has been up for 1s", || daemon.process("svc").uptime_secs >= Some(1));
    kill(first, "KILL");
    let second = daemon.wait_running("svc", Some(first));
    assert_ne!(first, second);
    let p = daemon.process("svc");
    assert_eq!(p.restarts, 1);
    assert_eq!(p.last_exit.as_deref(), Some("signal 9 (KILL)"));
    assert_eq!(dir.count("sleep 1000"), 1);
    assert_eq!(dir.read("starts").lines().count(), 2);
}
