//! `GET /metrics` checked by Prometheus itself: `promtool check metrics` on
//! what a daemon with a few services says, and a real Prometheus (Debian's
//! package) scraping two supervisors, one of them with a token, whose
//! query API must then show every target up, every service, and a restart
//! counter that rose after a SIGKILL. Everything talks to 127.0.0.1 only.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use crate::support::*;
use crate::web_api::start;

const TOKEN: &str = "metrics-token-for-tests";
const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";

/// A GET on 127.0.0.1:`port` with `headers` (whole lines): the status and
/// the whole response (head and body).
fn get(port: u16, target: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(secs(10))).unwrap();
    let headers: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let request = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Three services: one running, one that keeps failing, one not started.
fn services() -> String {
    sh_service("web", "exec sleep 1000", "")
        + &sh_service("flaky", "exit 3", "backoff_initial = 0.1\nbackoff_max = 0.2")
        + &sh_service("spare", "exec sleep 1000", "autostart = false")
}

#[test]
fn promtool_accepts_the_exposition_and_a_token_is_required() {
    let dir = TestDir::new("metrics-format");
    dir.write("token", TOKEN);
    let (daemon, port) = start(&dir, &services(), "token_file = \"token\"");
    daemon.wait_running("web", None);
    wait_until(secs(10), "flaky restarted", || daemon.process("flaky").restarts > 0);
    let bearer = format!("Authorization: Bearer {TOKEN}");

    for headers in [vec![], vec!["Authorization: Bearer wrong-token-of-some-length"], vec!["Authorization: Basic eDp5"]]
    {
        let (status, response) = get(port, "/metrics", &headers);
        assert_eq!(status, 401, "{headers:?}: {response}");
        assert!(!response.contains("mi7soft_"), "{response}");
    }

    let (status, response) = get(port, "/metrics", &[&bearer]);
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("\r\nContent-Type: text/plain; version=0.0.4\r\n"), "{response}");
    let metrics = body(&response);
    for line in [
        "mi7soft_service_up{name=\"web\",instance=\"0\"} 1",
        "mi7soft_service_up{name=\"spare\",instance=\"0\"} 0",
        "mi7soft_service_state{name=\"spare\",instance=\"0\",state=\"stopped\"} 1",
        "mi7soft_services 3",
        "mi7soft_build_info{version=\"0.1.0\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from\n{metrics}");
    }
    let memory = metrics.lines().find_map(|l| l.strip_prefix("mi7soft_service_resident_memory_bytes{name=\"web\""));
    assert!(memory.is_some_and(|m| !m.ends_with(" 0")), "{metrics}");
    assert!(metrics.contains("mi7soft_service_last_exit_code{name=\"flaky\",instance=\"0\"} 3"), "{metrics}");

    // The status document carries the same figures, null when nothing runs.
    let (_, status) = get(port, "/api/status", &[&bearer]);
    assert!(status.contains(r#""name":"spare","instance":0,"state":"stopped""#), "{status}");
    assert!(status.contains(r#""memory_bytes":null,"cpu_secs":null"#), "{status}");
    let web = body(&status).split(r#""name":"web""#).nth(1).unwrap_or_default();
    let web = web.split('}').next().unwrap_or_default();
    assert!(!web.contains(r#""memory_bytes":null"#) && web.contains(r#""cpu_secs":"#), "{status}");

    if !std::path::Path::new(PROMTOOL).exists() {
        panic!("{PROMTOOL} is missing: install Debian's prometheus package (.ci/run does)");
    }
    let file = dir.write("metrics.txt", metrics);
    let check = Command::new(PROMTOOL).args(["check", "metrics"]).stdin(std::fs::File::open(file).unwrap()).output();
    let check = check.unwrap();
    assert!(
        check.status.success() && check.stdout.is_empty() && check.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        check.status,
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Prometheus, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(dir: &TestDir, config: &str) -> Prometheus {
        let config = dir.write("prometheus.yml", config);
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let port = free_port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(&dir.path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{PROMETHEUS}: {e}: install Debian's prometheus package (.ci/run does)"));
        Prometheus { child, port }
    }

    /// The values of an instant query's result, as Prometheus prints them.
    fn query(&self, query: &str) -> Vec<String> {
        let encoded: String = query
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let (status, response) = get(self.port, &format!("/api/v1/query?query={encoded}"), &[]);
        if status != 200 {
            return vec![];
        }
        // Each sample ends `"value":[TIME,"VALUE"]`.
        body(&response)
            .split("\"value\":[")
            .skip(1)
            .filter_map(|s| s.split_once(",\"")?.1.split_once('"').map(|(v, _)| v.to_string()))
            .collect()
    }
}

#[test]
fn a_real_prometheus_scrapes_two_supervisors_one_with_a_token() {
    let dir = TestDir::new("metrics-prom");
    let (open_dir, token_dir) = (TestDir::new("metrics-open"), TestDir::new("metrics-tok"));
    token_dir.write("token", TOKEN);
    let (open, open_port) = start(&open_dir, &sh_service("a", "exec sleep 1000", ""), "");
    let (token, token_port) = start(
        &token_dir,
        &(sh_service("b", "exec sleep 1000", "") + &sh_service("c", "exec sleep 1000", "")),
        "token_file = \"token\"",
    );
    // The token target comes from a file_sd file, as docs/fleet.md says.
    dir.write("routers.json", &format!(r#"[{{"targets":["127.0.0.1:{token_port}"],"labels":{{"site":"lab"}}}}]"#));
    dir.write("token", TOKEN);
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: open\n    static_configs:\n      - targets: ['127.0.0.1:{open_port}']\n\
         \x20 - job_name: routers\n    authorization:\n      credentials_file: {}\n\
         \x20   file_sd_configs:\n      - files: ['{}']\n",
        dir.join("token").display(),
        dir.join("routers.json").display()
    );
    let prometheus = Prometheus::start(&dir, &config);
    let a_pid = open.wait_running("a", None);
    token.wait_running("b", None);
    token.wait_running("c", None);

    wait_until(secs(60), "Prometheus scrapes both supervisors", || {
        prometheus.query("up{job=\"open\"}") == ["1"] && prometheus.query("up{job=\"routers\",site=\"lab\"}") == ["1"]
    });
    for (job, name) in [("open", "a"), ("routers", "b"), ("routers", "c")] {
        let query = format!("mi7soft_service_up{{job=\"{job}\",name=\"{name}\"}}");
        wait_until(secs(30), &query, || prometheus.query(&query) == ["1"]);
    }
    assert_eq!(prometheus.query("count(mi7soft_service_up)"), ["3"]);
    assert_eq!(prometheus.query("mi7soft_service_restarts_total{name=\"a\"}"), ["0"]);

    kill(a_pid, "KILL");
    open.wait_running("a", Some(a_pid));
    wait_until(secs(30), "Prometheus sees a's restart counter rise", || {
        prometheus.query("mi7soft_service_restarts_total{name=\"a\"}") == ["1"]
    });
    drop(prometheus);
    let log = dir.read("prometheus.log");
    assert!(!log.contains("level=error"), "{log}");
}
