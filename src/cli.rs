//! The command line: parsing (with lexopt), finding the config, and running
//! the chosen command.
//!
//! Parsing has two stages, as in ripgrep: [`parse`] collects raw flags and
//! words without judging them, then [`Raw::validate`] turns them into a
//! [`Command`] or a usage error. Every command but `start` and `check` is a
//! [`Request`] sent to the running daemon; this module only encodes it and
//! prints the reply.
//!
//! Exit statuses follow the LSB init-script convention: 0 success, 1
//! failure, 2 usage error, 3 not running.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Config, DaemonSettings};
use crate::control::{self, ClientError, Request, Target};
use crate::msg;
use crate::status;
use crate::sys;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_RUNNING: i32 = 3;

/// How long the client waits for the daemon's answer. The daemon answers
/// every wait (stop, restart) within its own deadline (stop and ready
/// timeouts plus slack), so this only guards against a hung daemon.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

const HELP: &str = "\
mi7soft-daemon: keeps services running; they outlive the daemon itself

usage: mi7soft-daemon [-c FILE] COMMAND

commands:
  start [-d]             run the supervisor (in the background with -d)
  start-process NAME     start a service (or one more instance)
  stop NAME|--all        stop a service, or every service
  restart NAME           restart a service
  signal NAME SIGNAL     send SIGNAL (HUP, USR1, 10, ...) to its main process
  status [NAME] [--json] the table; with NAME its whole record and output
  reload                 re-read the config (same as SIGHUP)
  shutdown [--stop-all]  exit the daemon; services keep running unless
                         --stop-all
  logs NAME [-n N] [-f]  show (and follow) a service's captured output
  check                  validate the config and exit

options:
  -c, --config FILE   config file (default: ./daemon.toml, created if missing
                      on start)
  -d, --daemonize     with start: detach, log to log_file; exit 0 once the
                      daemon runs
  --allow-foreign-config
                      as root, use a config another user owns or can change
  -h, --help          print this help
  -V, --version       print the version

NAME is a service name, or NAME:N for one instance of a multi-instance service.
exit status: 0 ok, 1 failure, 2 usage error, 3 not running
";

/// What the user asked for, validated.
#[derive(Debug, PartialEq)]
pub enum Command {
    Start {
        daemonize: bool,
    },
    /// `logs NAME [-n N] [-f]`: read the service's captured output.
    Logs {
        name: String,
        lines: usize,
        follow: bool,
    },
    /// Internal: the fd holder process (see holder.rs).
    FdHolder(PathBuf),
    Check,
    Send {
        request: Request,
        json: bool,
    },
    Help,
    Version,
}

/// Stage one: flags and words as given.
#[derive(Debug, Default)]
struct Raw {
    config: Option<PathBuf>,
    allow_foreign_config: bool,
    daemonize: bool,
    json: bool,
    all: bool,
    stop_all: bool,
    lines: Option<usize>,
    follow: bool,
    help: bool,
    version: bool,
    words: Vec<String>,
}

/// Parses the arguments (without the program name) into the config path, a
/// command and `--allow-foreign-config`, or a usage error message.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(Option<PathBuf>, Command, bool), String> {
    use lexopt::prelude::*;
    let mut raw = Raw::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => raw.config = Some(parser.value().map_err(|e| e.to_string())?.into()),
            Long("allow-foreign-config") => raw.allow_foreign_config = true,
            Short('d') | Long("daemonize") => raw.daemonize = true,
            Long("json") => raw.json = true,
            Long("all") => raw.all = true,
            Long("stop-all") => raw.stop_all = true,
            Short('n') | Long("lines") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let text = value.to_string_lossy();
                raw.lines = Some(text.parse().map_err(|_| format!("-n: {text:?} is not a number of lines"))?);
            }
            Short('f') | Long("follow") => raw.follow = true,
            Short('h') | Long("help") => raw.help = true,
            Short('V') | Long("version") => raw.version = true,
            Value(word) => {
                raw.words.push(word.into_string().map_err(|w| format!("argument {w:?} is not valid UTF-8"))?)
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    let (config, allow_foreign_config) = (raw.config.clone(), raw.allow_foreign_config);
    raw.validate().map(|command| (config, command, allow_foreign_config))
}

