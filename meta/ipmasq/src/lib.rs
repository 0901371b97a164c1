//! The ipmasq plugin (new; no reference counterpart): a chained plugin that masquerades
//! the traffic of the addresses `prevResult` gives CNI_IFNAME, for main plugins without
//! an `ipMasq` of their own (macvlan, ipvlan, host-device, another vendor's).
//!
//! It programs exactly what bridge and ptp program for `ipMasq: true` (reference
//! `pkg/ip/ipmasq_*`, spec §3.5), through the same `rcni_firewall` backends: per address,
//! traffic from it to outside its own subnet (and not multicast) is masqueraded. The
//! iptables chain `CNI-<sha512(network+containerID)[..24]>` and the nftables rules of
//! `inet cni_plugins_masquerade` have the same names as the bridge's, so a bridge
//! `ipMasq` and this plugin on one attachment manage one set of rules instead of
//! fighting over two, and either one's DEL or GC removes them.
//!
//! Keys:
//! - `backend` (alias `ipMasqBackend`, the bridge's key): `"iptables"` or `"nftables"`;
//!   unset picks iptables unless only nft is installed, as bridge does.
//! - `snat` (an IP address): SNAT the addresses of its family to it (iptables `-j SNAT
//!   --to-source`, nftables `snat ip to`) instead of masquerading; addresses of the other
//!   family are still masqueraded.
//! - `excludeSubnets` (list of CIDRs): destinations left alone besides the address's own
//!   subnet (iptables: an ACCEPT each before the SNAT/MASQUERADE, in the same chain;
//!   nftables: a `daddr !=` match each in the address's rule).
//!
//! - ADD: `prevResult` is required and printed unchanged.
//! - DEL: removes the rules with both backends, by the `prevResult` addresses, or by the
//!   attachment's names when `prevResult` is missing (no netns is needed at all).
//! - CHECK: every rule is present. GC: rules of attachments no longer valid go.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rcni_firewall::MasqueradeRule;
use rcni_skel::{Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};
use serde::Deserialize;

/// The plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct IpMasq;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    snat: Option<String>,
    #[serde(default)]
    exclude_subnets: Option<Vec<String>>,
}

/// The validated keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub network: String,
    pub backend: rcni_firewall::Backend,
    pub snat: Option<IpAddr>,
    pub exclude: Vec<IpNetwork>,
}

impl Conf {
    /// Parses and validates the keys; nothing is touched before this succeeds.
    ///
    /// # Errors
    /// An unknown backend, or a reserved key (code 7, naming the key).
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let snat = match raw.snat.as_deref() {
            None | Some("") => None,
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                Error::invalid_config(format!("ipmasq: \"snat\": {s:?} is not an IP address"))
            })?),
        };
        let mut exclude = Vec::new();
        for s in raw.exclude_subnets.unwrap_or_default() {
            let net: IpNetwork = s.parse().map_err(|_| {
                Error::invalid_config(format!("ipmasq: \"excludeSubnets\": {s:?} is not a CIDR"))
            })?;
            // As a destination match: host bits cleared.
            exclude.push(IpNetwork::new(net.network(), net.prefix()).unwrap_or(net));
        }
        if raw.backend.is_some()
            && raw.ip_masq_backend.is_some()
            && raw.backend != raw.ip_masq_backend
        {
            return Err(Error::invalid_config(
                "ipmasq: \"backend\" and \"ipMasqBackend\" disagree",
            ));
        }
        let requested = raw.backend.or(raw.ip_masq_backend);
        let backend = rcni_firewall::backend(requested.as_deref())
            .map_err(|e| Error::invalid_config(format!("ipmasq: \"backend\": {e}")))?;
        Ok(Conf {
            network: req.net.name.clone(),
            backend,
            snat,
            exclude,
        })
    }
}

/// The addresses of `prev` that are CNI_IFNAME's: those whose interface index names it,
/// and those without an index.
#[must_use]
pub fn interface_addresses(prev: &Success, ifname: &str) -> Vec<IpNetwork> {
    let mut addrs: Vec<IpNetwork> = prev
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            None => true,
            Some(i) => prev
                .interfaces
                .get(i)
                .is_none_or(|iface| iface.name == ifname),
        })
        .map(|ip| ip.address)
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs
}

fn rules(conf: &Conf, req: &Request, prev: &Success) -> Vec<MasqueradeRule> {
    MasqueradeRule::for_addresses(
        &conf.network,
        &req.container_id,
        &req.ifname,
        interface_addresses(prev, &req.ifname),
    )
    .into_iter()
    .map(|r| r.with_snat(conf.snat, conf.exclude.clone()))
    .collect()
}

