//! Integration tests: the real mi7soft-daemon binary, real processes, real
//! sockets and files, one private directory per test (see `support`).

mod support;

mod adoption;
mod commands;
mod config;
mod control_socket;
mod daemon_process;
mod daemonize;
mod init_scripts;
mod lifecycle;
mod policy;
mod reload;
mod reload_precise;
mod stopping;
