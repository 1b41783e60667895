//! `cargo xtask dist [--target TRIPLE]...`: fully static, stripped,
//! size-optimised release binaries for the targets of cross/targets.rs (all of
//! them by default), with target/dist/SHA256SUMS over all of them. Two per
//! target: target/dist/<triple>/mi7soft-daemon, the default build with the
//! web UI, and mi7soft-daemon-mini, built with `--no-default-features` for
//! the smallest routers. The size budget is about the mini one.
//!
//! The recipe. rustc rebuilds std from source (`-Zbuild-std`, allowed on a
//! stable toolchain by RUSTC_BOOTSTRAP=1) with std's `optimize_for_size`
//! feature: MIPS has no prebuilt std, and for the other targets the feature
//! (and leaving out std's default `backtrace` feature) makes it smaller. zig, from the PyPI package `ziglang` in a venv under
//! target/cross-tools/, is the linker and brings its own musl, so no C cross
//! toolchain is needed; rustc calls it through a generated wrapper script
//! per target. The binary links statically against zig's musl
//! (`+crt-static`, `-Clink-self-contained=no`), as position-dependent code
//! (`-Crelocation-model=static`). The MIPS musl targets default to dynamic
//! linking and PIC, from which zig makes a static-pie that segfaults at the
//! first HashMap; either flag avoids that, and the second also saves 75 KB
//! of PIC code on MIPS. All of this reaches cargo through
//! CARGO_TARGET_<TRIPLE>_LINKER and _RUSTFLAGS (plus the table's own
//! rustflags), so the user's cargo config stays untouched.
//!
//! More cuts that cost nothing at run time (Thumb-2 on ARMv7 and LLVM's
//! machine outliner, where it is not on by default, are in the table).
//! `-Cforce-unwind-tables=no`: with `panic = "abort"` nothing unwinds, and
//! this std prints no backtrace (10-15% of the size); `--cfg
//! no_unwind_tables` then defines libunwind's entry points as stand-ins
//! (src/sys/mod.rs), so libunwind, which could find no frame anyway, and the
//! printf it logs with are not linked (34 KB on x86_64). For the same reason a
//! linker script discards `.eh_frame` and `.eh_frame_hdr`, the unwind tables
//! of zig's C code (12-13 KB), and `.pdr`, the MIPS procedure descriptors
//! that LLVM emits for debuggers and lld's `--strip-all` keeps (~90 KB on
//! MIPS; the other targets have none). And cargo's `trim-paths`: the source
//! paths in panic messages become `/rustc/<commit>/library/...` for std and
//! `<registry>/<crate>-<version>/...` for dependencies, as in rustup's
//! prebuilt std, instead of this machine's absolute paths (2-3 KB, and the
//! binary no longer depends on where the toolchain and the registry live).
//! ARCHITECTURE.md ("Binary size") has what each part of the binary costs.
//!
//! What is missing is installed first, and said: the rust-src component, the
//! zig venv, and Debian's qemu-user-static. Each binary is then checked: its
//! ELF header (right architecture, no interpreter, no dynamic section), its
//! `--version` under qemu, and, for the mini one, the size budget. The
//! binaries land in target/dist/ even when one is over budget, so it can be
//! inspected, but SHA256SUMS is written only when every check passed.
//!
//! The two variants share everything but the mi7soft-daemon crate itself:
//! cargo keeps each feature set's build apart (its own hash), so switching
//! between them recompiles nothing that is fresh and a warm dist is a
//! matter of seconds.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::targets::{Elf, SIZE_BUDGET, TARGETS, Target};
use crate::{cargo, project_root, step};

/// The zig that is known to link all the targets; pinned so that a dist
/// built later links against the same musl.
const ZIGLANG: (&str, &str) = ("ziglang", "0.17.1");
pub const BIN: &str = "mi7soft-daemon";
const RUSTFLAGS: &str = "-Ctarget-feature=+crt-static -Clink-self-contained=no -Crelocation-model=static -Cforce-unwind-tables=no \
     --cfg no_unwind_tables";
/// Added to lld's default linker script, not replacing it.
const DISCARD_SCRIPT: &str = "SECTIONS { /DISCARD/ : { *(.pdr) *(.eh_frame) *(.eh_frame_hdr) } } INSERT AFTER .text;\n";

