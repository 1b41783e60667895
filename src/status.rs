//! The status document and its two renderings.
//!
//! The daemon answers a status request with one JSON document (the shape
//! `status --json` prints, documented in README.md); the client either
//! prints it as is or renders it as a table that fits an 80-column serial
//! console. Keeping one document means the table, the JSON and (later) the
//! web UI can never disagree.
//!
//! The daemon writes the document with [`Document::to_json`] and the client
//! reads it with [`Document::from_json`], a writer for this one shape and
//! the shared reader of `json.rs`. nanoserde's `SerJson` derive would do the
//! writing, but the binary without the web UI has no other use for it;
//! nanoserde's `DeJson` would link a general JSON deserializer and, through
//! the `Debug` of its tokens in its error messages, std's float formatting:
//! 29 KB of the binary without the web UI (see "Binary size" in
//! ARCHITECTURE.md).

use std::fmt::{self, Write as _};

use crate::json::{self, Json, Object};

#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub daemon: DaemonInfo,
    pub processes: Vec<ProcessInfo>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DaemonInfo {
    pub pid: i32,
    pub version: String,
    pub config: String,
}

#[derive(Clone, Debug, PartialEq)]
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
    /// The command line it runs (for `status NAME`); `null` from a
    /// daemon that predates it.
    pub command: Option<String>,
    /// The file its output is captured in, if any.
    pub log_file: Option<String>,
    /// Resident memory of its process group, while a process runs.
    pub memory_bytes: Option<u64>,
    /// CPU time (user + system) of its process group's live processes, in
    /// milliseconds; `cpu_secs` in the JSON.
    pub cpu_ms: Option<u64>,
    /// When the last run ended, in seconds since the Unix epoch, and who
    /// ended it: "user", "daemon" or "itself" (see `service.rs`).
    pub last_exit_at: Option<u64>,
    pub ended_by: Option<String>,
    /// The service may run this many instances (`start` adds one).
    pub max_instances: u32,
}

impl ProcessInfo {
    /// `web`, or `web:1` when the service has more than one instance.
    pub fn label(&self, n_instances: usize) -> String {
        if n_instances > 1 { format!("{}:{}", self.name, self.instance) } else { self.name.clone() }
    }
}

impl Document {
    /// The document as compact JSON, keys in declaration order and absent
    /// values as `null`: what nanoserde's derive wrote, written here
    /// because the binary without the web UI has no other use for it.
    pub fn to_json(&self) -> String {
        let DaemonInfo { pid, version, config } = &self.daemon;
        let mut out = String::new();
        let _ = write!(
            out,
            r#"{{"daemon":{{"pid":{pid},"version":{},"config":{}}},"processes":["#,
            Quoted(version),
            Quoted(config)
        );
        for (n, p) in self.processes.iter().enumerate() {
            let _ = write!(
                out,
                r#"{}{{"name":{},"instance":{},"state":{},"pid":{},"uptime_secs":{},"restarts":{},"last_exit":{},"next_start_secs":{},"status_text":{},"command":{},"log_file":{},"memory_bytes":{},"cpu_secs":{},"last_exit_at":{},"ended_by":{},"max_instances":{}}}"#,
                if n == 0 { "" } else { "," },
                Quoted(&p.name),
                p.instance,
                Quoted(&p.state),
                Nullable(p.pid),
                Nullable(p.uptime_secs),
                p.restarts,
                Nullable(p.last_exit.as_deref().map(Quoted)),
                Nullable(p.next_start_secs),
                Nullable(p.status_text.as_deref().map(Quoted)),
                Nullable(p.command.as_deref().map(Quoted)),
                Nullable(p.log_file.as_deref().map(Quoted)),
                Nullable(p.memory_bytes),
                Nullable(p.cpu_ms.map(Millis)),
                Nullable(p.last_exit_at),
                Nullable(p.ended_by.as_deref().map(Quoted)),
                p.max_instances,
            );
        }
        out.push_str("]}");
        out
    }

