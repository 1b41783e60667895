//! The control socket spoken to directly: bad requests, oversized lines and
//! silent clients must neither crash the daemon nor hold up other clients.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use crate::support::*;

fn daemon(dir: &TestDir) -> (Daemon, i32) {
    dir.script("svc.sh", "exec sleep 1000");
    dir.config("[[processes]]\nname = \"svc\"\ncommand = \"./svc.sh\"\n");
    let daemon = Daemon::start(dir);
    let pid = daemon.wait_running("svc", None);
    (daemon, pid)
}

fn connect(dir: &TestDir) -> UnixStream {
    let stream = UnixStream::connect(dir.join("d.sock")).unwrap();
    stream.set_read_timeout(Some(secs(10))).unwrap();
    stream
}

/// Sends `request` raw and reads until the daemon closes the connection. A
/// reset after the reply counts as the end; a timeout fails the test.
fn exchange(dir: &TestDir, request: &[u8]) -> String {
    let mut stream = connect(dir);
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("no reply to {:?}: {e}", String::from_utf8_lossy(&request[..request.len().min(60)])),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// The daemon still runs, answers, and its service kept its process.
fn assert_still_serving(daemon: &mut Daemon, pid: i32) {
    assert!(daemon.is_up(), "the daemon died; log: {}", daemon.log());
    assert_eq!(daemon.process("svc").pid, Some(pid));
}

#[test]
fn garbage_requests_get_an_err_line() {
    let dir = TestDir::new("cs-garbage");
    let (mut daemon, pid) = daemon(&dir);
    let requests: &[&[u8]] = &[b"hello world\n", b"\n", b"stop a/b\n", b"status \xff\xfe\n", b"stop svc extra\n"];
    for request in requests {
        let reply = exchange(&dir, request);
        assert!(reply.starts_with("err "), "{:?} got {reply:?}", String::from_utf8_lossy(request));
        assert_eq!(reply.lines().count(), 1, "{reply:?}");
    }
    assert_still_serving(&mut daemon, pid);
    // The same socket still speaks the protocol.
    let reply = exchange(&dir, b"status svc\n");
    assert!(reply.ends_with("ok\n"), "{reply:?}");
}

#[test]
fn an_overlong_line_is_refused_or_dropped() {
    let dir = TestDir::new("cs-long");
    let (mut daemon, pid) = daemon(&dir);
    let reply = exchange(&dir, &[b'x'; 5000]);
    assert!(reply.is_empty() || reply.starts_with("err "), "{reply:?}");
    // With a newline past the limit, too.
    let mut long = b"status ".to_vec();
    long.extend_from_slice(&[b'a'; 5000]);
    long.push(b'\n');
    let reply = exchange(&dir, &long);
    assert!(reply.is_empty() || reply.starts_with("err "), "{reply:?}");
    assert_still_serving(&mut daemon, pid);
}

#[test]
fn a_silent_client_does_not_block_others() {
    let dir = TestDir::new("cs-silent");
    let (mut daemon, pid) = daemon(&dir);
    let silent = connect(&dir);
    let half = {
        // One that sent half a request and stopped.
        let mut s = connect(&dir);
        s.write_all(b"sta").unwrap();
        s
    };
    for _ in 0..3 {
        let started = Instant::now();
        let out = run_bounded(&dir.path, &["-c", "daemon.toml", "status"], secs(10));
        assert_eq!(out.code, 0, "{out:?}");
        assert!(started.elapsed() < secs(2), "status took {:?} while a client was silent", started.elapsed());
    }
    let reply = exchange(&dir, b"status\n");
    assert!(reply.ends_with("ok\n"), "{reply:?}");
    drop((silent, half));
    assert_still_serving(&mut daemon, pid);
}

#[test]
fn the_socket_is_private_to_its_owner() {
    let dir = TestDir::new("cs-mode");
    let (mut daemon, pid) = daemon(&dir);
    let meta = std::fs::metadata(dir.join("d.sock")).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "mode {:o}", meta.permissions().mode() & 0o777);
    assert_still_serving(&mut daemon, pid);
}

#[test]
fn a_client_that_hangs_up_early_does_no_harm() {
    let dir = TestDir::new("cs-hangup");
    let (mut daemon, pid) = daemon(&dir);
    for request in [&b""[..], b"status", b"status\n", b"shutdown --stop"] {
        let mut stream = connect(&dir);
        stream.write_all(request).unwrap();
        drop(stream);
    }
    let out = daemon.cli(&["status"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_still_serving(&mut daemon, pid);
}
