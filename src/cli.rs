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

usage:
  mi7soft-daemon [-c FILE] [-d] start            run the supervisor (in the background with -d)
  mi7soft-daemon [-c FILE] start-process NAME    start a service (or one more instance)
  mi7soft-daemon [-c FILE] stop NAME|--all       stop a service, or every service
  mi7soft-daemon [-c FILE] restart NAME          restart a service
  mi7soft-daemon [-c FILE] status [NAME] [--json]
  mi7soft-daemon [-c FILE] reload                re-read the config (same as SIGHUP)
  mi7soft-daemon [-c FILE] shutdown [--stop-all] exit the daemon (services keep running
                                                 unless --stop-all)
  mi7soft-daemon [-c FILE] logs NAME [-n N] [-f] show (and follow) a service's captured output
  mi7soft-daemon [-c FILE] check                 validate the config and exit

options:
  -c, --config FILE   config file (default: ./daemon.toml, created if missing on start)
  -d, --daemonize     with start: detach, log to log_file; exit 0 once the daemon runs
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

/// Parses the arguments (without the program name) into the config path and
/// a command, or a usage error message.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<(Option<PathBuf>, Command), String> {
    use lexopt::prelude::*;
    let mut raw = Raw::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => raw.config = Some(parser.value().map_err(|e| e.to_string())?.into()),
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
    let config = raw.config.clone();
    raw.validate().map(|command| (config, command))
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
    let (config_arg, command) = match parse(std::env::args_os().skip(1)) {
        Ok(parsed) => parsed,
        Err(e) => {
            msg::error(e);
            eprintln!("try '{} --help'", msg::PROG);
            return EXIT_USAGE;
        }
    };
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
                println!("{}: ok, {} processes", config.path.display(), config.services.len());
                EXIT_OK
            }
            Err(e) => fail(e),
        },
        Command::Start { daemonize } => {
            let config = match load(config_arg, true) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
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
    // The daemon writes the logs: as root, or as whoever runs it, who also
    // owns the directory it was given. A file of anyone else (the service's
    // user, say) is not the daemon's and is not read, nor is any link.
    let mut owners = vec![0, sys::geteuid()];
    owners.extend(
        path.parent().and_then(|dir| std::fs::metadata(dir).ok()).map(|m| std::os::unix::fs::MetadataExt::uid(&m)),
    );
    let mut out = std::io::stdout().lock();
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
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", status::table(&parsed.processes, 80, colour));
    }
    // `status NAME` answers "is it running" for init scripts.
    if name.is_some() && !parsed.processes.iter().any(|p| p.state == "running") {
        return EXIT_NOT_RUNNING;
    }
    EXIT_OK
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
                last_exit,
                last_exit_at: None,
                ended_by: None,
                max_instances: 1,
                log_file: false,
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
        parse(line.split_whitespace().map(OsString::from))
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
    }
}
