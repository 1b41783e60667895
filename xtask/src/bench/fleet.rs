//! A fleet: one supervisor under test, running `n` copies of the bench's one
//! workload, in a directory of its own.
//!
//! The workload is the same for every supervisor, a four-line sh service:
//!
//! ```sh
//! #!/bin/sh
//! # …
//! echo "$$ $(date +%s%N)" >> DIR/starts/I
//! exec sleep 100000
//! ```
//!
//! so each start appends the service's pid (which `exec` keeps) and its
//! CLOCK_REALTIME start time in nanoseconds to a file of its own. The bench
//! reads those files, never a supervisor's own report, to learn when a
//! service started: the measurement is the same whoever supervises.
//!
//! The supervisors: ours (`mi7soft-daemon start` in the foreground, from
//! the release build), the floor (one `while :; do SERVICE; done` sh loop
//! per service: the least any supervisor can do), runit (`runsvdir` and a
//! `runsv` per service), s6 (`s6-svscan` and an `s6-supervise` per service)
//! and supervisord (`supervisord -n`). Each is started with
//! `MI7SOFT_BENCH=<the fleet's directory>` in its environment, which it
//! passes on to its services, so a fleet's processes are exactly the ones
//! carrying its tag: that is how the bench finds a peer's runsv processes
//! and how [`Fleet::stop`] leaves nothing behind.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::proc;
use super::timed;

/// The supervisor of a fleet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// mi7soft-daemon. `capture` sets `log_file` on every service (which
    /// brings in the fd holder); `crash` replaces the workload by
    /// `sh -c 'exit 1'` with a short backoff: the crash storm.
    Ours {
        capture: bool,
        crash: bool,
    },
    Floor,
    Runit,
    S6,
    Supervisord,
}

/// The peers, in the order of the table's columns.
pub const PEERS: [Kind; 3] = [Kind::Runit, Kind::S6, Kind::Supervisord];

impl Kind {
    pub const OURS: Kind = Kind::Ours { capture: false, crash: false };

    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours { .. } => "ours",
            Kind::Floor => "floor",
            Kind::Runit => "runit",
            Kind::S6 => "s6",
            Kind::Supervisord => "supervisord",
        }
    }

    /// The programs a peer needs, and the Debian package that has them.
    pub fn programs(self) -> (&'static [&'static str], &'static str) {
        match self {
            Kind::Runit => (&["runsvdir", "runsv", "sv"], "runit"),
            Kind::S6 => (&["s6-svscan", "s6-supervise", "s6-svstat"], "s6"),
            Kind::Supervisord => (&["supervisord", "supervisorctl"], "supervisor"),
            Kind::Ours { .. } | Kind::Floor => (&["sh", "date", "sleep"], "coreutils"),
        }
    }

    /// What the processes that supervise (not the services) are called.
    fn supervisor_role(self, pid: u32) -> Option<&'static str> {
        let comm = proc::comm(pid)?;
        match (self, comm.as_str()) {
            // `mi7soft-daemon-mini` too (a comm is cut at 15 bytes).
            (Kind::Ours { .. }, comm) if comm.starts_with("mi7soft-daemon") => {
                Some(if proc::cmdline(pid).iter().any(|a| a == "fd-holder") { "fd-holder" } else { "daemon" })
            }
            (Kind::Floor, "sh") => Some("sh loop"),
            (Kind::Runit, "runsvdir") => Some("runsvdir"),
            (Kind::Runit, "runsv") => Some("runsv"),
            (Kind::S6, "s6-svscan") => Some("s6-svscan"),
            (Kind::S6, "s6-supervise") => Some("s6-supervise"),
            (Kind::Supervisord, _) if proc::cmdline(pid).iter().take(3).any(|a| a.ends_with("supervisord")) => {
                Some("supervisord")
            }
            _ => None,
        }
    }
}

/// One start of a service, as it wrote it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Start {
    pub pid: u32,
    /// CLOCK_REALTIME, nanoseconds since the epoch.
    pub at_ns: u128,
}

