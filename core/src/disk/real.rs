//! The disk of the real binary: files under a root folder, fsync where durability is claimed.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{check_path, Disk, DiskError, DiskResult, IoDone};

#[derive(Debug, Clone)]
pub struct RealDisk {
    root: PathBuf,
}

impl RealDisk {
    /// A disk rooted at `root`, which must exist.
    pub fn new(root: impl Into<PathBuf>) -> RealDisk {
        RealDisk { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn resolve(&self, path: &str) -> Result<PathBuf, DiskError> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    /// Makes a create, rename or remove in `path`'s folder durable.
    fn sync_parent(&self, path: &str, full: &Path) -> Result<(), DiskError> {
        let parent = full.parent().unwrap_or(&self.root);
        File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(path, e))
    }
}

fn io_error(path: &str, e: std::io::Error) -> DiskError {
    match e.kind() {
        ErrorKind::NotFound => DiskError::NotFound {
            path: path.to_string(),
        },
        ErrorKind::StorageFull => DiskError::Full {
            path: path.to_string(),
            needed: 0,
            free: 0,
        },
        _ => DiskError::Io {
            path: path.to_string(),
            message: e.to_string(),
        },
    }
}

fn done<T>(value: T) -> DiskResult<T> {
    Ok(IoDone {
        value,
        latency: Duration::ZERO,
    })
}

impl Disk for RealDisk {
    fn create(&mut self, path: &str) -> DiskResult<()> {
        let full = self.resolve(path)?;
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
        }
        File::create(&full).map_err(|e| io_error(path, e))?;
        self.sync_parent(path, &full)?;
        done(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> DiskResult<()> {
        let full = self.resolve(path)?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(&full)
            .map_err(|e| io_error(path, e))?;
        let before = file.metadata().map_err(|e| io_error(path, e))?.len();
        if let Err(e) = file.write_all(data) {
            // Leave no partial append behind: a short write that we reported as failed must not
            // turn into bytes that a later read trusts.
            let _ = file.set_len(before);
            return Err(io_error(path, e));
        }
        done(())
    }

    fn sync(&mut self, path: &str) -> DiskResult<()> {
        let full = self.resolve(path)?;
        File::open(&full)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(path, e))?;
        done(())
    }

    fn read(&mut self, path: &str) -> DiskResult<Vec<u8>> {
        let full = self.resolve(path)?;
        fs::read(&full)
            .map_err(|e| io_error(path, e))
            .and_then(done)
    }

    fn rename(&mut self, from: &str, to: &str) -> DiskResult<()> {
        let full_from = self.resolve(from)?;
        let full_to = self.resolve(to)?;
        if let Some(parent) = full_to.parent() {
            fs::create_dir_all(parent).map_err(|e| io_error(to, e))?;
        }
        fs::rename(&full_from, &full_to).map_err(|e| io_error(from, e))?;
        self.sync_parent(to, &full_to)?;
        if full_from.parent() != full_to.parent() {
            self.sync_parent(from, &full_from)?;
        }
        done(())
    }

    fn remove(&mut self, path: &str) -> DiskResult<()> {
        let full = self.resolve(path)?;
        fs::remove_file(&full).map_err(|e| io_error(path, e))?;
        self.sync_parent(path, &full)?;
        done(())
    }

    fn list(&mut self, dir: &str) -> DiskResult<Vec<String>> {
        let full = self.resolve(dir)?;
        let entries = match fs::read_dir(&full) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return done(Vec::new()),
            Err(e) => return Err(io_error(dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            if entry.file_type().map_err(|e| io_error(dir, e))?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        done(names)
    }
}
