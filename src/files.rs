//! Opening files in directories someone else may write to.
//!
//! The daemon usually runs as root and writes its pid file, state file, own
//! log and its services' logs in directories that a service's user (or
//! anyone) might be able to write. Such a user can plant a symbolic link, a
//! hard link or a directory under a name the daemon is about to open or
//! rename, and have root write or read through it. So every such file is
//! opened with `O_NOFOLLOW` and then checked through the descriptor
//! (fstat): a regular file, with one link, owned by whom we expect. And the
//! directories are judged before use: a log directory its service's user
//! can change is refused, and a directory anyone can write without the
//! sticky bit is refused (pid and state file) or warned about (the daemon's
//! own log).
//!
//! The checks of permissions are pure functions of a [`Perm`], so they are
//! unit-tested without users or files.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::sys::Credentials;

/// The sticky bit: in such a directory only an entry's owner may rename or
/// remove it.
const STICKY: u32 = 0o1000;

/// Opens `path` with `options` without following a symbolic link at its
/// last component (nor blocking on a FIFO), then requires a regular file
/// with one link owned by one of `owners`.
pub fn open(options: &mut OpenOptions, path: &Path, owners: &[u32]) -> io::Result<File> {
    let file =
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(path).map_err(|e| match e
            .raw_os_error()
        {
            Some(libc::ELOOP) => io::Error::other("is a symbolic link; refusing to follow it"),
            _ => e,
        })?;
    check(&file.metadata()?, owners).map_err(io::Error::other)?;
    Ok(file)
}

/// Why an opened file is not what the daemon may use, if it is not.
fn check(meta: &Metadata, owners: &[u32]) -> Result<(), String> {
    if !meta.file_type().is_file() {
        return Err(format!("is {}, not a regular file; refusing it", kind(meta)));
    }
    if !owners.contains(&meta.uid()) {
        return Err(format!("is owned by uid {}, not by the daemon's user; refusing it", meta.uid()));
    }
    if meta.nlink() > 1 {
        return Err(format!("has {} hard links; refusing a file linked elsewhere", meta.nlink()));
    }
    Ok(())
}

