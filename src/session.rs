//! Web UI sessions that need no memory: a session id is its own proof.
//!
//! An id is `EXPIRY.NONCE.MAC`: the Unix time it stops being valid and a
//! random nonce, both in hex, and HMAC-SHA256 over them under a per-host
//! key. Any daemon holding the key can check an id, so a session survives
//! a restart or an upgrade of the daemon, as the services do; nothing is
//! kept per session.
//!
//! The key lives in a file next to the state file (`STATE.web-key`, mode
//! 0600, 64 hex digits), created on first use with `O_EXCL` and opened like
//! every file of the daemon's, never through a link (see `files.rs`).
//!
//! Signing out rotates the key: a new key file replaces the old one (a
//! temporary file renamed over it), which ends every session, in every
//! browser, at once and for good, surviving restarts too. A revocation list
//! was the alternative: it ends only the one session, but must be kept on
//! disk and pruned, or a restart revives the ids it held. A router's page
//! has one administrator or two, and "sign out" ending all their sessions is
//! the safer surprise.

use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How long a session lasts from sign-in.
pub const LIFETIME_SECS: u64 = 24 * 3600;

pub struct Keys {
    key: [u8; 32],
    /// Where the key is kept; `None`: only in memory (the file failed).
    path: Option<PathBuf>,
}

/// The key file of a state file: `STATE.web-key`.
pub fn key_path(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_os_string();
    name.push(".web-key");
    PathBuf::from(name)
}

impl Keys {
    /// Reads the key at `path`, creating it when there is none. On an
    /// error the caller may fall back to [`Keys::in_memory`].
    pub fn load(path: &Path) -> io::Result<Keys> {
        let euid = crate::sys::geteuid();
        match crate::files::open(std::fs::OpenOptions::new().read(true), path, &[euid]) {
            Ok(mut file) => {
                if file.metadata()?.mode() & 0o077 != 0 {
                    return Err(io::Error::other("is readable by others than its owner (must be mode 0600)"));
                }
                let mut text = String::new();
                file.read_to_string(&mut text)?;
                let key = unhex(text.trim()).ok_or_else(|| io::Error::other("does not hold 64 hex digits"))?;
                Ok(Keys { key, path: Some(path.to_path_buf()) })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = random_key()?;
                write_new(path, &key)?;
                Ok(Keys { key, path: Some(path.to_path_buf()) })
            }
            Err(e) => Err(e),
        }
    }

    /// A key that lives as long as this daemon.
    pub fn in_memory() -> io::Result<Keys> {
        Ok(Keys { key: random_key()?, path: None })
    }

    /// A new session id, valid until `now + LIFETIME_SECS`.
    pub fn issue(&self, now: u64) -> io::Result<String> {
        let mut nonce = [0u8; 12];
        crate::sys::random_bytes(&mut nonce)?;
        let body = format!("{:x}.{}", now + LIFETIME_SECS, hex(&nonce));
        let mac = hex(&hmac(&self.key, body.as_bytes()));
        Ok(format!("{body}.{mac}"))
    }

    /// Whether `id` was issued under the current key and has not expired.
    pub fn verify(&self, id: &str, now: u64) -> bool {
        let Some((body, mac)) = id.rsplit_once('.') else { return false };
        let expected = hex(&hmac(&self.key, body.as_bytes()));
        let genuine = constant_time_eq(mac.as_bytes(), expected.as_bytes());
        let expiry = body.split('.').next().and_then(|e| u64::from_str_radix(e, 16).ok());
        genuine && expiry.is_some_and(|expiry| now < expiry)
    }

    /// Ends every session: a new key, written over the old file.
    pub fn rotate(&mut self) -> io::Result<()> {
        let key = random_key()?;
        // Whatever happens to the file, this daemon stops honouring the old key.
        self.key = key;
        let Some(path) = &self.path else { return Ok(()) };
        let mut temporary = path.as_os_str().to_os_string();
        temporary.push(".new");
        let temporary = PathBuf::from(temporary);
        // A leftover of a crash (or something planted): unlinking a link
        // removes the link, not what it points at.
        match std::fs::remove_file(&temporary) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        write_new(&temporary, &key)?;
        std::fs::rename(&temporary, path)
    }
}

fn random_key() -> io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    crate::sys::random_bytes(&mut key)?;
    Ok(key)
}

/// Creates `path` (which must not exist: `O_EXCL`, never through a link)
/// with mode 0600 and the key in hex.
fn write_new(path: &Path, key: &[u8; 32]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true).mode(0o600);
    let mut file = crate::files::open(&mut options, path, &[crate::sys::geteuid()])?;
    file.write_all(format!("{}\n", hex(key)).as_bytes())?;
    file.sync_all()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(key)
}

/// Equality whose time depends only on the lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-SHA256 (RFC 2104) with a key of one block or less.
fn hmac(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut inner = vec![0x36u8; 64];
    let mut outer = vec![0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        inner[i] ^= k;
        outer[i] ^= k;
    }
    inner.extend_from_slice(message);
    outer.extend_from_slice(&crate::sha256::sha256(&inner));
    crate::sha256::sha256(&outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_1() {
        // RFC 4231 test case 1 uses a 20-byte key; ours are 32 bytes, so
        // check against a vector computed with that key zero-padded, which
        // HMAC defines as the same key.
        let mut key = [0u8; 32];
        key[..20].copy_from_slice(&[0x0b; 20]);
        assert_eq!(hex(&hmac(&key, b"Hi There")), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    }

    #[test]
    fn an_id_is_valid_until_it_expires_and_until_the_key_rotates() {
        let mut keys = Keys { key: [7; 32], path: None };
        let id = keys.issue(1000).unwrap();
        assert!(keys.verify(&id, 1000));
        assert!(keys.verify(&id, 1000 + LIFETIME_SECS - 1));
        assert!(!keys.verify(&id, 1000 + LIFETIME_SECS));
        // Tampering with the expiry breaks the MAC.
        let later = id.replacen(&format!("{:x}", 1000 + LIFETIME_SECS), &format!("{:x}", 1000 + 2 * LIFETIME_SECS), 1);
        assert!(!keys.verify(&later, 1000));
        for bad in ["", ".", "a.b.c", "zz"] {
            assert!(!keys.verify(bad, 1000), "{bad:?}");
        }
        keys.rotate().unwrap();
        assert!(!keys.verify(&id, 1000));
    }

    #[test]
    fn the_key_file_is_created_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("mi7-session-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = key_path(&dir.join("d.state"));
        let _ = std::fs::remove_file(&path);
        let first = Keys::load(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let id = first.issue(5).unwrap();
        let mut second = Keys::load(&path).unwrap();
        assert!(second.verify(&id, 5), "a new daemon accepts the old one's ids");
        second.rotate().unwrap();
        assert!(!Keys::load(&path).unwrap().verify(&id, 5), "a rotation outlives the daemon");
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        assert!(Keys::load(&path).is_err(), "a link is not followed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
