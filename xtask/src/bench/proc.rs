//! What the bench reads from /proc, and the one way it ends processes.
//!
//! Every figure of the bench comes from the kernel's own accounting:
//! `smaps_rollup` for RSS and PSS, the context-switch counters of
//! `/proc/PID/status` for idle cost, `utime + stime` of `/proc/PID/stat` for
//! CPU. None of it needs ptrace or a crate.
//!
//! Processes are found by a tag, not by name: everything the bench starts
//! carries `MI7SOFT_BENCH=<its directory>` in its environment, which
//! supervisors pass on to their services, so [`tagged`] finds exactly the
//! processes of one bench (or of one fleet) and nothing of a test running
//! beside it. The xtask process itself is never tagged.

use std::fs;
use std::process::{Command, Stdio};

/// The environment variable that marks the bench's processes.
pub const TAG: &str = "MI7SOFT_BENCH";

/// Every pid in /proc.
pub fn pids() -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// The pids whose environment has `MI7SOFT_BENCH=<value>` with `value`
/// equal to `dir`, or, with `below`, starting with `dir/`.
pub fn tagged(dir: &str, below: bool) -> Vec<u32> {
    let exact = format!("{TAG}={dir}");
    let prefix = format!("{TAG}={dir}/");
    pids()
        .into_iter()
        .filter(|&pid| {
            let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) else { return false };
            environ
                .split(|&b| b == 0)
                .any(|var| if below { var.starts_with(prefix.as_bytes()) } else { var == exact.as_bytes() })
        })
        .collect()
}

/// The command name of a process (at most 15 bytes, the kernel's `comm`).
pub fn comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|s| s.trim_end().to_string())
}

/// The arguments of a process.
pub fn cmdline(pid: u32) -> Vec<String> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    bytes.split(|&b| b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
}

/// Resident and proportional set size, in KiB, from smaps_rollup.
#[derive(Clone, Copy, Default, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;
    fn add(self, other: Memory) -> Memory {
        Memory { rss_kib: self.rss_kib + other.rss_kib, pss_kib: self.pss_kib + other.pss_kib }
    }
}

pub fn memory(pid: u32) -> Option<Memory> {
    let text = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    Some(Memory { rss_kib: field(&text, "Rss:")?, pss_kib: field(&text, "Pss:")? })
}

/// Voluntary plus nonvoluntary context switches of the process, summed over
/// its threads (`/proc/PID/status` alone counts only the main thread's).
pub fn context_switches(pid: u32) -> Option<u64> {
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread that ended since the listing has nothing to add.
        let Ok(text) = fs::read_to_string(task.path().join("status")) else { continue };
        total += field(&text, "voluntary_ctxt_switches:")? + field(&text, "nonvoluntary_ctxt_switches:")?;
    }
    Some(total)
}

/// utime + stime of the process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from
    // the last ')'. After it come field 3 (state) onwards; utime is 14.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second, for [`cpu_ticks`].
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100)
}

/// The number after `key` at the start of a line (`Rss:   2388 kB`).
fn field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Sends SIGKILL to the given processes, which the bench started (directly
/// or through a supervisor it started). Gone ones are ignored.
pub fn kill(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-9")
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills every process tagged with `dir` (or below it), until none is left:
/// a supervisor killed in one pass may have started a service in it.
pub fn kill_tagged(dir: &str, below: bool) {
    for _ in 0..20 {
        let pids = tagged(dir, below);
        // Zombies have an empty environ, so they are not found again.
        if pids.is_empty() {
            return;
        }
        kill(&pids);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_proc_text() {
        let text = "Rss:                2388 kB\nPss:                 926 kB\nPss_Dirty: 208 kB\n";
        assert_eq!(field(text, "Rss:"), Some(2388));
        assert_eq!(field(text, "Pss:"), Some(926));
        assert_eq!(field(text, "Swap:"), None);
    }

    #[test]
    fn our_own_process_is_readable() {
        let pid = std::process::id();
        assert!(memory(pid).is_some_and(|m| m.rss_kib > 0 && m.pss_kib > 0));
        assert!(context_switches(pid).is_some());
        assert!(cpu_ticks(pid).is_some());
        assert!(comm(pid).is_some());
    }
}