    /// Reads the document the daemon sent. Keys it does not know are
    /// skipped, so an older client can read a newer daemon's document; a
    /// missing optional field reads as `null`.
    pub fn from_json(text: &str) -> Result<Document, String> {
        // The document nests three deep; a bound keeps the stack bounded.
        let json = json::parse(text, 16)?;
        let document = Object::of(&json, "the document")?;
        let daemon = Object::of(document.get("daemon")?, "daemon")?;
        let daemon = DaemonInfo {
            pid: daemon.number("pid")?,
            version: daemon.string("version")?,
            config: daemon.string("config")?,
        };
        let Json::Array(items) = document.get("processes")? else {
            return Err("processes: expected an array".into());
        };
        let mut processes = Vec::with_capacity(items.len());
        for item in items {
            let p = Object::of(item, "processes: an element")?;
            processes.push(ProcessInfo {
                name: p.string("name")?,
                instance: p.number("instance")?,
                state: p.string("state")?,
                pid: p.optional("pid", Object::number)?,
                uptime_secs: p.optional("uptime_secs", Object::number)?,
                restarts: p.number("restarts")?,
                last_exit: p.optional("last_exit", Object::string)?,
                next_start_secs: p.optional("next_start_secs", Object::number)?,
                status_text: p.optional("status_text", Object::string)?,
                command: p.optional("command", Object::string)?,
                log_file: p.optional("log_file", Object::string)?,
                memory_bytes: p.optional("memory_bytes", Object::number)?,
                cpu_ms: p.optional("cpu_secs", Object::millis)?,
                last_exit_at: p.optional("last_exit_at", Object::number)?,
                ended_by: p.optional("ended_by", Object::string)?,
                // Absent from an older daemon's document.
                max_instances: p.optional("max_instances", Object::number)?.unwrap_or(1),
            });
        }
        Ok(Document { daemon, processes })
    }
}

/// A JSON string: quoted, with `"`, `\\` and control characters escaped.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '\x08' => f.write_str("\\b")?,
                '\x0c' => f.write_str("\\f")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '"' | '\\' => write!(f, "\\{c}")?,
                _ if c.is_ascii_control() => write!(f, "\\u{:04x}", c as u32)?,
                _ => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// Milliseconds as seconds with three decimals, by integer arithmetic (no
/// float formatting is linked).
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// A value, or `null` for none.
struct Nullable<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Nullable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("null"),
        }
    }
}

/// The status table, at most `width` columns wide. `colour` adds ANSI
/// colours to the state column (only when stdout is a terminal).
pub fn table(processes: &[ProcessInfo], width: usize, colour: bool) -> String {
    let labels = labels(processes);
    let name_w = labels.iter().map(|l| l.len()).max().unwrap_or(0).clamp(4, 20);
    let header = format!(
        "{:<name_w$}  {:<8}  {:>7}  {:>6}  {:>8} {:>5} {:>5}  LAST EXIT",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "MEM", "CPU"
    );
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
        let last_exit = crate::msg::printable(p.last_exit.as_deref().unwrap_or("-"));
        let state = format!("{:<8}", p.state);
        let (mem, cpu) = (p.memory_bytes.map_or("-".into(), short_bytes), p.cpu_ms.map_or("-".into(), short_cpu));
        let line = format!(
            "{:<name_w$}  {state}  {pid:>7}  {uptime:>6}  {:>8} {mem:>5} {cpu:>5}  {last_exit}",
            fit_label(label, name_w),
            p.restarts
        );
        let line = fit(&line, width);
        if colour {
            let code = match p.state.as_str() {
                "running" | "done" => "32",
                "stopping" | "starting" | "backoff" => "33",
                "fatal" => "31",
                _ => "2",
            };
            // The state is plain ASCII at a fixed offset, so colour it in place.
            let at = name_w + 2;
            let _ = write!(out, "{}\x1b[{code}m{}\x1b[0m{}", &line[..at], &line[at..at + 8], &line[at + 8..]);
        } else {
            out.push_str(&line);
        }
        out.push('\n');
        // STATUS= on a line of its own, under its row: the LAST EXIT column
        // keeps how the last run ended, and the text gets the whole width.
        if let Some(text) = &p.status_text {
            out.push_str(&fit(&format!("  status: {}", crate::msg::printable(text)), width));
            out.push('\n');
        }
    }
    out
}

