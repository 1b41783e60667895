//! What every integration test stands on: a private directory, the real
//! binary, a daemon guard that cleans up after itself, and `wait_until`.
//!
//! Tests never sleep and then assert: they wait for a condition with a
//! deadline, and the deadline is stretched by `MI7_TIME_SCALE` (for runs
//! under qemu). Services are small sh scripts that run with the test's
//! directory as their working directory, which is how cleanup finds every
//! process a test started, even those that outlived a SIGKILLed daemon.

#![allow(dead_code)]
// nanoserde's derive expands Option fields into code clippy would write with `?`.
#![allow(clippy::question_mark)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nanoserde::DeJson;

/// The binary under test: MI7_BIN when set (a cross-built binary, run under
/// qemu through binfmt_misc by `cargo xtask test --target`), else cargo's.
pub fn bin() -> PathBuf {
    std::env::var_os("MI7_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mi7soft-daemon")), PathBuf::from)
}

/// Whether the binary under test runs under qemu-user (`cargo xtask test
/// --target` sets MI7_QEMU): the few tests that meet a limit of the
/// emulation check what the daemon does about it instead.
pub fn under_qemu() -> bool {
    std::env::var_os("MI7_QEMU").is_some()
}

/// A deadline of `secs` seconds, stretched by MI7_TIME_SCALE.
pub fn secs(secs: u64) -> Duration {
    let scale: f64 = std::env::var("MI7_TIME_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    Duration::from_secs_f64(secs as f64 * scale)
}

/// Polls `condition` every few milliseconds until it holds; panics naming
/// `what` when `timeout` passes first.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `condition` every few milliseconds for `duration` and panics naming
/// `what` as soon as it does not hold: "stays so", where [`wait_until`] is
/// "becomes so".
pub fn holds_for(duration: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        assert!(condition(), "no longer true: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `[[processes]]` table that runs `sh -c script`, with more `keys`
/// (whole lines) after it.
pub fn sh_service(name: &str, script: &str, keys: &str) -> String {
    // Rust's debug form of an ASCII string is a valid TOML basic string.
    format!("[[processes]]\nname = \"{name}\"\ncommand = \"sh\"\nargs = [\"-c\", {script:?}]\n{keys}\n\n")
}

/// A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks it
/// for a socket bound to port 0, which is then closed. Tests run in
/// parallel, so they never use fixed ports.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A python3 program for services: `python3 listen.py PORT DELAY` waits
/// DELAY seconds, appends the time (ns since the epoch) to `listening`,
/// then listens on 127.0.0.1:PORT, accepting and closing connections until
/// killed. The time is written just before listen(2), so anything that saw
/// the port open happened after it.
pub const LISTEN_PY: &str = r#"import socket, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
time.sleep(delay)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
with open("listening", "a") as f:
    f.write(f"{time.time_ns()}\n")
s.listen(64)
while True:
    s.accept()[0].close()
"#;

/// A fresh directory per test, short enough for a Unix socket path.
pub struct TestDir {
    pub path: PathBuf,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path =
            PathBuf::from(format!("/tmp/mi7t-{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed), name));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TestDir { path }
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, content).unwrap();
        path
    }

    /// An executable `#!/bin/sh` script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.write(name, &format!("#!/bin/sh\n{body}\n"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.join(name)).unwrap_or_default()
    }

    /// Writes daemon.toml: the given `[[processes]]` tables after a
    /// `[daemon]` table with every path inside this directory.
    pub fn config(&self, processes: &str) -> PathBuf {
        self.write("daemon.toml", &format!("[daemon]\npid_file = \"d.pid\"\ncheck_interval = 1\n\n{processes}"))
    }

    /// Pids of live processes started from this directory (by cwd).
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == std::process::id() as i32 {
                continue;
            }
            // By working directory (services), or by a command line naming
            // the directory (a detached daemon or fd holder, which run in /).
            let in_dir = fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&self.path))
                || cmdline(pid).contains(&format!("{}/", self.path.display()));
            if in_dir && !is_zombie(pid) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Live processes from this directory whose command line contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.processes().into_iter().filter(|&pid| cmdline(pid).contains(needle)).count()
    }
}

