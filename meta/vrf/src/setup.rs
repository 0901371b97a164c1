//! The VRF and its port, through a netlink handle in the container.
//!
//! Enslaving an interface to a VRF cycles it down and up: the kernel recreates its local
//! and connected routes in the VRF's table, drops every other route through it, and drops
//! its IPv6 addresses unless `keep_addr_on_down` is set. So ADD saves the interface's
//! routes and global IPv6 addresses first, then puts back the addresses that went and the
//! routes into the VRF's table (the reference's `addInterface`).

use std::time::Duration;

use rcni_netlink::{Addr, Family, Link, LinkData, LinkRef, Netlink, RouteSpec, VrfSpec, scope};
use rcni_types::{Error, Result, ResultExt};

use crate::config::Conf;

/// `RT_TABLE_MAIN`: where the routes to move are.
const MAIN_TABLE: u32 = 254;
/// How long re-added IPv6 addresses may take to become usable (the reference's backoff
/// sums to about 2.5 s).
const ADDRESS_TIMEOUT: Duration = Duration::from_millis(2550);

/// A VRF device and its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VrfLink {
    pub link: Link,
    pub table: u32,
}

/// The VRF `name`, if the namespace has a link of that name.
///
/// # Errors
/// A link of that name that is not a VRF ("Netlink blue is not a VRF"), a failed lookup.
pub fn find_vrf(nl: &mut dyn Netlink, name: &str) -> Result<Option<VrfLink>> {
    let link = match nl.get_link(&LinkRef::from(name)) {
        Ok(link) => link,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(Error::internal(format!("looking up {name}: {e}"))),
    };
    match vrf_table(nl, &link)? {
        Some(table) => Ok(Some(VrfLink { link, table })),
        None => Err(Error::internal(format!("Netlink {name} is not a VRF"))),
    }
}

fn vrf_table(nl: &mut dyn Netlink, link: &Link) -> Result<Option<u32>> {
    if link.kind.as_deref() != Some("vrf") {
        return Ok(None);
    }
    match nl
        .link_data(link.index)
        .or_internal(|| format!("reading the table of VRF {}", link.name))?
    {
        LinkData::Vrf { table } => Ok(Some(table)),
        _ => Ok(None),
    }
}

/// The first table id from 1 up that no VRF of the namespace uses (Go
/// `findFreeRoutingTableID`: tables used by other things are not looked at).
///
/// # Errors
/// A failed dump.
pub fn free_table(nl: &mut dyn Netlink) -> Result<u32> {
    let links = nl
        .links()
        .or_internal(|| "createVRF: Failed to find links".into())?;
    let mut taken = Vec::new();
    for link in &links {
        if let Some(table) = vrf_table(nl, link)? {
            taken.push(table);
        }
    }
    (1..u32::MAX).find(|t| !taken.contains(t)).ok_or_else(|| {
        Error::internal("findFreeRoutingTableID: Failed to find an available routing id")
    })
}

/// ADD: the VRF (made, up, when missing; an existing one must use `conf.table` when set),
/// then `ifname` enslaved to it with its routes moved into its table. A VRF made here is
/// deleted again, and the interface freed, if a later step fails.
///
/// # Errors
/// The reference's conditions and wording, after "cmdAdd failed: ".
pub fn add(conf: &Conf, ifname: &str, nl: &mut dyn Netlink) -> Result<()> {
    let prefix =
        |e: Error| Error::internal(format!("cmdAdd failed: {}", e.msg)).with_details(e.details);
    let (vrf, created) = match find_vrf(nl, &conf.name).map_err(prefix)? {
        Some(vrf) if conf.table != 0 && vrf.table != conf.table => {
            return Err(prefix(Error::internal(format!(
                "VRF {} already exist with different routing table {}",
                conf.name, vrf.table
            ))));
        }
        Some(vrf) => (vrf, false),
        None => (create_vrf(conf, nl).map_err(prefix)?, true),
    };
    match add_interface(&vrf, ifname, nl) {
        Ok(()) => Ok(()),
        Err(e) => {
            let mut e = prefix(e);
            if created {
                // Made for this ADD: nothing else can be using it yet.
                if let Err(undo) = nl.del_link(vrf.link.index) {
                    e = e.with_details(format!("deleting VRF {} also failed: {undo}", conf.name));
                }
            }
            Err(e)
        }
    }
}

