//! Installing the peers (runit, s6, supervisord) from Debian when they are
//! missing, the way `dist` installs qemu: said first, then done.
//!
//! Only the supervision programs are wanted, never a peer as init or as a
//! system service. So packages are installed with `--no-install-recommends`
//! (runit recommends `runit-run | runit-init`, which would make it the
//! init system), and with a `policy-rc.d` that forbids starting services
//! while dpkg configures them (supervisor's postinst would start a system
//! supervisord). Debian's container images ship that file already; when it
//! is missing the bench writes it for the install and removes it after.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::fleet::Kind;
use crate::step;

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn missing_programs(kind: Kind) -> Vec<&'static str> {
    kind.programs().0.iter().copied().filter(|p| !on_path(p)).collect()
}

/// Makes every peer's programs available if it can; returns, per peer,
/// `Ok` or why it cannot be measured.
pub fn ensure(peers: &[Kind]) -> Vec<(Kind, Result<(), String>)> {
    let wanted: Vec<Kind> = peers.iter().copied().filter(|&k| !missing_programs(k).is_empty()).collect();
    let installed = if wanted.is_empty() { Ok(()) } else { install(&wanted) };
    peers
        .iter()
        .map(|&kind| {
            let missing = missing_programs(kind);
            let result = if missing.is_empty() {
                Ok(())
            } else {
                let why = installed.as_ref().err().cloned().unwrap_or_else(|| "installed, but still missing".into());
                Err(format!("not measured: {} not found ({why})", missing.join(", ")))
            };
            (kind, result)
        })
        .collect()
}

fn install(kinds: &[Kind]) -> Result<(), String> {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !is_root || !on_path("apt-get") {
        return Err("not root, or no apt-get: install runit, s6 and supervisor by hand".into());
    }
    let packages: Vec<&str> = kinds.iter().map(|k| k.programs().1).collect();
    // A package unknown to the lists may be known after an update.
    if packages.iter().any(|p| !has_candidate(p)) {
        let mut update = Command::new("apt-get");
        update.args(["update", "-q"]).stdout(Stdio::from(std::io::stderr()));
        step("bench: apt-get update (for the peers' packages)", update)?;
    }
    let unknown: Vec<&str> = packages.iter().copied().filter(|p| !has_candidate(p)).collect();
    if !unknown.is_empty() {
        return Err(format!("apt-cache policy shows no candidate for {}", unknown.join(", ")));
    }
    let wrote_policy = !Path::new(POLICY_RC_D).exists();
    if wrote_policy {
        let written =
            fs::write(POLICY_RC_D, "#!/bin/sh\n# Written by `cargo xtask bench` for one install.\nexit 101\n")
                .and_then(|()| fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755)));
        written.map_err(|e| format!("{POLICY_RC_D}: {e}"))?;
    }
    let mut apt = Command::new("apt-get");
    apt.env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&packages)
        // Its chatter goes to stderr with ours: stdout is the bench's table.
        .stdout(Stdio::from(std::io::stderr()));
    let installed = step(&format!("bench: apt-get install --no-install-recommends {}", packages.join(" ")), apt);
    if wrote_policy {
        let _ = fs::remove_file(POLICY_RC_D);
    }
    installed
}

/// The installed Debian version of a peer's package, for the report.
pub fn version(kind: Kind) -> Option<String> {
    let package = kind.programs().1;
    let out = Command::new("dpkg-query").args(["-W", "-f", "${Version}", package]).output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !version.is_empty()).then(|| format!("{package} {version}"))
}

/// Whether apt knows a version of the package to install.
fn has_candidate(package: &str) -> bool {
    let Ok(out) = Command::new("apt-cache").args(["policy", package]).output() else { return false };
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().any(|l| l.trim_start().starts_with("Candidate:") && !l.contains("(none)"))
}
