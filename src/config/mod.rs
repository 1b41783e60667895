//! daemon.toml: finding it, parsing it, and checking every key.
//!
//! The file is parsed with toml_edit's span-keeping `Document`, so every
//! complaint names the file, line and column of the offending key or value.
//! All problems are collected, not just the first, so `check` shows a user
//! everything to fix in one go. Nothing downstream sees TOML: the result is a
//! plain [`Config`], and a config either loads completely or not at all, which
//! is what lets `reload` refuse a bad edit without touching anything.
//!
//! Relative paths in the file resolve against the directory of the file, so a
//! config behaves the same wherever the daemon is started from.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::msg;
use toml_edit::{Document, InlineTable, Item, Table, TableLike, Value};

/// The name of the config file looked up in the current directory.
pub const DEFAULT_FILE: &str = "daemon.toml";

/// Written to ./daemon.toml when no config exists: paths that work without
/// root, and one harmless service so `start` shows something running.
pub const DEFAULT_CONFIG: &str = r#"# mi7soft-daemon configuration.
# Relative paths are relative to the directory of this file.
# Reference: README.md, section "Configuration".

[daemon]
pid_file = "mi7soft-daemon.pid"          # held locked while the daemon runs
# log_file = "mi7soft-daemon.log"        # the daemon's log with --daemonize (default: pid_file with .log)
check_interval = 3                       # seconds between liveness checks of adopted services
                                         # (only on kernels without pidfd, before Linux 5.3)
# control_socket = "mi7soft-daemon.sock" # default: pid_file with the extension .sock
# state_file = "mi7soft-daemon.state"    # default: pid_file with the extension .state
# subreaper = false                      # reap orphaned grandchildren of services

# One [[processes]] table per service.
[[processes]]
name = "example"                         # unique; letters, digits, '.', '_', '-'
command = "sh"                           # a path, or a name searched in PATH
args = ["-c", "echo example service up; while :; do sleep 3600; done"]
# working_directory = "/opt/example"     # default: the directory of this file
restart = "always"                       # or "on-failure", "never" (auto_restart = true/false works too)
# max_instances = 1                      # start-process may run up to this many
# autostart = true                       # start it when the daemon starts
# environment = { GREETING = "hello" }   # added to the inherited environment
"#;

/// A loaded, fully checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, absolute.
    pub path: PathBuf,
    pub daemon: DaemonSettings,
    /// Shared with the daemon's slots, which hold the definition they run.
    pub services: Vec<Rc<ServiceDef>>,
    /// The `[web]` table: the web UI's server, off when absent.
    #[cfg_attr(not(feature = "web"), allow(dead_code))]
    pub web: Option<WebSettings>,
}

/// `[web] listen = "127.0.0.1:9001"`, with `token` or `token_file`.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(not(feature = "web"), allow(dead_code))]
pub struct WebSettings {
    pub listen: std::net::SocketAddr,
    /// Required to sign in; without one, only loopback is allowed.
    pub token: Option<String>,
}

/// The `[daemon]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonSettings {
    pub pid_file: PathBuf,
    pub log_file: Option<PathBuf>,
    pub check_interval: u32,
    pub control_socket: PathBuf,
    pub state_file: PathBuf,
    /// Adopt orphaned descendants (PR_SET_CHILD_SUBREAPER) and reap them.
    pub subreaper: bool,
    /// Members of this group may run `status` over the control socket.
    pub control_group: Option<u32>,
    /// ... and, with this, every other command too.
    pub control_group_commands: bool,
}

/// One `[[processes]]` entry: what to run and how to treat it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceDef {
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    pub working_directory: Option<PathBuf>,
    /// When and how it is restarted and stopped; applies without a restart.
    pub policy: Rc<Policy>,
    pub max_instances: u32,
    pub autostart: bool,
    /// Added to (and overriding) the daemon's environment, in file order.
    pub environment: Vec<(String, String)>,
    /// Start from an empty environment (plus PATH) instead of the daemon's.
    pub clear_environment: bool,
    /// The user it runs as (HOME, USER and LOGNAME are set for it).
    pub user: Option<crate::users::User>,
    /// What the process switches to before exec; `None` keeps the daemon's.
    pub credentials: Option<crate::sys::Credentials>,
    pub umask: Option<u32>,
    pub nice: Option<i32>,
    /// `limits = { nofile = 4096 }`, as (name, limit) in file order.
    pub limits: Vec<(String, crate::sys::Limit)>,
    /// Where stdout and stderr are captured to; `None`: the daemon's own.
    pub capture: Option<crate::capture::Sink>,
    /// Prefix each captured line with a UTC timestamp.
    pub log_timestamps: bool,
    /// Services that must be ready before this one starts.
    pub depends_on: Vec<String>,
    /// Restart this service when one it depends on is restarted by the user.
    pub restart_dependents: bool,
    pub health_check: Option<HealthCheck>,
}

impl ServiceDef {
    /// A stable hash of what a process is started with. Two definitions
    /// with the same fingerprint run the same program the same way, so
    /// only a change of fingerprint needs a restart; policy keys
    /// (the [`Policy`], autostart, max_instances) apply live.
    pub fn fingerprint(&self) -> u64 {
        // What else shapes the process, in a fixed form. Each key adds to
        // the hash only when set away from its default, so a new version
        // that adds keys leaves old fingerprints alone: an upgrade must not
        // look like an edit of every service.
        let mut extra = String::new();
        if self.clear_environment {
            extra.push_str(" clear");
        }
        if let Some(umask) = self.umask {
            let _ = write!(extra, " umask={umask:o}");
        }
        if let Some(nice) = self.nice {
            let _ = write!(extra, " nice={nice}");
        }
        // Whether output is captured decides where fd 1 and 2 point; the
        // sink itself (file, rotation, syslog) changes live.
        if self.capture.is_some() {
            extra.push_str(" captured");
        }
        if let Some(c) = &self.credentials {
            let _ = write!(extra, " uid={} gid={} groups={:?}", c.uid, c.gid, c.groups);
        }
        for (name, limit) in &self.limits {
            let _ = write!(extra, " {name}={:?}", limit.value);
        }
        let cwd = self.working_directory.as_ref().map(|p| p.as_os_str().as_encoded_bytes());
        let parts = std::iter::once(self.command.as_bytes())
            .chain(std::iter::once(&b"args"[..]))
            .chain(self.args.iter().map(|a| a.as_bytes()))
            .chain(std::iter::once(&b"cwd"[..]))
            .chain(cwd)
            .chain(std::iter::once(&b"env"[..]))
            .chain(self.environment.iter().flat_map(|(k, v)| [k.as_bytes(), v.as_bytes()]));
        crate::state::fingerprint(parts.chain((!extra.is_empty()).then_some(extra.as_bytes())))
    }
}

