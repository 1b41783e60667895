//! Integration tests: the real mi7soft-daemon binary, real processes, real
//! sockets and files, one private directory per test (see `support`).

mod support;

mod access;
mod adoption;
mod capture;
mod commands;
mod config;
mod control_socket;
mod daemon_process;
mod daemonize;
mod dependencies;
mod environment;
mod faults;
mod fuzz_regressions;
mod include;
mod init_scripts;
mod lifecycle;
mod oneshot;
mod policy;
mod prometheus;
mod readiness;
mod real_daemons;
mod reload;
mod reload_precise;
mod resume;
mod stopping;
mod web_api;
