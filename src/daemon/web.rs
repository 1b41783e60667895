//! The web UI's server: HTTP/1.1 on the daemon's own poll loop.
//!
//! Every connection is non-blocking and moves through phases like a
//! control-socket client: reading a request (bounded by `http::MAX_HEAD`
//! and `MAX_BODY`, and by a deadline: a slow client gets 408), waiting for
//! processes (stop, restart: the same [`Wait`] the control socket uses),
//! writing, or streaming Server-Sent Events. Requests reduce to the same
//! [`Request`] type and the same handler as the command line.
//!
//! Access: with a token configured, a request must carry it as
//! `Authorization: Bearer …`, or the session cookie that `POST /api/login`
//! sets (HttpOnly, SameSite=Strict). A session id proves itself with a MAC
//! under a key kept on disk (see `session.rs`), so sessions outlive the
//! daemon; signing out rotates the key, ending every session and closing
//! the event streams that sessions opened. Tokens and MACs are compared in
//! constant time. A POST
//! must come from the page itself: a browser's Origin header must name
//! this host, and a cookie-authenticated POST must carry one. Every
//! request, GET too, must name this server in its Host header (its
//! address or localhost, with the port), or it gets 421: a page whose name
//! an attacker made resolve to us (DNS rebinding) reads nothing. Without a
//! token the config only allows a loopback address, and then every local
//! user has full control.
//!
//! Bodies: every POST route reads its body with `json::Flat` (a flat JSON
//! object; empty reads as `{}`) and names the fields it takes, none but
//! login's `token`. A body that is not that, cut short, garbage or with a
//! field no route takes, is a 400 naming the problem, and the route does
//! nothing. The checks go from the cheapest refusal to the body: Host
//! (421), Origin (403), then the session or token (401; login's token is
//! in its body), then the body (400), then the action.
//!
//! Event streams get a `ping` event every [`HEARTBEAT`] (only while one is
//! open, so an idle daemon's loop is not woken for nobody), so the page can
//! tell a frozen daemon from a quiet one.

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};

use nanoserde::SerJson;

use super::*;
use crate::http::{self, Parsed};
use crate::json::Flat;

mod assets {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

/// Connections served at once. A newcomer beyond this (or beyond
/// `MAX_PER_PEER` from its address) closes the oldest connection that has
/// not proved the token; when every one has, it gets 503.
const MAX_CONNS: usize = 32;
/// Connections from one address at once.
const MAX_PER_PEER: usize = 16;
/// How long a new connection may stay silent before it is closed.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(3);
/// A wrong token's 401 is held this long, doubling with each failure from
/// the same address (concurrent connections included) up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// An address's failures are forgotten this long after its last one.
const FORGET_FAILURES: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered; the oldest is forgotten beyond.
const MAX_STRIKES: usize = 64;
/// How often an event stream hears from the daemon when nothing changes.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a started request may take to arrive whole.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// An event stream whose client reads slower than this much backlog is cut.
const MAX_BACKLOG: usize = 1 << 20;
/// The session cookie's name.
const COOKIE: &str = "mi7sid";

pub(super) struct Web {
    listener: TcpListener,
    token: Option<String>,
    conns: Vec<Conn>,
    /// What session ids are checked with; `None` without a token.
    keys: Option<crate::session::Keys>,
    /// When event streams next get a heartbeat (while any is open).
    next_ping: Option<Instant>,
    /// A sign-out rotated the key: streams opened by sessions are to close.
    sessions_ended: bool,
    /// The generation of the last status sent to event streams.
    sent: u64,
    /// Accepting is paused until then (it failed: out of descriptors).
    accept_paused: Option<Instant>,
    /// A connection limit was hit and logged; cleared by a newcomer that
    /// fits, so the log says so once per episode.
    crowded: bool,
    /// Recent wrong tokens, by address.
    strikes: Vec<Strike>,
}

/// The wrong tokens one address sent lately.
struct Strike {
    peer: IpAddr,
    n_failures: u32,
    last: Instant,
}

enum Phase {
    Reading,
    Waiting {
        wait: Wait,
        keep_alive: bool,
    },
    Writing {
        keep_alive: bool,
    },
    /// A 401 for a wrong token, in `output`, held until the deadline; then
    /// written, and the connection closed.
    Held,
    /// `session`: opened with a session cookie, so signing out ends it.
    Events {
        session: bool,
    },
}

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    phase: Phase,
    deadline: Instant,
    /// The address the client reached, which its Host header must name.
    local: SocketAddr,
    peer: IpAddr,
    /// A request on it carried the token (or a session): it is never
    /// closed to make room.
    trusted: bool,
}