impl ServiceDef {
    /// Stands in for a service found running from the state file but gone
    /// from the config: it is only ever stopped.
    pub fn removed(name: &str) -> ServiceDef {
        ServiceDef {
            name: name.to_string(),
            command: "(removed from the config)".into(),
            args: Vec::new(),
            working_directory: None,
            policy: Rc::new(Policy { restart: Restart::Never, ..Policy::default() }),
            max_instances: 1,
            autostart: false,
            environment: Vec::new(),
            clear_environment: false,
            user: None,
            credentials: None,
            umask: None,
            nice: None,
            limits: Vec::new(),
            capture: None,
            log_timestamps: true,
            depends_on: Vec::new(),
            restart_dependents: false,
            health_check: None,
        }
    }
}

/// When a service is restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Always,
    /// Only after an exit code outside `success_exit_codes`, or a signal the
    /// daemon did not send.
    OnFailure,
    Never,
}

/// The restart and stop policy of a service (the keys that apply live).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub restart: Restart,
    pub success_exit_codes: Vec<i32>,
    /// A process that ran this long is restarted at once; one that died
    /// sooner waits out an exponential backoff.
    pub min_uptime: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// More than this many starts within `start_limit_interval` and the
    /// service is left `fatal`; 0 turns the limit off.
    pub start_limit_burst: u32,
    pub start_limit_interval: Duration,
    pub stop_signal: libc::c_int,
    pub stop_timeout: Duration,
    /// When a started process counts as ready (`starting` → `running`).
    pub ready: Ready,
    /// How long a process may take to become ready before it is failed.
    pub ready_timeout: Duration,
    /// With `WATCHDOG=1` pings: the longest silence before a restart.
    pub watchdog: Option<Duration>,
}

/// How a started process is judged ready.
#[derive(Clone, Debug, PartialEq)]
pub enum Ready {
    /// It stayed up for min_uptime.
    Uptime,
    /// It sent READY=1 over the notify socket (sd_notify).
    Notify,
    /// The probe succeeded.
    Probe(Probe),
}

/// A check the daemon makes of a service, without blocking its loop.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// A TCP connection to this address succeeds.
    Tcp(std::net::SocketAddr),
    /// This command (program and arguments) exits 0.
    Command(Vec<String>),
}

/// `health_check = { command = [...] | tcp = "...", interval, timeout, retries }`.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    /// Failures in a row that make the service restart.
    pub retries: u32,
}

impl Default for Policy {
    /// Defaults for a router nobody watches: restart forever, but a crash
    /// loop backs off to one start every 30 s, costing well under 1% of a
    /// core; only a service that keeps dying after running a while (more
    /// than 5 starts in 10 s, as systemd) is given up on.
    fn default() -> Policy {
        Policy {
            restart: Restart::Always,
            success_exit_codes: vec![0],
            min_uptime: Duration::from_secs(1),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            start_limit_burst: 5,
            start_limit_interval: Duration::from_secs(10),
            stop_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            ready: Ready::Uptime,
            ready_timeout: Duration::from_secs(60),
            watchdog: None,
        }
    }
}

/// One problem in a config file, located at a line and column.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Why a config could not be loaded: the file and every problem in it.
#[derive(Clone, Debug)]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line == 0 {
                write!(f, "{}: {}", self.file, p.message)?;
            } else {
                write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
            }
        }
        Ok(())
    }
}

const DAEMON_KEYS: &[&str] = &[
    "pid_file",
    "log_file",
    "check_interval",
    "control_socket",
    "state_file",
    "subreaper",
    "control_group",
    "control_group_commands",
];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "command",
    "args",
    "working_directory",
    "auto_restart",
    "restart",
    "success_exit_codes",
    "min_uptime",
    "backoff_initial",
    "backoff_max",
    "start_limit_burst",
    "start_limit_interval",
    "stop_signal",
    "stop_timeout",
    "max_instances",
    "autostart",
    "environment",
    "clear_environment",
    "user",
    "group",
    "umask",
    "nice",
    "limits",
    "log_file",
    "log_timestamps",
    "log_max_size",
    "log_keep",
    "syslog",
    "ready",
    "ready_timeout",
    "watchdog_sec",
    "depends_on",
    "restart_dependents",
    "health_check",
];
const TOP_KEYS: &[&str] = &["daemon", "processes", "web"];
const WEB_KEYS: &[&str] = &["listen", "token", "token_file"];

/// Reads and checks the config at `path`. `shown` is how the path is named
/// in messages (as the user typed it).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (text, absolute) = read(path)?;
    parse(&text, &absolute).map_err(|problems| ConfigError { file: path.display().to_string(), problems })
}

/// The text of the config at `path`, and its absolute path.
fn read(path: &Path) -> Result<(String, PathBuf), ConfigError> {
    let fail = |e: std::io::Error| ConfigError {
        file: path.display().to_string(),
        problems: vec![Problem { line: 0, column: 0, message: crate::msg::io_error(&e) }],
    };
    let text = std::fs::read_to_string(path).map_err(fail)?;
    let absolute = std::path::absolute(path).map_err(fail)?;
    Ok((text, absolute))
}

/// Parses TOML; a syntax error is one problem, at its place.
fn parse_toml(text: &str) -> Result<Document<&str>, Problem> {
    Document::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        // toml_edit's message spans several lines with a caret diagram; the
        // first line of its own message is the part worth showing.
        Problem {
            line,
            column,
            message: format!("invalid TOML: {}", e.message().lines().next().unwrap_or("syntax error").trim()),
        }
    })
}