impl Raw {
    fn validate(self) -> Result<Command, String> {
        if self.help {
            return Ok(Command::Help);
        }
        if self.version {
            return Ok(Command::Version);
        }
        let words: Vec<&str> = self.words.iter().map(String::as_str).collect();
        let Some((&command, rest)) = words.split_first() else {
            return Err("no command given".into());
        };
        // Each flag belongs to one command; anywhere else it is a mistake.
        let flags = [
            ("--daemonize", self.daemonize, "start"),
            ("--json", self.json, "status"),
            ("--all", self.all, "stop"),
            ("--stop-all", self.stop_all, "shutdown"),
            ("-n", self.lines.is_some(), "logs"),
            ("-f", self.follow, "logs"),
        ];
        for (flag, given, owner) in flags {
            if given && command != owner {
                return Err(format!("{flag} only goes with {owner}"));
            }
        }
        let one_name = |rest: &[&str]| match rest {
            [name] => Ok(name.to_string()),
            [] => Err(format!("{command} needs a process NAME")),
            [_, extra, ..] => Err(format!("{command}: unexpected argument {extra:?}")),
        };
        let no_args = |rest: &[&str]| match rest {
            [] => Ok(()),
            [extra, ..] => Err(format!("{command}: unexpected argument {extra:?}")),
        };
        let send = |request| Ok(Command::Send { request, json: self.json });
        match command {
            "start" => {
                no_args(rest)?;
                Ok(Command::Start { daemonize: self.daemonize })
            }
            "check" => no_args(rest).map(|()| Command::Check),
            "logs" => Ok(Command::Logs { name: one_name(rest)?, lines: self.lines.unwrap_or(20), follow: self.follow }),
            "fd-holder" => match rest {
                [socket] => Ok(Command::FdHolder(PathBuf::from(socket))),
                _ => Err("fd-holder needs a SOCKET".into()),
            },
            "start-process" => send(Request::Start { name: one_name(rest)? }),
            "stop" => match (self.all, rest) {
                (true, []) => send(Request::Stop { target: Target::All }),
                (true, [name, ..]) => Err(format!("stop: give a NAME or --all, not both ({name:?})")),
                (false, _) => send(Request::Stop { target: Target::Name(one_name(rest)?) }),
            },
            "restart" => send(Request::Restart { name: one_name(rest)? }),
            "signal" => match rest {
                [name, signal] => {
                    let signal = control::signal(signal).map_err(|e| format!("signal: {e}"))?;
                    send(Request::Signal { name: name.to_string(), signal })
                }
                [_, _, extra, ..] => Err(format!("signal: unexpected argument {extra:?}")),
                _ => Err("signal needs a process NAME and a SIGNAL".into()),
            },
            "status" => match rest {
                [] => send(Request::Status { name: None }),
                _ => send(Request::Status { name: Some(one_name(rest)?) }),
            },
            "reload" => no_args(rest).and_then(|()| send(Request::Reload)),
            "shutdown" => no_args(rest).and_then(|()| send(Request::Shutdown { stop_all: self.stop_all })),
            other => Err(format!("unknown command {other:?}")),
        }
    }
}

