//! The programs our users really run under the supervisor: nginx,
//! redis-server, dnsmasq, dropbear, and sd_notify clients (systemd-notify
//! and python3-systemd). Each runs in the foreground on 127.0.0.1 and a free
//! port, with every file it writes inside the test's directory.
//!
//! Small sh services are polite: they keep their environment, their stdout
//! and their default signal dispositions. Real daemons are not: nginx and
//! redis write their process title over their environment, nginx forks
//! workers, and a daemon writing to a stdout whose reader went away meets
//! SIGPIPE, and python-systemd's `notify` raises when the notify socket has
//! no reader. The promise must hold all the same: the supervisor may be
//! SIGKILLed at any moment (right after a spawn, during a reload, at random)
//! and the next one adopts each daemon with the same pid and start time,
//! still serving, started once, still hearing its sd_notify messages, and
//! `shutdown --stop-all` leaves nothing of it behind; a service whose
//! output goes to the supervisor's stdout survives that stdout's reader.
//!
//! Every adoption test tallies its kills and prints one line,
//! `adoption: NAME kills=N adopted=A lost=L doubled=D`, then fails if any
//! kill lost or doubled the daemon. It kills at three named moments and then
//! at `MI7_KILLS` random ones (default 3): `MI7_KILLS=20 cargo test --test it
//! real_daemons::adoption -- --nocapture` gives the table of 23 kills per
//! daemon. `MI7_SEED=N` replays the random moments of a run that printed
//! seed N. "Lost" means the process that ran at the kill is not the one the
//! new supervisor shows; "doubled" means a second copy was started beside
//! it, or more of the daemon's processes ran than one copy has.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// A real daemon as a test runs it.
struct Real {
    /// The service name, also the test directory's.
    name: &'static str,
    binary: &'static str,
    /// How many processes one healthy copy runs (nginx: a master, 2 workers).
    n_processes: usize,
    /// Writes what the daemon needs into the directory; returns its args.
    setup: fn(&TestDir, u16) -> Vec<String>,
    /// Whether it answers its protocol on 127.0.0.1:port.
    serves: fn(u16) -> bool,
}

const NGINX: Real =
    Real { name: "nginx", binary: "/usr/sbin/nginx", n_processes: 3, setup: nginx_setup, serves: nginx_serves };
const REDIS: Real =
    Real { name: "redis", binary: "/usr/bin/redis-server", n_processes: 1, setup: redis_setup, serves: redis_serves };
const DNSMASQ: Real =
    Real { name: "dnsmasq", binary: "/usr/sbin/dnsmasq", n_processes: 1, setup: dnsmasq_setup, serves: dnsmasq_serves };
const DROPBEAR: Real =
    Real { name: "dropbear", binary: "/usr/sbin/dropbear", n_processes: 1, setup: dropbear_setup, serves: ssh_serves };

const PAGE: &str = "served by nginx under mi7soft-daemon\n";

fn nginx_setup(dir: &TestDir, port: u16) -> Vec<String> {
    let d = dir.path.display();
    fs::create_dir_all(dir.join("www")).unwrap();
    dir.write("www/hello.txt", PAGE);
    // Every path nginx would write is set: its compiled-in defaults are
    // under /var/lib/nginx and /run.
    dir.write(
        "nginx.conf",
        &format!(
            "master_process on;\nworker_processes 2;\nerror_log {d}/error.log notice;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp-body;\n  \
             proxy_temp_path {d}/tmp-proxy;\n  fastcgi_temp_path {d}/tmp-fastcgi;\n  \
             uwsgi_temp_path {d}/tmp-uwsgi;\n  scgi_temp_path {d}/tmp-scgi;\n  \
             server {{ listen 127.0.0.1:{port}; root {d}/www; }}\n}}\n"
        ),
    );
    ["-p", &format!("{d}"), "-e", &format!("{d}/error.log"), "-c", &format!("{d}/nginx.conf"), "-g", "daemon off;"]
        .map(String::from)
        .to_vec()
}

