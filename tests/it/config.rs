//! daemon.toml as the user meets it: errors that point at a line and column,
//! finding (or writing) the file, relative paths, and every documented key.

use std::fs;

use crate::support::*;

/// A service that would leave a trace if an invalid config ever started it.
const TRACE: &str = "echo ran >> ran.txt\nexec sleep 1000";

/// Writes daemon.toml with `processes`, then checks that `check` and `start`
/// both refuse it with exit status 1 and a first line that starts with
/// `mi7soft-daemon: error: daemon.toml:LINE:COL: ` (`at` is "LINE:COL", or
/// "LINE:" when the column is not pinned down) and contains every `needle`.
/// `start` must start nothing and leave no lock behind: a daemon with a
/// valid config starts afterwards.
fn assert_rejected(dir: &TestDir, processes: &str, at: &str, needles: &[&str]) {
    let _ = fs::remove_file(dir.join("ran.txt"));
    dir.script("svc.sh", TRACE);
    dir.config(processes);
    let prefix = format!("mi7soft-daemon: error: daemon.toml:{at}");
    for command in ["check", "start"] {
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        assert!(out.stderr.starts_with(&prefix), "{command}: stderr should start with {prefix:?}: {out:?}");
        let first = out.stderr.lines().next().unwrap_or_default();
        let position = first.strip_prefix("mi7soft-daemon: error: daemon.toml:").unwrap_or_default();
        assert!(has_position(position), "{command}: no LINE:COL after the file name: {out:?}");
        for needle in needles {
            assert!(first.contains(needle), "{command}: first line should contain {needle:?}: {out:?}");
        }
    }
    assert_eq!(dir.processes(), Vec::<i32>::new(), "an invalid config started processes");
    assert!(!dir.join("ran.txt").exists(), "an invalid config ran a service");

    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let daemon = Daemon::start(dir);
    daemon.wait_running("svc", None);
    // Leave the directory empty for the next case.
    drop(daemon);
    dir.kill_all();
}

/// Whether `s` starts with `LINE:COL: ` (both numbers).
fn has_position(s: &str) -> bool {
    let mut parts = s.splitn(3, ':');
    let number = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    number(parts.next()) && number(parts.next()) && parts.next().is_some_and(|rest| rest.starts_with(' '))
}

#[test]
fn a_toml_syntax_error_is_refused_with_its_position() {
    let dir = TestDir::new("cfg-syntax");
    assert_rejected(&dir, "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\n", "7:", &["invalid TOML"]);
}

#[test]
fn an_unknown_key_is_refused_with_a_suggestion() {
    let dir = TestDir::new("cfg-unknown");
    assert_rejected(
        &dir,
        "[[processes]]\nname = \"svc\"\ncomand = \"./svc.sh\"\n",
        "7:1: ",
        &["\"comand\"", "did you mean \"command\""],
    );
}

#[test]
fn a_wrong_type_is_refused() {
    let dir = TestDir::new("cfg-type");
    let base = "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n";
    assert_rejected(&dir, &format!("{base}auto_restart = \"yes\"\n"), "8:16: ", &["auto_restart", "string"]);
    assert_rejected(&dir, &format!("{base}args = \"x\"\n"), "8:8: ", &["args", "array"]);
}

#[test]
fn a_missing_name_is_refused() {
    let dir = TestDir::new("cfg-noname");
    assert_rejected(&dir, "[[processes]]\ncommand = \"./svc.sh\"\n", "5:", &["missing", "\"name\""]);
}

#[test]
fn a_missing_command_is_refused() {
    let dir = TestDir::new("cfg-nocmd");
    assert_rejected(&dir, "[[processes]]\nname = \"svc\"\n", "6:8: ", &["\"svc\"", "missing", "\"command\""]);
}

#[test]
fn duplicate_names_are_refused() {
    let dir = TestDir::new("cfg-dup");
    let twice = "[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n\n[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n";
    assert_rejected(&dir, twice, "10:8: ", &["\"svc\"", "duplicate"]);
}

#[test]
fn invalid_names_are_refused() {
    let dir = TestDir::new("cfg-badname");
    for name in ["a b", "a/b"] {
        let processes = format!("[[processes]]\nname = \"{name}\"\ncommand = \"./svc.sh\"\n");
        assert_rejected(&dir, &processes, "6:8: ", &[&format!("\"{name}\""), "invalid name"]);
    }
}

#[test]
fn an_unknown_daemon_key_is_refused() {
    let dir = TestDir::new("cfg-dkey");
    dir.script("svc.sh", TRACE);
    let text = "[daemon]\npid_file = \"d.pid\"\npidfile = \"x.pid\"\n\n[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n";
    dir.write("daemon.toml", text);
    for command in ["check", "start"] {
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        let expected = "mi7soft-daemon: error: daemon.toml:3:1: [daemon] unknown key \"pidfile\"";
        assert!(out.stderr.starts_with(expected), "{command}: {out:?}");
        assert!(out.stderr.contains("did you mean \"pid_file\""), "{command}: {out:?}");
    }
    assert_eq!(dir.processes(), Vec::<i32>::new());
    assert!(!dir.join("ran.txt").exists());
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let daemon = Daemon::start(&dir);
    daemon.wait_running("svc", None);
}

