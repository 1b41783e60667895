//! The integration tests of tests/it/ against the cross-built binaries of
//! `cargo xtask dist`, under qemu-user: `cargo xtask test --target TRIPLE`
//! and `--all-targets` run the whole suite; `--ci` runs [`SUBSET`] for the
//! targets marked `tested_in_ci` (armv7, mipsel, mips), the stage meant for
//! `cargo xtask test` once the size budget is met.
//!
//! The test harness stays a native program: only the daemon is foreign. It
//! is named by `MI7_BIN` (read by `bin()` in tests/it/support.rs), and its
//! deadlines are stretched by `MI7_TIME_SCALE` ([`TIME_SCALE`] unless the
//! caller set it). A runner prefix would not be enough, because the daemon
//! execs itself (the fd holder, through /proc/self/exe) and host programs
//! (sh, sleep) for its services, and a prefix reaches neither. So qemu is
//! registered with the kernel's binfmt_misc, from the files Debian's
//! qemu-user-static puts in /usr/lib/binfmt.d/ (mounting binfmt_misc first
//! if needed; both need root), and the kernel runs every foreign executable
//! under its qemu transparently. binfmt-support is not needed. The entries
//! carry the `F` flag, so the interpreter is opened once, at registration.
//!
//! Which watcher of adopted processes runs is up to qemu: where it lacks
//! `pidfd_open`, the daemon falls back to polling. After the tests, a probe
//! starts the foreign daemon, kills it, starts it again over the service it
//! left, and prints which watcher the second one logged, so the test
//! command says which path ran on each target instead of guessing.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dist::{self, Variant};
use crate::targets::{TARGETS, Target};
use crate::{cargo, project_root, step};

/// How much longer every deadline of the tests is under emulation.
const TIME_SCALE: &str = "4";

/// The part of the suite for the test command, as `cargo test` filters
/// (substrings of test paths): start, stop and restart, adoption (both
/// watchers), output capture, and config parsing; 47 of 154 tests, about
/// 42 s per target under qemu on 2 cores, where the whole suite takes about
/// 120 s. The rest (readiness, dependencies, reload, policy, faults, web
/// API, init scripts, ...) runs with `--target` and `--all-targets`.
pub const SUBSET: &[&str] = &["lifecycle::", "commands::", "adoption::", "capture::", "config::"];

/// Which tests run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Full,
    Subset,
}

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// The targets whose binaries the test command tests under qemu
/// (`tested_in_ci` in cross/targets.rs).
pub fn ci_targets() -> Vec<&'static Target> {
    TARGETS.iter().filter(|t| t.tested_in_ci).collect()
}

/// `cargo xtask test --target TRIPLE... | --all-targets | --ci`: builds
/// those targets with dist, then runs the whole suite against each (the
/// subset, with `--ci`), and finally applies dist's size budget.
pub fn run(args: &[String]) -> Result<(), String> {
    let mut triples: Vec<&str> = Vec::new();
    let mut all = false;
    let mut suite = Suite::Full;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.strip_prefix("--target=") {
            Some(triple) => triples.push(triple),
            None if arg == "--target" => triples.push(args.next().ok_or("test: --target needs a target triple")?),
            None if arg == "--all-targets" => all = true,
            // The targets and the subset of tests meant for the test command.
            None if arg == "--ci" => {
                triples.extend(ci_targets().iter().map(|t| t.triple));
                suite = Suite::Subset;
            }
            None => return Err(format!("test: unexpected argument {arg:?}")),
        }
    }
    if all && !triples.is_empty() || !all && triples.is_empty() {
        return Err("test: give either --target TRIPLE (repeatable), --ci or --all-targets".into());
    }
    let mut targets: Vec<&'static Target> = Vec::new();
    for triple in triples {
        let Some(target) = TARGETS.iter().find(|t| t.triple == triple) else {
            let known: Vec<&str> = TARGETS.iter().map(|t| t.triple).collect();
            return Err(format!("test: unknown target {triple:?} (known: {})", known.join(", ")));
        };
        if !targets.iter().any(|t| t.triple == triple) {
            targets.push(target);
        }
    }
    if all {
        targets = TARGETS.iter().collect();
    }
    let dist_args: Vec<String> = targets.iter().flat_map(|t| ["--target".to_string(), t.triple.to_string()]).collect();
    let built = dist::build_all(&dist_args)?;
    test(&targets, suite)?;
    built.finish()
}

