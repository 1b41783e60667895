//! `cargo xtask soak [--secs N] [--services N] [--clients N] [--seed N]`:
//! the release daemon under a long, random, concurrent workload, with its
//! invariants checked all the while.
//!
//! The fleet (200 services by default) mixes four kinds, by index: steady
//! `sleep`s; crash loops with a short backoff and no start limit; chatty
//! services with a small, rotated `log_file`; and services with
//! `max_instances = 2`. Each runs in a working directory of its own, which
//! is how its processes are found in /proc. Client threads (4 by default)
//! then do, at random and for `--secs` seconds (600 by default): `status`,
//! `start-process`, `stop`, `restart`, `reload` after an edit of one
//! service's arguments, and `kill -9` of one of a service's processes.
//!
//! Every few seconds the main thread checks:
//! - no service runs more process groups than its `max_instances`;
//! - no child of the daemon stays a zombie from one check to the next;
//! - the daemon is alive, and its descriptor count (/proc/PID/fd) and RSS
//!   (VmRSS) stay within a small slack of their value after warm-up;
//!
//! and every command must answer (exit 0, or 1 with the daemon's refusal)
//! within 30 s. At the end `shutdown --stop-all` must leave nothing behind.
//! A report line gives the operations done, the worst latency, and the
//! descriptor count and RSS at start, after warm-up and at the end, with
//! the RSS trend. Any broken invariant makes the task fail; the scratch
//! directory (daemon.log, the config) is then kept.
//!
//! Everything the soak starts carries `MI7SOFT_SOAK=<its directory>` in its
//! environment, so cleanup (and a watchdog, should the soak itself be
//! killed) ends exactly the soak's processes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::{cargo, project_root, step};

const BIN: &str = "mi7soft-daemon";
/// The environment variable that marks the soak's processes.
const TAG: &str = "MI7SOFT_SOAK";
/// How long any command may take to answer.
const DEADLINE: Duration = Duration::from_secs(30);
/// How often the invariants are checked.
const CHECK_EVERY: Duration = Duration::from_secs(3);

struct Settings {
    secs: u64,
    services: usize,
    clients: usize,
    seed: u64,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Settings, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64;
        let mut settings = Settings { secs: 600, services: 200, clients: 4, seed: nanos | 1 };
        let mut flags = crate::args::Flags::new("soak", args);
        while let Some(flag) = flags.next_flag() {
            match flag.name {
                "--secs" => settings.secs = flags.number(&flag)?,
                "--services" => settings.services = flags.number(&flag)? as usize,
                "--clients" => settings.clients = flags.number(&flag)? as usize,
                "--seed" => settings.seed = flags.number(&flag)?,
                _ => return Err(flags.unexpected(&flag)),
            }
        }
        if settings.clients > 60 {
            return Err("soak: --clients: at most 60 (the daemon serves 64 connections at once)".into());
        }
        Ok(settings)
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let settings = Settings::parse(args)?;
    let root = project_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut build = cargo();
    build.current_dir(&root).args(["build", "--release", "--package", BIN, "--bin", BIN]);
    step("soak: cargo build --release", build)?;
    let scratch = Scratch::new()?;
    let fleet = Fleet { dir: scratch.dir.clone(), generations: vec![0; settings.services] };
    let soak = Soak { bin: target_dir.join("release").join(BIN), dir: scratch.dir.clone(), n: settings.services };
    let result = soak.run(&settings, fleet);
    if result.is_err() {
        scratch.keep();
    }
    result
}

// -- The fleet -----------------------------------------------------------------

/// What a service does, by its index.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Steady,
    Crashing,
    Chatty,
    Twin,
}

fn kind(index: usize) -> Kind {
    match index % 10 {
        0..=4 => Kind::Steady,
        5 | 6 => Kind::Crashing,
        7 | 8 => Kind::Chatty,
        _ => Kind::Twin,
    }
}

fn max_instances(index: usize) -> usize {
    if kind(index) == Kind::Twin { 2 } else { 1 }
}

fn name(index: usize) -> String {
    format!("s{index:03}")
}

/// The config, and the argument generations that `reload` edits.
struct Fleet {
    dir: PathBuf,
    generations: Vec<u32>,
}