pub struct Fleet {
    pub kind: Kind,
    pub dir: PathBuf,
    pub n: usize,
    /// Our daemon's web listener (on 127.0.0.1), which /metrics is timed on.
    pub web_port: u16,
    /// Our daemon's binary: the fleet's own copy.
    bin: PathBuf,
    children: Vec<Child>,
}

impl Fleet {
    /// Writes the fleet's services and config under `root/name`; starts
    /// nothing.
    pub fn create(root: &Path, name: &str, kind: Kind, n: usize, bin: &Path) -> Result<Fleet, String> {
        let dir = root.join(name);
        // Each fleet runs its own copy of our binary: PSS splits the pages
        // of a file among every process that maps it, so a test or another
        // fleet running the same file would make the daemon look smaller.
        // A port that was free a moment ago: the kernel's pick for port 0.
        let web_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port());
        let fleet = Fleet { kind, bin: dir.join(bin.file_name().unwrap()), dir, n, web_port, children: Vec::new() };
        let written = fleet.write().and_then(|()| fs::copy(bin, &fleet.bin).map(drop));
        written.map_err(|e| format!("bench: {}: {e}", fleet.dir.display()))?;
        Ok(fleet)
    }

    fn write(&self) -> std::io::Result<()> {
        fs::create_dir_all(self.dir.join("starts"))?;
        for i in 0..self.n {
            let script = self.script(i);
            let path = match self.kind {
                Kind::Ours { crash: true, .. } => continue,
                Kind::Runit => self.dir.join(format!("sv/s{i}/run")),
                Kind::S6 => self.dir.join(format!("scan/s{i}/run")),
                Kind::Ours { .. } | Kind::Floor | Kind::Supervisord => self.service_path(i),
            };
            fs::create_dir_all(path.parent().unwrap())?;
            fs::write(&path, script)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        }
        match self.kind {
            Kind::Ours { .. } => {
                fs::create_dir_all(self.dir.join("logs"))?;
                fs::write(self.config(), self.ours_toml(None))
            }
            Kind::Supervisord => fs::write(self.config(), self.supervisord_conf()),
            Kind::Floor | Kind::Runit | Kind::S6 => Ok(()),
        }
    }

    /// The workload: four lines of sh.
    fn script(&self, i: usize) -> String {
        format!(
            "#!/bin/sh\n\
             # mi7soft-daemon bench service {i}: note the pid and start time, then idle.\n\
             echo \"$$ $(date +%s%N)\" >> {}\n\
             exec sleep 100000\n",
            self.starts_path(i).display()
        )
    }

    fn service_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("svc/{i}.sh"))
    }

    fn starts_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("starts/{i}"))
    }

    pub fn config(&self) -> PathBuf {
        match self.kind {
            Kind::Supervisord => self.dir.join("supervisord.conf"),
            _ => self.dir.join("daemon.toml"),
        }
    }

    /// Our config. `changed` gives one service an extra argument, the edit
    /// that `reload` must turn into one restart.
    pub fn ours_toml(&self, changed: Option<(usize, &str)>) -> String {
        let dir = self.dir.display();
        let mut toml = format!(
            "# Written by `cargo xtask bench`.\n[daemon]\npid_file = \"{dir}/daemon.pid\"\nlog_file = \"{dir}/daemon.log\"\n"
        );
        if self.has_web() {
            toml.push_str(&format!("\n[web]\nlisten = \"127.0.0.1:{}\"\n", self.web_port));
        }
        let Kind::Ours { capture, crash } = self.kind else { unreachable!("ours_toml of {:?}", self.kind) };
        for i in 0..self.n {
            toml.push_str(&format!("\n[[processes]]\nname = \"s{i}\"\n"));
            if crash {
                toml.push_str("command = \"sh\"\nargs = [\"-c\", \"exit 1\"]\n");
                toml.push_str("backoff_initial = 0.1\nbackoff_max = 1\n");
            } else {
                toml.push_str(&format!("command = \"{}\"\n", self.service_path(i).display()));
                if let Some((_, arg)) = changed.filter(|&(index, _)| index == i) {
                    toml.push_str(&format!("args = [\"{arg}\"]\n"));
                }
                // Started counts as running at once (no 1 s "starting").
                toml.push_str("min_uptime = 0\n");
            }
            // Restarted as often as the bench kills it.
            toml.push_str("start_limit_burst = 0\n");
            if capture {
                toml.push_str(&format!("log_file = \"{dir}/logs/s{i}.log\"\n"));
            }
        }
        toml
    }

    fn supervisord_conf(&self) -> String {
        let dir = self.dir.display();
        let mut conf = format!(
            "; Written by `cargo xtask bench`.\n\
             [supervisord]\nnodaemon=true\nlogfile={dir}/supervisord.log\npidfile={dir}/supervisord.pid\n\
             childlogdir={dir}\n\n\
             [unix_http_server]\nfile={dir}/supervisor.sock\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{dir}/supervisor.sock\n"
        );
        for i in 0..self.n {
            conf.push_str(&format!(
                "\n[program:s{i}]\ncommand={}\nautorestart=true\nstdout_logfile=NONE\nstderr_logfile=NONE\n",
                self.service_path(i).display()
            ));
        }
        conf
    }

    /// A command run with the fleet's tag (so that it and whatever it starts
    /// are found and ended with the fleet).
    fn tagged(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command.env(proc::TAG, &self.dir).current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn log(&self) -> Result<(Stdio, Stdio), String> {
        let path = self.dir.join("supervisor.log");
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("bench: {}: {e}", path.display()))?;
        let copy = file.try_clone().map_err(|e| format!("bench: {}: {e}", path.display()))?;
        Ok((file.into(), copy.into()))
    }

    /// Starts the supervisor (or, for the floor, the loops); returns when
    /// it was launched.
    pub fn launch(&mut self) -> Result<SystemTime, String> {
        let mut commands = Vec::new();
        match self.kind {
            Kind::Ours { .. } => {
                // The daemon's own descriptors grow with the services (pidfds
                // after adoption, capture pipes): room for 1,000 of them.
                let mut sh = self.tagged("sh");
                sh.args(["-c", "ulimit -n 65536 2>/dev/null; exec \"$0\" \"$@\""]);
                sh.arg(&self.bin).arg("-c").arg(self.config()).arg("start");
                commands.push(sh);
            }
            Kind::Floor => {
                for i in 0..self.n {
                    let mut sh = self.tagged("sh");
                    sh.args(["-c", "while :; do \"$0\"; done"]).arg(self.service_path(i));
                    commands.push(sh);
                }
            }
            Kind::Runit => {
                let mut runsvdir = self.tagged("runsvdir");
                runsvdir.arg("-P").arg(self.dir.join("sv"));
                commands.push(runsvdir);
            }
            Kind::S6 => {
                let mut svscan = self.tagged("s6-svscan");
                svscan.arg(self.dir.join("scan"));
                commands.push(svscan);
            }
            Kind::Supervisord => {
                let mut supervisord = self.tagged("supervisord");
                supervisord.arg("-n").arg("-c").arg(self.config());
                commands.push(supervisord);
            }
        }
        let launched = SystemTime::now();
        for mut command in commands {
            let (out, err) = self.log()?;
            let child = command
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("bench: starting {}: {e}", self.kind.name()))?;
            self.children.push(child);
        }
        Ok(launched)
    }

    /// Every start of service `i` so far.
    pub fn starts(&self, i: usize) -> Vec<Start> {
        let text = fs::read_to_string(self.starts_path(i)).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let (pid, at) = line.split_once(' ')?;
                Some(Start { pid: pid.parse().ok()?, at_ns: at.trim().parse().ok()? })
            })
            .collect()
    }

    /// Service `i`'s latest start, if it has exec'ed its `sleep` (so that a
    /// kill hits the service and not the script still starting).
    pub fn running(&self, i: usize) -> Option<Start> {
        let start = *self.starts(i).last()?;
        (proc::comm(start.pid)? == "sleep").then_some(start)
    }

    /// Waits until every service runs its `sleep`.
    pub fn wait_up(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        // One readdir per pass until every service has written its file, so
        // that polling 1,000 files does not slow down the start it waits for.
        let written = || fs::read_dir(self.dir.join("starts")).map_or(0, |entries| entries.count());
        while written() < self.n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            let up = (0..self.n).filter(|&i| self.running(i).is_some()).count();
            if up == self.n {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "bench: {}: only {up} of {} services started within {}s (see {})",
                    self.kind.name(),
                    self.n,
                    limit.as_secs(),
                    self.dir.join("supervisor.log").display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The processes that supervise, with their role, found by tag.
    pub fn supervisors(&self) -> Vec<(u32, &'static str)> {
        let dir = self.dir.to_string_lossy();
        proc::tagged(&dir, false).into_iter().filter_map(|pid| Some((pid, self.kind.supervisor_role(pid)?))).collect()
    }

    /// Whether our binary has the web listener: not the `-mini` ones, for
    /// which a `[web]` table is a config error.
    pub fn has_web(&self) -> bool {
        !self.bin.to_string_lossy().ends_with("-mini")
    }

    /// One `GET /metrics` from our daemon, and how long it took to arrive
    /// whole.
    pub fn scrape(&self) -> Result<(String, Duration), String> {
        let what = |e: std::io::Error| format!("bench: GET /metrics on 127.0.0.1:{}: {e}", self.web_port);
        let began = std::time::Instant::now();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.web_port)).map_err(what)?;
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(what)?;
        let request =
            format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.web_port);
        std::io::Write::write_all(&mut stream, request.as_bytes()).map_err(what)?;
        let mut response = String::new();
        std::io::Read::read_to_string(&mut stream, &mut response).map_err(what)?;
        let took = began.elapsed();
        if !response.starts_with("HTTP/1.1 200 ") || !response.contains("mi7soft_service_up{") {
            return Err(format!("bench: GET /metrics: {}", response.lines().next().unwrap_or("no answer")));
        }
        Ok((response, took))
    }

    /// A command of our CLI against this fleet's daemon.
    pub fn ctl(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("-c").arg(self.config()).args(args).stdin(Stdio::null());
        command
    }

    /// The supervisor's command that reports every service's status.
    pub fn status_command(&self, json: bool) -> Command {
        match self.kind {
            Kind::Ours { .. } => self.ctl(if json { &["status", "--json"] } else { &["status"] }),
            Kind::Runit => {
                let mut sv = Command::new("sv");
                sv.arg("status").args((0..self.n).map(|i| self.dir.join(format!("sv/s{i}"))));
                sv
            }
            Kind::S6 => {
                // s6-svstat reads one service directory: one call per service.
                let mut sh = Command::new("sh");
                sh.args(["-c", "for d in \"$0\"/*; do s6-svstat \"$d\" || exit 1; done"]).arg(self.dir.join("scan"));
                sh
            }
            Kind::Supervisord => {
                let mut ctl = Command::new("supervisorctl");
                ctl.arg("-c").arg(self.config()).arg("status");
                ctl
            }
            Kind::Floor => Command::new("true"),
        }
    }

    /// SIGKILLs our daemon (its services keep running) and reaps it.
    pub fn kill_daemon(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Ends everything of the fleet: ours through `shutdown --stop-all`
    /// first (the way an init script stops it), then, for every kind,
    /// SIGKILL to whatever still carries the fleet's tag.
    pub fn stop(&mut self) {
        if matches!(self.kind, Kind::Ours { .. }) && self.children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None)))
        {
            let mut shutdown = self.ctl(&["shutdown", "--stop-all"]);
            if let Err(e) = timed(&mut shutdown, Duration::from_secs(60)) {
                eprintln!("xtask: bench: warning: {}: {e}", self.dir.display());
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && self.children.iter_mut().any(|c| matches!(c.try_wait(), Ok(None))) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
        }
        proc::kill_tagged(&self.dir.to_string_lossy(), false);
        for mut child in self.children.drain(..) {
            let _ = child.wait();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop();
    }
}
