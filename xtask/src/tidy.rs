//! Tidy checks of the source tree, run as ordinary tests: conventions that a
//! reviewer would otherwise have to remember.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn sources() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["src", "tests", "xtask/src", "cross"] {
        rust_files(&root().join(dir), &mut files);
    }
    files
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    for file in sources() {
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("//!"), "{} must start with a //! comment saying what it holds", file.display());
    }
}

/// The files of the sys module (`src/sys/`), the only ones allowed `unsafe`.
fn sys_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("src/sys"), &mut files);
    files.sort();
    files
}

#[test]
fn unsafe_lives_only_in_sys() {
    let sys = root().join("src/sys");
    for file in sources() {
        if file.starts_with(&sys) || file.ends_with("xtask/src/tidy.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for pattern in ["unsafe {", "unsafe fn", "unsafe impl", "unsafe extern"] {
            assert!(!text.contains(pattern), "{}: unsafe code belongs in src/sys/", file.display());
        }
    }
}

#[test]
fn every_unsafe_block_has_a_safety_comment() {
    let files = sys_files();
    assert!(!files.is_empty(), "src/sys/ holds no .rs file: the check below would pass on nothing");
    for file in files {
        let name = file.strip_prefix(root()).unwrap_or(&file).display().to_string();
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap();
            if code.contains("unsafe {") || code.contains("unsafe { ") {
                let above = &lines[i.saturating_sub(8)..i];
                assert!(
                    above.iter().any(|l| l.contains("SAFETY:")) || line.contains("SAFETY:"),
                    "{name}:{}: unsafe block without a // SAFETY: comment",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn the_daemon_never_uses_std_process_command() {
    for file in sources().into_iter().filter(|f| f.starts_with(root().join("src"))) {
        let text = fs::read_to_string(&file).unwrap();
        assert!(!text.contains("process::Command"), "{}: the daemon spawns with sys::Spawn", file.display());
    }
}

/// What the binary without the web UI must not link, or it is over its
/// size budget again (ARCHITECTURE.md, "Binary size"): name resolution,
/// the `dyn TableLike` vtables, and float formatting (`{:.1}` and friends;
/// seconds go through `msg::seconds`). nanoserde's deserializer is banned
/// from every module, the web UI's too: besides its size, it panics on a
/// truncated input, which aborted the daemon (json.rs reads all JSON).
#[test]
fn the_daemon_avoids_what_breaks_its_size_budget() {
    let banned = [
        ("ToSocketAddrs", "name resolution (probes take an IP address or localhost)"),
        ("to_socket_addrs", "name resolution (probes take an IP address or localhost)"),
        ("dyn TableLike", "toml_edit's TableLike vtables (config reads through TableRef)"),
        (":.1}", "float formatting (msg::tenths)"),
    ];
    let banned_everywhere = [
        ("DeJson", "nanoserde's deserializer panics on bad input (json.rs reads JSON)"),
        ("deserialize_json", "nanoserde's deserializer panics on bad input (json.rs reads JSON)"),
    ];
    // The web UI's modules are not in that binary.
    let web = [root().join("src/daemon/web.rs"), root().join("src/http.rs")];
    for file in sources().into_iter().filter(|f| f.starts_with(root().join("src"))) {
        let text = fs::read_to_string(&file).unwrap();
        let in_web = web.contains(&file);
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (needle, why) in banned.iter().filter(|_| !in_web).chain(&banned_everywhere) {
                assert!(!line.contains(needle), "{}:{}: {needle}: {why}", file.display(), i + 1);
            }
        }
    }
}

/// A fuzz target that `cargo xtask fuzz --all` (and so `cargo xtask test`)
/// does not run is a parser nobody fuzzes.
#[test]
fn every_fuzz_target_is_run() {
    let manifest = fs::read_to_string(root().join("fuzz/Cargo.toml")).unwrap();
    let bins: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|bin| bin.lines().find_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"')))
        .collect();
    assert_eq!(bins, crate::fuzz::TARGETS, "fuzz/Cargo.toml's [[bin]]s and xtask/src/fuzz.rs's TARGETS differ");
}
