//! Every name this crate writes into netfilter, and the tools it runs.
//!
//! These must stay byte-identical to containernetworking/plugins (`pkg/utils/utils.go`,
//! `pkg/ip/ipmasq_iptables_linux.go`, `pkg/ip/ipmasq_nftables_linux.go`): a Go plugin must be
//! able to delete what we add and the other way round (DESIGN §3). Each one is pinned by a
//! test below.

use sha2::{Digest, Sha512};

/// `ipMasqBackend` config key, named in errors about an unknown backend.
pub const IPMASQ_BACKEND_KEY: &str = "ipMasqBackend";
/// `ipMasqBackend` value for the iptables backend.
pub const BACKEND_IPTABLES: &str = "iptables";
/// `ipMasqBackend` value for the nftables backend.
pub const BACKEND_NFTABLES: &str = "nftables";

/// Executables, looked up on `PATH` (then the usual sbin directories).
pub const IPTABLES_RESTORE: &str = "iptables-restore";
pub const IP6TABLES_RESTORE: &str = "ip6tables-restore";
pub const IPTABLES_SAVE: &str = "iptables-save";
pub const IP6TABLES_SAVE: &str = "ip6tables-save";
pub const NFT: &str = "nft";

/// Every per-container iptables chain starts with this (`utils.FormatChainName`).
pub const CHAIN_PREFIX: &str = "CNI-";
/// Length of every per-container chain name: prefix plus hex digest (`maxChainLength`).
pub const CHAIN_NAME_LEN: usize = 28;

/// iptables table and built-in chain holding the masquerade jumps.
pub const NAT_TABLE: &str = "nat";
pub const POSTROUTING: &str = "POSTROUTING";

/// Multicast ranges that are never masqueraded.
pub const IPV4_MULTICAST: &str = "224.0.0.0/4";
pub const IPV6_MULTICAST: &str = "ff00::/8";

/// nftables masquerade table (`inet cni_plugins_masquerade`) and its chains.
pub const NFT_FAMILY_INET: &str = "inet";
pub const NFT_MASQ_TABLE: &str = "cni_plugins_masquerade";
pub const NFT_MASQ_CHAIN: &str = "masq_checks";
pub const NFT_POSTROUTING_CHAIN: &str = "postrouting";
pub const NFT_MASQ_TABLE_COMMENT: &str =
    "Masquerading for plugins from github.com/containernetworking/plugins";
pub const NFT_MASQ_CHAIN_COMMENT: &str =
    "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet";
/// knftables' `CommentLengthMax`: longer rule comments are cut to this many bytes.
pub const NFT_COMMENT_MAX: usize = 128;
/// Table named in the dry-run `nft --check` probe (never created), as knftables probes.
pub const NFT_PROBE_TABLE: &str = "supports_nftables_test";
/// Length of each hash in an nftables rule comment.
pub const NFT_HASH_LEN: usize = 16;

/// nftables family of the MAC spoof check's table (`bridge nat`, `pkg/link/spoofcheck.go`).
pub const NFT_FAMILY_BRIDGE: &str = "bridge";
/// The spoof check's table, shared by every attachment and never deleted.
pub const SPOOFCHK_TABLE: &str = "nat";
/// Its base chain: `type filter hook prerouting priority -300; policy accept;` (-300 is what
/// `nft list` shows as `dstnat` in the bridge family).
pub const SPOOFCHK_BASE_CHAIN: &str = "PREROUTING";
pub const SPOOFCHK_BASE_PRIORITY: i32 = -300;
/// Per-attachment chains: `cni-br-iface-<id>`, jumping to `cni-br-iface-<id>-mac`.
pub const SPOOFCHK_IFACE_CHAIN_PREFIX: &str = "cni-br-iface-";
pub const SPOOFCHK_MAC_CHAIN_SUFFIX: &str = "-mac";
/// Every spoof-check rule's comment: `macspoofchk-<id>`.
pub const SPOOFCHK_COMMENT_PREFIX: &str = "macspoofchk-";

/// The attachment id of the spoof check's names, `<containerID>-<ifname>` (the bridge
/// plugin's `uniqueID`).
#[must_use]
pub fn spoofcheck_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}-{ifname}")
}

