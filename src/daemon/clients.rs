//! The control socket's connections: non-blocking reads of one bounded
//! request line, replies written as the socket accepts them, and a
//! deadline on every phase, so a slow or silent client never stalls the
//! loop or another client.
//!
//! A client that sends nothing is dropped after `FIRST_BYTE_TIMEOUT`.
//! Connections of other users are limited (`MAX_CLIENTS` in all,
//! `MAX_PER_UID` each, refused with an `err` line beyond, and logged once
//! per episode); root and the daemon's own user are always served, so no
//! status-only member of control_group can keep them from `stop` or
//! `shutdown`.

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
                    let (uid, access) = self.access(&stream);
                    let mut client = Client {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        phase: Phase::Reading,
                        deadline: now + FIRST_BYTE_TIMEOUT,
                        access,
                        asker: Asker::Uid((uid != u32::MAX).then_some(uid)),
                        uid,
                    };
                    if let Some(limit) = self.over_limit(uid) {
                        client.reply(Err((vec![], format!("too many connections ({limit})"))), now);
                        if !std::mem::replace(&mut self.clients_crowded, true) {
                            self.log.warning(format_args!(
                                "control socket: {limit}; refusing more (root and uid {} are still served)",
                                sys::geteuid()
                            ));
                        }
                    } else if !privileged(uid) {
                        self.clients_crowded = false;
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

    /// The peer's uid, and what it may do, by its credentials: root and
    /// the daemon's own user everything; members of control_group status
    /// (and everything with control_group_commands).
    fn access(&self, stream: &UnixStream) -> (u32, Access) {
        let Ok((pid, uid, gid)) = sys::peer_credentials(stream.as_raw_fd()) else {
            return (u32::MAX, Access::None(u32::MAX));
        };
        if privileged(uid) {
            return (uid, Access::Full);
        }
        let daemon = &self.config.daemon;
        let access = match daemon.control_group {
            Some(group) if gid == group || procfs::supplementary_groups(pid).contains(&group) => {
                if daemon.control_group_commands { Access::Full } else { Access::Status(uid) }
            }
            _ => Access::None(uid),
        };
        (uid, access)
    }

    /// Which limit a new connection of `uid` is over, if any. Root's and
    /// the daemon's user's connections count against none.
    fn over_limit(&self, uid: u32) -> Option<String> {
        if privileged(uid) {
            return None;
        }
        let others = self.clients.iter().filter(|c| !privileged(c.uid));
        let (n_others, n_same) = others.fold((0, 0), |(n, same), c| (n + 1, same + usize::from(c.uid == uid)));
        if n_same >= MAX_PER_UID {
            Some(format!("uid {uid} has {MAX_PER_UID} connections open"))
        } else if n_others >= MAX_CLIENTS {
            Some(format!("{MAX_CLIENTS} connections of other users are open"))
        } else {
            None
        }
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
                let silent = client.input.is_empty();
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
                    // Its first bytes: now it has the time a request line may take.
                    Ok(None) if silent && !client.input.is_empty() => client.deadline = now + REQUEST_TIMEOUT,
                    Ok(None) => {}
                    Err(reason) => {
                        let Some(reason) = reason else { return false };
                        client.reply(Err((vec![], reason)), now);
                    }
                }
            } else if now >= client.deadline {
                if client.input.is_empty() {
                    return false; // it never said anything: no answer either
                }
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

/// Root and the daemon's own user: always served, whoever else connects.
fn privileged(uid: u32) -> bool {
    uid == 0 || uid == sys::geteuid()
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
