//! Bridge VLANs, as the reference's `setupVeth`, `removeDefaultVlan` and
//! `ensureVlanInterface` set them up: the host port's VLANs (`vlan`, `vlanTrunk`,
//! `preserveDefaultVlan`) and the `<bridge>.<vlan>` gateway interface of `isGateway`.
//!
//! VLAN filtering itself is chosen when the bridge is created (`ensure_bridge`); an
//! existing bridge keeps what it has, as in the reference. A kernel without bridge VLAN
//! filtering answers `EOPNOTSUPP`, which becomes an error naming the key.

use rcni_netlink::{
    BridgeVlan, Link, LinkRef, Netlink, VETH_NAME_ATTEMPTS, VethSpec, random_veth_name,
};
use rcni_netns::sysctl;
use rcni_types::{Error, Result, ResultExt};

use crate::config::Conf;

/// The VLAN the reference makes native on a trunk port when `vlan` is not set.
const DEFAULT_NATIVE_VLAN: u16 = 1;

/// The name of the gateway interface of `vlan` on `bridge` (reference
/// `ensureVlanInterface`): visible on the host and in results, so it must not change.
#[must_use]
pub fn gateway_name(bridge: &str, vlan: u16) -> String {
    format!("{bridge}.{vlan}")
}

/// The error for a kernel without bridge VLAN filtering, naming the keys that need it.
pub fn unsupported(conf: &Conf, cause: &rcni_netlink::Error) -> Error {
    Error::internal(format!(
        "{}: bridge VLAN filtering is not supported by this kernel: {cause}",
        conf.vlan_keys()
    ))
}

fn is_unsupported(e: &rcni_netlink::Error) -> bool {
    e.errno() == Some(libc::EOPNOTSUPP)
}

/// The VLANs of one bridge port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortVlans<'a> {
    /// Access VLAN (PVID, untagged), or the native VLAN of a trunk; 0 for none.
    pub vlan: u16,
    /// Tagged VLANs.
    pub trunk: &'a [u16],
    /// Keep the VLANs the port started with.
    pub preserve_default: bool,
}

