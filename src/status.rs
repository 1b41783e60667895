//! The status document and its two renderings.
//!
//! The daemon answers a status request with one JSON document (the shape
//! `status --json` prints, documented in README.md); the client either
//! prints it as is or renders it as a table that fits an 80-column serial
//! console. Keeping one document means the table, the JSON and (later) the
//! web UI can never disagree.

// nanoserde's derive expands Option fields into code that clippy would write
// with `?`; the lint cannot be scoped to the derived impl alone.
#![allow(clippy::question_mark)]

use nanoserde::{DeJson, SerJson};

#[derive(Clone, Debug, PartialEq, SerJson, DeJson)]
pub struct Document {
    pub daemon: DaemonInfo,
    pub processes: Vec<ProcessInfo>,
}

#[derive(Clone, Debug, PartialEq, SerJson, DeJson)]
pub struct DaemonInfo {
    pub pid: i32,
    pub version: String,
    pub config: String,
}

#[derive(Clone, Debug, PartialEq, SerJson, DeJson)]
#[nserde(serialize_none_as_null)]
pub struct ProcessInfo {
    pub name: String,
    pub instance: u32,
    pub state: String,
    pub pid: Option<i32>,
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// In `backoff`: seconds until the next start is due.
    pub next_start_secs: Option<u64>,
    /// The last STATUS= the service sent over the notify socket.
    pub status_text: Option<String>,
}

impl ProcessInfo {
    /// `web`, or `web:1` when the service has more than one instance.
    pub fn label(&self, n_instances: usize) -> String {
        if n_instances > 1 { format!("{}:{}", self.name, self.instance) } else { self.name.clone() }
    }
}

/// The status table, at most `width` columns wide. `colour` adds ANSI
/// colours to the state column (only when stdout is a terminal).
pub fn table(processes: &[ProcessInfo], width: usize, colour: bool) -> String {
    // Instances per service, counted once (1,000 rows must stay cheap).
    let mut n_instances: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for p in processes {
        *n_instances.entry(p.name.as_str()).or_default() += 1;
    }
    let labels: Vec<String> = processes.iter().map(|p| p.label(n_instances[p.name.as_str()])).collect();
    let name_w = labels.iter().map(|l| l.len()).max().unwrap_or(0).clamp(4, 24);
    let header =
        format!("{:<name_w$}  {:<8}  {:>7}  {:>6}  {:>8}  LAST EXIT", "NAME", "STATE", "PID", "UPTIME", "RESTARTS");
    let mut out = String::new();
    out.push_str(&fit(&header, width));
    out.push('\n');
    for (p, label) in processes.iter().zip(&labels) {
        let pid = p.pid.map_or("-".to_string(), |pid| pid.to_string());
        let uptime = match (p.uptime_secs, p.next_start_secs) {
            (Some(secs), _) => crate::msg::short_duration(secs),
            // For a service in backoff the column says when it starts again.
            (None, Some(secs)) => format!("in {}", crate::msg::short_duration(secs)),
            (None, None) => "-".to_string(),
        };
        // A running service's own STATUS= says more than how it last ended.
        let last_exit = match (&p.status_text, p.state.as_str()) {
            (Some(text), "running" | "starting") => text.as_str(),
            _ => p.last_exit.as_deref().unwrap_or("-"),
        };
        let state = format!("{:<8}", p.state);
        let line =
            format!("{:<name_w$}  {state}  {pid:>7}  {uptime:>6}  {:>8}  {last_exit}", fit(label, name_w), p.restarts);
        let line = fit(&line, width);
        if colour {
            let code = match p.state.as_str() {
                "running" => "32",
                "stopping" | "starting" | "backoff" => "33",
                "fatal" => "31",
                _ => "2",
            };
            // The state is plain ASCII at a fixed offset, so colour it in place.
            let at = name_w + 2;
            out.push_str(&format!("{}\x1b[{code}m{}\x1b[0m{}", &line[..at], &line[at..at + 8], &line[at + 8..]));
        } else {
            out.push_str(&line);
        }
        out.push('\n');
    }
    out
}

/// Cuts `s` to `width` characters, marking a cut with `~`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('~');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, instance: u32, state: &str, last_exit: Option<&str>) -> ProcessInfo {
        ProcessInfo {
            name: name.into(),
            instance,
            state: state.into(),
            pid: (state == "running").then_some(4_194_304),
            uptime_secs: (state == "running").then_some(400_000),
            restarts: 12,
            last_exit: last_exit.map(str::to_string),
            next_start_secs: (state == "backoff").then_some(3),
            status_text: None,
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let doc = Document {
            daemon: DaemonInfo { pid: 1, version: "0.1.0".into(), config: "/etc/daemon.toml".into() },
            processes: vec![info("web", 0, "stopped", None)],
        };
        let json = doc.serialize_json();
        assert_eq!(
            json,
            r#"{"daemon":{"pid":1,"version":"0.1.0","config":"/etc/daemon.toml"},"processes":[{"name":"web","instance":0,"state":"stopped","pid":null,"uptime_secs":null,"restarts":12,"last_exit":null,"next_start_secs":null,"status_text":null}]}"#
        );
        assert_eq!(Document::deserialize_json(&json).unwrap(), doc);
    }

    #[test]
    fn table_fits_80_columns_and_labels_instances() {
        let long = "exec /usr/local/bin/a-very-long-program-name: No such file or directory";
        let rows = [
            info("web", 0, "running", None),
            info("web", 1, "backoff", Some(long)),
            info("a-very-long-service-name-indeed-yes", 0, "fatal", Some(long)),
        ];
        let table = table(&rows, 80, false);
        for line in table.lines() {
            assert!(line.chars().count() <= 80, "{line:?} is {} wide", line.chars().count());
            assert!(line.is_ascii());
        }
        assert!(table.contains("web:0 "), "{table}");
        assert!(table.contains("web:1 "), "{table}");
        assert!(table.lines().next().unwrap().starts_with("NAME"));
    }
}
