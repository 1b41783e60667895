//! What /proc says about processes: start times (which, with a pid, name one
//! exact process), parents, process groups and sessions, users, and the CPU
//! time and memory of process groups.
//!
//! Everything here reads files, with no libc call. Whole-/proc scans are
//! made while a process group drains, when a main process ends (for what
//! it left in the background) and when someone asks for the status
//! (`status`, the API, a Prometheus scrape), never in an idle daemon.
//! Nothing here reads a process's environment or title: a process may
//! rewrite both (nginx and redis write their title over their
//! environment), and anyone may forge them.

use std::fs;

use crate::sys::{self, Pid};

/// The environment variable every service is started with, saying which
/// instance of which daemon (by state file) it is. It tells the service;
/// the daemon never trusts it (see `daemon/adoption.rs`).
pub const MARKER: &str = "MI7SOFT_SERVICE";

/// The fields of /proc/PID/stat the daemon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: Pid,
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
        ppid: fields.get(4 - 3)?.parse().ok()?,
        pgid: fields.get(5 - 3)?.parse().ok()?,
        sid: fields.get(6 - 3)?.parse().ok()?,
        starttime: fields.get(22 - 3)?.parse().ok()?,
    })
}

fn is_dead(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

impl Stat {
    /// Not a zombie.
    pub fn is_alive(&self) -> bool {
        !is_dead(self.state)
    }
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

/// The children of `pid` (a single-threaded process: the daemon), from
/// /proc/PID/task/PID/children; `None` where the kernel has no such file
/// (CONFIG_PROC_CHILDREN unset), when only a whole scan tells.
pub fn children(pid: Pid) -> Option<Vec<Pid>> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    Some(text.split_ascii_whitespace().filter_map(|p| p.parse().ok()).collect())
}

/// Every live (not zombie) process, with its stat.
pub fn live() -> impl Iterator<Item = (Pid, Stat)> {
    pids().filter_map(|pid| Some((pid, stat(pid)?))).filter(|(_, s)| s.is_alive())
}

/// Whether `pid` was inherited by `reaper` (a child subreaper) from a
/// process tree that began no earlier than `since` (a start time): `pid`
/// and each parent up to `reaper` started at or after `since`. A daemon's
/// child that called setsid and whose parent exited is such a process.
pub fn inherited_since(pid: Pid, reaper: Pid, since: u64) -> bool {
    let mut at = pid;
    // A short chain; the bound only guards against a loop while pids are reused.
    for _ in 0..64 {
        match stat(at) {
            Some(s) if s.starttime >= since && s.ppid == reaper => return true,
            Some(s) if s.starttime >= since && s.ppid > 1 => at = s.ppid,
            _ => return false,
        }
    }
    false
}

/// Whether `pid` runs this very program (the fd holder, a probe the
/// daemon forked before its exec): never a service's leftover.
pub fn runs_our_program(pid: Pid) -> bool {
    let ours = fs::read_link("/proc/self/exe");
    ours.is_ok() && fs::read_link(format!("/proc/{pid}/exe")).ok() == ours.ok()
}

/// Whether `ancestor` is among the parents of `pid`.
pub fn descends(pid: Pid, ancestor: Pid) -> bool {
    ancestors(pid).contains(&ancestor)
}

/// The parents of `pid`, nearest first, up to (not including) init.
pub fn ancestors(mut pid: Pid) -> Vec<Pid> {
    let mut found = Vec::new();
    // A chain of parents is short; the bound only guards against a loop
    // seen while pids are reused.
    for _ in 0..64 {
        match stat(pid) {
            Some(s) if s.ppid > 1 => {
                found.push(s.ppid);
                pid = s.ppid;
            }
            _ => break,
        }
    }
    found
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

/// What a process group uses, summed over its live members.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time, in milliseconds.
    pub cpu_ms: u64,
    /// Resident memory, in bytes.
    pub memory_bytes: u64,
}

/// The usage of every process group that has a live process, sorted by
/// group (look one up with [`usage_of`]): one pass over /proc. Memory
/// shared between members (the same program's text) is counted once per
/// member, as `ps` and Prometheus's own exporters count it.
pub fn group_usage() -> Vec<(Pid, Usage)> {
    let (ticks, page) = (sys::clock_ticks(), sys::page_size());
    let mut groups: Vec<(Pid, Usage)> = Vec::new();
    for pid in pids() {
        let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let Some((pgid, ticks_used, pages)) = usage_fields(&text) else { continue };
        let usage = Usage { cpu_ms: ticks_used * 1000 / ticks, memory_bytes: pages * page };
        match groups.binary_search_by_key(&pgid, |g| g.0) {
            Ok(at) => {
                groups[at].1.cpu_ms += usage.cpu_ms;
                groups[at].1.memory_bytes += usage.memory_bytes;
            }
            Err(at) => groups.insert(at, (pgid, usage)),
        }
    }
    groups
}

/// The usage of process group `pgid` in what [`group_usage`] found.
pub fn usage_of(groups: &[(Pid, Usage)], pgid: Pid) -> Option<Usage> {
    groups.binary_search_by_key(&pgid, |g| g.0).ok().map(|at| groups[at].1)
}

/// The usage of one process (not its group) and when it started, in unix
/// seconds: what the supervisor reports of itself.
#[cfg(feature = "web")]
pub fn process_usage(pid: Pid) -> Option<(Usage, Option<u64>)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, ticks_used, pages) = usage_fields(&text)?;
    let ticks = sys::clock_ticks();
    let usage = Usage { cpu_ms: ticks_used * 1000 / ticks, memory_bytes: pages * sys::page_size() };
    // The boot time is whole seconds in /proc/stat: a start time from it
    // does not wobble between reads, as one from /proc/uptime would.
    let stat = fs::read_to_string("/proc/stat").ok();
    let boot =
        stat.as_deref().and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok()));
    let start = boot.zip(process_starttime(pid)).map(|(boot, start)| boot + start / ticks);
    Some((usage, start))
}

