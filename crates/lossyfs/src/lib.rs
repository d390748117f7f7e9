//! A FUSE file system for crash tests that lose what a power cut loses.
//!
//! Owns: a mount that mirrors a backing directory, except that file contents written through it
//! stay in this process's memory until the file is `fsync`ed or `fdatasync`ed; [`LossyFs::crash`]
//! then throws away everything not synced, optionally letting a seeded random subset of the
//! unsynced pages reach the backing files first (a disk writes back dirty pages in any order).
//! A process that is SIGKILLed keeps its page cache; one that runs on this mount and is crashed
//! with it does not, so a missing `fsync` shows up as lost data.
//!
//! Must not: be used for anything but tests. Directory operations (create, rename, unlink,
//! mkdir) reach the backing directory at once, as if every directory were synced immediately;
//! only file contents and sizes are modeled as volatile. Files are opened with direct I/O so the
//! kernel's page cache never serves data the crash dropped; memory-mapped files are not
//! supported.
//!
//! Mounting needs `/dev/fuse` and root (the mount is made directly, without `fusermount`).

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const PAGE: u64 = 4096;
/// Attributes are never cached by the kernel: sizes change behind its back at a crash.
const TTL: Duration = Duration::ZERO;

/// Unsynced contents of one file.
#[derive(Default)]
struct Dirty {
    pages: BTreeMap<u64, Box<[u8]>>,
    /// The file's size as its writers see it.
    size: u64,
}

#[derive(Default)]
struct State {
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_ino: u64,
    dirty: HashMap<u64, Dirty>,
    /// Pages dropped by crashes so far, for tests that want to know a crash cost something.
    dropped_pages: u64,
}

/// What a crash did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced pages that never reached the backing files.
    pub dropped_pages: u64,
    /// Unsynced pages that reached them anyway, out of order.
    pub landed_pages: u64,
}

/// Handle on a mounted lossy file system; dropping it unmounts.
pub struct LossyFs {
    state: Arc<Mutex<State>>,
    backing: PathBuf,
    _session: fuser::BackgroundSession,
}

/// A small deterministic generator (SplitMix64), so a crash is reproducible from its seed.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl LossyFs {
    /// Mounts a lossy view of `backing` (an existing directory) at `mountpoint`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> io::Result<LossyFs> {
        let backing = backing.canonicalize()?;
        let mut state = State {
            next_ino: 2,
            ..State::default()
        };
        state.paths.insert(1, backing.clone());
        state.inodes.insert(backing.clone(), 1);
        let state = Arc::new(Mutex::new(state));
        let fs = Fs {
            state: state.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("lossyfs".into()),
            MountOption::RW,
            MountOption::CUSTOM("allow_other".into()),
        ];
        config.n_threads = Some(2);
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(LossyFs {
            state,
            backing,
            _session: session,
        })
    }

    /// The backing directory (what survives a crash).
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// A power cut: every unsynced page is lost, except that each reaches the backing file
    /// first with probability `land_percent`/100, chosen by `rng`. Nothing may be writing
    /// through the mount meanwhile (kill the processes using it first).
    pub fn crash(&self, rng: &mut SplitMix, land_percent: u64) -> io::Result<CrashReport> {
        let mut st = self.state.lock();
        let dirty = std::mem::take(&mut st.dirty);
        let mut report = CrashReport::default();
        let mut inos: Vec<&u64> = dirty.keys().collect();
        inos.sort();
        for ino in inos {
            let d = &dirty[ino];
            let Some(path) = st.paths.get(ino) else {
                report.dropped_pages += d.pages.len() as u64;
                continue;
            };
            let file = match OpenOptions::new().write(true).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    report.dropped_pages += d.pages.len() as u64;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let backing_len = file.metadata()?.len();
            for (page, data) in &d.pages {
                if rng.below(100) < land_percent {
                    let off = page * PAGE;
                    // A page past the old end carries no more than the file held.
                    let len = (d.size.saturating_sub(off)).min(PAGE) as usize;
                    file.write_all_at(&data[..len], off)?;
                    report.landed_pages += 1;
                } else {
                    report.dropped_pages += 1;
                }
            }
            // Landed pages past the synced end leave the file longer; otherwise its synced size
            // stands.
            let landed_end = file.metadata()?.len();
            if landed_end < backing_len {
                file.set_len(backing_len)?;
            }
            file.sync_all()?;
        }
        st.dropped_pages += report.dropped_pages;
        Ok(report)
    }

    /// Unsynced pages held right now.
    pub fn unsynced_pages(&self) -> u64 {
        self.state
            .lock()
            .dirty
            .values()
            .map(|d| d.pages.len() as u64)
            .sum()
    }
}