/// The two builds of each target.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Variant {
    /// The default features: the web UI included.
    Web,
    /// `--no-default-features`: what the size budget is about.
    Mini,
}

impl Variant {
    const ALL: [Variant; 2] = [Variant::Web, Variant::Mini];

    /// Its file name in target/dist/<triple>/.
    pub fn file(self) -> &'static str {
        match self {
            Variant::Web => BIN,
            Variant::Mini => "mi7soft-daemon-mini",
        }
    }

    fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Variant::Web => &[],
            Variant::Mini => &["--no-default-features"],
        }
    }

    fn what(self) -> &'static str {
        match self {
            Variant::Web => "with the web UI",
            Variant::Mini => "without the web UI (--no-default-features)",
        }
    }
}

/// What became of one target: the sizes of its two binaries.
struct Built {
    target: &'static Target,
    web: u64,
    mini: u64,
    build_time: Duration,
}

pub fn run(args: &[String]) -> Result<(), String> {
    build_all(args)?.finish()
}

/// Binaries that were built and passed every check but the size budget,
/// which [`Dist::finish`] applies: `cargo xtask test` runs the qemu tests on
/// them first, so that a binary over budget still gets tested.
pub struct Dist {
    dist: PathBuf,
    targets: Vec<&'static Target>,
    over_budget: Vec<String>,
}

impl Dist {
    /// Fails if a mini binary is over its budget; else writes SHA256SUMS.
    pub fn finish(self) -> Result<(), String> {
        if !self.over_budget.is_empty() {
            let over = self.over_budget.join("; ");
            return Err(format!("dist: size budget (SIZE_BUDGET in cross/targets.rs) exceeded: {over}"));
        }
        write_sums(&self.dist, &self.targets)
    }
}

/// Builds both variants for the targets of `args` (`--target TRIPLE`...,
/// every target when none) into target/dist, checks them, and prints
/// their sizes.
pub fn build_all(args: &[String]) -> Result<Dist, String> {
    let targets = parse_args(args)?;
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if std::env::var_os(var).is_some() {
            return Err(format!("dist: {var} is set and would replace the per-target rustflags dist needs; unset it"));
        }
    }
    let root = project_root();
    let target_dir = target_dir();
    let tools = target_dir.join("cross-tools");
    let dist = target_dir.join("dist");

    ensure_rust_src()?;
    let zig = ensure_zig(&tools)?;
    ensure_qemu(&targets)?;

    match fs::remove_dir_all(&dist) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(format!("dist: {}: {e}", dist.display())),
        _ => {}
    }
    let started = Instant::now();
    let mut built = Vec::new();
    for &target in &targets {
        let linker = write_linker(&tools, &zig, target)?;
        let build_started = Instant::now();
        let mut sizes = [0; 2];
        for (variant, size) in Variant::ALL.into_iter().zip(&mut sizes) {
            build(&root, target, &linker, variant)?;
            let from = target_dir.join(target.triple).join("release").join(BIN);
            let to = dist.join(target.triple).join(variant.file());
            fs::create_dir_all(to.parent().unwrap()).map_err(|e| format!("dist: {}: {e}", dist.display()))?;
            fs::copy(&from, &to).map_err(|e| format!("dist: copying {}: {e}", from.display()))?;
            check_elf(&to, target)?;
            check_runs(&to, target)?;
            *size = fs::metadata(&to).map_err(|e| format!("dist: {}: {e}", to.display()))?.len();
        }
        let [web, mini] = sizes;
        built.push(Built { target, web, mini, build_time: build_started.elapsed() });
    }

    print_table(&built, started.elapsed());
    let over_budget: Vec<String> = built
        .iter()
        .filter(|b| b.mini > b.target.budget.bytes())
        .map(|b| {
            let budget = b.target.budget.bytes();
            format!(
                "{}: {} is {} bytes, over its budget of {budget} bytes",
                b.target.triple,
                Variant::Mini.file(),
                b.mini
            )
        })
        .collect();
    Ok(Dist { dist, targets, over_budget })
}

/// cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| project_root().join("target"), PathBuf::from)
}

/// Where dist puts a target's binary of the given variant.
pub fn binary(target: &Target, variant: Variant) -> PathBuf {
    target_dir().join("dist").join(target.triple).join(variant.file())
}