/// Runs the program; returns the exit status.
pub fn main() -> i32 {
    // Internal: a oneshot's waiter (see oneshot.rs), whose arguments after
    // `--` are the program's own and must not be parsed as ours.
    if std::env::args_os().nth(1).is_some_and(|word| word == "oneshot-wait") {
        return crate::oneshot::main(std::env::args().skip(2).collect());
    }
    let (config_arg, command, allow_foreign_config) = match parse(std::env::args_os().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            msg::error(e);
            eprintln!("try '{} --help'", msg::PROG);
            return EXIT_USAGE;
        }
    };
    config::allow_foreign(allow_foreign_config);
    match command {
        Command::Help => {
            print!("{HELP}");
            EXIT_OK
        }
        Command::Version => {
            println!("{} {}", msg::PROG, env!("CARGO_PKG_VERSION"));
            EXIT_OK
        }
        Command::FdHolder(socket) => crate::holder::main(&socket),
        Command::Logs { name, lines, follow } => match load(config_arg, false) {
            Ok(config) => logs(&config, &name, lines, follow),
            Err(e) => fail(e),
        },
        Command::Check => match load(config_arg, false) {
            Ok(config) => {
                let problems = config::path_problems(&config);
                if !problems.is_empty() {
                    let file = config.path.display().to_string();
                    return fail(config::ConfigError { file, problems }.to_string());
                }
                if let Some(warning) = config.web.as_ref().and_then(config::WebSettings::short_token) {
                    msg::warning(warning);
                }
                println!(
                    "{}: ok, {}",
                    config.path.display(),
                    msg::count(config.services.len(), "process", "processes")
                );
                EXIT_OK
            }
            Err(e) => fail(e),
        },
        Command::Start { daemonize } => {
            let config = match load(config_arg, true) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
            // Before --daemonize opens log_file: /var is a tmpfs on routers.
            if let Err(e) = crate::daemon::make_directories(&config) {
                return fail(e.0);
            }
            if daemonize {
                return start_detached(config);
            }
            match crate::daemon::run(config, None) {
                Ok(()) => EXIT_OK,
                Err(e) => fail(e.0),
            }
        }
        Command::Send { request, json } => {
            let path = match locate(config_arg, false) {
                Ok(path) => path,
                Err(e) => return fail(e),
            };
            // The daemon judges the services (reload reports their errors);
            // a client only needs [daemon] to find it.
            let settings = match config::load_daemon_settings(&path) {
                Ok(settings) => settings,
                Err(e) => return fail(e.to_string()),
            };
            send(&settings, &request, json, CLIENT_TIMEOUT)
        }
    }
}

/// `logs NAME`: the last lines of a service's captured output, across
/// rotated files; with `follow`, then everything it writes, across
/// rotations, until interrupted (like `tail -F`).
fn logs(config: &Config, name: &str, n: usize, follow: bool) -> i32 {
    let base = name.split(':').next().unwrap_or(name);
    let Some(def) = config.services.iter().find(|d| d.name == base) else {
        return fail(format!("unknown process \"{name}\""));
    };
    let (path, keep) = match &def.capture {
        Some(crate::capture::Sink::File { path, keep, .. }) => (path.clone(), *keep),
        Some(crate::capture::Sink::Syslog) => {
            return fail(format!("{name}: its output goes to the system log (syslog = true); read it there (logread)"));
        }
        Some(crate::capture::Sink::Log) | None => {
            return fail(format!(
                "{name}: its output goes to the daemon's log, after its name; set log_file in its [[processes]] \
                 table for a log of its own"
            ));
        }
    };
    let owners = log_owners(&path);
    // On a terminal, a service's control characters are shown, not obeyed;
    // into a pipe or a file the bytes go as they are.
    let terminal = std::io::stdout().is_terminal();
    let mut out = Printable { out: std::io::stdout().lock(), terminal };
    match crate::capture::tail(&path, keep, n, &owners) {
        Ok(lines) => {
            for line in lines {
                if writeln!(out, "{line}").is_err() {
                    return EXIT_OK;
                }
            }
        }
        Err(e) => return fail(msg::path_error(&path, &e)),
    }
    let _ = out.flush();
    if !follow {
        return EXIT_OK;
    }
    match crate::capture::follow(&path, &mut out, &owners) {
        Ok(()) => EXIT_OK,
        Err(e) => fail(msg::path_error(&path, &e)),
    }
}

/// A writer that, on a terminal, writes control characters (but newlines
/// and tabs) as `\xNN` (see [`msg::printable`]).
struct Printable<W> {
    out: W,
    terminal: bool,
}

