//! What ADD did, per attachment: `<dataDir>/<network>/<containerID>_<ifname>.json` with the
//! backend used, the firewalld zone and the container's addresses.
//!
//! The reference keeps no state: its DEL without `prevResult` removes nothing, and a DEL
//! that picks another backend than ADD did (firewalld started in between) leaves the rules.
//! This record lets DEL and GC remove exactly what ADD added, and tells a repeated ADD that
//! its rules may already exist. The netfilter layout stays the reference's, so a Go plugin
//! still removes our rules with its own `prevResult` (and ignores this file).

use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::Backend;
use crate::names::{STATE_SUFFIX, state_file_name};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub backend: Backend,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub zone: String,
    pub addresses: Vec<IpAddr>,
}

/// The directory of one network's records.
#[must_use]
pub fn network_dir(data_dir: &Path, network: &str) -> PathBuf {
    data_dir.join(network)
}

/// The record of one attachment.
#[must_use]
pub fn path(data_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    network_dir(data_dir, network).join(state_file_name(container_id, ifname))
}

impl State {
    /// Reads a record; `None` when there is none or it is unreadable.
    #[must_use]
    pub fn read(file: &Path) -> Option<State> {
        let text = fs::read(file).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes the record atomically, creating the directories (0700).
    ///
    /// # Errors
    /// The directory or file cannot be written.
    pub fn write(&self, file: &Path) -> io::Result<()> {
        let dir = file.parent().unwrap_or_else(|| Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let text = serde_json::to_vec(self).map_err(io::Error::other)?;
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
        f.write_all(&text)?;
        drop(f);
        fs::rename(&tmp, file).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }
}

/// Removes a record; already gone is fine.
///
/// # Errors
/// It exists and cannot be removed.
pub fn remove(file: &Path) -> io::Result<()> {
    match fs::remove_file(file) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every record of one network: (file, `<containerID>_<ifname>` stem).
#[must_use]
pub fn list(dir: &Path) -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(STATE_SUFFIX)?.to_owned();
            (!stem.starts_with('.')).then(|| (e.path(), stem))
        })
        .collect()
}