/// What one target's run came to.
struct Outcome {
    triple: &'static str,
    /// The test binary's "test result: ..." line, or why there is none.
    summary: String,
    passed: bool,
    elapsed: Duration,
    watcher: String,
}

/// Runs `suite` against each target's dist binary (the default build, with
/// the web UI, as the tests expect), which must be built already. Every
/// target runs even when one fails; a table of outcomes comes last.
pub fn test(targets: &[&Target], suite: Suite) -> Result<(), String> {
    let foreign: Vec<&Target> = targets.iter().copied().filter(|t| !dist::runs_natively(t)).collect();
    dist::ensure_qemu(&foreign)?;
    ensure_binfmt(&foreign)?;
    let mut outcomes = Vec::new();
    for &target in targets {
        let bin = dist::binary(target, Variant::Web);
        if !bin.is_file() {
            return Err(format!("test: {} does not exist (`cargo xtask dist` builds it)", bin.display()));
        }
        let native = dist::runs_natively(target);
        let scale = std::env::var("MI7_TIME_SCALE").unwrap_or_else(|_| if native { "1" } else { TIME_SCALE }.into());
        let mut tests = cargo();
        tests.current_dir(project_root()).env("MI7_BIN", &bin).env("MI7_TIME_SCALE", &scale);
        tests.args(["test", "--package", dist::BIN, "--test", "it", "--"]);
        let which = match suite {
            Suite::Full => "all integration tests".to_string(),
            Suite::Subset => {
                tests.args(SUBSET);
                format!("integration tests {}", SUBSET.join(" "))
            }
        };
        if !native {
            // Where qemu-user lacks what a test needs (a subreaper, the
            // daemon's own task count), the test checks what the daemon
            // does about it instead, and says so; none is skipped.
            tests.env("MI7_QEMU", "1");
        }
        let how = if native { "natively" } else { "under qemu" };
        eprintln!("xtask: {}: {which} against {} ({how}, MI7_TIME_SCALE={scale})", target.triple, bin.display());
        let started = Instant::now();
        let (passed, summary) = run_tests(tests)?;
        let elapsed = started.elapsed();
        let watcher = probe_watcher(target, &bin).unwrap_or_else(|e| format!("unknown ({e})"));
        outcomes.push(Outcome { triple: target.triple, summary, passed, elapsed, watcher });
    }
    for o in &outcomes {
        let verdict = if o.passed { "ok" } else { "FAILED" };
        eprintln!(
            "xtask: {}: {verdict} in {}s: {}; adopted processes watched by {}",
            o.triple,
            o.elapsed.as_secs(),
            o.summary,
            o.watcher
        );
    }
    let failed: Vec<&str> = outcomes.iter().filter(|o| !o.passed).map(|o| o.triple).collect();
    if failed.is_empty() { Ok(()) } else { Err(format!("test: integration tests failed for {}", failed.join(", "))) }
}

/// Runs the test binary, passing its output through, and returns whether
/// it passed and its "test result: ..." line.
fn run_tests(mut tests: Command) -> Result<(bool, String), String> {
    let mut child = tests.stdout(Stdio::piped()).spawn().map_err(|e| format!("test: cargo: {e}"))?;
    let mut summary = String::from("no test result (the tests did not build or run)");
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.map_err(|e| format!("test: reading the tests' output: {e}"))?;
        println!("{line}");
        if let Some(result) = line.strip_prefix("test result: ") {
            let counts = result.split_once(". ").map_or(result, |(_, counts)| counts);
            summary = counts.split(';').take(3).collect::<Vec<_>>().join(";");
        }
    }
    let status = child.wait().map_err(|e| format!("test: cargo: {e}"))?;
    Ok((status.success(), summary))
}

/// Makes the kernel run each target's binaries under its qemu: mounts
/// binfmt_misc when needed and registers the entries Debian ships that are
/// missing or disabled.
fn ensure_binfmt(targets: &[&Target]) -> Result<(), String> {
    if targets.is_empty() {
        return Ok(());
    }
    let register = Path::new(BINFMT).join("register");
    if !register.exists() {
        let mut mount = Command::new("mount");
        mount.args(["-t", "binfmt_misc", "binfmt_misc", BINFMT]);
        step(&format!("mounting binfmt_misc on {BINFMT}"), mount)
            .map_err(|e| format!("test: {e} (running foreign binaries needs binfmt_misc; run as root)"))?;
    }
    for target in targets {
        let name = target.qemu.trim_end_matches("-static");
        let entry = Path::new(BINFMT).join(name);
        match fs::read_to_string(&entry) {
            Ok(status) if status.starts_with("enabled") => continue,
            Ok(_) => {
                eprintln!("xtask: enabling binfmt_misc entry {name}");
                fs::write(&entry, "1").map_err(|e| format!("test: {}: {e}", entry.display()))?;
            }
            Err(_) => {
                let conf = PathBuf::from(format!("/usr/lib/binfmt.d/{name}.conf"));
                let text = fs::read_to_string(&conf)
                    .map_err(|e| format!("test: {}: {e} (it comes with qemu-user-static)", conf.display()))?;
                let line =
                    text.lines().find(|l| l.starts_with(':')).ok_or(format!("test: {}: no entry", conf.display()))?;
                eprintln!("xtask: registering {name} with binfmt_misc from {}", conf.display());
                fs::write(&register, line).map_err(|e| format!("test: {}: {e}", register.display()))?;
            }
        }
    }
    Ok(())
}

