//! Every name the tuning plugin uses outside the process, as the reference
//! (`plugins/meta/tuning/tuning.go`) spells it. Pinned by the tests below.

/// Default of `dataDir`: where ADD keeps the original link attributes for DEL.
pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";
/// The optional sysctl allow-list: one Go regexp per line; when the file exists, every
/// sysctl key must match one of them.
pub const ALLOWLIST_FILE: &str = "/etc/cni/tuning/allowlist.conf";
/// Only sysctls under this directory may be written.
pub const PROC_SYS: &str = "/proc/sys";
pub const NET_COMPONENT: &str = "net";
/// In a sysctl key, replaced (once) by CNI_IFNAME.
pub const IFNAME_PLACEHOLDER: &str = "IFNAME";
/// The CNI_ARGS key carrying a MAC address.
pub const CNI_ARGS_MAC: &str = "MAC";

/// The backup file of one attachment: `<containerID>_<ifname>.json`.
#[must_use]
pub fn backup_file_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}_{ifname}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_go() {
        assert_eq!(DEFAULT_DATA_DIR, "/run/cni/tuning");
        assert_eq!(ALLOWLIST_FILE, "/etc/cni/tuning/allowlist.conf");
        assert_eq!(IFNAME_PLACEHOLDER, "IFNAME");
        assert_eq!(CNI_ARGS_MAC, "MAC");
        assert_eq!(backup_file_name("abc", "eth0"), "abc_eth0.json");
    }
}
