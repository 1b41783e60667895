//! mi7soft-daemon: a process supervisor for routers, boards and containers
//! whose services outlive it.
//!
//! The crate is one binary. `main` hands over to [`cli`], which either runs
//! the supervisor ([`daemon`]) or talks to a running one over its control
//! socket ([`control`]). ARCHITECTURE.md has the map; in short:
//!
//! - [`config`] turns daemon.toml into checked plain data;
//! - [`service`] is the pure per-instance state machine;
//! - [`daemon`] is the poll loop that performs the machine's actions;
//! - [`state`] is the state file that lets a new daemon adopt services;
//! - [`sys`] is the only module that calls libc directly;
//! - [`msg`] and [`status`] are everything the user reads.

#![deny(unsafe_code)]

mod capture;
mod cli;
mod config;
mod control;
mod daemon;
mod holder;
#[cfg(feature = "web")]
mod http;
mod msg;
mod pidfile;
mod procfs;
mod service;
mod state;
mod status;
#[allow(unsafe_code)]
mod sys;
mod users;

fn main() {
    std::process::exit(cli::main());
}
