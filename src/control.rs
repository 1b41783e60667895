//! The one command vocabulary ([`Request`]) and its text encoding on the
//! control socket.
//!
//! The command line and the socket speak the same words: the CLI parses
//! `stop --all` into a `Request`, [`Request::to_line`] writes it as the line
//! `stop --all`, and the daemon reads it back with [`Request::parse`]. Later
//! front ends (HTTP) decode into the same type and reach the same handler.
//!
//! The protocol, one connection per request:
//! - the client sends one line of at most [`MAX_LINE`] bytes;
//! - the daemon answers with zero or more payload lines and then one final
//!   line, `ok` or `err MESSAGE`. On `err`, the payload lines are further
//!   detail of the error (for example one line per config problem);
//! - the daemon closes the connection after the final line.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// The longest request line the daemon accepts, newline included.
pub const MAX_LINE: usize = 4096;

/// Something a user asks of the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The status document (JSON), for one service or all.
    Status {
        name: Option<String>,
    },
    /// `start-process`: start a stopped service, or one more instance.
    Start {
        name: String,
    },
    /// Stop a service's instances, or every service.
    Stop {
        target: Target,
    },
    Restart {
        name: String,
    },
    Reload,
    Shutdown {
        stop_all: bool,
    },
    /// Send a signal to the main process of each instance (`sv hup`).
    Signal {
        name: String,
        signal: i32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    All,
    Name(String),
}

impl Request {
    /// The request as one protocol line, without the newline.
    pub fn to_line(&self) -> String {
        match self {
            Request::Status { name: None } => "status".into(),
            Request::Status { name: Some(name) } => format!("status {name}"),
            Request::Start { name } => format!("start-process {name}"),
            Request::Stop { target: Target::All } => "stop --all".into(),
            Request::Stop { target: Target::Name(name) } => format!("stop {name}"),
            Request::Restart { name } => format!("restart {name}"),
            Request::Reload => "reload".into(),
            Request::Shutdown { stop_all: false } => "shutdown".into(),
            Request::Shutdown { stop_all: true } => "shutdown --stop-all".into(),
            Request::Signal { name, signal } => format!("signal {name} {}", crate::sys::signal_name(*signal)),
        }
    }

    /// Reads a protocol line back; the error is a message for `err`.
    pub fn parse(line: &str) -> Result<Request, String> {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let name = |word: &str| -> Result<String, String> {
            // NAME or NAME:INSTANCE, in the config's name alphabet.
            let (base, instance) = word.split_once(':').unwrap_or((word, "0"));
            if crate::config::valid_name(base) && instance.parse::<u32>().is_ok() {
                Ok(word.to_string())
            } else {
                Err(format!("invalid process name {word:?}"))
            }
        };
        Ok(match words.as_slice() {
            ["status"] => Request::Status { name: None },
            ["status", n] => Request::Status { name: Some(name(n)?) },
            ["start-process", n] => Request::Start { name: name(n)? },
            ["stop", "--all"] => Request::Stop { target: Target::All },
            ["stop", n] => Request::Stop { target: Target::Name(name(n)?) },
            ["restart", n] => Request::Restart { name: name(n)? },
            ["reload"] => Request::Reload,
            ["shutdown"] => Request::Shutdown { stop_all: false },
            ["shutdown", "--stop-all"] => Request::Shutdown { stop_all: true },
            ["signal", n, s] => Request::Signal { name: name(n)?, signal: signal(s)? },
            [] => return Err("empty request".into()),
            [command, ..] => return Err(format!("unknown request {:?}", crate::msg::truncate(command, 40))),
        })
    }
}

/// The number of a signal given as `HUP`, `SIGHUP` or `1`; the error names
/// the argument and is a usage error on the command line.
pub fn signal(word: &str) -> Result<i32, String> {
    crate::sys::signal_number(word).ok_or_else(|| {
        format!(
            "unknown signal {:?} (give a name such as HUP or USR1, or a number from 1 to 64)",
            crate::msg::truncate(word, 40)
        )
    })
}

/// The `err` message of a request that needs a running process and found
/// none; the client exits 3 (not running) on it, as `status NAME` does.
pub fn not_running(name: &str) -> String {
    format!("{name}: {NOT_RUNNING}")
}

/// Whether an `err` message is [`not_running`]'s.
pub fn is_not_running(message: &str) -> bool {
    message.ends_with(NOT_RUNNING)
}

const NOT_RUNNING: &str = "not running";

/// The daemon's answer as the client sees it.
#[derive(Debug)]
pub struct Reply {
    /// Payload lines (stdout on success, more error detail on failure).
    pub lines: Vec<String>,
    /// `Ok(())` for `ok`, `Err(message)` for `err MESSAGE`.
    pub result: Result<(), String>,
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum ClientError {
    /// No daemon listens on the socket (absent, refused).
    NotRunning,
    Io(io::Error),
}

/// Sends one request and reads the reply, waiting at most `timeout` for
/// each read.
pub fn request(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    // No socket, nobody listening, or a daemon that closed its socket while
    // exiting (the connection is reset unanswered): all mean not running.
    let gone = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset => {
            ClientError::NotRunning
        }
        _ => ClientError::Io(e),
    };
    let mut stream = UnixStream::connect(socket).map_err(gone)?;
    stream.set_read_timeout(Some(timeout)).map_err(ClientError::Io)?;
    stream.set_write_timeout(Some(timeout)).map_err(ClientError::Io)?;
    stream.write_all(format!("{}\n", request.to_line()).as_bytes()).map_err(gone)?;
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stream);
    for line in (&mut reader).lines() {
        let line = line.map_err(gone)?;
        if line == "ok" {
            if let Request::Shutdown { .. } = request {
                // The daemon holds this connection until it has released
                // its pid file; EOF means a new daemon can start at once.
                let _ = io::copy(&mut reader, &mut io::sink());
            }
            return Ok(Reply { lines, result: Ok(()) });
        }
        if let Some(message) = line.strip_prefix("err ") {
            return Ok(Reply { lines, result: Err(message.to_string()) });
        }
        lines.push(line);
    }
    Err(ClientError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the daemon closed the connection without an answer",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_survives_a_round_trip() {
        let requests = [
            Request::Status { name: None },
            Request::Status { name: Some("web:1".into()) },
            Request::Start { name: "web".into() },
            Request::Stop { target: Target::All },
            Request::Stop { target: Target::Name("a.b-c_d".into()) },
            Request::Restart { name: "web".into() },
            Request::Reload,
            Request::Shutdown { stop_all: false },
            Request::Shutdown { stop_all: true },
            Request::Signal { name: "web:1".into(), signal: libc::SIGHUP },
            Request::Signal { name: "web".into(), signal: 40 },
        ];
        for request in requests {
            assert_eq!(Request::parse(&request.to_line()), Ok(request));
        }
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(Request::parse(""), Err("empty request".into()));
        assert_eq!(Request::parse("launch x"), Err("unknown request \"launch\"".into()));
        assert_eq!(Request::parse("stop a/b"), Err("invalid process name \"a/b\"".into()));
        assert_eq!(Request::parse("stop web:x"), Err("invalid process name \"web:x\"".into()));
        assert!(Request::parse("stop a b").is_err());
        assert_eq!(
            Request::parse("signal web SIGUSR1"),
            Ok(Request::Signal { name: "web".into(), signal: libc::SIGUSR1 })
        );
        assert_eq!(
            Request::parse("signal web BOGUS"),
            Err("unknown signal \"BOGUS\" (give a name such as HUP or USR1, or a number from 1 to 64)".into())
        );
        assert!(Request::parse("signal web").is_err());
    }
}