fn create_vrf(conf: &Conf, nl: &mut dyn Netlink) -> Result<VrfLink> {
    let table = match conf.table {
        0 => free_table(nl)?,
        t => t,
    };
    let spec = VrfSpec {
        name: conf.name.clone(),
        table,
        ns: None,
    };
    nl.create_vrf(&spec).map_err(|e| {
        let msg = if e.is_unknown_link_kind() {
            format!(
                "could not add VRF {}: this kernel does not support VRF devices ({})",
                conf.name,
                e.ack().unwrap_or_default()
            )
        } else {
            format!("could not add VRF {}: {e}", conf.name)
        };
        Error::internal(msg)
    })?;
    let up = nl
        .get_link(&LinkRef::from(conf.name.as_str()))
        .and_then(|link| nl.set_up(link.index).map(|()| link));
    match up {
        Ok(link) => Ok(VrfLink { link, table }),
        Err(e) => {
            if let Ok(link) = nl.get_link(&LinkRef::from(conf.name.as_str())) {
                let _ = nl.del_link(link.index);
            }
            Err(Error::internal(format!(
                "could not set link up for VRF {}: {e}",
                conf.name
            )))
        }
    }
}

/// Global (universe-scope) IPv6 addresses of link `index`: what enslaving may drop.
fn global_v6(nl: &mut dyn Netlink, index: u32) -> Result<Vec<Addr>> {
    Ok(nl
        .addrs(Some(index), Some(Family::V6))
        .or_internal(|| format!("failed getting list of IP addresses for link {index}"))?
        .into_iter()
        .filter(|a| a.scope == scope::UNIVERSE)
        .collect())
}

/// The routes through link `index` in the main table that enslaving drops: universe
/// scope (the kernel recreates local and connected routes itself).
fn routes_through(nl: &mut dyn Netlink, index: u32) -> Result<Vec<RouteSpec>> {
    Ok(nl
        .routes(None, Some(MAIN_TABLE))
        .or_internal(|| format!("listing the routes of link {index}"))?
        .into_iter()
        .filter(|r| r.oif == Some(index) && r.scope.unwrap_or(scope::UNIVERSE) == scope::UNIVERSE)
        .collect())
}

/// Enslaves `ifname` to `vrf` and moves its routes into the VRF's table (Go
/// `addInterface`). If a step after enslaving fails, the interface is freed again and
/// given back what it had.
fn add_interface(vrf: &VrfLink, ifname: &str, nl: &mut dyn Netlink) -> Result<()> {
    let link = nl
        .get_link(&LinkRef::from(ifname))
        .map_err(|_| Error::internal(format!("could not get link by name {ifname}")))?;
    if let Some(master) = link.master {
        let name = nl.get_link(&LinkRef::Index(master)).map(|m| m.name);
        return Err(match name {
            Ok(name) => Error::internal(format!(
                "interface {ifname} has already a master set: {name}"
            )),
            Err(e) => Error::internal(format!(
                "interface {ifname} has already a master set, could not retrieve the name: {e}"
            )),
        });
    }
    let before = global_v6(nl, link.index).map_err(|e| {
        Error::internal(format!(
            "failed getting global ipv6 addresses before slaving interface: {}",
            e.msg
        ))
    })?;
    let routes = routes_through(nl, link.index)
        .or_internal(|| format!("failed getting all routes for {ifname}"))?;
    nl.set_master(link.index, vrf.link.index).map_err(|e| {
        Error::internal(format!(
            "could not set vrf {} as master of {ifname}: {e}",
            vrf.link.name
        ))
    })?;
    match fill_vrf_table(vrf, &link, &before, &routes, nl) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Back in the main table as it was (best effort: the error is what counts).
            let _ = nl.set_nomaster(link.index);
            let _ = restore_addresses(nl, &link, &before);
            for route in &routes {
                let _ = nl.replace_route(route);
            }
            Err(e)
        }
    }
}

