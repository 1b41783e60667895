//! `cargo xtask`: the project's tasks, written in Rust so they run wherever
//! cargo does (the rust-analyzer pattern). One module per task; cargo is
//! found through `$CARGO`, as set by `cargo xtask`.
//!
//! Tasks:
//! - `test`: the one test command of README.md and CI: formatting, clippy
//!   with warnings denied, and every test of the workspace.

mod test;
#[cfg(test)]
mod tidy;

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::run(&args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            println!("usage: cargo xtask test    formatting, clippy -D warnings, all tests");
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

/// The cargo that ran us.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, echoing it first; fails when it fails.
pub fn step(what: &str, mut command: Command) -> Result<(), String> {
    eprintln!("xtask: {what}");
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what}: failed ({status})")) }
}