impl<W: Write> Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !self.terminal {
            return self.out.write(buf);
        }
        for line in buf.split_inclusive(|&b| b == b'\n') {
            let (text, newline) = line.strip_suffix(b"\n").map_or((line, false), |t| (t, true));
            for part in String::from_utf8_lossy(text).split('\t').enumerate() {
                if part.0 > 0 {
                    self.out.write_all(b"\t")?;
                }
                self.out.write_all(msg::printable(part.1).as_bytes())?;
            }
            if newline {
                self.out.write_all(b"\n")?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `--daemonize start`: detach, and exit with the daemon's own verdict on
/// its setup, read from a pipe: 0 once it holds the pid file and listens on
/// its socket, 1 with its error otherwise.
fn start_detached(config: Config) -> i32 {
    let log_path = config.daemon.log_file.clone().unwrap_or_else(|| config.daemon.pid_file.with_extension("log"));
    match sys::detach() {
        Err(e) => fail(format!("--daemonize: fork: {}", msg::io_error(&e))),
        Ok(sys::Detached::Launcher(pipe)) => {
            let mut report = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(pipe), &mut report);
            match report.trim_end() {
                "ok" => EXIT_OK,
                "" => fail(format!("the daemon exited during startup; see {}", log_path.display())),
                line => fail(line.strip_prefix("err ").unwrap_or(line).to_string()),
            }
        }
        Ok(sys::Detached::Daemon(mut pipe)) => {
            if let Err(e) = detach_stdio(&log_path) {
                let _ = writeln!(pipe, "err {}", e.0);
                return EXIT_FAILURE;
            }
            match crate::daemon::run(config, Some(pipe)) {
                Ok(()) => EXIT_OK,
                Err(e) => fail(e.0),
            }
        }
    }
}

/// The daemon's side of detaching: no inherited directory, a known umask,
/// stdin from /dev/null, and stdout and stderr (its log, and the output of
/// services) appended to the log file.
fn detach_stdio(log_path: &Path) -> Result<(), crate::daemon::SetupError> {
    let setup = |e: String| crate::daemon::SetupError(e);
    std::env::set_current_dir("/").map_err(|e| setup(format!("chdir /: {}", msg::io_error(&e))))?;
    sys::umask(0o022);
    let null = std::fs::File::open("/dev/null").map_err(|e| setup(msg::path_error(Path::new("/dev/null"), &e)))?;
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true).mode(0o644);
    let log = crate::files::open(&mut options, log_path, &[sys::geteuid()])
        .map_err(|e| setup(format!("log_file {}", msg::path_error(log_path, &e))))?;
    for (file, fd) in [(&null, 0), (&log, 1), (&log, 2)] {
        sys::redirect(file, fd).map_err(|e| setup(format!("redirecting fd {fd}: {}", msg::io_error(&e))))?;
    }
    // Opened safely this time; but others could still swap it between two
    // starts, which the person who chose the directory should hear about.
    if let Some(why) = crate::files::shared_dir(log_path) {
        msg::Log.warning(format_args!("log_file {}: {why}", log_path.display()));
    }
    Ok(())
}

fn fail(message: String) -> i32 {
    msg::error(message);
    EXIT_FAILURE
}

/// `-c FILE`, else ./daemon.toml; when `create` and neither exists, a
/// commented default is written to ./daemon.toml.
fn locate(explicit: Option<PathBuf>, create: bool) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return Ok(path);
    }
    let path = PathBuf::from(config::DEFAULT_FILE);
    if path.exists() {
        return Ok(path);
    }
    if !create {
        return Err(format!("no config: ./{} does not exist (give one with -c FILE)", config::DEFAULT_FILE));
    }
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        // Someone created it meanwhile: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(path),
        Err(e) => {
            return Err(format!("no config found, and writing a default one failed: {}", msg::path_error(&path, &e)));
        }
    };
    std::io::Write::write_all(&mut file, config::DEFAULT_CONFIG.as_bytes()).map_err(|e| msg::path_error(&path, &e))?;
    let shown = std::path::absolute(&path).unwrap_or(path.clone());
    msg::warning(format_args!(
        "no config found; wrote a default one to {} (edit it, then run 'reload')",
        shown.display()
    ));
    Ok(path)
}

/// The config [`locate`] finds, loaded and checked.
fn load(explicit: Option<PathBuf>, create: bool) -> Result<Config, String> {
    let path = locate(explicit, create)?;
    config::load(&path).map_err(|e| e.to_string())
}

