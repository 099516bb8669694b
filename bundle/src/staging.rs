//! A private staging directory for the files a bundle will carry: a fresh directory with a random
//! name (128 bits from the OS) created with mode 0700 in one step, never an existing one, so no other
//! local user can predict, pre-create or link the path the signed files pass through. Removed when
//! dropped.

use super::BundleError;
use std::path::{Path, PathBuf};

/// Tries before giving up when the random names collide (they do not, in practice).
const TRIES: usize = 8;

/// A directory made by [`StagingDir::new`]; removed with its contents when dropped.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
}

impl StagingDir {
    /// Creates `parent/PREFIX-<32 random hex digits>`, mode 0700 from its creation on (whatever the
    /// umask), failing rather than reusing anything already at that path (a directory, a file or a
    /// symbolic link).
    pub fn new(parent: &Path, prefix: &str) -> Result<StagingDir, BundleError> {
        let mut last = None;
        for _ in 0..TRIES {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).map_err(|e| {
                BundleError::io(
                    "draw random bytes for a staging directory in",
                    parent,
                    std::io::Error::other(e.to_string()),
                )
            })?;
            let path = parent.join(format!("{prefix}-{}", super::hex(&bytes)));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => {
                    // The umask can only take bits away; set exactly 0700 anyway.
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                            .map_err(|e| BundleError::io("restrict", &path, e))?;
                    }
                    return Ok(StagingDir { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(BundleError::io("create the staging directory", &path, e)),
            }
        }
        Err(BundleError::io(
            "create a staging directory in",
            parent,
            last.unwrap_or_else(|| std::io::Error::other("no name was free")),
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