/// `cni-br-iface-<containerID>-<ifname>`: jumped to from `PREROUTING` for the host veth.
#[must_use]
pub fn spoofcheck_iface_chain(container_id: &str, ifname: &str) -> String {
    format!(
        "{SPOOFCHK_IFACE_CHAIN_PREFIX}{}",
        spoofcheck_id(container_id, ifname)
    )
}

/// `cni-br-iface-<containerID>-<ifname>-mac`: accepts the container's MAC, drops the rest.
#[must_use]
pub fn spoofcheck_mac_chain(container_id: &str, ifname: &str) -> String {
    format!(
        "{}{SPOOFCHK_MAC_CHAIN_SUFFIX}",
        spoofcheck_iface_chain(container_id, ifname)
    )
}

/// `macspoofchk-<containerID>-<ifname>`, on every rule of one attachment.
#[must_use]
pub fn spoofcheck_comment(container_id: &str, ifname: &str) -> String {
    format!(
        "{SPOOFCHK_COMMENT_PREFIX}{}",
        spoofcheck_id(container_id, ifname)
    )
}

/// A MAC as Go's `net.HardwareAddr.String()` prints it: lowercase hex pairs joined by `:`.
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    let mut out = String::with_capacity(17);
    for (i, byte) in mac.into_iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0xf));
    }
    out
}

/// `utils.MustFormatHashWithPrefix`: `prefix` followed by the lowercase hex sha512 of
/// `to_hash`, cut to `len` characters in total.
///
/// # Panics
/// If `prefix` is not shorter than `len` or `len` exceeds prefix plus 128 hex digits; every
/// caller passes constants, so this is a programming error, as in Go.
#[must_use]
pub fn hash_with_prefix(len: usize, prefix: &str, to_hash: &str) -> String {
    assert!(
        prefix.len() < len && len <= prefix.len() + 128,
        "invalid hash length {len} for prefix {prefix:?}"
    );
    let digest = Sha512::digest(to_hash.as_bytes());
    let mut out = String::with_capacity(prefix.len() + 128);
    out.push_str(prefix);
    for byte in digest {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0xf));
    }
    out.truncate(len);
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// `utils.MustFormatChainNameWithPrefix`: `CNI-<prefix><hex of sha512(network + id)>`, 28
/// characters. Portmap uses the prefixes `DN-` and `SN-`.
#[must_use]
pub fn chain_name_with_prefix(network: &str, container_id: &str, prefix: &str) -> String {
    let full_prefix = format!("{CHAIN_PREFIX}{prefix}");
    hash_with_prefix(
        CHAIN_NAME_LEN,
        &full_prefix,
        &format!("{network}{container_id}"),
    )
}

/// `utils.FormatChainName`: the per-container masquerade chain, `CNI-` + 24 hex characters.
#[must_use]
pub fn masquerade_chain(network: &str, container_id: &str) -> String {
    chain_name_with_prefix(network, container_id, "")
}

/// `utils.FormatComment`: `name: "<net>" id: "<cid>"`, both quoted as Go's `%q` does.
#[must_use]
pub fn iptables_comment(network: &str, container_id: &str) -> String {
    format!("name: {} id: {}", go_quote(network), go_quote(container_id))
}

/// The hash every nftables masquerade comment of one network starts with.
#[must_use]
pub fn nft_network_hash(network: &str) -> String {
    hash_with_prefix(NFT_HASH_LEN, "", network)
}

/// The hash identifying one attachment's nftables masquerade rules:
/// `<h16(network)>-<h16(ifname + ":" + container_id)>`.
#[must_use]
pub fn nft_instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        nft_network_hash(network),
        hash_with_prefix(NFT_HASH_LEN, "", &format!("{ifname}:{container_id}"))
    )
}

/// The nftables rule comment: `<instance hash>, net: <net>, if: <if>, id: <cid>` with double
/// quotes removed from the names, cut to [`NFT_COMMENT_MAX`] bytes.
///
/// Go cuts at a byte offset even inside a multi-byte character; we cut at the last character
/// boundary at or below it, which gives the same result for the ASCII names libcni accepts.
#[must_use]
pub fn nft_masquerade_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let strip = |s: &str| s.replace('"', "");
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        nft_instance_hash(network, ifname, container_id),
        strip(network),
        strip(ifname),
        strip(container_id)
    );
    if comment.len() > NFT_COMMENT_MAX {
        let mut cut = NFT_COMMENT_MAX;
        while !comment.is_char_boundary(cut) {
            cut -= 1;
        }
        comment.truncate(cut);
    }
    comment
}