impl PortVlans<'_> {
    /// The pod port's VLANs.
    #[must_use]
    pub fn of(conf: &Conf) -> PortVlans<'_> {
        PortVlans {
            vlan: conf.vlan,
            trunk: &conf.trunk,
            preserve_default: conf.preserve_default_vlan,
        }
    }

    fn is_empty(&self) -> bool {
        self.vlan == 0 && self.trunk.is_empty()
    }

    /// The entries to add, in the reference's order: the access VLAN, the tagged ones, then
    /// VLAN 1 as the native VLAN of a trunk without `vlan`. Later entries win when a vid
    /// repeats (a `vlan` also listed in `vlanTrunk` ends up tagged), as in the kernel.
    fn additions(&self) -> Vec<BridgeVlan> {
        let mut adds = Vec::new();
        if self.vlan != 0 {
            adds.push(BridgeVlan {
                vid: self.vlan,
                pvid: true,
                untagged: true,
            });
        }
        adds.extend(self.trunk.iter().map(|&vid| BridgeVlan {
            vid,
            pvid: false,
            untagged: false,
        }));
        if self.vlan == 0 && !self.trunk.is_empty() {
            adds.push(BridgeVlan {
                vid: DEFAULT_NATIVE_VLAN,
                pvid: true,
                untagged: true,
            });
        }
        adds
    }

    /// The entries the port holds after [`PortVlans::apply`], by vid: each added VLAN with
    /// the flags of its last addition, a PVID only where no later addition took it.
    #[must_use]
    pub fn expected(&self) -> Vec<BridgeVlan> {
        let mut port: Vec<BridgeVlan> = Vec::new();
        for add in self.additions() {
            if add.pvid {
                for v in &mut port {
                    v.pvid = false;
                }
            }
            port.retain(|v| v.vid != add.vid);
            port.push(add);
        }
        port.sort_unstable();
        port
    }

    /// Sets the port's VLANs (reference `setupVeth`): unless `preserve_default`, removes
    /// every VLAN it has (the default VLAN 1 a new port starts in), then adds the access
    /// VLAN, the tagged ones and a trunk's native VLAN. Nothing to do without VLANs.
    ///
    /// # Errors
    /// The reference's wording, naming the port; a kernel without bridge VLAN filtering
    /// gives [`unsupported`].
    pub fn apply(&self, conf: &Conf, host: &mut dyn Netlink, port: &Link) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let name = &port.name;
        let fail = |what: &str, e: rcni_netlink::Error| {
            if is_unsupported(&e) {
                unsupported(conf, &e)
            } else {
                Error::internal(format!("failed to {what} on interface {name:?}: {e}"))
            }
        };
        if !self.preserve_default {
            let present = host
                .bridge_vlans(port.index)
                .map_err(|e| fail("remove default vlan", e))?;
            for v in present {
                host.bridge_vlan_del(port.index, v.vid)
                    .map_err(|e| fail("remove default vlan", e))?;
            }
        }
        let native = self.vlan == 0;
        for add in self.additions() {
            let what = if native && add.pvid {
                "setup default native vlan tag"
            } else {
                "setup vlan tag"
            };
            host.bridge_vlan_add(port.index, add.vid, add.pvid, add.untagged)
                .map_err(|e| fail(what, e))?;
        }
        Ok(())
    }

    /// CHECK: every VLAN [`PortVlans::apply`] set is on `port` with its flags. Other VLANs
    /// are allowed: ports made by releases that kept the default VLAN (before v1.8.0) must
    /// still pass.
    ///
    /// # Errors
    /// The first VLAN missing or with other flags.
    pub fn verify(&self, conf: &Conf, host: &mut dyn Netlink, port: &Link) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let present = host.bridge_vlans(port.index).map_err(|e| {
            if is_unsupported(&e) {
                unsupported(conf, &e)
            } else {
                Error::internal(format!("listing VLANs of {}: {e}", port.name))
            }
        })?;
        for want in self.expected() {
            match present.iter().find(|v| v.vid == want.vid) {
                Some(got) if *got == want => {}
                Some(got) => {
                    return Err(Error::internal(format!(
                        "bridge port {} has VLAN {} as {}, expected {}",
                        port.name,
                        want.vid,
                        describe(got),
                        describe(&want)
                    )));
                }
                None => {
                    return Err(Error::internal(format!(
                        "bridge port {} lacks VLAN {} ({})",
                        port.name,
                        want.vid,
                        describe(&want)
                    )));
                }
            }
        }
        Ok(())
    }
}

fn describe(v: &BridgeVlan) -> &'static str {
    match (v.pvid, v.untagged) {
        (true, true) => "PVID, untagged",
        (true, false) => "PVID, tagged",
        (false, true) => "untagged",
        (false, false) => "tagged",
    }
}

/// The gateway interface of `vlan` on a bridge, and what this call created.
#[derive(Debug, Clone)]
pub struct VlanGateway {
    /// `<bridge>.<vlan>`, where the gateway addresses go.
    pub link: Link,
    /// The index of the bridge port of a gateway created by this call (its veth peer);
    /// `None` when it existed.
    pub created_port: Option<u32>,
}

