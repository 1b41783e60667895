//! The daemon as a process: failed spawns, crash loops, the pid file lock,
//! the ways it exits, and what its services inherit from it.

use std::fs;
use std::time::Instant;

use crate::support::*;

/// Starts a daemon whose only service `bad` is `processes` (one table) and
/// waits until its spawn has failed; returns the daemon and `last_exit`.
fn failed_spawn(dir: &TestDir, service: &str) -> (Daemon, String) {
    dir.config(&format!("[[processes]]\nname = \"bad\"\n{service}"));
    let daemon = Daemon::start(dir);
    let mut last_exit = None;
    wait_until(secs(10), "bad has a last_exit", || {
        last_exit = daemon.process("bad").last_exit;
        last_exit.is_some()
    });
    (daemon, last_exit.unwrap())
}

fn assert_spawn_error(daemon: &mut Daemon, last_exit: &str, needles: &[&str]) {
    for needle in needles {
        assert!(last_exit.contains(needle), "last_exit {last_exit:?} should contain {needle:?}");
    }
    assert!(
        !last_exit.contains("exit 127") && !last_exit.contains("exit 126"),
        "the spawn error should be shown, not the exit code: {last_exit:?}"
    );
    let bad = daemon.process("bad");
    assert_ne!(bad.state, "running", "{bad:?}");
    assert!(daemon.is_up(), "the daemon died");
    assert_eq!(daemon.cli(&["status"]).code, 0);
}

#[test]
fn a_missing_program_shows_the_exec_error() {
    let dir = TestDir::new("dp-enoent");
    let (mut daemon, last_exit) = failed_spawn(&dir, "command = \"/nonexistent/prog\"\n");
    assert_spawn_error(&mut daemon, &last_exit, &["No such file or directory", "/nonexistent/prog"]);
}

#[test]
fn a_non_executable_file_shows_the_exec_error() {
    let dir = TestDir::new("dp-eacces");
    dir.write("noexec.sh", "#!/bin/sh\nexec sleep 1000\n");
    let (mut daemon, last_exit) = failed_spawn(&dir, "command = \"./noexec.sh\"\n");
    assert_spawn_error(&mut daemon, &last_exit, &["Permission denied", "noexec.sh"]);
}

#[test]
fn a_missing_working_directory_shows_the_chdir_error() {
    let dir = TestDir::new("dp-chdir");
    let service = "command = \"sleep\"\nargs = [\"1000\"]\nworking_directory = \"no-such-dir\"\n";
    let (mut daemon, last_exit) = failed_spawn(&dir, service);
    assert_spawn_error(&mut daemon, &last_exit, &["chdir", "no-such-dir", "No such file or directory"]);
    assert_eq!(dir.count("sleep 1000"), 0);
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of /proc/PID/stat).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // `fields` starts at field 3 (the state).
    fields[14 - 3].parse::<u64>().unwrap() + fields[15 - 3].parse::<u64>().unwrap()
}

#[test]
fn an_instantly_dying_service_does_not_make_the_daemon_spin() {
    let dir = TestDir::new("dp-spin");
    dir.config("[[processes]]\nname = \"dies\"\ncommand = \"sh\"\nargs = [\"-c\", \"exit 1\"]\n");
    let started = Instant::now();
    let mut daemon = Daemon::start(&dir);
    wait_until(secs(10), "dies has been restarted twice", || daemon.process("dies").restarts >= 2);
    let elapsed = started.elapsed();
    let ticks = cpu_ticks(daemon.pid());
    assert!(elapsed >= std::time::Duration::from_secs(1), "two restarts within {elapsed:?}: no backoff");
    assert!(ticks < 50, "the daemon used {ticks} clock ticks of CPU in {elapsed:?}");
    assert_eq!(daemon.process("dies").last_exit.as_deref(), Some("exit 1"));
    assert!(daemon.is_up());
}

#[test]
fn a_second_start_is_refused_naming_the_first() {
    let dir = TestDir::new("dp-dup");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let mut daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    let started = Instant::now();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "start"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(started.elapsed() < secs(3), "the refusal took {:?}", started.elapsed());
    assert!(out.stderr.starts_with("mi7soft-daemon: error: "), "{out:?}");
    assert!(out.stderr.contains(&format!("already running (pid {})", daemon.pid())), "{out:?}");
    // The first daemon is untouched: same socket, same service.
    assert!(daemon.is_up());
    assert_eq!(daemon.process("svc").pid, Some(pid));
    assert_eq!(dir.count("sleep 1000"), 1, "the refused start ran the service again");
    assert_eq!(fs::read_to_string(dir.join("d.pid")).unwrap().trim(), daemon.pid().to_string());
}

