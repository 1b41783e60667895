//! `cargo xtask fuzz`: runs the cargo-fuzz targets of fuzz/, one per parser
//! of outside input (daemon.toml, the state file, control lines, HTTP
//! requests, sd_notify datagrams, the status document, the web API's
//! request bodies). Each target checks properties, not only "no panic";
//! fuzz/fuzz_targets/*.rs says which.
//!
//! - `cargo xtask fuzz TARGET --time S` fuzzes for S seconds, growing a
//!   working corpus in target/fuzz/corpus/TARGET from the committed seeds
//!   in fuzz/corpus/TARGET, which it never writes to.
//! - `cargo xtask fuzz --all --runs N` runs every target for N executions
//!   from the seeds alone, with a fixed libFuzzer seed, so the same tree
//!   gives the same run: this is the stage of `cargo xtask test`.
//!
//! A crash stops the run, and libFuzzer leaves the input in
//! fuzz/artifacts/TARGET/. Such an input becomes a plain `#[test]` in
//! tests/it/fuzz_regressions.rs, and the code gets fixed.
//!
//! libFuzzer's instrumentation needs nightly rustc flags, so cargo fuzz
//! runs on the nightly toolchain (`cargo +nightly fuzz`). A machine that
//! has only the stable one runs the same build there with
//! RUSTC_BOOTSTRAP=1, which unlocks those flags, and says so. cargo-fuzz
//! itself is installed from crates.io when missing.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{cargo, project_root, step};

/// Every target in fuzz/fuzz_targets/, in the order `--all` runs them.
pub const TARGETS: &[&str] = &["config", "state", "control", "http", "sdnotify", "status_json", "request_body"];

/// Executions per target in `cargo xtask test`: the whole stage, the first
/// build of the fuzz crate included, stays within about two minutes on two
/// cores (most of it is the build; `config` is the slowest target).
const TEST_RUNS: u64 = 100_000;

/// How long one target runs.
enum Budget {
    Seconds(u64),
    Runs(u64),
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut targets = Vec::new();
    let mut budget = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> Result<u64, String> {
            let value = args.next().ok_or_else(|| format!("fuzz: {flag} needs a number"))?;
            value
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("fuzz: {flag}: not a positive number: {value:?}"))
        };
        match arg.as_str() {
            "--all" => targets.extend(TARGETS.iter().copied()),
            "--time" => budget = Some(Budget::Seconds(number("--time")?)),
            "--runs" => budget = Some(Budget::Runs(number("--runs")?)),
            name => match TARGETS.iter().find(|t| **t == name) {
                Some(target) => targets.push(*target),
                None => return Err(format!("fuzz: unknown target {name:?} (targets: {})", TARGETS.join(", "))),
            },
        }
    }
    if targets.is_empty() {
        return Err(format!("fuzz: name a target ({}) or --all", TARGETS.join(", ")));
    }
    let budget = budget.ok_or("fuzz: give --time SECONDS or --runs N")?;
    fuzz(&targets, &budget)
}

/// The stage of `cargo xtask test`: every target, a bounded number of runs.
pub fn test() -> Result<(), String> {
    fuzz(TARGETS, &Budget::Runs(TEST_RUNS))
}

fn fuzz(targets: &[&str], budget: &Budget) -> Result<(), String> {
    ensure_cargo_fuzz()?;
    let nightly = has_nightly();
    if !nightly {
        eprintln!("xtask: fuzz: no nightly toolchain; using stable with RUSTC_BOOTSTRAP=1");
    }
    let root = project_root();
    for target in targets {
        let seeds = root.join("fuzz/corpus").join(target);
        // libFuzzer adds what it finds to the first corpus directory, so
        // that one is never the committed seeds.
        let corpus = root.join("target/fuzz").join(match budget {
            Budget::Seconds(_) => "corpus",
            Budget::Runs(_) => "scratch",
        });
        let corpus = corpus.join(target);
        if let Budget::Runs(_) = budget {
            remove_dir(&corpus)?;
        }
        fs::create_dir_all(&corpus).map_err(|e| format!("fuzz: {}: {e}", corpus.display()))?;

        let mut command = cargo_fuzz(nightly);
        command.current_dir(&root).args(["run", "--target-dir", "target/fuzz", target]).arg(&corpus).arg(&seeds);
        // One slow input is a bug too: a hang in a parser is a denial of
        // service. Then the budget, and the counts to report.
        command.args(["--", "-timeout=10", "-print_final_stats=1"]);
        match budget {
            Budget::Seconds(seconds) => command.arg(format!("-max_total_time={seconds}")),
            // Quiet: a line per new input is thousands of lines in CI's log.
            Budget::Runs(runs) => command.arg(format!("-runs={runs}")).args(["-seed=1", "-verbosity=0"]),
        };
        let what = match budget {
            Budget::Seconds(seconds) => format!("fuzz {target} for {seconds} s"),
            Budget::Runs(runs) => format!("fuzz {target} for {runs} runs"),
        };
        step(&what, command).map_err(|e| {
            format!(
                "{e}\nxtask: the crashing input is in fuzz/artifacts/{target}/; \
                 make it a test in tests/it/fuzz_regressions.rs"
            )
        })?;
    }
    Ok(())
}

/// `cargo fuzz` on nightly, or on stable with the nightly flags unlocked.
fn cargo_fuzz(nightly: bool) -> Command {
    let mut command = if nightly {
        // What `cargo +nightly` does; the cargo that ran us is a
        // toolchain's own binary, which knows no `+toolchain`.
        let mut command = Command::new("rustup");
        command.args(["run", "nightly", "cargo"]);
        command
    } else {
        let mut command = cargo();
        command.env("RUSTC_BOOTSTRAP", "1");
        command
    };
    // cargo-fuzz runs `cargo build` itself: it must find that toolchain's
    // cargo, not the one `cargo xtask` ran with.
    command.env_remove("CARGO").env_remove("RUSTUP_TOOLCHAIN");
    command.arg("fuzz");
    command
}

fn has_nightly() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn ensure_cargo_fuzz() -> Result<(), String> {
    let found = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Ok(());
    }
    let mut install = cargo();
    install.args(["install", "cargo-fuzz", "--locked"]);
    step("cargo install cargo-fuzz --locked (missing)", install)
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("fuzz: {}: {e}", dir.display())),
        _ => Ok(()),
    }
}
