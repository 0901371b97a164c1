//! ADD and CHECK: the bridge, the veth pair, the container side, the gateway, masquerade.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use rcni_ipam::{Allocation, Dad};
use rcni_netlink::{BridgePortSpec, BridgeSpec, Ipv4Conf, Link, LinkRef, Netlink, format_mac};
use rcni_netns::{NetNs, sysctl};
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Route, Success};
use std::os::fd::AsFd;

use crate::config::{Conf, first_host};
use crate::vlan::{self, PortVlans};

/// How long the host port may take to become operationally up once both ends are up.
const PORT_UP_TIMEOUT: Duration = Duration::from_secs(2);

pub fn add(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<Success> {
    // Refuse early, before IPAM allocates anything: the interface must not exist yet.
    if ctr.get_link(&LinkRef::from(req.ifname.as_str())).is_ok() {
        return Err(Error::internal(format!(
            "container veth name {:?} peer provided ({:?}) already exists",
            req.ifname, req.ifname
        )));
    }

    // IPAM runs in its own process while the links are made (DESIGN §7).
    let ipam = conf
        .ipam
        .as_deref()
        .map(|kind| Allocation::start(kind, req))
        .transpose()?;
    let mut rollback = Rollback::new();
    if let Some(ipam) = &ipam {
        // Whatever fails below, an allocation made by IPAM must be released.
        rollback.push(move || ipam.release());
    }
    let attach = Attach { conf, req, netns };
    match add_links(&attach, host, ctr, &mut rollback, ipam.as_ref()) {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => Err(rollback.fail(e)),
    }
}

/// What one ADD works on, borrowed for its whole length.
struct Attach<'a> {
    conf: &'a Conf,
    req: &'a Request,
    netns: &'a NetNs,
}

