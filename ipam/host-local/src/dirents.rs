//! A directory's entries from `getdents64` into one buffer: name, inode number and type,
//! with no allocation per entry. std's `read_dir` (musl's `readdir`) reads 2 KiB at a
//! time and allocates every name; a store with hundreds of reservations is listed on
//! every verb, so this reads it in one or two system calls.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;

/// What an entry is; `DT_UNKNOWN` is resolved with `fstatat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    /// A symlink, socket, device, ...
    Other,
}

/// One entry, borrowed from its [`Listing`].
#[derive(Debug, Clone, Copy)]
pub struct Dirent<'a> {
    pub name: &'a OsStr,
    pub ino: u64,
    pub kind: Kind,
}

/// Every entry of one directory but `.` and `..`.
#[derive(Debug, Default)]
pub struct Listing {
    buf: Vec<u8>,
    /// (offset of the name in `buf`, its length, inode, kind).
    entries: Vec<(usize, usize, u64, Kind)>,
}

/// `struct linux_dirent64`: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name.
const NAME_AT: usize = 19;

impl Listing {
    /// Lists `dir`, in the order the filesystem returns.
    ///
    /// # Errors
    /// `getdents64` failed.
    #[allow(unsafe_code)]
    pub fn read(dir: &File) -> io::Result<Listing> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut filled = 0;
        loop {
            if buf.len() - filled < 4096 {
                buf.resize(buf.len() * 2, 0);
            }
            let room = &mut buf[filled..];
            // SAFETY: the kernel writes at most `room.len()` bytes into `room`.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    dir.as_raw_fd(),
                    room.as_mut_ptr(),
                    room.len(),
                )
            };
            match n {
                0 => break,
                n if n < 0 => return Err(io::Error::last_os_error()),
                n => filled += usize::try_from(n).unwrap_or(0),
            }
        }
        buf.truncate(filled);
        let mut entries = Vec::new();
        let mut at = 0;
        while at + NAME_AT <= buf.len() {
            let ino = u64::from_ne_bytes(buf[at..at + 8].try_into().unwrap_or_default());
            let reclen = usize::from(u16::from_ne_bytes([buf[at + 16], buf[at + 17]]));
            let d_type = buf[at + 18];
            if reclen < NAME_AT || at + reclen > buf.len() {
                break;
            }
            let record = &buf[at + NAME_AT..at + reclen];
            let len = record.iter().position(|&b| b == 0).unwrap_or(record.len());
            let name = &record[..len];
            if name != b"." && name != b".." {
                let kind = match d_type {
                    libc::DT_REG => Kind::File,
                    libc::DT_DIR => Kind::Dir,
                    libc::DT_UNKNOWN => stat_kind(dir, OsStr::from_bytes(name)),
                    _ => Kind::Other,
                };
                entries.push((at + NAME_AT, len, ino, kind));
            }
            at += reclen;
        }
        Ok(Listing { buf, entries })
    }

    pub fn iter(&self) -> impl Iterator<Item = Dirent<'_>> {
        self.entries.iter().map(|&(at, len, ino, kind)| Dirent {
            name: OsStr::from_bytes(&self.buf[at..at + len]),
            ino,
            kind,
        })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The kind of an entry whose type the filesystem did not say (`lstat`, as Go's Walk).
fn stat_kind(dir: &File, name: &OsStr) -> Kind {
    match nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            _ => Kind::Other,
        },
        // Gone meanwhile: reading it will say so.
        Err(_) => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::testdir::TestDir;

    #[test]
    fn lists_every_entry_with_its_inode_and_kind() {
        let tmp = TestDir::new("dirents");
        let mut want = Vec::new();
        // Enough long names to need more than one buffer.
        for i in 0..1500 {
            let name = format!("{i:0>200}");
            std::fs::write(tmp.path().join(&name), "x").expect("write");
            want.push((name, Kind::File));
        }
        std::fs::create_dir(tmp.path().join("sub")).expect("mkdir");
        want.push(("sub".into(), Kind::Dir));
        std::os::unix::fs::symlink("nowhere", tmp.path().join("link")).expect("symlink");
        want.push(("link".into(), Kind::Other));
        let listing = Listing::read(&File::open(tmp.path()).expect("open")).expect("list");
        let mut got: Vec<_> = listing
            .iter()
            .map(|e| {
                let meta = std::fs::symlink_metadata(tmp.path().join(e.name)).expect("stat");
                assert_eq!(e.ino, meta.ino(), "{:?}", e.name);
                (e.name.to_str().expect("utf-8").to_string(), e.kind)
            })
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(listing.len(), 1502);
    }
}
