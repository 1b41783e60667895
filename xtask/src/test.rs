//! `cargo xtask test`: everything CI checks, in the order that fails fastest.

use crate::{cargo, step};

pub fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        // `--target TRIPLE` or `--all-targets`: the integration tests under qemu.
        return crate::qemu::run(args);
    }
    crate::web::check_fresh()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    step("cargo fmt --check", fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    step("cargo clippy -D warnings", clippy)?;
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    step("cargo test", test)?;
    crate::fuzz::test()?;
    crate::web::test()?;
    crate::soak::run(&["--secs", "20", "--services", "50"].map(String::from))?;
    crate::bench::run(&["--smoke".to_string()])?;
    // The routers: every target cross-built, the CI subset of the
    // integration tests under qemu for the targets marked `tested_in_ci`,
    // and then the size budget of every mini binary.
    let dist = crate::dist::build_all(&[])?;
    crate::qemu::test(&crate::qemu::ci_targets(), crate::qemu::Suite::Subset)?;
    dist.finish()
}