fn add_links<'a>(
    attach: &Attach<'a>,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
    rollback: &mut Rollback<'a>,
    ipam: Option<&Allocation<'_>>,
) -> Result<Success> {
    let Attach { conf, req, netns } = *attach;
    let bridge_existed = host.get_link(&LinkRef::from(conf.bridge.as_str())).is_ok();
    // VLAN filtering is chosen only when the bridge is created, as in the reference; a
    // kernel without it refuses the bridge (EOPNOTSUPP), and the error names the key.
    let bridge = host
        .ensure_bridge(&BridgeSpec {
            name: conf.bridge.clone(),
            mtu: conf.mtu,
            vlan_filtering: conf.vlan_filtering,
            promisc: conf.promisc,
        })
        .map_err(|e| {
            if conf.vlan_filtering && e.errno() == Some(libc::EOPNOTSUPP) {
                vlan::unsupported(conf, &e)
            } else {
                Error::internal(format!("failed to create bridge {:?}: {e}", conf.bridge))
            }
        })?;

    if !bridge_existed {
        // Router advertisements must not configure the bridge (reference: accept_ra=0);
        // a kernel without IPv6 has no such knob, which is fine.
        let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_ra", bridge.name), "0");
        // A failed first ADD leaves no bridge behind; one that has gained ports meanwhile
        // (a concurrent ADD) stays.
        let (index, name) = (bridge.index, bridge.name.clone());
        rollback.push(move || delete_bridge_if_unused(index, &name));
    }

    // The host end is born a port of the bridge, still down.
    let pod = rcni_netlink::PodVeth {
        netns: netns.as_fd(),
        ifname: &req.ifname,
        mtu: conf.mtu,
        mac: conf.mac,
        master: Some(bridge.index),
    };
    let pair = rcni_netlink::create_veth_pair(host, ctr, &pod)
        .map_err(|e| Error::internal(format!("failed to set up the veth pair: {e}")))?;
    let (host_veth, ctr_veth) = (pair.host, pair.container);
    let (host_index, host_name) = (host_veth.index, host_veth.name.clone());
    // Deleting the host end removes the container end too.
    rollback.push(move || rcni_ipam::delete_host_link(host_index, &host_name));
    connect_host_port(conf, host, &host_veth)?;

    if conf.mac_spoof_check {
        let check = rcni_firewall::SpoofCheck {
            host_veth: host_veth.name.clone(),
            container_mac: ctr_veth.mac.unwrap_or_default(),
            container_id: req.container_id.clone(),
            ifname: req.ifname.clone(),
        };
        check
            .setup()
            .or_internal(|| "failed to set up the MAC spoof check".into())?;
        rollback.push(move || {
            rcni_firewall::SpoofCheck::teardown(&req.container_id, &req.ifname)
                .or_internal(|| "removing the MAC spoof check".into())
        });
    }

    let mut result = Success {
        cni_version: req.version().to_string(),
        interfaces: vec![
            Interface {
                name: bridge.name.clone(),
                ..Interface::default()
            },
            Interface {
                name: host_veth.name.clone(),
                mac: mac_of(&host_veth),
                ..Interface::default()
            },
            Interface {
                name: ctr_veth.name.clone(),
                mac: mac_of(&ctr_veth),
                sandbox: netns.path().display().to_string(),
                ..Interface::default()
            },
        ],
        ..Success::default()
    };

    match ipam {
        Some(ipam) => {
            let ipam_result = ipam.result()?;
            result.ips = ipam_result.ips;
            result.routes = ipam_result.routes;
            result.dns = ipam_result.dns;
            let gateways = assign_gateways(conf, &mut result);
            configure_container(conf, netns, ctr, &ctr_veth, &result)?;
            if conf.is_gateway {
                let gateway_link = if conf.vlan != 0 && !gateways.is_empty() {
                    vlan_gateway(conf, host, &bridge, host_index, rollback, &mut result)?
                } else {
                    bridge.clone()
                };
                for gw in &gateways {
                    ensure_gateway_address(conf, host, &gateway_link, *gw).map_err(|e| {
                        if conf.vlan == 0 {
                            e
                        } else {
                            Error::internal(format!(
                                "failed to set vlan interface for bridge with addr: {e}"
                            ))
                        }
                    })?;
                }
                rcni_ipam::enable_forwarding(
                    gateways.iter().any(IpNetwork::is_ipv4),
                    gateways.iter().any(IpNetwork::is_ipv6),
                )?;
            }
            if conf.ip_masq {
                rcni_ipam::add_masquerade(
                    &conf.network,
                    conf.ip_masq_backend.as_deref(),
                    req,
                    &result,
                    rollback,
                )?;
            }
        }
        None if !conf.disable_container_interface => {
            ctr.set_up(ctr_veth.index)
                .or_internal(|| format!("failed to set {:?} up", req.ifname))?;
        }
        None => {}
    }

    wait_port_up(host, host_index)?;
    // The bridge takes the lowest port MAC unless its own is set; read it after the ports
    // and addresses are in place so the result shows what the container will see.
    let bridge = host
        .get_link(&LinkRef::Index(bridge.index))
        .or_internal(|| format!("failed to lookup {:?}", conf.bridge))?;
    result.interfaces[0].mac = mac_of(&bridge);
    if let Some(dns) = &conf.dns {
        result.dns = dns.clone();
    }
    Ok(result)
}

/// With `vlan`, the gateway addresses go on `<bridge>.<vlan>` (made when missing), which
/// joins the result after the container interface, as in the reference. One this ADD made
/// is removed again on failure when the bridge has no ports but this ADD's.
fn vlan_gateway(
    conf: &Conf,
    host: &mut dyn Netlink,
    bridge: &Link,
    pod_port: u32,
    rollback: &mut Rollback<'_>,
    result: &mut Success,
) -> Result<Link> {
    let gateway = vlan::ensure_gateway(conf, host, bridge)
        .map_err(|e| Error::internal(format!("failed to create vlan interface: {e}")))?;
    if let Some(gw_port) = gateway.created_port {
        let (bridge_index, name) = (bridge.index, gateway.link.name.clone());
        rollback.push(move || {
            let mut nl =
                rcni_netlink::RealNetlink::new().or_internal(|| "opening netlink".into())?;
            let links = nl.links().or_internal(|| "listing links".into())?;
            let others = links.iter().any(|l| {
                l.master == Some(bridge_index) && l.index != gw_port && l.index != pod_port
            });
            if others {
                return Ok(());
            }
            match nl.del_link(gw_port) {
                Err(e) if !e.is_not_found() => Err(Error::internal(format!(
                    "deleting vlan gateway {name}: {e}"
                ))),
                _ => Ok(()),
            }
        });
    }
    result.interfaces.push(Interface {
        name: gateway.link.name.clone(),
        mac: mac_of(&gateway.link),
        ..Interface::default()
    });
    Ok(gateway.link)
}

