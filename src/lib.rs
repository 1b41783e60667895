//! mi7soft-daemon: a process supervisor for routers, boards and containers
//! whose services outlive it.
//!
//! The crate is a library with one binary (`src/main.rs`) on top: `main`
//! hands over to [`cli`], which either runs the supervisor (`daemon`) or
//! talks to a running one over its control socket ([`control`]). It is a
//! library only so that the fuzz targets (fuzz/) can reach the parsers of
//! outside input: [`config`], [`state`], [`control`], [`http`],
//! [`sdnotify`], the client's reader of the daemon's answer ([`status`])
//! and the JSON reader both it and the web API's request bodies use
//! ([`json`]); nothing else is public. ARCHITECTURE.md has the map; in
//! short:
//!
//! - `config` turns daemon.toml into checked plain data;
//! - `service` is the pure per-instance state machine;
//! - `daemon` is the poll loop that performs the machine's actions;
//! - `state` is the state file that lets a new daemon adopt services;
//! - `sys` is the only module that calls libc directly;
//! - `msg` and `status` are everything the user reads.

#![deny(unsafe_code)]

mod capture;
pub mod cli;
pub mod config;
pub mod control;
mod daemon;
mod files;
mod holder;
#[cfg(feature = "web")]
pub mod http;
#[cfg(feature = "web")]
mod inflate;
pub mod json;
#[cfg(feature = "web")]
mod metrics;
mod msg;
mod oneshot;
mod pidfile;
mod procfs;
pub mod sdnotify;
mod service;
#[cfg(feature = "web")]
mod session;
#[cfg(feature = "web")]
mod sha256;
pub mod state;
pub mod status;
#[allow(unsafe_code)]
mod sys;
mod users;
