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
//!
//! Run as root, the config says what runs as root: [`load`] refuses one
//! that another user owns or anyone may write, or whose directory others
//! may change (no sticky bit), naming the file and its owner, unless
//! `--allow-foreign-config` was given ([`allow_foreign`]).
//!
//! This file holds the public face: the plain types a config becomes, the
//! default file, and the entry points (`load`, `parse`,
//! `load_daemon_settings`). The checks are split by table: `daemon.rs` for
//! `[daemon]` and `[web]`, `processes.rs` for a `[[processes]]` table, and
//! `checker.rs` for what they share (problem spans, value readers, the
//! wrong-type and did-you-mean messages).

mod checker;
mod daemon;
mod include;
mod paths;
mod processes;

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use checker::{Checker, line_col};
pub use paths::problems as path_problems;
use toml_edit::Document;

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

/// A token shorter than this is refused.
pub const MIN_TOKEN: usize = 8;
/// A token shorter than this is accepted (configs from before it was
/// required) with a warning at start and in `check`.
pub const GOOD_TOKEN: usize = 16;

impl WebSettings {
    /// The warning a short token deserves, if it is short.
    pub fn short_token(&self) -> Option<String> {
        let n = self.token.as_ref()?.chars().count();
        (n < GOOD_TOKEN).then(|| {
            format!("[web] the token has {n} characters; use at least {GOOD_TOKEN} (a guesser has fewer to try)")
        })
    }
}

/// The `[daemon]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonSettings {
    /// Globs of drop-in files holding more `[[processes]]`, relative to the
    /// config's directory, as written.
    pub include: Vec<String>,
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
        // A oneshot runs under a waiter (see `daemon::oneshot`).
        if self.policy.oneshot {
            extra.push_str(" oneshot");
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
        fnv1a(parts.chain((!extra.is_empty()).then_some(extra.as_bytes())))
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
    /// `type = "oneshot"`: a task that runs to completion; a successful
    /// exit leaves it `done`, which counts as ready for its dependents.
    pub oneshot: bool,
    /// A daemon that forks and lets its parent exit: once the started
    /// process exits successfully, the main process is the pid in this file.
    pub pid_file: Option<std::path::PathBuf>,
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
            oneshot: false,
            pid_file: None,
        }
    }
}

/// One problem in a config file, located at a line and column.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The included file it is in; `None`: the main config.
    pub file: Option<String>,
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
            let file = p.file.as_deref().unwrap_or(&self.file);
            if p.line == 0 {
                write!(f, "{file}: {}", p.message)?;
            } else {
                write!(f, "{file}:{}:{}: {}", p.line, p.column, p.message)?;
            }
        }
        Ok(())
    }
}

const TOP_KEYS: &[&str] = &["daemon", "processes", "web"];

/// `--allow-foreign-config`: root uses a config whatever its owner. One
/// switch for the whole process, set once by the command line before any
/// load, so the daemon's reloads judge the file as its start did.
static FOREIGN_ALLOWED: AtomicBool = AtomicBool::new(false);

/// Lets [`load`] use a config of another user as root.
pub fn allow_foreign(allowed: bool) {
    FOREIGN_ALLOWED.store(allowed, Ordering::Relaxed);
}

/// Reads and checks the config at `path` (named in messages as given).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let judge = crate::sys::geteuid() == 0 && !FOREIGN_ALLOWED.load(Ordering::Relaxed);
    let (text, absolute) = read(path, judge)?;
    parse(&text, &absolute).map_err(|problems| ConfigError { file: path.display().to_string(), problems })
}

/// The text of the config at `path`, and its absolute path. With
/// `judge_owner`, a file that is not root's alone to change is refused;
/// the file judged is the one read (through the same descriptor).
fn read(path: &Path, judge_owner: bool) -> Result<(String, PathBuf), ConfigError> {
    let refuse = |message: String| ConfigError {
        file: path.display().to_string(),
        problems: vec![Problem { file: None, line: 0, column: 0, message }],
    };
    let fail = |e: std::io::Error| refuse(crate::msg::io_error(&e));
    let mut file = std::fs::File::open(path).map_err(fail)?;
    if judge_owner {
        let why = foreign(path, &file.metadata().map_err(fail)?);
        if let Some(why) = why {
            return Err(refuse(format!(
                "{why}; as root, refusing a config others can change (give \
                 --allow-foreign-config to use it anyway)"
            )));
        }
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).map_err(fail)?;
    let absolute = std::path::absolute(path).map_err(fail)?;
    Ok((text, absolute))
}

