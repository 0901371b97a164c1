//! The backup of a link's original attributes, `<dataDir>/<containerID>_<ifname>.json`, in
//! the reference's format (Go's `configToRestore` through `json.MarshalIndent(.., "", " ")`):
//! only the attributes ADD changes, in the order `mac`, `promisc`, `mtu`, `allmulti`,
//! `txQLen`, one-space indent, no final newline, mode 0600. A Go tuning restores our file
//! and we restore its.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcni_netlink::Link;
use serde::{Deserialize, Serialize};

use crate::config::{Conf, Mac, parse_go_mac};
use crate::names::backup_file_name;

/// The original values of the attributes ADD changes; `None` (and MTU 0) is "not changed".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mtu: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    #[serde(default, rename = "txQLen", skip_serializing_if = "Option::is_none")]
    pub tx_qlen: Option<i64>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Where the backup of one attachment lives.
#[must_use]
pub fn path(data_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    data_dir.join(backup_file_name(container_id, ifname))
}

impl Backup {
    /// What `link` has now, for each attribute `conf` is about to change.
    #[must_use]
    pub fn of(link: &Link, conf: &Conf) -> Backup {
        Backup {
            mac: match (conf.mac, link.mac) {
                (Some(_), Some(current)) => Mac(current).to_string(),
                _ => String::new(),
            },
            promisc: conf.promisc.then_some(link.promisc),
            mtu: if conf.mtu.is_some() {
                i64::from(link.mtu)
            } else {
                0
            },
            allmulti: conf.allmulti.map(|_| link.allmulti),
            tx_qlen: conf.txqlen.map(|_| i64::from(link.txqlen)),
        }
    }

    /// Each attribute from `self` when it records one, else from `other`.
    #[must_use]
    pub fn or(&self, other: &Backup) -> Backup {
        Backup {
            mac: if self.mac.is_empty() {
                other.mac.clone()
            } else {
                self.mac.clone()
            },
            promisc: self.promisc.or(other.promisc),
            mtu: if self.mtu == 0 { other.mtu } else { self.mtu },
            allmulti: self.allmulti.or(other.allmulti),
            tx_qlen: self.tx_qlen.or(other.tx_qlen),
        }
    }

    /// The file's text, byte for byte what the Go plugin writes.
    #[must_use]
    pub fn to_go_json(&self) -> String {
        let mut out = Vec::with_capacity(128);
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b" ");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        // Only strings, booleans and integers: serialization cannot fail, and every value
        // is ASCII (a MAC), so Go's HTML escaping changes nothing.
        if self.serialize(&mut ser).is_err() {
            return "{}".to_owned();
        }
        String::from_utf8(out).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads a backup as Go's `json.Unmarshal` would; `None` when it is not one (the
    /// reference then restores nothing).
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<Backup> {
        rcni_types::json::from_slice(text).ok()
    }

    /// The MAC to put back, if any (an unreadable one is skipped).
    #[must_use]
    pub fn mac(&self) -> Option<Mac> {
        (!self.mac.is_empty())
            .then(|| parse_go_mac(&self.mac))
            .flatten()
    }

    /// Writes the file atomically (a crash leaves the old file or none, never half of one),
    /// creating `data_dir` (0700) when needed.
    ///
    /// # Errors
    /// The directory or file cannot be written.
    pub fn write(&self, file: &Path) -> io::Result<()> {
        let dir = file.parent().unwrap_or_else(|| Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(self.to_go_json().as_bytes())?;
        drop(f);
        fs::rename(&tmp, file).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }
}

/// Removes the backup; already gone is fine.
///
/// # Errors
/// It exists and cannot be removed.
pub fn remove(file: &Path) -> io::Result<()> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_gos_marshal_indent_with_one_space() {
        let full = Backup {
            mac: "0a:58:0a:58:00:02".into(),
            promisc: Some(false),
            mtu: 1500,
            allmulti: Some(true),
            tx_qlen: Some(1000),
        };
        assert_eq!(
            full.to_go_json(),
            "{\n \"mac\": \"0a:58:0a:58:00:02\",\n \"promisc\": false,\n \"mtu\": 1500,\n \
             \"allmulti\": true,\n \"txQLen\": 1000\n}"
        );
        assert_eq!(Backup::default().to_go_json(), "{}");
        let mtu_only = Backup {
            mtu: 9000,
            ..Backup::default()
        };
        assert_eq!(mtu_only.to_go_json(), "{\n \"mtu\": 9000\n}");
        // txQLen 0 is kept: it is a pointer in Go, so only nil is omitted.
        let zero_q = Backup {
            tx_qlen: Some(0),
            ..Backup::default()
        };
        assert_eq!(zero_q.to_go_json(), "{\n \"txQLen\": 0\n}");
    }

    #[test]
    fn parse_reads_what_go_reads() {
        let b = Backup::parse(br#"{"MAC":"0A:58:0A:58:00:02","Mtu":1400,"txqlen":5}"#)
            .expect("Go matches keys case-insensitively");
        assert_eq!(b.mac().map(|m| m.0), Some([0x0a, 0x58, 0x0a, 0x58, 0, 2]));
        assert_eq!((b.mtu, b.tx_qlen, b.promisc), (1400, Some(5), None));
        assert_eq!(Backup::parse(b"not json"), None);
        assert_eq!(Backup::parse(br#"{"mtu":"1500"}"#), None);
        let round = Backup {
            mac: "02:00:00:00:00:01".into(),
            promisc: Some(true),
            mtu: 1280,
            allmulti: None,
            tx_qlen: None,
        };
        assert_eq!(Backup::parse(round.to_go_json().as_bytes()), Some(round));
    }
}
