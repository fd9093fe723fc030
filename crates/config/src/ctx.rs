//! What loading needs from the host: the core count, who we run as, and files.
//!
//! [`LoadCtx::system`] reads them from the running system; tests build a [`LoadCtx`] over a
//! [`MemFiles`] so that no disk is touched.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Largest file (configuration or key file) that will be read, in bytes.
pub const MAX_FILE_SIZE: usize = 1 << 20;

/// Ownership and permission bits of a file, as `stat(2)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner (`st_uid`).
    pub uid: u32,
}

/// A file's content, wiped on drop, with its metadata taken from the same open file.
pub struct FileContent {
    /// The raw bytes.
    pub bytes: Zeroizing<Vec<u8>>,
    /// Owner and mode.
    pub meta: FileMeta,
}

impl std::fmt::Debug for FileContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileContent")
            .field("len", &self.bytes.len())
            .field("meta", &self.meta)
            .finish()
    }
}

/// Where files come from: the disk ([`DiskFiles`]) or memory ([`MemFiles`], for tests).
pub trait FileSource {
    /// Reads a whole file (at most [`MAX_FILE_SIZE`] bytes; larger is an
    /// [`io::ErrorKind::FileTooLarge`] error).
    fn read(&self, path: &Path) -> io::Result<FileContent>;
    /// Owner and mode of a file, without reading it.
    fn metadata(&self, path: &Path) -> io::Result<FileMeta>;
}

/// Files on the local disk.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskFiles;

impl FileSource for DiskFiles {
    fn read(&self, path: &Path) -> io::Result<FileContent> {
        let file = File::open(path)?;
        // Metadata from the open file, so the bits checked belong to the bytes read.
        let md = file.metadata()?;
        if !md.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        let len = usize::try_from(md.len()).unwrap_or(usize::MAX);
        if len > MAX_FILE_SIZE {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        // Sized up front so the buffer holding key material is never reallocated (and so
        // never leaves an unwiped copy behind) unless the file grows while being read.
        let mut bytes = Zeroizing::new(Vec::with_capacity(len.saturating_add(1)));
        let limit = u64::try_from(MAX_FILE_SIZE)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        file.take(limit).read_to_end(&mut bytes)?;
        if bytes.len() > MAX_FILE_SIZE {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        Ok(FileContent {
            bytes,
            meta: FileMeta {
                mode: md.mode() & 0o7777,
                uid: md.uid(),
            },
        })
    }

    fn metadata(&self, path: &Path) -> io::Result<FileMeta> {
        let md = std::fs::metadata(path)?;
        Ok(FileMeta {
            mode: md.mode() & 0o7777,
            uid: md.uid(),
        })
    }
}

/// An in-memory set of files, for tests.
#[derive(Debug, Default)]
pub struct MemFiles {
    files: BTreeMap<PathBuf, (FileMeta, Zeroizing<Vec<u8>>)>,
}

impl MemFiles {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: impl Into<PathBuf>, meta: FileMeta, content: &[u8]) {
        self.files
            .insert(path.into(), (meta, Zeroizing::new(content.to_vec())));
    }
}

impl FileSource for MemFiles {
    fn read(&self, path: &Path) -> io::Result<FileContent> {
        let (meta, bytes) = self.files.get(path).ok_or(io::ErrorKind::NotFound)?;
        if bytes.len() > MAX_FILE_SIZE {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        Ok(FileContent {
            bytes: bytes.clone(),
            meta: *meta,
        })
    }

    fn metadata(&self, path: &Path) -> io::Result<FileMeta> {
        self.files
            .get(path)
            .map(|(m, _)| *m)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

/// Facts about the host that loading depends on.
#[derive(Clone, Copy)]
pub struct LoadCtx<'a> {
    /// Cores this process may run on; `workers = 0` resolves to this (at least 1).
    pub online_cores: usize,
    /// The effective uid of the process: files holding keys must be owned by it or by root.
    pub euid: u32,
    /// Where the configuration's own metadata and key files are read from.
    pub files: &'a dyn FileSource,
}

impl std::fmt::Debug for LoadCtx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadCtx")
            .field("online_cores", &self.online_cores)
            .field("euid", &self.euid)
            .finish_non_exhaustive()
    }
}

static DISK: DiskFiles = DiskFiles;

impl LoadCtx<'static> {
    /// The running system: cores from `sched_getaffinity` (via
    /// [`std::thread::available_parallelism`]), `geteuid(2)`, and the local disk.
    pub fn system() -> Self {
        Self {
            online_cores: std::thread::available_parallelism().map_or(1, usize::from),
            euid: rustix::process::geteuid().as_raw(),
            files: &DISK,
        }
    }
}
