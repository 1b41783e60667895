//! A `[[processes]]` table: one service's definition, checked key by key.
//!
//! Here are what to run and as whom (`command`, `user`, `group`, `umask`,
//! `nice`, `limits`, `environment`), the restart and stop `policy`, output
//! capture, readiness (`ready`) and `health_check` probes, and the checks
//! across services: unique names and `depends_on` without unknown names or
//! cycles.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::checker::{Checker, TableRef, did_you_mean, line_col, type_name, value_span};
use super::{HealthCheck, Policy, Probe, Ready, Restart, ServiceDef, valid_name};
use toml_edit::{Item, Value};

const SERVICE_KEYS: &[&str] = &[
    "name",
    "command",
    "args",
    "working_directory",
    "auto_restart",
    "restart",
    "success_exit_codes",
    "min_uptime",
    "backoff_initial",
    "backoff_max",
    "start_limit_burst",
    "start_limit_interval",
    "stop_signal",
    "stop_timeout",
    "max_instances",
    "autostart",
    "environment",
    "clear_environment",
    "user",
    "group",
    "umask",
    "nice",
    "limits",
    "log_file",
    "log_timestamps",
    "log_max_size",
    "log_keep",
    "syslog",
    "ready",
    "ready_timeout",
    "watchdog_sec",
    "pid_file",
    "depends_on",
    "restart_dependents",
    "health_check",
    "type",
];

/// Where a service's table puts the things later checks point at.
pub(super) struct Spans {
    name: Option<std::ops::Range<usize>>,
    depends_on: Option<std::ops::Range<usize>>,
}

/// One file's definitions, each with where its table puts what later
/// checks point at; checked across every file by [`check_across`].
pub(super) type Defs = Vec<(ServiceDef, Spans)>;

