//! `cargo xtask`: the project's tasks, written in Rust so they run wherever
//! cargo does (the rust-analyzer pattern). One module per task; cargo is
//! found through `$CARGO`, as set by `cargo xtask`.
//!
//! Tasks:
//! - `test`: the one test command of README.md and CI: formatting, clippy
//!   with warnings denied, and every test of the workspace. With `--target
//!   TRIPLE` or `--all-targets`: the integration tests against cross-built
//!   binaries under qemu (`qemu`).
//! - `dist`: static, size-optimised release binaries for the targets of
//!   cross/targets.rs, the one table of cross targets.
//! - `web`: builds the web UI into web/dist/ (committed, embedded in the
//!   binary) and stamps it with the hash of its sources.
//! - `bench`: restart latency, idle cost, memory, control and size, measured
//!   here, and with `--peers` beside runit, s6 and supervisord.

mod args;
mod bench;
mod dist;
mod fuzz;
mod qemu;
mod soak;
#[path = "../../cross/targets.rs"]
mod targets;
mod test;
#[cfg(test)]
mod tidy;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("dist") => dist::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("web") => web::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("usage: cargo xtask test    formatting, clippy -D warnings, all tests");
            println!("       cargo xtask test --target TRIPLE... | --all-targets | --ci");
            println!("                         the integration tests against dist's binaries, under qemu");
            println!("       cargo xtask dist [--target TRIPLE]...");
            println!("                         static release binaries in target/dist/ (default: every target");
            println!("                         of cross/targets.rs), checked under qemu and against the size budget");
            println!("       cargo xtask web     build web/ into web/dist/ with pnpm and stamp web/dist/SOURCE_HASH");
            println!("       cargo xtask bench [--smoke] [--peers] [--idle-secs N] [--rounds N] [--keep]");
            println!("                         latency, idle cost, memory, control, size -> target/bench/");
            Ok(())
        }
        Some(other) => Err(format!("unknown task {other:?} (try 'cargo xtask help')")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root, where cargo runs.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The cargo that ran us.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Starts `script` (sh, given `$1` = our pid and `$2` = `dir`) in its own
/// session: a watchdog that cleans up after `task` should xtask itself be
/// killed. A failure to start it is a warning, not an error.
pub fn spawn_watchdog(task: &str, script: &str, dir: &std::path::Path) {
    let spawned = Command::new("setsid")
        .args(["sh", "-c", script, "sh"])
        .arg(std::process::id().to_string())
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        eprintln!("xtask: {task}: warning: no watchdog (setsid: {e}): an interrupted {task} may leave processes");
    }
}

/// Runs a command, echoing it first; fails when it fails.
pub fn step(what: &str, mut command: Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what}: failed ({status})")) }
}
