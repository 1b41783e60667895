//! The daemon-wide tables: `[daemon]` (where the daemon keeps its pid
//! file, socket, state and log, and who may command it) and `[web]` (the web
//! UI's server). `load_daemon_settings` runs the first alone, so a client
//! finds the daemon even while a service's table is half edited.

use super::checker::{Checker, TableRef, type_name, value_span};
use super::{DaemonSettings, WebSettings};
use toml_edit::{Item, Table};

pub(super) const DAEMON_KEYS: &[&str] = &[
    "pid_file",
    "log_file",
    "check_interval",
    "control_socket",
    "state_file",
    "subreaper",
    "control_group",
    "control_group_commands",
    "include",
];
const WEB_KEYS: &[&str] = &["listen", "token", "token_file"];

impl Checker<'_> {
    pub(super) fn daemon(&mut self, entry: Option<(&toml_edit::Key, &Item)>) -> DaemonSettings {
        let empty = Table::new();
        let table = match entry {
            None => TableRef::from(&empty),
            Some((key, item)) => match TableRef::of(item) {
                Some(t) => t,
                None => {
                    self.wrong_type(key.span(), "", "[daemon]", "a table", type_name(item));
                    TableRef::from(&empty)
                }
            },
        };
        let cx = "[daemon] ";
        self.unknown_keys(table, DAEMON_KEYS, cx);
        let pid_file = self.path(table, "pid_file", cx).unwrap_or_else(|| self.base.join("mi7soft-daemon.pid"));
        let log_file = self.path(table, "log_file", cx);
        let check_interval = self.integer(table, "check_interval", cx, 1, 86_400).unwrap_or(3) as u32;
        let control_socket = self.path(table, "control_socket", cx).unwrap_or_else(|| pid_file.with_extension("sock"));
        let state_file = self.path(table, "state_file", cx).unwrap_or_else(|| pid_file.with_extension("state"));
        let subreaper = self.boolean(table, "subreaper", cx).unwrap_or(false);
        let control_group = self.string(table, "control_group", cx).and_then(|name| {
            let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
            let gid = crate::users::find_group(&groups, &name);
            if gid.is_none() {
                self.report(
                    value_span(table, "control_group"),
                    format!("{cx}control_group: no group {name:?} in /etc/group"),
                );
            }
            gid
        });
        let control_group_commands = self.boolean(table, "control_group_commands", cx).unwrap_or(false);
        if control_group_commands && control_group.is_none() && !table.contains_key("control_group") {
            self.report(
                value_span(table, "control_group_commands"),
                format!("{cx}control_group_commands: needs control_group"),
            );
        }
        let include = self.include(table, cx);
        DaemonSettings {
            include,
            pid_file,
            log_file,
            check_interval,
            control_socket,
            state_file,
            subreaper,
            control_group,
            control_group_commands,
        }
    }

    /// `include = "conf.d/*.toml"` or an array of such globs; wildcards
    /// (`*`, `?`, `[...]`) only in the last component. The files are read
    /// by `config::parse`, never by a client.
    fn include(&mut self, table: TableRef<'_>, cx: &str) -> Vec<String> {
        let patterns = match table.get("include") {
            None => return Vec::new(),
            Some(item) if item.is_str() => self.string(table, "include", cx).into_iter().collect(),
            Some(_) => self.strings(table, "include", cx).unwrap_or_default(),
        };
        for pattern in &patterns {
            let (dir, _) = super::include::split(pattern);
            if pattern.is_empty() || pattern.ends_with('/') || super::include::has_wildcard(dir) {
                self.report(
                    value_span(table, "include"),
                    format!("{cx}include: {pattern:?}: give files such as \"conf.d/*.toml\" (wildcards only in the file name)"),
                );
                return Vec::new();
            }
        }
        patterns
    }

    /// The `[web]` table.
    pub(super) fn web(&mut self, entry: Option<(&toml_edit::Key, &Item)>) -> Option<WebSettings> {
        let (key, item) = entry?;
        let Some(table) = TableRef::of(item) else {
            self.wrong_type(key.span(), "", "[web]", "a table", type_name(item));
            return None;
        };
        let cx = "[web] ";
        if !cfg!(feature = "web") {
            self.report(
                key.span(),
                format!("{cx}this mi7soft-daemon was built without the web UI (cargo feature \"web\")"),
            );
            return None;
        }
        self.unknown_keys(table, WEB_KEYS, cx);
        let Some(listen_text) = self.string(table, "listen", cx) else {
            if !table.contains_key("listen") {
                self.report(key.span(), format!("{cx}missing required key \"listen\" (such as \"127.0.0.1:9001\")"));
            }
            return None;
        };
        let Ok(listen) = listen_text.parse::<std::net::SocketAddr>() else {
            self.report(
                value_span(table, "listen"),
                format!("{cx}listen: {listen_text:?} is not IP:PORT (such as \"127.0.0.1:9001\")"),
            );
            return None;
        };
        let token = match (self.string(table, "token", cx), self.path(table, "token_file", cx)) {
            (Some(_), Some(_)) => {
                self.report(value_span(table, "token_file"), format!("{cx}give token or token_file, not both"));
                return None;
            }
            (Some(token), None) => Some(token),
            (None, Some(file)) => match std::fs::read_to_string(&file) {
                Ok(text) => Some(text.trim().to_string()),
                Err(e) => {
                    self.report(
                        value_span(table, "token_file"),
                        format!("{cx}token_file: {}", crate::msg::path_error(&file, &e)),
                    );
                    return None;
                }
            },
            (None, None) => None,
        };
        if token.as_deref().is_some_and(|t| t.chars().count() < super::MIN_TOKEN) {
            let key = if table.contains_key("token") { "token" } else { "token_file" };
            let message = format!("{cx}{key}: a token must have at least {} characters", super::GOOD_TOKEN);
            self.report(value_span(table, key), message);
            return None;
        }
        if token.is_none() && !listen.ip().is_loopback() {
            self.report(
                value_span(table, "listen"),
                format!("{cx}listen: refusing to serve {listen} without a token; set token or token_file, or listen on 127.0.0.1"),
            );
            return None;
        }
        Some(WebSettings { listen, token })
    }
}