impl Checker<'_> {
    /// The `processes` array of tables of one file. Names and `depends_on`
    /// are checked later, across the main file and every included one.
    pub(super) fn services(&mut self, entry: Option<(&toml_edit::Key, &Item)>) -> Defs {
        let Some((key, item)) = entry else {
            return Vec::new();
        };
        let Some(array) = item.as_array_of_tables() else {
            // `processes = [{...}]` is also an array of tables to a user.
            if let Some(Value::Array(values)) = item.as_value() {
                let mut defs = Vec::new();
                for value in values.iter() {
                    match value.as_inline_table() {
                        Some(t) => defs.extend(self.service(t.into(), value.span())),
                        None => self.wrong_type(value.span(), "", "processes", "a table", value.type_name()),
                    }
                }
                return defs;
            }
            self.wrong_type(key.span(), "", "processes", "[[processes]] tables", type_name(item));
            return Vec::new();
        };
        array.iter().filter_map(|t| self.service(t.into(), t.span())).collect()
    }

    /// One `[[processes]]` entry; `None` when it is unusable (problems reported).
    fn service(&mut self, table: TableRef<'_>, span: Option<std::ops::Range<usize>>) -> Option<(ServiceDef, Spans)> {
        let name = self.string(table, "name", "[[processes]] ");
        let cx = match &name {
            Some(name) => format!("[[processes]] {name:?}: "),
            None => "[[processes]] ".to_string(),
        };
        let name_span = table.get_key_value("name").and_then(|(_, v)| v.span()).or_else(|| span.clone());
        if name.is_none() && !table.contains_key("name") {
            self.report(span.clone(), format!("{cx}missing required key \"name\""));
        }
        if let Some(name) = &name {
            if !valid_name(name) {
                self.report(name_span.clone(), format!("{cx}invalid name: use only letters, digits, '.', '_' and '-'"));
            }
        }
        self.unknown_keys(table, SERVICE_KEYS, &cx);
        let command = self.string(table, "command", &cx);
        if command.is_none() && !table.contains_key("command") {
            self.report(name_span.clone(), format!("{cx}missing required key \"command\""));
        }
        if let Some(command) = &command {
            if command.is_empty() {
                self.report(value_span(table, "command"), format!("{cx}command: must not be empty"));
            }
        }
        let args = self.strings(table, "args", &cx).unwrap_or_default();
        let working_directory = self.path(table, "working_directory", &cx);
        let mut policy = self.policy(table, &cx);
        policy.oneshot = self.oneshot(table, &cx);
        if policy.oneshot && !table.contains_key("restart") && !table.contains_key("auto_restart") {
            // A task that succeeded is done; only a failure runs it again.
            policy.restart = Restart::OnFailure;
        }
        policy.ready = self.ready(table, &cx);
        policy.ready_timeout =
            self.seconds(table, "ready_timeout", &cx, Duration::from_millis(1)).unwrap_or(policy.ready_timeout);
        policy.watchdog = self.seconds(table, "watchdog_sec", &cx, Duration::from_millis(1));
        policy.pid_file = self.path(table, "pid_file", &cx);
        let depends_on = self.strings(table, "depends_on", &cx).unwrap_or_default();
        let restart_dependents = self.boolean(table, "restart_dependents", &cx).unwrap_or(false);
        let health_check = self.health_check(table, &cx);
        let max_instances = self.integer(table, "max_instances", &cx, 1, 1000).unwrap_or(1) as u32;
        let autostart = self.boolean(table, "autostart", &cx).unwrap_or(true);
        let environment = self.environment(table, &cx);
        let clear_environment = self.boolean(table, "clear_environment", &cx).unwrap_or(false);
        let (user, credentials) = self.identity(table, &cx);
        let umask = self.string(table, "umask", &cx).and_then(|text| match u32::from_str_radix(&text, 8) {
            Ok(mask) if mask <= 0o777 && !text.is_empty() => Some(mask),
            _ => {
                self.report(
                    value_span(table, "umask"),
                    format!("{cx}umask: {text:?} is not an octal mask such as \"022\""),
                );
                None
            }
        });
        let nice = self.integer(table, "nice", &cx, -20, 19).map(|n| n as i32);
        let limits = self.limits(table, &cx);
        let log_file = self.path(table, "log_file", &cx);
        let log_timestamps = self.boolean(table, "log_timestamps", &cx).unwrap_or(true);
        let max_size = self.integer(table, "log_max_size", &cx, 1024, 1 << 40).map_or(1 << 20, |n| n as u64);
        let keep = self.integer(table, "log_keep", &cx, 0, 100).map_or(2, |n| n as u32);
        let syslog = self.boolean(table, "syslog", &cx).unwrap_or(false);
        let capture = match (log_file, syslog) {
            (Some(_), true) => {
                self.report(
                    value_span(table, "syslog"),
                    format!("{cx}syslog: give log_file or syslog = true, not both"),
                );
                None
            }
            (Some(path), false) => {
                // A user other than the daemon's that can change the log's
                // directory can swap the log for a link the daemon would
                // write through; logs are written by the daemon, so refuse.
                let service_user = credentials.clone().filter(|c| c.uid != crate::sys::geteuid());
                if let Some(user) = &service_user {
                    let dir = path.parent().unwrap_or(Path::new("."));
                    if let Ok(Some(why)) = crate::files::unsafe_dir_for(dir, user) {
                        self.report(
                            value_span(table, "log_file"),
                            format!("{cx}log_file: {why}, who could replace the log with a link; give it a directory only the daemon can write"),
                        );
                    }
                }
                Some(crate::capture::Sink::File { path, max_size, keep, service_user })
            }
            (None, true) => Some(crate::capture::Sink::Syslog),
            (None, false) => None,
        };
        let command = command.map(|c| self.program(c));
        Some((
            ServiceDef {
                name: name?,
                command: command?,
                args,
                working_directory,
                policy: Rc::new(policy),
                max_instances,
                autostart,
                environment,
                clear_environment,
                user,
                credentials,
                umask,
                nice,
                limits,
                capture,
                log_timestamps,
                depends_on,
                restart_dependents,
                health_check,
            },
            Spans { name: name_span.clone(), depends_on: value_span(table, "depends_on").or(name_span) },
        ))
    }

    /// `type = "simple" | "oneshot"`: whether the service is a task that
    /// runs to completion. The keys about a process that stays up make no
    /// sense for one and are refused, each by name.
    fn oneshot(&mut self, table: TableRef<'_>, cx: &str) -> bool {
        let oneshot = match self.string(table, "type", cx).as_deref() {
            None | Some("simple") => false,
            Some("oneshot") => true,
            Some(other) => {
                let hint = did_you_mean(other, &["simple", "oneshot"]);
                self.report(
                    value_span(table, "type"),
                    format!("{cx}type: {other:?} is not one of \"simple\", \"oneshot\"{hint}"),
                );
                false
            }
        };
        if oneshot {
            let more_than_one = table.get("max_instances").and_then(Item::as_integer).is_some_and(|n| n > 1);
            for key in ["ready", "watchdog_sec", "health_check", "max_instances"] {
                if table.contains_key(key) && (key != "max_instances" || more_than_one) {
                    let span = table.get_key_value(key).and_then(|(k, _)| k.span());
                    self.report(
                        span,
                        format!("{cx}{key}: not allowed with type = \"oneshot\" (a task that runs to completion)"),
                    );
                }
            }
        }
        oneshot
    }

    fn policy(&mut self, table: TableRef<'_>, cx: &str) -> Policy {
        let default = Policy::default();
        let auto_restart = self.boolean(table, "auto_restart", cx);
        let restart = match self.string(table, "restart", cx).as_deref() {
            None => None,
            Some("always") => Some(Restart::Always),
            Some("on-failure") => Some(Restart::OnFailure),
            Some("never") => Some(Restart::Never),
            Some(other) => {
                let hint = did_you_mean(other, &["always", "on-failure", "never"]);
                self.report(
                    value_span(table, "restart"),
                    format!("{cx}restart: {other:?} is not one of \"always\", \"on-failure\", \"never\"{hint}"),
                );
                None
            }
        };
        let restart = match (auto_restart, restart) {
            (Some(true), Some(Restart::Never)) | (Some(false), Some(Restart::Always | Restart::OnFailure)) => {
                self.report(
                    value_span(table, "auto_restart"),
                    format!("{cx}auto_restart and restart disagree; keep one (restart is the newer key)"),
                );
                default.restart
            }
            (_, Some(restart)) => restart,
            (Some(true), None) => Restart::Always,
            (Some(false), None) => Restart::Never,
            (None, None) => default.restart,
        };
        let success_exit_codes =
            match self.value(table, "success_exit_codes", cx, "an array of exit codes", |i| i.as_array().is_some()) {
                Some(item) => {
                    let mut codes = Vec::new();
                    for value in item.as_array().into_iter().flatten() {
                        match value.as_integer() {
                            Some(code @ 0..=255) => codes.push(code as i32),
                            _ => self.report(
                                value.span(),
                                format!(
                                    "{cx}success_exit_codes: expected exit codes from 0 to 255, found {}",
                                    value.as_integer().map_or_else(|| value.type_name().to_string(), |n| n.to_string())
                                ),
                            ),
                        }
                    }
                    codes
                }
                None => default.success_exit_codes,
            };
        let min_uptime = self.seconds(table, "min_uptime", cx, Duration::ZERO).unwrap_or(default.min_uptime);
        let backoff_initial =
            self.seconds(table, "backoff_initial", cx, Duration::from_millis(1)).unwrap_or(default.backoff_initial);
        let mut backoff_max =
            self.seconds(table, "backoff_max", cx, Duration::from_millis(1)).unwrap_or(default.backoff_max);
        if backoff_max < backoff_initial {
            if table.contains_key("backoff_max") {
                self.report(
                    value_span(table, "backoff_max"),
                    format!("{cx}backoff_max: must not be less than backoff_initial"),
                );
            }
            backoff_max = backoff_initial;
        }
        let start_limit_burst =
            self.integer(table, "start_limit_burst", cx, 0, 10_000).map_or(default.start_limit_burst, |n| n as u32);
        let start_limit_interval =
            self.seconds(table, "start_limit_interval", cx, Duration::ZERO).unwrap_or(default.start_limit_interval);
        let stop_timeout = self.seconds(table, "stop_timeout", cx, Duration::ZERO).unwrap_or(default.stop_timeout);
        let stop_signal = match table.get("stop_signal") {
            None => default.stop_signal,
            Some(item) => {
                let name = item.as_str().map(str::to_string).or_else(|| item.as_integer().map(|n| n.to_string()));
                match name.as_deref().and_then(crate::sys::signal_number) {
                    Some(signal) => signal,
                    None => {
                        self.report(
                            item.span(),
                            format!(
                                "{cx}stop_signal: expected a signal name such as \"TERM\" or a number from 1 to 64"
                            ),
                        );
                        default.stop_signal
                    }
                }
            }
        };
        Policy {
            restart,
            success_exit_codes,
            min_uptime,
            backoff_initial,
            backoff_max,
            start_limit_burst,
            start_limit_interval,
            stop_signal,
            stop_timeout,
            ..default
        }
    }

    /// `ready = "uptime" | "notify" | { tcp = "…" } | { command = […] }`.
    fn ready(&mut self, table: TableRef<'_>, cx: &str) -> Ready {
        let Some(item) = table.get("ready") else { return Ready::Uptime };
        match item.as_str() {
            Some("uptime") => return Ready::Uptime,
            Some("notify") => return Ready::Notify,
            _ => {}
        }
        if let Some(probe) = TableRef::of(item).and_then(|t| self.probe(t, item.span(), &format!("{cx}ready: "), &[])) {
            return Ready::Probe(probe);
        }
        if TableRef::of(item).is_none() {
            self.report(
                item.span(),
                format!("{cx}ready: expected \"uptime\", \"notify\", {{ tcp = \"IP:PORT\" }} or {{ command = [...] }}"),
            );
        }
        Ready::Uptime
    }

    /// `{ tcp = "IP:PORT" }` or `{ command = ["prog", "arg"] }`, plus the
    /// `extra` keys the caller reads itself.
    fn probe(
        &mut self,
        t: TableRef<'_>,
        span: Option<std::ops::Range<usize>>,
        cx: &str,
        extra: &[&str],
    ) -> Option<Probe> {
        let mut known = vec!["tcp", "command"];
        known.extend_from_slice(extra);
        self.unknown_keys(t, &known, cx);
        match (t.contains_key("tcp"), t.contains_key("command")) {
            (true, true) | (false, false) => {
                self.report(span, format!("{cx}give exactly one of tcp = \"IP:PORT\" or command = [...]"));
                None
            }
            (true, false) => {
                let address = self.string(t, "tcp", cx)?;
                match tcp_address(&address) {
                    Ok(addr) => Some(Probe::Tcp(addr)),
                    Err(why) => {
                        self.report(value_span(t, "tcp"), format!("{cx}tcp: {address:?} {why}"));
                        None
                    }
                }
            }
            (false, true) => {
                let mut argv = self.strings(t, "command", cx)?;
                if argv.is_empty() || argv[0].is_empty() {
                    self.report(value_span(t, "command"), format!("{cx}command: must name a program"));
                    return None;
                }
                argv[0] = self.program(std::mem::take(&mut argv[0]));
                Some(Probe::Command(argv))
            }
        }
    }

    /// `health_check = { command = [...] | tcp = "...", interval = 30, timeout = 5, retries = 3 }`.
    fn health_check(&mut self, table: TableRef<'_>, cx: &str) -> Option<HealthCheck> {
        let item = table.get("health_check")?;
        let Some(t) = TableRef::of(item) else {
            self.report(
                item.span(),
                format!("{cx}health_check: expected a table such as {{ tcp = \"127.0.0.1:80\" }}"),
            );
            return None;
        };
        let cx = format!("{cx}health_check: ");
        let probe = self.probe(t, item.span(), &cx, &["interval", "timeout", "retries"])?;
        let interval = self.seconds(t, "interval", &cx, Duration::from_millis(10)).unwrap_or(Duration::from_secs(30));
        let timeout = self.seconds(t, "timeout", &cx, Duration::from_millis(10)).unwrap_or(Duration::from_secs(5));
        let retries = self.integer(t, "retries", &cx, 1, 1000).map_or(3, |n| n as u32);
        Some(HealthCheck { probe, interval, timeout, retries })
    }

    /// `user` and `group`, resolved through /etc/passwd and /etc/group.
    fn identity(
        &mut self,
        table: TableRef<'_>,
        cx: &str,
    ) -> (Option<crate::users::User>, Option<crate::sys::Credentials>) {
        let user_key = self.string(table, "user", cx);
        let group_key = self.string(table, "group", cx);
        if user_key.is_none() && group_key.is_none() {
            return (None, None);
        }
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let (passwd, groups) = (read("/etc/passwd"), read("/etc/group"));
        let user = match &user_key {
            Some(key) => match crate::users::find_user(&passwd, key) {
                Some(user) => Some(user),
                None => {
                    self.report(value_span(table, "user"), format!("{cx}user: no user {key:?} in /etc/passwd"));
                    return (None, None);
                }
            },
            None => None,
        };
        let gid = match &group_key {
            Some(key) => match crate::users::find_group(&groups, key) {
                Some(gid) => Some(gid),
                None => {
                    self.report(value_span(table, "group"), format!("{cx}group: no group {key:?} in /etc/group"));
                    return (None, None);
                }
            },
            None => None,
        };
        let euid = crate::sys::geteuid();
        let (uid, gid, supplementary) = match &user {
            Some(u) => {
                let gid = gid.unwrap_or(u.gid);
                (u.uid, gid, crate::users::groups_of(&groups, &u.name, gid))
            }
            None => (euid, gid.unwrap_or(0), vec![gid.unwrap_or(0)]),
        };
        if euid != 0 {
            let key = if user.is_some() { "user" } else { "group" };
            self.report(
                value_span(table, key),
                format!("{cx}{key}: switching identity needs the daemon to run as root (it runs as uid {euid})"),
            );
            return (None, None);
        }
        (user, Some(crate::sys::Credentials { uid, gid, groups: supplementary }))
    }

    /// `limits = { nofile = 4096, core = 0, as = "unlimited" }`.
    fn limits(&mut self, table: TableRef<'_>, cx: &str) -> Vec<(String, crate::sys::Limit)> {
        let Some((key, item)) = table.get_key_value("limits") else { return Vec::new() };
        let Some(limits) = TableRef::of(item) else {
            let expected = "a table such as { nofile = 4096 }";
            self.wrong_type(item.span().or(key.span()), cx, "limits", expected, type_name(item));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, value) in limits.iter() {
            let span = value.span().or_else(|| limits.get_key_value(name).and_then(|(k, _)| k.span()));
            let Some(resource) = crate::sys::limit_resource(name) else {
                let hint = did_you_mean(name, &crate::sys::LIMIT_NAMES);
                let key_span = limits.get_key_value(name).and_then(|(k, _)| k.span());
                self.report(
                    key_span,
                    format!("{cx}limits: unknown limit {name:?}{hint}; known: {}", crate::sys::LIMIT_NAMES.join(", ")),
                );
                continue;
            };
            let value = match (value.as_integer(), value.as_str()) {
                (Some(n), _) if n >= 0 => Some(n as u64),
                (_, Some("unlimited" | "infinity")) => None,
                _ => {
                    self.report(span, format!("{cx}limits.{name}: expected a non-negative integer or \"unlimited\""));
                    continue;
                }
            };
            out.push((name.to_string(), crate::sys::Limit { resource, value }));
        }
        out
    }

    fn environment(&mut self, table: TableRef<'_>, cx: &str) -> Vec<(String, String)> {
        let Some((key, item)) = table.get_key_value("environment") else {
            return Vec::new();
        };
        let Some(env) = TableRef::of(item) else {
            self.wrong_type(item.span().or(key.span()), cx, "environment", "a table of strings", type_name(item));
            return Vec::new();
        };
        let mut vars = Vec::new();
        for (name, value) in env.iter() {
            let span = value.span().or_else(|| env.get_key_value(name).and_then(|(k, _)| k.span()));
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                self.report(span, format!("{cx}environment: invalid variable name {name:?}"));
                continue;
            }
            match value.as_str() {
                Some(v) if !v.contains('\0') => vars.push((name.to_string(), v.to_string())),
                Some(_) => self.report(span, format!("{cx}environment.{name}: contains a NUL byte")),
                None => {
                    self.report(span, format!("{cx}environment.{name}: expected a string, found {}", type_name(value)))
                }
            }
        }
        vars
    }
}

