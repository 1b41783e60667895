//! `cargo xtask web`: builds the web UI into web/dist/, which is committed
//! and embedded in the binary, so that building the daemon never needs
//! Node. The price is that web/dist/ can fall behind web/src/; SOURCE_HASH
//! is how that is caught without Node: the build writes a hash of the
//! sources it was built from, and `cargo xtask test` recomputes it here.
//!
//! The hash is the SHA-256 of a manifest in `sha256sum`'s format, one line
//! `<sha256 of the file>  <path>\n` per source, sorted by path (relative to
//! web/, `/`-separated), where the sources are [`ROOT_SOURCES`], the
//! `vite.config.*` files and everything under web/src/. web/vite.config.ts
//! computes the same in the build; `cargo xtask web` checks that both agree.
//!
//! This module also runs the web tests for `cargo xtask test`: Vitest, and
//! the end-to-end test web/e2e/run.mjs against the real daemon in Chromium.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cargo, project_root, step};

/// The pnpm the lockfile was written with; installed with npm when missing.
const PNPM: &str = "pnpm@12.4.2";

/// Files directly in web/ that the bundle is built from.
const ROOT_SOURCES: &[&str] = &["index.html", "package.json", "pnpm-lock.yaml", "tsconfig.json"];

/// Extensions of `vite.config.*` that count as sources; the build leaves
/// other files of that prefix (bundled copies of the config) at times.
const CONFIG_EXTENSIONS: &[&str] = &["ts", "mts", "cts", "js", "mjs", "cjs"];

const STALE: &str = "web/dist is out of date with web/src: run cargo xtask web";

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("web: unexpected argument {extra:?}"));
    }
    let web = web_dir();
    ensure_pnpm()?;
    step("pnpm install --frozen-lockfile (web/)", pnpm(&web, &["install", "--frozen-lockfile"]))?;
    step("pnpm build (web/)", pnpm(&web, &["build"]))?;
    let hash = source_hash(&web)?;
    let stamp = web.join("dist/SOURCE_HASH");
    let built = fs::read_to_string(&stamp).unwrap_or_default();
    if built.trim() != hash {
        return Err(format!(
            "web: the build stamped {:?} but xtask computes {hash:?}: \
             web/vite.config.ts and xtask/src/web.rs must hash the same files the same way",
            built.trim()
        ));
    }
    fs::write(&stamp, format!("{hash}\n")).map_err(|e| format!("web: {}: {e}", stamp.display()))?;
    eprintln!("xtask: web/dist/ built from sources {hash}");
    Ok(())
}

/// The `cargo xtask test` stage that needs no Node: fails when web/dist/
/// was not built from the current sources.
pub fn check_fresh() -> Result<(), String> {
    let web = web_dir();
    eprintln!("xtask: checking that web/dist/ was built from the current web sources");
    let stamp = web.join("dist/SOURCE_HASH");
    let built = fs::read_to_string(&stamp).map_err(|e| format!("{STALE} ({}: {e})", stamp.display()))?;
    let hash = source_hash(&web)?;
    if built.trim() != hash {
        return Err(format!("{STALE} (sources hash to {hash}, web/dist was built from {})", built.trim()));
    }
    Ok(())
}

/// The `cargo xtask test` stage that needs Node: Vitest, then the
/// end-to-end test against a freshly built debug binary.
pub fn test() -> Result<(), String> {
    let web = web_dir();
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Err("web tests: node not found (they need Node.js 20.19 or newer, and npm)".into());
    }
    ensure_pnpm()?;
    step("pnpm install --frozen-lockfile (web/)", pnpm(&web, &["install", "--frozen-lockfile"]))?;
    step("pnpm test (web/: vitest)", pnpm(&web, &["test"]))?;
    let mut build = cargo();
    build.current_dir(project_root()).args(["build", "--package", "mi7soft-daemon", "--bin", "mi7soft-daemon"]);
    step("cargo build (for the end-to-end test)", build)?;
    let mut e2e = Command::new("node");
    e2e.current_dir(&web).arg("e2e/run.mjs");
    step("node e2e/run.mjs (web/: the page against the daemon, in Chromium)", e2e)
}

fn web_dir() -> PathBuf {
    project_root().join("web")
}

fn pnpm(web: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("pnpm");
    command.current_dir(web).args(args);
    command
}

