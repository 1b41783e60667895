//! Who may control the daemon (SO_PEERCRED, control_group), and that a
//! tampered state file cannot aim the daemon at an unrelated process.

use std::process::{Command, Stdio};

use crate::support::*;

/// Runs the CLI as user `nobody` against the test's config.
fn as_nobody(dir: &TestDir, args: &[&str]) -> Output {
    let out = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(bin())
        .args(["-c", "daemon.toml"])
        .args(args)
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv (util-linux) runs the client as nobody; the tests run as root");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn other_users_cannot_use_the_socket() {
    let dir = TestDir::new("acc-none");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1031\"]\n");
    let daemon = Daemon::start(&dir);
    daemon.wait_running("svc", None);
    let out = as_nobody(&dir, &["stop", "svc"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    assert_eq!(daemon.process("svc").state, "running");
}

#[test]
fn control_group_members_may_read_status_but_not_command() {
    let dir = TestDir::new("acc-group");
    dir.write(
        "daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\ncontrol_group = \"nogroup\"\n\n\
         [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1032\"]\n",
    );
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    let out = as_nobody(&dir, &["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("svc"), "{out:?}");
    let out = as_nobody(&dir, &["stop", "svc"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("permission denied: uid 65534 may only run status"), "{out:?}");
    assert_eq!(daemon.process("svc").pid, Some(pid), "a refused stop must change nothing");
}

#[test]
fn control_group_commands_lets_members_command() {
    let dir = TestDir::new("acc-cmds");
    dir.write(
        "daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\ncontrol_group = \"nogroup\"\ncontrol_group_commands = true\n\n\
         [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1033\"]\n",
    );
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    let out = as_nobody(&dir, &["stop", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!alive(pid));
}

#[test]
fn a_tampered_state_file_cannot_aim_the_daemon_at_another_process() {
    let dir = TestDir::new("acc-state");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1034\"]\n");
    // An unrelated process (not started by the daemon), with its true start
    // time written into the state file: only the marker tells it apart.
    let mut stranger = Command::new("setsid").args(["sleep", "1035"]).current_dir(&dir.path).spawn().unwrap();
    let pid = stranger.id() as i32;
    wait_until(secs(5), "the stranger runs sleep", || cmdline(pid).contains("sleep 1035"));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let starttime = stat.rsplit_once(')').unwrap().1.split_whitespace().nth(19).unwrap().to_string();
    dir.write("d.state", &format!("mi7soft-daemon state 1\nsvc 0 {pid} {starttime} 1796000000 0 0\n"));
    let daemon = Daemon::start(&dir);
    let svc = daemon.wait_running("svc", None);
    assert_ne!(svc, pid, "the stranger was adopted");
    let out = daemon.cli(&["stop", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(alive(pid), "the stranger was signalled");
    let _ = stranger.kill();
    let _ = stranger.wait();
}