struct Fs {
    state: Arc<Mutex<State>>,
}

fn errno(e: io::Error) -> Errno {
    Errno::from(e)
}

impl State {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths.get(&ino.0).cloned().ok_or(Errno::ENOENT)
    }

    fn ino_for(&mut self, path: &Path) -> u64 {
        if let Some(ino) = self.inodes.get(path) {
            return *ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(path.to_path_buf(), ino);
        self.paths.insert(ino, path.to_path_buf());
        ino
    }

    fn forget_path(&mut self, path: &Path) {
        if let Some(ino) = self.inodes.remove(path) {
            self.paths.remove(&ino);
            self.dirty.remove(&ino);
        }
    }

    fn attr(&mut self, path: &Path) -> Result<FileAttr, Errno> {
        let meta = fs::symlink_metadata(path).map_err(errno)?;
        let ino = self.ino_for(path);
        let size = self.dirty.get(&ino).map_or(meta.len(), |d| d.size);
        let kind = FileType::from_std(meta.file_type()).unwrap_or(FileType::RegularFile);
        let time = |secs: i64, nanos: i64| {
            SystemTime::UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.max(0) as u32)
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime: time(meta.mtime(), meta.mtime_nsec()),
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: time(meta.ctime(), meta.ctime_nsec()),
            kind,
            perm: (meta.permissions().mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    /// The unsynced state of `ino`, started from the backing file's size.
    fn dirty_mut(&mut self, ino: u64, path: &Path) -> Result<&mut Dirty, Errno> {
        match self.dirty.entry(ino) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                let size = fs::metadata(path).map_err(errno)?.len();
                Ok(e.insert(Dirty {
                    pages: BTreeMap::new(),
                    size,
                }))
            }
        }
    }

    fn read(&self, ino: u64, path: &Path, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let file = File::open(path).map_err(errno)?;
        let backing_len = file.metadata().map_err(errno)?.len();
        let dirty = self.dirty.get(&ino);
        let len = dirty.map_or(backing_len, |d| d.size);
        let end = (offset + u64::from(size)).min(len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        let from_backing = backing_len.min(end).saturating_sub(offset) as usize;
        if from_backing > 0 {
            file.read_exact_at(&mut out[..from_backing], offset)
                .map_err(errno)?;
        }
        if let Some(d) = dirty {
            for (page, data) in d.pages.range(offset / PAGE..=(end - 1) / PAGE) {
                let page_start = page * PAGE;
                let from = offset.max(page_start);
                let to = end.min(page_start + PAGE);
                out[(from - offset) as usize..(to - offset) as usize].copy_from_slice(
                    &data[(from - page_start) as usize..(to - page_start) as usize],
                );
            }
        }
        Ok(out)
    }

    fn write(&mut self, ino: u64, path: &Path, offset: u64, data: &[u8]) -> Result<(), Errno> {
        let backing = File::open(path).map_err(errno)?;
        let backing_len = backing.metadata().map_err(errno)?.len();
        let d = self.dirty_mut(ino, path)?;
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let page = at / PAGE;
            let page_start = page * PAGE;
            let buf = match d.pages.entry(page) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut fresh = vec![0u8; PAGE as usize].into_boxed_slice();
                    // What the file holds there now: backing bytes up to the current size.
                    let have = backing_len.min(d.size).saturating_sub(page_start).min(PAGE);
                    if have > 0 {
                        backing
                            .read_exact_at(&mut fresh[..have as usize], page_start)
                            .map_err(errno)?;
                    }
                    e.insert(fresh)
                }
            };
            let to = end.min(page_start + PAGE);
            buf[(at - page_start) as usize..(to - page_start) as usize]
                .copy_from_slice(&data[(at - offset) as usize..(to - offset) as usize]);
            at = to;
        }
        d.size = d.size.max(end);
        Ok(())
    }

    fn set_size(&mut self, ino: u64, path: &Path, size: u64) -> Result<(), Errno> {
        let d = self.dirty_mut(ino, path)?;
        if size < d.size {
            let keep = size.div_ceil(PAGE);
            d.pages.retain(|p, _| *p < keep);
            if let Some(last) = d.pages.get_mut(&(size / PAGE))
                && !size.is_multiple_of(PAGE)
            {
                last[(size % PAGE) as usize..].fill(0);
            }
        }
        d.size = size;
        Ok(())
    }

    /// Makes the unsynced contents of `ino` durable in the backing file.
    fn sync(&mut self, ino: u64, path: &Path) -> Result<(), Errno> {
        let Some(d) = self.dirty.remove(&ino) else {
            return Ok(());
        };
        let file = OpenOptions::new().write(true).open(path).map_err(errno)?;
        if file.metadata().map_err(errno)?.len() > d.size {
            file.set_len(d.size).map_err(errno)?;
        }
        for (page, data) in &d.pages {
            let off = page * PAGE;
            let len = d.size.saturating_sub(off).min(PAGE) as usize;
            file.write_all_at(&data[..len], off).map_err(errno)?;
        }
        file.set_len(d.size).map_err(errno)?;
        file.sync_all().map_err(errno)
    }
}

