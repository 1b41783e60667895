//! The init-system integration under cross/: the sysvinit/busybox script
//! driven for real under busybox sh; the procd script under busybox sh with
//! recording stand-ins for rc.common and procd.sh; the inittab under real
//! busybox init, booted in a PID and mount namespace; the daemon as PID 1
//! of a container; and what the daemon does about directories and paths
//! (made at start, reported by `check`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::*;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs the sysvinit script under busybox sh with PROG and CONF pointing at
/// the binary under test and the test's config.
fn init_script(dir: &TestDir, action: &str) -> Output {
    let out = Command::new("busybox")
        .arg("sh")
        .arg(repo("cross/sysvinit/mi7soft-daemon"))
        .arg(action)
        .env("PROG", bin())
        .env("CONF", dir.join("daemon.toml"))
        // This machine's own inittab must not make init own this daemon.
        .env("INITTAB", dir.join("no-inittab"))
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .output()
        .expect("busybox must be installed (Debian: busybox-static; .ci/run installs it)");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Kills the detached daemon (which runs in `/`, out of TestDir's sight).
struct PidFileGuard(PathBuf);

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0).ok().and_then(|s| s.trim().parse::<i32>().ok()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
}

#[test]
fn the_sysvinit_script_works_under_busybox_sh() {
    let dir = TestDir::new("sysvinit");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1021\"]\n");
    let _guard = PidFileGuard(dir.join("d.pid"));
    let status = |dir: &TestDir| init_script(dir, "status");

    assert_eq!(status(&dir).code, 3, "status before start");
    let out = init_script(&dir, "start");
    assert_eq!(out.code, 0, "start: {out:?}");
    assert_eq!(status(&dir).code, 0);
    wait_until(secs(5), "svc runs", || dir.count("sleep 1021") == 1);
    let service = dir.processes().into_iter().find(|&p| cmdline(p).contains("sleep 1021")).unwrap();
    let first_daemon = std::fs::read_to_string(dir.join("d.pid")).unwrap();

    // start again: already running is success, and nothing is started twice.
    assert_eq!(init_script(&dir, "start").code, 0);
    assert_eq!(dir.count("sleep 1021"), 1);

    // restart replaces the daemon only; the service is adopted, not restarted.
    let out = init_script(&dir, "restart");
    assert_eq!(out.code, 0, "restart: {out:?}");
    assert_ne!(std::fs::read_to_string(dir.join("d.pid")).unwrap(), first_daemon);
    assert!(alive(service) && cmdline(service).contains("sleep 1021"), "restart must leave the service running");
    let out = status(&dir);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains(&service.to_string()), "adopted with its pid: {}", out.stdout);

    let out = init_script(&dir, "reload");
    assert_eq!(out.code, 0, "reload: {out:?}");

    let out = init_script(&dir, "stop");
    assert_eq!(out.code, 0, "stop: {out:?}");
    // By command line, not by pid: a busy machine may reuse the pid at once.
    assert_eq!(dir.count("sleep 1021"), 0, "stop must stop the services");
    assert_eq!(status(&dir).code, 3, "status after stop");
    let out = init_script(&dir, "stop");
    assert_eq!((out.code, out.stdout.as_str(), out.stderr.as_str()), (0, "", ""), "stop when stopped is quiet success");
    assert_eq!(init_script(&dir, "bogus").code, 2);
}

#[test]
fn the_procd_init_script_and_inittab_line_are_well_formed() {
    for script in ["cross/openwrt/files/mi7soft-daemon.init", "cross/sysvinit/mi7soft-daemon"] {
        let status = Command::new("busybox").args(["sh", "-n"]).arg(repo(script)).status().unwrap();
        assert!(status.success(), "{script}: syntax error");
    }
    let init = std::fs::read_to_string(repo("cross/openwrt/files/mi7soft-daemon.init")).unwrap();
    assert!(init.contains("USE_PROCD=1"));
    let inittab = std::fs::read_to_string(repo("cross/sysvinit/inittab")).unwrap();
    assert!(inittab.lines().any(|l| l.starts_with("::respawn:") && l.ends_with(" start")));
    assert!(inittab.lines().any(|l| l.starts_with("::shutdown:") && l.ends_with(" shutdown --stop-all")));
    // The packaged config is a valid config.
    let out = run(&repo("cross"), &["-c", "mi7soft-daemon.toml", "check"]);
    assert_eq!(out.code, 0, "{out:?}");
}

