//! ADD and CHECK: the veth pair, the container's routes through the gateway, the host's
//! gateway address and host routes, masquerade.

use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnetwork::IpNetwork;
use rcni_ipam::{Allocation, Dad};
use rcni_netlink::{Link, LinkRef, Netlink, RouteSpec, format_mac, scope};
use rcni_netns::{NetNs, sysctl};
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Success};

use crate::config::Conf;

/// Index of the container interface in the result (`[hostVeth, containerVeth]`).
const CONTAINER_INDEX: usize = 1;

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
    // IPAM runs in its own process while the veth is made (DESIGN §7).
    let ipam = Allocation::start(&conf.ipam, req)?;
    let mut rollback = Rollback::new();
    // Whatever fails below, the allocation must be released.
    rollback.push(|| ipam.release());
    let attach = Attach { conf, req, netns };
    match add_links(&attach, host, ctr, &ipam, &mut rollback) {
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
    ipam: &Allocation<'_>,
    rollback: &mut Rollback<'a>,
) -> Result<Success> {
    let Attach { conf, req, netns } = *attach;
    let pair = rcni_netlink::create_veth_pair(
        host,
        ctr,
        &rcni_netlink::PodVeth {
            netns: netns.as_fd(),
            ifname: &req.ifname,
            mtu: conf.mtu,
            mac: None,
            master: None,
        },
    )
    .map_err(|e| Error::internal(format!("failed to make veth pair: {e}")))?;
    let (host_veth, ctr_veth) = (pair.host, pair.container);
    let (host_index, host_name) = (host_veth.index, host_veth.name.clone());
    // Deleting the host end removes the container end too.
    rollback.push(move || rcni_ipam::delete_host_link(host_index, &host_name));
    // The host owns this end's routes, so router advertisements must not add any.
    // Kernels without IPv6 have no such knob, which is fine.
    let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_ra", host_veth.name), "0");
    host.set_up(host_veth.index)
        .or_internal(|| format!("failed to set {:?} up", host_veth.name))?;

    let ipam_result = ipam.result()?;
    if ipam_result.ips.iter().any(|ip| ip.address.is_ipv6()) {
        // The IPv6 gateway address put on this end below must answer as soon as ADD
        // returns, not after DAD. Only then: a valid link-local on a forwarding host makes
        // the kernel's later deletion of the veth some 20 ms slower (measured), which an
        // IPv4-only pod has no reason to pay early.
        let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_dad", host_veth.name), "0");
    }
    let mut result = Success {
        cni_version: req.version().to_string(),
        interfaces: vec![
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
        ips: ipam_result.ips,
        routes: ipam_result.routes,
        dns: ipam_result.dns,
    };
    for ip in &mut result.ips {
        ip.interface = Some(CONTAINER_INDEX);
    }
    let gateways = gateways(&result)?;
    rcni_ipam::enable_forwarding(
        gateways.iter().any(|(ip, _)| ip.is_ipv4()),
        gateways.iter().any(|(ip, _)| ip.is_ipv6()),
    )
    .map_err(|e| Error::internal(format!("Could not enable IP forwarding: {}", e.msg)))?;
    configure_container(netns, ctr, &ctr_veth, &result, &gateways)?;
    configure_host(host, &host_veth, &gateways)?;
    if conf.ip_masq {
        rcni_ipam::add_masquerade(
            &conf.network,
            conf.ip_masq_backend.as_deref(),
            req,
            &result,
            rollback,
        )?;
    }
    if let Some(dns) = &conf.dns {
        result.dns = dns.clone();
    }
    Ok(result)
}

fn mac_of(link: &Link) -> String {
    link.mac.map(format_mac).unwrap_or_default()
}

/// Every address with its gateway. ptp routes everything through the gateway, so an
/// address without one cannot be configured (the reference fails on it in the kernel).
fn gateways(result: &Success) -> Result<Vec<(IpNetwork, IpAddr)>> {
    result
        .ips
        .iter()
        .map(|ip| {
            ip.gateway.map(|gw| (ip.address, gw)).ok_or_else(|| {
                Error::internal(format!(
                    "IPAM result has no gateway for {}: ptp routes through the gateway",
                    ip.address
                ))
            })
        })
        .collect()
}

/// The address as a single-host network: `/32` or `/128`.
fn host_net(ip: IpAddr) -> IpNetwork {
    IpNetwork::from(ip)
}

/// The subnet of `address` (host bits cleared).
fn subnet_of(address: &IpNetwork) -> IpNetwork {
    IpNetwork::new(address.network(), address.prefix()).unwrap_or(*address)
}

/// Container side. A veth cannot be point-to-point, so (as the reference explains) the
/// address keeps its prefix, the kernel's connected route for the subnet is replaced by a
/// link-scope route to the gateway alone and a route to the subnet via the gateway: every
/// packet, also to a neighbour in the subnet, goes through the host. Both routes carry the
/// container address as source. The IPAM routes follow, via the gateway now reachable.
fn configure_container(
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    veth: &Link,
    result: &Success,
    gateways: &[(IpNetwork, IpAddr)],
) -> Result<()> {
    let ifname = &veth.name;
    // IPv6 addresses must have finished DAD before they can be a route's source; the
    // reference waits for DAD as well.
    rcni_ipam::configure_addresses(netns, ctr, veth, result, Dad::Wait)?;
    for (address, gw) in gateways {
        let subnet = subnet_of(address);
        // A /32 (/128) or secondary address has no connected route: nothing to delete.
        match ctr.del_route(&RouteSpec {
            oif: Some(veth.index),
            ..RouteSpec::new(subnet)
        }) {
            Err(e) if !e.is_not_found() => {
                return Err(Error::internal(format!(
                    "failed to delete route {subnet} dev {ifname}: {e}"
                )));
            }
            _ => {}
        }
        let to_gateway = RouteSpec {
            oif: Some(veth.index),
            scope: Some(scope::LINK),
            src: Some(address.ip()),
            ..RouteSpec::new(host_net(*gw))
        };
        let via_gateway = RouteSpec {
            gw: Some(*gw),
            oif: Some(veth.index),
            scope: Some(scope::UNIVERSE),
            src: Some(address.ip()),
            ..RouteSpec::new(subnet)
        };
        for route in [to_gateway, via_gateway] {
            match ctr.add_route(&route) {
                // Two addresses of one subnet share both routes.
                Err(e) if !e.is_exists() => {
                    return Err(Error::internal(format!(
                        "failed to add route {route} on {ifname}: {e}"
                    )));
                }
                _ => {}
            }
        }
    }
    rcni_ipam::add_routes(ctr, veth, result)
}

/// Host side: each gateway as a /32 (/128) on the host end, and a host route to each
/// container address through it (already there: fine, as in the reference).
fn configure_host(
    host: &mut dyn Netlink,
    veth: &Link,
    gateways: &[(IpNetwork, IpAddr)],
) -> Result<()> {
    for (address, gw) in gateways {
        let gw_net = host_net(*gw);
        match host.add_addr(veth.index, gw_net) {
            Err(e) if !e.is_exists() => {
                return Err(Error::internal(format!(
                    "failed to add IP addr {gw_net} to veth {}: {e}",
                    veth.name
                )));
            }
            _ => {}
        }
        let route = RouteSpec {
            oif: Some(veth.index),
            scope: Some(scope::HOST),
            ..RouteSpec::new(host_net(address.ip()))
        };
        match host.add_route(&route) {
            Err(e) if !e.is_exists() => {
                return Err(Error::internal(format!(
                    "failed to add route on host: {route}: {e}"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// CHECK inside the container: `iface` (from `prevResult`) is a veth here with the
/// result's MAC, and carries the result's addresses and routes. Go's wording.
pub fn check(ctr: &mut dyn Netlink, iface: &Interface, prev: &Success) -> Result<()> {
    let wording = rcni_ipam::Wording {
        prefix: "ptp: ",
        lower_case: false,
    };
    let link = rcni_ipam::check_container_link(ctr, iface, Some(("veth", "veth/p2p")), wording)?;
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink};
    use rcni_types::{IpConfig, Route};

    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test network")
    }

    fn result(ctr_name: &str) -> Success {
        Success {
            cni_version: "1.0.0".into(),
            interfaces: vec![
                Interface {
                    name: "veth0".into(),
                    ..Interface::default()
                },
                Interface {
                    name: ctr_name.into(),
                    sandbox: "/ns".into(),
                    ..Interface::default()
                },
            ],
            ips: vec![IpConfig::new(
                net("10.1.0.5/24"),
                "10.1.0.1".parse().ok(),
                Some(1),
            )],
            routes: vec![Route::new(net("0.0.0.0/0"), None)],
            ..Success::default()
        }
    }

    #[test]
    fn container_routes_go_through_the_gateway_before_the_ipam_routes() {
        let mut ctr = FakeNetlink::new();
        let link = ctr.seed_link("eth0", Some("veth"));
        let r = result("eth0");
        let gws = gateways(&r).expect("gateways");
        let ns = NetNs::current().expect("own netns");
        configure_container(&ns, &mut ctr, &link, &r, &gws).expect("configure");
        let routes: Vec<_> = ctr
            .take_calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::DelRoute(r) => Some(format!("del {r} scope {:?}", r.scope)),
                Call::AddRoute(r) => Some(format!(
                    "add {r} scope {:?} src {}",
                    r.scope,
                    r.src.map(|s| s.to_string()).unwrap_or_default()
                )),
                _ => None,
            })
            .collect();
        let idx = link.index;
        assert_eq!(
            routes,
            [
                format!("del 10.1.0.0/24 dev {idx} scope None"),
                format!("add 10.1.0.1/32 dev {idx} scope Some(253) src 10.1.0.5"),
                format!("add 10.1.0.0/24 via 10.1.0.1 dev {idx} scope Some(0) src 10.1.0.5"),
                format!("add 0.0.0.0/0 via 10.1.0.1 dev {idx} scope None src "),
            ]
        );
        assert!(
            ctr.addr_list()
                .iter()
                .any(|a| a.address == net("10.1.0.5/24")),
            "the address keeps its prefix"
        );
    }

    #[test]
    fn host_end_gets_the_gateway_and_a_host_route() {
        let mut host = FakeNetlink::new();
        let veth = host.seed_link("veth0", Some("veth"));
        let gws = gateways(&result("eth0")).expect("gateways");
        configure_host(&mut host, &veth, &gws).expect("host side");
        // Twice, as for a second attachment sharing the gateway: EEXIST is fine.
        configure_host(&mut host, &veth, &gws).expect("host side again");
        assert_eq!(
            host.addr_list()
                .iter()
                .map(|a| a.address.to_string())
                .collect::<Vec<_>>(),
            ["10.1.0.1/32"]
        );
        let routes = host.route_list();
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0].dst, net("10.1.0.5/32"));
        assert_eq!(
            (routes[0].oif, routes[0].scope),
            (Some(veth.index), Some(scope::HOST))
        );
    }

    #[test]
    fn an_address_without_gateway_is_refused() {
        let mut r = result("eth0");
        r.ips[0].gateway = None;
        let e = gateways(&r).expect_err("no gateway");
        assert!(e.msg.contains("10.1.0.5/24"), "{e}");
    }

    #[test]
    fn check_names_what_differs() {
        let mut ctr = FakeNetlink::new();
        let link = ctr.seed_link("eth0", Some("veth"));
        let mut r = result("eth0");
        r.routes.clear();
        let iface = r.interfaces[1].clone();
        let e = check(&mut ctr, &iface, &r).expect_err("no address yet");
        assert_eq!(e.msg, "Failed to match addr 10.1.0.5/24 on interface eth0");

        let gws = gateways(&r).expect("gateways");
        let ns = NetNs::current().expect("own netns");
        configure_container(&ns, &mut ctr, &link, &r, &gws).expect("configure");
        check(&mut ctr, &iface, &r).expect("configured as the result says");

        let wrong_mac = Interface {
            mac: "02:00:00:00:00:01".into(),
            ..iface.clone()
        };
        let e = check(&mut ctr, &wrong_mac, &r).expect_err("mac");
        assert!(
            e.msg
                .starts_with("ptp: Interface eth0 Mac 02:00:00:00:00:01"),
            "{e}"
        );

        r.routes.push(Route::new(net("10.9.0.0/16"), None));
        let e = check(&mut ctr, &iface, &r).expect_err("route");
        assert_eq!(
            e.msg,
            "Expected Route 10.9.0.0/16 not found in routing table"
        );

        ctr.seed_link("dummy0", Some("dummy"));
        let not_veth = Interface {
            name: "dummy0".into(),
            ..iface
        };
        let e = check(&mut ctr, &not_veth, &r).expect_err("kind");
        assert_eq!(
            e.msg,
            "Error: Container interface dummy0 not of type veth/p2p"
        );
    }

    /// The kernel's routing tables after both sides are configured, as `ip` shows them
    /// for the reference plugin (dual stack; the container waits for DAD).
    #[test]
    fn kernel_tables_match_the_reference() {
        use rcni_netlink::RealNetlink;
        use rcni_testkit::TestNetns;

        if !rcni_testkit::require_root() {
            return;
        }
        let (host_ns, ctr_ns) = (TestNetns::new(), TestNetns::new());
        let open = |ns: &TestNetns| ns.run(RealNetlink::new).expect("netlink socket");
        let (mut host, mut ctr) = (open(&host_ns), open(&ctr_ns));
        let netns = ctr_ns.netns();
        let pod = rcni_netlink::PodVeth {
            netns: netns.as_fd(),
            ifname: "eth0",
            mtu: None,
            mac: None,
            master: None,
        };
        let pair = rcni_netlink::create_veth_pair(&mut host, &mut ctr, &pod).expect("veth pair");
        host.set_up(pair.host.index).expect("host end up");
        let mut r = result("eth0");
        r.ips.push(IpConfig::new(
            net("fd00:1::5/64"),
            "fd00:1::1".parse().ok(),
            Some(1),
        ));
        let gws = gateways(&r).expect("gateways");
        configure_container(&ctr_ns.netns(), &mut ctr, &pair.container, &r, &gws)
            .expect("container side");
        host_ns.run(|| {
            let _ = sysctl::write(&format!("net/ipv6/conf/{}/accept_dad", pair.host.name), "0");
        });
        configure_host(&mut host, &pair.host, &gws).expect("host side");

        let lines = |ns: &TestNetns, argv: &[&str]| -> Vec<String> {
            ns.exec_ok(argv)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.starts_with("fe80::") && !l.starts_with("multicast"))
                .collect()
        };
        assert_eq!(
            lines(&ctr_ns, &["ip", "-4", "route"]),
            [
                "default via 10.1.0.1 dev eth0",
                "10.1.0.0/24 via 10.1.0.1 dev eth0 src 10.1.0.5",
                "10.1.0.1 dev eth0 scope link src 10.1.0.5",
            ]
        );
        assert_eq!(
            lines(&ctr_ns, &["ip", "-6", "route"]),
            [
                "fd00:1::1 dev eth0 src fd00:1::5 metric 1024 pref medium",
                "fd00:1::/64 via fd00:1::1 dev eth0 src fd00:1::5 metric 1024 pref medium",
            ]
        );
        let host_name = pair.host.name.as_str();
        assert_eq!(
            lines(&host_ns, &["ip", "-4", "route"]),
            [format!("10.1.0.5 dev {host_name} scope host")]
        );
        assert_eq!(
            lines(&host_ns, &["ip", "-6", "route"]),
            [
                format!("fd00:1::1 dev {host_name} proto kernel metric 256 pref medium"),
                format!("fd00:1::5 dev {host_name} metric 1024 pref medium"),
            ]
        );
        let host_addrs = lines(&host_ns, &["ip", "-o", "addr", "show", "dev", host_name]);
        assert!(
            host_addrs.iter().any(|l| l.contains("inet 10.1.0.1/32"))
                && host_addrs.iter().any(|l| l.contains("inet6 fd00:1::1/128")),
            "{host_addrs:?}"
        );
        check(&mut ctr, &r.interfaces[1], &r).expect("CHECK passes on the real kernel");
    }
}