/// One instance's whole record for `status NAME`, as `key: value` lines,
/// nothing cut.
pub fn record(p: &ProcessInfo, label: &str) -> String {
    let none = || "-".to_string();
    let uptime = match (p.uptime_secs, p.next_start_secs) {
        (Some(secs), _) => crate::msg::short_duration(secs),
        (None, Some(secs)) => format!("- (next start in {})", crate::msg::short_duration(secs)),
        (None, None) => none(),
    };
    let fields = [
        ("name", label.to_string()),
        ("state", p.state.clone()),
        ("pid", p.pid.map_or_else(none, |pid| pid.to_string())),
        ("uptime", uptime),
        ("restarts", p.restarts.to_string()),
        ("last exit", p.last_exit.clone().unwrap_or_else(none)),
        ("status text", p.status_text.clone().unwrap_or_else(none)),
        ("command", p.command.clone().unwrap_or_else(none)),
        ("log file", p.log_file.clone().unwrap_or_else(none)),
    ];
    let mut out = String::new();
    for (key, value) in fields {
        let _ = writeln!(out, "{key}: {}", crate::msg::printable(&value));
    }
    out
}

/// The labels of `processes`, as the table shows them: `web`, or `web:1`
/// for a service with more than one instance listed.
pub fn labels(processes: &[ProcessInfo]) -> Vec<String> {
    // Instances per service, counted by bisecting the sorted names (1,000
    // rows must stay cheap; no hash map, whose code would be linked for this).
    let mut names: Vec<&str> = processes.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    let n_instances = |name: &str| names.partition_point(|n| *n <= name) - names.partition_point(|n| *n < name);
    processes.iter().map(|p| p.label(n_instances(&p.name))).collect()
}

/// A label cut to `width`, keeping its `:N` instance suffix whole:
/// `a-very-long-na~:1`.
fn fit_label(label: &str, width: usize) -> String {
    match label.rsplit_once(':') {
        Some((base, n)) if label.chars().count() > width && n.len() + 3 <= width => {
            format!("{}:{n}", fit(base, width - n.len() - 1))
        }
        _ => fit(label, width),
    }
}

/// Bytes in at most five characters: 980K, 9.5M, 120M, 1.2G.
fn short_bytes(bytes: u64) -> String {
    let kib = bytes / 1024;
    let (value, unit) = match kib {
        0..1024 => return format!("{kib}K"),
        1024..1_048_576 => (kib * 10 / 1024, 'M'),
        _ => (kib * 10 / 1_048_576, 'G'),
    };
    if value < 100 { format!("{}.{}{unit}", value / 10, value % 10) } else { format!("{}{unit}", value / 10) }
}

