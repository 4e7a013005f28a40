//! Free space and read-only checks of a data directory, before writing to it.
//!
//! Owns: [`Guard`] (one `statvfs`) and [`Fault`] (path, errno, detail; displayed as logged).

use std::path::{Path, PathBuf};

/// Why a data directory cannot take a write now: its path, the errno and the figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    path: PathBuf,
    errno: rustix::io::Errno,
    detail: String,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.errno {
            rustix::io::Errno::NOSPC => "ENOSPC",
            rustix::io::Errno::ROFS => "EROFS",
            _ => "errno",
        };
        write!(
            f,
            "{}: {} ({name}: {})",
            self.path.display(),
            self.detail,
            std::io::Error::from(self.errno)
        )
    }
}

/// A data directory's fitness for writes: read-only, or less free space than a reserve, is a
/// [`Fault`]. One `statvfs` per check; callers check before they write (sled refuses every write
/// after its first failed one, so waiting for `ENOSPC` is too late).
pub struct Guard {
    path: PathBuf,
    min_free_bytes: u64,
}

impl Guard {
    pub fn new(path: PathBuf, min_free_bytes: u64) -> Self {
        Self {
            path,
            min_free_bytes,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// One `statvfs` of the data directory: read-only, or less free space than the reserve, is
    /// a fault.
    pub fn check(&self) -> Result<(), Fault> {
        let fault = |errno, detail: String| Fault {
            path: self.path.clone(),
            errno,
            detail,
        };
        let st = rustix::fs::statvfs(&self.path)
            .map_err(|e| fault(e, "cannot inspect the file system".into()))?;
        if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
            return Err(fault(
                rustix::io::Errno::ROFS,
                "the file system is mounted read-only".into(),
            ));
        }
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        if free < self.min_free_bytes {
            return Err(fault(
                rustix::io::Errno::NOSPC,
                format!(
                    "{} bytes free, below the {}-byte reserve (--min-free-mb)",
                    free, self.min_free_bytes
                ),
            ));
        }
        Ok(())
    }
}