/// Only the `[daemon]` table of the config at `path`: what a client needs
/// to find the daemon. A client must still reach the daemon while someone
/// is halfway through editing a service, so problems elsewhere (even TOML
/// syntax errors) are ignored.
pub fn load_daemon_settings(path: &Path) -> Result<DaemonSettings, ConfigError> {
    let (text, absolute) = read(path)?;
    let error = |problems| ConfigError { file: path.display().to_string(), problems };
    // Only the [daemon] table's lines are parsed (the others blanked, so
    // lines and columns stay true): fast for a file of 1,000 services, and
    // immune to a syntax error in a service someone is editing.
    let mut in_daemon = false;
    let text: String = text
        .lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') {
                in_daemon = trimmed
                    .trim_end()
                    .strip_prefix("[daemon]")
                    .is_some_and(|rest| rest.trim_start().is_empty() || rest.trim_start().starts_with('#'));
            }
            if in_daemon { line } else { "" }
        })
        .collect::<Vec<&str>>()
        .join("\n");
    let doc = parse_toml(&text).map_err(|problem| error(vec![problem]))?;
    let mut cx = Checker { text: &text, base: absolute.parent().unwrap_or(Path::new("/")), problems: Vec::new() };
    let settings = cx.daemon(doc.as_table().get_key_value("daemon"));
    if cx.problems.is_empty() { Ok(settings) } else { Err(error(cx.problems)) }
}