/// CPU time in at most five characters: 0.25s, 12.3s, 99.9s, then whole
/// minutes, hours or days (12m, 3h, 4d). The name column is at most 20
/// wide so that, with MEM and CPU, LAST EXIT still fits in 80 columns.
fn short_cpu(ms: u64) -> String {
    let secs = ms / 1000;
    match ms {
        0..10_000 => format!("{secs}.{:02}s", ms % 1000 / 10),
        10_000..100_000 => format!("{secs}.{}s", ms % 1000 / 100),
        100_000..3_600_000 => format!("{}m", secs / 60),
        3_600_000..86_400_000 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
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
            command: None,
            log_file: None,
            memory_bytes: (state == "running").then_some(123 << 20),
            cpu_ms: (state == "running").then_some(4_321),
            last_exit_at: None,
            ended_by: None,
            max_instances: 1,
        }
    }

    #[test]
    fn json_has_the_documented_shape() {
        let doc = Document {
            daemon: DaemonInfo { pid: 1, version: "0.1.0".into(), config: "/etc/daemon.toml".into() },
            processes: vec![info("web", 0, "stopped", None)],
        };
        let json = doc.to_json();
        assert_eq!(
            json,
            r#"{"daemon":{"pid":1,"version":"0.1.0","config":"/etc/daemon.toml"},"processes":[{"name":"web","instance":0,"state":"stopped","pid":null,"uptime_secs":null,"restarts":12,"last_exit":null,"next_start_secs":null,"status_text":null,"command":null,"log_file":null,"memory_bytes":null,"cpu_secs":null,"last_exit_at":null,"ended_by":null,"max_instances":1}]}"#
        );
        assert_eq!(Document::from_json(&json).unwrap(), doc);
        // Escapes as nanoserde wrote them, which earlier daemons sent.
        let quoted = Quoted("a\"\\\n\t\u{8}\u{c}\r\u{1}\u{7f}\u{e9}").to_string();
        assert_eq!(quoted, r#""a\"\\\n\t\b\f\r\u0001\u007fé""#);
    }

    #[test]
    fn the_reader_takes_what_the_writer_writes_and_skips_unknown_keys() {
        let mut p = info("w\u{e9}b", 3, "running", Some("a \"quoted\"\\ line\n\t\u{1} \u{1F600}"));
        p.status_text = Some("</script> \u{7f}".into());
        let doc = Document {
            daemon: DaemonInfo { pid: i32::MAX, version: "0.1.0".into(), config: "/etc/d\u{e9}mon.toml".into() },
            processes: vec![p, info("b", 0, "backoff", None)],
        };
        assert_eq!(Document::from_json(&doc.to_json()).unwrap(), doc);
        let newer = r#" { "daemon" : {"pid":-1,"version":"9","config":"c","extra":[1.5e3,{"x":null},true]},
            "processes":[{"name":"a\u00e9\ud83d\ude00\/","instance":0,"state":"stopped","restarts":0,"pid":null,"new":false}] } "#;
        let read = Document::from_json(newer).unwrap();
        assert_eq!(read.daemon.pid, -1);
        assert_eq!(read.processes[0].name, "a\u{e9}\u{1F600}/");
        assert_eq!(read.processes[0].uptime_secs, None);
        assert_eq!(read.processes[0].cpu_ms, None, "a daemon before cpu_secs");
        let cpu = |secs: &str| {
            let text = format!(
                r#"{{"daemon":{{"pid":1,"version":"","config":""}},"processes":[{{"name":"a","instance":0,"state":"running","restarts":0,"cpu_secs":{secs}}}]}}"#
            );
            Document::from_json(&text).map(|d| d.processes[0].cpu_ms)
        };
        assert_eq!(cpu("12.345"), Ok(Some(12_345)));
        assert_eq!(cpu("0.5"), Ok(Some(500)));
        assert_eq!(cpu("7"), Ok(Some(7_000)));
        assert_eq!(cpu("1.23456"), Ok(Some(1_234)));
        assert_eq!(cpu("-1.0"), Err("cpu_secs: -1.0 is not a number of seconds".into()));
        assert_eq!(cpu("1e3"), Err("cpu_secs: 1e3 is not a number of seconds".into()));
        assert_eq!(cpu("1.2e3"), Err("cpu_secs: 1.2e3 is not a number of seconds".into()));
    }

    #[test]
    fn memory_and_cpu_are_short() {
        let cases = [(0, "0K"), (1023 << 10, "1023K"), (1024 << 10, "1.0M"), (9_961_472, "9.5M"), (120 << 20, "120M")];
        for (bytes, shown) in cases {
            assert_eq!(short_bytes(bytes), shown);
        }
        assert_eq!(short_bytes(5 << 40), "5120G");
        assert_eq!(short_bytes(1288 << 20), "1.2G");
        let cpu = [250, 12_345, 99_999, 754_000, 7_200_000, 900_000_000].map(short_cpu);
        assert_eq!(cpu, ["0.25s", "12.3s", "99.9s", "12m", "2h", "10d"]);
        assert_eq!(Millis(12_005).to_string(), "12.005");
    }

    #[test]
    fn the_reader_says_what_is_wrong_and_where() {
        let err = |text: &str| Document::from_json(text).unwrap_err();
        // Found by fuzzing: a high surrogate followed by a \u escape that is
        // no low surrogate overflowed the code point arithmetic.
        assert_eq!(err(r#""\ud83d\u0ed0""#), "at byte 13: expected a valid \\u escape");
        assert_eq!(err(""), "at byte 0: expected a value");
        assert_eq!(err(r#"{"daemon":1}"#), "daemon: expected an object");
        assert_eq!(err(r#"{"daemon":{"pid":1}}"#), "missing key \"version\"");
        assert_eq!(err(r#"{"daemon":{"pid":1.5,"version":"","config":""}}"#), "pid: 1.5 is not an integer in range");
        assert_eq!(err(r#"{"a":"\u12"}"#), "at byte 8: expected four hex digits");
        assert_eq!(err(r#"{"a":"\udc00"}"#), "at byte 12: expected a valid \\u escape");
        assert_eq!(err(r#"{"a":"\é"}"#), "at byte 7: expected an escape");
        assert_eq!(err(r#"{"a" 1}"#), "at byte 5: expected ':'");
        assert_eq!(err(r#"{"a":1} x"#), "at byte 8: expected the end of the document");
        assert_eq!(err(&"[".repeat(100)), "at byte 17: expected less nesting");
        assert_eq!(err(r#"{"a":"x"#), "at byte 6: expected the end of the string");
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
        assert!(table.contains(" 123M 4.32s "), "{table}");
    }

    #[test]
    fn status_text_has_its_own_line_and_the_last_exit_stays() {
        let mut p = info("web", 0, "running", Some("exit 1"));
        p.status_text = Some("serving 42 clients".into());
        let table = table(&[p, info("db", 0, "stopped", None)], 80, false);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[1].starts_with("web ") && lines[1].ends_with("  exit 1"), "{table}");
        assert_eq!(lines[2], "  status: serving 42 clients");
        assert!(lines[3].starts_with("db "), "{table}");
    }

    #[test]
    fn a_cut_name_keeps_its_instance() {
        let name = "a-very-long-service-name-indeed-yes";
        let rows = [info(name, 0, "running", None), info(name, 12, "running", None)];
        let table = table(&rows, 80, false);
        let labels: Vec<&str> = table.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
        assert_eq!(labels, ["a-very-long-servi~:0", "a-very-long-serv~:12"], "{table}");
        assert_eq!(fit_label("short:1", 24), "short:1");
        assert_eq!(fit_label(name, 24), "a-very-long-service-nam~");
    }

    #[test]
    fn a_record_is_whole() {
        let long = "x".repeat(200);
        let mut p = info("web", 1, "running", Some(&long));
        p.status_text = Some("ready".into());
        p.command = Some("/usr/sbin/nginx -g 'daemon off;'".into());
        p.log_file = Some("/var/log/web.log".into());
        let record = record(&p, "web:1");
        assert_eq!(
            record,
            format!(
                "name: web:1\nstate: running\npid: 4194304\nuptime: 4d15h\nrestarts: 12\nlast exit: {long}\n\
                 status text: ready\ncommand: /usr/sbin/nginx -g 'daemon off;'\nlog file: /var/log/web.log\n"
            )
        );
        let waiting = super::record(&info("db", 0, "backoff", None), "db");
        assert!(waiting.contains("\nuptime: - (next start in 3s)\n"), "{waiting}");
        assert!(waiting.contains("\nlog file: -\n"), "{waiting}");
    }
}