impl Fs {
    /// Removes a directory entry with `remove` and forgets what was known of it.
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        remove: impl FnOnce(&Path) -> io::Result<()>,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            let path = st.path(parent)?.join(name);
            remove(&path).map_err(errno)?;
            st.forget_path(&path);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

impl Filesystem for Fs {
    fn init(&mut self, _req: &Request, _config: &mut KernelConfig) -> io::Result<()> {
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.state.lock();
        let r = st.path(parent).and_then(|p| st.attr(&p.join(name)));
        match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let mut st = self.state.lock();
        match st.path(ino).and_then(|p| st.attr(&p)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            let path = st.path(ino)?;
            if let Some(mode) = mode {
                fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(errno)?;
            }
            if let Some(size) = size {
                st.set_size(ino.0, &path, size)?;
            }
            st.attr(&path)
        })();
        match r {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            let path = st.path(parent)?.join(name);
            fs::create_dir(&path).map_err(errno)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).map_err(errno)?;
            st.attr(&path)
        })();
        match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_file(p), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, |p| fs::remove_dir(p), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            let from = st.path(parent)?.join(name);
            let to = st.path(newparent)?.join(newname);
            fs::rename(&from, &to).map_err(errno)?;
            st.forget_path(&to);
            if let Some(ino) = st.inodes.remove(&from) {
                st.inodes.insert(to.clone(), ino);
                st.paths.insert(ino, to);
            }
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = self.state.lock();
        match st.path(ino) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.state.lock();
        match st.path(ino).and_then(|p| st.read(ino.0, &p, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.state.lock();
        match st.path(ino).and_then(|p| st.write(ino.0, &p, offset, data)) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // Closing a file persists nothing.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        match st.path(ino).and_then(|p| st.sync(ino.0, &p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            let dir = st.path(ino)?;
            let mut entries = vec![
                (ino.0, FileType::Directory, ".".into()),
                (ino.0, FileType::Directory, "..".into()),
            ];
            for e in fs::read_dir(&dir).map_err(errno)? {
                let e = e.map_err(errno)?;
                let kind = e
                    .file_type()
                    .ok()
                    .and_then(FileType::from_std)
                    .unwrap_or(FileType::RegularFile);
                let child = st.ino_for(&e.path());
                entries.push((child, kind, e.file_name()));
            }
            Ok::<_, Errno>(entries)
        })();
        match r {
            Ok(entries) => {
                for (i, (child, kind, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory operations reach the backing directory at once (see the crate docs).
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            1 << 30,
            1 << 29,
            1 << 29,
            1 << 20,
            1 << 19,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            let path = st.path(parent)?.join(name);
            let mut opts = OpenOptions::new();
            opts.write(true).create(true);
            if flags & libc::O_EXCL != 0 {
                opts.create_new(true);
            }
            opts.open(&path).map_err(errno)?;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & 0o7777)).map_err(errno)?;
            let ino = st.ino_for(&path);
            if flags & libc::O_TRUNC != 0 {
                st.set_size(ino, &path, 0)?;
            }
            st.attr(&path)
        })();
        match r {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        let r = (|| {
            if mode != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let path = st.path(ino)?;
            let d = st.dirty_mut(ino.0, &path)?;
            d.size = d.size.max(offset + length);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
