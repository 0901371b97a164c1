//! What every interface plugin does around the link it makes for the container, apart
//! from IPAM: open the container namespace with a netlink socket on each side; for the
//! plugins that hang their link off a master interface (macvlan, ipvlan, vlan), find that
//! master and judge `mtu` against it; for those whose attachment is that one link, build
//! the result and undo the link when a later step fails.

use rcni_netlink::{Family, Ipv4Conf, Link, LinkRef, Netlink, RealNetlink, format_mac};
use rcni_netns::{NetNs, sysctl};
use rcni_skel::Request;
use rcni_types::{Error, Interface, Result, ResultExt, Success};

/// The start of ADD: CNI_NETNS opened, and a netlink socket in the host namespace and
/// one inside the container's (`(netns, host, ctr)`, DESIGN §1 step 2).
///
/// # Errors
/// The namespace cannot be opened (Go's "failed to open netns ..."), or a socket cannot be
/// made on either side.
pub fn open_attachment(req: &Request) -> Result<(NetNs, RealNetlink, RealNetlink)> {
    let netns = req.open_netns()?;
    let (host, ctr) = rcni_netlink::open_pair(&netns).or_internal(|| {
        format!(
            "opening netlink sockets for netns {}",
            netns.path().display()
        )
    })?;
    Ok((netns, host, ctr))
}

/// A netlink socket inside `netns` alone, for the steps that need no host side: DEL of
/// the container interface, CHECK, a rollback that runs while the ADD's handles are
/// borrowed.
///
/// # Errors
/// The namespace cannot be entered, or the socket cannot be made.
pub fn container_netlink(netns: &NetNs) -> Result<RealNetlink> {
    netns
        .run(RealNetlink::new)
        .or_internal(|| format!("entering netns {}", netns.path().display()))?
        .or_internal(|| "opening netlink in the container".into())
}

/// Refuses an ADD whose CNI_IFNAME is taken in the container, before IPAM allocates
/// anything: the `kind` link made under a temporary name could not be renamed to it (the
/// reference fails at the rename, with this wording). For ipvlan and vlan.
///
/// # Errors
/// The name is taken ("failed to rename vlan to \"eth0\": an interface of that name
/// already exists in netns /run/netns/x").
pub fn ensure_ifname_free(
    ctr: &mut dyn Netlink,
    kind: &str,
    ifname: &str,
    netns: &NetNs,
) -> Result<()> {
    if ctr.get_link(&LinkRef::from(ifname)).is_ok() {
        return Err(Error::internal(format!(
            "failed to rename {kind} to {ifname:?}: an interface of that name already exists in netns {}",
            netns.path().display()
        )));
    }
    Ok(())
}

/// The handle that sees the master: the container's with `linkInContainer`, the host's
/// otherwise.
pub fn master_side<'a>(
    link_in_container: bool,
    host: &'a mut dyn Netlink,
    ctr: &'a mut dyn Netlink,
) -> &'a mut dyn Netlink {
    if link_in_container { ctr } else { host }
}

/// The master link, looked up through `nl`: `name`, or with `None` the interface of the
/// first default route ([`default_route_interface`]).
///
/// # Errors
/// No default route; no such interface ("failed to lookup master \"eth1\": Link not
/// found", the reference's wording).
pub fn find_master(nl: &mut dyn Netlink, name: Option<&str>) -> Result<Link> {
    let name = match name {
        Some(name) => name.to_string(),
        None => default_route_interface(nl)?,
    };
    nl.get_link(&LinkRef::from(name.as_str()))
        .map_err(|e| Error::internal(format!("failed to lookup master {name:?}: {e}")))
}

/// The interface of the first default route of the main table, IPv4 first (Go
/// `getDefaultRouteInterfaceName` lists both families and takes the first route without a
/// destination).
///
/// # Errors
/// None found ("no default route interface found"), or a failed dump or lookup.
pub fn default_route_interface(nl: &mut dyn Netlink) -> Result<String> {
    for family in [Family::V4, Family::V6] {
        let routes = nl
            .routes(Some(family), None)
            .or_internal(|| "listing routes to find the default route".into())?;
        if let Some(oif) = routes
            .iter()
            .filter(|r| r.dst.prefix() == 0)
            .find_map(|r| r.oif)
        {
            let link = nl
                .get_link(&LinkRef::Index(oif))
                .or_internal(|| format!("looking up link {oif} of the default route"))?;
            return Ok(link.name);
        }
    }
    Err(Error::internal("no default route interface found"))
}

/// The configured `mtu` judged against the master's: a link on a master cannot be larger.
/// `None` for 0, which leaves the kernel's default (the master's).
///
/// # Errors
/// Negative or above the master's MTU, in the reference's wording.
pub fn master_mtu(mtu: i64, master: &Link) -> Result<Option<u32>> {
    match u32::try_from(mtu) {
        Ok(0) => Ok(None),
        Ok(m) if m <= master.mtu => Ok(Some(m)),
        _ => Err(Error::internal(format!(
            "invalid MTU {mtu}, must be [0, master MTU({})]",
            master.mtu
        ))),
    }
}

/// An interface name the kernel could have: 1-15 bytes, not `.`/`..`, no `/`, `:` or
/// whitespace. The reference lets the lookup fail instead ("Link not found"); judging it
/// while parsing names the config `key` before anything is looked up.
///
/// # Errors
/// A name the kernel would refuse.
pub fn check_ifname(key: &str, name: &str) -> Result<()> {
    let bad = name.len() > 15
        || name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.chars().any(char::is_whitespace);
    if bad {
        return Err(Error::internal(format!(
            "failed to lookup {key} {name:?}: not a valid interface name"
        )));
    }
    Ok(())
}