/// Go's `strconv.Quote` (what `%q` prints) for the characters that can appear in CNI names:
/// backslash escapes for `"`, `\` and control characters, printable text unchanged.
#[must_use]
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Inverse of [`go_quote`]; `None` when `s` is not one whole Go double-quoted string.
#[must_use]
pub fn go_unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => {
                let escaped = match chars.next()? {
                    '"' => '"',
                    '\\' => '\\',
                    '\'' => '\'',
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    'x' => hex_char(&mut chars, 2)?,
                    'u' => hex_char(&mut chars, 4)?,
                    'U' => hex_char(&mut chars, 8)?,
                    _ => return None,
                };
                out.push(escaped);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

fn hex_char(chars: &mut std::str::Chars<'_>, digits: usize) -> Option<char> {
    let mut value = 0u32;
    for _ in 0..digits {
        value = value * 16 + chars.next()?.to_digit(16)?;
    }
    char::from_u32(value)
}

// ---- firewall plugin: CNI-FORWARD / CNI-ADMIN (plugins/meta/firewall/iptables.go) ----

/// iptables table and built-in chain of the firewall plugin's rules.
pub const FILTER_TABLE: &str = "filter";
pub const FORWARD: &str = "FORWARD";
/// The plugin's own chain, jumped to first thing from `FORWARD`; never deleted.
pub const FWD_CHAIN: &str = "CNI-FORWARD";
/// Default of `iptablesAdminChainName`: jumped to first thing from `CNI-FORWARD`, left to
/// the administrator; never deleted.
pub const FWD_ADMIN_CHAIN: &str = "CNI-ADMIN";
/// Comment of the `FORWARD -> CNI-FORWARD` jump.
pub const FWD_JUMP_COMMENT: &str = "CNI firewall plugin rules";
/// Comment of the `CNI-FORWARD -> CNI-ADMIN` jump.
pub const FWD_ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";
/// `--ctstate` of the per-address rule accepting replies to the container.
pub const FWD_CTSTATE: &str = "RELATED,ESTABLISHED";
/// Longest iptables chain name (`XT_EXTENSION_MAXNAMELEN` less the NUL).
pub const IPTABLES_CHAIN_MAX: usize = 28;

/// `ingressPolicy` chains (plugins/meta/firewall/ingresspolicy.go), docker style; shared by
/// every bridge and never deleted.
pub const ISOLATION_STAGE_1: &str = "CNI-ISOLATION-STAGE-1";
pub const ISOLATION_STAGE_2: &str = "CNI-ISOLATION-STAGE-2";
/// `ingressPolicy` values.
pub const INGRESS_OPEN: &str = "open";
pub const INGRESS_SAME_BRIDGE: &str = "same-bridge";
pub const INGRESS_ISOLATED: &str = "isolated";
/// Comment of the isolation rules shared by both policies.
pub const ISOLATION_DEFAULT_COMMENT: &str =
    "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)";

/// Comment of the isolation rules specific to one policy.
#[must_use]
pub fn isolation_policy_comment(policy: &str) -> String {
    format!("CNI firewall plugin rules (ingressPolicy: {policy})")
}

// ---- firewall plugin: firewalld backend (plugins/meta/firewall/firewalld.go) ----

/// The D-Bus client run for firewalld calls (systemd's).
pub const BUSCTL: &str = "busctl";
/// Where the system bus listens when `DBUS_SYSTEM_BUS_ADDRESS` is unset.
pub const DBUS_SYSTEM_SOCKETS: &[&str] = &[
    "/run/dbus/system_bus_socket",
    "/var/run/dbus/system_bus_socket",
];
pub const DBUS_SYSTEM_BUS_ADDRESS_ENV: &str = "DBUS_SYSTEM_BUS_ADDRESS";
pub const DBUS_NAME: &str = "org.freedesktop.DBus";
pub const DBUS_PATH: &str = "/org/freedesktop/DBus";
pub const DBUS_GET_NAME_OWNER: &str = "GetNameOwner";
pub const FIREWALLD_NAME: &str = "org.fedoraproject.FirewallD1";
pub const FIREWALLD_PATH: &str = "/org/fedoraproject/FirewallD1";
pub const FIREWALLD_ZONE_INTERFACE: &str = "org.fedoraproject.FirewallD1.zone";
pub const FIREWALLD_ADD_SOURCE: &str = "addSource";
pub const FIREWALLD_REMOVE_SOURCE: &str = "removeSource";
pub const FIREWALLD_QUERY_SOURCE: &str = "querySource";
/// The error firewalld answers `addSource` with when the source is already in the zone.
pub const FIREWALLD_ZONE_ALREADY_SET: &str = "ZONE_ALREADY_SET";
/// Default of `firewalldZone`.
pub const FIREWALLD_DEFAULT_ZONE: &str = "trusted";

// ---- portmap (`plugins/meta/portmap/{portmap_iptables,portmap_nftables}.go`) ----

/// portmap's `backend` config key, named in errors about backend options.
pub const PORTMAP_BACKEND_KEY: &str = "backend";
/// Built-in `nat` chains portmap hooks into.
pub const PREROUTING: &str = "PREROUTING";
pub const OUTPUT: &str = "OUTPUT";
/// The top-level DNAT chain, jumped to from PREROUTING and OUTPUT for local destinations;
/// never deleted.
pub const HOSTPORT_DNAT_CHAIN: &str = "CNI-HOSTPORT-DNAT";
/// Sets the masquerade mark on hairpin and localhost traffic.
pub const HOSTPORT_SETMARK_CHAIN: &str = "CNI-HOSTPORT-SETMARK";
/// Masquerades marked traffic; jumped to from the top of POSTROUTING.
pub const HOSTPORT_MASQ_CHAIN: &str = "CNI-HOSTPORT-MASQ";
/// Top-level SNAT chain of portmap before v0.7; only ever torn down.
pub const HOSTPORT_OLD_SNAT_CHAIN: &str = "CNI-HOSTPORT-SNAT";
/// Per-container chain prefixes for [`chain_name_with_prefix`].
pub const PORTMAP_DNAT_PREFIX: &str = "DN-";
pub const PORTMAP_OLD_SNAT_PREFIX: &str = "SN-";
/// Comments of the shared portmap rules.
pub const PORTMAP_MARK_COMMENT: &str = "CNI portfwd masquerade mark";
pub const PORTMAP_MASQ_COMMENT: &str = "CNI portfwd requiring masquerade";
/// Default `markMasqBit` (Kubernetes uses 14 and 15, Calico 20-31).
pub const PORTMAP_DEFAULT_MARK_BIT: u8 = 13;
/// iptables' comment limit as portmap's `trimComment` applies it.
pub const PORTMAP_COMMENT_MAX: usize = 255;
/// multiport takes at most this many ports per rule.
pub const MULTIPORT_MAX_PORTS: usize = 15;

/// nftables: one table per family, `ip cni_hostport` and `ip6 cni_hostport`.
pub const NFT_FAMILY_IP: &str = "ip";
pub const NFT_FAMILY_IP6: &str = "ip6";
pub const NFT_PORTMAP_TABLE: &str = "cni_hostport";
pub const NFT_PORTMAP_TABLE_COMMENT: &str = "CNI portmap plugin";
/// Every per-container DNAT rule.
pub const NFT_HOSTPORTS_CHAIN: &str = "hostports";
/// Held rules with a host IP before v1.6.2; kept (empty) so upgrades stay transparent.
pub const NFT_HOSTIP_HOSTPORTS_CHAIN: &str = "hostip_hostports";
/// Jumps to both of the above.
pub const NFT_HOSTPORTS_ALL_CHAIN: &str = "hostports_all";
/// Base chains: nat prerouting and output at dstnat (-100), postrouting at srcnat (100).
pub const NFT_PORTMAP_PREROUTING_CHAIN: &str = "prerouting";
pub const NFT_PORTMAP_OUTPUT_CHAIN: &str = "output";
pub const NFT_PORTMAP_MASQ_CHAIN: &str = "masquerading";
/// knftables writes named priorities as numbers: nft 1.0 refuses `dstnat` in the output hook.
pub const NFT_PRIORITY_DSTNAT: i32 = -100;
pub const NFT_PRIORITY_SRCNAT: i32 = 100;

/// `CNI-DN-<hash(network + container id)>`: one container's DNAT chain.
#[must_use]
pub fn portmap_dnat_chain(network: &str, container_id: &str) -> String {
    chain_name_with_prefix(network, container_id, PORTMAP_DNAT_PREFIX)
}

/// `CNI-SN-<hash>`: the per-container SNAT chain of portmap before v0.7, torn down on DEL.
#[must_use]
pub fn portmap_old_snat_chain(network: &str, container_id: &str) -> String {
    chain_name_with_prefix(network, container_id, PORTMAP_OLD_SNAT_PREFIX)
}

/// The comment of a container's entry rules in `CNI-HOSTPORT-DNAT`:
/// `dnat name: "<net>" id: "<cid>"`, the names inserted as they are (Go's `"%s"`, not `%q`),
/// cut to 253 bytes plus `...` when longer than 255 (`trimComment`).
#[must_use]
pub fn portmap_dnat_comment(network: &str, container_id: &str) -> String {
    let comment = format!("dnat name: \"{network}\" id: \"{container_id}\"");
    if comment.len() <= PORTMAP_COMMENT_MAX {
        return comment;
    }
    let mut cut = PORTMAP_COMMENT_MAX - 2;
    while !comment.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &comment[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pinned values were computed outside Rust:
    //   printf 'podmanabc' | sha512sum | cut -c1-24   -> 514f2d63f742a896f7a7f9d8
    //   printf 'podman'    | sha512sum | cut -c1-16   -> 1d8721804f16f412
    //   printf 'eth0:abc'  | sha512sum | cut -c1-16   -> e65086f8a75535c6
    // and the chain name matches what /usr/lib/cni/bridge (Go, 1.1.1) created for that pair.
    #[test]
    fn masquerade_chain_matches_go() {
        assert_eq!(
            masquerade_chain("podman", "abc"),
            "CNI-514f2d63f742a896f7a7f9d8"
        );
        assert_eq!(masquerade_chain("podman", "abc").len(), CHAIN_NAME_LEN);
    }

    #[test]
    fn chain_prefix_keeps_length() {
        let dn = chain_name_with_prefix("podman", "abc", "DN-");
        assert_eq!(dn, "CNI-DN-514f2d63f742a896f7a7f");
        assert_eq!(dn.len(), CHAIN_NAME_LEN);
    }

    #[test]
    fn iptables_comment_matches_go_format() {
        assert_eq!(
            iptables_comment("podman", "abc"),
            r#"name: "podman" id: "abc""#
        );
        assert_eq!(
            iptables_comment("a\"b", "c\\d\n"),
            r#"name: "a\"b" id: "c\\d\n""#
        );
    }

    #[test]
    fn nft_comment_matches_go_format() {
        assert_eq!(nft_network_hash("podman"), "1d8721804f16f412");
        assert_eq!(
            nft_instance_hash("podman", "eth0", "abc"),
            "1d8721804f16f412-e65086f8a75535c6"
        );
        assert_eq!(
            nft_masquerade_comment("podman", "eth0", "abc"),
            "1d8721804f16f412-e65086f8a75535c6, net: podman, if: eth0, id: abc"
        );
        assert_eq!(
            nft_masquerade_comment("pod\"man", "eth0", "abc"),
            format!(
                "{}, net: podman, if: eth0, id: abc",
                nft_instance_hash("pod\"man", "eth0", "abc")
            )
        );
    }

    #[test]
    fn nft_comment_is_cut_to_128_bytes() {
        let cid = "f".repeat(100);
        let comment = nft_masquerade_comment("podman", "eth0", &cid);
        assert_eq!(comment.len(), NFT_COMMENT_MAX);
        assert!(comment.starts_with(&nft_instance_hash("podman", "eth0", &cid)));
        let wide = nft_masquerade_comment("podman", "eth0", &"é".repeat(64));
        assert!(wide.len() <= NFT_COMMENT_MAX);
    }

    #[test]
    fn names_are_pinned() {
        assert_eq!(NFT_MASQ_TABLE, "cni_plugins_masquerade");
        assert_eq!(NFT_MASQ_CHAIN, "masq_checks");
        assert_eq!(NFT_POSTROUTING_CHAIN, "postrouting");
        assert_eq!(NFT_COMMENT_MAX, 128);
        assert_eq!(CHAIN_PREFIX, "CNI-");
        assert_eq!(IPV4_MULTICAST, "224.0.0.0/4");
        assert_eq!(IPV6_MULTICAST, "ff00::/8");
    }

    #[test]
    fn spoofcheck_names_match_go() {
        assert_eq!(spoofcheck_id("abc", "eth0"), "abc-eth0");
        assert_eq!(
            spoofcheck_iface_chain("abc", "eth0"),
            "cni-br-iface-abc-eth0"
        );
        assert_eq!(
            spoofcheck_mac_chain("abc", "eth0"),
            "cni-br-iface-abc-eth0-mac"
        );
        assert_eq!(spoofcheck_comment("abc", "eth0"), "macspoofchk-abc-eth0");
        assert_eq!(NFT_FAMILY_BRIDGE, "bridge");
        assert_eq!(SPOOFCHK_TABLE, "nat");
        assert_eq!(SPOOFCHK_BASE_CHAIN, "PREROUTING");
        assert_eq!(SPOOFCHK_BASE_PRIORITY, -300);
        assert_eq!(
            format_mac([0x0a, 0x58, 0x0a, 0xf4, 0x00, 0xff]),
            "0a:58:0a:f4:00:ff"
        );
    }

    #[test]
    fn go_quote_round_trips() {
        for s in [
            "",
            "abc",
            "a\"b\\c",
            "tab\there\n",
            "\u{1}\u{7f}",
            "é\u{85}",
        ] {
            assert_eq!(go_unquote(&go_quote(s)).as_deref(), Some(s), "{s:?}");
        }
        assert_eq!(go_quote("\u{1}"), r#""\x01""#);
        assert_eq!(go_unquote(r#""a"b""#), None);
        assert_eq!(go_unquote("abc"), None);
    }

    #[test]
    fn firewall_plugin_names_match_go() {
        assert_eq!(FILTER_TABLE, "filter");
        assert_eq!(FORWARD, "FORWARD");
        assert_eq!(FWD_CHAIN, "CNI-FORWARD");
        assert_eq!(FWD_ADMIN_CHAIN, "CNI-ADMIN");
        assert_eq!(FWD_JUMP_COMMENT, "CNI firewall plugin rules");
        assert_eq!(FWD_ADMIN_COMMENT, "CNI firewall plugin admin overrides");
        assert_eq!(FWD_CTSTATE, "RELATED,ESTABLISHED");
        assert_eq!(ISOLATION_STAGE_1, "CNI-ISOLATION-STAGE-1");
        assert_eq!(ISOLATION_STAGE_2, "CNI-ISOLATION-STAGE-2");
        assert_eq!(
            ISOLATION_DEFAULT_COMMENT,
            "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)"
        );
        assert_eq!(
            isolation_policy_comment(INGRESS_ISOLATED),
            "CNI firewall plugin rules (ingressPolicy: isolated)"
        );
        assert_eq!(
            (INGRESS_OPEN, INGRESS_SAME_BRIDGE, INGRESS_ISOLATED),
            ("open", "same-bridge", "isolated")
        );
        assert_eq!(FIREWALLD_NAME, "org.fedoraproject.FirewallD1");
        assert_eq!(FIREWALLD_PATH, "/org/fedoraproject/FirewallD1");
        assert_eq!(
            FIREWALLD_ZONE_INTERFACE,
            "org.fedoraproject.FirewallD1.zone"
        );
        assert_eq!(
            (
                FIREWALLD_ADD_SOURCE,
                FIREWALLD_REMOVE_SOURCE,
                FIREWALLD_QUERY_SOURCE
            ),
            ("addSource", "removeSource", "querySource")
        );
        assert_eq!(FIREWALLD_ZONE_ALREADY_SET, "ZONE_ALREADY_SET");
        assert_eq!(FIREWALLD_DEFAULT_ZONE, "trusted");
    }
}
