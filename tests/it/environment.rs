//! What a service starts with: its environment (inherited, set, cleared,
//! and the MI7SOFT_SERVICE marker), its user and groups, umask, nice value
//! and resource limits, and how a failure between fork and exec is shown.
//!
//! The identity tests switch to `nobody`, so they need root; they fail (not
//! skip) without it, because CI runs them as root.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::*;

/// The effective uid of this test process, from /proc/self/status.
fn euid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:")).expect("no Uid: line in /proc/self/status");
    uids.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn assert_root() {
    assert_eq!(euid(), 0, "this test switches users and must run as root (as it does in CI)");
}

/// The fields of `name`'s line in a colon-separated file (/etc/passwd, /etc/group).
fn entry(file: &str, name: &str) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap();
    let line = text.lines().find(|l| l.split(':').next() == Some(name));
    line.unwrap_or_else(|| panic!("no {name:?} in {file}")).split(':').map(str::to_string).collect()
}

/// Every gid `user` should end up with: `primary`, plus each group in
/// /etc/group that lists the user as a member; sorted.
fn expected_groups(user: &str, primary: u32) -> Vec<u32> {
    let text = fs::read_to_string("/etc/group").unwrap();
    let mut gids = vec![primary];
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() == 4 && fields[3].split(',').any(|m| m.trim() == user) {
            gids.push(fields[2].parse().unwrap());
        }
    }
    gids.sort();
    gids.dedup();
    gids
}

/// The environment a process was exec'ed with, in order.
fn environ(pid: i32) -> Vec<(String, String)> {
    let bytes = fs::read(format!("/proc/{pid}/environ")).unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .split('\0')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `KEY=value` lines (output of `env`) as pairs.
fn env_lines(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn value<'e>(env: &'e [(String, String)], key: &str) -> Vec<&'e str> {
    env.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
}

/// The marker every instance is started with: `NAME:INSTANCE:STATE_FILE`.
fn marker(dir: &TestDir, name: &str) -> String {
    format!("{name}:0:{}", dir.join("d.state").display())
}

/// Waits until `file` (written with tmp + mv by the service) exists; returns it.
fn wait_file(dir: &TestDir, file: &str) -> String {
    wait_until(secs(10), &format!("the service wrote {file}"), || dir.join(file).exists());
    dir.read(file)
}

/// Writes `processes` and checks that `check` and `start` both refuse it with
/// exit status 1 and a first line `mi7soft-daemon: error: daemon.toml:AT: …`
/// that holds every needle, starting nothing.
fn assert_config_error(dir: &TestDir, processes: &str, at: &str, needles: &[&str]) {
    dir.config(processes);
    let prefix = format!("mi7soft-daemon: error: daemon.toml:{at}: [[processes]] \"svc\": ");
    for command in ["check", "start"] {
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        assert!(out.stderr.starts_with(&prefix), "{command}: stderr should start with {prefix:?}: {out:?}");
        let first = out.stderr.lines().next().unwrap_or_default();
        for needle in needles {
            assert!(first.contains(needle), "{command}: first line should contain {needle:?}: {out:?}");
        }
    }
    assert_eq!(dir.processes(), Vec::<i32>::new(), "an invalid config started processes");
    assert!(!dir.join("ran.txt").exists(), "an invalid config ran the service");
}

/// A service that leaves a trace if it ever runs; its keys start on line 9.
fn traced(keys: &str) -> String {
    sh_service("svc", "echo ran >> ran.txt; exec sleep 1000", keys)
}

#[test]
fn the_environment_table_reaches_the_service_over_the_inherited_one() {
    let dir = TestDir::new("env-table");
    let keys = r#"environment = { GREETING = "hello, world", SPACED = "  two  spaces ", EMPTY = "", MI7T_OVERRIDE = "table", MI7SOFT_SERVICE = "forged" }"#;
    dir.config(&sh_service("svc", "env > env.tmp && mv env.tmp env.txt; exec sleep 1000", keys));
    let env = [("MI7T_INHERITED", "from the daemon"), ("MI7T_OVERRIDE", "daemon")];
    let _daemon = Daemon::start_with_env(&dir, &env);
    let env = env_lines(&wait_file(&dir, "env.txt"));
    for (key, expected) in [
        ("GREETING", "hello, world"),
        ("SPACED", "  two  spaces "),
        ("EMPTY", ""),
        ("MI7T_INHERITED", "from the daemon"),
        ("MI7T_OVERRIDE", "table"),
    ] {
        assert_eq!(value(&env, key), [expected], "{key} in {env:?}");
    }
    // No config can forge or remove the marker a daemon finds its services by.
    assert_eq!(value(&env, "MI7SOFT_SERVICE"), [marker(&dir, "svc")], "{env:?}");
}