fn parse_args(args: &[String]) -> Result<Vec<&'static Target>, String> {
    let mut chosen: Vec<&'static Target> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let triple = match arg.strip_prefix("--target=") {
            Some(triple) => triple,
            None if arg == "--target" => args.next().ok_or("dist: --target needs a target triple")?,
            None => return Err(format!("dist: unexpected argument {arg:?}")),
        };
        let Some(target) = TARGETS.iter().find(|t| t.triple == triple) else {
            let known: Vec<&str> = TARGETS.iter().map(|t| t.triple).collect();
            return Err(format!("dist: unknown target {triple:?} (known: {})", known.join(", ")));
        };
        if !chosen.iter().any(|t| t.triple == triple) {
            chosen.push(target);
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().collect();
    }
    Ok(chosen)
}

/// `-Zbuild-std` compiles the library sources of the rust-src component.
fn ensure_rust_src() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("dist: {}: {e}", rustc.to_string_lossy()))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if sysroot.join("lib/rustlib/src/rust/library/Cargo.lock").is_file() {
        return Ok(());
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["component", "add", "rust-src"]);
    step("installing the rust-src component (rustup component add rust-src)", rustup)
}

/// Installs the pinned zig into a venv unless it is there; returns the zig
/// executable.
fn ensure_zig(tools: &Path) -> Result<PathBuf, String> {
    let venv = tools.join("venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let mut create = Command::new("python3");
        create.arg("-m").arg("venv").arg(&venv);
        step(&format!("creating a Python venv for zig in {}", venv.display()), create)
            .map_err(|e| format!("{e} (on Debian: apt-get install python3-venv)"))?;
    }
    let installed = Command::new(&python).args(["-m", "ziglang", "version"]).output();
    if !installed.is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == ZIGLANG.1) {
        let mut pip = Command::new(&python);
        pip.args(["-m", "pip", "install", "--disable-pip-version-check", &format!("{}=={}", ZIGLANG.0, ZIGLANG.1)]);
        step(&format!("installing zig {} from PyPI into {}", ZIGLANG.1, venv.display()), pip)?;
    }
    let output = Command::new(&python)
        .args(["-c", "import os, ziglang; print(os.path.dirname(ziglang.__file__))"])
        .output()
        .map_err(|e| format!("dist: {}: {e}", python.display()))?;
    let zig = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("zig");
    if !output.status.success() || !zig.is_file() {
        return Err(format!("dist: no zig executable in the ziglang package of {}", venv.display()));
    }
    Ok(zig)
}

/// Whether the host runs the target's binaries without qemu.
pub fn runs_natively(target: &Target) -> bool {
    target.triple.split('-').next() == Some(std::env::consts::ARCH)
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|file| file.is_file())
}

/// Installs Debian's qemu-user-static when a target needs a qemu that is
/// not on PATH.
pub fn ensure_qemu(targets: &[&Target]) -> Result<(), String> {
    let missing: Vec<&str> =
        targets.iter().filter(|t| !runs_natively(t) && find_in_path(t.qemu).is_none()).map(|t| t.qemu).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    if !is_root || find_in_path("apt-get").is_none() {
        return Err(format!(
            "dist: {} not found; install qemu-user-static (Debian: apt-get install qemu-user-static)",
            missing.join(", ")
        ));
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    step(&format!("{} not found: apt-get update", missing.join(", ")), update)?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "-q", "qemu-user-static"]);
    step("apt-get install qemu-user-static", install)
}

/// Writes the script rustc calls as the linker: `zig cc` for the target,
/// with zig's caches under `tools` so that `cargo clean` removes them too,
/// and the linker script that discards `.pdr` and `.eh_frame`.
fn write_linker(tools: &Path, zig: &Path, target: &Target) -> Result<PathBuf, String> {
    let cache = tools.join("zig-cache");
    let discard = tools.join("discard.ld");
    let cpu = target.zig_cpu.map(|cpu| format!(" -mcpu={cpu}")).unwrap_or_default();
    let script = format!(
        "#!/bin/sh\n\
         # Written by `cargo xtask dist` from cross/targets.rs: the linker for {triple}.\n\
         export ZIG_GLOBAL_CACHE_DIR={cache} ZIG_LOCAL_CACHE_DIR={cache}\n\
         exec {zig} cc -target {zig_target}{cpu} \"$@\" -Wl,-T,{discard}\n",
        triple = target.triple,
        cache = sh_quote(&cache),
        zig = sh_quote(zig),
        zig_target = target.zig_target,
        discard = sh_quote(&discard),
    );
    let path = tools.join(format!("{}-cc", target.triple));
    let written = fs::create_dir_all(tools)
        .and_then(|()| fs::write(&discard, DISCARD_SCRIPT))
        .and_then(|()| fs::write(&path, script))
        .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)));
    written.map_err(|e| format!("dist: {}: {e}", path.display()))?;
    Ok(path)
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// The key of a target in cargo's environment: `CARGO_TARGET_<KEY>_LINKER`.
fn env_key(triple: &str) -> String {
    triple.to_ascii_uppercase().replace(['-', '.'], "_")
}

