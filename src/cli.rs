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
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Config};
use crate::control::{self, ClientError, Request, Target};
use crate::msg;
use crate::status;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_RUNNING: i32 = 3;

/// How long the client waits for the daemon's answer. The daemon answers
/// every wait (stop, restart) within its own shorter deadline.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

const HELP: &str = "\
mi7soft-daemon: keeps services running; they outlive the daemon itself

usage:
  mi7soft-daemon [-c FILE] start                 run the supervisor in the foreground
  mi7soft-daemon [-c FILE] start-process NAME    start a service (or one more instance)
  mi7soft-daemon [-c FILE] stop NAME|--all       stop a service, or every service
  mi7soft-daemon [-c FILE] restart NAME          restart a service
  mi7soft-daemon [-c FILE] status [NAME] [--json]
  mi7soft-daemon [-c FILE] reload                re-read the config (same as SIGHUP)
  mi7soft-daemon [-c FILE] shutdown [--stop-all] exit the daemon (services keep running
                                                 unless --stop-all)
  mi7soft-daemon [-c FILE] check                 validate the config and exit

options:
  -c, --config FILE   config file (default: ./daemon.toml, created if missing on start)
  -h, --help          print this help
  -V, --version       print the version

NAME is a service name, or NAME:N for one instance of a multi-instance service.
exit status: 0 ok, 1 failure, 2 usage error, 3 not running
";

/// What the user asked for, validated.
#[derive(Debug, PartialEq)]
pub enum Command {
    Start,
    Check,
    Send { request: Request, json: bool },
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
            Short('h') | Long("help") => raw.help = true,
            Short('V') | Long("version") => raw.version = true,
            Value(word) => raw.words.push(word.into_string().map_err(|w| format!("argument {w:?} is not valid UTF-8"))?),
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
        let flags = [("--daemonize", self.daemonize, "start"), ("--json", self.json, "status"), ("--all", self.all, "stop"), ("--stop-all", self.stop_all, "shutdown")];
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
                if self.daemonize {
                    return Err("--daemonize is not available yet; run start in the foreground under your init system".into());
                }
                Ok(Command::Start)
            }
            "check" => no_args(rest).map(|()| Command::Check),
            "start-process" => send(Request::Start { name: one_name(rest)? }),
            "stop" => match (self.all, rest) {
                (true, []) => send(Request::Stop { target: Target::All }),
                (true, [name, ..]) => Err(format!("stop: give a NAME or --all, not both ({name:?})")),
                (false, _) => send(Request::Stop {
                    target: Target::Name(one_name(rest)?),
                }),
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
        Command::Check => match locate(config_arg, false).and_then(|path| load(&path)) {
            Ok(config) => {
                println!("{}: ok, {} processes", config.path.display(), config.services.len());
                EXIT_OK
            }
            Err(e) => fail(e),
        },
        Command::Start => {
            let config = match locate(config_arg, true).and_then(|path| load(&path)) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
            match crate::daemon::run(config) {
                Ok(()) => EXIT_OK,
                Err(e) => fail(e.0),
            }
        }
        Command::Send { request, json } => {
            let config = match locate(config_arg, false).and_then(|path| load(&path)) {
                Ok(config) => config,
                Err(e) => return fail(e),
            };
            send(&config, &request, json)
        }
    }
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
        Err(e) => return Err(format!("no config found, and writing a default one failed: {}", msg::path_error(&path, &e))),
    };
    std::io::Write::write_all(&mut file, config::DEFAULT_CONFIG.as_bytes()).map_err(|e| msg::path_error(&path, &e))?;
    let shown = std::path::absolute(&path).unwrap_or(path.clone());
    msg::warning(format_args!("no config found; wrote a default one to {} (edit it, then run 'reload')", shown.display()));
    Ok(path)
}

fn load(path: &Path) -> Result<Config, String> {
    config::load(path).map_err(|e| e.to_string())
}

/// Sends a request to the daemon and prints the reply.
fn send(config: &Config, request: &Request, json: bool) -> i32 {
    let socket = &config.daemon.control_socket;
    let reply = match control::request(socket, request, CLIENT_TIMEOUT) {
        Ok(reply) => reply,
        Err(ClientError::NotRunning) => {
            msg::error(format_args!("daemon not running (nothing listens on {})", socket.display()));
            return EXIT_NOT_RUNNING;
        }
        Err(ClientError::Io(e)) => return fail(format!("control socket {}", msg::path_error(socket, &e))),
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
    let parsed = match <status::Document as nanoserde::DeJson>::deserialize_json(document) {
        Ok(parsed) => parsed,
        Err(e) => return fail(format!("the daemon sent a status this client cannot read: {e}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<(Option<PathBuf>, Command), String> {
        parse(line.split_whitespace().map(OsString::from))
    }

    #[test]
    fn commands_parse() {
        assert_eq!(args("start").unwrap(), (None, Command::Start));
        assert_eq!(args("-c /x.toml stop --all").unwrap(), (Some("/x.toml".into()), Command::Send { request: Request::Stop { target: Target::All }, json: false }));
        assert_eq!(args("status web --json").unwrap().1, Command::Send { request: Request::Status { name: Some("web".into()) }, json: true });
        assert_eq!(args("shutdown --stop-all").unwrap().1, Command::Send { request: Request::Shutdown { stop_all: true }, json: false });
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