/// Finds `<bridge>.<vlan>` or makes it (reference `ensureVlanInterface`): a veth pair on
/// the host whose end `<bridge>.<vlan>` carries the gateway addresses and whose other end
/// (`veth<8 hex>`) is a bridge port with `vlan` as its access VLAN, the default VLAN
/// removed unless `preserveDefaultVlan`. Both ends are up. An existing link of that name is
/// used as it is, as the reference does; a concurrent ADD creating it first is fine.
///
/// # Errors
/// Creating or configuring the pair failed (nothing created is undone here: the caller
/// registers that with [`VlanGateway::created_port`]).
pub fn ensure_gateway(conf: &Conf, host: &mut dyn Netlink, bridge: &Link) -> Result<VlanGateway> {
    let name = gateway_name(&bridge.name, conf.vlan);
    match host.get_link(&LinkRef::from(name.as_str())) {
        Ok(link) => {
            return Ok(VlanGateway {
                link,
                created_port: None,
            });
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            return Err(Error::internal(format!(
                "failed to find interface {name:?}: {e}"
            )));
        }
    }
    let fail = |e: &dyn std::fmt::Display| {
        Error::internal(format!("failed to create vlan gateway {name:?}: {e}"))
    };
    for _ in 0..VETH_NAME_ATTEMPTS {
        let port_name = random_veth_name();
        let spec = VethSpec {
            name: port_name.clone(),
            peer_name: name.clone(),
            peer_ns: None,
            mtu: Some(bridge.mtu),
            peer_mac: None,
            master: None,
        };
        match host.create_veth(&spec) {
            Ok(()) => {}
            // Our random port name was taken (try another), or a concurrent ADD made the
            // gateway first (use it).
            Err(e) if e.is_exists() => {
                if let Ok(link) = host.get_link(&LinkRef::from(name.as_str())) {
                    return Ok(VlanGateway {
                        link,
                        created_port: None,
                    });
                }
                continue;
            }
            Err(e) => return Err(fail(&e)),
        }
        let port = host
            .get_link(&LinkRef::from(port_name.as_str()))
            .or_internal(|| format!("failed to lookup {port_name:?}"))?;
        let created = Some(port.index);
        let configured = configure_gateway_port(conf, host, bridge, &port);
        let link = configured
            .and_then(|()| {
                host.get_link(&LinkRef::from(name.as_str()))
                    .or_internal(|| format!("failed to lookup {name:?}"))
            })
            .and_then(|mut link| {
                host.set_up(link.index)
                    .or_internal(|| format!("failed to up {name:?}"))?;
                link.up = true;
                Ok(link)
            });
        return match link {
            Ok(link) => Ok(VlanGateway {
                link,
                created_port: created,
            }),
            // The pair is half made: remove it here, as the caller never saw it.
            Err(e) => {
                let _ = host.del_link(port.index);
                Err(fail(&e))
            }
        };
    }
    Err(fail(&"failed to find a free host veth name"))
}

