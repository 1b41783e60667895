//! The `mi7soft-daemon` binary: everything lives in the library (see
//! `src/lib.rs`); this only turns its answer into the exit status.

#![deny(unsafe_code)]

fn main() {
    std::process::exit(mi7soft_daemon::cli::main());
}
