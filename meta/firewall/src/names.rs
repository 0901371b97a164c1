//! Names the firewall plugin uses outside the process, besides the netfilter ones in
//! `rcni_firewall::names`. Pinned by the tests below.

/// `backend` value for firewalld (`iptables` is `rcni_firewall::names::BACKEND_IPTABLES`).
pub const BACKEND_FIREWALLD: &str = "firewalld";
/// Default of `dataDir` (an rcni key; the reference keeps no state).
pub const DEFAULT_DATA_DIR: &str = "/run/cni/firewall";
/// Suffix of a record file.
pub const STATE_SUFFIX: &str = ".json";

/// The record of one attachment: `<containerID>_<ifname>.json`, as tuning names its backups.
#[must_use]
pub fn state_file_name(container_id: &str, ifname: &str) -> String {
    format!("{container_id}_{ifname}{STATE_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        assert_eq!(BACKEND_FIREWALLD, "firewalld");
        assert_eq!(rcni_firewall::names::BACKEND_IPTABLES, "iptables");
        assert_eq!(DEFAULT_DATA_DIR, "/run/cni/firewall");
        assert_eq!(state_file_name("abc", "eth0"), "abc_eth0.json");
    }
}
