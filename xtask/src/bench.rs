//! `cargo xtask bench [--smoke] [--peers] [--idle-secs N] [--rounds N] [--keep]`:
//! what the supervisor costs and how fast it reacts, measured on this
//! machine, and, with `--peers`, the same for runit, s6 and supervisord.
//!
//! The figures: restart latency after SIGKILL (and the floor, a bare shell
//! loop); idle cost (context switches and CPU over a window, with services
//! of its own and with adopted ones); memory (RSS and PSS of the daemon and
//! of the fd holder that `log_file` brings in); control (`status`,
//! `status --json`, `reload`, start of 1,000 services); a crash storm
//! (CPU while 100 services crash-loop); and the binary's size.
//!
//! Every supervisor runs the same workload, one sh script per service that
//! writes its own start time (see [`fleet`]), and every fleet runs in its
//! own directory under a fresh /tmp/mi7soft-bench-* with a tag in its
//! environment, so a bench never meets a test running beside it and leaves
//! nothing behind: each fleet ends its processes when dropped, the scratch
//! directory kills whatever still carries the bench's tag, and a watchdog
//! (a setsid'ed sh that outlives the bench by at most a second) does the
//! same if the bench itself is interrupted or killed.
//!
//! No figure is asserted: timings depend on the machine. `--smoke` (a stage
//! of `cargo xtask test`) runs everything small and fails only when a
//! figure could not be produced.
//!
//! Results: a table on stdout, target/bench/bench.md and bench.json; a run
//! with `--peers` also writes docs/benchmarks.md.

mod fleet;
mod peers;
mod proc;
mod report;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleet::{Fleet, Kind, PEERS, Start};
use report::{Machine, Report, Unit, Value};

use crate::{cargo, project_root, step};

const BIN: &str = "mi7soft-daemon";

/// What one run measures, and how much of it.
struct Settings {
    smoke: bool,
    peers: bool,
    keep: bool,
    /// Restart-latency rounds, and the services they go round.
    rounds: usize,
    latency_services: usize,
    /// How long a service runs before the latency rounds kill it: runit,
    /// s6 and supervisord hold back the restart of a service that lived
    /// less than a second, and supervisord only marks it RUNNING on its
    /// one-second tick.
    min_run: Duration,
    idle: Duration,
    /// Services per fleet for the memory figures; of those, the fleets
    /// kept for the idle windows and those whose `status` is timed.
    counts: Vec<usize>,
    idle_counts: Vec<usize>,
    status_counts: Vec<usize>,
    /// The fleet whose start, reload and adoption are timed.
    control_n: usize,
    status_runs: usize,
    reloads: usize,
    storm_n: usize,
    storm: Duration,
    peer_n: usize,
}

impl Settings {
    fn parse(args: &[String]) -> Result<Settings, String> {
        let (mut smoke, mut peers, mut keep, mut idle, mut rounds) = (false, false, false, None, None);
        let mut flags = crate::args::Flags::new("bench", args);
        while let Some(flag) = flags.next_flag() {
            match flag.name {
                "--smoke" => smoke = true,
                "--peers" => peers = true,
                "--keep" => keep = true,
                "--idle-secs" => idle = Some(Duration::from_secs(flags.number(&flag)?)),
                "--rounds" => rounds = Some(flags.number(&flag)? as usize),
                _ => return Err(flags.unexpected(&flag)),
            }
        }
        if smoke && peers {
            return Err("bench: --smoke measures no peers; drop --peers or --smoke".into());
        }
        let mut settings = if smoke {
            Settings {
                smoke,
                peers,
                keep,
                rounds: 8,
                latency_services: 4,
                min_run: Duration::from_millis(300),
                idle: Duration::from_secs(2),
                counts: vec![1, 10],
                idle_counts: vec![10],
                status_counts: vec![10],
                control_n: 10,
                status_runs: 5,
                reloads: 2,
                storm_n: 10,
                storm: Duration::from_secs(2),
                peer_n: 100,
            }
        } else {
            Settings {
                smoke,
                peers,
                keep,
                rounds: 100,
                latency_services: 25,
                min_run: Duration::from_millis(2500),
                idle: Duration::from_secs(60),
                counts: vec![1, 10, 100, 1000],
                idle_counts: vec![10, 100, 1000],
                status_counts: vec![100, 1000],
                control_n: 1000,
                status_runs: 20,
                reloads: 5,
                storm_n: 100,
                storm: Duration::from_secs(10),
                peer_n: 100,
            }
        };
        settings.idle = idle.unwrap_or(settings.idle);
        settings.rounds = rounds.unwrap_or(settings.rounds);
        Ok(settings)
    }

