//! The supervisor's state in Prometheus's text exposition format (0.0.4),
//! served as `GET /metrics` by the web listener (`daemon/web.rs`).
//!
//! A fleet of routers is watched by the monitoring engine operators
//! already run, so each supervisor says what its `status` says in the
//! format Prometheus scrapes, with its conventions: a `mi7soft_` prefix,
//! `_total` for counters, seconds and bytes, HELP and TYPE lines, one
//! series per instance labelled `name` and `instance`. The renderer is
//! pure: it reads the status document (which already holds CPU time and
//! memory, read from /proc for this request) and what the daemon knows of
//! itself, and is unit-tested on plain data. Only the web build has it.
//!
//! The state is a gauge per state name, 1 for the current one, so that
//! `mi7soft_service_state{state="fatal"} == 1` selects what gave up.

use std::fmt::{self, Write as _};

use crate::status::{Millis, ProcessInfo};

/// The states a service can be in, as `status` names them.
const STATES: [&str; 8] = ["stopped", "waiting", "starting", "running", "stopping", "backoff", "exited", "fatal"];

/// What the supervisor reports of itself.
pub struct Supervisor {
    pub version: &'static str,
    /// Unix seconds.
    pub start_time: Option<u64>,
    pub cpu_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    /// Services in the config.
    pub n_services: usize,
    /// Output bytes that capture dropped because its log could not be written.
    pub dropped_bytes: u64,
}

/// The exposition: `processes` with, for each, its process's start in
/// unix seconds (in `starts`, the same order; 0 when nothing runs).
pub fn render(supervisor: &Supervisor, processes: &[ProcessInfo], starts: &[u64]) -> String {
    let mut out = String::with_capacity(1024 + processes.len() * 1024);
    let Supervisor { version, start_time, cpu_ms, memory_bytes, n_services, dropped_bytes } = supervisor;
    family(&mut out, "build_info", "gauge", "The supervisor's version, as a label; always 1.");
    let _ = writeln!(out, "mi7soft_build_info{{version=\"{}\"}} 1", Escaped(version));
    if let Some(start) = start_time {
        family(&mut out, "start_time_seconds", "gauge", "When the supervisor started, in unix seconds.");
        let _ = writeln!(out, "mi7soft_start_time_seconds {start}");
    }
    if let Some(ms) = cpu_ms {
        family(&mut out, "cpu_seconds_total", "counter", "The supervisor's user and system CPU time.");
        let _ = writeln!(out, "mi7soft_cpu_seconds_total {}", Millis(*ms));
    }
    if let Some(bytes) = memory_bytes {
        family(&mut out, "resident_memory_bytes", "gauge", "The supervisor's resident memory.");
        let _ = writeln!(out, "mi7soft_resident_memory_bytes {bytes}");
    }
    family(&mut out, "services", "gauge", "Services in the config.");
    let _ = writeln!(out, "mi7soft_services {n_services}");
    family(&mut out, "capture_dropped_bytes_total", "counter", "Service output dropped because its log failed.");
    let _ = writeln!(out, "mi7soft_capture_dropped_bytes_total {dropped_bytes}");

    // One family at a time, as the format requires: each walks the instances.
    let each =
        |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&ProcessInfo, u64) -> Option<Value>| {
            family(out, name, kind, help);
            for (p, &start) in processes.iter().zip(starts) {
                if let Some(v) = value(p, start) {
                    let _ = writeln!(out, "mi7soft_{name}{{{}}} {v}", Labels(p));
                }
            }
        };
    let up = |p: &ProcessInfo| p.pid.is_some();
    each(&mut out, "service_up", "gauge", "1 when a process of the instance runs.", &|p, _| {
        Some(Value::Int(up(p).into()))
    });
    each(&mut out, "service_ready", "gauge", "1 when the instance runs and is ready.", &|p, _| {
        Some(Value::Int((p.state == "running").into()))
    });
    family(&mut out, "service_state", "gauge", "1 for the state the instance is in, 0 for the others.");
    for p in processes {
        for state in STATES {
            let _ = writeln!(
                out,
                "mi7soft_service_state{{{},state=\"{state}\"}} {}",
                Labels(p),
                u8::from(p.state == state)
            );
        }
    }
    each(&mut out, "service_restarts_total", "counter", "Starts of the instance after its first.", &|p, _| {
        Some(Value::Int(p.restarts.into()))
    });
    each(
        &mut out,
        "service_start_time_seconds",
        "gauge",
        "When the running process started, in unix seconds.",
        &|p, start| (up(p) && start > 0).then_some(Value::Int(start)),
    );
    each(&mut out, "service_last_exit_code", "gauge", "The exit code of the instance's last process.", &|p, _| {
        exit(p, "exit ").map(Value::Int)
    });
    each(
        &mut out,
        "service_last_exit_signal",
        "gauge",
        "The signal that ended the instance's last process.",
        &|p, _| exit(p, "signal ").map(Value::Int),
    );
    each(
        &mut out,
        "service_cpu_seconds_total",
        "counter",
        "User and system CPU time of the running process group.",
        &|p, _| p.cpu_ms.map(Value::Millis),
    );
    each(
        &mut out,
        "service_resident_memory_bytes",
        "gauge",
        "Resident memory of the running process group.",
        &|p, _| p.memory_bytes.map(Value::Int),
    );
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP mi7soft_{name} {help}\n# TYPE mi7soft_{name} {kind}\n");
}

