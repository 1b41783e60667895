//! Embeds the web UI's built files (web/dist, each with a gzip copy) into
//! the binary as a table the daemon serves from; an empty table when the
//! `web` feature is off or the page was never built.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("assets.rs");
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("web").join("dist");
    println!("cargo:rerun-if-changed=web/dist");
    let mut files = Vec::new();
    if std::env::var_os("CARGO_FEATURE_WEB").is_some() {
        collect(&dist, &mut files);
    }
    files.sort();
    let mut code = String::from(
        "/// (path, content type, gzip bytes, ETag)\npub static ASSETS: &[(&str, &str, &[u8], &str)] = &[\n",
    );
    for file in files {
        let gz = PathBuf::from(format!("{}.gz", file.display()));
        let rel = file.strip_prefix(&dist).unwrap().to_string_lossy().replace('\\', "/");
        let bytes = std::fs::read(&gz).unwrap();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in &bytes {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let _ = writeln!(
            code,
            "    (\"/{rel}\", \"{}\", include_bytes!({:?}), \"\\\"{hash:016x}\\\"\"),",
            content_type(&rel),
            gz.display()
        );
        println!("cargo:rerun-if-changed={}", gz.display());
    }
    code.push_str("];\n");
    std::fs::write(out, code).unwrap();
}

/// Every file under `dir` that has a `.gz` sibling.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_none_or(|e| e != "gz") && PathBuf::from(format!("{}.gz", path.display())).exists()
        {
            files.push(path);
        }
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        _ => "application/octet-stream",
    }
}