impl Conn {
    /// Whether it may be closed to make room for a newcomer: nobody who
    /// proved the token waits on it.
    fn evictable(&self) -> bool {
        !self.trusted && matches!(self.phase, Phase::Reading | Phase::Writing { .. } | Phase::Held)
    }
}

#[derive(SerJson)]
struct Done {
    ok: bool,
    lines: Vec<String>,
}

#[derive(SerJson)]
struct Failure {
    error: String,
    lines: Vec<String>,
}

#[derive(SerJson)]
struct Logs {
    name: String,
    lines: Vec<String>,
    file: u32,
    start: u64,
    end: u64,
    older: bool,
}

/// How a request proved who it is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No token is configured (loopback only): everyone is trusted.
    Open,
    Bearer,
    Cookie,
    /// No credentials, or a session id we do not know.
    Denied,
    /// A wrong Bearer token: a guess, answered slowly.
    Wrong,
}

impl Web {
    pub(super) fn open(settings: &crate::config::WebSettings, keys: Option<crate::session::Keys>) -> io::Result<Web> {
        let listener = TcpListener::bind(settings.listen)?;
        listener.set_nonblocking(true)?;
        Ok(Web {
            listener,
            token: settings.token.clone(),
            conns: Vec::new(),
            keys,
            next_ping: None,
            sessions_ended: false,
            sent: 0,
            accept_paused: None,
            crowded: false,
            strikes: Vec::new(),
        })
    }

    /// The descriptors to poll: the listener, then each connection.
    pub(super) fn poll_fds(&self) -> Vec<PollFd> {
        let listening = if self.accept_paused.is_some() { 0 } else { sys::POLLIN };
        let mut fds = vec![PollFd::new(self.listener.as_raw_fd(), listening)];
        for conn in &self.conns {
            let events = match conn.phase {
                Phase::Reading => sys::POLLIN,
                Phase::Waiting { .. } | Phase::Held => 0,
                Phase::Writing { .. } => sys::POLLOUT,
                // POLLIN on a stream: the client hung up (it sends nothing).
                Phase::Events { .. } => sys::POLLIN | if conn.output.is_empty() { 0 } else { sys::POLLOUT },
            };
            fds.push(PollFd::new(conn.stream.as_raw_fd(), events));
        }
        fds
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().filter(|c| !matches!(c.phase, Phase::Events { .. })).map(|c| c.deadline);
        conns.chain(self.accept_paused).chain(self.next_ping).min()
    }

    fn auth(&self, request: &http::Request) -> Auth {
        let Some(token) = &self.token else { return Auth::Open };
        if let Some(bearer) = request.header("authorization").and_then(|v| v.strip_prefix("Bearer ")) {
            return if constant_time_eq(bearer.trim().as_bytes(), token.as_bytes()) {
                Auth::Bearer
            } else {
                Auth::Wrong
            };
        }
        if let (Some(id), Some(keys)) = (request.cookie(COOKIE), &self.keys) {
            if keys.verify(id, unix_now()) {
                return Auth::Cookie;
            }
        }
        Auth::Denied
    }

    /// Takes a newcomer, closing the oldest connection that has not proved
    /// the token when a limit is reached (or refusing the newcomer with 503
    /// when none may go). Returns a line to log when a limit is first hit.
    fn admit(&mut self, mut conn: Conn, now: Instant) -> Option<String> {
        let from_peer = self.conns.iter().filter(|c| c.peer == conn.peer).count();
        let limit = if from_peer >= MAX_PER_PEER {
            format!("{MAX_PER_PEER} connections from {}", conn.peer)
        } else if self.conns.len() >= MAX_CONNS {
            format!("{MAX_CONNS} connections")
        } else {
            self.crowded = false;
            self.conns.push(conn);
            return None;
        };
        let same_peer = from_peer >= MAX_PER_PEER;
        match self.conns.iter().position(|c| c.evictable() && (!same_peer || c.peer == conn.peer)) {
            Some(oldest) => drop(self.conns.remove(oldest)),
            None => {
                conn.output = error(503, "too many connections", false);
                conn.phase = Phase::Writing { keep_alive: false };
                conn.deadline = now + REQUEST_TIMEOUT;
            }
        }
        self.conns.push(conn);
        if std::mem::replace(&mut self.crowded, true) {
            return None;
        }
        Some(format!("web: {limit} reached; closing the oldest ones without the token to make room (503 when none is)"))
    }