fn delete_bridge_if_unused(index: u32, name: &str) -> Result<()> {
    let mut nl = rcni_netlink::RealNetlink::new().or_internal(|| "opening netlink".into())?;
    let links = nl.links().or_internal(|| "listing links".into())?;
    if links.iter().any(|l| l.master == Some(index)) {
        return Ok(());
    }
    match nl.del_link(index) {
        Err(e) if !e.is_not_found() => Err(Error::internal(format!("deleting bridge {name}: {e}"))),
        _ => Ok(()),
    }
}

fn mac_of(link: &Link) -> String {
    link.mac.map(format_mac).unwrap_or_default()
}

/// Host end, already a port of the bridge (it was created as one) and still down:
/// accept_ra off, bridge port settings (hairpin, isolation, VLANs), up.
fn connect_host_port(conf: &Conf, host: &mut dyn Netlink, veth: &Link) -> Result<()> {
    // A router advertisement on the host end would give the host an address on it.
    let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_ra", veth.name), "0");
    if conf.hairpin || conf.port_isolation {
        host.set_bridge_port(
            veth.index,
            &BridgePortSpec {
                hairpin: conf.hairpin.then_some(true),
                isolated: conf.port_isolation.then_some(true),
            },
        )
        .or_internal(|| format!("failed to configure bridge port {}", veth.name))?;
    }
    // Before the port comes up, so no frame passes in the default VLAN.
    PortVlans::of(conf).apply(conf, host, veth)?;
    host.set_up(veth.index)
        .or_internal(|| format!("failed to set {:?} up", veth.name))
}