impl Fleet {
    fn table(&self, index: usize) -> String {
        let name = name(index);
        let (script, keys) = match kind(index) {
            Kind::Steady => ("exec sleep 100000", String::new()),
            Kind::Crashing => (
                "sleep 0.3; exit 1",
                "min_uptime = 0.5\nbackoff_initial = 0.2\nbackoff_max = 2\nstart_limit_burst = 0\n".to_string(),
            ),
            Kind::Chatty => (
                "while :; do echo tick $$ $0; sleep 0.5; done",
                format!("log_file = \"logs/{name}.log\"\nlog_max_size = 8192\nlog_keep = 1\n"),
            ),
            Kind::Twin => ("exec sleep 100000", "max_instances = 2\n".to_string()),
        };
        // $0 carries the generation: a new one is a new definition.
        format!(
            "[[processes]]\nname = \"{name}\"\ncommand = \"sh\"\nargs = [\"-c\", \"{script}\", \"g{}\"]\n\
             working_directory = \"w/{name}\"\n{keys}\n",
            self.generations[index]
        )
    }

    /// Writes daemon.toml atomically: a reload never reads half of it.
    fn write(&self) -> Result<(), String> {
        let mut text = String::from("[daemon]\npid_file = \"d.pid\"\n\n");
        for index in 0..self.generations.len() {
            text.push_str(&self.table(index));
        }
        let tmp = self.dir.join("daemon.toml.tmp");
        fs::write(&tmp, text).map_err(|e| format!("soak: {}: {e}", tmp.display()))?;
        fs::rename(&tmp, self.dir.join("daemon.toml")).map_err(|e| format!("soak: daemon.toml: {e}"))
    }
}

// -- /proc ---------------------------------------------------------------------

/// State letter, parent and process group of a process.
fn stat(pid: i32) -> Option<(char, i32, i32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(1)?.parse().ok()?, fields.get(2)?.parse().ok()?))
}

fn pids() -> Vec<i32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

fn n_fds(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |entries| entries.count())
}

fn rss_kib(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The processes carrying the soak's tag for `dir`.
fn tagged(dir: &Path) -> Vec<i32> {
    let tag = format!("{TAG}={}", dir.display());
    pids()
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == tag.as_bytes()))
        })
        .collect()
}

fn kill(pid: i32, signal: &str) {
    let _ = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).stderr(Stdio::null()).status();
}

// -- The soak ------------------------------------------------------------------

/// What one command did: how long it took, and a violation if it did not
/// answer.
struct Answer {
    latency: Duration,
    problem: Option<String>,
}

#[derive(Default)]
struct Stats {
    ops: BTreeMap<&'static str, u64>,
    latencies: Vec<Duration>,
    slowest: (Duration, String),
    violations: Vec<String>,
    /// Invariant checks made, and in how many of them some service ran
    /// two instances (so max_instances was really exercised).
    n_checks: u64,
    n_checks_with_twins: u64,
}

impl Stats {
    fn record(&mut self, op: &'static str, what: &str, answer: Answer) {
        *self.ops.entry(op).or_default() += 1;
        self.latencies.push(answer.latency);
        if answer.latency > self.slowest.0 {
            self.slowest = (answer.latency, what.to_string());
        }
        if let Some(problem) = answer.problem {
            self.violate(problem);
        }
    }

    fn violate(&mut self, problem: String) {
        eprintln!("xtask: soak: VIOLATION: {problem}");
        self.violations.push(problem);
    }
}

/// A sample of the daemon's resources.
#[derive(Clone, Copy)]
struct Sample {
    at: Duration,
    fds: usize,
    rss_kib: u64,
}

struct Soak {
    bin: PathBuf,
    dir: PathBuf,
    n: usize,
}

/// The xorshift64* generator: the soak needs no crate for randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

