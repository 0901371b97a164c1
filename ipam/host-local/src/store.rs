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

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use rcni_types::{Error, Result};

use crate::config::os_text;
use crate::dirents::{Kind, Listing};
use crate::index::{self, OwnerIndex};
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
    index: OwnerIndex,
    _lock: File,
}

/// What a walk knows of one file's content.
#[derive(Debug)]
enum Content<'a> {
    /// From the owner index: the trimmed content, encoded as in an entry's name.
    Indexed(&'a [u8]),
    /// Read from the file, trimmed (what Go compares).
    Read(Vec<u8>),
    /// The file could not be read.
    Unreadable(std::io::Error),
}

/// One file of the store as a walk sees it.
#[derive(Debug)]
struct Held<'a> {
    dir: &'a Path,
    name: &'a OsStr,
    content: Content<'a>,
    /// Its entry in the owner index, if it has one.
    link: Option<Cow<'a, OsStr>>,
}

/// An owner a walk looks for (Go's `match`): as a file's trimmed content, and as the
/// index encodes it.
struct Wanted {
    raw: Vec<u8>,
    encoded: Vec<u8>,
}

impl Wanted {
    fn new(owner: &str) -> Wanted {
        let raw = owner.as_bytes().to_vec();
        let encoded = index::encode(&raw);
        Wanted { raw, encoded }
    }
}

impl Held<'_> {
    fn holds(&self, owner: &Wanted) -> bool {
        match &self.content {
            Content::Indexed(encoded) => *encoded == owner.encoded.as_slice(),
            Content::Read(raw) => *raw == owner.raw,
            Content::Unreadable(_) => false,
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(self.name)
    }
}

