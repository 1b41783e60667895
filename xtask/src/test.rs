//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use crate::{cargo, step};

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("test: unexpected argument {extra:?}"));
    }
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("cargo fmt --check", fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    step("cargo clippy -D warnings", clippy)?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    step("cargo test", test)
}
