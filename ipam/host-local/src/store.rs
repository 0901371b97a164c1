//! The on-disk reservation store, byte-compatible with the Go host-local's
//! `backend/disk` (reference §3.1), so both can share one dataDir:
//!
//! - `<dataDir>/<network>/` (mode 0755) holds one file per reserved address, named by the
//!   canonical address text, created with O_CREAT|O_EXCL (the reservation primitive),
//!   mode 0600, containing `<containerID>\r\n<ifname>` with no trailing newline. Files
//!   written by old versions hold just `<containerID>`, and still match that container.
//! - `last_reserved_ip.<rangeSetIndex>` holds the last address handed out from each set.
//! - `lock` is flock(2)ed exclusively for as long as a [`HostLocalStore`] lives, so every
//!   operation of one verb is atomic against other host-local processes, Go ones included.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use rcni_types::{Error, Result};

use crate::config::os_text;
use crate::names;
use crate::range::parse_ip;

/// Who holds a reservation, read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// `<containerID>\r\n<ifname>`.
    Attachment {
        container_id: String,
        ifname: String,
    },
    /// The old single-line format: just `<containerID>`.
    Legacy { container_id: String },
}

impl Owner {
    fn parse(content: &str) -> Owner {
        match content.split_once(names::LINE_BREAK) {
            Some((id, ifname)) => Owner::Attachment {
                container_id: id.to_string(),
                ifname: ifname.to_string(),
            },
            None => Owner::Legacy {
                container_id: content.to_string(),
            },
        }
    }

    #[must_use]
    pub fn container_id(&self) -> &str {
        match self {
            Owner::Attachment { container_id, .. } | Owner::Legacy { container_id } => container_id,
        }
    }
}

/// One reserved address and its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub ip: IpAddr,
    pub owner: Owner,
}

/// An open, locked store for one network. The lock is released when it is dropped.
#[derive(Debug)]
pub struct HostLocalStore {
    dir: PathBuf,
    _lock: File,
}

/// A file's content as Go's `strings.TrimSpace(string(data))` compares it.
fn trimmed(data: &[u8]) -> &[u8] {
    match std::str::from_utf8(data) {
        Ok(s) => s.trim().as_bytes(),
        Err(_) => data.trim_ascii(),
    }
}

/// The content of the small file `name` in the directory `dir`: one read when it fits
/// the buffer, as a reservation file always does.
fn read_small(dir: &File, name: &std::ffi::OsStr) -> std::io::Result<Vec<u8>> {
    let fd = nix::fcntl::openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())?;
    let mut buf = [0u8; 256];
    let n = nix::unistd::read(&fd, &mut buf)?;
    let mut data = buf[..n].to_vec();
    if n == buf.len() {
        File::from(fd).read_to_end(&mut data)?;
    }
    Ok(data)
}

fn io_error(op: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::internal(format!("{op} {}: {}", path.display(), os_text(e)))
}

/// The key a reservation file of (id, ifname) holds.
fn key(id: &str, ifname: &str) -> String {
    format!("{}{}{ifname}", id.trim(), names::LINE_BREAK)
}

impl HostLocalStore {
    /// Creates `<data_dir>/<network>` if needed and takes its lock (blocking).
    ///
    /// # Errors
    /// The directory or lock file cannot be created, or flock fails.
    pub fn open(data_dir: &Path, network: &str) -> Result<HostLocalStore> {
        let dir = data_dir.join(network);
        DirBuilder::new()
            .recursive(true)
            .mode(names::DIR_MODE)
            .create(&dir)
            .map_err(|e| io_error("mkdir", &dir, &e))?;
        let lock_path = dir.join(names::LOCK_FILE);
        // go-filemutex opens read-only with O_CREAT, which std's OpenOptions refuses.
        let fd = open(
            &lock_path,
            OFlag::O_CREAT | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(names::LOCK_MODE),
        )
        .map_err(|e| io_error("open", &lock_path, &std::io::Error::from(e)))?;
        let lock = File::from(fd);
        lock.lock().map_err(|e| io_error("flock", &lock_path, &e))?;
        Ok(HostLocalStore { dir, _lock: lock })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(ip.to_string())
    }