/// Sends a request to the daemon and prints the reply.
fn send(settings: &DaemonSettings, request: &Request, json: bool, timeout: Duration) -> i32 {
    let socket = &settings.control_socket;
    let reply = match control::request(socket, request, timeout) {
        Ok(reply) => reply,
        Err(ClientError::NotRunning) => {
            msg::error(format_args!("daemon not running (nothing listens on {})", socket.display()));
            if let Request::Status { name } = request {
                print_last_known(settings, name.as_deref());
            }
            return EXIT_NOT_RUNNING;
        }
        Err(ClientError::Io(e)) => {
            return fail(format!("control socket {}", msg::path_error(socket, &e)));
        }
    };
    if let Err(message) = reply.result {
        for line in &reply.lines {
            eprintln!("{line}");
        }
        if control::is_not_running(&message) {
            msg::error(message);
            return EXIT_NOT_RUNNING;
        }
        return fail(message);
    }
    let Request::Status { name } = request else {
        for line in &reply.lines {
            println!("{line}");
        }
        return EXIT_OK;
    };
    let Some(document) = reply.lines.first() else {
        return fail("the daemon sent an empty status".into());
    };
    let parsed = match status::Document::from_json(document) {
        Ok(parsed) => parsed,
        Err(e) => {
            return fail(format!("the daemon sent a status this client cannot read: {e}"));
        }
    };
    if json {
        println!("{document}");
    } else if name.is_some() {
        print_records(&parsed.processes);
    } else {
        let term = std::env::var_os("TERM");
        let colour = colour(std::io::stdout().is_terminal(), term.as_deref(), std::env::var_os("NO_COLOR").is_some());
        print!("{}", status::table(&parsed.processes, 80, colour));
    }
    // `status NAME` answers "is it running" for init scripts.
    if name.is_some() && !parsed.processes.iter().any(|p| p.state == "running") {
        return EXIT_NOT_RUNNING;
    }
    EXIT_OK
}

/// Whether the table is coloured: only on a terminal that has colours
/// (TERM set and not `dumb`, as ls and git decide), never with NO_COLOR.
fn colour(terminal: bool, term: Option<&std::ffi::OsStr>, no_color: bool) -> bool {
    terminal && !no_color && term.is_some_and(|t| !t.is_empty() && t != "dumb")
}

/// How many lines of captured output `status NAME` shows, as `systemctl
/// status` does.
const STATUS_TAIL: usize = 10;

/// `status NAME`: each instance's record, then the last lines of the
/// service's captured output.
fn print_records(processes: &[status::ProcessInfo]) {
    let labels = status::labels(processes);
    let mut logs: Vec<&str> = Vec::new();
    for (n, (p, label)) in processes.iter().zip(&labels).enumerate() {
        if n > 0 {
            println!();
        }
        print!("{}", status::record(p, label));
        if let Some(log) = p.log_file.as_deref().filter(|log| !logs.contains(log)) {
            logs.push(log);
        }
    }
    for log in logs {
        let path = Path::new(log);
        // One rotated file back is enough for a few lines.
        match crate::capture::tail(path, 1, STATUS_TAIL, &log_owners(path)) {
            Ok(lines) => {
                println!("\nlast lines of {log}:");
                for line in lines {
                    println!("{}", msg::printable(&line));
                }
            }
            Err(e) => msg::warning(msg::path_error(path, &e)),
        }
    }
}

/// Whose log files a client reads: the daemon writes them as root, or as
/// whoever runs it, who also owns the directory it was given. A file of
/// anyone else (the service's user, say) is not the daemon's and is not
/// read, nor is any link.
fn log_owners(path: &Path) -> Vec<u32> {
    let mut owners = vec![0, sys::geteuid()];
    owners.extend(
        path.parent().and_then(|dir| std::fs::metadata(dir).ok()).map(|m| std::os::unix::fs::MetadataExt::uid(&m)),
    );
    owners
}