/// Points every IP at the container interface, fills in gateways where the bridge is the
/// gateway, and adds default routes (Go `calcGateways`). Returns the gateway addresses
/// (with the subnet's prefix) to put on the bridge.
fn assign_gateways(conf: &Conf, result: &mut Success) -> Vec<IpNetwork> {
    let mut gateways = Vec::new();
    let mut default_for = [false, false];
    for ip in &mut result.ips {
        ip.interface = Some(2);
        if ip.gateway.is_none() && conf.is_gateway {
            ip.gateway = Some(first_host(&ip.address));
        }
        let Some(gw) = ip.gateway else { continue };
        let family = usize::from(ip.address.is_ipv6());
        if conf.is_default_gateway && !default_for[family] {
            let any: IpAddr = if ip.address.is_ipv4() {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            let Ok(default_dst) = IpNetwork::new(any, 0) else {
                continue;
            };
            let exists = result
                .routes
                .iter()
                .any(|r| r.gw.is_some() && r.dst == default_dst);
            if !exists {
                result.routes.push(Route::new(default_dst, Some(gw)));
            }
            default_for[family] = true;
        }
        if conf.is_gateway
            && let Ok(net) = IpNetwork::new(gw, ip.address.prefix())
        {
            gateways.push(net);
        }
    }
    gateways
}

/// Container side: arp_notify, then the IPAM result (Go `ipam.ConfigureIface`).
fn configure_container(
    conf: &Conf,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    veth: &Link,
    result: &Success,
) -> Result<()> {
    ctr.set_ipv4_conf(veth.index, Ipv4Conf::ArpNotify, 1)
        .or_internal(|| format!("setting arp_notify on {}", veth.name))?;
    let dad = if conf.enable_dad { Dad::Wait } else { Dad::Off };
    rcni_ipam::configure_interface(netns, ctr, veth, result, dad)
}

/// Go `ensureAddr`: one IPv4 address per bridge (replaced only with `forceAddress`);
/// IPv6 addresses coexist unless their subnets overlap.
fn ensure_gateway_address(
    conf: &Conf,
    host: &mut dyn Netlink,
    bridge: &Link,
    gw: IpNetwork,
) -> Result<()> {
    let existing = host
        .addrs(Some(bridge.index), None)
        .or_internal(|| format!("listing addresses of {}", bridge.name))?;
    for a in existing
        .iter()
        .filter(|a| a.address.is_ipv4() == gw.is_ipv4() && a.scope == 0)
    {
        if a.address == gw {
            return Ok(());
        }
        let clashes = gw.is_ipv4() || a.address.contains(gw.ip()) || gw.contains(a.address.ip());
        if clashes {
            if conf.force_address {
                host.del_addr(bridge.index, a.address).or_internal(|| {
                    format!(
                        "failed to remove IP address {} from {}",
                        a.address, bridge.name
                    )
                })?;
            } else {
                return Err(Error::internal(format!(
                    "{:?} already has an IP address different from {gw}",
                    bridge.name
                )));
            }
        }
    }
    if gw.is_ipv6() {
        // The gateway must answer as soon as ADD returns: without this the address stays
        // tentative for DAD's second or more (netavark does the same on its bridges).
        let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_dad", bridge.name), "0");
    }
    match host.add_addr(bridge.index, gw) {
        // Concurrent ADDs on one bridge race here; the address being there is the goal.
        Err(e) if !e.is_exists() => Err(Error::internal(format!(
            "could not add IP address {gw} to {:?}: {e}",
            bridge.name
        ))),
        _ => Ok(()),
    }?;
    // Pin the bridge MAC so it no longer follows the lowest port MAC as pods come and go.
    if let Some(mac) = bridge.mac {
        host.set_mac(bridge.index, mac)
            .or_internal(|| format!("could not set {}'s mac", bridge.name))?;
    }
    Ok(())
}

/// The host port is usable once the kernel reports it operationally up; both ends are up
/// by now, so this is normally true at the first look.
fn wait_port_up(host: &mut dyn Netlink, index: u32) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        let link = host
            .get_link(&LinkRef::Index(index))
            .or_internal(|| "looking up the host veth".into())?;
        if link.oper_up || !link.up {
            return Ok(());
        }
        if start.elapsed() > PORT_UP_TIMEOUT {
            return Err(Error::internal(format!(
                "bridge port in error state: {}",
                link.name
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// CHECK: the bridge, the container interface and its addresses and routes still match
/// the cached result.
pub fn check(
    conf: &Conf,
    req: &Request,
    prev: &Success,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<()> {
    let bridge = host
        .get_link(&LinkRef::from(conf.bridge.as_str()))
        .map_err(|e| Error::internal(format!("failed to lookup bridge {:?}: {e}", conf.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(Error::internal(format!(
            "{:?} is not a bridge",
            conf.bridge
        )));
    }
    let veth = ctr
        .get_link(&LinkRef::from(req.ifname.as_str()))
        .map_err(|e| Error::internal(format!("failed to lookup {:?}: {e}", req.ifname)))?;
    if conf.uses_vlans() {
        let port = host_port(conf, host, &bridge, &veth)?;
        PortVlans::of(conf).verify(conf, host, &port)?;
    }
    if let Some(iface) = prev
        .interfaces
        .iter()
        .find(|i| i.name == req.ifname && !i.sandbox.is_empty())
        && !iface.mac.is_empty()
        && !iface.mac.eq_ignore_ascii_case(&mac_of(&veth))
    {
        return Err(Error::internal(format!(
            "interface {} mac {} does not match the result's {}",
            req.ifname,
            mac_of(&veth),
            iface.mac
        )));
    }
    let addrs = ctr
        .addrs(Some(veth.index), None)
        .or_internal(|| "listing container addresses".into())?;
    for ip in &prev.ips {
        let ours = ip
            .interface
            .and_then(|i| prev.interfaces.get(i))
            .is_none_or(|i| i.name == req.ifname);
        if ours && !addrs.iter().any(|a| a.address == ip.address) {
            return Err(Error::internal(format!(
                "failed to find ip {} on interface {}",
                ip.address, req.ifname
            )));
        }
    }
    let routes = [
        ctr.routes(Some(rcni_netlink::Family::V4), None),
        ctr.routes(Some(rcni_netlink::Family::V6), None),
    ];
    let mut present = Vec::new();
    for r in routes {
        present.extend(r.or_internal(|| "listing container routes".into())?);
    }
    for route in &prev.routes {
        if !present
            .iter()
            .any(|p| p.dst == route.dst && (route.gw.is_none() || p.gw == route.gw))
        {
            return Err(Error::internal(format!(
                "route (dst {}, gw {:?}) not found in {}",
                route.dst, route.gw, req.ifname
            )));
        }
    }
    Ok(())
}

/// The host end of the container's veth: its peer, attached to the bridge.
fn host_port(conf: &Conf, host: &mut dyn Netlink, bridge: &Link, veth: &Link) -> Result<Link> {
    veth.peer_index
        .and_then(|peer| host.get_link(&LinkRef::Index(peer)).ok())
        .filter(|port| port.master == Some(bridge.index))
        .ok_or_else(|| {
            Error::internal(format!(
                "CNI veth created for bridge {} was not found",
                conf.bridge
            ))
        })
}