impl TestDir {
    /// SIGKILLs every process started from this directory, retrying while
    /// new ones appear (a service restarted by a dying daemon).
    pub fn kill_all(&self) {
        for _ in 0..50 {
            let pids = self.processes();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        self.kill_all();
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
}

pub fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_or(true, |s| s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

pub fn kill(pid: i32, signal: &str) {
    let ok = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// What one CLI run printed and how it exited.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` in `dir`.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin()).args(args).current_dir(dir).stdin(Stdio::null()).output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[derive(Debug, DeJson)]
pub struct Status {
    pub daemon: DaemonInfo,
    pub processes: Vec<ProcessInfo>,
}

#[derive(Debug, DeJson)]
pub struct DaemonInfo {
    pub pid: i32,
    pub version: String,
    pub config: String,
}

#[derive(Debug, Clone, DeJson)]
pub struct ProcessInfo {
    pub name: String,
    pub instance: u32,
    pub state: String,
    pub pid: Option<i32>,
    pub uptime_secs: Option<u64>,
    pub restarts: u32,
    pub last_exit: Option<String>,
    pub next_start_secs: Option<u64>,
    /// The last STATUS= the service sent over the notify socket.
    pub status_text: Option<String>,
    /// The command line it runs.
    pub command: Option<String>,
    /// The file its output is captured in.
    pub log_file: Option<String>,
}

/// Runs the binary with `args` in `dir` like [`run`], for a command that must
/// exit by itself (a refused `start`, say): past `timeout` it is killed and
/// the test fails instead of hanging. Output goes through files in `dir`, so
/// a process it leaves behind cannot keep a pipe open.
pub fn run_bounded(dir: &Path, args: &[&str], timeout: Duration) -> Output {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (out_path, err_path) = (dir.join(format!("run-{n}.out")), dir.join(format!("run-{n}.err")));
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} did not exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(out_path).unwrap_or_default(),
        stderr: fs::read_to_string(err_path).unwrap_or_default(),
    }
}

/// A daemon started in the foreground in a test directory. Dropping it
/// SIGKILLs the daemon; the TestDir then kills what it left running.
pub struct Daemon {
    pub dir: PathBuf,
    pub child: Child,
}

impl Daemon {
    /// Starts `start` with `dir/daemon.toml` (stderr to `dir/daemon.log`) and
    /// waits until it answers `status`.
    pub fn start(dir: &TestDir) -> Daemon {
        Daemon::start_with_env(dir, &[])
    }

    /// [`Daemon::start`] with extra environment variables for the daemon
    /// (`MI7SOFT_NO_PIDFD`, say).
    pub fn start_with_env(dir: &TestDir, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_with_env(dir, &["-c", "daemon.toml", "start"], env).answering()
    }

    /// Waits until the daemon answers `status`.
    pub fn answering(self) -> Daemon {
        wait_until(secs(10), "the daemon answers status", || {
            run(&self.dir, &["-c", "daemon.toml", "status"]).code == 0
        });
        self
    }

    /// Spawns the binary with `args` without waiting for anything.
    pub fn spawn(dir: &TestDir, args: &[&str]) -> Daemon {
        Daemon::spawn_with_env(dir, args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables.
    pub fn spawn_with_env(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut command = Command::new(bin());
        command.args(args).envs(env.iter().copied());
        Daemon::launch(dir, command)
    }

    /// Spawns `command` (the binary, or a shell that execs it) as the
    /// test's daemon: in `dir`, stdin from /dev/null, stdout and stderr
    /// appended to `dir/daemon.log`.
    pub fn launch(dir: &TestDir, mut command: Command) -> Daemon {
        let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("daemon.log")).unwrap();
        let child = command
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Daemon { dir: dir.path.clone(), child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs a CLI command against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut all = vec!["-c", "daemon.toml"];
        all.extend_from_slice(args);
        run(&self.dir, &all)
    }

    pub fn status(&self) -> Status {
        let out = self.cli(&["status", "--json"]);
        assert_eq!(out.code, 0, "status --json failed: {out:?}");
        Status::deserialize_json(out.stdout.trim()).unwrap_or_else(|e| panic!("bad status JSON {:?}: {e}", out.stdout))
    }

    /// The status of the instance labelled `name` (instance 0) or `name:N`.
    pub fn process(&self, label: &str) -> ProcessInfo {
        let (name, instance) = label.split_once(':').map_or((label, 0), |(n, i)| (n, i.parse().unwrap()));
        let status = self.status();
        status
            .processes
            .into_iter()
            .find(|p| p.name == name && p.instance == instance)
            .unwrap_or_else(|| panic!("{label} not in status"))
    }

    /// The status of `label` (as for [`Daemon::process`]), or `None` when the
    /// daemon does not list it.
    pub fn find(&self, label: &str) -> Option<ProcessInfo> {
        let (name, instance) = label.split_once(':').map_or((label, 0), |(n, i)| (n, i.parse().unwrap()));
        self.status().processes.into_iter().find(|p| p.name == name && p.instance == instance)
    }

    /// Whether the daemon process has not exited.
    pub fn is_up(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until `label` is running with a pid other than `not`; returns it.
    pub fn wait_running(&self, label: &str, not: Option<i32>) -> i32 {
        let mut pid = None;
        wait_until(secs(10), &format!("{label} runs (not as {not:?})"), || {
            let p = self.process(label);
            pid = p.pid.filter(|_| p.state == "running" && p.pid != not);
            pid.is_some()
        });
        pid.unwrap()
    }

    /// Waits until `label` has a process, ready or not; returns its pid.
    pub fn wait_started(&self, label: &str) -> i32 {
        let mut pid = None;
        wait_until(secs(10), &format!("{label} has a process"), || {
            pid = self.process(label).pid;
            pid.is_some()
        });
        pid.unwrap()
    }

    /// Waits until the daemon process has exited; returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let mut code = None;
        wait_until(secs(15), "the daemon exits", || {
            code = self.child.try_wait().unwrap().map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code.unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks a state file's text: the version line, a newline at the end, and
/// comments or records of 14 fields, no instance twice. Returns each
/// record's fields (`STATE_PID` is the pid's place).
pub const STATE_PID: usize = 4;

pub fn parse_state(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut lines = text.lines();
    if lines.next() != Some("mi7soft-daemon state 2") {
        return Err(format!("bad first line in {text:?}"));
    }
    if !text.ends_with('\n') {
        return Err(format!("no newline at the end of {text:?}"));
    }
    let mut records: Vec<Vec<String>> = Vec::new();
    for line in lines.filter(|l| !l.starts_with('#')) {
        let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if fields.len() != 14 {
            return Err(format!("line {line:?} has {} fields in {text:?}", fields.len()));
        }
        if records.iter().any(|r| r[..2] == fields[..2]) {
            return Err(format!("{} {} recorded twice in {text:?}", fields[0], fields[1]));
        }
        records.push(fields);
    }
    Ok(records)
}