fn build(root: &Path, target: &Target, linker: &Path, variant: Variant) -> Result<(), String> {
    let key = env_key(target.triple);
    let mut build = cargo();
    build
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .env(format!("CARGO_TARGET_{key}_LINKER"), linker)
        .env(format!("CARGO_TARGET_{key}_RUSTFLAGS"), format!("{RUSTFLAGS} {}", target.rustflags).trim_end())
        .env("CARGO_PROFILE_RELEASE_TRIM_PATHS", "all")
        .args(["build", "--release", "--package", BIN, "--bin", BIN, "--target", target.triple])
        .args(variant.cargo_args())
        .args(["-Zbuild-std=std,panic_abort", "-Zbuild-std-features=optimize_for_size", "-Ztrim-paths"]);
    let why = if target.std_from_source { "no prebuilt std exists" } else { "smaller than the prebuilt one" };
    step(&format!("building {BIN} {} for {} (std from source: {why})", variant.what(), target.triple), build)
}

/// Fails unless the file is an executable for the target's machine with
/// neither an interpreter nor a dynamic section: fully static, not static-pie.
fn check_elf(file: &Path, target: &Target) -> Result<(), String> {
    let bytes = fs::read(file).map_err(|e| format!("dist: {}: {e}", file.display()))?;
    let checked = match read_elf(&bytes) {
        Ok(elf) if elf == target.elf => return Ok(()),
        Ok(elf) => format!("is {elf:?}, expected {:?}", target.elf),
        Err(e) => e,
    };
    Err(format!("dist: {}: {}: {checked}", target.triple, file.display()))
}

/// The identity of an ELF executable, provided that it is fully static.
fn read_elf(bytes: &[u8]) -> Result<Elf, String> {
    const ET_EXEC: u16 = 2;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    let truncated = || "truncated ELF file".to_string();
    let bits = match bytes.get(4) {
        Some(1) => 32,
        Some(2) => 64,
        _ => return Err("unknown ELF class".into()),
    };
    let big_endian = bytes.get(5) == Some(&2);
    let uint = |offset: usize, size: usize| -> Result<u64, String> {
        let field = bytes.get(offset..offset + size).ok_or_else(truncated)?;
        let fold = |n: u64, b: &u8| n << 8 | u64::from(*b);
        Ok(if big_endian { field.iter().fold(0, fold) } else { field.iter().rev().fold(0, fold) })
    };
    let machine = uint(18, 2)? as u16;
    let (phoff, phentsize, phnum) = if bits == 64 {
        (uint(32, 8)?, uint(54, 2)?, uint(56, 2)?)
    } else {
        (uint(28, 4)?, uint(42, 2)?, uint(44, 2)?)
    };
    if uint(16, 2)? as u16 != ET_EXEC {
        return Err("not a position-dependent executable (ET_EXEC)".into());
    }
    for i in 0..phnum {
        match uint((phoff + i * phentsize) as usize, 4)? as u32 {
            PT_INTERP => return Err("dynamically linked: it names an interpreter".into()),
            PT_DYNAMIC => return Err("has a dynamic section".into()),
            _ => {}
        }
    }
    Ok(Elf { bits, big_endian, machine })
}