fn nginx_serves(port: u16) -> bool {
    exchange(port, b"GET /hello.txt HTTP/1.0\r\nHost: localhost\r\n\r\n", true)
        .is_some_and(|reply| reply.starts_with(b"HTTP/1.1 200") && reply.ends_with(PAGE.as_bytes()))
}

fn redis_setup(dir: &TestDir, port: u16) -> Vec<String> {
    let d = dir.path.display();
    ["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir", &format!("{d}"), "--save", "", "--appendonly", "no"]
        .into_iter()
        .chain(["--daemonize", "no"])
        .map(String::from)
        .collect()
}

fn redis_serves(port: u16) -> bool {
    exchange(port, b"*1\r\n$4\r\nPING\r\n", false).is_some_and(|reply| reply.starts_with(b"+PONG\r\n"))
}

fn dnsmasq_setup(dir: &TestDir, port: u16) -> Vec<String> {
    let d = dir.path.display();
    // --user=root: dnsmasq otherwise drops to nobody, which is fine too, but
    // the test directory and its pid file stay root's.
    [
        "--keep-in-foreground".to_string(),
        "--no-resolv".to_string(),
        "--no-hosts".to_string(),
        format!("--port={port}"),
        "--listen-address=127.0.0.1".to_string(),
        "--bind-interfaces".to_string(),
        "--address=/example.test/10.9.8.7".to_string(),
        format!("--pid-file={d}/dnsmasq.pid"),
        "--conf-file=/dev/null".to_string(),
        "--user=root".to_string(),
    ]
    .to_vec()
}

/// Sends an A query for example.test to 127.0.0.1:port (and nowhere else)
/// and checks that the answer holds 10.9.8.7.
fn dnsmasq_serves(port: u16) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else { return false };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
    let id = fastrand::u16(..);
    let mut query = id.to_be_bytes().to_vec();
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    query.extend_from_slice(b"\x07example\x04test\x00\x00\x01\x00\x01"); // example.test A IN
    if socket.send_to(&query, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut reply = [0u8; 512];
    let Ok((n, from)) = socket.recv_from(&mut reply) else { return false };
    let reply = &reply[..n];
    if from != SocketAddr::from(([127, 0, 0, 1], port)) || n < 12 || reply[..2] != id.to_be_bytes() {
        return false;
    }
    let n_answers = u16::from_be_bytes([reply[6], reply[7]]);
    // Skip the question (the name we sent, then type and class).
    let mut at = query.len();
    for _ in 0..n_answers {
        // The answer's name: a compression pointer, or labels.
        while at < n && reply[at] != 0 && reply[at] & 0xc0 != 0xc0 {
            at += 1 + usize::from(reply[at]);
        }
        at += if reply.get(at).is_some_and(|b| b & 0xc0 == 0xc0) { 2 } else { 1 };
        let Some(fixed) = reply.get(at..at + 10) else { return false };
        let (kind, len) =
            (u16::from_be_bytes([fixed[0], fixed[1]]), usize::from(u16::from_be_bytes([fixed[8], fixed[9]])));
        at += 10;
        if kind == 1 && reply.get(at..at + len) == Some(&[10, 9, 8, 7][..]) {
            return true;
        }
        at += len;
    }
    false
}

fn dropbear_setup(dir: &TestDir, port: u16) -> Vec<String> {
    let key = dir.join("host_key");
    let out = Command::new("/usr/bin/dropbearkey").args(["-t", "ed25519", "-f"]).arg(&key).output().unwrap();
    assert!(out.status.success(), "dropbearkey failed: {out:?}");
    let d = dir.path.display();
    ["-F", "-E", "-p", &format!("127.0.0.1:{port}"), "-r", &format!("{d}/host_key"), "-P", &format!("{d}/dropbear.pid")]
        .map(String::from)
        .to_vec()
}

fn ssh_serves(port: u16) -> bool {
    exchange(port, b"", false).is_some_and(|banner| banner.starts_with(b"SSH-2.0-"))
}