/// The number in `last_exit` ("exit 1", "signal 9 (KILL)") after `prefix`.
fn exit(p: &ProcessInfo, prefix: &str) -> Option<u64> {
    let rest = p.last_exit.as_deref()?.strip_prefix(prefix)?;
    rest.split(' ').next()?.parse().ok()
}

enum Value {
    Int(u64),
    Millis(u64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => n.fmt(f),
            Value::Millis(ms) => Millis(*ms).fmt(f),
        }
    }
}

/// `name="web",instance="0"`.
struct Labels<'a>(&'a ProcessInfo);

impl fmt::Display for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "name=\"{}\",instance=\"{}\"", Escaped(&self.0.name), self.0.instance)
    }
}

/// A label value: backslash, double quote and newline escaped.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                _ => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, state: &str, last_exit: Option<&str>) -> ProcessInfo {
        let up = matches!(state, "running" | "starting");
        ProcessInfo {
            name: name.into(),
            instance: 0,
            state: state.into(),
            pid: up.then_some(42),
            uptime_secs: None,
            restarts: 3,
            last_exit: last_exit.map(str::to_string),
            next_start_secs: None,
            status_text: None,
            command: None,
            log_file: None,
            last_exit_at: None,
            ended_by: None,
            max_instances: 1,
            memory_bytes: up.then_some(1 << 20),
            cpu_ms: up.then_some(1_250),
        }
    }

    #[test]
    fn every_series_has_its_family_and_the_values_are_right() {
        let supervisor = Supervisor {
            version: "0.1.0",
            start_time: Some(1_700_000_000),
            cpu_ms: Some(10),
            memory_bytes: Some(4096),
            n_services: 2,
            dropped_bytes: 7,
        };
        let processes = [info("web", "running", Some("signal 9 (KILL)")), info("a\"b", "fatal", Some("exit 127"))];
        let text = render(&supervisor, &processes, &[1_700_000_100, 0]);
        for line in [
            "mi7soft_build_info{version=\"0.1.0\"} 1",
            "mi7soft_cpu_seconds_total 0.010",
            "mi7soft_capture_dropped_bytes_total 7",
            "mi7soft_service_up{name=\"web\",instance=\"0\"} 1",
            "mi7soft_service_up{name=\"a\\\"b\",instance=\"0\"} 0",
            "mi7soft_service_ready{name=\"web\",instance=\"0\"} 1",
            "mi7soft_service_state{name=\"web\",instance=\"0\",state=\"running\"} 1",
            "mi7soft_service_state{name=\"web\",instance=\"0\",state=\"fatal\"} 0",
            "mi7soft_service_state{name=\"a\\\"b\",instance=\"0\",state=\"fatal\"} 1",
            "mi7soft_service_restarts_total{name=\"web\",instance=\"0\"} 3",
            "mi7soft_service_start_time_seconds{name=\"web\",instance=\"0\"} 1700000100",
            "mi7soft_service_last_exit_signal{name=\"web\",instance=\"0\"} 9",
            "mi7soft_service_last_exit_code{name=\"a\\\"b\",instance=\"0\"} 127",
            "mi7soft_service_cpu_seconds_total{name=\"web\",instance=\"0\"} 1.250",
            "mi7soft_service_resident_memory_bytes{name=\"web\",instance=\"0\"} 1048576",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        // Nothing runs for a\"b: no start time, CPU or memory.
        assert_eq!(text.matches("name=\"a\\\"b\"").count(), 2 + 8 + 2, "{text}");
        // Each family is announced once, before its samples.
        let mut announced = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap();
                assert!(!announced.contains(&name), "{name} twice");
                announced.push(name);
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(announced.last(), Some(&name), "{line}");
            }
        }
    }
}