impl Soak {
    fn run(&self, settings: &Settings, fleet: Fleet) -> Result<(), String> {
        eprintln!(
            "xtask: soak: {} s, {} services, {} clients, seed {} (--seed repeats the clients' random choices), in {}",
            settings.secs,
            settings.services,
            settings.clients,
            settings.seed,
            self.dir.display()
        );
        for index in 0..self.n {
            fs::create_dir_all(self.dir.join("w").join(name(index))).map_err(|e| format!("soak: {e}"))?;
        }
        fs::create_dir_all(self.dir.join("logs")).map_err(|e| format!("soak: {e}"))?;
        fleet.write()?;
        let mut daemon = self.start_daemon()?;
        let daemon_pid = daemon.id() as i32;
        let stats = Arc::new(Mutex::new(Stats::default()));
        let started = Instant::now();
        let warm_up = Duration::from_secs((settings.secs / 10).max(5));
        let mut samples = vec![Sample { at: Duration::ZERO, fds: n_fds(daemon_pid), rss_kib: rss_kib(daemon_pid) }];

        let stop = Arc::new(AtomicBool::new(false));
        let fleet = Arc::new(Mutex::new(fleet));
        let clients: Vec<_> = (0..settings.clients)
            .map(|k| {
                let (stop, stats, fleet) = (Arc::clone(&stop), Arc::clone(&stats), Arc::clone(&fleet));
                let soak = Soak { bin: self.bin.clone(), dir: self.dir.clone(), n: self.n };
                let seed = settings.seed.wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(k as u64 + 1)) | 1;
                std::thread::spawn(move || soak.client(Rng(seed), &stop, &stats, &fleet))
            })
            .collect();

        let mut zombies = HashSet::new();
        let end = started + Duration::from_secs(settings.secs);
        let mut next_check = started + CHECK_EVERY;
        let mut next_progress = started + Duration::from_secs(60);
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
            if let Ok(Some(status)) = daemon.try_wait() {
                stats.lock().unwrap().violate(format!("the daemon exited ({status})"));
                break;
            }
            if Instant::now() < next_check {
                continue;
            }
            next_check += CHECK_EVERY;
            let (problems, twins) = self.check(daemon_pid, &mut zombies);
            samples.push(Sample { at: started.elapsed(), fds: n_fds(daemon_pid), rss_kib: rss_kib(daemon_pid) });
            let mut stats = stats.lock().unwrap();
            stats.n_checks += 1;
            stats.n_checks_with_twins += u64::from(twins);
            for problem in problems {
                stats.violate(problem);
            }
            if Instant::now() >= next_progress {
                next_progress += Duration::from_secs(60);
                let sample = samples[samples.len() - 1];
                let n_ops: u64 = stats.ops.values().sum();
                eprintln!(
                    "xtask: soak: {:>4} s: {n_ops} operations, daemon {} fds, {} KiB RSS",
                    sample.at.as_secs(),
                    sample.fds,
                    sample.rss_kib
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            let _ = client.join();
        }
        let elapsed = started.elapsed();
        let mut stats = Arc::try_unwrap(stats).map_err(|_| "soak: a client still runs")?.into_inner().unwrap();
        if daemon.try_wait().ok().flatten().is_none() {
            for problem in self.check(daemon_pid, &mut zombies).0 {
                stats.violate(problem);
            }
            samples.push(Sample { at: elapsed, fds: n_fds(daemon_pid), rss_kib: rss_kib(daemon_pid) });
            self.check_flat(&samples, warm_up, settings.clients, &mut stats);
            self.shut_down(&mut daemon, &mut stats);
        }
        let _ = daemon.kill();
        let _ = daemon.wait();
        self.report(settings, elapsed, &samples, warm_up, &stats);
        match stats.violations.len() {
            0 => Ok(()),
            n => Err(format!(
                "soak: {n} invariant violations (first: {}); kept {}",
                stats.violations[0],
                self.dir.display()
            )),
        }
    }