/// Connects to 127.0.0.1:port, sends `request`, and returns what came back:
/// everything until the peer closed (`to_end`), or the first read.
fn exchange(port: u16, request: &[u8], to_end: bool) -> Option<Vec<u8>> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(request).ok()?;
    let mut reply = Vec::new();
    if to_end {
        stream.read_to_end(&mut reply).ok()?;
    } else {
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).ok()?;
        reply.extend_from_slice(&buf[..n]);
    }
    Some(reply)
}

/// Fields 3 onwards of /proc/PID/stat, or nothing when the process is gone.
fn stat_fields(pid: i32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect()))
        .unwrap_or_default()
}

/// The start time of `pid` (field 22 of /proc/PID/stat), or `None` when it is gone.
fn starttime(pid: i32) -> Option<u64> {
    stat_fields(pid).get(22 - 3).and_then(|t| t.parse().ok())
}

/// Live processes of this test (see `TestDir::processes`) running `binary`.
fn copies(dir: &TestDir, binary: &str) -> Vec<i32> {
    let exe = fs::canonicalize(binary).unwrap();
    dir.processes()
        .into_iter()
        .filter(|&pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe))
        .collect()
}

/// The copies of `binary` the supervisor (or anyone) started: those whose
/// parent is not itself a copy. nginx's workers and dropbear's
/// per-connection children (which call setsid, and re-exec themselves with
/// `-2 N`) are part of the copy that forked them.
fn starts(dir: &TestDir, binary: &str) -> Vec<i32> {
    let all = copies(dir, binary);
    let parent = |pid: i32| stat_fields(pid).get(4 - 3).and_then(|p| p.parse::<i32>().ok());
    all.iter().copied().filter(|&pid| parent(pid).is_none_or(|p| !all.contains(&p))).collect()
}

/// Each copy of `binary` with its command line, for a failure message.
fn describe(dir: &TestDir, binary: &str) -> String {
    copies(dir, binary).iter().map(|&pid| format!("{pid} {:?}", cmdline(pid))).collect::<Vec<_>>().join(", ")
}

