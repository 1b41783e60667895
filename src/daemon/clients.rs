//! The control socket's connections: non-blocking reads of one bounded
//! request line, replies written as the socket accepts them, and a
//! deadline on every phase, so a slow or silent client never stalls the
//! loop or another client.

use super::*;

impl Daemon {
    // -- Clients -----------------------------------------------------------

    pub(super) fn accept(&mut self, now: Instant) {
        if self.accept_paused.is_some_and(|until| now < until) {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let (access, uid) = self.access(&stream);
                    let mut client = Client {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        phase: Phase::Reading,
                        deadline: now + REQUEST_TIMEOUT,
                        access,
                        asker: Asker::Uid(uid),
                    };
                    if self.clients.len() >= MAX_CLIENTS {
                        client.reply(Err((vec![], "too many connections".into())), now);
                    }
                    self.clients.push(client);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.accept_paused.take().is_some() {
                        self.log.info("control socket: accepting connections again");
                    }
                    return;
                }
                Err(e) => {
                    // EMFILE and friends: the connection stays queued and the
                    // listener stays readable, so polling it now would spin.
                    // Pause accepting for a second; say so once per episode.
                    if self.accept_paused.is_none() {
                        self.log.warning(format_args!(
                            "control socket: accept: {}; pausing new connections for 1s",
                            msg::io_error(&e)
                        ));
                    }
                    self.accept_paused = Some(now + ACCEPT_PAUSE);
                    return;
                }
            }
        }
    }

    /// What the peer of a new connection may do, by its credentials:
    /// root and the daemon's own user everything; members of
    /// control_group status (and everything with control_group_commands).
    /// Also the peer's uid, for the log.
    fn access(&self, stream: &UnixStream) -> (Access, Option<u32>) {
        let Ok((pid, uid, gid)) = sys::peer_credentials(stream.as_raw_fd()) else {
            return (Access::None(u32::MAX), None);
        };
        if uid == 0 || uid == sys::geteuid() {
            return (Access::Full, Some(uid));
        }
        let daemon = &self.config.daemon;
        let access = match daemon.control_group {
            Some(group) if gid == group || procfs::supplementary_groups(pid).contains(&group) => {
                if daemon.control_group_commands { Access::Full } else { Access::Status(uid) }
            }
            _ => Access::None(uid),
        };
        (access, Some(uid))
    }

    pub(super) fn serve_clients(&mut self, ready: &[bool], now: Instant) {
        let mut ready = ready.iter().copied().chain(std::iter::repeat(false));
        let mut clients = std::mem::take(&mut self.clients);
        clients.retain_mut(|client| {
            let is_ready = ready.next().unwrap_or(false);
            self.serve(client, is_ready, now)
        });
        clients.append(&mut self.clients); // any accepted meanwhile
        self.clients = clients;
    }

    /// Moves one client along; `false` when it is done and can be dropped.
    pub(super) fn serve(&mut self, client: &mut Client, ready: bool, now: Instant) -> bool {
        if let Phase::Reading = client.phase {
            if ready {
                match client.read_line() {
                    Ok(Some(line)) => {
                        let outcome = match std::str::from_utf8(&line)
                            .map_err(|_| "request is not UTF-8".to_string())
                            .and_then(|l| Request::parse(l.trim_end_matches('\r')))
                        {
                            Ok(request) => match client.access.allows(&request) {
                                Ok(()) => self.handle(request, client.asker, now),
                                Err(refusal) => Outcome::Reply(Err((vec![], refusal))),
                            },
                            Err(e) => Outcome::Reply(Err((vec![], e))),
                        };
                        match outcome {
                            Outcome::Wait(wait) => {
                                client.phase = Phase::Waiting(wait);
                                client.deadline = now + self.wait_timeout();
                            }
                            Outcome::Reply(answer) => client.reply(answer, now),
                        }
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        let Some(reason) = reason else { return false };
                        client.reply(Err((vec![], reason)), now);
                    }
                }
            } else if now >= client.deadline {
                client.reply(Err((vec![], "timed out waiting for a request line".into())), now);
            }
        }
        if let Phase::Waiting(wait) = &client.phase {
            match self.check_wait(wait) {
                Some(result) => client.reply(result.map_err(|e| (vec![], e)), now),
                None if now >= client.deadline => {
                    client.reply(Err((vec![], "timed out waiting for the processes".into())), now)
                }
                None => {}
            }
        }
        if let Phase::Writing = client.phase {
            if now >= client.deadline {
                return false;
            }
            match client.write_some() {
                // While the daemon exits, answered clients stay connected:
                // they see EOF only once the pid file is free (see `run`).
                Ok(done) => return !done || self.exit,
                Err(_) => return false,
            }
        }
        true
    }

    /// Best-effort delivery of finished replies before the daemon exits.
    pub(super) fn flush_clients(&mut self) {
        for client in &mut self.clients {
            if let Phase::Writing = client.phase {
                let _ = client.stream.set_nonblocking(false);
                let _ = client.stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = io::Write::write_all(&mut client.stream, &client.output);
            }
        }
    }
}

impl Access {
    fn allows(self, request: &Request) -> Result<(), String> {
        match (self, request) {
            (Access::Full, _) | (Access::Status(_), Request::Status { .. }) => Ok(()),
            (Access::Status(uid), _) => {
                Err(format!("permission denied: uid {uid} may only run status (set control_group_commands = true)"))
            }
            (Access::None(uid), _) => Err(format!(
                "permission denied: uid {uid} may not use this daemon (root, its own user and control_group may)"
            )),
        }
    }
}

impl Client {
    /// Reads what is available. `Ok(Some(line))` for a full request line,
    /// `Ok(None)` for not yet, `Err(Some(reason))` to refuse, `Err(None)` to
    /// drop silently (the peer hung up).
    pub(super) fn read_line(&mut self) -> Result<Option<Vec<u8>>, Option<String>> {
        let mut buf = [0u8; 1024];
        loop {
            match io::Read::read(&mut self.stream, &mut buf) {
                Ok(0) => return Err(None),
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                        self.input.truncate(end);
                        return Ok(Some(std::mem::take(&mut self.input)));
                    }
                    if self.input.len() >= MAX_LINE {
                        return Err(Some(format!("request line longer than {MAX_LINE} bytes")));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(None),
            }
        }
    }

    /// Queues the final reply (after any payload already queued).
    pub(super) fn reply(&mut self, result: Answer, now: Instant) {
        let (lines, last) = match result {
            Ok(lines) => (lines, "ok".to_string()),
            Err((lines, message)) => (lines, format!("err {}", message.replace('\n', " "))),
        };
        for line in &lines {
            // A payload line must never read as the final line: every
            // message is one line by construction, and this is the guard.
            if line == "ok" || line.starts_with("err ") {
                self.output.push(b' ');
            }
            self.output.extend_from_slice(line.replace('\n', " ").as_bytes());
            self.output.push(b'\n');
        }
        self.output.extend_from_slice(last.as_bytes());
        self.output.push(b'\n');
        self.phase = Phase::Writing;
        self.deadline = now + REPLY_TIMEOUT;
    }

    /// Writes what the socket takes; `Ok(true)` once all is written.
    pub(super) fn write_some(&mut self) -> io::Result<bool> {
        write_some(&mut self.stream, &mut self.output)
    }
}
