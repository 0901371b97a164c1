//! The bridge plugin's keys (reference §2.3), parsed and validated before any kernel
//! contact. Errors carry code 999 with the reference's wording, as the Go plugin's do.

use std::net::IpAddr;

use rcni_types::args::CniArgs;
use rcni_types::{Dns, Error, Result};
use serde::Deserialize;

use rcni_skel::Request;

pub const DEFAULT_BRIDGE: &str = "cni0";

#[derive(Debug, Clone, Default, Deserialize)]
pub struct VlanTrunk {
    #[serde(default, rename = "minID")]
    pub min_id: Option<i64>,
    #[serde(default, rename = "maxID")]
    pub max_id: Option<i64>,
    #[serde(default)]
    pub id: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct MacOnly {
    #[serde(default)]
    mac: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CniArgsSection {
    #[serde(default)]
    cni: MacOnly,
}

/// The JSON keys, as Go's `NetConf` in plugins/main/bridge declares them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default, rename = "bridge")]
    bridge: String,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(default)]
    vlan_trunk: Option<Vec<VlanTrunk>>,
    #[serde(default)]
    preserve_default_vlan: bool,
    #[serde(default, rename = "macspoofchk")]
    mac_spoof_check: bool,
    #[serde(default, rename = "enabledad")]
    enable_dad: bool,
    #[serde(default)]
    disable_container_interface: bool,
    #[serde(default)]
    port_isolation: bool,
    #[serde(default)]
    runtime_config: MacOnly,
    #[serde(default)]
    args: CniArgsSection,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub network: String,
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub ip_masq_backend: Option<String>,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub promisc: bool,
    /// Access VLAN (or native VLAN with a trunk); 0 = none.
    pub vlan: u16,
    /// Tagged VLAN ids on the port.
    pub trunk: Vec<u16>,
    /// A bridge created by this ADD gets VLAN filtering: `vlan` is set or `vlanTrunk` is
    /// given, even as `[]` (Go tests `VlanTrunk != nil`).
    pub vlan_filtering: bool,
    /// Keep the VLANs a new port starts with (the default VLAN 1); false since v1.8.0.
    pub preserve_default_vlan: bool,
    pub mac_spoof_check: bool,
    pub enable_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    /// Container interface MAC: runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC.
    pub mac: Option<[u8; 6]>,
    /// The delegated IPAM plugin's type; `None` means layer 2 only.
    pub ipam: Option<String>,
    /// `dns` from the config, replacing the IPAM's when any field is set.
    pub dns: Option<Dns>,
}

impl Conf {
    /// Parses and validates the request's config and CNI_ARGS.
    ///
    /// # Errors
    /// Bad key values, bad CNI_ARGS (unknown keys without IgnoreUnknown), incompatible
    /// combinations; messages name the key.
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        req.args.check_known(&["MAC"])?;