    fn start_daemon(&self) -> Result<Child, String> {
        let log = fs::File::create(self.dir.join("daemon.log")).map_err(|e| format!("soak: daemon.log: {e}"))?;
        let stderr = log.try_clone().map_err(|e| format!("soak: daemon.log: {e}"))?;
        let mut daemon = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.join("daemon.toml"))
            .arg("start")
            .env(TAG, &self.dir)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("soak: {}: {e}", self.bin.display()))?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.cli(&["status"]).problem.is_none() {
                return Ok(daemon);
            }
            if let Ok(Some(status)) = daemon.try_wait() {
                return Err(format!(
                    "soak: the daemon exited at start ({status}); see {}/daemon.log",
                    self.dir.display()
                ));
            }
            if Instant::now() >= deadline {
                let _ = daemon.kill();
                return Err("soak: the daemon did not answer status within 30 s of its start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs one CLI command against the daemon, within [`DEADLINE`].
    fn cli(&self, args: &[&str]) -> Answer {
        let started = Instant::now();
        let what = args.join(" ");
        let spawned = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.join("daemon.toml"))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Answer { latency: Duration::ZERO, problem: Some(format!("{what}: cannot run the CLI: {e}")) };
            }
        };
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() < DEADLINE => std::thread::sleep(Duration::from_millis(2)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Answer {
                        latency: started.elapsed(),
                        problem: Some(format!("{what}: no answer within {} s", DEADLINE.as_secs())),
                    };
                }
            }
        };
        let latency = started.elapsed();
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let stderr = stderr.trim();
        // Exit 1 with the daemon's refusal ("already running", "failed to
        // restart" of a crash loop) is an answer; a client that could not
        // talk to the daemon, or no daemon, is not.
        let problem = match status.code() {
            Some(0) => None,
            Some(1) if !stderr.contains("control socket") => None,
            Some(code) => Some(format!("{what}: exit {code}: {stderr}")),
            None => Some(format!("{what}: the CLI died ({status})")),
        };
        Answer { latency, problem }
    }

    /// One client thread: random operations until told to stop.
    fn client(&self, mut rng: Rng, stop: &AtomicBool, stats: &Mutex<Stats>, fleet: &Mutex<Fleet>) {
        while !stop.load(Ordering::Relaxed) {
            let index = rng.below(self.n as u64) as usize;
            let name = name(index);
            let (op, answer): (&'static str, Answer) = match rng.below(100) {
                0..15 => ("status", self.cli(&["status"])),
                15..45 => ("start-process", self.cli(&["start-process", &name])),
                45..55 => ("stop", self.cli(&["stop", &name])),
                55..70 => ("restart", self.cli(&["restart", &name])),
                70..80 => {
                    // Held through the reload: the daemon reads what was written.
                    let mut fleet = fleet.lock().unwrap();
                    fleet.generations[index] += 1;
                    if let Err(e) = fleet.write() {
                        stats.lock().unwrap().violate(e);
                        continue;
                    }
                    ("reload", self.cli(&["reload"]))
                }
                _ => {
                    let groups = self.groups();
                    let pids: Vec<i32> = groups[index].values().flatten().copied().collect();
                    if let Some(&pid) = pids.get(rng.below(pids.len().max(1) as u64) as usize) {
                        kill(pid, "KILL");
                    }
                    ("kill -9", Answer { latency: Duration::ZERO, problem: None })
                }
            };
            stats.lock().unwrap().record(op, &format!("{op} {name}"), answer);
            std::thread::sleep(Duration::from_millis(rng.below(50)));
        }
    }

    /// Each service's live processes, by process group (found by their
    /// working directory).
    fn groups(&self) -> Vec<HashMap<i32, Vec<i32>>> {
        let mut groups = vec![HashMap::new(); self.n];
        let w = self.dir.join("w");
        for pid in pids() {
            let Ok(cwd) = fs::read_link(format!("/proc/{pid}/cwd")) else { continue };
            let Ok(rest) = cwd.strip_prefix(&w) else { continue };
            let Some(index) = rest.to_str().and_then(|s| s.strip_prefix('s')?.parse::<usize>().ok()) else { continue };
            match stat(pid) {
                Some((state, _, pgid)) if index < self.n && !matches!(state, 'Z' | 'X') => {
                    groups[index].entry(pgid).or_insert_with(Vec::new).push(pid)
                }
                _ => {}
            }
        }
        groups
    }

    /// The invariants at one moment: instances within max_instances, no
    /// zombie child of the daemon left from the last check. Also whether
    /// some service ran two instances.
    fn check(&self, daemon_pid: i32, zombies: &mut HashSet<i32>) -> (Vec<String>, bool) {
        let mut problems = Vec::new();
        let mut twins = false;
        for (index, groups) in self.groups().into_iter().enumerate() {
            twins |= groups.len() == 2;
            if groups.len() > max_instances(index) {
                problems.push(format!(
                    "{} runs {} process groups, max_instances = {}: {groups:?}",
                    name(index),
                    groups.len(),
                    max_instances(index)
                ));
            }
        }
        let now: HashSet<i32> = pids()
            .into_iter()
            .filter(|&pid| stat(pid).is_some_and(|(s, ppid, _)| s == 'Z' && ppid == daemon_pid))
            .collect();
        let mut stuck: Vec<i32> = now.intersection(zombies).copied().collect();
        if !stuck.is_empty() {
            stuck.sort_unstable();
            problems.push(format!("zombie children of the daemon for over {} s: {stuck:?}", CHECK_EVERY.as_secs()));
        }
        *zombies = now;
        (problems, twins)
    }

    /// The daemon's descriptors and RSS after warm-up stay within a slack
    /// of their value then.
    fn check_flat(&self, samples: &[Sample], warm_up: Duration, n_clients: usize, stats: &mut Stats) {
        let Some(base) = samples.iter().find(|s| s.at >= warm_up).copied() else { return };
        // Each client holds at most one connection; a spawn holds a pipe.
        let fd_slack = (n_clients + 8) as u64;
        let rss_slack = (base.rss_kib / 4).max(1024);
        // What grows, its unit, how to read it from a sample, its slack.
        type Measure = (&'static str, &'static str, fn(&Sample) -> u64, u64);
        let measures: [Measure; 2] =
            [("descriptors", "", |s| s.fds as u64, fd_slack), ("RSS", " KiB", |s| s.rss_kib, rss_slack)];
        for (what, unit, value, slack) in measures {
            let grown = samples.iter().filter(|s| s.at >= warm_up).find(|s| value(s) > value(&base) + slack);
            if let Some(sample) = grown {
                stats.violate(format!(
                    "the daemon's {what} grew from {}{unit} after warm-up to {}{unit} at {} s",
                    value(&base),
                    value(sample),
                    sample.at.as_secs()
                ));
            }
        }
    }

    /// `shutdown --stop-all`: answered, the daemon exits 0, and nothing of
    /// the soak is left running.
    fn shut_down(&self, daemon: &mut Child, stats: &mut Stats) {
        let answer = self.cli(&["shutdown", "--stop-all"]);
        stats.record("shutdown", "shutdown --stop-all", answer);
        let deadline = Instant::now() + DEADLINE;
        let daemon_pid = daemon.id() as i32;
        loop {
            match daemon.try_wait() {
                Ok(Some(status)) if status.success() => break,
                Ok(Some(status)) => {
                    stats.violate(format!("the daemon exited with {status} after shutdown --stop-all"));
                    break;
                }
                _ if Instant::now() >= deadline => {
                    stats.violate("the daemon did not exit within 30 s of shutdown --stop-all".into());
                    return;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let mut left = Vec::new();
        while Instant::now() < deadline {
            left = tagged(&self.dir).into_iter().filter(|&pid| pid != daemon_pid).collect();
            if left.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let described: Vec<String> = left
            .iter()
            .map(|pid| {
                let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!("{pid} {}", String::from_utf8_lossy(&cmdline).replace('\0', " ").trim_end())
            })
            .collect();
        stats.violate(format!("left running after shutdown --stop-all: {}", described.join(", ")));
    }

    fn report(&self, settings: &Settings, elapsed: Duration, samples: &[Sample], warm_up: Duration, stats: &Stats) {
        let n_ops: u64 = stats.ops.values().sum();
        let by_kind: Vec<String> = stats.ops.iter().map(|(op, n)| format!("{op} {n}")).collect();
        let mut latencies = stats.latencies.clone();
        latencies.sort_unstable();
        let p99 = latencies.get((latencies.len() * 99 / 100).min(latencies.len().saturating_sub(1))).copied();
        let first = samples[0];
        let last = samples[samples.len() - 1];
        let base = samples.iter().find(|s| s.at >= warm_up).copied().unwrap_or(last);
        let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm_up).collect();
        let max_fds = after.iter().map(|s| s.fds).max().unwrap_or(last.fds);
        let max_rss = after.iter().map(|s| s.rss_kib).max().unwrap_or(last.rss_kib);
        let log = fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default();
        let n_warnings = log.lines().filter(|l| l.contains(" warning: ")).count();
        let n_errors = log.lines().filter(|l| l.contains(" error: ")).count();
        println!(
            "soak: {:.0} s, {} services, {} clients, seed {}: {n_ops} operations ({}), {} violations",
            elapsed.as_secs_f64(),
            settings.services,
            settings.clients,
            settings.seed,
            by_kind.join(", "),
            stats.violations.len()
        );
        println!(
            "soak: latency max {:.3} s ({}), p99 {:.3} s",
            stats.slowest.0.as_secs_f64(),
            stats.slowest.1,
            p99.unwrap_or_default().as_secs_f64()
        );
        println!(
            "soak: daemon fds {} at start, {} after warm-up ({} s), {} at end, max {} after warm-up",
            first.fds,
            base.fds,
            warm_up.as_secs(),
            last.fds,
            max_fds
        );
        println!(
            "soak: daemon RSS {} KiB at start, {} KiB after warm-up, {} KiB at end, max {} KiB after warm-up, \
             trend {:+.1} KiB/min",
            first.rss_kib,
            base.rss_kib,
            last.rss_kib,
            max_rss,
            slope_per_min(&after)
        );
        println!(
            "soak: {} invariant checks, {} of them with a service running two instances; \
             daemon log: {n_warnings} warnings, {n_errors} errors",
            stats.n_checks, stats.n_checks_with_twins
        );
    }
}

/// The least-squares slope of RSS over time, in KiB per minute.
fn slope_per_min(samples: &[&Sample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.at.as_secs_f64()).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for s in samples {
        let dt = s.at.as_secs_f64() - mean_t;
        num += dt * (s.rss_kib as f64 - mean_r);
        den += dt * dt;
    }
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

// -- Scratch directory -----------------------------------------------------------

/// The soak's directory under /tmp, and the guarantee that nothing it
/// started outlives it.
struct Scratch {
    dir: PathBuf,
    keep: AtomicBool,
}

impl Scratch {
    fn new() -> Result<Scratch, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let dir = PathBuf::from(format!("/tmp/mi7soft-soak-{}-{nanos:x}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| format!("soak: {}: {e}", dir.display()))?;
        // A watchdog in a session of its own (Ctrl-C does not reach it):
        // once the soak is gone, however it ended, it kills what is left.
        let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done\n\
             for pass in 1 2; do\n\
               for p in /proc/[0-9]*; do\n\
                 if tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qxF \"MI7SOFT_SOAK=$2\"; then\n\
                   kill -9 \"${p#/proc/}\" 2>/dev/null\n\
                 fi\n\
               done\n\
             done\n";
        crate::spawn_watchdog("soak", script, &dir);
        Ok(Scratch { dir, keep: AtomicBool::new(false) })
    }

    fn keep(&self) {
        self.keep.store(true, Ordering::Relaxed);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for _ in 0..20 {
            let pids = tagged(&self.dir);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                kill(pid, "KILL");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.keep.load(Ordering::Relaxed) {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse() {
        let args: Vec<String> = ["--secs", "20", "--services=50", "--clients", "2"].map(String::from).to_vec();
        let settings = Settings::parse(&args).unwrap();
        assert_eq!((settings.secs, settings.services, settings.clients), (20, 50, 2));
        assert!(Settings::parse(&["--secs".to_string(), "0".to_string()]).is_err());
        assert!(Settings::parse(&["--what".to_string()]).is_err());
    }

    #[test]
    fn a_steady_rss_has_no_trend() {
        let samples: Vec<Sample> =
            (0..10).map(|i| Sample { at: Duration::from_secs(i * 3), fds: 10, rss_kib: 3000 }).collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        assert_eq!(slope_per_min(&refs), 0.0);
        let growing: Vec<Sample> =
            (0..10).map(|i| Sample { at: Duration::from_secs(i * 60), fds: 10, rss_kib: 3000 + i * 5 }).collect();
        let refs: Vec<&Sample> = growing.iter().collect();
        assert!((slope_per_min(&refs) - 5.0).abs() < 1e-9);
    }
}