/// rc.common's dispatch for a procd script (openwrt/openwrt,
/// package/base-files/files/etc/rc.common), with every procd.sh function a
/// stand-in that records its call, one line each, in `$CALLS`.
const RC_COMMON: &str = r#"
initscript=$1
action=$2
shift 2
rec() { echo "$*" >> "$CALLS"; }
start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }
restart() { trap '' TERM; stop "$@"; start "$@"; }
. "$initscript"
[ -n "$USE_PROCD" ] || exit 99
procd_open_service() { rec procd_open_service "$@"; }
procd_close_service() { service_triggers; rec procd_close_service "$@"; }
procd_open_instance() { rec procd_open_instance "$@"; }
procd_set_param() { rec procd_set_param "$@"; }
procd_close_instance() { rec procd_close_instance "$@"; }
procd_send_signal() { rec procd_send_signal "$@"; }
procd_kill() { rec procd_kill "$@"; }
procd_add_reload_trigger() { rec procd_add_reload_trigger "$@"; }
rc_procd() {
	procd_open_service "$(basename "$initscript")" "$initscript"
	"$@"
	procd_close_service set
}
start() { rc_procd start_service "$@"; }
stop() { stop_service "$@"; procd_kill "$(basename "$initscript")" "$1"; }
reload() {
	if eval "type reload_service" 2>/dev/null >/dev/null; then
		reload_service "$@"
	else
		start
	fi
}
$action "$@"
"#;

/// Runs the procd script's `action` under busybox sh and the stand-in
/// rc.common; returns the recorded procd calls.
fn procd_calls(dir: &TestDir, action: &str) -> Vec<String> {
    let rc = dir.write("rc.common", RC_COMMON);
    let calls = dir.join(&format!("calls-{action}"));
    let init = dir.join("mi7soft-daemon");
    std::fs::copy(repo("cross/openwrt/files/mi7soft-daemon.init"), &init).unwrap();
    let out = Command::new("busybox").arg("sh").arg(&rc).arg(&init).arg(action).env("CALLS", &calls).output().unwrap();
    assert!(out.status.success(), "{action}: {out:?}");
    std::fs::read_to_string(&calls).unwrap_or_default().lines().map(|l| l.trim_end().to_string()).collect()
}

#[test]
fn the_procd_script_reloads_by_sighup_and_respawns_with_the_system_defaults() {
    let dir = TestDir::new("procd");
    let start = procd_calls(&dir, "start");
    let params: Vec<&str> = start.iter().filter_map(|c| c.strip_prefix("procd_set_param ")).collect();
    assert_eq!(
        params,
        [
            "command /usr/sbin/mi7soft-daemon -c /etc/mi7soft-daemon.toml start",
            // Bare: procd's defaults, as OpenWrt's packages do.
            "respawn",
            // Checked by checksum: an edited config is a changed instance...
            "file /etc/mi7soft-daemon.toml",
            // ...which procd then signals instead of restarting it.
            "reload_signal HUP",
            "stdout 1",
            "stderr 1",
        ],
        "{start:?}"
    );
    assert!(start[0].starts_with("procd_open_service mi7soft-daemon "), "{start:?}");
    assert!(
        !start.iter().any(|c| c.starts_with("procd_add_reload_trigger")),
        "the config is no UCI package: {start:?}"
    );

    // reload sends SIGHUP (procd_send_signal's default) even when the file
    // did not change, and defines no instance anew: nothing restarts.
    assert_eq!(procd_calls(&dir, "reload"), ["procd_send_signal mi7soft-daemon"]);

    // stop: the daemon stops everything (quietly if it is down), then procd
    // forgets the instance.
    assert_eq!(procd_calls(&dir, "stop"), ["procd_kill mi7soft-daemon"]);
}

/// Kills a namespace's init (and with it everything in the namespace) and
/// reaps the `unshare` that runs it, however the test ends.
struct Namespace {
    unshare: std::process::Child,
}