        if !(0..=4094).contains(&raw.vlan) {
            return Err(Error::internal(format!(
                "invalid VLAN ID {} (must be between 0 and 4094)",
                raw.vlan
            )));
        }
        let trunk = trunk_ids(raw.vlan_trunk.as_deref().unwrap_or_default())?;
        let vlan_filtering = raw.vlan != 0 || raw.vlan_trunk.is_some();
        if raw.hairpin_mode && raw.promisc_mode {
            return Err(Error::internal(
                "cannot set hairpin mode and promiscuous mode at the same time",
            ));
        }
        let mtu = match raw.mtu {
            0 => None,
            m if (68..=65535).contains(&m) => u32::try_from(m).ok(),
            m => {
                return Err(Error::internal(format!(
                    "invalid mtu {m}: must be between 68 and 65535"
                )));
            }
        };
        let ipam = req
            .net
            .ipam
            .as_ref()
            .map(|i| i.kind.clone())
            .filter(|k| !k.is_empty());
        if raw.disable_container_interface && ipam.is_some() {
            return Err(Error::internal(
                "cannot use IPAM when DisableContainerInterface flag is set",
            ));
        }
        let mac = pick_mac(&raw, &req.args)?;
        let bridge = if raw.bridge.is_empty() {
            DEFAULT_BRIDGE.to_string()
        } else {
            raw.bridge
        };
        if bridge.len() > 15 || bridge.contains(['/', ':', ' ']) {
            return Err(Error::internal(format!("invalid bridge name {bridge:?}")));
        }
        if let Some(b) = &raw.ip_masq_backend
            && b != "iptables"
            && b != "nftables"
        {
            return Err(Error::internal(format!(
                "unknown ipMasqBackend {b:?} (must be \"iptables\" or \"nftables\")"
            )));
        }
        Ok(Conf {
            network: req.net.name.clone(),
            bridge,
            is_gateway: raw.is_gateway || raw.is_default_gateway,
            is_default_gateway: raw.is_default_gateway,
            force_address: raw.force_address,
            ip_masq: raw.ip_masq,
            ip_masq_backend: raw.ip_masq_backend,
            mtu,
            hairpin: raw.hairpin_mode,
            promisc: raw.promisc_mode,
            vlan: u16::try_from(raw.vlan).unwrap_or_default(),
            trunk,
            vlan_filtering,
            preserve_default_vlan: raw.preserve_default_vlan,
            mac_spoof_check: raw.mac_spoof_check,
            enable_dad: raw.enable_dad,
            disable_container_interface: raw.disable_container_interface,
            port_isolation: raw.port_isolation,
            mac,
            ipam,
            dns: req.net.dns.clone().filter(|d| !d.is_empty()),
        })
    }

    /// The port gets VLANs of its own (and loses the default one unless
    /// `preserveDefaultVlan`): `vlan` is set or `vlanTrunk` names at least one id.
    #[must_use]
    pub fn uses_vlans(&self) -> bool {
        self.vlan != 0 || !self.trunk.is_empty()
    }

    /// The keys that asked for VLANs, to name in errors.
    #[must_use]
    pub fn vlan_keys(&self) -> &'static str {
        match (self.vlan != 0, self.trunk.is_empty()) {
            (true, false) => "vlan/vlanTrunk",
            (true, true) => "vlan",
            (false, _) => "vlanTrunk",
        }
    }
}

fn pick_mac(raw: &RawConf, args: &CniArgs) -> Result<Option<[u8; 6]>> {
    let from_env = args.get("MAC").unwrap_or_default();
    let chosen = [
        raw.runtime_config.mac.as_str(),
        raw.args.cni.mac.as_str(),
        from_env,
    ]
    .into_iter()
    .find(|m| !m.is_empty());
    match chosen {
        None => Ok(None),
        Some(m) => rcni_netlink::parse_mac(m)
            .map(Some)
            .ok_or_else(|| Error::internal(format!("invalid MAC address {m:?}"))),
    }
}

