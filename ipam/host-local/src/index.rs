//! The owner index: who holds each reservation file, without reading the files.
//!
//! Go's host-local answers "what does this container hold" (ADD's duplicate check, DEL,
//! CHECK) by reading every file in the store, so each verb costs one open, read and close
//! per pod on the host. This index keeps the answer next to the store instead:
//!
//! `<dataDir>/.rcni-index/<network>#<file>#<owner>` is a hard link to the reservation
//! file `<dataDir>/<network>/<file>`, where `<network>` and `<owner>` (the file's trimmed
//! content) have every byte outside `[A-Za-z0-9._-]` written as `%XX`. One listing of
//! each directory then gives every file's owner: an entry is trusted only when it links
//! the very file now in the store (same inode number). The link keeps that inode
//! allocated, so its number cannot go to a new file while the entry exists; a file
//! removed and made again by someone else (the Go plugin, an admin) is a new inode, and
//! is read. Files without a matching entry are read, as without the index, and then
//! given one; entries whose file is gone are removed. Entries go with their reservations,
//! so a store with none leaves only the empty `.rcni-index` beside it.
//!
//! The store itself (`<dataDir>/<network>`) is untouched and stays byte-identical to
//! Go's; Go never looks at `.rcni-index` (a network name cannot start with a dot). What
//! the index cannot see is a reservation file rewritten in place, keeping its inode:
//! neither plugin ever does that (files are created with O_EXCL, written once, removed).
//!
//! Everything of one network runs under its store's lock; other networks' entries are
//! left alone. Any failure (a filesystem without hard links, a name too long) only means
//! files are read, as without the index.

use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, File};
use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::dirents::Listing;
use crate::names;

/// `<dataDir>/.rcni-index`: every network's entries.
pub const INDEX_DIR: &str = ".rcni-index";

/// Separates the network, the file name and the owner in an entry's name.
const SEPARATOR: u8 = b'#';

/// Longest name a Linux filesystem takes (`NAME_MAX`).
const NAME_MAX: usize = 255;

fn keeps(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// A name or owner as an entry's name holds it: bytes outside `[A-Za-z0-9._-]` as `%XX`.
#[must_use]
pub fn encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 8);
    for &b in text {
        if keeps(b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// The bytes an [`encode`]d text stands for; the text comes from [`OwnerIndex::split`],
/// which checked it.
#[must_use]
pub fn decode(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = std::str::from_utf8(&encoded[i + 1..i + 3]).unwrap_or("");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
            i += 3;
        } else {
            out.push(encoded[i]);
            i += 1;
        }
    }
    out
}

/// `<file>#<owner>` as this module writes it: the file name and the encoded owner, or
/// `None` when it is not well formed.
fn split_entry(name: &OsStr) -> Option<(&OsStr, &[u8])> {
    let bytes = name.as_bytes();
    let at = bytes.iter().position(|&b| b == SEPARATOR)?;
    let (file, owner) = (&bytes[..at], &bytes[at + 1..]);
    let mut i = 0;
    while i < owner.len() {
        match owner[i] {
            b'%' => {
                let pair = owner.get(i + 1..i + 3)?;
                if !pair.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
                    return None;
                }
                i += 3;
            }
            b if keeps(b) => i += 1,
            _ => return None,
        }
    }
    (!file.is_empty()).then(|| (OsStr::from_bytes(file), owner))
}

/// `<file>#<owner>`.
fn entry_name(file: &OsStr, owner: &[u8]) -> OsString {
    let mut name = file.as_bytes().to_vec();
    name.push(SEPARATOR);
    name.extend_from_slice(&encode(owner));
    OsString::from_vec(name)
}

/// The index of one network's store.
#[derive(Debug)]
pub struct OwnerIndex {
    dir: PathBuf,
    /// `<network>#`, encoded: what this network's entries start with.
    prefix: Vec<u8>,
}

impl OwnerIndex {
    #[must_use]
    pub fn new(data_dir: &Path, network: &str) -> OwnerIndex {
        let mut prefix = encode(network.as_bytes());
        prefix.push(SEPARATOR);
        OwnerIndex {
            dir: data_dir.join(INDEX_DIR),
            prefix,
        }
    }

    /// Every entry, this network's and others'; a missing directory is an empty index.
    #[must_use]
    pub fn list(&self) -> Listing {
        File::open(&self.dir)
            .and_then(|dir| Listing::read(&dir))
            .unwrap_or_default()
    }

    /// The file an entry of this network stands for and its encoded owner. `Some(None)`
    /// for an entry of this network that this module did not make; `None` for another
    /// network's entry.
    #[must_use]
    pub fn split<'a>(&self, entry: &'a OsStr) -> Option<Option<(&'a OsStr, &'a [u8])>> {
        let rest = entry.as_bytes().strip_prefix(self.prefix.as_slice())?;
        Some(split_entry(OsStr::from_bytes(rest)))
    }

    /// Links `file` (named `name` in the store) as held by `owner`; the entry's name when
    /// it was made.
    pub fn add(&self, file: &Path, name: &OsStr, owner: &[u8]) -> Option<OsString> {
        let mut entry = self.prefix.clone();
        entry.extend_from_slice(entry_name(name, owner).as_bytes());
        if entry.len() > NAME_MAX {
            return None;
        }
        let entry = OsString::from_vec(entry);
        let target = self.dir.join(&entry);
        match fs::hard_link(file, &target) {
            Ok(()) => Some(entry),
            Err(e) if e.kind() == ErrorKind::NotFound && file.exists() => {
                let _ = DirBuilder::new().mode(names::DIR_MODE).create(&self.dir);
                fs::hard_link(file, &target).ok().map(|()| entry)
            }
            Err(_) => None,
        }
    }

    /// Removes one entry; already gone is fine.
    pub fn remove(&self, entry: &OsStr) {
        let _ = fs::remove_file(self.dir.join(entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_round_trip_any_owner_and_network() {
        let index = OwnerIndex::new(Path::new("/x"), "net#1/a");
        for owner in [
            &b"c1\r\neth0"[..],
            b"abc-DEF_0.9",
            b"a#b%c/d e",
            b"\xff\x00",
            b"",
        ] {
            let mut name = index.prefix.clone();
            name.extend_from_slice(entry_name(OsStr::new("10.0.0.2"), owner).as_bytes());
            let name = OsString::from_vec(name);
            assert!(!name.as_bytes().contains(&b'/'), "{name:?}");
            let (file, encoded) = index.split(&name).expect("ours").expect("parses");
            assert_eq!(file, "10.0.0.2");
            assert_eq!(decode(encoded), owner);
        }
        assert_eq!(
            entry_name(OsStr::new("fd00::5"), b"c1\r\neth0"),
            OsString::from("fd00::5#c1%0D%0Aeth0")
        );
        assert_eq!(index.prefix, b"net%231%2Fa#");
        assert_eq!(
            index.split(OsStr::new("net#10.0.0.2#c1")),
            None,
            "another network"
        );
        for bad in [
            "nohash",
            "#owner",
            "10.0.0.2#%G1",
            "10.0.0.2#%1",
            "10.0.0.2#a b",
            "a#%0a",
        ] {
            assert_eq!(split_entry(OsStr::new(bad)), None, "{bad}");
        }
    }
}