fn ensure_pnpm() -> Result<(), String> {
    if Command::new("pnpm").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    let mut install = Command::new("npm");
    install.args(["install", "--global", PNPM]);
    step(&format!("npm install --global {PNPM} (pnpm is missing)"), install)
}

/// The hash of the web UI's sources, as hex: see the module's doc.
pub fn source_hash(web: &Path) -> Result<String, String> {
    let mut files: Vec<String> = ROOT_SOURCES.iter().map(|s| s.to_string()).collect();
    let entries = fs::read_dir(web).map_err(|e| format!("web: {}: {e}", web.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.strip_prefix("vite.config.").is_some_and(|ext| CONFIG_EXTENSIONS.contains(&ext)) {
            files.push(name);
        }
    }
    walk(web, Path::new("src"), &mut files)?;
    files.sort();
    let mut manifest = String::new();
    for file in &files {
        let path = web.join(file);
        let bytes = fs::read(&path).map_err(|e| format!("web: {}: {e}", path.display()))?;
        manifest.push_str(&format!("{}  {file}\n", hex(&sha256(&bytes))));
    }
    Ok(hex(&sha256(manifest.as_bytes())))
}

/// Adds the files under `web/dir`, as `/`-separated paths relative to web/.
fn walk(web: &Path, dir: &Path, files: &mut Vec<String>) -> Result<(), String> {
    let full = web.join(dir);
    let entries = fs::read_dir(&full).map_err(|e| format!("web: {}: {e}", full.display()))?;
    for entry in entries.flatten() {
        let relative = dir.join(entry.file_name());
        if web.join(&relative).is_dir() {
            walk(web, &relative, files)?;
        } else {
            let parts: Vec<_> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            files.push(parts.join("/"));
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[path = "../../src/sha256.rs"]
mod sha256;
use sha256::sha256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        let cases: [(&[u8], &str); 3] = [
            (b"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(hex(&sha256(input)), expected, "sha256({:?})", String::from_utf8_lossy(input));
        }
        assert_eq!(
            hex(&sha256(&vec![b'a'; 1_000_000])),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    /// A throwaway web/ with the given files.
    fn web_tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-web-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        dir
    }

    const TREE: &[(&str, &str)] = &[
        ("index.html", "<html>"),
        ("package.json", "{}"),
        ("pnpm-lock.yaml", "lockfileVersion: '9.0'"),
        ("tsconfig.json", "{}"),
        ("vite.config.ts", "export default {}"),
        ("src/main.tsx", "main"),
        ("src/parts/a.ts", "a"),
    ];

    #[test]
    fn the_source_hash_is_sha256sum_of_the_sorted_sources() {
        let dir = web_tree("manifest", TREE);
        let line = |path: &str, text: &str| format!("{}  {path}\n", hex(&sha256(text.as_bytes())));
        let manifest = [
            line("index.html", "<html>"),
            line("package.json", "{}"),
            line("pnpm-lock.yaml", "lockfileVersion: '9.0'"),
            line("src/main.tsx", "main"),
            line("src/parts/a.ts", "a"),
            line("tsconfig.json", "{}"),
            line("vite.config.ts", "export default {}"),
        ]
        .concat();
        assert_eq!(source_hash(&dir).unwrap(), hex(&sha256(manifest.as_bytes())));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_source_hash_sees_sources_and_ignores_the_rest() {
        let dir = web_tree("changes", TREE);
        let before = source_hash(&dir).unwrap();
        for ignored in ["dist/index.html", "test/a.test.ts", "e2e/run.mjs", "vite.config.ts.timestamp-1.mjs"] {
            fs::create_dir_all(dir.join(ignored).parent().unwrap()).unwrap();
            fs::write(dir.join(ignored), "x").unwrap();
        }
        assert_eq!(source_hash(&dir).unwrap(), before);
        fs::write(dir.join("src/parts/a.ts"), "b").unwrap();
        assert_ne!(source_hash(&dir).unwrap(), before);
        fs::write(dir.join("src/parts/a.ts"), "a").unwrap();
        fs::write(dir.join("src/new.css"), "").unwrap();
        assert_ne!(source_hash(&dir).unwrap(), before);
        fs::remove_dir_all(dir).unwrap();
    }
}