/// Which watcher a daemon that adopted a service uses on this target: it
/// starts a daemon with one service, SIGKILLs it, and reads what the next
/// daemon says about the service it takes back.
fn probe_watcher(target: &Target, bin: &Path) -> Result<String, String> {
    let dir = PathBuf::from(format!("/tmp/mi7-probe-{}-{}", std::process::id(), target.triple));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("test: {}: {e}", dir.display()))?;
    let config = "[daemon]\npid_file = \"d.pid\"\ncheck_interval = 1\n\n\
                  [[processes]]\nname = \"probe\"\ncommand = \"sleep\"\nargs = [\"999\"]\n";
    fs::write(dir.join("daemon.toml"), config).map_err(|e| format!("test: {}: {e}", dir.display()))?;
    let result = probe_in(&dir, bin);
    let _ = cli(&dir, bin, &["shutdown", "--stop-all"]);
    if result.is_ok() {
        let _ = fs::remove_dir_all(&dir);
    }
    result.map_err(|e| format!("test: {}: watcher probe in {}: {e}", target.triple, dir.display()))
}

fn probe_in(dir: &Path, bin: &Path) -> Result<String, String> {
    let running = |dir: &Path| cli(dir, bin, &["status", "--json"]).is_some_and(|out| out.contains("\"running\""));
    let mut first = start(dir, bin)?;
    let started = wait(Duration::from_secs(60), || running(dir));
    let _ = first.kill();
    let _ = first.wait();
    if !started {
        return Err("the service did not start".into());
    }
    let mut second = start(dir, bin)?;
    let mut log = String::new();
    let said = wait(Duration::from_secs(60), || {
        log = fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
        log.contains("adopted processes with pidfds") || log.contains("adopted processes by checking")
    });
    let _ = cli(dir, bin, &["shutdown", "--stop-all"]);
    if !wait(Duration::from_secs(30), || second.try_wait().is_ok_and(|s| s.is_some())) {
        let _ = second.kill();
        let _ = second.wait();
    }
    if !said {
        return Err(format!("the daemon did not say how it watches what it adopted:\n{log}"));
    }
    if log.contains("adopted processes with pidfds") {
        return Ok("pidfd".into());
    }
    let why = log.lines().find_map(|l| l.split_once("pidfd_open: ")).map_or("", |(_, why)| why);
    let why = why.split(';').next().unwrap_or_default();
    Ok(if why.is_empty() { "polling".into() } else { format!("polling (pidfd_open: {why})") })
}

/// Starts the daemon in the foreground, its output appended to daemon.log.
fn start(dir: &Path, bin: &Path) -> Result<Child, String> {
    let log = fs::OpenOptions::new().create(true).append(true).open(dir.join("daemon.log"));
    let log = log.map_err(|e| format!("daemon.log: {e}"))?;
    let stderr = log.try_clone().map_err(|e| format!("daemon.log: {e}"))?;
    Command::new(bin)
        .args(["-c", "daemon.toml", "start"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))
}

/// A client command's stdout when it succeeded.
fn cli(dir: &Path, bin: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(bin).arg("-c").arg("daemon.toml").args(args).current_dir(dir).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `condition` held within `timeout`, checked every 50 ms.
fn wait(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The source of the integration test module `module` (tests/it/MODULE.rs).
    fn module_source(module: &str) -> String {
        let path = project_root().join("tests/it").join(format!("{module}.rs"));
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_subset_names_integration_test_modules() {
        for filter in SUBSET {
            let module = filter.strip_suffix("::").expect("a filter of SUBSET is a module path ending in ::");
            assert!(!module_source(module).is_empty(), "tests/it/{module}.rs is empty");
        }
    }
}
