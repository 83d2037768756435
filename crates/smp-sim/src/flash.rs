//! Image slots: erasable flash in memory or in a file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The value of erased flash.
pub(crate) const ERASED: u8 = 0xff;

/// One image slot.
#[derive(Debug)]
pub(crate) enum Slot {
    Memory(Vec<u8>),
    File { file: File, size: usize },
}

impl Slot {
    /// An erased slot of `size` bytes in memory.
    pub(crate) fn memory(size: usize) -> Self {
        Self::Memory(vec![ERASED; size])
    }

    /// A slot kept in the file `path`, created erased (or grown to `size`) if needed.
    /// Existing content is kept, so a device restarted on the same folder keeps its
    /// images.
    pub(crate) fn file(path: &Path, size: usize) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        if len < size {
            file.seek(SeekFrom::Start(len as u64))?;
            file.write_all(&vec![ERASED; size - len])?;
        }
        Ok(Self::File { file, size })
    }

    pub(crate) fn size(&self) -> usize {
        match self {
            Self::Memory(bytes) => bytes.len(),
            Self::File { size, .. } => *size,
        }
    }

    /// Reads `len` bytes at `off`, cut at the end of the slot.
    pub(crate) fn read(&mut self, off: usize, len: usize) -> io::Result<Vec<u8>> {
        let end = off.saturating_add(len).min(self.size());
        let off = off.min(end);
        match self {
            Self::Memory(bytes) => Ok(bytes[off..end].to_vec()),
            Self::File { file, .. } => {
                let mut out = vec![0; end - off];
                file.seek(SeekFrom::Start(off as u64))?;
                file.read_exact(&mut out)?;
                Ok(out)
            }
        }
    }

    /// Writes `data` at `off`; fails if it does not fit.
    pub(crate) fn write(&mut self, off: usize, data: &[u8]) -> io::Result<()> {
        let end = off
            .checked_add(data.len())
            .filter(|end| *end <= self.size())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past the slot"))?;
        match self {
            Self::Memory(bytes) => bytes[off..end].copy_from_slice(data),
            Self::File { file, .. } => {
                file.seek(SeekFrom::Start(off as u64))?;
                file.write_all(data)?;
            }
        }
        Ok(())
    }

    /// Erases the whole slot.
    pub(crate) fn erase(&mut self) -> io::Result<()> {
        match self {
            Self::Memory(bytes) => bytes.fill(ERASED),
            Self::File { file, size } => {
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&vec![ERASED; *size])?;
            }
        }
        Ok(())
    }

    /// Replaces the whole content (the bootloader's swap).
    pub(crate) fn replace(&mut self, content: &[u8]) -> io::Result<()> {
        self.erase()?;
        self.write(0, &content[..content.len().min(self.size())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(mut slot: Slot) {
        assert_eq!(slot.read(0, 4).expect("read"), [ERASED; 4]);
        slot.write(2, b"abc").expect("write");
        assert_eq!(slot.read(0, 6).expect("read"), b"\xff\xffabc\xff");
        assert!(slot.write(14, b"abc").is_err(), "past the end");
        assert_eq!(slot.read(14, 100).expect("read").len(), 2, "cut at the end");
        slot.erase().expect("erase");
        assert_eq!(slot.read(0, 16).expect("read"), [ERASED; 16]);
    }

    #[test]
    fn memory_and_file_slots_behave_alike() {
        exercise(Slot::memory(16));
        let dir = std::env::temp_dir().join(format!("smp-sim-flash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("slot.bin");
        let _ = std::fs::remove_file(&path);
        exercise(Slot::file(&path, 16).expect("file slot"));
        let mut again = Slot::file(&path, 16).expect("reopen");
        again.write(0, b"kept").expect("write");
        drop(again);
        let mut reopened = Slot::file(&path, 16).expect("reopen");
        assert_eq!(reopened.read(0, 4).expect("read"), b"kept");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