#[test]
fn clear_environment_leaves_only_path_the_table_and_the_marker() {
    let dir = TestDir::new("env-clear");
    let keys = "clear_environment = true\nenvironment = { ONLY = \"this one\" }";
    dir.config(&format!("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n{keys}\n"));
    let daemon = Daemon::start_with_env(&dir, &[("MI7T_SECRET", "leaked")]);
    let pid = daemon.wait_running("svc", None);
    let mut env = environ(pid);
    env.sort();
    let path = std::env::var("PATH").unwrap();
    let mut expected = vec![
        ("MI7SOFT_SERVICE".to_string(), marker(&dir, "svc")),
        ("ONLY".to_string(), "this one".to_string()),
        ("PATH".to_string(), path),
    ];
    expected.sort();
    assert_eq!(env, expected, "the exact environment sleep was exec'ed with");
}

#[test]
fn a_service_runs_as_nobody_with_its_groups_and_home() {
    assert_root();
    let dir = TestDir::new("env-nobody");
    let out = dir.join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
    let script = "{ id -u; id -g; id -G; echo \"$HOME|$USER|$LOGNAME\"; } > ids.tmp && mv ids.tmp ids.txt; \
                  exec sleep 1000";
    dir.config(
        &(sh_service("byname", script, "user = \"nobody\"\ngroup = \"nogroup\"\nworking_directory = \"out/byname\"")
            + &sh_service("bynumber", script, "user = \"65534\"\nworking_directory = \"out/bynumber\"")),
    );
    for sub in ["byname", "bynumber"] {
        fs::create_dir(out.join(sub)).unwrap();
        fs::set_permissions(out.join(sub), fs::Permissions::from_mode(0o777)).unwrap();
    }
    let nobody = entry("/etc/passwd", "nobody");
    let nogroup = entry("/etc/group", "nogroup");
    let (uid, gid, home) = (&nobody[2], &nobody[3], &nobody[5]);
    let daemon = Daemon::start_with_env(&dir, &[("HOME", "/root"), ("USER", "root"), ("LOGNAME", "root")]);
    for (name, group) in [("byname", &nogroup[2]), ("bynumber", gid)] {
        let ids = wait_file(&dir, &format!("out/{name}/ids.txt"));
        let lines: Vec<&str> = ids.lines().collect();
        assert_eq!(lines.len(), 4, "{name}: {ids:?}");
        assert_eq!((lines[0], lines[1]), (uid.as_str(), group.as_str()), "{name}: id -u, id -g");
        let mut groups: Vec<u32> = lines[2].split_whitespace().map(|g| g.parse().unwrap()).collect();
        groups.sort();
        groups.dedup();
        assert_eq!(groups, expected_groups("nobody", group.parse().unwrap()), "{name}: id -G");
        assert_eq!(lines[3], format!("{home}|nobody|nobody"), "{name}: HOME|USER|LOGNAME");
        let pid = daemon.wait_running(name, None);
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        // Real, effective, saved and filesystem uid: no way back to root.
        assert_eq!(uids.split_whitespace().skip(1).collect::<Vec<_>>(), [uid.as_str(); 4], "{name}: {uids}");
    }
}

#[test]
fn an_unknown_user_or_group_is_a_config_error_with_its_position() {
    let dir = TestDir::new("env-nouser");
    assert_config_error(
        &dir,
        &traced("user = \"no-such-user-mi7\""),
        "9:8",
        &["user", "no user \"no-such-user-mi7\" in /etc/passwd"],
    );
    assert_config_error(
        &dir,
        &traced("user = \"nobody\"\ngroup = \"no-such-group-mi7\""),
        "10:9",
        &["group", "no group \"no-such-group-mi7\" in /etc/group"],
    );
}

#[test]
fn umask_sets_the_mode_of_files_the_service_creates() {
    let dir = TestDir::new("env-umask");
    dir.config(
        &(sh_service("masked", "echo x > masked.tmp && mv masked.tmp masked.txt; exec sleep 1000", "umask = \"027\"")
            + &sh_service("open", "echo x > open.tmp && mv open.tmp open.txt; exec sleep 1000", "umask = \"0\"")),
    );
    let _daemon = Daemon::start(&dir);
    for (file, mode) in [("masked.txt", 0o640), ("open.txt", 0o666)] {
        wait_file(&dir, file);
        let actual = fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(actual, mode, "{file}: mode {actual:o}, expected {mode:o}");
    }
}

#[test]
fn an_invalid_umask_is_a_config_error() {
    let dir = TestDir::new("env-badumask");
    for umask in ["999", "abc", "1000", ""] {
        let keys = format!("umask = \"{umask}\"");
        assert_config_error(&dir, &traced(&keys), "9:9", &["umask", &format!("\"{umask}\" is not an octal mask")]);
    }
}

/// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
fn stat_field(pid: i32, n: usize) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(')').unwrap().1.split_whitespace().nth(n - 3).unwrap().to_string()
}