/// The address a file named `name` reserves: only canonical address texts are
/// reservations (Go names them with `ip.String()`).
fn reservation_name(name: &OsStr) -> Option<IpAddr> {
    let text = name.to_str()?;
    parse_ip(text).filter(|ip| ip.to_string() == text)
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
fn read_small(dir: &File, name: &OsStr) -> std::io::Result<Vec<u8>> {
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
        Ok(HostLocalStore {
            dir,
            index: OwnerIndex::new(data_dir, network),
            _lock: lock,
        })
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
        let owner = key(id, ifname);
        if let Err(e) = file.write_all(owner.as_bytes()) {
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
        self.index
            .add(&path, OsStr::new(&text), trimmed(owner.as_bytes()));
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

    /// Calls `f` on every file under the store, recursively (Go's `filepath.Walk`, but in
    /// directory order: callers that report files sort them), with its trimmed content or
    /// why it could not be read. Contents of
    /// the top level come from the owner index where it links the very file, and are
    /// read otherwise (see [`crate::index`]); files read are then given an entry.
    ///
    /// # Errors
    /// The store directory cannot be listed.
    fn walk(&self, f: &mut dyn FnMut(&Held<'_>)) -> std::io::Result<()> {
        let dir_fd = File::open(&self.dir)?;
        let listing = Listing::read(&dir_fd)?;
        let entries = self.index.list();
        // (file, inode) -> (entry, encoded owner, used).
        let mut links = HashMap::with_capacity(entries.len());
        for e in entries.iter() {
            match self.index.split(e.name) {
                Some(Some((file, owner))) => {
                    links.insert((file, e.ino), (e.name, owner, false));
                }
                Some(None) => self.index.remove(e.name),
                None => {}
            }
        }
        let known: Vec<_> = listing
            .iter()
            .map(|e| {
                let link = links
                    .get_mut(&(e.name, e.ino))
                    .filter(|_| e.kind == Kind::File)?;
                link.2 = true;
                Some((link.0, link.1))
            })
            .collect();
        // The rest name files that are gone or were made again: dropped first, so files
        // made again can be linked under the same name.
        for (entry, _, _) in links.values().filter(|l| !l.2) {
            self.index.remove(entry);
        }
        for (e, known) in listing.iter().zip(known) {
            let held = if let Some((entry, owner)) = known {
                Held {
                    dir: &self.dir,
                    name: e.name,
                    content: Content::Indexed(owner),
                    link: Some(Cow::Borrowed(entry)),
                }
            } else if e.kind == Kind::Dir {
                visit_unindexed(&self.dir.join(e.name), f);
                continue;
            } else {
                let content = match read_small(&dir_fd, e.name) {
                    Ok(data) => Content::Read(trimmed(&data).to_vec()),
                    Err(err) => Content::Unreadable(err),
                };
                let link = match &content {
                    Content::Read(owner)
                        if e.kind == Kind::File && reservation_name(e.name).is_some() =>
                    {
                        self.index
                            .add(&self.dir.join(e.name), e.name, owner)
                            .map(Cow::Owned)
                    }
                    _ => None,
                };
                Held {
                    dir: &self.dir,
                    name: e.name,
                    content,
                    link,
                }
            };
            f(&held);
        }
        Ok(())
    }

    /// Addresses held by (id, ifname), or by `id` in the legacy format.
    #[must_use]
    pub fn get_by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let wanted = [Wanted::new(&key(id, ifname)), Wanted::new(id.trim())];
        let mut held = Vec::new();
        // An unlistable store holds nothing, as for Go's Walk.
        let _ = self.walk(&mut |h| {
            if wanted.iter().any(|w| h.holds(w))
                && let Some(ip) = h.name.to_str().and_then(parse_ip)
            {
                held.push((h.path(), ip));
            }
        });
        // In Go's Walk order: by path.
        held.sort_unstable();
        held.into_iter().map(|(_, ip)| ip).collect()
    }

    /// True when any file is held by (id, ifname), or else by `id` in the legacy format.
    #[must_use]
    pub fn find_by_id(&self, id: &str, ifname: &str) -> bool {
        let wanted = [Wanted::new(&key(id, ifname)), Wanted::new(id.trim())];
        let mut found = false;
        let _ = self.walk(&mut |held| found |= wanted.iter().any(|w| held.holds(w)));
        found
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
        let (current, legacy) = (Wanted::new(&key(id, ifname)), Wanted::new(id.trim()));
        // (path, index entry, holds the current format).
        let mut held = Vec::new();
        let _ = self.walk(&mut |h| {
            let is_current = h.holds(&current);
            if is_current || h.holds(&legacy) {
                let link = h.link.as_ref().map(|l| l.clone().into_owned());
                held.push((h.path(), link, is_current));
            }
        });
        let release_legacy = !held.iter().any(|h| h.2) || passes > 1;
        let mut failures = Vec::new();
        for (path, link, _) in held.iter().filter(|h| h.2 || release_legacy) {
            match fs::remove_file(path) {
                // Removed by someone else meanwhile is released all the same.
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    failures.push(io_error("remove", path, &e).msg);
                    continue;
                }
            }
            if let Some(entry) = link {
                self.index.remove(entry);
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
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path, &e)),
        }
        let name = ip.to_string();
        for entry in self.index.list().iter() {
            if let Some(Some((file, _))) = self.index.split(entry.name)
                && file == name.as_str()
            {
                self.index.remove(entry.name);
            }
        }
        Ok(())
    }

    /// Every reservation file directly in the store: those named by a canonical address.
    ///
    /// # Errors
    /// The directory or a reservation file cannot be read.
    pub fn reservations(&self) -> Result<Vec<Reservation>> {
        let mut out = Vec::new();
        let mut failed = None;
        self.walk(&mut |held| {
            if held.dir != self.dir {
                return;
            }
            let Some(ip) = reservation_name(held.name) else {
                return;
            };
            let owner = match &held.content {
                Content::Indexed(encoded) => index::decode(encoded),
                Content::Read(raw) => raw.clone(),
                Content::Unreadable(e) if e.kind() == ErrorKind::NotFound => return,
                Content::Unreadable(e) => {
                    failed.get_or_insert_with(|| io_error("read", &held.path(), e));
                    return;
                }
            };
            let owner = Owner::parse(&String::from_utf8_lossy(&owner));
            out.push(Reservation { ip, owner });
        })
        .map_err(|e| io_error("read", &self.dir, &e))?;
        if let Some(err) = failed {
            return Err(err);
        }
        out.sort_by_key(|r| r.ip);
        Ok(out)
    }
}