/// Checks `text` as if read from `path` (absolute), which anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let doc = parse_toml(text).map_err(|problem| vec![problem])?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let mut cx = Checker { text, base, problems: Vec::new() };
    let root = doc.as_table();
    cx.unknown_keys(root.into(), TOP_KEYS, "");

    let daemon = cx.daemon(root.get_key_value("daemon"));
    let services = cx.services(root.get_key_value("processes"));
    let web = cx.web(root.get_key_value("web"));
    if cx.problems.is_empty() {
        Ok(Config { path: path.to_path_buf(), daemon, services, web })
    } else {
        Err(cx.problems)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Where a service's table puts the things later checks point at.
struct Spans {
    name: Option<std::ops::Range<usize>>,
    depends_on: Option<std::ops::Range<usize>>,
}

struct Checker<'a> {
    text: &'a str,
    base: &'a Path,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, span: Option<std::ops::Range<usize>>, message: String) {
        let (line, column) = span.map_or((1, 1), |s| line_col(self.text, s.start));
        self.problems.push(Problem { line, column, message });
    }

    /// A program to run: a relative path with a slash means "relative to
    /// this file"; a bare name is searched in PATH at spawn time.
    fn program(&self, path: String) -> String {
        if path.contains('/') && !path.starts_with('/') { self.base.join(&path).display().to_string() } else { path }
    }

    /// `CONTEXT KEY: expected WHAT, found TYPE`.
    fn wrong_type(&mut self, span: Option<std::ops::Range<usize>>, cx: &str, key: &str, expected: &str, found: &str) {
        self.report(span, format!("{cx}{key}: expected {expected}, found {found}"));
    }

    fn unknown_keys(&mut self, table: TableRef<'_>, known: &[&str], context: &str) {
        for (key, _) in table.iter() {
            if known.contains(&key) {
                continue;
            }
            let span = table.get_key_value(key).and_then(|(k, _)| k.span());
            let hint = did_you_mean(key, known);
            // {:?} quotes and escapes: a quoted TOML key may hold a newline,
            // and every message must stay one line.
            self.report(span, format!("{context}unknown key {key:?}{hint}"));
        }
    }

    fn daemon(&mut self, entry: Option<(&toml_edit::Key, &Item)>) -> DaemonSettings {
        let empty = Table::new();
        let table = match entry {
            None => TableRef::from(&empty),
            Some((key, item)) => match TableRef::of(item) {
                Some(t) => t,
                None => {
                    self.wrong_type(key.span(), "", "[daemon]", "a table", type_name(item));
                    TableRef::from(&empty)
                }
            },
        };
        let cx = "[daemon] ";
        self.unknown_keys(table, DAEMON_KEYS, cx);
        let pid_file = self.path(table, "pid_file", cx).unwrap_or_else(|| self.base.join("mi7soft-daemon.pid"));
        let log_file = self.path(table, "log_file", cx);
        let check_interval = self.integer(table, "check_interval", cx, 1, 86_400).unwrap_or(3) as u32;
        let control_socket = self.path(table, "control_socket", cx).unwrap_or_else(|| pid_file.with_extension("sock"));
        let state_file = self.path(table, "state_file", cx).unwrap_or_else(|| pid_file.with_extension("state"));
        let subreaper = self.boolean(table, "subreaper", cx).unwrap_or(false);
        let control_group = self.string(table, "control_group", cx).and_then(|name| {
            let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let gid = crate::users::find_group(&groups, &name);
            if gid.is_none() {
                self.report(
                    value_span(table, "control_group"),
                    format!("{cx}control_group: no group {name:?} in /etc/group"),
                );
            }
            gid
        });
        let control_group_commands = self.boolean(table, "control_group_commands", cx).unwrap_or(false);
        if control_group_commands && control_group.is_none() && !table.contains_key("control_group") {
            self.report(
                value_span(table, "control_group_commands"),
                format!("{cx}control_group_commands: needs control_group"),
            );
        }
        DaemonSettings {
            pid_file,
            log_file,
            check_interval,
            control_socket,
            state_file,
            subreaper,
            control_group,
            control_group_commands,
        }
    }

    fn services(&mut self, entry: Option<(&toml_edit::Key, &Item)>) -> Vec<Rc<ServiceDef>> {
        let Some((key, item)) = entry else {
            return Vec::new();
        };
        let Some(array) = item.as_array_of_tables() else {
            // `processes = [{...}]` is also an array of tables to a user.
            if let Some(Value::Array(values)) = item.as_value() {
                let mut defs = Vec::new();
                for value in values.iter() {
                    match value.as_inline_table() {
                        Some(t) => defs.extend(self.service(t.into(), value.span())),
                        None => self.wrong_type(value.span(), "", "processes", "a table", value.type_name()),
                    }
                }
                return self.unique(defs);
            }
            self.wrong_type(key.span(), "", "processes", "[[processes]] tables", type_name(item));
            return Vec::new();
        };
        let defs = array.iter().filter_map(|t| self.service(t.into(), t.span())).collect();
        self.unique(defs)
    }

    /// Reports every name that is used twice, at its second use.
    fn unique(&mut self, defs: Vec<(ServiceDef, Spans)>) -> Vec<Rc<ServiceDef>> {
        let mut seen: Vec<&str> = Vec::new();
        let mut dups = Vec::new();
        for (def, Spans { name: span, .. }) in &defs {
            if seen.contains(&def.name.as_str()) {
                dups.push((
                    span.clone(),
                    format!("[[processes]] \"{}\": duplicate name (names must be unique)", def.name),
                ));
            }
            seen.push(&def.name);
        }
        for (span, message) in dups {
            self.report(span, message);
        }
        let (defs, spans): (Vec<ServiceDef>, Vec<Spans>) = defs.into_iter().unzip();
        self.check_dependencies(&defs, &spans);
        defs.into_iter().map(Rc::new).collect()
    }

    /// One `[[processes]]` entry; `None` when it is unusable (problems reported).
    fn service(&mut self, table: TableRef<'_>, span: Option<std::ops::Range<usize>>) -> Option<(ServiceDef, Spans)> {
        let name = self.string(table, "name", "[[processes]] ");
        let cx = match &name {
            Some(name) => format!("[[processes]] {name:?}: "),
            None => "[[processes]] ".to_string(),
        };
        let name_span = table.get_key_value("name").and_then(|(_, v)| v.span()).or_else(|| span.clone());
        if name.is_none() && !table.contains_key("name") {
            self.report(span.clone(), format!("{cx}missing required key \"name\""));
        }
        if let Some(name) = &name {
            if !valid_name(name) {
                self.report(name_span.clone(), format!("{cx}invalid name: use only letters, digits, '.', '_' and '-'"));
            }
        }
        self.unknown_keys(table, SERVICE_KEYS, &cx);
        let command = self.string(table, "command", &cx);
        if command.is_none() && !table.contains_key("command") {
            self.report(name_span.clone(), format!("{cx}missing required key \"command\""));
        }
        if let Some(command) = &command {
            if command.is_empty() {
                self.report(value_span(table, "command"), format!("{cx}command: must not be empty"));
            }
        }
        let args = self.strings(table, "args", &cx).unwrap_or_default();
        let working_directory = self.path(table, "working_directory", &cx);
        let mut policy = self.policy(table, &cx);
        policy.ready = self.ready(table, &cx);
        policy.ready_timeout =
            self.seconds(table, "ready_timeout", &cx, Duration::from_millis(1)).unwrap_or(policy.ready_timeout);
        policy.watchdog = self.seconds(table, "watchdog_sec", &cx, Duration::from_millis(1));
        let depends_on = self.strings(table, "depends_on", &cx).unwrap_or_default();
        let restart_dependents = self.boolean(table, "restart_dependents", &cx).unwrap_or(false);
        let health_check = self.health_check(table, &cx);
        let max_instances = self.integer(table, "max_instances", &cx, 1, 1000).unwrap_or(1) as u32;
        let autostart = self.boolean(table, "autostart", &cx).unwrap_or(true);
        let environment = self.environment(table, &cx);
        let clear_environment = self.boolean(table, "clear_environment", &cx).unwrap_or(false);
        let (user, credentials) = self.identity(table, &cx);
        let umask = self.string(table, "umask", &cx).and_then(|text| match u32::from_str_radix(&text, 8) {
            Ok(mask) if mask <= 0o777 && !text.is_empty() => Some(mask),
            _ => {
                self.report(
                    value_span(table, "umask"),
                    format!("{cx}umask: {text:?} is not an octal mask such as \"022\""),
                );
                None
            }
        });
        let nice = self.integer(table, "nice", &cx, -20, 19).map(|n| n as i32);
        let limits = self.limits(table, &cx);
        let log_file = self.path(table, "log_file", &cx);
        let log_timestamps = self.boolean(table, "log_timestamps", &cx).unwrap_or(true);
        let max_size = self.integer(table, "log_max_size", &cx, 1024, 1 << 40).map_or(1 << 20, |n| n as u64);
        let keep = self.integer(table, "log_keep", &cx, 0, 100).map_or(2, |n| n as u32);
        let syslog = self.boolean(table, "syslog", &cx).unwrap_or(false);
        let capture = match (log_file, syslog) {
            (Some(_), true) => {
                self.report(
                    value_span(table, "syslog"),
                    format!("{cx}syslog: give log_file or syslog = true, not both"),
                );
                None
            }
            (Some(path), false) => Some(crate::capture::Sink::File { path, max_size, keep }),
            (None, true) => Some(crate::capture::Sink::Syslog),
            (None, false) => None,
        };
        let command = command.map(|c| self.program(c));
        Some((
            ServiceDef {
                name: name?,
                command: command?,
                args,
                working_directory,
                policy: Rc::new(policy),
                max_instances,
                autostart,
                environment,
                clear_environment,
                user,
                credentials,
                umask,
                nice,
                limits,
                capture,
                log_timestamps,
                depends_on,
                restart_dependents,
                health_check,
            },
            Spans { name: name_span.clone(), depends_on: value_span(table, "depends_on").or(name_span) },
        ))
    }

    fn policy(&mut self, table: TableRef<'_>, cx: &str) -> Policy {
        let default = Policy::default();
        let auto_restart = self.boolean(table, "auto_restart", cx);
        let restart = match self.string(table, "restart", cx).as_deref() {
            None => None,
            Some("always") => Some(Restart::Always),
            Some("on-failure") => Some(Restart::OnFailure),
            Some("never") => Some(Restart::Never),
            Some(other) => {
                let hint = did_you_mean(other, &["always", "on-failure", "never"]);
                self.report(
                    value_span(table, "restart"),
                    format!("{cx}restart: {other:?} is not one of \"always\", \"on-failure\", \"never\"{hint}"),
                );
                None
            }
        };
        let restart = match (auto_restart, restart) {
            (Some(true), Some(Restart::Never)) | (Some(false), Some(Restart::Always | Restart::OnFailure)) => {
                self.report(
                    value_span(table, "auto_restart"),
                    format!("{cx}auto_restart and restart disagree; keep one (restart is the newer key)"),
                );
                default.restart
            }
            (_, Some(restart)) => restart,
            (Some(true), None) => Restart::Always,
            (Some(false), None) => Restart::Never,
            (None, None) => default.restart,
        };
        let success_exit_codes =
            match self.value(table, "success_exit_codes", cx, "an array of exit codes", |i| i.as_array().is_some()) {
                Some(item) => {
                    let mut codes = Vec::new();
                    for value in item.as_array().into_iter().flatten() {
                        match value.as_integer() {
                            Some(code @ 0..=255) => codes.push(code as i32),
                            _ => self.report(
                                value.span(),
                                format!(
                                    "{cx}success_exit_codes: expected exit codes from 0 to 255, found {}",
                                    value.as_integer().map_or_else(|| value.type_name().to_string(), |n| n.to_string())
                                ),
                            ),
                        }
                    }
                    codes
                }
                None => default.success_exit_codes,
            };
        let min_uptime = self.seconds(table, "min_uptime", cx, Duration::ZERO).unwrap_or(default.min_uptime);
        let backoff_initial =
            self.seconds(table, "backoff_initial", cx, Duration::from_millis(1)).unwrap_or(default.backoff_initial);
        let mut backoff_max =
            self.seconds(table, "backoff_max", cx, Duration::from_millis(1)).unwrap_or(default.backoff_max);
        if backoff_max < backoff_initial {
            if table.contains_key("backoff_max") {
                self.report(
                    value_span(table, "backoff_max"),
                    format!("{cx}backoff_max: must not be less than backoff_initial"),
                );
            }
            backoff_max = backoff_initial;
        }
        let start_limit_burst =
            self.integer(table, "start_limit_burst", cx, 0, 10_000).map_or(default.start_limit_burst, |n| n as u32);
        let start_limit_interval =
            self.seconds(table, "start_limit_interval", cx, Duration::ZERO).unwrap_or(default.start_limit_interval);
        let stop_timeout = self.seconds(table, "stop_timeout", cx, Duration::ZERO).unwrap_or(default.stop_timeout);
        let stop_signal = match table.get("stop_signal") {
            None => default.stop_signal,
            Some(item) => {
                let name = item.as_str().map(str::to_string).or_else(|| item.as_integer().map(|n| n.to_string()));
                match name.as_deref().and_then(crate::sys::signal_number) {
                    Some(signal) => signal,
                    None => {
                        self.report(
                            item.span(),
                            format!(
                                "{cx}stop_signal: expected a signal name such as \"TERM\" or a number from 1 to 64"
                            ),
                        );
                        default.stop_signal
                    }
                }
            }
        };
        Policy {
            restart,
            success_exit_codes,
            min_uptime,
            backoff_initial,
            backoff_max,
            start_limit_burst,
            start_limit_interval,
            stop_signal,
            stop_timeout,
            ..default
        }
    }

    /// A duration in seconds, integer or fractional, at least `min`.
    /// The number is quoted as written, and `min` printed with integers:
    /// formatting an `f64` would link std's float printing (see "Binary
    /// size" in ARCHITECTURE.md).
    fn seconds(&mut self, table: TableRef<'_>, key: &str, cx: &str, min: Duration) -> Option<Duration> {
        let item =
            self.value(table, key, cx, "a number of seconds", |i| i.as_integer().is_some() || i.as_float().is_some())?;
        let secs = item.as_float().or_else(|| item.as_integer().map(|n| n as f64))?;
        if !(min.as_secs_f64()..=31_536_000.0).contains(&secs) {
            let written = item.span().and_then(|span| self.text.get(span)).unwrap_or_default().trim();
            let min = msg::seconds(min);
            self.report(item.span(), format!("{cx}{key}: {written} is out of range ({min} to 31536000 seconds)"));
            return None;
        }
        Some(Duration::from_secs_f64(secs))
    }

    /// The `[web]` table.
    fn web(&mut self, entry: Option<(&toml_edit::Key, &Item)>) -> Option<WebSettings> {
        let (key, item) = entry?;
        let Some(table) = TableRef::of(item) else {
            self.wrong_type(key.span(), "", "[web]", "a table", type_name(item));
            return None;
        };
        let cx = "[web] ";
        if !cfg!(feature = "web") {
            self.report(
                key.span(),
                format!("{cx}this mi7soft-daemon was built without the web UI (cargo feature \"web\")"),
            );
            return None;
        }
        self.unknown_keys(table, WEB_KEYS, cx);
        let Some(listen_text) = self.string(table, "listen", cx) else {
            if !table.contains_key("listen") {
                self.report(key.span(), format!("{cx}missing required key \"listen\" (such as \"127.0.0.1:9001\")"));
            }
            return None;
        };
        let Ok(listen) = listen_text.parse::<std::net::SocketAddr>() else {
            self.report(
                value_span(table, "listen"),
                format!("{cx}listen: {listen_text:?} is not IP:PORT (such as \"127.0.0.1:9001\")"),
            );
            return None;
        };
        let token = match (self.string(table, "token", cx), self.path(table, "token_file", cx)) {
            (Some(_), Some(_)) => {
                self.report(value_span(table, "token_file"), format!("{cx}give token or token_file, not both"));
                return None;
            }
            (Some(token), None) => Some(token),
            (None, Some(file)) => match std::fs::read_to_string(&file) {
                Ok(text) => Some(text.trim().to_string()),
                Err(e) => {
                    self.report(
                        value_span(table, "token_file"),
                        format!("{cx}token_file: {}", crate::msg::path_error(&file, &e)),
                    );
                    return None;
                }
            },
            (None, None) => None,
        };
        if token.as_deref().is_some_and(|t| t.len() < 8) {
            let key = if table.contains_key("token") { "token" } else { "token_file" };
            self.report(value_span(table, key), format!("{cx}{key}: a token must have at least 8 characters"));
            return None;
        }
        if token.is_none() && !listen.ip().is_loopback() {
            self.report(
                value_span(table, "listen"),
                format!("{cx}listen: refusing to serve {listen} without a token; set token or token_file, or listen on 127.0.0.1"),
            );
            return None;
        }
        Some(WebSettings { listen, token })
    }

    /// `ready = "uptime" | "notify" | { tcp = "…" } | { command = […] }`.
    fn ready(&mut self, table: TableRef<'_>, cx: &str) -> Ready {
        let Some(item) = table.get("ready") else { return Ready::Uptime };
        match item.as_str() {
            Some("uptime") => return Ready::Uptime,
            Some("notify") => return Ready::Notify,
            _ => {}
        }
        if let Some(probe) = TableRef::of(item).and_then(|t| self.probe(t, item.span(), &format!("{cx}ready: "), &[])) {
            return Ready::Probe(probe);
        }
        if TableRef::of(item).is_none() {
            self.report(
                item.span(),
                format!("{cx}ready: expected \"uptime\", \"notify\", {{ tcp = \"IP:PORT\" }} or {{ command = [...] }}"),
            );
        }
        Ready::Uptime
    }

    /// `{ tcp = "IP:PORT" }` or `{ command = ["prog", "arg"] }`, plus the
    /// `extra` keys the caller reads itself.
    fn probe(
        &mut self,
        t: TableRef<'_>,
        span: Option<std::ops::Range<usize>>,
        cx: &str,
        extra: &[&str],
    ) -> Option<Probe> {
        let mut known = vec!["tcp", "command"];
        known.extend_from_slice(extra);
        self.unknown_keys(t, &known, cx);
        match (t.contains_key("tcp"), t.contains_key("command")) {
            (true, true) | (false, false) => {
                self.report(span, format!("{cx}give exactly one of tcp = \"IP:PORT\" or command = [...]"));
                None
            }
            (true, false) => {
                let address = self.string(t, "tcp", cx)?;
                match tcp_address(&address) {
                    Ok(addr) => Some(Probe::Tcp(addr)),
                    Err(why) => {
                        self.report(value_span(t, "tcp"), format!("{cx}tcp: {address:?} {why}"));
                        None
                    }
                }
            }
            (false, true) => {
                let mut argv = self.strings(t, "command", cx)?;
                if argv.is_empty() || argv[0].is_empty() {
                    self.report(value_span(t, "command"), format!("{cx}command: must name a program"));
                    return None;
                }
                argv[0] = self.program(std::mem::take(&mut argv[0]));
                Some(Probe::Command(argv))
            }
        }
    }

    /// `health_check = { command = [...] | tcp = "...", interval = 30, timeout = 5, retries = 3 }`.
    fn health_check(&mut self, table: TableRef<'_>, cx: &str) -> Option<HealthCheck> {
        let item = table.get("health_check")?;
        let Some(t) = TableRef::of(item) else {
            self.report(
                item.span(),
                format!("{cx}health_check: expected a table such as {{ tcp = \"127.0.0.1:80\" }}"),
            );
            return None;
        };
        let cx = format!("{cx}health_check: ");
        let probe = self.probe(t, item.span(), &cx, &["interval", "timeout", "retries"])?;
        let interval = self.seconds(t, "interval", &cx, Duration::from_millis(10)).unwrap_or(Duration::from_secs(30));
        let timeout = self.seconds(t, "timeout", &cx, Duration::from_millis(10)).unwrap_or(Duration::from_secs(5));
        let retries = self.integer(t, "retries", &cx, 1, 1000).map_or(3, |n| n as u32);
        Some(HealthCheck { probe, interval, timeout, retries })
    }

    /// Every `depends_on` names a service, and they form no cycle.
    fn check_dependencies(&mut self, defs: &[ServiceDef], spans: &[Spans]) {
        for (def, Spans { depends_on: span, .. }) in defs.iter().zip(spans) {
            for dep in &def.depends_on {
                if !defs.iter().any(|d| &d.name == dep) {
                    let hint = did_you_mean(dep, &defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>());
                    self.report(
                        span.clone(),
                        format!("[[processes]] {:?}: depends_on: unknown process {dep:?}{hint}", def.name),
                    );
                }
            }
        }
        // Depth-first search; a node met again while on the path closes a cycle.
        fn visit<'a>(
            name: &'a str,
            defs: &'a [ServiceDef],
            path: &mut Vec<&'a str>,
            done: &mut Vec<&'a str>,
        ) -> Option<Vec<&'a str>> {
            if let Some(at) = path.iter().position(|n| *n == name) {
                let mut cycle = path[at..].to_vec();
                cycle.push(name);
                return Some(cycle);
            }
            if done.contains(&name) {
                return None;
            }
            path.push(name);
            let def = defs.iter().find(|d| d.name == name)?;
            for dep in &def.depends_on {
                if let Some(cycle) = visit(dep, defs, path, done) {
                    return Some(cycle);
                }
            }
            path.pop();
            done.push(name);
            None
        }
        let mut done = Vec::new();
        for (def, Spans { depends_on: span, .. }) in defs.iter().zip(spans) {
            let mut path = Vec::new();
            if let Some(cycle) = visit(&def.name, defs, &mut path, &mut done) {
                self.report(
                    span.clone(),
                    format!("[[processes]] \"{}\": depends_on: dependency cycle {}", def.name, cycle.join(" -> ")),
                );
                return;
            }
        }
    }

    /// `user` and `group`, resolved through /etc/passwd and /etc/group.
    fn identity(
        &mut self,
        table: TableRef<'_>,
        cx: &str,
    ) -> (Option<crate::users::User>, Option<crate::sys::Credentials>) {
        let user_key = self.string(table, "user", cx);
        let group_key = self.string(table, "group", cx);
        if user_key.is_none() && group_key.is_none() {
            return (None, None);
        }
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let (passwd, groups) = (read("/etc/passwd"), read("/etc/group"));
        let user = match &user_key {
            Some(key) => match crate::users::find_user(&passwd, key) {
                Some(user) => Some(user),
                None => {
                    self.report(value_span(table, "user"), format!("{cx}user: no user {key:?} in /etc/passwd"));
                    return (None, None);
                }
            },
            None => None,
        };
        let gid = match &group_key {
            Some(key) => match crate::users::find_group(&groups, key) {
                Some(gid) => Some(gid),
                None => {
                    self.report(value_span(table, "group"), format!("{cx}group: no group {key:?} in /etc/group"));
                    return (None, None);
                }
            },
            None => None,
        };
        let euid = crate::sys::geteuid();
        let (uid, gid, supplementary) = match &user {
            Some(u) => {
                let gid = gid.unwrap_or(u.gid);
                (u.uid, gid, crate::users::groups_of(&groups, &u.name, gid))
            }
            None => (euid, gid.unwrap_or(0), vec![gid.unwrap_or(0)]),
        };
        if euid != 0 {
            let key = if user.is_some() { "user" } else { "group" };
            self.report(
                value_span(table, key),
                format!("{cx}{key}: switching identity needs the daemon to run as root (it runs as uid {euid})"),
            );
            return (None, None);
        }
        (user, Some(crate::sys::Credentials { uid, gid, groups: supplementary }))
    }

    /// `limits = { nofile = 4096, core = 0, as = "unlimited" }`.
    fn limits(&mut self, table: TableRef<'_>, cx: &str) -> Vec<(String, crate::sys::Limit)> {
        let Some((key, item)) = table.get_key_value("limits") else { return Vec::new() };
        let Some(limits) = TableRef::of(item) else {
            let expected = "a table such as { nofile = 4096 }";
            self.wrong_type(item.span().or(key.span()), cx, "limits", expected, type_name(item));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in limits.iter() {
            let span = value.span().or_else(|| limits.get_key_value(name).and_then(|(k, _)| k.span()));
            let Some(resource) = crate::sys::limit_resource(name) else {
                let hint = did_you_mean(name, &crate::sys::LIMIT_NAMES);
                let key_span = limits.get_key_value(name).and_then(|(k, _)| k.span());
                self.report(
                    key_span,
                    format!("{cx}limits: unknown limit {name:?}{hint}; known: {}", crate::sys::LIMIT_NAMES.join(", ")),
                );
                continue;
            };
            let value = match (value.as_integer(), value.as_str()) {
                (Some(n), _) if n >= 0 => Some(n as u64),
                (_, Some("unlimited" | "infinity")) => None,
                _ => {
                    self.report(span, format!("{cx}limits.{name}: expected a non-negative integer or \"unlimited\""));
                    continue;
                }
            };
            out.push((name.to_string(), crate::sys::Limit { resource, value }));
        }
        out
    }

    fn environment(&mut self, table: TableRef<'_>, cx: &str) -> Vec<(String, String)> {
        let Some((key, item)) = table.get_key_value("environment") else {
            return Vec::new();
        };
        let Some(env) = TableRef::of(item) else {
            self.wrong_type(item.span().or(key.span()), cx, "environment", "a table of strings", type_name(item));
            return Vec::new();
        };
        let mut vars = Vec::new();
        for (name, value) in env.iter() {
            let span = value.span().or_else(|| env.get_key_value(name).and_then(|(k, _)| k.span()));
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.report(span, format!("{cx}environment: invalid variable name {name:?}"));
                continue;
            }
            match value.as_str() {
                Some(v) if !v.contains('\0') => vars.push((name.to_string(), v.to_string())),
                Some(_) => self.report(span, format!("{cx}environment.{name}: contains a NUL byte")),
                None => {
                    self.report(span, format!("{cx}environment.{name}: expected a string, found {}", type_name(value)))
                }
            }
        }
        vars
    }

    fn value<'t>(
        &mut self,
        table: TableRef<'t>,
        key: &str,
        cx: &str,
        expected: &str,
        // A function pointer, not a generic: one copy of this for all callers.
        ok: fn(&Item) -> bool,
    ) -> Option<&'t Item> {
        let item = table.get(key)?;
        if ok(item) {
            Some(item)
        } else {
            let span = item.span().or_else(|| table.get_key_value(key).and_then(|(k, _)| k.span()));
            self.wrong_type(span, cx, key, expected, type_name(item));
            None
        }
    }

    fn string(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<String> {
        let s = self.value(table, key, cx, "a string", |i| i.is_str())?.as_str()?.to_string();
        if s.contains('\0') {
            self.report(value_span(table, key), format!("{cx}{key}: contains a NUL byte"));
            return None;
        }
        Some(s)
    }

    fn path(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<PathBuf> {
        let s = self.string(table, key, cx)?;
        if s.is_empty() {
            self.report(value_span(table, key), format!("{cx}{key}: must not be empty"));
            return None;
        }
        Some(self.base.join(s))
    }

    fn boolean(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<bool> {
        self.value(table, key, cx, "true or false", |i| i.as_bool().is_some())?.as_bool()
    }

    fn integer(&mut self, table: TableRef<'_>, key: &str, cx: &str, min: i64, max: i64) -> Option<i64> {
        let n = self.value(table, key, cx, "an integer", |i| i.as_integer().is_some())?.as_integer()?;
        if n < min || n > max {
            self.report(value_span(table, key), format!("{cx}{key}: {n} is out of range ({min} to {max})"));
            return None;
        }
        Some(n)
    }

    fn strings(&mut self, table: TableRef<'_>, key: &str, cx: &str) -> Option<Vec<String>> {
        let array = self.value(table, key, cx, "an array of strings", |i| i.as_array().is_some())?.as_array()?;
        let mut out = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(s) if !s.contains('\0') => out.push(s.to_string()),
                Some(_) => self.report(value.span(), format!("{cx}{key}: contains a NUL byte")),
                None => self.report(
                    value.span(),
                    format!("{cx}{key}: expected an array of strings, found {} in it", value.type_name()),
                ),
            }
        }
        Some(out)
    }
}