/// The checks across files: every name is used once (a second use is
/// reported where it is, naming the first), and every `depends_on` names a
/// service and closes no cycle. `files[i]` holds the definitions of the
/// file `checkers[i]` checks, and `names[i]` is that file's name in
/// messages.
pub(super) fn check_across(checkers: &mut [Checker<'_>], names: &[String], files: Vec<Defs>) -> Vec<Rc<ServiceDef>> {
    let mut defs = Vec::new();
    let mut spans = Vec::new();
    let mut origins = Vec::new();
    for (origin, file) in files.into_iter().enumerate() {
        for (def, span) in file {
            defs.push(def);
            spans.push(span);
            origins.push(origin);
        }
    }
    // Names seen so far, sorted, with the definition that used each first.
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut reports = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        match seen.binary_search_by(|(name, _)| (*name).cmp(def.name.as_str())) {
            Ok(at) => {
                let first = seen[at].1;
                let checker = &checkers[origins[first]];
                let (line, column) = spans[first].name.as_ref().map_or((1, 1), |s| line_col(checker.text, s.start));
                let place = format!("{}:{line}:{column}", names[origins[first]]);
                reports.push((
                    origins[i],
                    spans[i].name.clone(),
                    format!(
                        "[[processes]] \"{}\": duplicate name (names must be unique): also defined at {place}",
                        def.name
                    ),
                ));
            }
            Err(at) => seen.insert(at, (def.name.as_str(), i)),
        }
    }
    for (i, message) in dependency_problems(&defs) {
        reports.push((origins[i], spans[i].depends_on.clone(), message));
    }
    for (origin, span, message) in reports {
        checkers[origin].report(span, message);
    }
    defs.into_iter().map(Rc::new).collect()
}