/// After enslaving: the IPv6 addresses the down/up cycle took, then the saved routes in
/// the VRF's table.
fn fill_vrf_table(
    vrf: &VrfLink,
    link: &Link,
    before: &[Addr],
    routes: &[RouteSpec],
    nl: &mut dyn Netlink,
) -> Result<()> {
    let ifname = &link.name;
    if restore_addresses(nl, link, before)
        .map_err(|e| Error::internal(format!("{} @ {}", e.msg, vrf.link.name)))?
    {
        // Routes through them need them usable (the reference waits for their host routes
        // in the VRF's table, which appear when duplicate address detection is over).
        rcni_netlink::wait_dad(nl, link.index, ADDRESS_TIMEOUT).map_err(|e| {
            Error::internal(format!(
                "failed getting local/host addresses for {ifname} in table {}: {e}",
                vrf.table
            ))
        })?;
    }
    // The kernel has remade the connected routes in the VRF's table already: those stay
    // as it made them (protocol "kernel"), the rest is put there.
    let present = nl
        .routes(None, Some(vrf.table))
        .or_internal(|| format!("listing the routes of table {}", vrf.table))?;
    for route in routes {
        let mut moved = route.clone();
        moved.table = Some(vrf.table);
        if present.contains(&moved) {
            continue;
        }
        nl.replace_route(&moved)
            .map_err(|e| Error::internal(format!("could not add route '{moved}': {e}")))?;
    }
    Ok(())
}

/// Adds back the addresses of `before` that `link` lost; true when there were any.
fn restore_addresses(nl: &mut dyn Netlink, link: &Link, before: &[Addr]) -> Result<bool> {
    let after = global_v6(nl, link.index)?;
    let mut restored = false;
    for addr in before {
        if after.iter().any(|a| a.address == addr.address) {
            continue;
        }
        nl.add_addr(link.index, addr.address).map_err(|e| {
            Error::internal(format!(
                "could not restore address {} to {}: {e}",
                addr.address, link.name
            ))
        })?;
        restored = true;
    }
    Ok(restored)
}