/// Why a config (with `meta`) could say what others want, if it could:
/// another user owns it, everyone may write it, or its directory (where
/// it was named, and where it really is) is open to others.
fn foreign(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != 0 {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let owner = crate::users::find_user(&passwd, &meta.uid().to_string()).map(|user| user.name);
        let owner = owner.unwrap_or_else(|| meta.uid().to_string());
        return Some(format!("owned by {owner} (uid {}), not by root", meta.uid()));
    }
    if meta.mode() & 0o002 != 0 {
        return Some(format!("writable by every user (mode {:o})", meta.mode() & 0o7777));
    }
    let real = std::fs::canonicalize(path).ok();
    crate::files::shared_dir(path).or_else(|| real.and_then(|real| crate::files::shared_dir(&real)))
}

/// Parses TOML; a syntax error is one problem, at its place.
fn parse_toml(text: &str) -> Result<Document<&str>, Problem> {
    Document::parse(text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
        // toml_edit's message spans several lines with a caret diagram; the
        // first line of its own message is the part worth showing.
        Problem {
            file: None,
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
    let (text, absolute) = read(path, false)?;
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
    let base = absolute.parent().unwrap_or(Path::new("/"));
    let mut cx = Checker { text: &text, base, problems: Vec::new(), file: None };
    let settings = cx.daemon(doc.as_table().get_key_value("daemon"));
    if cx.problems.is_empty() { Ok(settings) } else { Err(error(cx.problems)) }
}

/// Checks `text` as if read from `path` (absolute), which anchors relative
/// paths, with the files its `[daemon] include` names.
pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let doc = parse_toml(text).map_err(|problem| vec![problem])?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let mut cx = Checker { text, base, problems: Vec::new(), file: None };
    let root = doc.as_table();
    cx.unknown_keys(root.into(), TOP_KEYS, "");

    let daemon = cx.daemon(root.get_key_value("daemon"));
    let main_defs = cx.services(root.get_key_value("processes"));
    let web = cx.web(root.get_key_value("web"));
    // The drop-ins: found, then read, then each checked like the main
    // file's [[processes]], and all of them checked together.
    let (files, mut problems) = include::read(base, path, &daemon.include);
    if !problems.is_empty() {
        let span = root.get("daemon").and_then(checker::TableRef::of).and_then(|t| checker::value_span(t, "include"));
        for problem in problems.drain(..) {
            cx.report(span.clone(), problem);
        }
    }
    let mut names = vec![path.display().to_string()];
    let mut checkers = vec![cx];
    let mut all = vec![main_defs];
    for file in &files {
        let shown = file.path.display().to_string();
        let mut cx = Checker {
            text: &file.text,
            base: file.path.parent().unwrap_or(base),
            problems: Vec::new(),
            file: Some(shown.clone()),
        };
        // Each document lives only while its services are checked: they
        // keep spans into the file's text, not the document.
        match parse_toml(&file.text) {
            Err(problem) => {
                cx.problems.push(Problem { file: Some(shown.clone()), ..problem });
                all.push(Vec::new());
            }
            Ok(doc) => {
                let root = doc.as_table();
                for name in ["daemon", "web"] {
                    if let Some((key, _)) = root.get_key_value(name) {
                        cx.report(
                            key.span(),
                            format!(
                                "[{name}] belongs in the main config {}; an included file holds only [[processes]]",
                                path.display()
                            ),
                        );
                    }
                }
                cx.unknown_keys(root.into(), TOP_KEYS, "");
                all.push(cx.services(root.get_key_value("processes")));
            }
        }
        names.push(shown);
        checkers.push(cx);
    }
    let services = processes::check_across(&mut checkers, &names, all);
    let problems: Vec<Problem> = checkers.into_iter().flat_map(|cx| cx.problems).collect();
    if problems.is_empty() { Ok(Config { path: path.to_path_buf(), daemon, services, web }) } else { Err(problems) }
}

/// FNV-1a over `parts`, separated, as a stable fingerprint of a definition.
/// Stable across versions of this program on purpose: an upgrade must not
/// look like an edit of every service.
fn fnv1a<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Service names end up in file names, socket messages and `NAME:N`
/// instance labels, so they are kept to a safe alphabet.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::checker::nearest;
    use super::daemon::DAEMON_KEYS;
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("/etc/m/daemon.toml")) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| format!("{}:{}: {}", p.line, p.column, p.message)).collect(),
        }
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        assert_ne!(fnv1a([&b"ab"[..], b"c"]), fnv1a([&b"a"[..], b"bc"]));
        assert_eq!(fnv1a([&b"x"[..]]), fnv1a([&b"x"[..]]));
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
    fn a_oneshot_refuses_the_keys_of_a_process_that_stays_up() {
        let p = problems(
            "[[processes]]\nname = \"t\"\ncommand = \"x\"\ntype = \"oneshot\"\nready = \"notify\"\nwatchdog_sec = 3\nhealth_check = { tcp = \"127.0.0.1:1\" }\nmax_instances = 2\n",
        );
        for (at, key) in [("5:1", "ready"), ("6:1", "watchdog_sec"), ("7:1", "health_check"), ("8:1", "max_instances")]
        {
            let want = format!("{at}: [[processes]] \"t\": {key}: not allowed with type = \"oneshot\"");
            assert!(p.iter().any(|line| line.starts_with(&want)), "{want} in {p:?}");
        }
        let c = parse(
            "[[processes]]\nname = \"t\"\ncommand = \"x\"\ntype = \"oneshot\"\nmax_instances = 1\n",
            Path::new("/d.toml"),
        )
        .unwrap();
        assert!(c.services[0].policy.oneshot);
        assert_eq!(c.services[0].policy.restart, Restart::OnFailure, "a oneshot retries only failures");
        let p = problems("[[processes]]\nname = \"t\"\ncommand = \"x\"\ntype = \"oneshot\"\nrestart = \"never\"\n");
        assert!(p.is_empty(), "{p:?}");
        let p = problems("[[processes]]\nname = \"t\"\ncommand = \"x\"\ntype = \"oneshoot\"\n");
        assert!(
            p[0].contains("type: \"oneshoot\" is not one of \"simple\", \"oneshot\" (did you mean \"oneshot\"?)"),
            "{p:?}"
        );
    }

    #[test]
    fn included_files_add_services_and_are_checked_across_files() {
        let dir = std::env::temp_dir().join(format!("mi7-include-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        let main = dir.join("daemon.toml");
        let service = |name: &str, deps: &str| {
            format!("[[processes]]\nname = \"{name}\"\ncommand = \"x\"\ndepends_on = [{deps}]\n")
        };
        std::fs::write(dir.join("conf.d/20-b.toml"), service("b", "\"a\"")).unwrap();
        std::fs::write(dir.join("conf.d/10-a.toml"), service("a", "\"main\"")).unwrap();
        std::fs::write(dir.join("conf.d/.10-a.toml.swp"), "garbage").unwrap();
        std::fs::write(dir.join("conf.d/notes.txt"), "garbage").unwrap();
        let text = format!("[daemon]\ninclude = [\"conf.d/*.toml\"]\n{}", service("main", ""));
        let c = parse(&text, &main).unwrap();
        let names: Vec<&str> = c.services.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["main", "a", "b"], "the main file's first, then the drop-ins in sorted order");
        // The same name twice: both places named.
        std::fs::write(dir.join("conf.d/30-dup.toml"), format!("\n{}", service("a", ""))).unwrap();
        let e = parse(&text, &main).unwrap_err();
        let shown = ConfigError { file: "daemon.toml".into(), problems: e }.to_string();
        assert!(
            shown.contains(
                "conf.d/30-dup.toml:3:8: [[processes]] \"a\": duplicate name (names must be unique): also defined at "
            ) && shown.contains("conf.d/10-a.toml:2:8"),
            "{shown}"
        );
        std::fs::remove_file(dir.join("conf.d/30-dup.toml")).unwrap();
        // Only [[processes]] in a drop-in; syntax errors located in it.
        std::fs::write(dir.join("conf.d/40-bad.toml"), "[daemon]\npid_file = \"x\"\n").unwrap();
        let shown = ConfigError { file: "daemon.toml".into(), problems: parse(&text, &main).unwrap_err() }.to_string();
        assert!(shown.contains("conf.d/40-bad.toml:1:2: [daemon] belongs in the main config"), "{shown}");
        std::fs::write(dir.join("conf.d/40-bad.toml"), "[[processes]]\nname = \"c\"\ncommand = \n").unwrap();
        let shown = ConfigError { file: "daemon.toml".into(), problems: parse(&text, &main).unwrap_err() }.to_string();
        assert!(shown.contains("conf.d/40-bad.toml:3:") && shown.contains("invalid TOML"), "{shown}");
        std::fs::remove_file(dir.join("conf.d/40-bad.toml")).unwrap();
        // A pattern matching nothing is fine; a missing directory is not.
        let none = text.replace("conf.d/*.toml", "conf.d/*.conf");
        assert_eq!(parse(&none, &main).unwrap().services.len(), 1);
        let missing = text.replace("conf.d/*.toml", "conf.e/*.toml");
        let shown =
            ConfigError { file: "daemon.toml".into(), problems: parse(&missing, &main).unwrap_err() }.to_string();
        assert!(
            shown.contains("daemon.toml:2:11: [daemon] include: \"conf.e/*.toml\": ") && shown.contains("conf.e"),
            "{shown}"
        );
        let p = problems("[daemon]\ninclude = \"c*/x.toml\"\n");
        assert!(p[0].contains("wildcards only in the file name"), "{p:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nearest_only_suggests_close_keys() {
        assert_eq!(nearest("pidfile", DAEMON_KEYS), Some("pid_file"));
        assert_eq!(nearest("zzzzzz", DAEMON_KEYS), None);
    }
}