#[test]
fn check_accepts_a_valid_config() {
    let dir = TestDir::new("cfg-ok");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1000\"]\n");
    let out = run(&dir.path, &["-c", "daemon.toml", "check"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ok"), "{out:?}");
    assert_eq!(out.stderr, "", "{out:?}");
    assert_eq!(dir.processes(), Vec::<i32>::new(), "check started something");
}

#[test]
fn start_without_a_config_writes_a_default_one_that_runs() {
    let dir = TestDir::new("cfg-default");
    let daemon = Daemon::spawn(&dir, &["start"]);
    wait_until(secs(10), "the daemon answers status", || run(&dir.path, &["status"]).code == 0);
    let text = dir.read("daemon.toml");
    assert!(text.starts_with('#'), "the default config should open with a comment: {text:?}");
    assert!(text.contains("[[processes]]"), "{text:?}");
    let log = daemon.log();
    assert!(log.contains("mi7soft-daemon: warning: "), "the user should be told on stderr: {log:?}");
    assert!(log.contains(&dir.join("daemon.toml").display().to_string()), "the message should name the file: {log:?}");
    wait_until(secs(10), "the example service runs", || {
        daemon.find("example").is_some_and(|p| p.state == "running" && p.pid.is_some_and(alive))
    });
    assert_eq!(run(&dir.path, &["status", "example"]).code, 0);
}

#[test]
fn commands_other_than_start_need_an_existing_config() {
    let dir = TestDir::new("cfg-none");
    let out = run_bounded(&dir.path, &["check"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("mi7soft-daemon: error: "), "{out:?}");
    assert!(out.stderr.contains("daemon.toml") && out.stderr.contains("-c"), "{out:?}");
    assert!(!dir.join("daemon.toml").exists(), "check must not write a config");
    let out = run_bounded(&dir.path, &["status"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!dir.join("daemon.toml").exists(), "status must not write a config");
}

#[test]
fn a_missing_config_file_given_with_c_is_named() {
    let dir = TestDir::new("cfg-missing");
    for command in ["check", "start", "status"] {
        let out = run_bounded(&dir.path, &["-c", "nope.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        assert!(out.stderr.starts_with("mi7soft-daemon: error: "), "{command}: {out:?}");
        assert!(out.stderr.contains("nope.toml"), "{command}: {out:?}");
    }
    assert!(!dir.join("nope.toml").exists(), "a missing -c file must not be created");
    assert!(!dir.join("daemon.toml").exists(), "no default config when -c is given");
    assert_eq!(dir.processes(), Vec::<i32>::new());
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = TestDir::new("cfg-rel");
    fs::create_dir_all(dir.join("sub/bin")).unwrap();
    fs::create_dir_all(dir.join("sub/work")).unwrap();
    dir.script("sub/bin/svc.sh", "pwd > where.txt\nexec sleep 1000");
    dir.write(
        "sub/daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\n\n[[processes]]\nname = \"svc\"\ncommand = \"bin/svc.sh\"\nworking_directory = \"work\"\n",
    );
    // The CLI runs from the parent of the config's directory.
    let mut daemon = Daemon::spawn(&dir, &["-c", "sub/daemon.toml", "start"]);
    let status = |args: &[&str]| {
        let mut all = vec!["-c", "sub/daemon.toml", "status"];
        all.extend_from_slice(args);
        run(&dir.path, &all)
    };
    wait_until(secs(10), "svc runs", || status(&["svc"]).code == 0);
    assert!(daemon.is_up());
    let pid_file = fs::read_to_string(dir.join("sub/d.pid")).unwrap_or_default();
    assert_eq!(pid_file.trim(), daemon.pid().to_string(), "the pid file belongs in sub/");
    assert!(dir.join("sub/d.sock").exists(), "the control socket belongs in sub/");
    assert!(!dir.join("d.pid").exists(), "nothing should be created in the current directory");
    wait_until(secs(10), "svc wrote where.txt", || dir.join("sub/work/where.txt").exists());
    wait_until(secs(5), "where.txt is complete", || {
        fs::read_to_string(dir.join("sub/work/where.txt")).is_ok_and(|s| s.ends_with('\n'))
    });
    let cwd = fs::read_to_string(dir.join("sub/work/where.txt")).unwrap();
    assert_eq!(cwd.trim(), dir.join("sub/work").display().to_string());
    let json = status(&["--json"]);
    assert!(json.stdout.contains(&format!("\"config\":\"{}\"", dir.join("sub/daemon.toml").display())), "{json:?}");
}

#[test]
fn every_documented_key_is_accepted_and_honoured() {
    let dir = TestDir::new("cfg-keys");
    fs::create_dir(dir.join("wd")).unwrap();
    dir.script("lazy.sh", "echo \"$LAZY\" > lazy.tmp && mv lazy.tmp lazy.txt\nexec sleep 1000");
    dir.write(
        "daemon.toml",
        r#"[daemon]
pid_file = "d.pid"
log_file = "d.log"
check_interval = 2

[[processes]]
name = "full"
command = "sh"
args = ["-c", "echo \"$FOO|$BAR|$1\" > env.tmp && pwd >> env.tmp && mv env.tmp env.txt; exec sleep 1000", "sh", "arg one"]
working_directory = "wd"
auto_restart = true
max_instances = 1
autostart = true
environment = { FOO = "foo value", BAR = "bar" }

[[processes]]
name = "once"
command = "sh"
args = ["-c", "echo once >> once.txt"]
auto_restart = false

[[processes]]
name = "lazy"
command = "./lazy.sh"
autostart = false

[processes.environment]
LAZY = "from a table"
"#,
    );
    let out = run(&dir.path, &["-c", "daemon.toml", "check"]);
    assert_eq!((out.code, out.stdout.contains("ok")), (0, true), "{out:?}");

    let daemon = Daemon::start(&dir);
    daemon.wait_running("full", None);
    wait_until(secs(10), "full wrote env.txt", || dir.join("wd/env.txt").exists());
    let env = fs::read_to_string(dir.join("wd/env.txt")).unwrap();
    assert_eq!(env, format!("foo value|bar|arg one\n{}\n", dir.join("wd").display()));

    wait_until(secs(10), "once has exited", || daemon.process("once").state == "exited");
    let once = daemon.process("once");
    assert_eq!((once.pid, once.restarts, once.last_exit.as_deref()), (None, 0, Some("exit 0")), "{once:?}");

    let lazy = daemon.process("lazy");
    assert_eq!((lazy.state.as_str(), lazy.pid), ("stopped", None), "autostart = false: {lazy:?}");
    assert!(!dir.join("lazy.txt").exists(), "lazy ran without start-process");
    let out = daemon.cli(&["start-process", "lazy"]);
    assert_eq!(out.code, 0, "{out:?}");
    daemon.wait_running("lazy", None);
    wait_until(secs(10), "lazy wrote lazy.txt", || dir.join("lazy.txt").exists());
    assert_eq!(dir.read("lazy.txt"), "from a table\n");

    // max_instances = 1: no second instance.
    let out = daemon.cli(&["start-process", "full"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("max_instances"), "{out:?}");
    // auto_restart = false: it ran exactly once.
    assert_eq!(dir.read("once.txt"), "once\n");
}

/// As root, a config another user owns (or can change) says what runs as
/// root: it used to be used without a word. `check`, `start` and `reload`
/// now refuse it, naming the file and its owner, unless
/// `--allow-foreign-config`; so does a directory others may write.
#[test]
fn a_config_others_can_change_is_refused_as_root() {
    use std::os::unix::fs::{PermissionsExt, chown};
    let dir = TestDir::new("cfg-foreign");
    dir.script("svc.sh", TRACE);
    let config = dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    chown(&config, Some(65534), None).unwrap();
    let refusal = "mi7soft-daemon: error: daemon.toml: owned by nobody (uid 65534), not by root";
    for command in ["check", "start"] {
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", command], secs(10));
        assert_eq!(out.code, 1, "{command}: {out:?}");
        assert!(out.stderr.starts_with(refusal), "{command}: {out:?}");
        assert!(out.stderr.contains("--allow-foreign-config"), "{command}: {out:?}");
    }
    assert!(!dir.join("ran.txt").exists(), "a foreign config ran a service");
    let out = run_bounded(&dir.path, &["--allow-foreign-config", "-c", "daemon.toml", "check"], secs(10));
    assert_eq!(out.code, 0, "{out:?}");

    // Root's file in a directory anyone may write: refused too.
    chown(&config, Some(0), None).unwrap();
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_bounded(&dir.path, &["-c", "daemon.toml", "check"], secs(10));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is writable by other users (mode 777"), "{out:?}");
    fs::set_permissions(&dir.path, fs::Permissions::from_mode(0o755)).unwrap();

    // Given to another user while the daemon runs: reload refuses it.
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    dir.config("[[processes]]\nname = \"other\"\ncommand = \"./svc.sh\"\n");
    chown(&config, Some(65534), None).unwrap();
    let out = daemon.cli(&["reload"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("owned by nobody (uid 65534)"), "{out:?}");
    assert_eq!(daemon.process("svc").pid, Some(pid), "a refused reload changed svc");
    assert!(daemon.find("other").is_none(), "a refused reload started other");
}