/// DEL: `ifname` out of the VRF (when it is in it), and the VRF deleted once it has no
/// ports left. A missing VRF or interface is success.
///
/// # Errors
/// A link named `vrfname` that is not a VRF; a kernel refusal.
pub fn del(conf: &Conf, ifname: &str, nl: &mut dyn Netlink) -> Result<()> {
    let Some(vrf) = find_vrf(nl, &conf.name)? else {
        return Ok(());
    };
    match nl.get_link(&LinkRef::from(ifname)) {
        Ok(link) if link.master == Some(vrf.link.index) => {
            nl.set_nomaster(link.index).map_err(|e| {
                Error::internal(format!(
                    "resetMaster: could not reset master of {ifname}: {e}"
                ))
            })?;
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(Error::internal(format!("looking up {ifname}: {e}"))),
    }
    if ports(nl, &vrf)?.is_empty() {
        match nl.del_link(vrf.link.index) {
            Err(e) if !e.is_not_found() => {
                return Err(Error::internal(format!("deleting VRF {}: {e}", conf.name)));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The links enslaved to `vrf`.
fn ports(nl: &mut dyn Netlink, vrf: &VrfLink) -> Result<Vec<Link>> {
    Ok(nl
        .links()
        .or_internal(|| "getAssignedInterfaces: Failed to find links".into())?
        .into_iter()
        .filter(|l| l.master == Some(vrf.link.index))
        .collect())
}

/// CHECK: the VRF exists and `ifname` is one of its ports.
///
/// # Errors
/// No such VRF ("Link not found"); `ifname` not enslaved to it.
pub fn check(conf: &Conf, ifname: &str, nl: &mut dyn Netlink) -> Result<()> {
    let vrf = find_vrf(nl, &conf.name)?
        .ok_or_else(|| Error::internal(format!("VRF {}: Link not found", conf.name)))?;
    if ports(nl, &vrf)?.iter().any(|l| l.name == ifname) {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "Failed to find {ifname} associated to vrf {}",
            conf.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink, Op};

    use super::*;

    fn conf(name: &str, table: u32) -> Conf {
        Conf {
            name: name.into(),
            table,
        }
    }

    fn net(s: &str) -> ipnetwork::IpNetwork {
        s.parse().expect("test network")
    }

    /// A container namespace with `eth0` (up, 10.1.2.3/24 and fd00::3/64) and routes
    /// through it: the connected one (link scope), one via the gateway, a default.
    fn pod() -> (FakeNetlink, Link) {
        let mut nl = FakeNetlink::new();
        let eth0 = nl.seed_link("eth0", Some("veth"));
        nl.set_up(eth0.index).expect("up");
        nl.add_addr(eth0.index, net("10.1.2.3/24")).expect("v4");
        nl.add_addr(eth0.index, net("fd00::3/64")).expect("v6");
        let mut connected = RouteSpec::new(net("10.1.2.0/24"));
        connected.oif = Some(eth0.index);
        connected.scope = Some(scope::LINK);
        nl.add_route(&connected).expect("connected");
        for (dst, gw) in [("10.9.0.0/16", "10.1.2.1"), ("0.0.0.0/0", "10.1.2.1")] {
            let mut r = RouteSpec::new(net(dst));
            r.oif = Some(eth0.index);
            r.gw = gw.parse().ok();
            nl.add_route(&r).expect("route");
        }
        nl.take_calls();
        (nl, eth0)
    }

    fn in_table(nl: &FakeNetlink, table: u32) -> Vec<String> {
        let mut routes: Vec<String> = nl
            .route_list()
            .into_iter()
            .filter(|r| r.table == Some(table))
            .map(|r| r.dst.to_string())
            .collect();
        routes.sort();
        routes
    }

    #[test]
    fn add_makes_the_vrf_enslaves_and_moves_the_routes() {
        let (mut nl, eth0) = pod();
        add(&conf("blue", 0), "eth0", &mut nl).expect("ADD");
        let vrf = find_vrf(&mut nl, "blue").expect("lookup").expect("made");
        assert_eq!(vrf.table, 1, "the first free table");
        assert!(vrf.link.up);
        let eth0 = nl.get_link(&LinkRef::Index(eth0.index)).expect("eth0");
        assert_eq!(eth0.master, Some(vrf.link.index));
        assert_eq!(
            in_table(&nl, 1),
            ["0.0.0.0/0", "10.9.0.0/16"],
            "routes of universe scope moved; the kernel makes the connected one"
        );
        check(&conf("blue", 0), "eth0", &mut nl).expect("CHECK");

        // A second pod interface in the same VRF; a third VRF takes the next table.
        let eth1 = nl.seed_link("eth1", Some("veth"));
        add(&conf("blue", 1), "eth1", &mut nl).expect("same table");
        let e = add(&conf("blue", 7), "eth1", &mut nl).expect_err("other table");
        assert_eq!(
            e.msg,
            "cmdAdd failed: VRF blue already exist with different routing table 1"
        );
        nl.seed_link("eth2", Some("veth"));
        add(&conf("red", 0), "eth2", &mut nl).expect("red");
        assert_eq!(
            find_vrf(&mut nl, "red").expect("red").expect("made").table,
            2
        );

        // DEL keeps the VRF while it has ports.
        del(&conf("blue", 0), "eth0", &mut nl).expect("DEL eth0");
        assert!(find_vrf(&mut nl, "blue").expect("lookup").is_some());
        assert_eq!(
            nl.get_link(&LinkRef::Index(eth0.index))
                .expect("eth0")
                .master,
            None
        );
        let e = check(&conf("blue", 0), "eth0", &mut nl).expect_err("not a port now");
        assert_eq!(e.msg, "Failed to find eth0 associated to vrf blue");
        del(&conf("blue", 0), "eth1", &mut nl).expect("DEL eth1");
        assert!(
            find_vrf(&mut nl, "blue").expect("lookup").is_none(),
            "last port gone"
        );
        assert_eq!(
            nl.get_link(&LinkRef::Index(eth1.index))
                .expect("eth1")
                .master,
            None
        );
        del(&conf("blue", 0), "eth1", &mut nl).expect("DEL again: nothing to do");
        del(&conf("red", 0), "nope", &mut nl).expect("a missing interface is fine");
        assert!(
            find_vrf(&mut nl, "red").expect("lookup").is_some(),
            "eth2 still in it"
        );
    }

    #[test]
    fn lost_ipv6_addresses_come_back() {
        let (mut nl, eth0) = pod();
        // Enslaving without keep_addr_on_down drops the IPv6 address (the fake does not
        // model that): drop it by hand after taking the "before" list.
        let before = global_v6(&mut nl, eth0.index).expect("before");
        assert_eq!(before.len(), 1);
        nl.del_addr(eth0.index, net("fd00::3/64")).expect("dropped");
        assert!(restore_addresses(&mut nl, &eth0, &before).expect("restored"));
        assert!(
            nl.calls()
                .contains(&Call::AddAddr(eth0.index, net("fd00::3/64")))
        );
        assert!(!restore_addresses(&mut nl, &eth0, &before).expect("nothing to do"));
    }

    #[test]
    fn a_failed_add_leaves_nothing_behind() {
        let (mut nl, eth0) = pod();
        nl.fail_next(Op::ReplaceRoute, libc::EINVAL);
        let e = add(&conf("blue", 0), "eth0", &mut nl).expect_err("route");
        assert!(
            e.msg.starts_with("cmdAdd failed: could not add route '"),
            "{e}"
        );
        assert!(
            find_vrf(&mut nl, "blue").expect("lookup").is_none(),
            "VRF deleted"
        );
        let eth0 = nl.get_link(&LinkRef::Index(eth0.index)).expect("eth0");
        assert_eq!(eth0.master, None, "freed");
        assert_eq!(
            in_table(&nl, 254),
            ["0.0.0.0/0", "10.1.2.0/24", "10.9.0.0/16"]
        );

        let e = add(&conf("blue", 0), "nope", &mut nl).expect_err("no interface");
        assert_eq!(e.msg, "cmdAdd failed: could not get link by name nope");
        assert!(find_vrf(&mut nl, "blue").expect("lookup").is_none());

        let br = nl.seed_link("br0", Some("bridge"));
        nl.set_master(eth0.index, br.index).expect("bridged");
        let e = add(&conf("blue", 0), "eth0", &mut nl).expect_err("has a master");
        assert_eq!(
            e.msg,
            "cmdAdd failed: interface eth0 has already a master set: br0"
        );
        let e = add(&conf("br0", 0), "eth0", &mut nl).expect_err("not a VRF");
        assert_eq!(e.msg, "cmdAdd failed: Netlink br0 is not a VRF");
        assert!(
            del(&conf("br0", 0), "eth0", &mut nl).is_err(),
            "as the reference"
        );

        nl.fail_next(Op::CreateVrf, libc::EOPNOTSUPP);
        nl.set_nomaster(eth0.index).expect("free");
        let e = add(&conf("blue", 0), "eth0", &mut nl).expect_err("no vrf support");
        assert!(
            e.msg.starts_with("cmdAdd failed: could not add VRF blue"),
            "{e}"
        );
    }
}