#[test]
fn a_stale_pid_file_is_taken_over_silently() {
    let dir = TestDir::new("dp-stale");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    // A live pid that holds no lock: the lock is the truth, not the number.
    dir.write("d.pid", &format!("{}\n", std::process::id()));
    let daemon = Daemon::start(&dir);
    daemon.wait_running("svc", None);
    assert_eq!(fs::read_to_string(dir.join("d.pid")).unwrap().trim(), daemon.pid().to_string());
    let log = daemon.log();
    assert!(!log.contains("warning") && !log.contains("error"), "{log}");
}

/// Ends a daemon with `how`, then checks it exited 0, left its service
/// running and removed its socket, and that `status` now says so.
fn exits_leaving_services(name: &str, how: impl FnOnce(&Daemon)) {
    let dir = TestDir::new(name);
    dir.script("svc.sh", "exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let mut daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    assert!(dir.join("d.sock").exists());
    how(&daemon);
    assert_eq!(daemon.wait_exit(), 0, "log: {}", daemon.log());
    assert!(!dir.join("d.sock").exists(), "the control socket file is left behind");
    let out = run(&dir.path, &["-c", "daemon.toml", "status"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("daemon not running"), "{out:?}");
    assert!(alive(pid), "the service did not outlive the daemon");
    assert_eq!(dir.count("sleep 1000"), 1);
}

#[test]
fn sigterm_exits_0_and_leaves_services_running() {
    exits_leaving_services("dp-term", |daemon| kill(daemon.pid(), "TERM"));
}

#[test]
fn sigint_exits_0_and_leaves_services_running() {
    exits_leaving_services("dp-int", |daemon| kill(daemon.pid(), "INT"));
}

#[test]
fn shutdown_exits_0_and_leaves_services_running() {
    exits_leaving_services("dp-shut", |daemon| {
        let out = daemon.cli(&["shutdown"]);
        assert_eq!(out.code, 0, "{out:?}");
    });
}

#[test]
fn shutdown_stop_all_stops_every_process_then_exits() {
    let dir = TestDir::new("dp-shutall");
    dir.script("svc.sh", "exec sleep 1000");
    dir.config(
        "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n\n\
         [[processes]]\nname = \"tree\"\ncommand = \"sh\"\nargs = [\"-c\", \"sleep 1004 & sleep 1004 & wait\"]\n",
    );
    let mut daemon = Daemon::start(&dir);
    let svc = daemon.wait_running("svc", None);
    let tree = daemon.wait_running("tree", None);
    let grandchildren = || dir.processes().into_iter().filter(|&pid| cmdline(pid).starts_with("sleep 1004")).count();
    wait_until(secs(5), "both grandchildren run", || grandchildren() == 2);
    wait_until(secs(5), "svc.sh has exec'd sleep", || cmdline(svc).starts_with("sleep 1000"));
    let out = daemon.cli(&["shutdown", "--stop-all"]);
    assert!(!alive(svc) && !alive(tree), "a service outlived shutdown --stop-all: {out:?}");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(daemon.wait_exit(), 0, "log: {}", daemon.log());
    wait_until(secs(2), "no process is left", || dir.processes().is_empty());
    assert!(!dir.join("d.sock").exists(), "the control socket file is left behind");
    let out = run(&dir.path, &["-c", "daemon.toml", "status"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("daemon not running"), "{out:?}");
}

/// The fds a service saw, from `ls -l /proc/self/fd` output: (fd, target),
/// in numeric order.
fn open_fds(listing: &str) -> Vec<(u32, String)> {
    let mut fds: Vec<(u32, String)> = listing
        .lines()
        .filter_map(|line| {
            let (left, target) = line.split_once(" -> ")?;
            Some((left.split_whitespace().last()?.parse().ok()?, target.to_string()))
        })
        .collect();
    fds.sort();
    fds
}

/// The fds this test process would pass to a child it spawns (no
/// FD_CLOEXEC): whatever ran `cargo test` left them open, so the daemon
/// inherits them too. Rust opens its own with O_CLOEXEC.
fn inheritable_fds() -> Vec<u32> {
    let mut fds = Vec::new();
    for entry in fs::read_dir("/proc/self/fdinfo").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let info = fs::read_to_string(entry.path()).unwrap_or_default();
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).map(str::trim).unwrap_or("0");
        if fd > 2 && u32::from_str_radix(flags, 8).is_ok_and(|f| f & 0o2_000_000 == 0) {
            fds.push(fd);
        }
    }
    fds
}

/// Checks a listing: 0 is /dev/null, 1 and 2 are open, and besides them
/// only the directory ls opened to list itself and the fds in `ignore`.
fn assert_no_leaks(listing: &str, ignore: &[u32]) {
    let fds = open_fds(listing);
    let numbers: Vec<u32> = fds.iter().map(|(fd, _)| *fd).collect();
    assert!(numbers.starts_with(&[0, 1, 2]), "{listing}");
    assert_eq!(fds[0].1, "/dev/null", "stdin should be /dev/null: {listing}");
    let ls_dir = fds.iter().filter(|(fd, target)| *fd > 2 && target.ends_with("/fd")).count();
    assert!(ls_dir <= 1, "{listing}");
    let extra: Vec<&(u32, String)> =
        fds[3..].iter().filter(|(fd, target)| !target.ends_with("/fd") && !ignore.contains(fd)).collect();
    assert!(extra.is_empty(), "leaked fds {extra:?} in:\n{listing}");
}

fn fd_listing_services(dir: &TestDir) {
    let body = |out: &str| format!("ls -l /proc/self/fd > {out}.tmp && mv {out}.tmp {out}\nexec sleep 1000");
    dir.script("auto.sh", &body("auto.txt"));
    dir.script("later.sh", &body("later.txt"));
    dir.config(
        "[[processes]]\nname = \"auto\"\ncommand = \"./auto.sh\"\n\n\
         [[processes]]\nname = \"later\"\ncommand = \"./later.sh\"\nautostart = false\n",
    );
}

#[test]
fn services_inherit_none_of_the_daemons_own_fds() {
    let dir = TestDir::new("dp-fds");
    fd_listing_services(&dir);
    // Fds the daemon got from whoever ran the tests are another test's
    // business (below); this one looks for the daemon's own.
    let inherited = inheritable_fds();
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "auto listed its fds", || dir.join("auto.txt").exists());
    assert_no_leaks(&dir.read("auto.txt"), &inherited);
    // Started while clients are connected: their sockets must not leak either.
    let idle = std::os::unix::net::UnixStream::connect(dir.join("d.sock")).unwrap();
    let out = daemon.cli(&["start-process", "later"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "later listed its fds", || dir.join("later.txt").exists());
    drop(idle);
    assert_no_leaks(&dir.read("later.txt"), &inherited);
}

#[test]
fn services_inherit_no_fd_the_daemon_inherited() {
    let dir = TestDir::new("dp-fdinh");
    fd_listing_services(&dir);
    // The daemon is started with fd 7 open (not close-on-exec), as a
    // careless parent would leave it.
    let log = fs::File::create(dir.join("daemon.log")).unwrap();
    let child = std::process::Command::new("sh")
        .args(["-c", "exec 7</dev/null; exec \"$0\" \"$@\""])
        .arg(bin())
        .args(["-c", "daemon.toml", "start"])
        .current_dir(&dir.path)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let daemon = Daemon { dir: dir.path.clone(), child };
    wait_until(secs(10), "auto listed its fds", || dir.join("auto.txt").exists());
    let fds = fs::read_dir(format!("/proc/{}/fd", daemon.pid())).unwrap().count();
    assert!(fs::read_link(format!("/proc/{}/fd/7", daemon.pid())).is_ok(), "the daemon should have fd 7 ({fds} fds)");
    assert_no_leaks(&dir.read("auto.txt"), &[]);
}

/// A root-owned file the attacks below aim at, and what it holds.
const SECRET: &str = "root's secret\n";

#[test]
fn a_link_planted_as_the_state_files_temporary_is_not_written_through() {
    let dir = TestDir::new("dp-state-link");
    let secret = dir.write("secret", SECRET);
    std::os::unix::fs::symlink(&secret, dir.join("d.state.tmp")).unwrap();
    dir.config(&sh_service("svc", "exec sleep 1000", ""));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    wait_until(secs(10), "the state file records svc", || {
        parse_state(&dir.read("d.state"))
            .is_ok_and(|r| r.iter().any(|f| f[0] == "svc" && f[STATE_PID] == pid.to_string()))
    });
    assert_eq!(fs::read_to_string(&secret).unwrap(), SECRET);
    assert!(fs::symlink_metadata(dir.join("d.state")).unwrap().file_type().is_file());
    assert!(!dir.join("d.state.tmp").exists());
}

#[test]
fn a_link_planted_as_the_pid_file_is_refused() {
    let dir = TestDir::new("dp-pid-link");
    let secret = dir.write("secret", SECRET);
    std::os::unix::fs::symlink(&secret, dir.join("d.pid")).unwrap();
    dir.config("");
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "start"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("d.pid: is a symbolic link"), "{out:?}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), SECRET);
}

#[test]
fn pid_and_state_files_in_a_directory_anyone_can_write_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("dp-shared-dir");
    fs::create_dir(dir.join("run")).unwrap();
    fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o777)).unwrap();
    for keys in ["pid_file = \"run/d.pid\"", "pid_file = \"d.pid\"\nstate_file = \"run/d.state\""] {
        dir.write("daemon.toml", &format!("[daemon]\n{keys}\n"));
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", "start"], secs(10));
        assert_eq!(out.code, 1, "{keys}: {out:?}");
        assert!(out.stderr.contains("run is writable by other users (mode 777"), "{keys}: {out:?}");
        assert!(!dir.join("run/d.pid").exists() && !dir.join("run/d.state").exists());
    }
    // The sticky bit keeps others off the daemon's entries: allowed.
    fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o1777)).unwrap();
    dir.write("daemon.toml", "[daemon]\npid_file = \"run/d.pid\"\n");
    let _daemon = Daemon::start(&dir);
}
