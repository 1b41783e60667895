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

/// SHA-256 (FIPS 180-4). Forty lines here keep xtask free of dependencies.
fn sha256(data: &[u8]) -> [u8; 32] {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
        0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
        0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
        0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
        0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
        0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
        0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];
    let mut state: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
        for (k, w) in K.iter().zip(w) {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let choice = (e & f) ^ (!e & g);
            let t1 = h.wrapping_add(s1).wrapping_add(choice).wrapping_add(*k).wrapping_add(w);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let majority = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(majority);
            (h, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *word = word.wrapping_add(add);
        }
    }
    let mut digest = [0u8; 32];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

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
