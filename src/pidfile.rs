//! The pid file, held with flock(2) for the daemon's whole life.
//!
//! The lock is the truth, not the number in the file: a pid file left by a
//! crashed daemon has no lock holder and is simply taken over, while a live
//! daemon's lock makes a second `start` fail at once, naming the pid.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::sys;

pub struct PidFile {
    path: PathBuf,
    // Held open so the lock lives as long as the daemon.
    _file: File,
}

pub enum PidFileError {
    /// Another daemon holds the lock; its pid, when the file names one.
    Locked(Option<sys::Pid>),
    Io(io::Error),
}

impl PidFile {
    /// Opens, locks and fills in the pid file. Never through a link, and
    /// not in a directory where others could plant one (see `files.rs`).
    pub fn acquire(path: &Path) -> Result<PidFile, PidFileError> {
        if let Some(why) = crate::files::shared_dir(path) {
            return Err(PidFileError::Io(io::Error::other(format!("{why}; refusing it"))));
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false).mode(0o644);
        let mut file = crate::files::open(&mut options, path, &[sys::geteuid()]).map_err(PidFileError::Io)?;
        if !sys::try_lock_exclusive(&file).map_err(PidFileError::Io)? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(PidFileError::Locked(text.trim().parse().ok()));
        }
        file.set_len(0).map_err(PidFileError::Io)?;
        file.rewind().map_err(PidFileError::Io)?;
        file.write_all(format!("{}\n", sys::getpid()).as_bytes()).map_err(PidFileError::Io)?;
        Ok(PidFile { path: path.to_path_buf(), _file: file })
    }

    /// Removes the file while still holding the lock, so no second daemon
    /// can slip in between.
    pub fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
