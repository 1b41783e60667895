//! What /proc says about processes: start times (which, with a pid, name one
//! exact process), process groups and sessions, and the service marker in a
//! process's environment.
//!
//! Everything here reads files, with no libc call. The whole-/proc
//! scans are only made at daemon start (finding services a crashed daemon
//! had no time to record) and while a process group drains, never in an
//! idle daemon.

use std::fs;

use crate::sys::{self, Pid};

/// The environment variable every service is started with: which daemon
/// (by state file) and which instance it belongs to, so that a daemon that
/// crashed between a spawn and its state write loses nothing.
pub const MARKER: &str = "MI7SOFT_SERVICE";

/// The fields of /proc/PID/stat the daemon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub pgid: Pid,
    pub sid: Pid,
    /// Field 22: clock ticks after boot.
    pub starttime: u64,
}

pub fn stat(pid: Pid) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields
    // after the last ')' are plain, starting with field 3.
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgid: fields.get(5 - 3)?.parse().ok()?,
        sid: fields.get(6 - 3)?.parse().ok()?,
        starttime: fields.get(22 - 3)?.parse().ok()?,
    })
}

fn is_dead(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

/// The start time of a live process; `None` when there is no such process
/// or it is a zombie.
pub fn process_starttime(pid: Pid) -> Option<u64> {
    stat(pid).filter(|s| !is_dead(s.state)).map(|s| s.starttime)
}

/// Seconds since boot, from /proc/uptime (CLOCK_BOOTTIME: never stepped).
pub fn seconds_since_boot() -> Option<f64> {
    fs::read_to_string("/proc/uptime").ok()?.split_ascii_whitespace().next()?.parse().ok()
}

/// Every pid in /proc.
fn pids() -> impl Iterator<Item = Pid> {
    fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// Whether a live (not zombie) process is left in process group `pgid`.
/// `kill(-pgid, 0)` answers the common case at once, but it counts zombies,
/// which a slow init may leave for seconds (or forever, in a container
/// without one): only then is /proc scanned.
pub fn group_alive(pgid: Pid) -> bool {
    if sys::kill_group(pgid, 0).is_err() {
        return false;
    }
    pids().any(|pid| stat(pid).is_some_and(|s| s.pgid == pgid && !is_dead(s.state)))
}

/// The supplementary groups of a process (the `Groups:` line of its status).
pub fn supplementary_groups(pid: Pid) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|groups| groups.split_ascii_whitespace().filter_map(|g| g.parse().ok()).collect())
        .unwrap_or_default()
}

/// Whether process `pid` carries exactly this marker: adoption trusts a
/// state-file line only for a process the daemon really started.
pub fn has_marker(pid: Pid, marker: &str) -> bool {
    let expected = format!("{MARKER}={marker}");
    fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == expected.as_bytes()))
}

/// A live service process found by its marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marked {
    pub pid: Pid,
    pub name: String,
    pub instance: u32,
    pub starttime: u64,
}

/// The marker value for an instance of the daemon whose state file is `state`.
pub fn marker(state: &str, name: &str, instance: u32) -> String {
    format!("{name}:{instance}:{state}")
}

/// Session leaders whose environment carries the marker of this daemon
/// (`state`, its state file): the services it started. A worker of a
/// service inherits the marker but is no session leader, so only the
/// services themselves are found.
pub fn marked(state: &str) -> Vec<Marked> {
    let needle = format!("{MARKER}=");
    let mut found = Vec::new();
    for pid in pids() {
        let Some(stat) = stat(pid) else { continue };
        if stat.sid != pid || stat.pgid != pid || is_dead(stat.state) {
            continue;
        }
        let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else { continue };
        for entry in environ.split(|&b| b == 0) {
            let Some(value) = entry.strip_prefix(needle.as_bytes()) else { continue };
            let Ok(value) = std::str::from_utf8(value) else { break };
            let mut parts = value.splitn(3, ':');
            if let (Some(name), Some(Ok(instance)), Some(owner)) =
                (parts.next(), parts.next().map(str::parse::<u32>), parts.next())
            {
                if owner == state {
                    found.push(Marked { pid, name: name.to_string(), instance, starttime: stat.starttime });
                }
            }
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_readable() {
        let pid = std::process::id() as Pid;
        let stat = stat(pid).unwrap();
        assert_eq!(process_starttime(pid), Some(stat.starttime));
        assert!(seconds_since_boot().is_some_and(|s| s > 0.0));
        assert!(group_alive(stat.pgid));
    }
}
