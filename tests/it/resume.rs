//! A new daemon goes on exactly where a killed one was (issue 14, item 4):
//! a service that was starting stays starting and its dependents wait, its
//! ready timeout goes on from where it was, the watchdog is armed again, the
//! STATUS= text is kept, and a service the user stopped stays stopped.
//! Each test SIGKILLs the daemon (dropping its guard) and starts another.

use std::time::Instant;

use crate::support::*;

/// `python3 notify.py MESSAGE...` sends the messages to $NOTIFY_SOCKET.
const NOTIFY_PY: &str = "import os, socket, sys\n\
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
    s.sendto('\\n'.join(sys.argv[1:]).encode(), os.environ['NOTIFY_SOCKET'])\n";

/// A notify service that says READY=1 (and a STATUS=) only once the file
/// `go` exists, with `keys` more.
fn waits_for_go(name: &str, keys: &str) -> String {
    let script = "while [ ! -e go ]; do sleep 0.05; done; python3 notify.py READY=1 STATUS=serving; exec sleep 1000";
    sh_service(name, script, &format!("ready = \"notify\"\n{keys}"))
}

#[test]
fn a_starting_service_stays_starting_and_its_dependents_wait() {
    let dir = TestDir::new("rs-starting");
    dir.write("notify.py", NOTIFY_PY);
    dir.config(
        &(waits_for_go("db", "ready_timeout = 60") + &sh_service("web", "exec sleep 1000", "depends_on = [\"db\"]")),
    );
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "db is starting", || daemon.find("db").is_some_and(|p| p.state == "starting"));
    let db = daemon.process("db").pid.unwrap();
    drop(daemon);

    let daemon = Daemon::start(&dir);
    let p = daemon.process("db");
    assert_eq!((p.state.as_str(), p.pid), ("starting", Some(db)), "{}", daemon.log());
    holds_for(secs(1), "web waits for db", || daemon.process("web").state == "waiting");
    dir.write("go", "");
    wait_until(secs(5), "db becomes ready", || daemon.process("db").state == "running");
    daemon.wait_running("web", None);
    assert_eq!(daemon.process("db").pid, Some(db));
    assert_eq!(daemon.process("db").status_text.as_deref(), Some("serving"));
    assert_eq!(dir.count("sleep 1000"), 2);
}

#[test]
fn the_ready_timeout_goes_on_from_where_it_was() {
    let dir = TestDir::new("rs-timeout");
    dir.write("notify.py", NOTIFY_PY);
    dir.config(&waits_for_go("svc", "ready_timeout = 6"));
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "svc is starting", || daemon.find("svc").is_some_and(|p| p.state == "starting"));
    let started = Instant::now();
    wait_until(secs(10), "svc has waited 3 s of its 6", || started.elapsed() >= secs(3));
    drop(daemon);

    let daemon = Daemon::start(&dir);
    let adopted = Instant::now();
    wait_until(secs(10), "the ready timeout fires", || daemon.log().contains("svc: not ready within 6s: stopping"));
    // From scratch it would have fired 6 s after adoption; it went on from
    // the 3 s already waited.
    assert!(adopted.elapsed() < secs(5), "the timeout started over: {:?} after adoption", adopted.elapsed());
}

#[test]
fn the_watchdog_is_armed_again_after_adoption() {
    let dir = TestDir::new("rs-watchdog");
    dir.write("notify.py", NOTIFY_PY);
    let script = "python3 notify.py READY=1; while :; do python3 notify.py WATCHDOG=1; sleep 0.2; done";
    dir.config(&sh_service("svc", script, "ready = \"notify\"\nwatchdog_sec = 2"));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    drop(daemon);
    // Hung while the daemon was away: no more pings.
    kill(pid, "STOP");
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.process("svc").pid, Some(pid));
    wait_until(secs(10), "the watchdog stops the hung service", || {
        daemon.log().contains("svc: no WATCHDOG=1 for 2s: stopping")
    });
    daemon.wait_running("svc", Some(pid));
}

#[test]
fn status_text_and_a_users_stop_survive_the_daemon() {
    let dir = TestDir::new("rs-stopped");
    dir.write("notify.py", NOTIFY_PY);
    dir.write("go", "");
    dir.config(&(waits_for_go("svc", "") + &sh_service("other", "exec sleep 1001", "")));
    let daemon = Daemon::start(&dir);
    let svc = daemon.wait_running("svc", None);
    let other = daemon.wait_running("other", None);
    wait_until(secs(5), "svc's STATUS= is shown", || daemon.process("svc").status_text.as_deref() == Some("serving"));
    let out = daemon.cli(&["stop", "other"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!alive(other));
    drop(daemon);

    let daemon = Daemon::start(&dir);
    let p = daemon.process("svc");
    assert_eq!((p.pid, p.status_text.as_deref()), (Some(svc), Some("serving")), "{p:?}");
    holds_for(secs(1), "other stays stopped", || daemon.process("other").state == "stopped");
    assert_eq!(dir.count("sleep 1001"), 0, "a stopped service was started again");
    let out = daemon.cli(&["start-process", "other"]);
    assert_eq!(out.code, 0, "{out:?}");
    daemon.wait_running("other", None);
}

/// The notify socket outlives the daemon (the fd holder keeps it): a
/// READY=1 sent while no daemon runs waits in it for the next one, and a
/// client that connected once (as PyPI's sdnotify does) keeps working.
#[test]
fn notifications_sent_while_the_daemon_is_away_reach_the_next_one() {
    let dir = TestDir::new("rs-gap");
    // Connects once; sends STATUS=n for every line of `say` it has not
    // sent yet, READY=1 when the line is `ready`.
    let client = "import os, socket, time\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
        s.connect(os.environ['NOTIFY_SOCKET'])\n\
        sent = 0\n\
        while True:\n\
        \x20   lines = open('say').read().split() if os.path.exists('say') else []\n\
        \x20   for line in lines[sent:]:\n\
        \x20       s.send(b'READY=1' if line == 'ready' else ('STATUS=' + line).encode())\n\
        \x20       open('sent', 'w').write(str(len(lines)))\n\
        \x20   sent = len(lines)\n\
        \x20   time.sleep(0.05)\n";
    dir.write("client.py", client);
    dir.config(&sh_service("svc", "exec python3 client.py", "ready = \"notify\"\nready_timeout = 60"));
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "svc is starting", || daemon.find("svc").is_some_and(|p| p.state == "starting"));
    let pid = daemon.process("svc").pid.unwrap();
    dir.write("say", "one\n");
    wait_until(secs(5), "STATUS=one is heard", || daemon.process("svc").status_text.as_deref() == Some("one"));
    drop(daemon);

    dir.write("say", "one\nready\ntwo\n");
    wait_until(secs(5), "the client sent READY=1 and STATUS=two", || dir.read("sent") == "3");
    assert!(alive(pid), "the client died sending while the daemon was away");
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "the READY=1 sent in the gap is heard", || daemon.process("svc").state == "running");
    wait_until(secs(5), "STATUS=two is heard", || daemon.process("svc").status_text.as_deref() == Some("two"));
    assert_eq!(daemon.process("svc").pid, Some(pid));
    dir.write("say", "one\nready\ntwo\nthree\n");
    wait_until(secs(5), "the once-connected client still reaches the daemon", || {
        daemon.process("svc").status_text.as_deref() == Some("three")
    });
}