/// Runs `BIN --version`, under qemu unless the host is of the same
/// architecture.
fn check_runs(file: &Path, target: &Target) -> Result<(), String> {
    let mut command = if runs_natively(target) { Command::new(file) } else { Command::new(target.qemu) };
    if !runs_natively(target) {
        command.arg(file);
    }
    let how = if runs_natively(target) { "natively" } else { target.qemu };
    let output = command.arg("--version").output().map_err(|e| format!("dist: {}: {how}: {e}", target.triple))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !stdout.starts_with(&format!("{BIN} ")) {
        return Err(format!(
            "dist: {}: `{BIN} --version` ({how}) failed ({}): {}{}",
            target.triple,
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    eprintln!("xtask: {}: {} ({how}): {}", target.triple, file.display(), stdout.trim());
    Ok(())
}

/// Both sizes per target; the budget is the mini one's.
fn print_table(built: &[Built], total: Duration) {
    println!("{:<32} {:>10} {:>10} {:>10} {:>8}", "TARGET", "WEB", "MINI", "BUDGET", "BUILD");
    for b in built {
        let budget = b.target.budget.bytes();
        let mark = if b.mini > budget { "  over budget" } else { "" };
        let secs = format!("{}s", b.build_time.as_secs());
        println!("{:<32} {:>10} {:>10} {:>10} {:>8}{mark}", b.target.triple, b.web, b.mini, budget, secs);
    }
    println!(
        "{} target(s) in {}s; bytes, stripped; WEB: {BIN}, MINI: {} (checked against SIZE_BUDGET {:?})",
        built.len(),
        total.as_secs(),
        Variant::Mini.file(),
        SIZE_BUDGET
    );
}

/// Writes SHA256SUMS with paths relative to target/dist, so that
/// `sha256sum -c SHA256SUMS` checks it there.
fn write_sums(dist: &Path, targets: &[&Target]) -> Result<(), String> {
    let files: Vec<String> =
        targets.iter().flat_map(|t| Variant::ALL.map(|v| format!("{}/{}", t.triple, v.file()))).collect();
    let output = Command::new("sha256sum")
        .current_dir(dist)
        .args(&files)
        .output()
        .map_err(|e| format!("dist: sha256sum: {e}"))?;
    if !output.status.success() {
        return Err(format!("dist: sha256sum failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    let sums = dist.join("SHA256SUMS");
    fs::write(&sums, &output.stdout).map_err(|e| format!("dist: {}: {e}", sums.display()))?;
    eprintln!("xtask: wrote {}", sums.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 32-bit big-endian MIPS executable header followed by program
    /// headers of the given types.
    fn mips_header(program_headers: &[u32]) -> Vec<u8> {
        let mut elf = vec![0u8; 52];
        elf[..6].copy_from_slice(b"\x7fELF\x01\x02");
        elf[16..20].copy_from_slice(&[0, 2, 0, 8]); // ET_EXEC, EM_MIPS
        elf[28..32].copy_from_slice(&52u32.to_be_bytes()); // e_phoff
        elf[42..46].copy_from_slice(&[0, 32, 0, program_headers.len() as u8]); // e_phentsize, e_phnum
        for p_type in program_headers {
            elf.extend(p_type.to_be_bytes());
            elf.extend([0; 28]);
        }
        elf
    }

    #[test]
    fn a_static_executable_is_identified() {
        let elf = read_elf(&mips_header(&[1, 1, 4])).unwrap();
        assert_eq!(elf, Elf { bits: 32, big_endian: true, machine: 8 });
    }

    #[test]
    fn an_interpreter_or_a_dynamic_section_is_refused() {
        assert!(read_elf(&mips_header(&[6, 3, 1])).unwrap_err().contains("interpreter"));
        assert!(read_elf(&mips_header(&[1, 2])).unwrap_err().contains("dynamic section"));
        assert!(read_elf(&mips_header(&[1])[..54]).unwrap_err().contains("truncated"));
    }

    #[test]
    fn targets_are_chosen_by_triple_once_each() {
        let args = ["--target", "mips-unknown-linux-musl", "--target=mips-unknown-linux-musl"].map(String::from);
        let chosen = parse_args(&args).unwrap();
        assert_eq!(chosen.iter().map(|t| t.triple).collect::<Vec<_>>(), ["mips-unknown-linux-musl"]);
        assert_eq!(parse_args(&[]).unwrap().len(), TARGETS.len());
        assert!(matches!(parse_args(&["--target=sparc".into()]), Err(e) if e.contains("unknown target")));
    }

    #[test]
    fn cargo_reads_target_settings_from_uppercase_keys() {
        assert_eq!(env_key("armv7-unknown-linux-musleabihf"), "ARMV7_UNKNOWN_LINUX_MUSLEABIHF");
    }
}