impl Namespace {
    /// The host pid of the namespace's PID 1: `unshare --fork`'s child.
    fn init_pid(&self) -> Option<i32> {
        let pid = self.unshare.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// Runs `sh -c script` inside the namespace (its pids, its root).
    fn sh(&self, script: &str) -> Output {
        let Some(init) = self.init_pid() else {
            return Output { code: -1, stdout: String::new(), stderr: "the namespace's init is not running".into() };
        };
        let init = init.to_string();
        let out = Command::new("nsenter")
            .args(["-t", &init, "--pid", "--mount", "--root", "--wd=/", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The daemon's status document inside the namespace, if one answers.
    fn status(&self) -> Option<Status> {
        let out = self.sh("mi7soft-daemon -c /etc/mi7soft-daemon.toml status --json");
        (out.code == 0).then(|| nanoserde::DeJson::deserialize_json(out.stdout.trim()).unwrap())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(init) = self.init_pid() {
            let _ = Command::new("kill").args(["-KILL", &init.to_string()]).status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// A root directory for a chroot: busybox (static) with its applets, the
/// binary under test with the libraries it links, and /dev/null.
fn busybox_root(dir: &TestDir) -> PathBuf {
    let root = dir.join("root");
    for sub in ["bin", "sbin", "usr/sbin", "etc/init.d", "dev", "proc", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let busybox =
        String::from_utf8(Command::new("sh").args(["-c", "command -v busybox"]).output().unwrap().stdout).unwrap();
    std::fs::copy(busybox.trim(), root.join("bin/busybox")).unwrap();
    let list = Command::new("busybox").arg("--list").output().unwrap().stdout;
    for applet in String::from_utf8(list).unwrap().lines().filter(|a| *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
    }
    std::os::unix::fs::symlink("../bin/busybox", root.join("sbin/init")).unwrap();
    std::fs::copy(bin(), root.join("usr/sbin/mi7soft-daemon")).unwrap();
    let ldd = Command::new("ldd").arg(bin()).output().unwrap().stdout;
    for lib in String::from_utf8(ldd).unwrap().split_whitespace().filter(|w| w.starts_with('/')) {
        let target = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(lib, target).unwrap();
    }
    let status = Command::new("mknod").arg(root.join("dev/null")).args(["c", "1", "3"]).status().unwrap();
    assert!(status.success());
    root
}

/// A service for busybox sh that records its stop signal in /tmp/TERM-NAME
/// and carries `tag` in its command line.
fn trapping_service(name: &str, tag: &str) -> String {
    format!(
        "\n[[processes]]\nname = \"{name}\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"trap 'echo term >> /tmp/TERM-{name}; exit 0' TERM; sleep 100000 & wait\", \"{tag}\"]\n"
    )
}

#[test]
fn busybox_init_owns_the_supervisor_and_the_script_only_talks_to_it() {
    let dir = TestDir::new("bbinit");
    let root = busybox_root(&dir);
    let tag = format!("mi7-bbinit-{}", std::process::id());
    std::fs::copy(repo("cross/sysvinit/inittab"), root.join("etc/inittab")).unwrap();
    std::fs::copy(repo("cross/sysvinit/mi7soft-daemon"), root.join("etc/init.d/mi7soft-daemon")).unwrap();
    let packaged = std::fs::read_to_string(repo("cross/mi7soft-daemon.toml")).unwrap();
    let conf = root.join("etc/mi7soft-daemon.toml");
    std::fs::write(&conf, format!("{packaged}{}", trapping_service("svc", &format!("{tag}-svc")))).unwrap();
    let count = |what: &str| {
        let needle = format!("{tag}-{what}");
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|&pid| cmdline(pid).contains(&needle) && !is_zombie(pid))
            .count()
    };
    let terms =
        |name: &str| std::fs::read_to_string(root.join(format!("tmp/TERM-{name}"))).unwrap_or_default().lines().count();

    let log = std::fs::File::create(dir.join("init.log")).unwrap();
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount"])
        .arg(format!("--mount-proc={}", root.join("proc").display()))
        .arg("chroot")
        .arg(&root)
        .arg("/sbin/init")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let ns = Namespace { unshare };
    let init_log = || std::fs::read_to_string(dir.join("init.log")).unwrap_or_default();

    // Boot: init starts the supervisor, which starts the service.
    let mut status = None;
    wait_until(secs(15), "the supervisor init started runs svc", || {
        status = ns.status().filter(|s| s.processes.iter().any(|p| p.state == "running"));
        status.is_some()
    });
    let status = status.unwrap();
    let (first_daemon, svc) = (status.daemon.pid, status.processes[0].pid.unwrap());

    // kill -HUP reloads: a service added to the config starts.
    std::fs::write(
        &conf,
        format!("{}{}", std::fs::read_to_string(&conf).unwrap(), trapping_service("two", &format!("{tag}-two"))),
    )
    .unwrap();
    assert_eq!(ns.sh(&format!("kill -HUP {first_daemon}")).code, 0);
    wait_until(secs(10), "HUP started the added service", || count("two") == 1);

    // kill -9: init respawns the supervisor, which adopts (same pids).
    assert_eq!(ns.sh(&format!("kill -9 {first_daemon}")).code, 0);
    let mut second = None;
    wait_until(secs(10), "init respawned the supervisor", || {
        second = ns.status().map(|s| s.daemon.pid).filter(|&p| p != first_daemon);
        second.is_some()
    });
    let adopted = ns.status().unwrap();
    assert_eq!(adopted.processes.iter().find(|p| p.name == "svc").unwrap().pid, Some(svc), "adopted, not restarted");
    assert_eq!((count("svc"), count("two")), (1, 1), "none doubled");

    let script = |action: &str| ns.sh(&format!("/etc/init.d/mi7soft-daemon {action}"));
    assert_eq!(script("status").code, 0);

    // stop: every service stops with its stop signal; the supervisor, init's,
    // stays, and nothing starts them again.
    let out = script("stop");
    assert_eq!(out.code, 0, "stop: {out:?}");
    assert_eq!((count("svc"), count("two"), terms("svc"), terms("two")), (0, 0, 1, 1), "stop: {out:?}");
    holds_for(secs(2), "stopped services stay stopped, the supervisor stays", || {
        count("svc") == 0 && ns.status().is_some_and(|s| Some(s.daemon.pid) == second)
    });
    let out = script("stop");
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "stop again");

    // start: the services run again, once each, under a supervisor init runs.
    let out = script("start");
    assert_eq!(out.code, 0, "start: {out:?}");
    wait_until(secs(10), "start started the services", || count("svc") == 1 && count("two") == 1);
    let out = script("start");
    assert_eq!(out.code, 0, "start when started: {out:?}");
    let third = ns.status().unwrap();
    let svc = third.processes.iter().find(|p| p.name == "svc").unwrap().pid.unwrap();

    // restart: only the supervisor is replaced, by init; no second copy
    // holds the pid file, so init's respawn never fails.
    let out = script("restart");
    assert_eq!(out.code, 0, "restart: {out:?}");
    let fourth = ns.status().unwrap();
    assert_ne!(fourth.daemon.pid, third.daemon.pid);
    assert_eq!(fourth.processes.iter().find(|p| p.name == "svc").unwrap().pid, Some(svc), "restart adopts");
    holds_for(secs(2), "one supervisor, which init leaves alone", || {
        ns.status().is_some_and(|s| s.daemon.pid == fourth.daemon.pid)
    });
    assert!(!init_log().contains("already running"), "{}", init_log());
    assert_eq!(script("reload").code, 0);
    assert_eq!((count("svc"), count("two")), (1, 1));

    // Reboot: init runs the ::shutdown: line, which stops every service
    // with its stop signal, before it kills what is left.
    let (svc_terms, two_terms) = (terms("svc"), terms("two"));
    kill(ns.init_pid().unwrap(), "TERM");
    let mut ns = ns;
    wait_until(secs(20), "the namespace's init has ended", || ns.unshare.try_wait().unwrap().is_some());
    assert_eq!(
        (terms("svc"), terms("two")),
        (svc_terms + 1, two_terms + 1),
        "graceful stop at shutdown:\n{}",
        init_log()
    );
    assert_eq!(count("svc") + count("two"), 0);
}

#[test]
fn as_pid_1_term_stops_every_service_and_orphans_are_reaped() {
    let dir = TestDir::new("pid1");
    // `web` depends on `db`, so it is stopped first, with its own
    // stop_signal. Its orphan (a grandchild whose parent exits at once)
    // is inherited by PID 1, the daemon, which must reap it.
    let mut config = sh_service("db", "trap 'echo db >> stopped; exit 0' TERM; sleep 100000 & wait", "");
    config += &sh_service(
        "web",
        "(sh -c 'sleep 0.3; echo gone > orphan' &); trap 'echo web >> stopped; exit 0' INT; sleep 100000 & wait",
        "stop_signal = \"INT\"\ndepends_on = [\"db\"]",
    );
    dir.config(&config);
    let mut command = Command::new("unshare");
    command.args(["--pid", "--fork", "--mount-proc"]).arg(bin()).args(["-c", "daemon.toml", "start"]);
    let mut daemon = Daemon::launch(&dir, command);
    let mut pid1 = 0;
    wait_until(secs(10), "the daemon runs as PID 1", || {
        let children = std::fs::read_to_string(format!("/proc/{}/task/{0}/children", daemon.pid())).unwrap_or_default();
        pid1 = children.trim().parse().unwrap_or(0);
        pid1 != 0
    });
    wait_until(secs(10), "both services run", || dir.read("daemon.log").matches(": started (pid").count() == 2);
    wait_until(secs(10), "the orphan ended and was reaped", || dir.read("orphan") == "gone\n" && zombies_of(pid1) == 0);
    holds_for(secs(1), "no zombie is left to PID 1", || zombies_of(pid1) == 0);

    kill(pid1, "TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    assert_eq!(dir.read("stopped"), "web\ndb\n", "each got its stop_signal, dependents first: {}", daemon.log());
    assert!(daemon.log().contains("as PID 1: stopping every service"), "{}", daemon.log());
}

/// How many zombie children `parent` has.
fn zombies_of(parent: i32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let mut fields = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace()).into_iter().flatten();
            fields.next() == Some("Z") && fields.next().and_then(|p| p.parse().ok()) == Some(parent)
        })
        .count()
}

#[test]
fn missing_directories_are_made_at_start_and_on_reload() {
    let dir = TestDir::new("mkdirs");
    let daemon_table = "[daemon]\npid_file = \"run/a/d.pid\"\ncontrol_socket = \"sock/d.sock\"\nstate_file = \"state/b/d.state\"\nlog_file = \"log/d.log\"\n\n";
    let service =
        |log: &str| sh_service("svc", "while :; do echo hello; sleep 0.1; done", &format!("log_file = \"{log}\""));
    dir.write("daemon.toml", &format!("{daemon_table}{}", service("logs/one/svc.log")));
    let out = run(&dir.path, &["-c", "daemon.toml", "-d", "start"]);
    assert_eq!(out.code, 0, "{out:?}");
    for made in ["run/a", "sock", "state/b", "log", "logs/one"] {
        let meta = std::fs::metadata(dir.join(made)).unwrap_or_else(|e| panic!("{made}: {e}"));
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o755, "{made}");
    }
    wait_until(secs(10), "the service's output is captured", || dir.read("logs/one/svc.log").contains("hello"));
    dir.write("daemon.toml", &format!("{daemon_table}{}", service("logs/two/deeper/svc.log")));
    let out = run(&dir.path, &["-c", "daemon.toml", "reload"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "output goes to the new log", || dir.read("logs/two/deeper/svc.log").contains("hello"));
    assert_eq!(run(&dir.path, &["-c", "daemon.toml", "shutdown", "--stop-all"]).code, 0);
}

#[test]
fn check_reports_paths_that_cannot_work() {
    let dir = TestDir::new("checkpaths");
    dir.write("plain", "");
    std::fs::create_dir(dir.join("ro")).unwrap();
    let config = "[daemon]\npid_file = \"plain/d.pid\"\n\n[[processes]]\nname = \"a\"\ncommand = \"true\"\nworking_directory = \"nowhere\"\nlog_file = \"ro/sub/a.log\"\n";
    dir.write("daemon.toml", config);
    // A read-only tmpfs on `ro`, in a mount namespace of this check alone.
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", "mount -t tmpfs -o ro tmpfs ro && exec \"$0\" -c daemon.toml check"])
        .arg(bin())
        .current_dir(&dir.path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let plain = dir.join("plain");
    for expected in [
        format!(
            "daemon.toml:2:12: [daemon] pid_file: {}/d.pid: {} is not a directory",
            plain.display(),
            plain.display()
        ),
        format!(
            "daemon.toml:7:21: [[processes]] \"a\": working_directory: {}: No such file or directory",
            dir.join("nowhere").display()
        ),
        format!(
            "daemon.toml:8:12: [[processes]] \"a\": log_file: {}: {} is on a read-only filesystem",
            dir.join("ro/sub/a.log").display(),
            dir.join("ro").display()
        ),
    ] {
        assert!(stderr.contains(&expected), "expected {expected:?} in:\n{stderr}");
    }
    // Missing directories are no problem: the daemon makes them.
    dir.write("daemon.toml", "[daemon]\npid_file = \"new/dir/d.pid\"\n");
    assert_eq!(run(&dir.path, &["-c", "daemon.toml", "check"]).code, 0);
}