/// What a non-regular file is, for messages.
pub fn kind(meta: &Metadata) -> &'static str {
    let file_type = meta.file_type();
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Who owns a directory and its mode: what the checks below look at.
#[derive(Clone, Copy, Debug)]
pub struct Perm {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Perm {
    fn of(meta: &Metadata) -> Perm {
        Perm { uid: meta.uid(), gid: meta.gid(), mode: meta.mode() }
    }
}

/// Whether `user` can add, remove or rename entries in a directory with
/// `perm` (or could after a chmod, as its owner).
pub fn writable_by(perm: Perm, user: &Credentials) -> bool {
    let in_group = perm.gid == user.gid || user.groups.contains(&perm.gid);
    user.uid == 0 || perm.uid == user.uid || (in_group && perm.mode & 0o020 != 0) || perm.mode & 0o002 != 0
}

/// Whether `user` can replace an entry owned by `child_uid` in a directory
/// with `perm`: write access, and no sticky bit protecting the entry.
fn can_replace(perm: Perm, child_uid: u32, user: &Credentials) -> bool {
    writable_by(perm, user) && (perm.mode & STICKY == 0 || child_uid == user.uid || perm.uid == user.uid)
}

/// Why `user` could swap the files in directory `dir` (or `dir` itself, or
/// one of its ancestors) for links of its choosing, if it could. A missing
/// directory is an error (NotFound): whether that matters is the caller's
/// call.
pub fn unsafe_dir_for(dir: &Path, user: &Credentials) -> io::Result<Option<String>> {
    let dir = dir.canonicalize()?;
    let meta = std::fs::metadata(&dir)?;
    if writable_by(Perm::of(&meta), user) {
        return Ok(Some(format!("{} is writable by the service's user (uid {})", dir.display(), user.uid)));
    }
    let mut child_uid = meta.uid();
    let mut child = dir.as_path();
    while let Some(parent) = child.parent() {
        let meta = std::fs::metadata(parent)?;
        if can_replace(Perm::of(&meta), child_uid, user) {
            return Ok(Some(format!(
                "{} can be replaced by the service's user (uid {}), who can write {}",
                child.display(),
                user.uid,
                parent.display()
            )));
        }
        child_uid = meta.uid();
        child = parent;
    }
    Ok(None)
}

/// Whether a directory with `perm` is open to users other than `euid` and
/// root: writable by everyone, or owned by another user, without the sticky
/// bit that would keep them off our entries.
pub fn shared(perm: Perm, euid: u32) -> bool {
    perm.mode & STICKY == 0 && (perm.mode & 0o002 != 0 || (perm.uid != euid && perm.uid != 0))
}

/// Why the directory of `path` is one where others could plant links, if
/// it is (see [`shared`]).
pub fn shared_dir(path: &Path) -> Option<String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir).ok()?;
    let perm = Perm::of(&meta);
    shared(perm, crate::sys::geteuid()).then(|| {
        format!(
            "{} is writable by other users (mode {:o}, owner uid {}) without the sticky bit",
            dir.display(),
            perm.mode & 0o7777,
            perm.uid
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nobody() -> Credentials {
        Credentials { uid: 65534, gid: 65534, groups: vec![100] }
    }

    #[test]
    fn who_can_write_a_directory() {
        let root_dir = |mode| Perm { uid: 0, gid: 0, mode };
        assert!(!writable_by(root_dir(0o755), &nobody()));
        assert!(writable_by(root_dir(0o757), &nobody()));
        assert!(writable_by(root_dir(0o1777), &nobody()), "sticky still lets one add entries");
        assert!(writable_by(Perm { uid: 65534, gid: 0, mode: 0o500 }, &nobody()), "the owner can chmod");
        assert!(writable_by(Perm { uid: 0, gid: 100, mode: 0o775 }, &nobody()), "supplementary group");
        assert!(!writable_by(Perm { uid: 0, gid: 100, mode: 0o755 }, &nobody()));
        assert!(!writable_by(Perm { uid: 0, gid: 5, mode: 0o775 }, &nobody()));
    }

    #[test]
    fn a_sticky_parent_protects_only_entries_of_others() {
        let tmp = Perm { uid: 0, gid: 0, mode: 0o1777 };
        assert!(!can_replace(tmp, 0, &nobody()));
        assert!(can_replace(tmp, 65534, &nobody()));
        assert!(can_replace(Perm { uid: 0, gid: 0, mode: 0o777 }, 0, &nobody()));
    }

    #[test]
    fn shared_directories_are_writable_by_others_without_sticky() {
        assert!(!shared(Perm { uid: 0, gid: 0, mode: 0o755 }, 0));
        assert!(!shared(Perm { uid: 0, gid: 0, mode: 0o1777 }, 1000));
        assert!(shared(Perm { uid: 0, gid: 0, mode: 0o777 }, 0));
        assert!(shared(Perm { uid: 1000, gid: 1000, mode: 0o755 }, 0), "another user owns it");
        assert!(!shared(Perm { uid: 1000, gid: 1000, mode: 0o755 }, 1000));
    }

    #[test]
    fn links_and_directories_are_not_opened() {
        let dir = std::env::temp_dir().join(format!("mi7-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let me = [crate::sys::geteuid()];
        let target = dir.join("target");
        std::fs::write(&target, "secret").unwrap();
        std::os::unix::fs::symlink(&target, dir.join("link")).unwrap();
        let read = || OpenOptions::new().read(true).clone();
        let e = open(&mut read(), &dir.join("link"), &me).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        let e = open(&mut read(), &dir, &me).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let e = open(&mut read(), &target, &[me[0] + 1]).unwrap_err();
        assert!(e.to_string().contains("owned by uid"), "{e}");
        std::fs::hard_link(&target, dir.join("hard")).unwrap();
        let e = open(&mut read(), &target, &me).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        std::fs::remove_file(dir.join("hard")).unwrap();
        assert!(open(&mut read(), &target, &me).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
