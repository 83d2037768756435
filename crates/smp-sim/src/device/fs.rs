//! The file system group's state: files under the mount point `/lfs1`, kept in memory
//! or in a folder of the host.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

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

/// How long an upload's file stays open after its last chunk before the device closes
/// it (Zephyr 4.4.0, measured: `MCUMGR_GRP_FS_FILE_AUTOMATIC_IDLE_CLOSE_TIME`).
pub(crate) const IDLE_CLOSE: Duration = Duration::from_secs(4);

/// Where the simulated device's file system is mounted (littlefs in Zephyr's
/// `smp_svr` sample): every file name starts with it.
pub const MOUNT_POINT: &str = "/lfs1";

/// The device's files.
///
/// An upload keeps its file open between chunks, as Zephyr's file system group does
/// (docs/protocol.md 2.1, file upload state): what it writes is seen by nobody else
/// (status, hash, [`read_all`](Self::read_all)) until the file is closed, when the
/// upload reaches the length its first chunk announced, on the close command, on a
/// refused chunk, when a download takes the group's one open file, or after
/// [`IDLE_CLOSE`]; a reboot loses it unless it was closed.
#[derive(Debug)]
pub(crate) struct FileSystem {
    backend: Backend,
    open: Option<OpenUpload>,
}

/// The file an upload has open.
#[derive(Debug)]
struct OpenUpload {
    name: String,
    /// The file as written so far.
    content: Vec<u8>,
    /// The offset the next chunk must have.
    off: u64,
    /// The total length the chunk at offset 0 announced; 0 when unknown (a refused
    /// chunk makes the device forget it).
    len: u64,
    /// When the last chunk came.
    touched: Instant,
}

/// How the device answers an upload chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upload {
    /// Written (or empty): the offset the next chunk must have.
    Accepted(u64),
    /// Not at the offset the device expects, which the refusal carries as `len`.
    WrongOffset(u64),
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
            open: None,
        }
    }

    /// Closes the file an upload has open (the close command, a refused chunk, the end
    /// of the upload): what it wrote becomes the file. A file the host folder refuses
    /// keeps its old content, as a failed flash write would.
    pub(crate) fn close(&mut self) {
        if let Some(open) = self.open.take() {
            if let Err(code) = self.store(&open.name, &open.content) {
                tracing::warn!(
                    name = open.name,
                    code,
                    "the closed file could not be stored"
                );
            }
        }
    }

    /// The device restarts: a file left open loses what was written since it opened.
    pub(crate) fn reboot(&mut self) {
        // An idle file the device would have closed by now is kept.
        self.close_if_idle();
        self.open = None;
    }

    /// Closes a file that has been idle for [`IDLE_CLOSE`], as the device does by
    /// itself.
    pub(crate) fn close_if_idle(&mut self) {
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.touched.elapsed() >= IDLE_CLOSE)
        {
            self.close();
        }
    }

    /// One upload chunk, as Zephyr 4.4.0 handles it: `len` is the total length (the
    /// chunk at offset 0 carries it).
    pub(crate) fn upload(
        &mut self,
        name: &str,
        off: u64,
        len: Option<u64>,
        data: &[u8],
    ) -> FsResult<Upload> {
        checked(name)?;
        self.close_if_idle();
        if self.open.as_ref().is_some_and(|open| open.name != name) {
            self.close();
        }
        let mut open = match self.open.take() {
            Some(open) => open,
            None => {
                // Opening creates the file (empty) at once.
                let content = match self.read_all(name) {
                    Ok(content) => content,
                    Err(err::FILE_NOT_FOUND) => {
                        self.store(name, &[])?;
                        Vec::new()
                    }
                    Err(code) => return Err(code),
                };
                OpenUpload {
                    name: name.to_owned(),
                    content,
                    off: 0,
                    len: 0,
                    touched: Instant::now(),
                }
            }
        };
        if off == 0 {
            open.len = len.unwrap_or(0);
        } else if open.off == 0 {
            // A file opened by a later chunk continues from its stored length.
            open.off = open.content.len() as u64;
        }
        if off > 0 && off != open.off {
            // Refused: the file closes and the total length is forgotten.
            let expected = open.off;
            tracing::debug!(name, off, expected, "file chunk refused");
            self.open = Some(open);
            self.close();
            return Ok(Upload::WrongOffset(expected));
        }
        // As in Zephyr, only a chunk with data truncates: an empty first chunk leaves
        // the file as it was.
        if !data.is_empty() {
            if off == 0 {
                // The file starts anew, but an upload already open keeps counting
                // from where it was: a duplicated first chunk is answered with twice
                // its length, and the next chunk is refused (measured).
                open.content.clear();
            }
            open.content.extend_from_slice(data);
            open.off += data.len() as u64;
        }
        let next = open.off;
        let complete = open.len > 0 && open.off >= open.len;
        tracing::debug!(
            name,
            off,
            data = data.len(),
            next,
            held = open.content.len(),
            complete,
            "file chunk"
        );
        open.touched = Instant::now();
        self.open = Some(open);
        if complete {
            self.close();
        }
        Ok(Upload::Accepted(next))
    }

    /// Erases the storage partition: every file of an in-memory file system is gone.
    /// A folder on the host is left alone (it belongs to the user).
    pub(crate) fn erase(&mut self) {
        self.open = None;
        if let Backend::Memory(files) = &mut self.backend {
            files.clear();
        }
    }

    /// A file's stored content: without what an upload has written to it while open.
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

    /// Makes `content` the file `name`.
    fn store(&mut self, name: &str, content: &[u8]) -> FsResult<()> {
        let path = checked(name)?;
        match &mut self.backend {
            Backend::Memory(files) => {
                if is_memory_dir(files, name) {
                    return Err(err::FILE_IS_DIRECTORY);
                }
                files.insert(name.to_owned(), content.to_vec());
                Ok(())
            }
            Backend::Folder(root) => {
                let full = root.join(path);
                if full.is_dir() {
                    return Err(err::FILE_IS_DIRECTORY);
                }
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent).map_err(|_| err::FILE_WRITE_FAILED)?;
                }
                std::fs::write(&full, content).map_err(|_| err::FILE_WRITE_FAILED)
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