impl Plugin for IpMasq {
    fn name(&self) -> &'static str {
        "ipmasq"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let rules = rules(&conf, req, &prev);
        if !rules.is_empty() {
            rcni_firewall::masquerade(conf.backend)
                .add(&rules)
                .map_err(|e| Error::internal(format!("failed to set up IP masquerade: {e}")))?;
        }
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let addrs = match req.prev_result() {
            Ok(Some(prev)) => interface_addresses(&prev, &req.ifname),
            _ => Vec::new(),
        };
        rcni_firewall::teardown_addresses(&conf.network, &req.container_id, &req.ifname, addrs)
            .or_internal(|| "removing ipMasq rules".into())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let rules = rules(&conf, req, &prev);
        rcni_firewall::masquerade(conf.backend)
            .check(&rules)
            .map_err(|e| Error::internal(format!("ipmasq: {e}")))
    }

    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let Some(valid) = req.net.gc_attachments() else {
            return Ok(());
        };
        let keep: Vec<(String, String)> = valid
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        rcni_firewall::gc_all(&conf.network, &keep)
            .or_internal(|| format!("garbage-collecting ipMasq rules of {}", conf.network))
    }
}

#[cfg(test)]
mod tests {
    use rcni_skel::Command;
    use rcni_testkit::request;
    use rcni_types::{Code, Interface, IpConfig};
    use serde_json::json;

    use super::*;

    fn conf(keys: &serde_json::Value) -> Result<Conf> {
        Conf::parse(&request(Command::Add, "ipmasq", keys))
    }

    #[test]
    fn backends_by_either_key() {
        let c = conf(&json!({"backend": "nftables"})).expect("ok");
        assert_eq!(c.backend, rcni_firewall::Backend::Nftables);
        assert_eq!(c.network, "net");
        let c = conf(&json!({"ipMasqBackend": "iptables"})).expect("ok");
        assert_eq!(c.backend, rcni_firewall::Backend::Iptables);
        assert!(conf(&json!({})).is_ok());
    }

    #[test]
    fn unknown_backend_names_the_key() {
        let e = conf(&json!({"backend": "pf"})).expect_err("bad");
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("\"backend\""), "{}", e.msg);
    }

    #[test]
    fn disagreeing_backend_keys() {
        let e =
            conf(&json!({"backend": "nftables", "ipMasqBackend": "iptables"})).expect_err("bad");
        assert!(e.msg.contains("disagree"));
    }

    #[test]
    fn snat_and_exclude_subnets() {
        let c = conf(&json!({"snat": "192.0.2.1", "excludeSubnets": ["10.9.1.7/16"]})).expect("ok");
        assert_eq!(c.snat, Some("192.0.2.1".parse().expect("ip")));
        assert_eq!(
            c.exclude,
            vec!["10.9.0.0/16".parse::<IpNetwork>().expect("net")]
        );
        let c = conf(&json!({"snat": "192.0.2.1", "backend": "nftables"})).expect("nft");
        assert_eq!(c.backend, rcni_firewall::Backend::Nftables);
    }

    #[test]
    fn bad_snat_and_exclude_name_the_key() {
        let e = conf(&json!({"snat": "nope"})).expect_err("snat");
        assert!(e.msg.contains("\"snat\""), "{}", e.msg);
        let e = conf(&json!({"excludeSubnets": ["10.0.0.0/33"]})).expect_err("excl");
        assert!(e.msg.contains("\"excludeSubnets\""), "{}", e.msg);
    }

    #[test]
    fn addresses_of_the_interface_only() {
        let ip = |a: &str, i| IpConfig::new(a.parse().expect("net"), None, i);
        let prev = Success {
            interfaces: vec![
                Interface {
                    name: "eth0".into(),
                    ..Interface::default()
                },
                Interface {
                    name: "net1".into(),
                    ..Interface::default()
                },
            ],
            ips: vec![
                ip("10.0.0.5/24", Some(0)),
                ip("10.1.0.5/24", Some(1)),
                ip("fd00::5/64", None),
            ],
            ..Success::default()
        };
        let got: Vec<String> = interface_addresses(&prev, "eth0")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.5/24", "fd00::5/64"]);
    }

    #[test]
    fn add_without_prev_result_fails() {
        let req = request(Command::Add, "ipmasq", &json!({"backend": "iptables"}));
        let e = IpMasq.add(&req).expect_err("no prev");
        assert!(e.msg.contains("prevResult"));
    }
}