/// `status` without a daemon: what the state file last recorded, and
/// whether each process still runs (unsupervised) or is gone.
fn print_last_known(settings: &DaemonSettings, name: Option<&str>) {
    let path = &settings.state_file;
    let (records, _) = crate::state::read(path);
    let processes: Vec<status::ProcessInfo> = records
        .into_iter()
        .filter(|r| name.is_none_or(|n| n == r.name || n == format!("{}:{}", r.name, r.instance)))
        .map(|r| {
            let alive = r.pid != 0 && crate::procfs::process_starttime(r.pid) == Some(r.starttime);
            let (state, last_exit) = match (r.pid, alive) {
                (0, _) => (r.phase.name(), r.last_exit),
                (_, true) => ("running", Some("unsupervised".to_string())),
                (_, false) => ("gone", Some("ended while unsupervised".to_string())),
            };
            status::ProcessInfo {
                name: r.name,
                instance: r.instance,
                state: state.to_string(),
                pid: alive.then_some(r.pid),
                uptime_secs: None,
                restarts: r.restarts,
                next_start_secs: None,
                status_text: r.status,
                command: None,
                log_file: None,
                last_exit,
                memory_bytes: None,
                cpu_ms: None,
                last_exit_at: None,
                ended_by: None,
                max_instances: 1,
            }
        })
        .collect();
    if processes.is_empty() {
        return;
    }
    println!("daemon not running; last known state from {}:", path.display());
    print!("{}", status::table(&processes, 80, false));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<(Option<PathBuf>, Command), String> {
        parse(line.split_whitespace().map(OsString::from)).map(|(config, command, _)| (config, command))
    }

    #[test]
    fn commands_parse() {
        assert_eq!(args("start").unwrap(), (None, Command::Start { daemonize: false }));
        assert_eq!(args("-d start").unwrap(), (None, Command::Start { daemonize: true }));
        assert_eq!(
            args("-c /x.toml stop --all").unwrap(),
            (Some("/x.toml".into()), Command::Send { request: Request::Stop { target: Target::All }, json: false })
        );
        assert_eq!(
            args("status web --json").unwrap().1,
            Command::Send { request: Request::Status { name: Some("web".into()) }, json: true }
        );
        assert_eq!(
            args("shutdown --stop-all").unwrap().1,
            Command::Send { request: Request::Shutdown { stop_all: true }, json: false }
        );
        assert_eq!(args("--config=/y status").unwrap().0, Some("/y".into()));
        let parsed = parse(["--allow-foreign-config", "check"].map(OsString::from)).unwrap();
        assert_eq!(parsed, (None, Command::Check, true));
        assert!(!parse(["check"].map(OsString::from)).unwrap().2);
        for (line, signal) in
            [("signal web:1 HUP", libc::SIGHUP), ("signal web SIGUSR1", libc::SIGUSR1), ("signal web 12", 12)]
        {
            let name = line.split(' ').nth(1).unwrap().to_string();
            assert_eq!(args(line).unwrap().1, Command::Send { request: Request::Signal { name, signal }, json: false });
        }
    }

    #[test]
    fn colour_only_on_a_terminal_that_has_it() {
        let term = |t: &str| Some(std::ffi::OsString::from(t));
        assert!(colour(true, term("xterm").as_deref(), false));
        assert!(!colour(true, term("dumb").as_deref(), false));
        assert!(!colour(true, term("").as_deref(), false));
        assert!(!colour(true, None, false));
        assert!(!colour(true, term("xterm").as_deref(), true));
        assert!(!colour(false, term("xterm").as_deref(), false));
    }

    #[test]
    fn help_fits_80_columns() {
        for line in HELP.lines() {
            assert!(line.chars().count() <= 80, "{line:?} is {} columns", line.chars().count());
        }
    }

    #[test]
    fn usage_errors_name_the_argument() {
        assert_eq!(args("").unwrap_err(), "no command given");
        assert_eq!(args("launch").unwrap_err(), "unknown command \"launch\"");
        assert_eq!(args("stop").unwrap_err(), "stop needs a process NAME");
        assert_eq!(args("stop a b").unwrap_err(), "stop: unexpected argument \"b\"");
        assert_eq!(args("status --all").unwrap_err(), "--all only goes with stop");
        assert_eq!(args("start --bogus").unwrap_err(), "invalid option '--bogus'");
        assert_eq!(args("reload now").unwrap_err(), "reload: unexpected argument \"now\"");
        assert_eq!(
            args("signal web HUPP").unwrap_err(),
            "signal: unknown signal \"HUPP\" (give a name such as HUP or USR1, or a number from 1 to 64)"
        );
        assert_eq!(args("signal web").unwrap_err(), "signal needs a process NAME and a SIGNAL");
        assert_eq!(args("signal web HUP x").unwrap_err(), "signal: unexpected argument \"x\"");
    }
}