    fn last_reserved_path(&self, range_set: usize) -> PathBuf {
        self.dir
            .join(format!("{}{range_set}", names::LAST_RESERVED_IP_PREFIX))
    }

    /// Reserves `ip` for (id, ifname) and records it as the set's last reservation.
    /// `Ok(false)` when the address is already taken.
    ///
    /// # Errors
    /// The file cannot be created or written (a half-written file is removed).
    pub fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, range_set: usize) -> Result<bool> {
        let path = self.ip_path(ip);
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(names::FILE_MODE)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_error("open", &path, &e)),
        };
        if let Err(e) = file.write_all(key(id, ifname).as_bytes()) {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(io_error("write", &path, &e));
        }
        let last = self.last_reserved_path(range_set);
        // Written in place and cut to length, not opened with O_TRUNC as Go's
        // os.WriteFile does: on ext4 a truncation to zero makes the close start writing
        // the file back to disk (auto_da_alloc), a few hundred microseconds per ADD. The
        // content ends up the same; the lock keeps readers out meanwhile.
        let text = ip.to_string();
        let marked = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(names::FILE_MODE)
            .open(&last)
            .and_then(|f| {
                f.write_all_at(text.as_bytes(), 0)?;
                f.set_len(text.len() as u64)
            });
        if let Err(e) = marked {
            // Go leaves the reservation behind here; nobody would ever release it.
            let _ = fs::remove_file(&path);
            return Err(io_error("open", &last, &e));
        }
        Ok(true)
    }

    /// The set's round-robin marker; `None` when missing or unreadable (Go then starts
    /// from the beginning of the set).
    #[must_use]
    pub fn last_reserved_ip(&self, range_set: usize) -> Option<IpAddr> {
        let data = fs::read(self.last_reserved_path(range_set)).ok()?;
        // Go's net.ParseIP on the raw content: no trimming.
        parse_ip(std::str::from_utf8(&data).ok()?)
    }

    /// Every regular file under the store, recursively, in name order, with its content
    /// (Go's `filepath.Walk`: unreadable entries are skipped).
    fn walk(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn visit(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(entries) = fs::read_dir(dir) else {
                return;
            };
            let mut entries: Vec<_> = entries.filter_map(std::result::Result::ok).collect();
            entries.sort_by_key(fs::DirEntry::file_name);
            // Every ADD reads every reservation (Go's GetByID does too), so each file
            // costs three system calls: openat relative to the directory, one read, close.
            let Ok(dir_fd) = File::open(dir) else {
                return;
            };
            for entry in entries {
                match entry.file_type() {
                    Ok(t) if t.is_dir() => visit(&entry.path(), out),
                    Ok(_) => {
                        if let Ok(data) = read_small(&dir_fd, &entry.file_name()) {
                            out.push((entry.path(), data));
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        let mut out = Vec::new();
        visit(&self.dir, &mut out);
        out
    }

    /// Addresses held by (id, ifname), or by `id` in the legacy format.
    #[must_use]
    pub fn get_by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let key = key(id, ifname);
        let legacy = id.trim();
        self.walk()
            .into_iter()
            .filter(|(_, data)| {
                let data = trimmed(data);
                data == key.as_bytes() || data == legacy.as_bytes()
            })
            .filter_map(|(path, _)| parse_ip(path.file_name()?.to_str()?))
            .collect()
    }

    /// True when any file is held by (id, ifname), or else by `id` in the legacy format.
    #[must_use]
    pub fn find_by_id(&self, id: &str, ifname: &str) -> bool {
        let files = self.walk();
        let holds = |k: &str| files.iter().any(|(_, d)| trimmed(d) == k.as_bytes());
        holds(&key(id, ifname)) || holds(id.trim())
    }

    /// Releases what (id, ifname) holds, as Go's `ReleaseByID` run `passes` times (once
    /// per range set), in one walk: each pass removes the files of (id, ifname), or, when
    /// it finds none, those of `id` in the legacy single-line format. So the legacy files
    /// go when nothing else matched, or always from the second pass on. Nothing held is
    /// success.
    ///
    /// # Errors
    /// Matching files that cannot be removed (all of them, after trying every one).
    pub fn release_by_id(&self, id: &str, ifname: &str, passes: usize) -> Result<()> {
        if passes == 0 {
            return Ok(());
        }
        let key = key(id, ifname);
        let legacy = id.trim();
        let (current, old): (Vec<_>, Vec<_>) = self
            .walk()
            .into_iter()
            .filter_map(|(path, data)| {
                let data = trimmed(&data);
                if data == key.as_bytes() {
                    Some((path, true))
                } else if data == legacy.as_bytes() {
                    Some((path, false))
                } else {
                    None
                }
            })
            .partition(|(_, current)| *current);
        let release_legacy = current.is_empty() || passes > 1;
        let doomed = current.iter().chain(old.iter().filter(|_| release_legacy));
        let mut failures = Vec::new();
        for (path, _) in doomed {
            match fs::remove_file(path) {
                // Removed by someone else meanwhile is released all the same.
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => failures.push(io_error("remove", path, &e).msg),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(Error::internal(failures.join("; ")))
        }
    }

    /// Removes the reservation of `ip`; already gone is success.
    ///
    /// # Errors
    /// The file exists but cannot be removed.
    pub fn release(&self, ip: IpAddr) -> Result<()> {
        let path = self.ip_path(ip);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("remove", &path, &e)),
        }
    }

    /// Every reservation file directly in the store: those named by a canonical address.
    ///
    /// # Errors
    /// The directory or a reservation file cannot be read.
    pub fn reservations(&self) -> Result<Vec<Reservation>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| io_error("open", &self.dir, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("readdir", &self.dir, &e))?;
            let name = entry.file_name();
            let Some(ip) = name
                .to_str()
                .and_then(parse_ip)
                .filter(|ip| Some(ip.to_string().as_str()) == name.to_str())
            else {
                continue;
            };
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("read", &path, &e)),
            };
            let owner = Owner::parse(&String::from_utf8_lossy(trimmed(&data)));
            out.push(Reservation { ip, owner });
        }
        out.sort_by_key(|r| r.ip);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::testdir::TestDir;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn layout_is_byte_identical_to_go() {
        let tmp = TestDir::new("layout");
        let store = HostLocalStore::open(tmp.path(), "net1").expect("open");
        let dir = tmp.path().join("net1");
        assert_eq!(store.dir(), dir);
        assert!(
            store
                .reserve(" c1 ", "eth0", ip("10.0.0.2"), 0)
                .expect("reserve")
        );
        assert!(
            store
                .reserve("c1", "eth0", ip("2001:db8::a"), 1)
                .expect("reserve")
        );
        assert_eq!(fs::read(dir.join("10.0.0.2")).expect("read"), b"c1\r\neth0");
        assert_eq!(
            fs::read(dir.join("2001:db8::a")).expect("read"),
            b"c1\r\neth0"
        );
        assert_eq!(
            fs::read(dir.join("last_reserved_ip.0")).expect("read"),
            b"10.0.0.2"
        );
        assert_eq!(
            fs::read(dir.join("last_reserved_ip.1")).expect("read"),
            b"2001:db8::a"
        );
        assert_eq!(fs::read(dir.join("lock")).expect("read"), b"");
        let umask_ok = |m: u32, want: u32| m & !0o022 == want & !0o022;
        assert!(umask_ok(mode(&dir), 0o755), "{:o}", mode(&dir));
        assert_eq!(mode(&dir.join("10.0.0.2")), 0o600);
        assert_eq!(mode(&dir.join("last_reserved_ip.0")), 0o600);
        assert!(umask_ok(mode(&dir.join("lock")), 0o750));
        assert!(
            !store
                .reserve("c2", "eth0", ip("10.0.0.2"), 0)
                .expect("taken")
        );
        assert_eq!(fs::read(dir.join("10.0.0.2")).expect("read"), b"c1\r\neth0");
    }

    #[test]
    fn lookup_and_release_match_full_content_then_legacy() {
        let tmp = TestDir::new("release");
        let store = HostLocalStore::open(tmp.path(), "net1").expect("open");
        let dir = store.dir().to_path_buf();
        store
            .reserve("c1", "eth0", ip("10.0.0.2"), 0)
            .expect("reserve");
        store
            .reserve("c1", "eth1", ip("10.0.0.3"), 0)
            .expect("reserve");
        fs::write(dir.join("10.0.0.4"), "c1\n").expect("legacy file");
        fs::write(dir.join("10.0.0.5"), "c2\r\neth0\n").expect("trailing newline");

        assert_eq!(
            store.get_by_id("c1", "eth0"),
            [ip("10.0.0.2"), ip("10.0.0.4")]
        );
        assert!(
            store.find_by_id("c1", "eth9"),
            "legacy file matches any ifname"
        );
        assert!(store.find_by_id("c2", "eth0"));
        assert!(!store.find_by_id("c3", "eth0"));

        // One pass: (c1, eth0) is found, so the legacy file stays, as in Go.
        store.release_by_id("c1", "eth0", 1).expect("release");
        assert!(!dir.join("10.0.0.2").exists());
        assert!(dir.join("10.0.0.3").exists() && dir.join("10.0.0.4").exists());
        // Nothing for (c1, eth0) any more: the legacy file goes.
        store
            .release_by_id("c1", "eth0", 1)
            .expect("release legacy");
        assert!(!dir.join("10.0.0.4").exists());
        // Two passes (two range sets): both kinds go at once.
        store
            .reserve("c1", "eth0", ip("10.0.0.2"), 0)
            .expect("reserve");
        fs::write(dir.join("10.0.0.4"), "c1").expect("legacy file");
        store.release_by_id("c1", "eth0", 2).expect("release both");
        assert!(!dir.join("10.0.0.2").exists() && !dir.join("10.0.0.4").exists());
        store
            .release_by_id("c9", "eth0", 1)
            .expect("nothing held is fine");
        store
            .release(ip("10.0.0.200"))
            .expect("already gone is fine");

        let all = store.reservations().expect("list");
        assert_eq!(
            all,
            [
                Reservation {
                    ip: ip("10.0.0.3"),
                    owner: Owner::Attachment {
                        container_id: "c1".into(),
                        ifname: "eth1".into()
                    }
                },
                Reservation {
                    ip: ip("10.0.0.5"),
                    owner: Owner::Attachment {
                        container_id: "c2".into(),
                        ifname: "eth0".into()
                    }
                },
            ]
        );
    }

    #[test]
    fn last_reserved_ip_is_read_as_go_reads_it() {
        let tmp = TestDir::new("last");
        let store = HostLocalStore::open(tmp.path(), "n").expect("open");
        assert_eq!(store.last_reserved_ip(0), None);
        fs::write(store.dir().join("last_reserved_ip.0"), "10.0.0.9").expect("write");
        assert_eq!(store.last_reserved_ip(0), Some(ip("10.0.0.9")));
        fs::write(store.dir().join("last_reserved_ip.0"), "10.0.0.9\n").expect("write");
        assert_eq!(store.last_reserved_ip(0), None, "Go does not trim");
    }

    #[test]
    fn the_last_reservation_replaces_a_longer_or_shorter_one_exactly() {
        let tmp = TestDir::new("mark");
        let store = HostLocalStore::open(tmp.path(), "n").expect("open");
        let last = store.dir().join("last_reserved_ip.0");
        for (n, addr) in ["10.0.0.100", "10.0.0.9", "10.0.0.25", "10.0.0.250"]
            .into_iter()
            .enumerate()
        {
            assert!(
                store
                    .reserve(&format!("c{n}"), "eth0", ip(addr), 0)
                    .expect("reserve")
            );
            assert_eq!(fs::read_to_string(&last).expect("read"), addr);
            assert_eq!(store.last_reserved_ip(0), Some(ip(addr)));
        }
    }

    #[test]
    fn lock_excludes_a_second_store() {
        let tmp = TestDir::new("lock");
        let store = HostLocalStore::open(tmp.path(), "n").expect("open");
        let lock = File::open(store.dir().join("lock")).expect("open lock");
        assert!(lock.try_lock().is_err(), "held while the store lives");
        drop(store);
        lock.try_lock().expect("released on drop");
    }
}
