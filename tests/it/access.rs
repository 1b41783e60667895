//! Who may control the daemon (SO_PEERCRED, control_group), and that no
//! one but the daemon's user can aim it at an unrelated process: not
//! through the state file, a forged marker, or MAINPID=.

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

/// The state file says which processes are the daemon's own: one that
/// others could have rewritten is refused, naming the file, and nothing
/// that runs is touched; put right, it is used again.
#[test]
fn a_state_file_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TestDir::new("acc-state");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1034\"]\n");
    let daemon = Daemon::start(&dir);
    let svc = daemon.wait_running("svc", None);
    drop(daemon);
    std::fs::set_permissions(dir.join("d.state"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = run(&dir.path, &["start"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("state file {}: writable by others", dir.join("d.state").display())),
        "{out:?}"
    );
    assert!(alive(svc), "a refused start touched the service");
    assert_eq!(dir.count("sleep 1034"), 1, "a refused start started a second copy");
    std::fs::set_permissions(dir.join("d.state"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.wait_running("svc", None), svc);
}

/// The attack of issue 18: an unprivileged user starts a session leader
/// that carries the service's marker, then waits for the daemon to start
/// again. Markers are never believed: the real service is adopted, the
/// stranger is neither adopted nor signalled.
#[test]
fn a_forged_marker_neither_hijacks_nor_stops_a_service() {
    let dir = TestDir::new("acc-forge");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1035\"]\n");
    let daemon = Daemon::start(&dir);
    let svc = daemon.wait_running("svc", None);
    let marker = format!("MI7SOFT_SERVICE=svc:0:{}", dir.join("d.state").display());
    let mut forged = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "setsid", "env"])
        .args([marker.as_str(), "sleep", "100002"])
        .current_dir("/")
        .spawn()
        .unwrap();
    let stranger = forged.id() as i32;
    wait_until(secs(5), "the stranger runs sleep", || cmdline(stranger).contains("sleep 100002"));
    drop(daemon);
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.wait_running("svc", None), svc, "{}", daemon.log());
    assert!(alive(svc), "the real service was stopped");
    assert!(alive(stranger), "the stranger was signalled");
    assert!(!daemon.log().contains("100002"), "{}", daemon.log());
    let out = daemon.cli(&["stop", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(alive(stranger), "stopping svc reached the stranger");
    let _ = forged.kill();
    let _ = forged.wait();
}

/// A process of the service's own user, but outside its session and not
/// its descendant, cannot take the service over with MAINPID=.
#[test]
fn mainpid_from_outside_the_services_session_is_not_heard() {
    let dir = TestDir::new("acc-mainpid");
    dir.write(
        "notify.py",
        "import os, socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
         s.sendto(sys.argv[1].encode(), os.environ['NOTIFY_SOCKET'])\n",
    );
    dir.config(
        "[[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1036\"]\nuser = \"nobody\"\nwatchdog_sec = 60\n",
    );
    let daemon = Daemon::start(&dir);
    let svc = daemon.wait_running("svc", None);
    let mut intruder = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "setsid", "sleep", "1037"])
        .current_dir(&dir.path)
        .spawn()
        .unwrap();
    let other = intruder.id() as i32;
    wait_until(secs(5), "the intruder runs sleep", || cmdline(other).contains("sleep 1037"));
    let sent = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "/usr/bin/python3", "notify.py"])
        .arg(format!("MAINPID={other}"))
        .env("NOTIFY_SOCKET", dir.join("d.notify"))
        .current_dir(&dir.path)
        .status()
        .unwrap();
    assert!(sent.success());
    holds_for(secs(1), "svc keeps its own process", || daemon.process("svc").pid == Some(svc));
    assert!(!daemon.log().contains("main process is now"), "{}", daemon.log());
    let out = daemon.cli(&["stop", "svc"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(alive(other), "stopping svc reached the intruder");
    let _ = intruder.kill();
    let _ = intruder.wait();
}

/// Connection exhaustion: 64 idle connections of a status-only
/// control_group member used to make the daemon refuse every command,
/// `stop` and `shutdown` included. Now one user other than root gets 8
/// (the rest are refused, logged once), root is always served, and what
/// the member holds is dropped once its deadline passes.
#[test]
fn a_control_group_member_cannot_crowd_out_root() {
    use std::io::{BufRead, BufReader};
    let dir = TestDir::new("acc-crowd");
    dir.write(
        "daemon.toml",
        "[daemon]\npid_file = \"d.pid\"\ncontrol_group = \"nogroup\"\n\n\
         [[processes]]\nname = \"svc\"\ncommand = \"sleep\"\nargs = [\"1035\"]\n",
    );
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running("svc", None);
    // As nobody: 70 connections, each sending the start of a request, then
    // the reply to the last one (a refusal), then holding them all.
    let script = r#"use IO::Socket::UNIX; $| = 1; $SIG{PIPE} = "IGNORE";
        my @held = map { my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "connect: $!"; print $s "s"; $s } 1..70;
        my $line = readline($held[-1]); print "last: $line"; sleep 60;"#;
    let mut attacker = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "perl", "-e", script])
        .arg(dir.join("d.sock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("setpriv and perl run the attacker as nobody");
    let mut last = String::new();
    BufReader::new(attacker.stdout.take().unwrap()).read_line(&mut last).unwrap();
    assert_eq!(last.trim_end(), "last: err too many connections (uid 65534 has 8 connections open)");
    let began = std::time::Instant::now();
    let out = daemon.cli(&["stop", "svc"]);
    assert_eq!(out.code, 0, "root's stop while nobody holds its connections: {out:?}");
    assert!(began.elapsed() < secs(3), "root's stop took {:?}", began.elapsed());
    assert!(!alive(pid), "svc still runs");
    let log = daemon.log();
    assert_eq!(log.matches("control socket: uid 65534 has 8 connections open").count(), 1, "{log}");
    // The held connections time out (3 s silent, 5 s from a first byte):
    // the member may read status again, though the attacker still runs.
    wait_until(secs(15), "nobody may run status again", || as_nobody(&dir, &["status"]).code == 0);
    let _ = attacker.kill();
    let _ = attacker.wait();
}
