//! Leases on disk, so a restarted daemon keeps maintaining the leases of running pods
//! (the reference forgets them: plugins#235, #767).
//!
//! One JSON file per lease in the state directory (`-statedir`, default
//! `/run/cni/dhcp`: a tmpfs, so a reboot, which also ends every pod, starts empty). A file
//! is replaced atomically (write to a temporary name, then rename) after every
//! acquisition and renewal, and removed when the lease is released.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::{LeaseKey, LeaseOptions};

/// The layout version of a state file; files of another version are ignored.
pub const RECORD_VERSION: u32 = 1;

/// File name suffix of a state file.
const SUFFIX: &str = ".lease.json";

/// What a lease needs to be resumed: the attachment, how it was asked for, the lease's
/// timing and the result it gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub version: u32,
    #[serde(flatten)]
    pub key: LeaseKey,
    /// As the plugin sent it (without the daemon's host prefix).
    pub netns: String,
    pub options: LeaseOptions,
    pub lease: SavedLease,
    /// The CNI result (1.1.0 JSON) the lease gave.
    pub result: Value,
}

/// A bound lease's fields, with the time it was bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedLease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub server_id: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub t1: u32,
    pub t2: u32,
    pub lease_time: u32,
    /// Seconds since the epoch when the ACK arrived.
    pub bound_at: u64,
}

impl SavedLease {
    /// Seconds left until the lease expires at `now` (0 when expired).
    #[must_use]
    pub fn remaining(&self, now: u64) -> u64 {
        (self.bound_at + u64::from(self.lease_time)).saturating_sub(now)
    }
}

/// Seconds since the epoch.
#[must_use]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Creates the directory (mode 0700) if needed.
    ///
    /// # Errors
    /// It cannot be created.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    /// The file of `client_id`: its bytes outside `[A-Za-z0-9_.-]` escaped as `%XX`
    /// (the client id holds `/`), or a hash when that is too long for a file name.
    #[must_use]
    pub fn path(&self, client_id: &str) -> PathBuf {
        let mut name = String::new();
        for b in client_id.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
                name.push(char::from(b));
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        if name.len() + SUFFIX.len() > 255 || name.starts_with('.') {
            name = format!("h-{:016x}", fnv1a(client_id.as_bytes()));
        }
        self.dir.join(name + SUFFIX)
    }

    /// Writes `record` atomically.
    ///
    /// # Errors
    /// The file cannot be written or renamed into place.
    pub fn save(&self, record: &Record) -> std::io::Result<()> {
        let path = self.path(&record.key.client_id());
        let tmp = path.with_extension("tmp");
        let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)
    }

    /// Removes the record of `client_id`; a missing file is success.
    ///
    /// # Errors
    /// It exists and cannot be removed.
    pub fn remove(&self, client_id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(client_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable record of this layout version; unreadable files are reported in
    /// the second list (and left alone).
    #[must_use]
    pub fn load(&self) -> (Vec<Record>, Vec<String>) {
        let mut records = Vec::new();
        let mut problems = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (records, problems);
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if !path.to_string_lossy().ends_with(SUFFIX) {
                continue;
            }
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(r) if r.version == RECORD_VERSION => records.push(r),
                Ok(r) => problems.push(format!(
                    "{}: layout version {} is not {RECORD_VERSION}",
                    path.display(),
                    r.version
                )),
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        records.sort_by(|a, b| a.key.cmp(&b.key));
        (records, problems)
    }
}

/// FNV-1a, 64 bits: a stable short name for very long client ids.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(cid: &str) -> Record {
        Record {
            version: RECORD_VERSION,
            key: LeaseKey {
                container_id: cid.into(),
                network: "net".into(),
                ifname: "eth0".into(),
            },
            netns: "/run/netns/x".into(),
            options: LeaseOptions::default(),
            lease: SavedLease {
                address: Ipv4Addr::new(10, 0, 0, 5),
                prefix: 24,
                server_id: Ipv4Addr::new(10, 0, 0, 1),
                siaddr: Ipv4Addr::new(10, 0, 0, 1),
                t1: 60,
                t2: 105,
                lease_time: 120,
                bound_at: 1000,
            },
            result: json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24"}]}),
        }
    }

    #[test]
    fn records_round_trip_and_are_removed() {
        let dir = std::env::temp_dir().join(format!("rcni-dhcp-store-{}", std::process::id()));
        let store = Store::open(&dir).expect("open");
        let (a, b) = (record("a"), record("b"));
        store.save(&b).expect("save");
        store.save(&a).expect("save");
        std::fs::write(dir.join("junk.lease.json"), "{").expect("junk");
        let (got, problems) = store.load();
        assert_eq!(got, [a.clone(), b]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        store.remove(&a.key.client_id()).expect("remove");
        store.remove(&a.key.client_id()).expect("remove twice");
        assert_eq!(store.load().0.len(), 1);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn file_names_are_safe() {
        let store = Store {
            dir: PathBuf::from("/s"),
        };
        assert_eq!(
            store.path("c1/net/eth0"),
            PathBuf::from("/s/c1%2Fnet%2Feth0.lease.json")
        );
        let long = "x".repeat(254);
        let name = store.path(&long);
        assert!(
            name.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("h-")),
            "{name:?}"
        );
    }

    #[test]
    fn remaining_time() {
        let l = record("a").lease;
        assert_eq!(l.remaining(1000), 120);
        assert_eq!(l.remaining(1100), 20);
        assert_eq!(l.remaining(5000), 0);
    }
}
