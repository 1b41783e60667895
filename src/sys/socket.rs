//! Sockets beyond what std offers: the non-blocking TCP connect of tcp
//! probes, the credentials of a control client (SO_PEERCRED) and of an
//! sd_notify datagram's sender (SO_PASSCRED, SCM_CREDENTIALS), and
//! descriptors passed over a Unix socket (SCM_RIGHTS), which is how capture
//! pipes reach the fd holder and come back.
//!
//! Most of it is control messages: each buffer is sized with `CMSG_SPACE`
//! and walked only with the `CMSG_*` accessors, and every descriptor a
//! message carries is taken into an `OwnedFd` at once, so one that nobody
//! asked for is closed, never leaked.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::{Pid, cerr};

// ---------------------------------------------------------------------------
// Passing descriptors between processes (the fd holder).

/// Sends `data` and `fds` (SCM_RIGHTS) in one message on a Unix socket.
pub fn send_fds(socket: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let space = cmsg_space(fds.len());
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: a zeroed msghdr is valid; we point it at `iov` and `control`,
    // which outlive the sendmsg call, and fill the one cmsg header through
    // the CMSG_* accessors within the buffer CMSG_SPACE sized for it.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cmsg).cast::<RawFd>(), fds.len());
        }
        let mut sent = 0;
        while sent == 0 {
            let n = libc::sendmsg(socket, &msg, libc::MSG_NOSIGNAL);
            match cerr(n) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(n) => sent = n as usize,
            }
        }
        if sent < data.len() {
            // Only the first piece carries the descriptors; send the rest.
            let mut rest = &data[sent..];
            while !rest.is_empty() {
                let n = cerr(libc::send(socket, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL))?;
                rest = &rest[n as usize..];
            }
        }
    }
    Ok(())
}

/// Receives exactly `buf.len()` bytes and any descriptors sent with them
/// (close-on-exec). `Ok(None)` at end of stream.
pub fn recv_fds(socket: RawFd, buf: &mut [u8], max_fds: usize) -> io::Result<Option<Vec<OwnedFd>>> {
    let space = cmsg_space(max_fds);
    let mut control = vec![0u8; space];
    let mut fds = Vec::new();
    let mut got = 0;
    while got < buf.len() {
        let mut iov = libc::iovec { iov_base: buf[got..].as_mut_ptr().cast(), iov_len: buf.len() - got };
        // SAFETY: as in send_fds; the kernel writes at most msg_controllen
        // bytes of control data, and every SCM_RIGHTS descriptor it hands us
        // is new and ours to own.
        let n = unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space as _;
            let n = libc::recvmsg(socket, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n > 0 {
                let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
                while !cmsg.is_null() {
                    if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                        let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                        let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                        for i in 0..bytes / std::mem::size_of::<RawFd>() {
                            fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                        }
                    }
                    cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
                }
            }
            n
        };
        match cerr(n) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n as usize,
        }
    }
    Ok(Some(fds))
}

fn cmsg_space(n_fds: usize) -> usize {
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((n_fds.max(1) * std::mem::size_of::<RawFd>()) as u32) as usize }
}

// ---------------------------------------------------------------------------
// Probes and the notify socket.

/// Starts a non-blocking TCP connect; the socket turns writable when it
/// finished, and [`socket_error`] then says how.
pub fn tcp_connect(addr: &std::net::SocketAddr) -> io::Result<OwnedFd> {
    let (family, storage, len) = socket_addr(addr);
    // SAFETY: socket takes no pointers; connect reads `len` bytes of
    // `storage`, a sockaddr_storage that socket_addr filled in for `family`.
    unsafe {
        let fd = cerr(libc::socket(family, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0))?;
        let fd = OwnedFd::from_raw_fd(fd);
        let ret = libc::connect(fd.as_raw_fd(), (&storage as *const libc::sockaddr_storage).cast(), len);
        if ret < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(fd)
    }
}

