//! The init-system integration under cross/: the sysvinit/busybox script
//! driven for real under busybox sh, and the procd script syntax-checked.

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
    assert_eq!(init_script(&dir, "stop").code, 0, "stop when stopped");
    assert_eq!(init_script(&dir, "bogus").code, 2);
}

#[test]
fn the_procd_init_script_and_inittab_line_are_well_formed() {
    for script in ["cross/openwrt/files/mi7soft-daemon.init", "cross/sysvinit/mi7soft-daemon"] {
        let status = Command::new("busybox").args(["sh", "-n"]).arg(repo(script)).status().unwrap();
        assert!(status.success(), "{script}: syntax error");
    }
    let init = std::fs::read_to_string(repo("cross/openwrt/files/mi7soft-daemon.init")).unwrap();
    for needle in ["USE_PROCD=1", "procd_set_param respawn", "reload_signal HUP", "/etc/mi7soft-daemon.toml"] {
        assert!(init.contains(needle), "procd script lacks {needle}");
    }
    let inittab = std::fs::read_to_string(repo("cross/sysvinit/inittab")).unwrap();
    assert!(inittab.lines().any(|l| l.starts_with("::respawn:") && l.ends_with(" start")));
    // The packaged config is a valid config.
    let out = run(&repo("cross"), &["-c", "mi7soft-daemon.toml", "check"]);
    assert_eq!(out.code, 0, "{out:?}");
}