/// The address of a `tcp` probe: an IP address and a port, or `localhost`
/// and a port (127.0.0.1). Host names are not resolved: that would link
/// the C library's DNS resolver (28 KiB, see "Binary size" in
/// ARCHITECTURE.md) for a probe that is nearly always local, and make a
/// config check depend on the network. The error completes a message
/// about the text.
fn tcp_address(text: &str) -> Result<std::net::SocketAddr, &'static str> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:").and_then(|port| port.parse().ok()) {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            "names a host: give an IP address or localhost, such as \"127.0.0.1:5432\" (host names are not resolved)"
        }
        _ => "is not IP:PORT (such as \"127.0.0.1:5432\", \"[::1]:5432\" or \"localhost:5432\")",
    })
}

/// A table or an inline table: what toml_edit's `Item::as_table_like`
/// gives as a `&dyn TableLike`, without the trait object. Its vtables would
/// link every method of the trait for both kinds of table, with the
/// editing code and `Debug` impls behind them (see "Binary size" in
/// ARCHITECTURE.md); calls through this enum link only the four we read.
#[derive(Clone, Copy)]
enum TableRef<'a> {
    Table(&'a Table),
    Inline(&'a InlineTable),
}

impl<'a> TableRef<'a> {
    fn of(item: &'a Item) -> Option<TableRef<'a>> {
        match item {
            Item::Table(t) => Some(TableRef::Table(t)),
            Item::Value(Value::InlineTable(t)) => Some(TableRef::Inline(t)),
            _ => None,
        }
    }

    fn get(self, key: &str) -> Option<&'a Item> {
        match self {
            TableRef::Table(t) => TableLike::get(t, key),
            TableRef::Inline(t) => TableLike::get(t, key),
        }
    }

    fn get_key_value(self, key: &str) -> Option<(&'a toml_edit::Key, &'a Item)> {
        match self {
            TableRef::Table(t) => TableLike::get_key_value(t, key),
            TableRef::Inline(t) => TableLike::get_key_value(t, key),
        }
    }

    fn contains_key(self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn iter(self) -> toml_edit::Iter<'a> {
        match self {
            TableRef::Table(t) => TableLike::iter(t),
            TableRef::Inline(t) => TableLike::iter(t),
        }
    }
}

impl<'a> From<&'a Table> for TableRef<'a> {
    fn from(table: &'a Table) -> TableRef<'a> {
        TableRef::Table(table)
    }
}

impl<'a> From<&'a InlineTable> for TableRef<'a> {
    fn from(table: &'a InlineTable) -> TableRef<'a> {
        TableRef::Inline(table)
    }
}

fn value_span(table: TableRef<'_>, key: &str) -> Option<std::ops::Range<usize>> {
    table.get(key).and_then(Item::span)
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => v.type_name(),
        Item::Table(_) => "table",
        Item::ArrayOfTables(_) => "array of tables",
    }
}