/// The gateway's bridge port: accept_ra off, attached, its VLAN, up.
fn configure_gateway_port(
    conf: &Conf,
    host: &mut dyn Netlink,
    bridge: &Link,
    port: &Link,
) -> Result<()> {
    let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_ra", port.name), "0");
    host.set_master(port.index, bridge.index).map_err(|e| {
        Error::internal(format!(
            "failed to connect {:?} to bridge {}: {e}",
            port.name, bridge.name
        ))
    })?;
    PortVlans {
        vlan: conf.vlan,
        trunk: &[],
        preserve_default: conf.preserve_default_vlan,
    }
    .apply(conf, host, port)?;
    host.set_up(port.index)
        .or_internal(|| format!("failed to set {:?} up", port.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcni_netlink::{BridgeSpec, Call, FakeNetlink};

    fn v(vid: u16, pvid: bool, untagged: bool) -> BridgeVlan {
        BridgeVlan {
            vid,
            pvid,
            untagged,
        }
    }

    fn ports(vlan: u16, trunk: &[u16], preserve: bool) -> PortVlans<'_> {
        PortVlans {
            vlan,
            trunk,
            preserve_default: preserve,
        }
    }

    fn conf(vlan: u16, trunk: &[u16], preserve: bool) -> Conf {
        crate::config::tests::conf_with(serde_json::json!({
            "vlan": vlan,
            "vlanTrunk": trunk.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>(),
            "preserveDefaultVlan": preserve,
        }))
    }

    /// A filtering bridge `br0` with a veth `p0` attached, as the plugin has it before
    /// setting the port's VLANs.
    fn bridge_and_port(nl: &mut FakeNetlink) -> (Link, Link) {
        let br = nl
            .ensure_bridge(&BridgeSpec {
                name: "br0".into(),
                mtu: None,
                vlan_filtering: true,
                promisc: false,
            })
            .expect("bridge");
        nl.create_veth(&VethSpec {
            name: "p0".into(),
            peer_name: "p1".into(),
            peer_ns: None,
            mtu: None,
            peer_mac: None,
            master: None,
        })
        .expect("veth");
        let p0 = nl.get_link(&"p0".into()).expect("p0");
        nl.set_master(p0.index, br.index).expect("master");
        (br, p0)
    }

    #[test]
    fn gateway_name_is_bridge_dot_vlan() {
        assert_eq!(gateway_name("cni0", 100), "cni0.100");
    }

    #[test]
    fn expected_follows_the_reference_order() {
        assert_eq!(ports(100, &[], false).expected(), [v(100, true, true)]);
        // A trunk without `vlan` gets VLAN 1 as its native VLAN.
        assert_eq!(
            ports(0, &[200, 300], false).expected(),
            [v(1, true, true), v(200, false, false), v(300, false, false)]
        );
        // With `vlan`, that is the native VLAN.
        assert_eq!(
            ports(100, &[200], false).expected(),
            [v(100, true, true), v(200, false, false)]
        );
        // A `vlan` also listed in the trunk is added tagged last: it loses PVID and
        // untagged, as the kernel does with the reference's calls.
        assert_eq!(
            ports(100, &[100, 200], false).expected(),
            [v(100, false, false), v(200, false, false)]
        );
        assert!(ports(0, &[], true).expected().is_empty());
    }

    #[test]
    fn access_port_loses_the_default_vlan() {
        let mut nl = FakeNetlink::new();
        let (_, port) = bridge_and_port(&mut nl);
        let c = conf(100, &[], false);
        nl.take_calls();
        PortVlans::of(&c).apply(&c, &mut nl, &port).expect("apply");
        assert_eq!(
            nl.take_calls(),
            [
                Call::BridgeVlans(port.index),
                Call::BridgeVlanDel(port.index, 1),
                Call::BridgeVlanAdd {
                    index: port.index,
                    vid: 100,
                    pvid: true,
                    untagged: true
                },
            ]
        );
        assert_eq!(nl.port_vlans(port.index), [v(100, true, true)]);
        PortVlans::of(&c)
            .verify(&c, &mut nl, &port)
            .expect("verify");
    }

    #[test]
    fn preserve_default_vlan_keeps_vlan_1_without_its_pvid() {
        let mut nl = FakeNetlink::new();
        let (_, port) = bridge_and_port(&mut nl);
        let c = conf(100, &[], true);
        PortVlans::of(&c).apply(&c, &mut nl, &port).expect("apply");
        assert_eq!(
            nl.port_vlans(port.index),
            [v(1, false, true), v(100, true, true)]
        );
        assert!(
            !nl.calls()
                .iter()
                .any(|c| matches!(c, Call::BridgeVlanDel(..) | Call::BridgeVlans(_)))
        );
    }

    #[test]
    fn trunk_port_carries_tagged_vlans_and_a_native_one() {
        let mut nl = FakeNetlink::new();
        let (_, port) = bridge_and_port(&mut nl);
        let c = conf(0, &[200, 300], false);
        PortVlans::of(&c).apply(&c, &mut nl, &port).expect("apply");
        assert_eq!(
            nl.port_vlans(port.index),
            [v(1, true, true), v(200, false, false), v(300, false, false)]
        );
        let c = conf(100, &[200], false);
        let mut nl = FakeNetlink::new();
        let (_, port) = bridge_and_port(&mut nl);
        PortVlans::of(&c).apply(&c, &mut nl, &port).expect("apply");
        assert_eq!(
            nl.port_vlans(port.index),
            [v(100, true, true), v(200, false, false)]
        );
    }

    #[test]
    fn no_vlans_means_no_calls() {
        let mut nl = FakeNetlink::new();
        let (_, port) = bridge_and_port(&mut nl);
        let c = conf(0, &[], false);
        nl.take_calls();
        PortVlans::of(&c).apply(&c, &mut nl, &port).expect("apply");
        PortVlans::of(&c)
            .verify(&c, &mut nl, &port)
            .expect("verify");
        assert!(nl.calls().is_empty());
        assert_eq!(nl.port_vlans(port.index), [v(1, true, true)]);
    }

    #[test]
    fn a_kernel_without_vlan_filtering_is_named_in_the_error() {
        let mut nl = FakeNetlink::new();
        nl.without_bridge_vlan_filtering();
        let br = nl
            .ensure_bridge(&BridgeSpec {
                name: "br0".into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            })
            .expect("bridge");
        nl.create_veth(&VethSpec {
            name: "p0".into(),
            peer_name: "p1".into(),
            peer_ns: None,
            mtu: None,
            peer_mac: None,
            master: None,
        })
        .expect("veth");
        let port = nl.get_link(&"p0".into()).expect("p0");
        nl.set_master(port.index, br.index).expect("master");
        let c = conf(100, &[], false);
        let e = PortVlans::of(&c)
            .apply(&c, &mut nl, &port)
            .expect_err("unsupported");
        assert!(
            e.msg
                .starts_with("vlan: bridge VLAN filtering is not supported by this kernel: "),
            "{}",
            e.msg
        );
        let c = conf(0, &[5], false);
        let e = PortVlans::of(&c)
            .apply(&c, &mut nl, &port)
            .expect_err("unsupported");
        assert!(e.msg.starts_with("vlanTrunk: "), "{}", e.msg);
    }

    #[test]
    fn verify_reports_missing_and_changed_vlans_but_allows_others() {
        let mut nl = FakeNetlink::new();
        let (_, port) = bridge_and_port(&mut nl);
        let c = conf(100, &[200], false);
        let e = PortVlans::of(&c)
            .verify(&c, &mut nl, &port)
            .expect_err("nothing applied");
        assert_eq!(e.msg, "bridge port p0 lacks VLAN 100 (PVID, untagged)");
        PortVlans::of(&c).apply(&c, &mut nl, &port).expect("apply");
        // A VLAN the config does not name (the default one kept by older releases) is fine.
        nl.bridge_vlan_add(port.index, 1, false, true)
            .expect("extra");
        PortVlans::of(&c)
            .verify(&c, &mut nl, &port)
            .expect("verify");
        nl.bridge_vlan_add(port.index, 200, false, true)
            .expect("change");
        let e = PortVlans::of(&c)
            .verify(&c, &mut nl, &port)
            .expect_err("changed");
        assert_eq!(
            e.msg,
            "bridge port p0 has VLAN 200 as untagged, expected tagged"
        );
    }

    #[test]
    fn gateway_is_a_veth_whose_peer_is_an_access_port() {
        let mut nl = FakeNetlink::new();
        let (br, _) = bridge_and_port(&mut nl);
        let c = conf(100, &[], false);
        let gw = ensure_gateway(&c, &mut nl, &br).expect("gateway");
        assert_eq!(gw.link.name, "br0.100");
        assert!(gw.link.up, "{:?}", gw.link);
        assert_eq!(gw.link.master, None, "the gateway end is no bridge port");
        let port_index = gw.created_port.expect("created");
        let port = nl.get_link(&LinkRef::Index(port_index)).expect("port");
        assert!(port.name.starts_with("veth") && port.up, "{port:?}");
        assert_eq!(port.master, Some(br.index));
        assert_eq!(port.peer_index, Some(gw.link.index));
        assert_eq!(nl.port_vlans(port_index), [v(100, true, true)]);
        // A second ADD finds it and creates nothing.
        nl.take_calls();
        let again = ensure_gateway(&c, &mut nl, &br).expect("again");
        assert_eq!(again.link.index, gw.link.index);
        assert!(again.created_port.is_none());
        assert_eq!(nl.take_calls(), [Call::GetLink("br0.100".into())]);
    }

    #[test]
    fn gateway_that_fails_half_way_is_removed() {
        let mut nl = FakeNetlink::new();
        nl.without_bridge_vlan_filtering();
        let br = nl
            .ensure_bridge(&BridgeSpec {
                name: "br0".into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            })
            .expect("bridge");
        let c = conf(100, &[], false);
        let e = ensure_gateway(&c, &mut nl, &br).expect_err("unsupported");
        assert!(
            e.msg
                .contains("vlan: bridge VLAN filtering is not supported"),
            "{}",
            e.msg
        );
        assert_eq!(
            nl.link_list()
                .iter()
                .map(|l| l.name.as_str())
                .collect::<Vec<_>>(),
            ["lo", "br0"]
        );
    }
}