/// Go's Walk below the top level, where no store has files: every file read.
fn visit_unindexed(dir: &Path, f: &mut dyn FnMut(&Held<'_>)) {
    let Ok(dir_fd) = File::open(dir) else {
        return;
    };
    let Ok(listing) = Listing::read(&dir_fd) else {
        return;
    };
    for e in listing.iter() {
        if e.kind == Kind::Dir {
            visit_unindexed(&dir.join(e.name), f);
        } else if let Ok(data) = read_small(&dir_fd, e.name) {
            f(&Held {
                dir,
                name: e.name,
                content: Content::Read(trimmed(&data).to_vec()),
                link: None,
            });
        }
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

    fn index_entries(data_dir: &Path) -> Vec<String> {
        rcni_testkit::dir_names(&data_dir.join(index::INDEX_DIR))
    }

    #[test]
    fn the_owner_index_follows_the_store_whoever_changes_it() {
        let tmp = TestDir::new("index");
        let store = HostLocalStore::open(tmp.path(), "net1").expect("open");
        let dir = store.dir().to_path_buf();
        let index = tmp.path().join(index::INDEX_DIR);
        store
            .reserve("c1", "eth0", ip("10.0.0.2"), 0)
            .expect("reserve");
        assert_eq!(index_entries(tmp.path()), ["net1#10.0.0.2#c1%0D%0Aeth0"]);
        // Another network's entry and a malformed one of ours.
        fs::write(index.join("net2#10.0.0.9#x"), "").expect("other network");
        fs::write(index.join("net1#10.0.0.8"), "").expect("malformed");
        // A file written by another plugin is read, then indexed.
        fs::write(dir.join("10.0.0.3"), "c2\r\neth0").expect("Go's file");
        assert_eq!(store.get_by_id("c2", "eth0"), [ip("10.0.0.3")]);
        assert_eq!(
            index_entries(tmp.path()),
            [
                "net1#10.0.0.2#c1%0D%0Aeth0",
                "net1#10.0.0.3#c2%0D%0Aeth0",
                "net2#10.0.0.9#x"
            ]
        );
        // Released and reserved again by someone else under the same name: the entry
        // links the old file, so the new one is read.
        fs::remove_file(dir.join("10.0.0.2")).expect("Go's DEL");
        fs::write(dir.join("10.0.0.2"), "c3\r\neth0").expect("Go's ADD");
        assert!(store.get_by_id("c1", "eth0").is_empty());
        assert_eq!(store.get_by_id("c3", "eth0"), [ip("10.0.0.2")]);
        assert!(index_entries(tmp.path()).contains(&"net1#10.0.0.2#c3%0D%0Aeth0".to_string()));
        assert_eq!(store.reservations().expect("list").len(), 2);
        // Releases take their entries along; the other network's stays.
        store.release_by_id("c2", "eth0", 1).expect("release");
        store.release(ip("10.0.0.2")).expect("release");
        assert_eq!(index_entries(tmp.path()), ["net2#10.0.0.9#x"]);
    }

    #[test]
    fn without_an_index_the_files_are_read() {
        let tmp = TestDir::new("noindex");
        fs::write(tmp.path().join(index::INDEX_DIR), "not a directory").expect("block");
        let store = HostLocalStore::open(tmp.path(), "net1").expect("open");
        store
            .reserve("c1", "eth0", ip("10.0.0.2"), 0)
            .expect("reserve");
        assert_eq!(store.get_by_id("c1", "eth0"), [ip("10.0.0.2")]);
        assert!(store.find_by_id("c1", "eth0"));
        store.release_by_id("c1", "eth0", 1).expect("release");
        assert!(!store.dir().join("10.0.0.2").exists());
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
