//! The file system group's state: files under the mount point `/lfs1`, kept in memory
//! or in a folder of the host.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};

/// `FS_MGMT_ERR_*` codes.
pub(crate) mod err {
    pub(crate) const FILE_INVALID_NAME: u16 = 2;
    pub(crate) const FILE_NOT_FOUND: u16 = 3;
    pub(crate) const FILE_IS_DIRECTORY: u16 = 4;
    pub(crate) const FILE_READ_FAILED: u16 = 7;
    pub(crate) const FILE_WRITE_FAILED: u16 = 10;
    pub(crate) const FILE_OFFSET_NOT_VALID: u16 = 11;
    pub(crate) const FILE_OFFSET_LARGER_THAN_FILE: u16 = 12;
    pub(crate) const CHECKSUM_HASH_NOT_FOUND: u16 = 13;
    pub(crate) const MOUNT_POINT_NOT_FOUND: u16 = 14;
    pub(crate) const FILE_EMPTY: u16 = 16;
}

/// Where the simulated device's file system is mounted (littlefs in Zephyr's
/// `smp_svr` sample): every file name starts with it.
pub const MOUNT_POINT: &str = "/lfs1";

/// The device's files.
#[derive(Debug)]
pub(crate) struct FileSystem {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Memory(BTreeMap<String, Vec<u8>>),
    Folder(PathBuf),
}

/// Why a file operation failed, as the group error it is reported as.
pub(crate) type FsResult<T> = Result<T, u16>;

impl FileSystem {
    pub(crate) fn new(root: Option<PathBuf>) -> Self {
        Self {
            backend: match root {
                Some(root) => Backend::Folder(root),
                None => Backend::Memory(BTreeMap::new()),
            },
        }
    }

    /// Closes any open file (a reboot or the close command). Files are written
    /// through, so nothing is pending.
    pub(crate) fn close(&mut self) {}

    /// Erases the storage partition: every file of an in-memory file system is gone.
    /// A folder on the host is left alone (it belongs to the user).
    pub(crate) fn erase(&mut self) {
        if let Backend::Memory(files) = &mut self.backend {
            files.clear();
        }
    }

    /// A file's content, for tests.
    pub(crate) fn read_all(&self, name: &str) -> FsResult<Vec<u8>> {
        let path = checked(name)?;
        match &self.backend {
            Backend::Memory(files) => {
                files
                    .get(name)
                    .cloned()
                    .ok_or(if is_memory_dir(files, name) {
                        err::FILE_IS_DIRECTORY
                    } else {
                        err::FILE_NOT_FOUND
                    })
            }
            Backend::Folder(root) => {
                let full = root.join(path);
                if full.is_dir() {
                    return Err(err::FILE_IS_DIRECTORY);
                }
                std::fs::read(full).map_err(|_| err::FILE_NOT_FOUND)
            }
        }
    }

    pub(crate) fn len(&self, name: &str) -> FsResult<u64> {
        let path = checked(name)?;
        match &self.backend {
            Backend::Memory(_) => self.read_all(name).map(|c| c.len() as u64),
            Backend::Folder(root) => {
                let meta = std::fs::metadata(root.join(path)).map_err(|_| err::FILE_NOT_FOUND)?;
                if meta.is_dir() {
                    Err(err::FILE_IS_DIRECTORY)
                } else {
                    Ok(meta.len())
                }
            }
        }
    }

    pub(crate) fn read_at(&self, name: &str, off: u64, max: usize) -> FsResult<Vec<u8>> {
        let path = checked(name)?;
        match &self.backend {
            Backend::Memory(files) => {
                let content = files.get(name).ok_or(err::FILE_NOT_FOUND)?;
                let start = usize::try_from(off)
                    .unwrap_or(usize::MAX)
                    .min(content.len());
                let end = start.saturating_add(max).min(content.len());
                Ok(content[start..end].to_vec())
            }
            Backend::Folder(root) => {
                let mut file =
                    std::fs::File::open(root.join(path)).map_err(|_| err::FILE_NOT_FOUND)?;
                file.seek(SeekFrom::Start(off))
                    .map_err(|_| err::FILE_READ_FAILED)?;
                let mut out = Vec::with_capacity(max);
                file.take(max as u64)
                    .read_to_end(&mut out)
                    .map_err(|_| err::FILE_READ_FAILED)?;
                Ok(out)
            }
        }
    }

    /// Writes `data` at `off`; offset 0 starts the file anew.
    pub(crate) fn write_at(&mut self, name: &str, off: u64, data: &[u8]) -> FsResult<()> {
        let path = checked(name)?;
        match &mut self.backend {
            Backend::Memory(files) => {
                if is_memory_dir(files, name) {
                    return Err(err::FILE_IS_DIRECTORY);
                }
                let content = files.entry(name.to_owned()).or_default();
                if off == 0 {
                    content.clear();
                }
                let start = usize::try_from(off).map_err(|_| err::FILE_OFFSET_NOT_VALID)?;
                content.truncate(start);
                content.extend_from_slice(data);
                Ok(())
            }
            Backend::Folder(root) => {
                let full = root.join(path);
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|_| err::FILE_WRITE_FAILED)?;
                }
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(off == 0)
                    .open(&full)
                    .map_err(|_| err::FILE_WRITE_FAILED)?;
                file.set_len(off).map_err(|_| err::FILE_WRITE_FAILED)?;
                file.seek(SeekFrom::Start(off))
                    .map_err(|_| err::FILE_WRITE_FAILED)?;
                file.write_all(data).map_err(|_| err::FILE_WRITE_FAILED)
            }
        }
    }
}

/// Whether any in-memory file lives under `name` (so `name` is a directory).
fn is_memory_dir(files: &BTreeMap<String, Vec<u8>>, name: &str) -> bool {
    let prefix = format!("{}/", name.trim_end_matches('/'));
    name == MOUNT_POINT || files.keys().any(|k| k.starts_with(&prefix))
}

/// The path of `name` below the mount point; names outside it, or with `..`, are
/// refused.
pub(crate) fn checked(name: &str) -> FsResult<&Path> {
    let rest = if name == MOUNT_POINT {
        ""
    } else {
        name.strip_prefix(MOUNT_POINT)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(err::MOUNT_POINT_NOT_FOUND)?
    };
    let path = Path::new(rest);
    if path.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(path)
    } else {
        Err(err::FILE_INVALID_NAME)
    }
}