fn socket_addr(addr: &std::net::SocketAddr) -> (libc::c_int, libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is valid; we write the variant
    // for the address family into it through a properly aligned cast.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        match addr {
            std::net::SocketAddr::V4(v4) => {
                let sin = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>();
                (*sin).sin_family = libc::AF_INET as libc::sa_family_t;
                (*sin).sin_port = v4.port().to_be();
                (*sin).sin_addr = libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) };
                (libc::AF_INET, storage, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t)
            }
            std::net::SocketAddr::V6(v6) => {
                let sin6 = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>();
                (*sin6).sin6_family = libc::AF_INET6 as libc::sa_family_t;
                (*sin6).sin6_port = v6.port().to_be();
                (*sin6).sin6_addr = libc::in6_addr { s6_addr: v6.ip().octets() };
                (*sin6).sin6_scope_id = v6.scope_id();
                (libc::AF_INET6, storage, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t)
            }
        }
    }
}

/// The result of a finished non-blocking connect (SO_ERROR).
pub fn socket_error(fd: RawFd) -> io::Result<()> {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `error`.
    cerr(unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut error as *mut libc::c_int).cast(), &mut len)
    })?;
    if error == 0 { Ok(()) } else { Err(io::Error::from_raw_os_error(error)) }
}

/// Asks the kernel to attach the sender's credentials to every datagram.
pub fn set_passcred(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `on`.
    cerr(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Who sent a datagram, as the kernel says (SCM_CREDENTIALS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sender {
    pub pid: Pid,
    pub uid: u32,
}

/// Receives one datagram and its sender (SCM_CREDENTIALS, with SO_PASSCRED
/// set); `Ok(None)` when nothing is waiting.
pub fn recv_with_sender(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Option<Sender>)>> {
    let space = creds_cmsg_space();
    let mut control = vec![0u8; space];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: as in recv_fds: the kernel fills at most msg_controllen bytes;
    // an SCM_CREDENTIALS payload is a ucred, read unaligned.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
        }
        let mut sender = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_CREDENTIALS {
                let cred = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::ucred>());
                sender = Some(Sender { pid: cred.pid, uid: cred.uid });
            } else if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                // Descriptors nobody asked for: close them.
                let bytes = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    drop(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok(Some((n as usize, sender)))
    }
}

fn creds_cmsg_space() -> usize {
    // Room for credentials plus a few stray descriptors.
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe {
        libc::CMSG_SPACE(std::mem::size_of::<libc::ucred>() as u32) as usize
            + libc::CMSG_SPACE((8 * std::mem::size_of::<RawFd>()) as u32) as usize
    }
}

// ---------------------------------------------------------------------------
// Control clients.

/// The credentials (pid, uid, gid) of the process at the other end of a
/// Unix stream socket (SO_PEERCRED).
pub fn peer_credentials(fd: RawFd) -> io::Result<(Pid, libc::uid_t, libc::gid_t)> {
    // SAFETY: an all-zero ucred is valid; getsockopt writes at most `len`
    // bytes into it.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        cerr(libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        ))?;
        Ok((cred.pid, cred.uid, cred.gid))
    }
}

/// Whether the Unix socket `fd` is bound to `path` (by its own name, as
/// getsockname reports it, and a socket file still at that path).
pub fn bound_to(fd: RawFd, path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    // SAFETY: an all-zero sockaddr_un is valid; getsockname writes at most
    // `len` bytes into it.
    let name = unsafe {
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::getsockname(fd, (&raw mut addr).cast(), &mut len) < 0 || addr.sun_family != libc::AF_UNIX as _ {
            return false;
        }
        let n = (len as usize).saturating_sub(std::mem::size_of::<libc::sa_family_t>()).min(addr.sun_path.len());
        addr.sun_path[..n].iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect::<Vec<u8>>()
    };
    name == path.as_os_str().as_bytes() && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}