/// Every `depends_on` names a service, and they form no cycle: the
/// problems, each with the index of the definition it is about.
fn dependency_problems(defs: &[ServiceDef]) -> Vec<(usize, String)> {
    let mut problems = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        for dep in &def.depends_on {
            if !defs.iter().any(|d| &d.name == dep) {
                let hint = did_you_mean(dep, &defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>());
                problems.push((i, format!("[[processes]] {:?}: depends_on: unknown process {dep:?}{hint}", def.name)));
            }
        }
    }
    // Depth-first search; a node met again while on the path closes a cycle.
    fn visit<'a>(
        name: &'a str,
        defs: &'a [ServiceDef],
        path: &mut Vec<&'a str>,
        done: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = path.iter().position(|n| *n == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name);
            return Some(cycle);
        }
        if done.contains(&name) {
            return None;
        }
        path.push(name);
        let def = defs.iter().find(|d| d.name == name)?;
        for dep in &def.depends_on {
            if let Some(cycle) = visit(dep, defs, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(name);
        None
    }
    let mut done = Vec::new();
    for (i, def) in defs.iter().enumerate() {
        let mut path = Vec::new();
        if let Some(cycle) = visit(&def.name, defs, &mut path, &mut done) {
            problems.push((
                i,
                format!("[[processes]] \"{}\": depends_on: dependency cycle {}", def.name, cycle.join(" -> ")),
            ));
            break;
        }
    }
    problems
}

/// The address of a `tcp` probe: an IP address and a port, or `localhost`
/// and a port (127.0.0.1). Host names are not resolved: that would link
/// the C library's DNS resolver (28 KiB, see "Binary size" in
/// ARCHITECTURE.md) for a probe that is nearly always local, and make a
/// config check depend on the network. The error completes a message
/// about the text.
fn tcp_address(text: &str) -> Result<std::net::SocketAddr, &'static str> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix("localhost:").and_then(|port| port.parse().ok()) {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err(match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            "names a host: give an IP address or localhost, such as \"127.0.0.1:5432\" (host names are not resolved)"
        }
        _ => "is not IP:PORT (such as \"127.0.0.1:5432\", \"[::1]:5432\" or \"localhost:5432\")",
    })
}