/// Polls `condition` until it holds (true) or `timeout` passes (false):
/// for conditions whose failure the test tallies instead of panicking.
fn settles(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The end of the daemon's log, for a failure message.
fn log_tail(dir: &TestDir) -> String {
    let log = dir.read("daemon.log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(8)..].join("\n    ")
}

/// Writes daemon.toml with `real` as its one service. `stop_timeout`
/// changes between reloads so that a reload has something to apply. The
/// backoff and start-limit keys let a test that found a lost copy (and
/// killed it) get a running one back quickly.
fn real_config(dir: &TestDir, real: &Real, args: &[String], stop_timeout: u32) {
    dir.config(&format!(
        "[[processes]]\nname = \"{}\"\ncommand = \"{}\"\nargs = {args:?}\nstop_timeout = {stop_timeout}\n\
         backoff_max = 1\nstart_limit_burst = 0\n\n",
        real.name, real.binary
    ));
}

/// What the supervisor kills of one test did to its daemon.
#[derive(Default)]
struct Tally {
    kills: usize,
    adopted: usize,
    lost: usize,
    doubled: usize,
    failures: Vec<String>,
}

impl Tally {
    /// SIGKILLs `daemon` (the supervisor), starts a new one, and records
    /// whether it adopted what ran at the kill: same pid and start time,
    /// serving, no second copy. Returns the new supervisor, with the daemon
    /// running and serving under it (a lost copy is killed to get there).
    fn kill_and_readopt(&mut self, dir: &TestDir, real: &Real, port: u16, daemon: Daemon, moment: &str) -> Daemon {
        self.kills += 1;
        drop(daemon); // SIGKILL, then reaped.

        // What the dead supervisor forked but had not exec'd yet goes on to
        // exec; a copy caught mid-start finishes starting (nginx forks its
        // workers) before it is counted.
        wait_until(secs(5), &format!("{moment}: no half-spawned service is left"), || {
            dir.processes()
                .iter()
                .all(|&pid| !cmdline(pid).contains("mi7soft-daemon") || cmdline(pid).contains("fd-holder"))
        });
        settles(secs(5), || {
            let (n_starts, n_copies) = (starts(dir, real.binary).len(), copies(dir, real.binary).len());
            n_copies == n_starts * real.n_processes
        });
        let before: Vec<(i32, Option<u64>)> =
            starts(dir, real.binary).into_iter().map(|pid| (pid, starttime(pid))).collect();
        let mut doubled = before.len() > 1;
        if doubled {
            self.failures.push(format!(
                "{moment}: {} copies ran at the kill: {}",
                before.len(),
                describe(dir, real.binary)
            ));
        }

        let daemon = Daemon::start(dir);
        let mut shown = None;
        settles(secs(10), || {
            shown = daemon.find(real.name).filter(|p| p.pid.is_some());
            shown.is_some()
        });
        let shown_pid = shown.as_ref().and_then(|p| p.pid);
        let mut lost = false;
        if let Some(&(old, old_start)) = before.first() {
            if shown_pid != Some(old) || starttime(old) != old_start {
                lost = true;
                self.failures.push(format!(
                    "{moment}: pid {old} (alive: {}, {:?}) was not adopted; status shows {shown:?}; log:\n    {}",
                    alive(old),
                    cmdline(old),
                    log_tail(dir)
                ));
                if alive(old) && shown_pid.is_some() {
                    doubled = true;
                    self.failures.push(format!("{moment}: a second copy started beside pid {old}"));
                }
                // Kill the lost copy so the supervisor's own gets the port.
                let _ = Command::new("kill").args(["-KILL", "--", &format!("-{old}")]).status();
            }
        }

        let running = settles(secs(15), || {
            daemon.find(real.name).is_some_and(|p| p.state == "running" && p.pid.is_some_and(alive))
                && (real.serves)(port)
        });
        if !running {
            self.failures.push(format!(
                "{moment}: not running and serving after the new supervisor started: {:?}; log:\n    {}",
                daemon.find(real.name),
                log_tail(dir)
            ));
        } else if !lost {
            // The one copy runs exactly its processes; nginx's workers may
            // still be starting when a copy was caught mid-start.
            let settled = settles(secs(5), || copies(dir, real.binary).len() == real.n_processes);
            if !settled {
                let n = copies(dir, real.binary).len();
                doubled |= n > real.n_processes;
                self.failures.push(format!(
                    "{moment}: {n} processes of {} where {} expected: {}",
                    real.binary,
                    real.n_processes,
                    describe(dir, real.binary)
                ));
            }
        }
        self.lost += usize::from(lost);
        self.doubled += usize::from(doubled);
        self.adopted += usize::from(!lost && !doubled && running && !before.is_empty());
        daemon
    }
}

/// Runs `real` under the supervisor and SIGKILLs the supervisor right after
/// it spawned the daemon, right after `restart` returned, during a reload,
/// and at `MI7_KILLS` random moments; each time a new supervisor must adopt
/// the same process, still serving, with no second copy. Then `shutdown
/// --stop-all` must leave none of its processes.
fn adopted_across_supervisor_kills(real: &Real) {
    let seed = std::env::var("MI7_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let n_random: usize = std::env::var("MI7_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = TestDir::new(real.name);
    let port = free_port();
    let args = (real.setup)(&dir, port);
    real_config(&dir, real, &args, 10);
    let mut tally = Tally::default();

    // Right after the spawn: as soon as the daemon's binary runs.
    let daemon = Daemon::spawn(&dir, &["-c", "daemon.toml", "start"]);
    wait_until(secs(10), &format!("{} is spawned", real.name), || !copies(&dir, real.binary).is_empty());
    let mut daemon = tally.kill_and_readopt(&dir, real, port, daemon, "right after the first spawn");

    // Right after `restart` returned: the new process is ready.
    let out = daemon.cli(&["restart", real.name]);
    assert_eq!(out.code, 0, "restart {}: {out:?}", real.name);
    daemon = tally.kill_and_readopt(&dir, real, port, daemon, "right after restart returned");

    // During a reload that changes a key applied in place.
    real_config(&dir, real, &args, 11);
    kill(daemon.pid(), "HUP");
    daemon = tally.kill_and_readopt(&dir, real, port, daemon, "right after SIGHUP");

    for round in 0..n_random {
        if rng.bool() {
            // While a fresh supervisor starts and adopts.
            drop(daemon);
            daemon = Daemon::spawn(&dir, &["-c", "daemon.toml", "start"]);
            std::thread::sleep(Duration::from_millis(rng.u64(0..=300)));
        } else {
            std::thread::sleep(Duration::from_millis(rng.u64(0..=1000)));
        }
        daemon = tally.kill_and_readopt(&dir, real, port, daemon, &format!("seed {seed}, random kill {round}"));
    }

    let out = daemon.cli(&["shutdown", "--stop-all"]);
    let left = settles(secs(10), || copies(&dir, real.binary).is_empty());
    let summary = format!(
        "adoption: {} kills={} adopted={} lost={} doubled={}",
        real.name, tally.kills, tally.adopted, tally.lost, tally.doubled
    );
    println!("{summary}");
    assert!(
        tally.failures.is_empty(),
        "{summary} (seed {seed})\n{}",
        tally.failures.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(out.code, 0, "shutdown --stop-all: {out:?}");
    assert!(left, "after shutdown --stop-all these still run: {}", describe(&dir, real.binary));
}

#[test]
fn adoption_nginx() {
    adopted_across_supervisor_kills(&NGINX);
}

#[test]
fn adoption_redis() {
    adopted_across_supervisor_kills(&REDIS);
}

#[test]
fn adoption_dnsmasq() {
    adopted_across_supervisor_kills(&DNSMASQ);
}

#[test]
fn adoption_dropbear() {
    adopted_across_supervisor_kills(&DROPBEAR);
}

/// Checks that `label` stays `starting` (up, not ready) for a while; the
/// service only sends READY=1 once the test creates `go`.
fn not_ready_before_go(daemon: &Daemon, label: &str) -> i32 {
    let pid = daemon.wait_started(label);
    holds_for(secs(1), &format!("{label} is starting until it sends READY=1"), || {
        let p = daemon.process(label);
        p.state == "starting" && p.pid == Some(pid)
    });
    pid
}

#[test]
fn systemd_notify_readiness_and_status_survive_a_supervisor_kill() {
    let dir = TestDir::new("sd-notify");
    // systemd-notify runs as a child of the service's shell and exits;
    // --pid=$$ names the shell, the service's main process, as the sender.
    let script = "while [ ! -e go ]; do sleep 0.05; done
        /usr/bin/systemd-notify --pid=$$ --ready --status='serving from sh'
        while [ ! -e go2 ]; do sleep 0.05; done
        /usr/bin/systemd-notify --pid=$$ --status='heard after the supervisor restart'
        exec sleep 1000";
    dir.config(&sh_service("notified", script, "ready = \"notify\""));
    let daemon = Daemon::start(&dir);
    let pid = not_ready_before_go(&daemon, "notified");
    dir.write("go", "");
    wait_until(secs(10), "notified is running (ready) after READY=1", || daemon.process("notified").state == "running");
    let p = daemon.process("notified");
    assert_eq!((p.pid, p.status_text.as_deref()), (Some(pid), Some("serving from sh")), "{p:?}");
    let start = starttime(pid);

    drop(daemon);
    let daemon = Daemon::start(&dir);
    let p = daemon.process("notified");
    assert_eq!((p.state.as_str(), p.pid), ("running", Some(pid)), "notified was not adopted: {p:?}");
    assert_eq!(starttime(pid), start);
    // The service notifies the new supervisor through the same NOTIFY_SOCKET.
    dir.write("go2", "");
    let mut text = None;
    let heard = settles(secs(5), || {
        text = daemon.process("notified").status_text;
        text.as_deref() == Some("heard after the supervisor restart")
    });
    assert!(heard, "the new supervisor did not hear STATUS= (shows {text:?}); log:\n{}", daemon.log());

    let out = daemon.cli(&["shutdown", "--stop-all"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "nothing of the test runs after shutdown --stop-all", || dir.processes().is_empty());
}

/// A python3-systemd service: READY=1 once `go` exists, then WATCHDOG=1
/// with a STATUS= tick every 200 ms, as a user would write it (python's
/// `daemon.notify` raises when the socket cannot be reached), each tick
/// also written to `ticks` for the test.
const WATCHDOG_PY: &str = r#"import os, time
from systemd import daemon
while not os.path.exists("go"):
    time.sleep(0.05)
daemon.notify("READY=1\nSTATUS=ready")
n = 0
while True:
    n += 1
    daemon.notify(f"WATCHDOG=1\nSTATUS=tick {n}")
    with open("ticks.tmp", "w") as f:
        f.write(str(n))
    os.rename("ticks.tmp", "ticks")
    time.sleep(0.2)
"#;

/// The tick number in a `STATUS=tick N`, or 0.
fn tick(p: &ProcessInfo) -> u64 {
    p.status_text.as_deref().and_then(|t| t.strip_prefix("tick ")).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn python_systemd_watchdog_is_heard_across_a_supervisor_kill() {
    let dir = TestDir::new("sd-python");
    dir.write("watchdog.py", WATCHDOG_PY);
    // The system python: python3-systemd is a Debian package, not in PATH's pyenv.
    dir.config(
        "[[processes]]\nname = \"pywd\"\ncommand = \"/usr/bin/python3\"\nargs = [\"watchdog.py\"]\n\
         ready = \"notify\"\nwatchdog_sec = 2\n\n",
    );
    let daemon = Daemon::start(&dir);
    let pid = not_ready_before_go(&daemon, "pywd");
    dir.write("go", "");
    wait_until(secs(10), "pywd is running (ready) after READY=1", || daemon.process("pywd").state == "running");
    wait_until(secs(5), "pywd's STATUS= ticks show in status", || tick(&daemon.process("pywd")) > 0);
    let start = starttime(pid);

    drop(daemon);
    // Past the watchdog's 2 s: the service pings into a socket nobody reads.
    let ticks = |dir: &TestDir| dir.read("ticks").trim().parse::<u64>().unwrap_or(0);
    let at_kill = ticks(&dir);
    settles(secs(10), || ticks(&dir) > at_kill + 12 || !alive(pid));
    assert!(alive(pid), "pywd died while the supervisor was down; log:\n    {}", log_tail(&dir));
    let daemon = Daemon::start(&dir);
    let p = daemon.process("pywd");
    assert_eq!((p.state.as_str(), p.pid), ("running", Some(pid)), "pywd was not adopted: {p:?}");
    assert_eq!(starttime(pid), start);
    // The new supervisor hears the ticks, so the watchdog is fed: no restart.
    let mut p = daemon.process("pywd");
    let heard = settles(secs(5), || {
        p = daemon.process("pywd");
        tick(&p) > 0
    });
    assert!(heard, "the new supervisor hears no STATUS= from pywd: {p:?}; log:\n{}", daemon.log());
    holds_for(secs(3), "pywd keeps its pid: the watchdog is fed", || daemon.process("pywd").pid == Some(pid));

    let out = daemon.cli(&["shutdown", "--stop-all"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "nothing of the test runs after shutdown --stop-all", || dir.processes().is_empty());
}

#[test]
fn a_service_without_log_file_survives_its_supervisors_stdout_reader_going_away() {
    let dir = TestDir::new("rd-pipe");
    let script = "while [ ! -e go ]; do sleep 0.05; done
        n=0; while :; do n=$((n+1)); echo \"out $n\"; echo \"err $n\" >&2; echo $n > written; sleep 0.01; done";
    dir.config(&sh_service("chatty", script, ""));
    let child = Command::new(bin())
        .args(["-c", "daemon.toml", "start"])
        .current_dir(&dir.path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon { dir: dir.path.clone(), child }.answering();
    let pid = daemon.wait_running("chatty", None);
    // The reader goes away: a terminal closed, a `| logger` that died.
    drop(daemon.child.stdout.take());
    drop(daemon.child.stderr.take());
    dir.write("go", "");
    let written = |dir: &TestDir| dir.read("written").trim().parse::<u32>().unwrap_or(0);
    settles(secs(5), || written(&dir) >= 50 || !alive(pid));
    assert!(
        alive(pid),
        "chatty (pid {pid}) died after writing {} lines into the pipe without a reader: {:?} (the supervisor is {})",
        written(&dir),
        daemon.find("chatty"),
        if daemon.is_up() { "up" } else { "gone" }
    );
    // The supervisor writes to the same pipe; it must outlive that too.
    let out = daemon.cli(&["reload"]);
    assert!(daemon.is_up(), "the supervisor died after its stdout's reader went away (reload: {out:?})");
    assert_eq!(out.code, 0, "{out:?}");
    let p = daemon.process("chatty");
    assert_eq!((p.state.as_str(), p.pid), ("running", Some(pid)), "{p:?}");
    let at = written(&dir);
    wait_until(secs(5), "chatty goes on writing", || written(&dir) > at);
    assert!(daemon.is_up(), "the supervisor died after its stdout's reader went away");
}

/// Classic forking: `args` with nginx's `daemon off;` turned on, or
/// dnsmasq's `--keep-in-foreground` left out.
fn forking_args(args: Vec<String>) -> Vec<String> {
    args.into_iter()
        .filter(|a| a != "--keep-in-foreground")
        .map(|a| if a == "daemon off;" { "daemon on;".to_string() } else { a })
        .collect()
}

/// Whether nothing listens on 127.0.0.1:port any more (TCP for nginx, UDP
/// for dnsmasq): the port can be bound.
fn port_free(real: &Real, port: u16) -> bool {
    if real.name == "dnsmasq" {
        UdpSocket::bind(("127.0.0.1", port)).is_ok()
    } else {
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
    }
}

/// `real` forks into the background and names its master in `pid_file`:
/// the supervisor takes that pid as the main process, shows it, a new
/// supervisor adopts it after a SIGKILL with nothing doubled, `stop` ends
/// it and frees the port, and `shutdown --stop-all` leaves nothing.
fn forking_with_pid_file(real: &Real, pid_file: &str) {
    let dir = TestDir::new(&format!("fk-{}", real.name));
    let port = free_port();
    let args = forking_args((real.setup)(&dir, port));
    dir.config(&format!(
        "[[processes]]\nname = \"{}\"\ncommand = \"{}\"\nargs = {args:?}\npid_file = \"{pid_file}\"\n\
         ready_timeout = 10\n\n",
        real.name, real.binary
    ));
    let daemon = Daemon::start(&dir);
    let pid = daemon.wait_running(real.name, None);
    wait_until(secs(10), &format!("{} serves", real.name), || (real.serves)(port));
    assert_eq!(dir.read(pid_file).trim(), pid.to_string(), "status shows the pid in {pid_file}");
    assert_eq!(starts(&dir, real.binary), vec![pid], "{}", describe(&dir, real.binary));
    let log = daemon.log();
    assert!(log.contains(&format!("{}: main process is now pid {pid} (from pid file", real.name)), "{log}");
    let start = starttime(pid);

    drop(daemon);
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.wait_running(real.name, None), pid, "{}", daemon.log());
    assert_eq!(starttime(pid), start);
    holds_for(secs(1), "nothing is doubled after the adoption", || {
        starts(&dir, real.binary) == vec![pid] && copies(&dir, real.binary).len() == real.n_processes
    });
    assert!((real.serves)(port));

    let out = daemon.cli(&["stop", real.name]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "stop ends every process and frees the port", || {
        copies(&dir, real.binary).is_empty() && port_free(real, port)
    });
    assert_eq!(daemon.process(real.name).state, "stopped");

    let out = daemon.cli(&["start-process", real.name]);
    assert_eq!(out.code, 0, "{out:?}");
    let again = daemon.wait_running(real.name, Some(pid));
    wait_until(secs(10), &format!("{} serves again", real.name), || (real.serves)(port));
    assert_eq!(starts(&dir, real.binary), vec![again]);
    let out = daemon.cli(&["shutdown", "--stop-all"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "nothing of the test runs after shutdown --stop-all", || dir.processes().is_empty());
}

#[test]
fn nginx_daemon_on_with_pid_file_is_watched_adopted_and_stopped() {
    forking_with_pid_file(&NGINX, "nginx.pid");
}

#[test]
fn dnsmasq_forking_with_pid_file_is_watched_adopted_and_stopped() {
    forking_with_pid_file(&DNSMASQ, "dnsmasq.pid");
}

#[test]
fn a_stale_or_foreign_pid_file_is_refused_and_not_adopted() {
    let dir = TestDir::new("fk-stale");
    // One names a process that has ended, one names init.
    let keys = "pid_file = \"x.pid\"\nready_timeout = 1\nrestart = \"never\"";
    dir.config(&format!(
        "{}{}",
        sh_service("stale", "sh -c 'echo $$ > stale/x.pid'; exit 0", &keys.replace("x.pid", "stale/x.pid")),
        sh_service("foreign", "echo 1 > foreign/x.pid; exit 0", &keys.replace("x.pid", "foreign/x.pid")),
    ));
    std::fs::create_dir_all(dir.join("stale")).unwrap();
    std::fs::create_dir_all(dir.join("foreign")).unwrap();
    let daemon = Daemon::start(&dir);
    for name in ["stale", "foreign"] {
        wait_until(secs(10), &format!("{name} is refused"), || daemon.process(name).state == "exited");
        let p = daemon.process(name);
        assert_eq!(p.pid, None, "{p:?}");
    }
    let log = daemon.log();
    let path = |name: &str| dir.join(name).join("x.pid").display().to_string();
    assert!(log.contains(&format!("stale: pid file {}: it names pid ", path("stale"))), "{log}");
    assert!(log.contains("which does not run (a stale pid file?); not adopted"), "{log}");
    assert!(
        log.contains(&format!(
            "foreign: pid file {}: it names pid 1, which is neither in the service's session",
            path("foreign")
        )),
        "{log}"
    );
    assert!(!log.contains("main process is now"), "{log}");
    // A new supervisor does not adopt them either.
    drop(daemon);
    let daemon = Daemon::start(&dir);
    for name in ["stale", "foreign"] {
        assert_eq!(daemon.process(name).pid, None);
    }
}

#[test]
fn nginx_daemon_on_without_pid_file_is_explained_and_its_leftovers_stopped() {
    let dir = TestDir::new("fk-nopid");
    let port = free_port();
    let args = forking_args(nginx_setup(&dir, port));
    dir.config(&format!(
        "[[processes]]\nname = \"nginx\"\ncommand = \"/usr/sbin/nginx\"\nargs = {args:?}\nrestart = \"on-failure\"\n\n"
    ));
    let daemon = Daemon::start(&dir);
    wait_until(secs(10), "the log says nginx went to the background", || {
        daemon.log().contains("went to the background; run it in the foreground or set pid_file")
    });
    let log = daemon.log();
    let line = log.lines().find(|l| l.contains("went to the background")).unwrap();
    assert!(line.contains("nginx: exited 0 but pid "), "{line}");
    // The leftovers are the service's: stopped with it, the port freed.
    let out = daemon.cli(&["stop", "nginx"]);
    assert_eq!(out.code, 0, "{out:?}");
    wait_until(secs(10), "no nginx is left and the port is free", || {
        copies(&dir, NGINX.binary).is_empty() && port_free(&NGINX, port)
    });
    assert_eq!(daemon.process("nginx").pid, None);
}
