//! depends_on with real processes: a dependent waits (`waiting`) until what
//! it depends on is ready, starting it pulls in a stopped dependency,
//! stopping everything goes dependents first, restart_dependents, and the
//! config errors for cycles and unknown names.

use crate::support::*;

/// The times (ns since the epoch) appended to `file`, one a line.
fn times(dir: &TestDir, file: &str) -> Vec<i128> {
    dir.read(file).lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// A service that appends its start time to `NAME.starts` and sleeps.
fn sleeper(name: &str, keys: &str) -> String {
    sh_service(name, &format!("date +%s%N >> {name}.starts; exec sleep 1000"), keys)
}

#[test]
fn a_dependent_waits_until_its_dependency_is_ready() {
    let dir = TestDir::new("dep-order");
    dir.write("listen.py", LISTEN_PY);
    let port = free_port();
    // The dependent comes first in the config, so config order alone would
    // start it first. db is ready once its port opens, 1 s after its start.
    let db = sh_service(
        "db",
        &format!("exec python3 listen.py {port} 1"),
        &format!("ready = {{ tcp = \"127.0.0.1:{port}\" }}"),
    );
    dir.config(&(sleeper("web", "depends_on = [\"db\"]") + &db));
    let daemon = Daemon::start(&dir);
    wait_until(secs(5), "web is waiting while db is starting", || {
        let status = daemon.status();
        let state = |name: &str| status.processes.iter().find(|p| p.name == name).map(|p| (p.state.clone(), p.pid));
        matches!(state("web"), Some((s, None)) if s == "waiting")
            && matches!(state("db"), Some((s, Some(_))) if s == "starting")
    });
    assert!(times(&dir, "web.starts").is_empty(), "web ran while waiting");

    daemon.wait_running("web", None);
    let (opened, started) = (times(&dir, "listening"), times(&dir, "web.starts"));
    assert_eq!((opened.len(), started.len()), (1, 1), "{opened:?} {started:?}");
    assert!(started[0] > opened[0], "web started at {}, before db's port opened at {}", started[0], opened[0]);
    assert_eq!(daemon.process("db").state, "running");
}

#[test]
fn starting_a_dependent_pulls_in_its_stopped_dependency() {
    let dir = TestDir::new("dep-pull");
    dir.config(
        &(sleeper("db", "autostart = false\nmin_uptime = 0.5")
            + &sleeper("web", "autostart = false\ndepends_on = [\"db\"]")),
    );
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.process("db").state, "stopped");
    assert_eq!(daemon.process("web").state, "stopped");

    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "start-process", "web"], secs(15));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(daemon.process("web").state, "running", "start-process answered before web was ready");
    assert_eq!(daemon.process("db").state, "running");
    let (db, web) = (times(&dir, "db.starts"), times(&dir, "web.starts"));
    assert_eq!((db.len(), web.len()), (1, 1), "{db:?} {web:?}");
    // db is ready after its min_uptime of 0.5 s.
    let gap = (web[0] - db[0]) as f64 / 1e9;
    assert!(gap >= 0.4, "web started {gap} s after db, before db was ready");
}

/// web depends on app, which depends on db; listed dependents first, so the
/// reverse of config order would stop db first. web takes 0.5 s to stop and
/// then writes `web.down`; app and db write `NAME.term` when told to stop.
fn chain(dir: &TestDir) {
    let keys = |deps: &str| format!("min_uptime = 0.2\ndepends_on = [{deps}]");
    dir.config(
        &(sh_service(
            "web",
            "trap 'sleep 0.5; date +%s%N > web.down; exit 0' TERM; sleep 1000 & wait",
            &keys("\"app\""),
        ) + &sh_service("app", "trap 'date +%s%N > app.term; exit 0' TERM; sleep 1000 & wait", &keys("\"db\""))
            + &sh_service("db", "trap 'date +%s%N > db.term; exit 0' TERM; sleep 1000 & wait", &keys(""))),
    );
}

/// Each service was stopped only once the one depending on it was down.
fn assert_stopped_in_dependency_order(dir: &TestDir) {
    let (web, app, db) = (times(dir, "web.down"), times(dir, "app.term"), times(dir, "db.term"));
    assert_eq!((web.len(), app.len(), db.len()), (1, 1, 1), "web {web:?} app {app:?} db {db:?}");
    assert!(web[0] < app[0], "app was stopped before web was down: web {web:?} app {app:?}");
    assert!(app[0] < db[0], "db was stopped before app: app {app:?} db {db:?}");
}

