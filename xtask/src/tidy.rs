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
/// nanoserde's deserializer, the `dyn TableLike` vtables, and float
/// formatting (`{:.1}` and friends; seconds go through `msg::seconds`).
#[test]
fn the_daemon_avoids_what_breaks_its_size_budget() {
    let banned = [
        ("ToSocketAddrs", "name resolution (probes take an IP address or localhost)"),
        ("to_socket_addrs", "name resolution (probes take an IP address or localhost)"),
        ("DeJson", "nanoserde's deserializer (status::Document::from_json reads the status)"),
        ("dyn TableLike", "toml_edit's TableLike vtables (config reads through TableRef)"),
        (":.1}", "float formatting (msg::tenths)"),
    ];
    // The web UI's modules are not in that binary.
    let web = [root().join("src/daemon/web.rs"), root().join("src/http.rs")];
    for file in sources().into_iter().filter(|f| f.starts_with(root().join("src")) && !web.contains(f)) {
        let text = fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (needle, why) in banned {
                assert!(!line.contains(needle), "{}:{}: {needle}: {why}", file.display(), i + 1);
            }
        }
    }
}
