//! The CA directory's lock: one `hallmark certs issue` or `certs revoke` at a time.
//!
//! `certs revoke` reads the CA's `crl.pem` and `issued.tsv`, signs the next list and writes it;
//! `certs issue` (one node, `--nodes FILE` or `--coordinator`) appends to `issued.tsv`. Two at
//! once could both read list number N and both write a different list N+1 (one revocation lost,
//! and two lists with one number, which the coordinator refuses), or a revocation could read the
//! index while an issue is half-way through appending to it. [`CaLock`] is an exclusive advisory
//! lock (`flock`, through std's [`File::try_lock`]) on [`LOCK_FILE`] in the CA directory, taken
//! before the first read and released after the last write.
//!
//! The kernel releases the lock when its process ends, however it ends, so a crash leaves nothing
//! to clean up: a lock that is held is held by a live process. The file itself is not the lock and
//! stays. Waiting is bounded ([`LOCK_WAIT`]); then the command fails naming the lock file and
//! what to do.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file in the CA directory.
pub const LOCK_FILE: &str = "ca.lock";

/// The longest a command waits for another one to release the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How often a waiting command tries the lock again.
const RETRY_EVERY: Duration = Duration::from_millis(20);

/// Why the CA directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another process holds the lock {file} on the CA directory (waited {waited_s} s for it): another `hallmark certs issue` or `certs revoke` is running against this CA; let it finish and run this command again. The lock goes when that process ends (`fuser {file}` names it); do not delete the file, which would let two commands in at once")]
    Held { file: String, waited_s: u64 },
    #[error("cannot lock {file} ({source}); the CA directory must be writable and on a file system with file locks (flock): keep it on a local disk")]
    Failed {
        file: String,
        source: std::io::Error,
    },
}

/// An exclusive lock on a CA directory, released when dropped.
#[derive(Debug)]
pub struct CaLock {
    /// The open lock file: the lock lives as long as it is open.
    _file: File,
    private: PathBuf,
}

impl CaLock {
    /// Locks the CA directory `private` (the one with `ca-key.pem`), waiting at most
    /// [`LOCK_WAIT`] for another command to release it.
    pub fn acquire(private: &Path) -> Result<CaLock, LockError> {
        CaLock::acquire_within(private, LOCK_WAIT)
    }

    /// [`CaLock::acquire`], waiting at most `wait`.
    pub fn acquire_within(private: &Path, wait: Duration) -> Result<CaLock, LockError> {
        let path = private.join(LOCK_FILE);
        let failed = |source| LockError::Failed {
            file: path.display().to_string(),
            source,
        };
        let mut options = fs::OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(failed)?;
        let deadline = Instant::now() + wait;
        // Bounded by the deadline: at most wait / RETRY_EVERY + 1 tries.
        loop {
            match file.try_lock() {
                Ok(()) => {
                    return Ok(CaLock {
                        _file: file,
                        private: private.to_owned(),
                    })
                }
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(RETRY_EVERY);
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        file: path.display().to_string(),
                        waited_s: wait.as_secs_f64().ceil() as u64,
                    })
                }
                Err(TryLockError::Error(e)) => return Err(failed(e)),
            }
        }
    }

    /// The locked CA directory.
    pub fn private(&self) -> &Path {
        &self.private
    }
}

#[cfg(test)]
#[path = "ca_lock_tests.rs"]
mod tests;