#[test]
fn stop_all_stops_dependents_before_their_dependencies() {
    let dir = TestDir::new("dep-stopall");
    chain(&dir);
    let daemon = Daemon::start(&dir);
    daemon.wait_running("web", None);
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "stop", "--all"], secs(20));
    assert_eq!(out.code, 0, "{out:?}");
    for name in ["web", "app", "db"] {
        assert_eq!(daemon.process(name).state, "stopped", "{name}");
    }
    assert_stopped_in_dependency_order(&dir);
}

#[test]
fn shutdown_stop_all_stops_dependents_before_their_dependencies() {
    let dir = TestDir::new("dep-shutdown");
    chain(&dir);
    let mut daemon = Daemon::start(&dir);
    daemon.wait_running("web", None);
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "shutdown", "--stop-all"], secs(20));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(daemon.wait_exit(), 0);
    assert_stopped_in_dependency_order(&dir);
    assert_eq!(dir.processes(), Vec::<i32>::new(), "services outlived shutdown --stop-all");
}

/// `check` and `start` refuse the config with exit status 1, a first line
/// `mi7soft-daemon: error: daemon.toml:LINE:COL: ` with LINE in `lines`,
/// containing `needle`; nothing is started.
fn assert_refused(dir: &TestDir, lines: std::ops::RangeInclusive<usize>, needle: &str) {
    for command in ["check", "start"] {
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        let first = out.stderr.lines().next().unwrap_or_default();
        let rest = first.strip_prefix("mi7soft-daemon: error: daemon.toml:").unwrap_or_default();
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().and_then(|l| l.parse::<usize>().ok());
        let column = parts.next().and_then(|c| c.parse::<usize>().ok());
        let message = parts.next().unwrap_or_default();
        assert!(
            line.is_some_and(|l| lines.contains(&l)) && column.is_some() && message.starts_with(' '),
            "{command}: expected daemon.toml:LINE:COL with LINE in {lines:?}: {out:?}"
        );
        assert!(first.contains(needle), "{command}: first line should contain {needle:?}: {out:?}");
    }
    assert_eq!(dir.processes(), Vec::<i32>::new(), "a refused config started processes");
    assert!(!dir.join("a.starts").exists() && !dir.join("b.starts").exists(), "a refused config ran a service");
}

#[test]
fn a_dependency_cycle_is_a_config_error_naming_it() {
    let dir = TestDir::new("dep-cycle");
    // [daemon] takes lines 1 to 4; "a" is lines 5 to 9, "b" 11 to 15.
    dir.config(&(sleeper("a", "depends_on = [\"b\"]") + &sleeper("b", "depends_on = [\"a\"]")));
    assert_refused(&dir, 5..=9, "depends_on: dependency cycle a -> b -> a");
}

#[test]
fn an_unknown_dependency_is_a_config_error_naming_it() {
    let dir = TestDir::new("dep-unknown");
    dir.config(&(sleeper("a", "") + &sleeper("b", "depends_on = [\"postgres\"]")));
    assert_refused(&dir, 11..=15, "[[processes]] \"b\": depends_on: unknown process \"postgres\"");
}

#[test]
fn restarting_a_dependency_restarts_only_dependents_with_restart_dependents() {
    let dir = TestDir::new("dep-restart");
    dir.write("listen.py", LISTEN_PY);
    let port = free_port();
    // db is ready 0.5 s after each start, once its port opens.
    let db = sh_service(
        "db",
        &format!("exec python3 listen.py {port} 0.5"),
        &format!("ready = {{ tcp = \"127.0.0.1:{port}\" }}"),
    );
    let with = sleeper("follows", "min_uptime = 0.2\ndepends_on = [\"db\"]\nrestart_dependents = true");
    let without = sleeper("stays", "min_uptime = 0.2\ndepends_on = [\"db\"]");
    dir.config(&(db + &with + &without));
    let daemon = Daemon::start(&dir);
    let db = daemon.wait_running("db", None);
    let follows = daemon.wait_running("follows", None);
    let stays = daemon.wait_running("stays", None);

    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "restart", "db"], secs(20));
    assert_eq!(out.code, 0, "{out:?}");
    // restart answers once db is ready again: its new port is open.
    let p = daemon.process("db");
    assert!(p.state == "running" && p.pid != Some(db), "{p:?}");
    assert_eq!(times(&dir, "listening").len(), 2, "restart answered before db's port opened again");
    daemon.wait_running("follows", Some(follows));
    let (opened, started) = (times(&dir, "listening"), times(&dir, "follows.starts"));
    assert_eq!((opened.len(), started.len()), (2, 2), "{opened:?} {started:?}");
    assert!(started[1] > opened[1], "follows restarted before db was ready again: {started:?} {opened:?}");

    let p = daemon.process("stays");
    assert_eq!((p.state.as_str(), p.pid, p.restarts), ("running", Some(stays), 0), "{p:?}");
    assert!(alive(stays));
    assert_eq!(times(&dir, "stays.starts").len(), 1);
}
