//! Names visible outside the process: the on-disk store layout shared with the Go
//! host-local (reference §3.1, `backend/disk/backend.go`). Changing any of these breaks
//! mixed and in-place upgrades, so a test pins them.

/// Where stores live when `ipam.dataDir` is unset or empty.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The flock(2) target inside `<dataDir>/<network>` (go-filemutex on the directory).
pub const LOCK_FILE: &str = "lock";

/// `last_reserved_ip.<rangeSetIndex>`: the round-robin marker of each range set.
pub const LAST_RESERVED_IP_PREFIX: &str = "last_reserved_ip.";

/// Separates the container ID from the interface name in a reservation file.
pub const LINE_BREAK: &str = "\r\n";

/// Mode of the store directory (before umask), as `os.MkdirAll(dir, 0755)`.
pub const DIR_MODE: u32 = 0o755;

/// Mode of reservation and marker files (newest Go: 0600; Go ≤ 1.2 wrote 0644).
pub const FILE_MODE: u32 = 0o600;

/// Mode go-filemutex creates the lock file with.
pub const LOCK_MODE: u32 = 0o750;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_reference_ones() {
        assert_eq!(DEFAULT_DATA_DIR, "/var/lib/cni/networks");
        assert_eq!(LOCK_FILE, "lock");
        assert_eq!(LAST_RESERVED_IP_PREFIX, "last_reserved_ip.");
        assert_eq!(LINE_BREAK, "\r\n");
        assert_eq!((DIR_MODE, FILE_MODE, LOCK_MODE), (0o755, 0o600, 0o750));
    }
}