/// Service names end up in file names, socket messages and `NAME:N`
/// instance labels, so they are kept to a safe alphabet.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// ` (did you mean "KEY"?)` for the known key closest to `key`, when it is
/// close enough to be a typo; else nothing.
fn did_you_mean(key: &str, known: &[&str]) -> String {
    nearest(key, known).map(|k| format!(" (did you mean \"{k}\"?)")).unwrap_or_default()
}

/// The known key closest to `key`, when it is close enough to be a typo.
fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        // Close enough to be a typo, and not a mere replacement of the
        // whole word (which would match any short name).
        .filter(|(d, k)| *d <= 2.max(k.len() / 3) && *d < key.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/etc/m/daemon.toml")) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect(),
        }
    }

    #[test]
    fn default_config_is_valid() {
        let config = parse(DEFAULT_CONFIG, Path::new("/x/daemon.toml")).unwrap();
        assert_eq!(config.services.len(), 1);
        assert_eq!(config.daemon.pid_file, Path::new("/x/mi7soft-daemon.pid"));
        assert_eq!(config.daemon.control_socket, Path::new("/x/mi7soft-daemon.sock"));
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let c = parse("[daemon]\npid_file = \"run/d.pid\"\n[[processes]]\nname = \"a\"\ncommand = \"bin/a\"\nworking_directory = \"w\"\n", Path::new("/etc/m/daemon.toml")).unwrap();
        assert_eq!(c.daemon.pid_file, Path::new("/etc/m/run/d.pid"));
        assert_eq!(c.services[0].command, "/etc/m/bin/a");
        assert_eq!(c.services[0].working_directory.as_deref(), Some(Path::new("/etc/m/w")));
    }

    #[test]
    fn unknown_key_is_located_and_a_fix_suggested() {
        let p = problems("[[processes]]\nname = \"web\"\ncomand = \"x\"\n");
        assert!(
            p.contains(&"3:1: [[processes]] \"web\": unknown key \"comand\" (did you mean \"command\"?)".to_string()),
            "{p:?}"
        );
    }

    #[test]
    fn wrong_type_missing_keys_bad_and_duplicate_names() {
        let p = problems(
            "[daemon]\ncheck_interval = \"3\"\n[[processes]]\nname = \"a b\"\ncommand = \"x\"\n[[processes]]\ncommand = \"y\"\n[[processes]]\nname = \"c\"\n[[processes]]\nname = \"c\"\ncommand = \"z\"\n[[processes]]\nname = \"c\"\ncommand = \"z\"\n",
        );
        let joined = p.join("\n");
        assert!(joined.contains("2:18: [daemon] check_interval: expected an integer, found string"), "{joined}");
        assert!(joined.contains("4:8: [[processes]] \"a b\": invalid name"), "{joined}");
        assert!(joined.contains("[[processes]] missing required key \"name\""), "{joined}");
        assert!(joined.contains("9:8: [[processes]] \"c\": missing required key \"command\""), "{joined}");
        assert!(joined.contains("14:8: [[processes]] \"c\": duplicate name"), "{joined}");
    }

    #[test]
    fn syntax_error_has_a_position() {
        let p = problems("[daemon]\npid_file = \n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("2:"), "{p:?}");
        assert!(p[0].contains("invalid TOML"), "{p:?}");
    }

    #[test]
    fn environment_is_kept_in_order() {
        let c = parse(
            "[[processes]]\nname = \"a\"\ncommand = \"x\"\nenvironment = { B = \"2\", A = \"1\" }\n",
            Path::new("/d.toml"),
        )
        .unwrap();
        assert_eq!(c.services[0].environment, vec![("B".into(), "2".into()), ("A".into(), "1".into())]);
        let p = problems("[[processes]]\nname = \"a\"\ncommand = \"x\"\nenvironment = { A = 1 }\n");
        assert!(p[0].contains("environment.A: expected a string, found integer"), "{p:?}");
    }

    #[test]
    fn a_tcp_probe_takes_an_ip_address_or_localhost_but_no_host_name() {
        let probe = |address: &str| {
            let text = format!("[[processes]]\nname = \"a\"\ncommand = \"x\"\nready = {{ tcp = \"{address}\" }}\n");
            match parse(&text, Path::new("/d.toml")) {
                Ok(c) => Ok(c.services[0].policy.ready.clone()),
                Err(p) => {
                    Err(p.into_iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect::<Vec<_>>())
                }
            }
        };
        let tcp = |addr: &str| Ok(Ready::Probe(Probe::Tcp(addr.parse().unwrap())));
        assert_eq!(probe("10.0.0.7:5432"), tcp("10.0.0.7:5432"));
        assert_eq!(probe("[::1]:80"), tcp("[::1]:80"));
        assert_eq!(probe("localhost:8080"), tcp("127.0.0.1:8080"));
        let named = probe("db.example:5432").unwrap_err();
        assert!(
            named[0].starts_with("4:17: [[processes]] \"a\": ready: tcp: \"db.example:5432\" names a host"),
            "{named:?}"
        );
        assert!(named[0].contains("host names are not resolved"), "{named:?}");
        let bad = probe("127.0.0.1").unwrap_err();
        assert!(bad[0].contains("\"127.0.0.1\" is not IP:PORT"), "{bad:?}");
        assert!(probe("localhost:http").unwrap_err()[0].contains("is not IP:PORT"));
    }

    #[test]
    fn seconds_out_of_range_are_quoted_as_written() {
        let p = problems("[[processes]]\nname = \"a\"\ncommand = \"x\"\nready_timeout = 1e-4\nstop_timeout = -2\n");
        assert!(
            p.contains(
                &"4:17: [[processes]] \"a\": ready_timeout: 1e-4 is out of range (0.001 to 31536000 seconds)"
                    .to_string()
            ),
            "{p:?}"
        );
        assert!(
            p.contains(
                &"5:16: [[processes]] \"a\": stop_timeout: -2 is out of range (0 to 31536000 seconds)".to_string()
            ),
            "{p:?}"
        );
    }

    #[test]
    fn nearest_only_suggests_close_keys() {
        assert_eq!(nearest("pidfile", DAEMON_KEYS), Some("pid_file"));
        assert_eq!(nearest("zzzzzz", DAEMON_KEYS), None);
    }
}