/// From a stat line: the process group, utime + stime (fields 14 and 15,
/// clock ticks) and the resident set (field 24, pages); `None` for a zombie.
fn usage_fields(text: &str) -> Option<(Pid, u64, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    if is_dead(state) {
        return None;
    }
    // `nth(n)` skips n fields: after the state (field 3) comes field 4.
    let mut field = |n: usize| fields.nth(n)?.parse::<u64>().ok();
    let pgid = field(5 - 4)?;
    let utime = field(14 - 6)?;
    let stime = field(0)?;
    let rss = field(24 - 16)?;
    Some((Pid::try_from(pgid).ok()?, utime + stime, rss))
}

/// The numbers on one line of a process's status file (`Groups:`, `Uid:`).
fn status_numbers(pid: Pid, key: &str) -> Vec<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|numbers| numbers.split_ascii_whitespace().filter_map(|g| g.parse().ok()).collect())
        .unwrap_or_default()
}

/// The supplementary groups of a process.
pub fn supplementary_groups(pid: Pid) -> Vec<u32> {
    status_numbers(pid, "Groups:")
}

/// The real user id of a process.
pub fn uid(pid: Pid) -> Option<u32> {
    status_numbers(pid, "Uid:").first().copied()
}

/// The marker value for an instance of the daemon whose state file is `state`.
pub fn marker(state: &str, name: &str, instance: u32) -> String {
    format!("{name}:{instance}:{state}")
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
        let usage = usage_of(&group_usage(), stat.pgid).unwrap();
        assert!(usage.memory_bytes > 0);
    }

    #[test]
    fn usage_fields_are_read_after_the_command_name() {
        // Fields 3..24 of a real line, after a name with spaces and parentheses.
        let line = "42 (a (b) c) S 1 40 40 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 1 0 99 1000 77 18446744073709551615";
        assert_eq!(usage_fields(line), Some((40, 175, 77)));
        assert_eq!(usage_fields("42 (sh) Z 1 40 40 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 99 0 0 0"), None);
    }
}