/// The result of an attachment that is one container interface (macvlan, ipvlan, vlan,
/// dummy): `link`, inside `netns`, as interface 0, with `source`'s IPs (pointed at it),
/// routes and DNS. Plugins that report the config's DNS replace it afterwards.
#[must_use]
pub fn container_result(req: &Request, netns: &NetNs, link: &Link, source: Success) -> Success {
    let mut result = Success {
        cni_version: req.version().to_string(),
        interfaces: vec![Interface {
            name: link.name.clone(),
            mac: link.mac.map(format_mac).unwrap_or_default(),
            sandbox: netns.path().display().to_string(),
            ..Interface::default()
        }],
        ..source
    };
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    result
}

/// Turns on `arp_notify` and `ndisc_notify` for `link` inside `netns` (`ctr` is a netlink
/// socket there), so neighbours learn the new interface's MAC at once. Best effort, as in
/// the reference: kernels without IPv6 lack the second knob, and neither is worth failing
/// an ADD for. `arp_notify` is set over netlink (no `/proc/sys` lookup); the kernel takes
/// no IPv6 settings that way.
///
/// # Errors
/// The namespace cannot be entered.
pub fn enable_neighbour_notify(netns: &NetNs, ctr: &mut dyn Netlink, link: &Link) -> Result<()> {
    let _ = ctr.set_ipv4_conf(link.index, Ipv4Conf::ArpNotify, 1);
    let ifname = &link.name;
    netns
        .run(|| {
            let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1");
        })
        .or_internal(|| format!("entering netns {}", netns.path().display()))
}

/// Deletes link `index` (named `ifname`) that an ADD made in the container, after a later
/// step failed with `e`; returns `e`, with a failed deletion in its details (already gone
/// is fine).
#[must_use]
pub fn undo_link(ctr: &mut dyn Netlink, index: u32, ifname: &str, e: Error) -> Error {
    match ctr.del_link(index) {
        Err(undo) if !undo.is_not_found() => {
            e.with_details(format!("deleting {ifname:?} also failed: {undo}"))
        }
        _ => e,
    }
}

/// Deletes link `index` (named `name`) of the calling thread's namespace through a socket
/// of its own: a rollback step, which runs while the plugin's handles are still borrowed
/// by the rest of ADD. Already gone is success; deleting a veth end removes its peer too.
///
/// # Errors
/// No socket, or the kernel refuses ("deleting veth1234abcd: ...").
pub fn delete_host_link(index: u32, name: &str) -> Result<()> {
    let mut nl = RealNetlink::new().or_internal(|| "opening netlink".into())?;
    match nl.del_link(index) {
        Err(e) if !e.is_not_found() => Err(Error::internal(format!("deleting {name}: {e}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{FakeNetlink, RouteSpec};

    use super::*;

    #[test]
    fn the_master_is_named_or_the_default_routes_on_the_chosen_side() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let uplink = host.seed_link("uplink", None);
        ctr.seed_link("net0", None);
        let e = find_master(&mut host, None).expect_err("no default route yet");
        assert_eq!(e.msg, "no default route interface found");
        host.add_route(&RouteSpec {
            oif: Some(uplink.index),
            ..RouteSpec::new("0.0.0.0/0".parse().expect("cidr"))
        })
        .expect("default route");
        let found = find_master(master_side(false, &mut host, &mut ctr), None).expect("host");
        assert_eq!(found.name, "uplink");
        let found = find_master(master_side(true, &mut host, &mut ctr), Some("net0")).expect("ctr");
        assert_eq!(found.name, "net0");
        let e = find_master(&mut host, Some("net0")).expect_err("not on the host");
        assert_eq!(e.msg, "failed to lookup master \"net0\": Link not found");
    }

    #[test]
    fn mtu_runs_from_zero_to_the_masters() {
        let nl = FakeNetlink::new();
        let master = nl.seed_link("eth0", None);
        assert_eq!(master_mtu(0, &master).expect("default"), None);
        assert_eq!(master_mtu(1500, &master).expect("equal"), Some(1500));
        for bad in [-1, 1501, i64::MAX] {
            let e = master_mtu(bad, &master).expect_err("out of range");
            assert_eq!(
                e.msg,
                format!("invalid MTU {bad}, must be [0, master MTU(1500)]")
            );
        }
    }

    #[test]
    fn a_taken_name_is_refused_and_an_undone_link_is_gone() {
        let mut ctr = FakeNetlink::new();
        let ns = NetNs::current().expect("own netns");
        ensure_ifname_free(&mut ctr, "vlan", "eth0", &ns).expect("free");
        let link = ctr.seed_link("eth0", Some("vlan"));
        let e = ensure_ifname_free(&mut ctr, "vlan", "eth0", &ns).expect_err("taken");
        assert!(
            e.msg
                .starts_with("failed to rename vlan to \"eth0\": an interface of that name"),
            "{e}"
        );
        let e = undo_link(&mut ctr, link.index, "eth0", Error::internal("later step"));
        assert_eq!((e.msg.as_str(), e.details.as_str()), ("later step", ""));
        assert!(ctr.get_link(&"eth0".into()).is_err(), "deleted");
        let e = undo_link(&mut ctr, link.index, "eth0", Error::internal("again"));
        assert_eq!(e.details, "", "already gone is fine");
    }
}