#[test]
fn nice_and_limits_apply_to_the_service() {
    let dir = TestDir::new("env-nice");
    let script = "{ nice; ulimit -n; ulimit -c; ulimit -Hn; } > lim.tmp && mv lim.tmp lim.txt; exec sleep 1000";
    dir.config(&sh_service("svc", script, "nice = 5\nlimits = { nofile = 123, core = 0 }"));
    let daemon = Daemon::start(&dir);
    let lines: Vec<String> = wait_file(&dir, "lim.txt").lines().map(str::to_string).collect();
    assert_eq!(lines, ["5", "123", "0", "123"], "nice, ulimit -n, ulimit -c, ulimit -Hn");
    let pid = daemon.wait_running("svc", None);
    assert_eq!(stat_field(pid, 19), "5", "field 19 (nice) of /proc/{pid}/stat");
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let nofile = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    assert_eq!(nofile.split_whitespace().skip(3).take(2).collect::<Vec<_>>(), ["123", "123"], "{nofile}");
}

#[test]
fn an_unknown_limit_is_a_config_error_with_a_suggestion() {
    let dir = TestDir::new("env-badlimit");
    assert_config_error(
        &dir,
        &traced("limits = { nofiles = 123 }"),
        "9:12",
        &["limits: unknown limit \"nofiles\" (did you mean \"nofile\"?)"],
    );
    assert_config_error(&dir, &traced("limits = { nofile = -1 }"), "9:21", &["limits.nofile"]);
}

/// Starts a daemon whose service `svc` fails between fork and exec; returns
/// it once `last_exit` is set, and that `last_exit`.
fn failed_before_exec(dir: &TestDir, keys: &str) -> (Daemon, String) {
    dir.config(&traced(keys));
    let daemon = Daemon::start(dir);
    let mut last_exit = None;
    wait_until(secs(10), "svc has a last_exit", || {
        last_exit = daemon.process("svc").last_exit;
        last_exit.is_some()
    });
    let last_exit = last_exit.unwrap();
    let svc = daemon.process("svc");
    assert_ne!(svc.state, "running", "{svc:?}");
    assert!(!dir.join("ran.txt").exists(), "the service ran");
    // The daemon log has the same words, naming the service.
    let log = daemon.log();
    assert!(log.lines().any(|l| l.contains("svc: ") && l.contains(&last_exit)), "{last_exit:?} not in the log: {log}");
    (daemon, last_exit)
}

#[test]
fn a_working_directory_the_user_cannot_enter_is_a_chdir_error() {
    assert_root();
    let dir = TestDir::new("env-chdir");
    let locked = dir.join("locked");
    fs::create_dir(&locked).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    let (_daemon, last_exit) = failed_before_exec(&dir, "user = \"nobody\"\nworking_directory = \"locked\"");
    let expected = format!("chdir {}: Permission denied", locked.display());
    assert_eq!(last_exit, expected, "not an exit code but the error");
}

#[test]
fn a_limit_above_what_the_kernel_allows_is_a_setrlimit_error() {
    assert_root();
    let dir = TestDir::new("env-rlimit");
    // Even root cannot raise nofile above fs.nr_open.
    let nr_open: u64 = fs::read_to_string("/proc/sys/fs/nr_open").unwrap().trim().parse().unwrap();
    let too_many = (nr_open + 1).max(99_999_999);
    let (_daemon, last_exit) = failed_before_exec(&dir, &format!("limits = {{ core = 0, nofile = {too_many} }}"));
    assert_eq!(last_exit, format!("setrlimit nofile={too_many}: Operation not permitted"), "not an exit code");
}

/// As systemd sets them, so libsystemd's sd_watchdog_enabled() sees the
/// watchdog: WATCHDOG_USEC is the period, WATCHDOG_PID the service's own
/// pid; a service without watchdog_sec gets neither, even when the daemon
/// itself was given them.
#[test]
fn a_watchdog_service_gets_watchdog_usec_and_its_own_pid() {
    let dir = TestDir::new("env-watchdog");
    let script = "echo PID=$$ > env.tmp; env >> env.tmp; mv env.tmp env.txt; exec sleep 1000";
    let plain = "env > plain.tmp; mv plain.tmp plain.txt; exec sleep 1000";
    dir.config(&(sh_service("svc", script, "watchdog_sec = 3") + &sh_service("plain", plain, "")));
    let daemon = Daemon::start_with_env(&dir, &[("WATCHDOG_USEC", "1"), ("WATCHDOG_PID", "1")]);
    let env = env_lines(&wait_file(&dir, "env.txt"));
    let pid = daemon.wait_running("svc", None);
    assert_eq!(value(&env, "PID"), [pid.to_string()]);
    assert_eq!(value(&env, "WATCHDOG_USEC"), ["3000000"], "{env:?}");
    assert_eq!(value(&env, "WATCHDOG_PID"), [pid.to_string()], "{env:?}");
    let plain = env_lines(&wait_file(&dir, "plain.txt"));
    assert!(value(&plain, "WATCHDOG_USEC").is_empty() && value(&plain, "WATCHDOG_PID").is_empty(), "{plain:?}");
}