    fn describe(&self) -> Vec<(String, String)> {
        let pairs = [
            ("rounds", self.rounds.to_string()),
            ("latency_services", self.latency_services.to_string()),
            ("min_run_before_kill_ms", self.min_run.as_millis().to_string()),
            ("idle_secs", self.idle.as_secs().to_string()),
            ("memory_counts", format!("{:?}", self.counts)),
            ("status_runs", self.status_runs.to_string()),
            ("reloads", self.reloads.to_string()),
            ("storm_services", self.storm_n.to_string()),
            ("storm_secs", self.storm.as_secs().to_string()),
            ("peer_services", self.peer_n.to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

pub fn run(args: &[String]) -> Result<(), String> {
    let settings = Settings::parse(args)?;
    let started = Instant::now();
    let root = project_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut build = cargo();
    build.current_dir(&root).args(["build", "--release", "--package", BIN, "--bin", BIN]);
    step("bench: cargo build --release", build)?;

    let load_before = load_average();
    let scratch = Scratch::new(settings.keep)?;
    let mut bench = Bench {
        bin: target_dir.join("release").join(BIN),
        dir: scratch.dir.clone(),
        report: Report::default(),
        ticks: proc::clock_ticks_per_sec(),
        s: &settings,
    };
    bench.report.mode = match (settings.smoke, settings.peers) {
        (true, _) => "smoke (small counts; checks that every figure is produced)".into(),
        (false, false) => "full, without peers".into(),
        (false, true) => "full, with peers".into(),
    };
    bench.report.settings = settings.describe();
    bench.report.method = bench.method();
    eprintln!("xtask: bench: working in {}", scratch.dir.display());

    bench.restart_latency()?;
    bench.ours()?;
    bench.static_memory(&target_dir)?;
    bench.capture()?;
    bench.storm()?;
    bench.size(&root, &target_dir)?;
    if settings.peers {
        bench.peers()?;
    }
    drop(scratch);

    let machine = Machine { load: format!("{load_before} at the start, {} at the end", load_average()), ..machine() };
    let report = bench.report;
    print!("{}", report.text());
    let out = target_dir.join("bench");
    let write = |path: &Path, text: &str| fs::write(path, text).map_err(|e| format!("bench: {}: {e}", path.display()));
    fs::create_dir_all(&out).map_err(|e| format!("bench: {}: {e}", out.display()))?;
    let markdown = report.markdown(&machine);
    write(&out.join("bench.md"), &markdown)?;
    write(&out.join("bench.json"), &report.json(&machine))?;
    eprintln!("xtask: bench: wrote {} and bench.json", out.join("bench.md").display());
    if settings.peers {
        let docs = root.join("docs");
        fs::create_dir_all(&docs).map_err(|e| format!("bench: {}: {e}", docs.display()))?;
        write(&docs.join("benchmarks.md"), &markdown)?;
        eprintln!("xtask: bench: wrote {}", docs.join("benchmarks.md").display());
    }
    eprintln!("xtask: bench: done in {}s", started.elapsed().as_secs());
    let unmeasured = report.unmeasured();
    if !unmeasured.is_empty() {
        return Err(format!("bench: no value for {}", unmeasured.join(", ")));
    }
    Ok(())
}

struct Bench<'a> {
    s: &'a Settings,
    bin: PathBuf,
    dir: PathBuf,
    report: Report,
    /// Clock ticks per second (utime and stime are counted in them).
    ticks: u64,
}

const LATENCY: &str = "Restart latency";
const IDLE: &str = "Idle cost";
const MEMORY: &str = "Memory";
const CONTROL: &str = "Control";
const STORM: &str = "Crash storm";
const SIZE: &str = "Size";

impl Bench<'_> {
    fn fleet(&self, name: &str, kind: Kind, n: usize) -> Result<Fleet, String> {
        Fleet::create(&self.dir, name, kind, n, &self.bin)
    }

    fn method(&self) -> Vec<String> {
        let s = self.s;
        vec![
            "Workload, the same for every supervisor: one four-line sh script per service that appends its pid and \
             `date +%s%N` (CLOCK_REALTIME) to a file of its own, then `exec sleep 100000`."
                .into(),
            format!(
                "Restart latency: {} SIGKILLs, round-robin over {} services, each killed once it has run {} ms (runit, \
                 s6 and supervisord hold back the restart of a service that lived under 1 s, and supervisord marks it \
                 RUNNING only on its 1 s tick); from the kill (bash's `$EPOCHREALTIME`, read just before its `kill -9`) \
                 to the replacement's own timestamp. Ours runs with `min_uptime = 0` and `start_limit_burst = 0`. \
                 Floor: one `while :; do SERVICE; done` sh loop per service, no supervisor at all.",
                s.rounds,
                s.latency_services,
                s.min_run.as_millis()
            ),
            format!(
                "Idle cost: voluntary + nonvoluntary context switches (/proc/PID/task/*/status) and utime + stime \
                 (/proc/PID/stat) of the supervisor's processes over {} s, not strace (a process asleep in poll(2) \
                 gains no context switch, and ptrace would add its own). Ours listens on `[web]` and is scraped \
                 (`GET /metrics`) just before the window, so the window is the time between two scrapes. Adopted: the \
                 daemon was SIGKILLed and started again, and took the running services over.",
                s.idle.as_secs()
            ),
            "Memory: Rss and Pss of /proc/PID/smaps_rollup, summed over the supervisor's processes: ours = the daemon \
             (plus `mi7soft-daemon fd-holder` in the `log_file` rows); runit = runsvdir + every runsv; s6 = s6-svscan + \
             every s6-supervise; supervisord = its python process. The services themselves are not counted. Each \
             fleet of ours runs its own copy of the binary, so no other process shares (and halves) its pages but \
             its own fd holder, which is the same binary. Ours is the host's release build (glibc, dynamic); the \
             `static musl` rows run the x86_64 binaries of `cargo xtask dist` instead, as a router would, when dist \
             has built them."
                .into(),
            format!(
                "Control: whole CLI commands, timed from spawn to exit, median of {} runs. Start: with `min_uptime = 0` a \
                 started service is `running` at once; from launching `start` to the last service's own timestamp, and \
                 to the first `status --json` showing all running. `GET /metrics`: one HTTP request on a new loopback \
                 connection, from connect to the last byte, median of as many runs. Reload: one service's args edited, median of {} \
                 reloads. Peers' status: `sv status DIR...`, `s6-svstat` on each dir from one sh loop, `supervisorctl \
                 status`.",
                s.status_runs, s.reloads
            ),
            format!(
                "Crash storm: {} services `sh -c 'exit 1'` with backoff_initial = 0.1, backoff_max = 1, \
                 start_limit_burst = 0; the daemon's utime + stime over {} s as % of one core; restarts counted from \
                 `status --json`; then `status` timed while the storm goes on.",
                s.storm_n,
                s.storm.as_secs()
            ),
            "Size: target/dist/ binaries (`cargo xtask dist`: static, stripped) when present; always the host release \
             build (dynamically linked, stripped by the release profile) with and without the web UI."
                .into(),
        ]
    }

    /// Restart latency of ours and of the floor.
    fn restart_latency(&mut self) -> Result<(), String> {
        for kind in [Kind::OURS, Kind::Floor] {
            self.latency_of(kind)?;
        }
        Ok(())
    }

    fn latency_of(&mut self, kind: Kind) -> Result<(), String> {
        let mut fleet = self.fleet(&format!("{}-latency", kind.name()), kind, self.s.latency_services)?;
        fleet.launch()?;
        fleet.wait_up(Duration::from_secs(60))?;
        eprintln!("xtask: bench: {}: restart latency, {} rounds", kind.name(), self.s.rounds);
        let mut samples = kill_rounds(&fleet, self.s.rounds, self.s.min_run)?;
        fleet.stop();
        samples.sort_by(f64::total_cmp);
        let column = kind.name();
        self.report.num(
            LATENCY,
            "restart.p50",
            "restart after SIGKILL, p50",
            Unit::Ms,
            column,
            percentile(&samples, 50),
        );
        self.report.num(
            LATENCY,
            "restart.p95",
            "restart after SIGKILL, p95",
            Unit::Ms,
            column,
            percentile(&samples, 95),
        );
        self.report.num(
            LATENCY,
            "restart.max",
            "restart after SIGKILL, max",
            Unit::Ms,
            column,
            *samples.last().unwrap(),
        );
        Ok(())
    }

    /// Our fleets of 1 … 1,000 services: start, memory, status, reload,
    /// then idle windows with own and with adopted services.
    fn ours(&mut self) -> Result<(), String> {
        let mut kept = Vec::new();
        for &n in &self.s.counts.clone() {
            let mut fleet = self.fleet(&format!("ours-{n}"), Kind::OURS, n)?;
            eprintln!("xtask: bench: ours: {n} services");
            let launched = fleet.launch()?;
            fleet.wait_up(Duration::from_secs(60 + n as u64 / 10))?;
            let last_exec = (0..n).filter_map(|i| fleet.running(i)).map(|s| s.at_ns).max().unwrap();
            let all_running = wait_running(&fleet, Duration::from_secs(60))?;
            if n == self.s.control_n {
                let exec_ms = last_exec.saturating_sub(ns(launched)) as f64 / 1e6;
                let status_ms = all_running.duration_since(launched).unwrap_or_default().as_secs_f64() * 1e3;
                let label = format!("start → all {n} services exec'ed");
                self.report.num(CONTROL, &format!("ctl.start.exec.{n}"), &label, Unit::Ms, "ours", exec_ms);
                let label = format!("start → `status` shows all {n} running");
                self.report.num(CONTROL, &format!("ctl.start.status.{n}"), &label, Unit::Ms, "ours", status_ms);
            }
            self.memory(&fleet, "ours", "")?;
            if self.s.status_counts.contains(&n) {
                self.status(&fleet, "ours")?;
            }
            if n == self.s.control_n {
                self.reload(&fleet)?;
            }
            if self.s.idle_counts.contains(&n) {
                kept.push(fleet);
            }
        }
        self.idle(&kept, "")?;

        for fleet in &mut kept {
            let n = fleet.n;
            let before: Vec<usize> = (0..n).map(|i| fleet.starts(i).len()).collect();
            fleet.kill_daemon();
            eprintln!("xtask: bench: ours: {n} services: daemon SIGKILLed, started again to adopt them");
            let launched = fleet.launch()?;
            let adopted = wait_running(fleet, Duration::from_secs(60))?;
            let restarted = (0..n).filter(|&i| fleet.starts(i).len() != before[i]).count();
            if restarted > 0 {
                self.report.notes.push(format!(
                    "after a SIGKILL of the daemon with {n} services, the next daemon started {restarted} of them again \
                     instead of adopting them"
                ));
            }
            if n == self.s.control_n {
                let ms = adopted.duration_since(launched).unwrap_or_default().as_secs_f64() * 1e3;
                let label = format!("start → `status` shows all {n} adopted services running");
                self.report.num(CONTROL, &format!("ctl.adopt.{n}"), &label, Unit::Ms, "ours", ms);
                self.memory(fleet, "ours", "adopted")?;
            }
        }
        self.idle(&kept, "adopted")?;
        Ok(())
    }

    /// The memory of what a router runs: the static musl x86_64 binaries of
    /// `cargo xtask dist`, with 10 services, when dist has built them (the
    /// host build above is glibc's, dynamically linked).
    fn static_memory(&mut self, target_dir: &Path) -> Result<(), String> {
        let dist = target_dir.join("dist").join("x86_64-unknown-linux-musl");
        for (file, variant) in [("mi7soft-daemon-mini", "static musl, no web UI"), (BIN, "static musl")] {
            let bin = dist.join(file);
            if !bin.is_file() {
                eprintln!("xtask: bench: {} not built (cargo xtask dist); its memory is not measured", bin.display());
                continue;
            }
            let mut fleet = Fleet::create(&self.dir, &format!("static-{file}"), Kind::OURS, 10, &bin)?;
            eprintln!("xtask: bench: {}: 10 services", bin.display());
            fleet.launch()?;
            fleet.wait_up(Duration::from_secs(60))?;
            wait_running(&fleet, Duration::from_secs(60))?;
            self.memory(&fleet, "ours", variant)?;
        }
        Ok(())
    }

    /// RSS, PSS and process count of a fleet's supervisor processes.
    fn memory(&mut self, fleet: &Fleet, column: &str, variant: &str) -> Result<(), String> {
        let n = fleet.n;
        let supervisors = fleet.supervisors();
        if supervisors.is_empty() {
            return Err(format!("bench: {}: no supervisor process found", fleet.dir.display()));
        }
        let mut sums: Vec<(&str, proc::Memory)> = Vec::new();
        for &(pid, role) in &supervisors {
            let memory = proc::memory(pid).ok_or(format!("bench: /proc/{pid}/smaps_rollup unreadable"))?;
            let role = if variant == "log_file" { role } else { "all" };
            match sums.iter_mut().find(|(r, _)| *r == role) {
                Some((_, sum)) => *sum = *sum + memory,
                None => sums.push((role, memory)),
            }
        }
        for (role, memory) in sums {
            let (key, label) = match variant {
                "" => (format!("{n}"), services(n)),
                "log_file" => (format!("{role}.{n}"), format!("{}, log_file, {role}", services(n))),
                other => {
                    let slug: Vec<&str> =
                        other.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
                    (format!("{}.{n}", slug.join("-")), format!("{}, {other}", services(n)))
                }
            };
            self.report.num(
                MEMORY,
                &format!("mem.rss.{key}"),
                &format!("RSS, {label}"),
                Unit::KiB,
                column,
                memory.rss_kib as f64,
            );
            self.report.num(
                MEMORY,
                &format!("mem.pss.{key}"),
                &format!("PSS, {label}"),
                Unit::KiB,
                column,
                memory.pss_kib as f64,
            );
        }
        if variant.is_empty() && n == self.s.peer_n {
            let label = format!("supervisor processes, {n} services");
            self.report.num(MEMORY, &format!("mem.procs.{n}"), &label, Unit::Count, column, supervisors.len() as f64);
        }
        Ok(())
    }

    /// Median latency of the status command (and of `status --json` for ours).
    fn status(&mut self, fleet: &Fleet, column: &str) -> Result<(), String> {
        let n = fleet.n;
        let runs = self.s.status_runs;
        let ms = cli_median(|| fleet.status_command(false), runs)?;
        self.report.num(CONTROL, &format!("ctl.status.{n}"), &format!("status, {n} services"), Unit::Ms, column, ms);
        if matches!(fleet.kind, Kind::Ours { .. }) {
            let ms = cli_median(|| fleet.status_command(true), runs)?;
            let label = format!("status --json, {n} services");
            self.report.num(CONTROL, &format!("ctl.json.{n}"), &label, Unit::Ms, column, ms);
            let mut samples = Vec::new();
            for _ in 0..runs {
                samples.push(fleet.scrape()?.1.as_secs_f64() * 1e3);
            }
            samples.sort_by(f64::total_cmp);
            let label = format!("GET /metrics, {n} services");
            self.report.num(CONTROL, &format!("ctl.metrics.{n}"), &label, Unit::Ms, column, percentile(&samples, 50));
        }
        Ok(())
    }

    /// `reload` after editing one service's args: it must restart that one.
    fn reload(&mut self, fleet: &Fleet) -> Result<(), String> {
        let n = fleet.n;
        let changed = n / 2;
        let mut samples = Vec::new();
        for round in 0..self.s.reloads {
            let before = fleet.starts(changed).len();
            let config = fleet.config();
            let toml = fleet.ours_toml(Some((changed, &format!("reload-{round}"))));
            fs::write(&config, toml).map_err(|e| format!("bench: {}: {e}", config.display()))?;
            let (output, took) = timed(&mut fleet.ctl(&["reload"]), Duration::from_secs(60))?;
            let said = String::from_utf8_lossy(&output.stdout);
            if !output.status.success() || !said.contains("1 restarted") {
                return Err(format!(
                    "bench: reload of {n} services with one changed: {}: {}{}",
                    output.status,
                    said.trim(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            samples.push(took.as_secs_f64() * 1e3);
            wait_for(Duration::from_secs(30), "the reloaded service's new start", || {
                fleet.starts(changed).len() > before && fleet.running(changed).is_some()
            })?;
        }
        samples.sort_by(f64::total_cmp);
        let label = format!("reload, one of {n} services changed");
        self.report.num(CONTROL, &format!("ctl.reload.{n}"), &label, Unit::Ms, "ours", percentile(&samples, 50));
        Ok(())
    }

    /// One idle window over several fleets at once: context switches and CPU
    /// time of each fleet's supervisor processes.
    fn idle(&mut self, fleets: &[Fleet], variant: &str) -> Result<(), String> {
        let window = self.s.idle;
        eprintln!("xtask: bench: idle window of {}s over {} fleet(s) {variant}", window.as_secs(), fleets.len());
        let sample = |pids: &[(u32, &str)]| -> Option<Vec<(u64, u64)>> {
            pids.iter().map(|&(pid, _)| Some((proc::context_switches(pid)?, proc::cpu_ticks(pid)?))).collect()
        };
        let mut before = Vec::new();
        for fleet in fleets {
            // A scrape just before the window: what follows is the time
            // between two scrapes.
            if matches!(fleet.kind, Kind::Ours { .. }) && fleet.has_web() {
                fleet.scrape()?;
            }
            let pids = fleet.supervisors();
            let counters =
                sample(&pids).ok_or(format!("bench: {}: a supervisor process vanished", fleet.dir.display()))?;
            before.push((pids, counters));
        }
        std::thread::sleep(window);
        for (fleet, (pids, counters)) in fleets.iter().zip(before) {
            let after = sample(&pids)
                .ok_or(format!("bench: {}: a supervisor process ended in the idle window", fleet.dir.display()))?;
            let switches: u64 = after.iter().zip(&counters).map(|(a, b)| a.0 - b.0).sum();
            let ticks: u64 = after.iter().zip(&counters).map(|(a, b)| a.1 - b.1).sum();
            let n = fleet.n;
            let secs = window.as_secs();
            let (key, what) = match variant {
                "" => (format!("own.{n}"), format!("{n} services")),
                other => (format!("{other}.{n}"), format!("{n} {other} services")),
            };
            let column = fleet.kind.name();
            let label = format!("context switches in {secs} s, {what}");
            self.report.num(IDLE, &format!("idle.ctxt.{key}"), &label, Unit::Count, column, switches as f64);
            let label = format!("CPU time in {secs} s, {what}");
            let cpu_ms = ticks as f64 * 1e3 / self.ticks as f64;
            self.report.num(IDLE, &format!("idle.cpu.{key}"), &label, Unit::Ms, column, cpu_ms);
        }
        Ok(())
    }

    /// Memory with `log_file` on every service: the daemon and its fd holder.
    fn capture(&mut self) -> Result<(), String> {
        for &n in &self.s.counts.clone() {
            let mut fleet = self.fleet(&format!("ours-log-{n}"), Kind::Ours { capture: true, crash: false }, n)?;
            eprintln!("xtask: bench: ours: {n} services with log_file");
            fleet.launch()?;
            fleet.wait_up(Duration::from_secs(60 + n as u64 / 10))?;
            wait_running(&fleet, Duration::from_secs(60))?;
            wait_for(Duration::from_secs(10), "the fd holder", || {
                fleet.supervisors().iter().any(|p| p.1 == "fd-holder")
            })?;
            self.memory(&fleet, "ours", "log_file")?;
        }
        Ok(())
    }

    /// 100 services crash-looping: the daemon's CPU, restarts per second,
    /// and `status` meanwhile.
    fn storm(&mut self) -> Result<(), String> {
        let n = self.s.storm_n;
        let mut fleet = self.fleet("storm", Kind::Ours { capture: false, crash: true }, n)?;
        eprintln!("xtask: bench: crash storm, {n} services for {}s", self.s.storm.as_secs());
        fleet.launch()?;
        let restarts = |fleet: &Fleet| -> Result<(u64, Instant), String> {
            let (output, _) = timed(&mut fleet.status_command(true), Duration::from_secs(30))?;
            Ok((sum_field(&String::from_utf8_lossy(&output.stdout), "\"restarts\":"), Instant::now()))
        };
        wait_for(Duration::from_secs(30), "the crash storm to begin", || {
            restarts(&fleet).is_ok_and(|(r, _)| r >= n as u64)
        })?;
        let daemon = fleet.supervisors().into_iter().find(|p| p.1 == "daemon").ok_or("bench: storm: no daemon")?.0;
        let (r0, t0) = restarts(&fleet)?;
        let cpu0 = proc::cpu_ticks(daemon).ok_or("bench: storm: the daemon is gone")?;
        let started = Instant::now();
        std::thread::sleep(self.s.storm);
        let cpu1 = proc::cpu_ticks(daemon).ok_or("bench: storm: the daemon is gone")?;
        let elapsed = started.elapsed().as_secs_f64();
        let (r1, t1) = restarts(&fleet)?;
        let status_ms = cli_median(|| fleet.status_command(false), self.s.status_runs)?;
        fleet.stop();

        let percent = (cpu1 - cpu0) as f64 / self.ticks as f64 / elapsed * 100.0;
        let secs = self.s.storm.as_secs();
        let label = format!("daemon CPU, {n} services crash-looping, over {secs} s");
        self.report.num(STORM, "storm.cpu", &label, Unit::Percent, "ours", percent);
        let rate = r1.saturating_sub(r0) as f64 / t1.duration_since(t0).as_secs_f64();
        self.report.num(STORM, "storm.restarts", "restarts", Unit::PerSec, "ours", rate);
        self.report.num(STORM, "storm.status", "status during the storm", Unit::Ms, "ours", status_ms);
        Ok(())
    }

    /// The binary's size: target/dist's when built, and the host's release
    /// build with and without the web UI.
    fn size(&mut self, root: &Path, target_dir: &Path) -> Result<(), String> {
        let dist = target_dir.join("dist");
        let mut found = 0;
        let mut triples: Vec<PathBuf> = fs::read_dir(&dist).into_iter().flatten().flatten().map(|e| e.path()).collect();
        triples.sort();
        for triple in triples.iter().filter(|p| p.is_dir()) {
            let mut files: Vec<PathBuf> =
                fs::read_dir(triple).into_iter().flatten().flatten().map(|e| e.path()).collect();
            files.sort();
            for file in files.iter().filter(|f| f.is_file()) {
                let name = file.strip_prefix(&dist).unwrap().display().to_string();
                let size = fs::metadata(file).map_err(|e| format!("bench: {}: {e}", file.display()))?.len();
                self.report.num(
                    SIZE,
                    &format!("size.dist.{name}"),
                    &format!("target/dist/{name}"),
                    Unit::Bytes,
                    "ours",
                    size as f64,
                );
                found += 1;
            }
        }
        if found == 0 {
            self.report.notes.push(format!(
                "{} has no binaries (`cargo xtask dist` builds them): size is the host build's only",
                dist.display()
            ));
        }
        let size = |path: &Path| {
            fs::metadata(path).map(|m| m.len() as f64).map_err(|e| format!("bench: {}: {e}", path.display()))
        };
        self.report.num(
            SIZE,
            "size.host.web",
            "host release build, with the web UI",
            Unit::Bytes,
            "ours",
            size(&self.bin)?,
        );
        // Its own target directory, so that target/release keeps the
        // default build that the rest of the bench runs.
        let noweb_dir = target_dir.join("bench").join("no-default-features");
        let mut build = cargo();
        build.current_dir(root).args(["build", "--release", "--package", BIN, "--bin", BIN, "--no-default-features"]);
        build.arg("--target-dir").arg(&noweb_dir);
        step("bench: cargo build --release --no-default-features", build)?;
        let noweb = size(&noweb_dir.join("release").join(BIN))?;
        self.report.num(
            SIZE,
            "size.host.noweb",
            "host release build, --no-default-features (no web UI)",
            Unit::Bytes,
            "ours",
            noweb,
        );
        Ok(())
    }

    /// The same figures for runit, s6 and supervisord.
    fn peers(&mut self) -> Result<(), String> {
        let mut kept = Vec::new();
        let ensured = peers::ensure(&PEERS);
        let versions: Vec<String> = PEERS.iter().filter_map(|&kind| peers::version(kind)).collect();
        if !versions.is_empty() {
            self.report.method.push(format!(
                "Peers: Debian's {}, with their defaults. A peer's restart near 1 s is its own policy, not noise: \
                 supervisord (Python) notices a child's death only on its 1 s poll tick, and s6-supervise of this \
                 version waited 1 s before every respawn here although each service had run {} ms.",
                versions.join(", "),
                self.s.min_run.as_millis()
            ));
        }
        for (kind, ready) in ensured {
            let measured = ready.and_then(|()| self.peer(kind));
            match measured {
                Ok(fleet) => kept.push(fleet),
                Err(why) => self.missing(kind.name(), &why),
            }
        }
        if let Err(why) = self.idle(&kept, "") {
            for fleet in &kept {
                self.missing(fleet.kind.name(), &why);
            }
        }
        Ok(())
    }

    /// Restart latency, then a fleet of `peer_n` services measured for
    /// memory and status, returned for the idle window.
    fn peer(&mut self, kind: Kind) -> Result<Fleet, String> {
        self.latency_of(kind)?;
        let n = self.s.peer_n;
        let mut fleet = self.fleet(&format!("{}-{n}", kind.name()), kind, n)?;
        eprintln!("xtask: bench: {}: {n} services", kind.name());
        fleet.launch()?;
        fleet.wait_up(Duration::from_secs(120))?;
        // Past supervisord's STARTING (startsecs = 1, noticed on its tick).
        std::thread::sleep(Duration::from_secs(3));
        self.memory(&fleet, kind.name(), "")?;
        self.status(&fleet, kind.name())?;
        Ok(fleet)
    }

    /// Marks the figures a peer has, where `column` has no value, as not
    /// measured for the reason given.
    fn missing(&mut self, column: &str, why: &str) {
        eprintln!("xtask: bench: {column}: {why}");
        let n = self.s.peer_n;
        let mut keys: Vec<String> = ["restart.p50", "restart.p95", "restart.max"].map(String::from).to_vec();
        keys.extend(
            ["mem.rss", "mem.pss", "mem.procs", "idle.ctxt.own", "idle.cpu.own", "ctl.status"]
                .map(|k| format!("{k}.{n}")),
        );
        let index = report::COLUMNS.iter().position(|c| *c == column).unwrap();
        for figure in self.report.figures.iter_mut().filter(|f| keys.contains(&f.key)) {
            if figure.values[index].is_none() {
                figure.values[index] = Some(Value::Missing(why.to_string()));
            }
        }
    }
}

/// Kills services round-robin, each once it has run `min_run`, and returns
/// each restart's latency in milliseconds: from the kill to the
/// replacement's own start timestamp.
fn kill_rounds(fleet: &Fleet, rounds: usize, min_run: Duration) -> Result<Vec<f64>, String> {
    let mut killer = Killer::new()?;
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let i = round % fleet.n;
        let mut victim: Option<Start> = None;
        wait_for(Duration::from_secs(30), &format!("service {i} to run"), || {
            victim = fleet.running(i).filter(|s| ns(SystemTime::now()) >= s.at_ns + min_run.as_nanos());
            victim.is_some()
        })?;
        let victim = victim.unwrap();
        let count = fleet.starts(i).len();
        let sent = killer.kill(victim.pid)?;
        let mut next = None;
        wait_for(
            Duration::from_secs(10),
            &format!("{}: service {i} restarted after SIGKILL", fleet.kind.name()),
            || {
                next = fleet.starts(i).get(count).copied();
                next.is_some()
            },
        )?;
        let next = next.unwrap();
        samples.push(next.at_ns.saturating_sub(sent) as f64 / 1e6);
    }
    Ok(samples)
}

/// A bash that sends SIGKILL on request and says when, with bash's own
/// clock read just before its `kill` builtin: the time the kill was sent,
/// without a fork between the reading and the sending.
struct Killer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Killer {
    fn new() -> Result<Killer, String> {
        let mut child = Command::new("bash")
            .args(["-c", "while read -r pid; do echo \"$EPOCHREALTIME\"; kill -9 \"$pid\"; done"])
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("bench: bash (which sends the kills): {e}"))?;
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Ok(Killer { child, stdin, stdout })
    }

    /// Kills `pid`; returns when, in CLOCK_REALTIME nanoseconds.
    fn kill(&mut self, pid: u32) -> Result<u128, String> {
        writeln!(self.stdin, "{pid}").and_then(|()| self.stdin.flush()).map_err(|e| format!("bench: bash: {e}"))?;
        let mut line = String::new();
        self.stdout.read_line(&mut line).map_err(|e| format!("bench: bash: {e}"))?;
        parse_epoch(line.trim()).ok_or(format!("bench: bash's $EPOCHREALTIME is {line:?} (bash 5 or newer is needed)"))
    }
}

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `1795963807.416370` (seconds.microseconds) in nanoseconds.
fn parse_epoch(text: &str) -> Option<u128> {
    let (secs, micros) = text.split_once('.')?;
    let frac = format!("{micros:0<9}");
    Some(secs.parse::<u128>().ok()? * 1_000_000_000 + frac.get(..9)?.parse::<u128>().ok()?)
}

fn ns(time: SystemTime) -> u128 {
    time.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: usize) -> f64 {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// Runs a command with its output captured, killing it after `limit`;
/// returns the output and how long it took from spawn to exit.
fn timed(command: &mut Command, limit: Duration) -> Result<(Output, Duration), String> {
    let what = format!("{:?}", command.get_program());
    let started = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("bench: {what}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = tx.send((output, started.elapsed()));
    });
    let (output, took) = match rx.recv_timeout(limit) {
        Ok(done) => done,
        Err(_) => {
            proc::kill(&[pid]);
            let _ = rx.recv();
            return Err(format!("bench: {what}: no exit within {}s", limit.as_secs()));
        }
    };
    Ok((output.map_err(|e| format!("bench: {what}: {e}"))?, took))
}

/// The median time of `runs` runs of a status command, which must succeed
/// (or, for ours, exit 3: some service is not running) and print something.
fn cli_median(command: impl Fn() -> Command, runs: usize) -> Result<f64, String> {
    let mut samples = Vec::new();
    for _ in 0..runs {
        let mut command = command();
        let (output, took) = timed(&mut command, Duration::from_secs(30))?;
        if !matches!(output.status.code(), Some(0 | 3)) || output.stdout.is_empty() {
            return Err(format!(
                "bench: {:?} failed ({}): {}",
                command.get_program(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        samples.push(took.as_secs_f64() * 1e3);
    }
    samples.sort_by(f64::total_cmp);
    Ok(percentile(&samples, 50))
}

/// Polls `status --json` until it shows every service of the fleet
/// running; returns when it first did.
fn wait_running(fleet: &Fleet, limit: Duration) -> Result<SystemTime, String> {
    let mut seen = None;
    wait_for(limit, &format!("status to show {} services running", fleet.n), || {
        let shown = timed(&mut fleet.status_command(true), Duration::from_secs(30)).is_ok_and(|(out, _)| {
            String::from_utf8_lossy(&out.stdout).matches("\"state\":\"running\"").count() == fleet.n
        });
        if shown {
            seen = Some(SystemTime::now());
        }
        shown
    })?;
    Ok(seen.unwrap())
}

/// Sums every number that follows `key` in a JSON text.
fn sum_field(json: &str, key: &str) -> u64 {
    json.match_indices(key)
        .filter_map(|(at, _)| {
            let rest = &json[at + key.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// "1 service", "10 services".
fn services(n: usize) -> String {
    if n == 1 { "1 service".into() } else { format!("{n} services") }
}

/// Polls `condition` every millisecond until it holds or `limit` passes.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() > deadline {
            return Err(format!("bench: timed out after {}s waiting for {what}", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// The 1, 5 and 15 minute load averages: other work on the machine
/// (a build, a test run) shows in the figures, and here.
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn machine() -> Machine {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    Machine {
        date,
        nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        load: String::new(),
    }
}

/// The bench's scratch directory under /tmp, and the guarantee that nothing
/// started in it outlives the bench.
struct Scratch {
    dir: PathBuf,
    keep: bool,
}

impl Scratch {
    fn new(keep: bool) -> Result<Scratch, String> {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().subsec_nanos();
        let dir = PathBuf::from(format!("/tmp/mi7soft-bench-{}-{nanos:x}", std::process::id()));
        fs::create_dir(&dir).map_err(|e| format!("bench: {}: {e}", dir.display()))?;
        // The watchdog: in a session of its own (Ctrl-C does not reach it),
        // it waits for the bench to end, however it ends, then kills what
        // the bench left and removes the directory (unless --keep).
        let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done\n\
             for pass in 1 2; do\n\
               for p in /proc/[0-9]*; do\n\
                 if tr '\\0' '\\n' < \"$p/environ\" 2>/dev/null | grep -qF \"MI7SOFT_BENCH=$2/\"; then\n\
                   kill -9 \"${p#/proc/}\" 2>/dev/null\n\
                 fi\n\
               done\n\
             done\n\
             [ -e \"$2/keep\" ] || rm -rf \"$2\"\n";
        crate::spawn_watchdog("bench", script, &dir);
        if keep {
            let _ = fs::write(dir.join("keep"), "");
        }
        Ok(Scratch { dir, keep })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        proc::kill_tagged(&self.dir.to_string_lossy(), true);
        if self.keep {
            eprintln!("xtask: bench: kept {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50), 50.0);
        assert_eq!(percentile(&samples, 95), 95.0);
        assert_eq!(percentile(&[7.0], 95), 7.0);
    }

    #[test]
    fn bash_epoch_is_read_in_nanoseconds() {
        assert_eq!(parse_epoch("1795963807.416370"), Some(1_795_963_807_416_370_000));
        assert_eq!(parse_epoch("12"), None);
    }

    #[test]
    fn restarts_are_summed_from_status_json() {
        let json = r#"{"processes":[{"restarts":3,"x":1},{"restarts":12}]}"#;
        assert_eq!(sum_field(json, "\"restarts\":"), 15);
    }

    #[test]
    fn smoke_and_peers_do_not_mix() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Settings::parse(&args(&["--smoke", "--peers"])).is_err());
        let settings = Settings::parse(&args(&["--idle-secs=5", "--rounds", "7"])).unwrap();
        assert_eq!((settings.idle, settings.rounds), (Duration::from_secs(5), 7));
        assert!(Settings::parse(&args(&["--idle-secs", "0"])).is_err());
    }
}