/// Expands `vlanTrunk` into sorted, distinct ids (Go `collectVlanTrunk`, its wording).
fn trunk_ids(entries: &[VlanTrunk]) -> Result<Vec<u16>> {
    let check = |id: i64, which: &str| -> Result<u16> {
        u16::try_from(id)
            .ok()
            .filter(|id| (1..=4094).contains(id))
            .ok_or_else(|| Error::internal(format!("incorrect trunk {which} parameter")))
    };
    let mut ids = Vec::new();
    for e in entries {
        match (e.min_id, e.max_id) {
            (Some(min), Some(max)) => {
                let (min, max) = (check(min, "minID")?, check(max, "maxID")?);
                if min > max {
                    return Err(Error::internal(
                        "minID is greater than maxID in trunk parameter",
                    ));
                }
                ids.extend(min..=max);
            }
            (None, None) => {}
            (None, Some(_)) => {
                return Err(Error::internal(
                    "minID and maxID should be configured simultaneously, minID is missing",
                ));
            }
            (Some(_), None) => {
                return Err(Error::internal(
                    "minID and maxID should be configured simultaneously, maxID is missing",
                ));
            }
        }
        if let Some(id) = e.id {
            ids.push(check(id, "id")?);
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The first host address of `ip`'s subnet: the default gateway (Go `calcGatewayIP`).
#[must_use]
pub fn first_host(net: &ipnetwork::IpNetwork) -> IpAddr {
    match net {
        ipnetwork::IpNetwork::V4(n) => IpAddr::V4(std::net::Ipv4Addr::from(
            u32::from(n.network()).wrapping_add(1),
        )),
        ipnetwork::IpNetwork::V6(n) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(n.network()).wrapping_add(1),
        )),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcni_skel::Command;
    use serde_json::{Value, json};

    /// A request for `plugin` (the plugin's own keys) in a minimal network config.
    pub(crate) fn request(plugin: Value) -> Request {
        rcni_testkit::request(Command::Add, "bridge", &plugin)
    }

    /// The parsed `Conf` of `plugin`'s keys.
    pub(crate) fn conf_with(plugin: Value) -> Conf {
        Conf::parse(&request(plugin)).expect("valid config")
    }

    #[test]
    fn vlan_keys_and_filtering() {
        let c = conf_with(json!({}));
        assert!(!c.vlan_filtering && !c.uses_vlans() && !c.preserve_default_vlan);
        let c = conf_with(json!({"vlan": 100}));
        assert!(c.vlan_filtering && c.uses_vlans());
        assert_eq!(c.vlan_keys(), "vlan");
        // An empty trunk still asks for a filtering bridge (Go: `VlanTrunk != nil`), but
        // leaves the port alone.
        let c = conf_with(json!({"vlanTrunk": []}));
        assert!(c.vlan_filtering && !c.uses_vlans());
        assert_eq!(c.vlan_keys(), "vlanTrunk");
        let c = conf_with(json!({"vlanTrunk": null}));
        assert!(!c.vlan_filtering);
        // Since v1.8.0 `vlan` and `vlanTrunk` combine: `vlan` is the trunk's native VLAN.
        let c = conf_with(
            json!({"vlan": 7, "vlanTrunk": [{"minID": 10, "maxID": 12}, {"id": 7}],
            "preserveDefaultVlan": true}),
        );
        assert_eq!((c.vlan, c.trunk.as_slice()), (7, &[7, 10, 11, 12][..]));
        assert!(c.preserve_default_vlan);
        assert_eq!(c.vlan_keys(), "vlan/vlanTrunk");
        let e = Conf::parse(&request(json!({"vlan": 4095}))).expect_err("range");
        assert_eq!(e.msg, "invalid VLAN ID 4095 (must be between 0 and 4094)");
    }

    #[test]
    fn trunk_expands_ranges_and_ids() {
        let t = |min, max, id| VlanTrunk {
            min_id: min,
            max_id: max,
            id,
        };
        assert_eq!(
            trunk_ids(&[t(Some(5), Some(7), Some(2)), t(None, None, Some(6))]).expect("valid"),
            [2, 5, 6, 7]
        );
        let err =
            |entries: &[VlanTrunk]| trunk_ids(entries).expect_err("invalid trunk").msg.clone();
        assert_eq!(
            err(&[t(Some(5), None, None)]),
            "minID and maxID should be configured simultaneously, maxID is missing"
        );
        assert_eq!(
            err(&[t(None, Some(5), None)]),
            "minID and maxID should be configured simultaneously, minID is missing"
        );
        assert_eq!(
            err(&[t(Some(7), Some(5), None)]),
            "minID is greater than maxID in trunk parameter"
        );
        assert_eq!(
            err(&[t(Some(0), Some(5), None)]),
            "incorrect trunk minID parameter"
        );
        assert_eq!(
            err(&[t(Some(1), Some(4095), None)]),
            "incorrect trunk maxID parameter"
        );
        assert_eq!(
            err(&[t(None, None, Some(4095))]),
            "incorrect trunk id parameter"
        );
        assert_eq!(
            err(&[t(None, None, Some(-1))]),
            "incorrect trunk id parameter"
        );
        assert!(trunk_ids(&[]).expect("empty").is_empty());
    }

    #[test]
    fn gateway_is_first_host() {
        let n: ipnetwork::IpNetwork = "10.22.3.77/24".parse().expect("literal");
        assert_eq!(first_host(&n).to_string(), "10.22.3.1");
        let n: ipnetwork::IpNetwork = "fd00:1::42/64".parse().expect("literal");
        assert_eq!(first_host(&n).to_string(), "fd00:1::1");
    }
}