    /// Notes a wrong token from `peer`: how long to hold its 401, and a
    /// line to log when it starts an episode of failures.
    fn strike(&mut self, peer: IpAddr, now: Instant) -> (Duration, Option<String>) {
        self.strikes.retain(|s| now < s.last + FORGET_FAILURES);
        let index = match self.strikes.iter().position(|s| s.peer == peer) {
            Some(index) => index,
            None => {
                if self.strikes.len() >= MAX_STRIKES {
                    self.strikes.remove(0);
                }
                self.strikes.push(Strike { peer, n_failures: 0, last: now });
                self.strikes.len() - 1
            }
        };
        let strike = &mut self.strikes[index];
        strike.n_failures += 1;
        strike.last = now;
        let delay = FIRST_DELAY.saturating_mul(1 << (strike.n_failures - 1).min(16)).min(MAX_DELAY);
        let line = (strike.n_failures == 1).then(|| {
            format!(
                "web: wrong token from {peer}; holding each failure's answer from {}s, doubling to {}s \
                 (logged once until it stops for {}s)",
                FIRST_DELAY.as_secs(),
                MAX_DELAY.as_secs(),
                FORGET_FAILURES.as_secs()
            )
        });
        (delay, line)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether a POST may change things: the browser's Origin, when sent,
/// names this very host; cookie-authenticated requests must send one.
fn same_origin(request: &http::Request, auth: Auth) -> bool {
    match (request.header("origin"), request.header("host")) {
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => auth != Auth::Cookie,
    }
}

/// Whether a Host header names this server: the address the client
/// reached (the listen address; with 0.0.0.0, the one it connected to) or
/// localhost, with the port (which a browser leaves out for 80). A page
/// whose own name was made to resolve to us (DNS rebinding) sends its own
/// name, and is refused before it can read or change anything.
fn host_is_ours(host: Option<&str>, local: SocketAddr) -> bool {
    let Some(host) = host else { return false };
    let ip = match local.ip().to_canonical() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let port = local.port();
    [ip.as_str(), "localhost"].iter().any(|name| {
        host.eq_ignore_ascii_case(&format!("{name}:{port}")) || (port == 80 && host.eq_ignore_ascii_case(name))
    })
}

fn json(status: u16, body: String, keep_alive: bool) -> Vec<u8> {
    http::response(
        status,
        &[("Content-Type", "application/json".into()), ("Cache-Control", "no-store".into())],
        body.as_bytes(),
        keep_alive,
    )
}

fn error(status: u16, message: &str, keep_alive: bool) -> Vec<u8> {
    json(status, Failure { error: message.to_string(), lines: vec![] }.serialize_json(), keep_alive)
}

/// Reads the body of a POST route that takes no fields: empty or `{}`.
fn no_fields(request: &http::Request) -> Result<(), String> {
    Flat::parse(&request.body)?.only(&[])
}

/// The 400 for a body `Flat` refused.
fn bad_body(problem: &str, keep_alive: bool) -> Vec<u8> {
    error(400, &format!("request body: {problem}"), keep_alive)
}

impl Daemon {
    /// Starts the web server if `[web]` is configured; a failure to listen
    /// is logged and the daemon runs on without it.
    pub(super) fn open_web(&mut self) {
        let Some(settings) = &self.config.web else { return };
        if let Some(warning) = settings.short_token() {
            self.log.warning(warning);
        }
        let keys = settings.token.as_ref().and_then(|_| {
            let path = crate::session::key_path(&self.config.daemon.state_file);
            crate::session::Keys::load(&path)
                .or_else(|e| {
                    self.log.warning(format_args!(
                        "[web] {}; sessions will end when the daemon does",
                        msg::path_error(&path, &e)
                    ));
                    crate::session::Keys::in_memory()
                })
                .map_err(|e| self.log.error(format_args!("[web] random: {}", msg::io_error(&e))))
                .ok()
        });
        match Web::open(settings, keys) {
            Ok(web) => {
                self.log.info(format_args!("web UI on http://{}", settings.listen));
                self.web = Some(web);
            }
            Err(e) => self.log.error(format_args!("[web] listen {}: {}", settings.listen, msg::io_error(&e))),
        }
    }

    /// Accepts, reads, answers and streams, for the connections whose
    /// descriptors `ready` says are ready (in `poll_fds` order).
    pub(super) fn serve_web(&mut self, ready: &[bool], now: Instant) {
        let Some(mut web) = self.web.take() else { return };
        // Existing connections first: `ready` is in their order, which
        // making room for a newcomer would change.
        let mut conns = std::mem::take(&mut web.conns);
        let mut ready_conns = ready.iter().skip(1).copied().chain(std::iter::repeat(false));
        conns.retain_mut(|conn| {
            let is_ready = ready_conns.next().unwrap_or(false);
            self.serve_conn(&mut web, conn, is_ready, now)
        });
        if std::mem::take(&mut web.sessions_ended) {
            conns.retain(|c| !matches!(c.phase, Phase::Events { session: true }));
        }
        web.conns = conns;
        let resume = web.accept_paused.is_some_and(|until| until <= now);
        if ready.first().copied().unwrap_or(false) || resume {
            web.accept_paused = None;
            loop {
                let (stream, peer) = match web.listener.accept() {
                    Ok((stream, peer)) => (stream, peer.ip().to_canonical()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // Out of descriptors: the listener stays readable, so
                        // stop polling it for a second instead of spinning.
                        if !resume {
                            self.log.warning(format_args!("web: accept: {}; pausing for 1s", msg::io_error(&e)));
                        }
                        web.accept_paused = Some(now + Duration::from_secs(1));
                        break;
                    }
                };
                let Ok(local) = stream.local_addr() else { continue };
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                let conn = Conn {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                    phase: Phase::Reading,
                    deadline: now + FIRST_BYTE_TIMEOUT,
                    local,
                    peer,
                    trusted: false,
                };
                if let Some(line) = web.admit(conn, now) {
                    self.log.warning(line);
                }
            }
        }
        self.push_events(&mut web, now);
        self.web = Some(web);
    }

    /// Moves one connection along; `false` when it is done.
    fn serve_conn(&mut self, web: &mut Web, conn: &mut Conn, ready: bool, now: Instant) -> bool {
        if let Phase::Reading = conn.phase {
            if ready {
                let mut buf = [0u8; 4096];
                loop {
                    match io::Read::read(&mut conn.stream, &mut buf) {
                        Ok(0) => return false,
                        Ok(n) => {
                            if conn.input.is_empty() {
                                conn.deadline = now + REQUEST_TIMEOUT;
                            }
                            conn.input.extend_from_slice(&buf[..n]);
                            if conn.input.len() > http::MAX_HEAD + http::MAX_BODY {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return false,
                    }
                }
            }
            match http::parse(&conn.input) {
                Parsed::Request(request, used) => {
                    conn.input.drain(..used);
                    self.route(web, conn, request, now);
                }
                Parsed::Refuse(status) => {
                    conn.output = error(status, http::reason(status), false);
                    conn.phase = Phase::Writing { keep_alive: false };
                    conn.deadline = now + REQUEST_TIMEOUT;
                }
                Parsed::Incomplete if now >= conn.deadline => {
                    if conn.input.is_empty() {
                        return false; // an idle keep-alive connection
                    }
                    conn.output = error(408, "the request took too long", false);
                    conn.phase = Phase::Writing { keep_alive: false };
                    conn.deadline = now + REQUEST_TIMEOUT;
                }
                Parsed::Incomplete => {}
            }
        }
        if let Phase::Waiting { wait, keep_alive } = &conn.phase {
            let keep_alive = *keep_alive;
            let answer = match self.check_wait(wait) {
                Some(Ok(lines)) => Some(json(200, Done { ok: true, lines }.serialize_json(), keep_alive)),
                Some(Err(message)) => {
                    Some(json(500, Failure { error: message, lines: vec![] }.serialize_json(), keep_alive))
                }
                None if now >= conn.deadline => Some(error(504, "timed out waiting for the processes", keep_alive)),
                None => None,
            };
            if let Some(answer) = answer {
                conn.output = answer;
                conn.phase = Phase::Writing { keep_alive };
                conn.deadline = now + REQUEST_TIMEOUT;
            }
        }
        if let Phase::Held = conn.phase {
            if now < conn.deadline {
                return true;
            }
            conn.phase = Phase::Writing { keep_alive: false };
            conn.deadline = now + REQUEST_TIMEOUT;
        }
        match conn.phase {
            Phase::Writing { keep_alive } => {
                if now >= conn.deadline {
                    return false;
                }
                match write_some(&mut conn.stream, &mut conn.output) {
                    Ok(true) if keep_alive => {
                        conn.phase = Phase::Reading;
                        conn.deadline = now + IDLE_TIMEOUT;
                        // A pipelined request may already be here.
                        if !conn.input.is_empty() {
                            return self.serve_conn(web, conn, false, now);
                        }
                        true
                    }
                    Ok(true) => false,
                    Ok(false) => true,
                    Err(_) => false,
                }
            }
            Phase::Events { .. } => {
                if ready {
                    // The client sends nothing on a stream: readable means
                    // it hung up (or misbehaves, which ends it too).
                    let mut buf = [0u8; 256];
                    match io::Read::read(&mut conn.stream, &mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        _ => return false,
                    }
                }
                write_some(&mut conn.stream, &mut conn.output).is_ok() && conn.output.len() < MAX_BACKLOG
            }
            Phase::Reading | Phase::Waiting { .. } | Phase::Held => true,
        }
    }

    /// Answers one request, or sets the connection waiting or streaming.
    fn route(&mut self, web: &mut Web, conn: &mut Conn, request: http::Request, now: Instant) {
        let keep = request.keep_alive;
        let auth = web.auth(&request);
        let segments: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
        let method = request.method.as_str();
        let reply = |conn: &mut Conn, bytes: Vec<u8>| {
            conn.output = bytes;
            conn.phase = Phase::Writing { keep_alive: keep };
            conn.deadline = now + REQUEST_TIMEOUT;
        };
        if !host_is_ours(request.header("host"), conn.local) {
            let message = format!("wrong Host; use http://{}/ or http://localhost:{}/", conn.local, conn.local.port());
            conn.output = error(421, &message, false);
            conn.phase = Phase::Writing { keep_alive: false };
            conn.deadline = now + REQUEST_TIMEOUT;
            return;
        }
        if request.path == "/metrics" {
            if auth == Auth::Wrong {
                return self.refuse_slowly(web, conn, now);
            }
            return reply(
                conn,
                match (method, auth) {
                    (_, Auth::Denied) => error(401, "a token is needed", keep),
                    ("GET", _) => {
                        let headers = [
                            ("Content-Type", "text/plain; version=0.0.4".into()),
                            ("Cache-Control", "no-store".into()),
                        ];
                        http::response(200, &headers, self.metrics(now).as_bytes(), keep)
                    }
                    _ => error(405, "only GET here", keep),
                },
            );
        }
        if segments.first() != Some(&"api") {
            if method != "GET" && method != "HEAD" {
                return reply(conn, error(405, "only GET here", keep));
            }
            return reply(conn, asset(&request, keep));
        }
        if matches!(auth, Auth::Bearer | Auth::Cookie) {
            conn.trusted = true;
        }
        if method == "POST" && !same_origin(&request, auth) {
            return reply(conn, error(403, "cross-origin request refused", keep));
        }
        match (method, &segments[1..]) {
            ("POST", ["login"]) => {
                let login = Flat::parse(&request.body).and_then(|body| {
                    body.only(&["token"])?;
                    body.string("token")
                });
                let token = match login {
                    Ok(token) => token,
                    Err(problem) => return reply(conn, bad_body(&problem, keep)),
                };
                if web.token.as_ref().is_some_and(|expected| !constant_time_eq(token.as_bytes(), expected.as_bytes())) {
                    return self.refuse_slowly(web, conn, now);
                }
                let Some(keys) = &web.keys else {
                    return reply(conn, error(500, "sessions are unavailable (see the daemon's log)", keep));
                };
                let id = match keys.issue(unix_now()) {
                    Ok(id) => id,
                    Err(e) => return reply(conn, error(500, &format!("random: {}", msg::io_error(&e)), keep)),
                };
                let cookie = format!("{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/");
                reply(conn, http::response(204, &[("Set-Cookie", cookie)], b"", keep))
            }
            ("POST", ["logout"]) => {
                if let Err(problem) = no_fields(&request) {
                    return reply(conn, bad_body(&problem, keep));
                }
                // Only a valid session (or the token) may end them all.
                if request.cookie(COOKIE).is_some() && matches!(auth, Auth::Cookie | Auth::Bearer) {
                    if let Some(keys) = &mut web.keys {
                        if let Err(e) = keys.rotate() {
                            self.log.warning(format_args!(
                                "[web] sign-out: rotating the session key: {}",
                                msg::io_error(&e)
                            ));
                        }
                    }
                    // Their event streams end too, once this pass is over.
                    web.sessions_ended = true;
                }
                let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
                reply(conn, http::response(204, &[("Set-Cookie", cookie)], b"", keep))
            }
            _ if auth == Auth::Wrong => self.refuse_slowly(web, conn, now),
            _ if auth == Auth::Denied => reply(conn, error(401, "sign in first", keep)),
            ("GET", ["status"]) => {
                let indices: Vec<usize> = (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect();
                reply(conn, json(200, self.status_document(&indices, now).to_json(), keep))
            }
            ("GET", ["events"]) => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
                            X-Content-Type-Options: nosniff\r\n\r\n";
                conn.output = head.as_bytes().to_vec();
                conn.output.extend_from_slice(&self.status_event(now));
                conn.phase = Phase::Events { session: auth == Auth::Cookie };
                web.next_ping.get_or_insert(now + HEARTBEAT);
            }
            ("GET", ["processes", name, "logs"]) => reply(conn, self.logs(name, &request, keep)),
            ("POST", ["processes", name, verb @ ("start" | "stop" | "restart" | "signal")]) => {
                let name = name.to_string();
                let body = if *verb == "signal" { signal_body(&request) } else { no_fields(&request).map(|()| 0) };
                let signal = match body {
                    Ok(signal) => signal,
                    Err(problem) => return reply(conn, bad_body(&problem, keep)),
                };
                let request = match *verb {
                    "start" => Request::Start { name },
                    "stop" => Request::Stop { target: Target::Name(name) },
                    "signal" => Request::Signal { name, signal },
                    _ => Request::Restart { name },
                };
                match self.handle(request, Asker::Web, now) {
                    Outcome::Reply(Ok(lines)) => {
                        reply(conn, json(200, Done { ok: true, lines }.serialize_json(), keep))
                    }
                    Outcome::Reply(Err((lines, message))) => {
                        let status = if message.starts_with("unknown process") { 404 } else { 409 };
                        reply(conn, json(status, Failure { error: message, lines }.serialize_json(), keep))
                    }
                    Outcome::Wait(wait) => {
                        conn.phase = Phase::Waiting { wait, keep_alive: keep };
                        conn.deadline = now + self.wait_timeout();
                    }
                }
            }
            (_, ["status" | "events" | "login" | "logout"]) | (_, ["processes", _, _]) => {
                reply(conn, error(405, "wrong method", keep))
            }
            _ => reply(conn, error(404, "no such endpoint", keep)),
        }
    }

    /// Answers a wrong token: its 401 waits, longer with each failure from
    /// the same address, then the connection closes (what it pipelined is
    /// never read). The loop goes on meanwhile; a right token from the same
    /// address is not held, so a guesser cannot lock the admin out.
    fn refuse_slowly(&mut self, web: &mut Web, conn: &mut Conn, now: Instant) {
        let (delay, line) = web.strike(conn.peer, now);
        if let Some(line) = line {
            self.log.warning(line);
        }
        conn.input.clear();
        conn.output = error(401, "wrong token", false);
        conn.phase = Phase::Held;
        conn.deadline = now + delay;
    }

    /// `GET /api/processes/NAME/logs`: a page of the captured log.
    /// `lines` (at most 5000) lines of `file` (0: the log, k: its kth
    /// rotated file), the last ones, or those ending at `before` (a byte
    /// offset: paging back), or every whole line from `after` on
    /// (following). With `download=1`, the whole file as text.
    fn logs(&self, name: &str, request: &http::Request, keep: bool) -> Vec<u8> {
        let base = name.split(':').next().unwrap_or(name);
        let Some(def) = self.config.services.iter().find(|d| d.name == base) else {
            return error(404, &format!("unknown process \"{name}\""), keep);
        };
        let (path, n_keep) = match &def.capture {
            Some(crate::capture::Sink::File { path, keep: n_keep, .. }) => (path, *n_keep),
            Some(crate::capture::Sink::Syslog) => {
                return error(409, &format!("{name}: its output goes to the system log"), keep);
            }
            Some(crate::capture::Sink::Log) | None => {
                return error(409, &format!("{name}: its output goes to the daemon's log (no log_file)"), keep);
            }
        };
        let number = |key: &str| request.param(key).and_then(|n| n.parse::<u64>().ok());
        let file = number("file").unwrap_or(0).min(u64::from(u32::MAX)) as u32;
        let owners = [crate::sys::geteuid()];
        let shown = if file == 0 { path.clone() } else { crate::capture::rotated(path, file) };
        if request.param("download").as_deref() == Some("1") {
            return match crate::capture::page(
                path,
                n_keep,
                file,
                crate::capture::Cursor::Before(u64::MAX),
                usize::MAX,
                &owners,
            ) {
                Ok(page) => {
                    let mut text = page.lines.join("\n");
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    let file_name = shown.file_name().map_or("log".into(), |n| n.to_string_lossy().replace('"', ""));
                    let headers = [
                        ("Content-Type", "text/plain; charset=utf-8".to_string()),
                        ("Content-Disposition", format!("attachment; filename=\"{file_name}\"")),
                        ("Cache-Control", "no-store".to_string()),
                    ];
                    http::response(200, &headers, text.as_bytes(), keep)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    error(404, &format!("{}: no such file", shown.display()), keep)
                }
                Err(e) => error(500, &msg::path_error(&shown, &e), keep),
            };
        }
        let lines = number("lines").unwrap_or(100).min(5000) as usize;
        let cursor = match (number("before"), number("after")) {
            (_, Some(after)) => crate::capture::Cursor::After(after),
            (Some(before), None) => crate::capture::Cursor::Before(before),
            (None, None) => crate::capture::Cursor::Last,
        };
        match crate::capture::page(path, n_keep, file, cursor, lines, &owners) {
            Ok(page) => {
                let crate::capture::Page { lines, file, start, end, older } = page;
                json(200, Logs { name: name.to_string(), lines, file, start, end, older }.serialize_json(), keep)
            }
            // No output yet (or no such rotated file): nothing to show.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let empty = Logs { name: name.to_string(), lines: vec![], file, start: 0, end: 0, older: false };
                json(200, empty.serialize_json(), keep)
            }
            Err(e) => error(500, &msg::path_error(&shown, &e), keep),
        }
    }

    fn status_event(&self, now: Instant) -> Vec<u8> {
        let indices: Vec<usize> = (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect();
        format!("event: status\ndata: {}\n\n", self.status_document(&indices, now).to_json()).into_bytes()
    }

    /// Sends the status to every event stream when something changed, and
    /// a heartbeat when one is due.
    fn push_events(&mut self, web: &mut Web, now: Instant) {
        if !web.conns.iter().any(|c| matches!(c.phase, Phase::Events { .. })) {
            web.sent = self.generation;
            web.next_ping = None;
            return;
        }
        let ping = web.next_ping.is_some_and(|at| at <= now);
        if web.sent == self.generation && !ping {
            return;
        }
        let mut event = Vec::new();
        if web.sent != self.generation {
            event = self.status_event(now);
        } else {
            event.extend_from_slice(format!("event: ping\ndata: {}\n\n", unix_now()).as_bytes());
        }
        // Any event shows the daemon alive: the next heartbeat is due a period after it.
        web.next_ping = Some(now + HEARTBEAT);
        for conn in web.conns.iter_mut().filter(|c| matches!(c.phase, Phase::Events { .. })) {
            conn.output.extend_from_slice(&event);
            let _ = write_some(&mut conn.stream, &mut conn.output);
        }
        web.sent = self.generation;
    }
}

/// The signal of `POST /api/processes/NAME/signal`, whose body is
/// `{"signal":"HUP"}`: a name as on the command line, or a number.
fn signal_body(request: &http::Request) -> Result<i32, String> {
    let body = Flat::parse(&request.body)?;
    body.only(&["signal"])?;
    let word = body.string("signal").or_else(|_| body.number::<i64>("signal").map(|n| n.to_string()))?;
    crate::control::signal(&word)
}

impl Daemon {
    /// `GET /metrics`: the status of every instance, and the supervisor's
    /// own, in Prometheus's format (see `metrics.rs`).
    fn metrics(&self, now: Instant) -> String {
        let indices: Vec<usize> = (0..self.slots.len()).filter(|&i| !self.slots[i].retired).collect();
        let document = self.status_document(&indices, now);
        let starts: Vec<u64> = indices.iter().map(|&i| self.slots[i].started_at).collect();
        let own = procfs::process_usage(sys::getpid());
        let supervisor = crate::metrics::Supervisor {
            version: env!("CARGO_PKG_VERSION"),
            start_time: own.and_then(|(_, start)| start),
            cpu_ms: own.map(|(usage, _)| usage.cpu_ms),
            memory_bytes: own.map(|(usage, _)| usage.memory_bytes),
            n_services: self.config.services.len(),
            dropped_bytes: self.pipes.iter().map(|p| p.capture.dropped()).sum(),
        };
        crate::metrics::render(&supervisor, &document.processes, &starts)
    }
}

/// Whether the client takes gzip: `Accept-Encoding` names it (or `*`)
/// without `q=0`.
fn accepts_gzip(request: &http::Request) -> bool {
    let Some(header) = request.header("accept-encoding") else { return false };
    header.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or("");
        let refused = parts.any(|p| p.replace(' ', "").strip_prefix("q=").is_some_and(|q| q.parse::<f32>() == Ok(0.0)));
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
    })
}

/// An embedded file of the page, with ETag revalidation: gzip-encoded for
/// clients that take it, inflated on the fly for those that do not (see
/// `inflate.rs` for why not embedded twice).
fn asset(request: &http::Request, keep: bool) -> Vec<u8> {
    let path = if request.path == "/" { "/index.html" } else { request.path.as_str() };
    let Some((_, content_type, gzipped, etag)) = assets::ASSETS.iter().find(|(p, ..)| *p == path) else {
        if assets::ASSETS.is_empty() {
            let text = b"this mi7soft-daemon was built without its web page; the API is at /api/status\n";
            return http::response(404, &[("Content-Type", "text/plain; charset=utf-8".into())], text, keep);
        }
        return error(404, "no such file", keep);
    };
    // Built asset names carry a content hash: cache them for good.
    let cache = if path.starts_with("/assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let gzip = accepts_gzip(request);
    // The two encodings are two representations: each has its own ETag.
    let etag = if gzip { etag.to_string() } else { format!("{}-id\"", etag.trim_end_matches('"')) };
    let headers =
        [("ETag", etag.clone()), ("Cache-Control", cache.to_string()), ("Vary", "Accept-Encoding".to_string())];
    if request.header("if-none-match") == Some(etag.as_str()) {
        return http::response(304, &headers, b"", keep);
    }
    let mut headers = headers.to_vec();
    headers.push(("Content-Type", content_type.to_string()));
    if gzip {
        headers.push(("Content-Encoding", "gzip".to_string()));
    }
    let plain;
    let body: &[u8] = match (request.method.as_str(), gzip) {
        ("HEAD", _) => b"",
        (_, true) => gzipped,
        (_, false) => match crate::inflate::gunzip(gzipped) {
            Ok(bytes) => {
                plain = bytes;
                &plain
            }
            Err(problem) => return error(500, &format!("{path}: embedded page: {problem}"), keep),
        },
    };
    http::response(200, &headers, body, keep)
}
