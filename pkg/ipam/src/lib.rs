//! What every interface plugin does with its delegated IPAM (Go `pkg/ipam`):
//! - [`Allocation`]: start the IPAM ADD before the links are made, collect its result
//!   after, and release it if the ADD fails later (DESIGN §7: the IPAM process overlaps
//!   the kernel work);
//! - [`configure_interface`]: put a result's addresses and routes on the container
//!   interface (Go `ipam.ConfigureIface`);
//! - [`enable_forwarding`]: IP forwarding for the families in use.
//!
//! And what they share around the link itself: [`open_attachment`] opens the container
//! namespace with a netlink socket on each side; [`find_master`], [`master_side`] and
//! [`master_mtu`] find the parent of a macvlan, ipvlan or vlan; [`container_result`],
//! [`enable_neighbour_notify`] and [`undo_link`] serve plugins whose attachment is one
//! container interface.

mod attach;

mod check;
mod masq;
pub use attach::{
    check_ifname, container_netlink, container_result, default_route_interface, delete_host_link,
    enable_neighbour_notify, ensure_ifname_free, find_master, master_mtu, master_side,
    open_attachment, undo_link,
};
pub use check::{Wording, check_container_link};
pub use masq::{add_masquerade, del_masquerade};

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Duration;

use ipnetwork::IpNetwork;
use rcni_invoke::{Delegate, Running};
use rcni_netlink::{Link, Netlink, RouteSpec};
use rcni_netns::{NetNs, sysctl};
use rcni_skel::{Command, Request};
use rcni_types::{Error, Result, ResultExt, Success};

/// How long IPv6 duplicate address detection may take when it is on (the reference waits
/// up to 5 s).
pub const DAD_TIMEOUT: Duration = Duration::from_secs(5);

enum State {
    Running(Delegate, Running),
    Allocated(Delegate),
    Done,
}

/// A delegated IPAM ADD: started early, collected once, released on failure.
pub struct Allocation<'r> {
    req: &'r Request,
    state: RefCell<State>,
}

impl<'r> Allocation<'r> {
    /// Starts the IPAM plugin `kind` (found on CNI_PATH) with the request's env and stdin.
    ///
    /// # Errors
    /// The plugin is not found or cannot be started.
    pub fn start(kind: &str, req: &'r Request) -> Result<Allocation<'r>> {
        let delegate = Delegate::find(kind, req)?;
        let running = delegate.start(Command::Add, req)?;
        Ok(Allocation {
            req,
            state: RefCell::new(State::Running(delegate, running)),
        })
    }

    /// Waits for the IPAM result. The allocation is remembered for [`Allocation::release`].
    ///
    /// # Errors
    /// IPAM's own error, unchanged; a result without addresses.
    pub fn result(&self) -> Result<Success> {
        match self.state.replace(State::Done) {
            State::Running(delegate, running) => {
                let result = running.wait_result()?;
                self.state.replace(State::Allocated(delegate));
                if result.ips.is_empty() {
                    return Err(Error::internal("IPAM plugin returned missing IP config"));
                }
                Ok(result)
            }
            other => {
                self.state.replace(other);
                Err(Error::internal("IPAM result collected twice"))
            }
        }
    }

    /// Undoes the allocation, if IPAM made one (a failed IPAM ADD allocated nothing).
    ///
    /// # Errors
    /// IPAM's DEL failed.
    pub fn release(&self) -> Result<()> {
        match self.state.replace(State::Done) {
            State::Running(delegate, running) => match running.wait() {
                Ok(_) => delegate.call(Command::Del, self.req),
                Err(_) => Ok(()),
            },
            State::Allocated(delegate) => delegate.call(Command::Del, self.req),
            State::Done => Ok(()),
        }
    }
}

/// Whether IPv6 duplicate address detection runs on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// `accept_dad=0`: addresses are usable at once (what the bridge does by default).
    Off,
    /// DAD runs and ADD waits for it, up to [`DAD_TIMEOUT`].
    Wait,
}

/// Applies `result` to the container interface `link` (named `ifname`) through `ctr`, a
/// netlink handle inside `netns`: IPv6 sysctls, the addresses that belong to this
/// interface, link up, then the routes (a route without `gw` goes via its family's
/// gateway, as in Go).
///
/// # Errors
/// The first step that fails, naming the interface and the address or route.
pub fn configure_interface(
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    result: &Success,
    dad: Dad,
) -> Result<()> {
    configure_addresses(netns, ctr, link, result, dad)?;
    add_routes(ctr, link, result)
}

/// The IPs of `result` that belong to the interface named `ifname` (those without an
/// interface index included, as in Go).
fn own_ips<'a>(result: &'a Success, ifname: &str) -> Vec<&'a rcni_types::IpConfig> {
    let own = |i: Option<usize>| {
        i.and_then(|i| result.interfaces.get(i))
            .is_none_or(|iface| iface.name == ifname)
    };
    result.ips.iter().filter(|ip| own(ip.interface)).collect()
}

/// The first half of [`configure_interface`]: IPv6 sysctls, the interface's addresses,
/// link up and, with [`Dad::Wait`], the wait for DAD. For plugins that change the
/// kernel's routes (ptp) before adding the result's with [`add_routes`].
///
/// # Errors
/// The first step that fails, naming the interface and the address.
pub fn configure_addresses(
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    result: &Success,
    dad: Dad,
) -> Result<()> {
    let ifname = &link.name;
    let ips = own_ips(result, ifname);
    let has_v6 = ips.iter().any(|ip| ip.address.is_ipv6());
    if has_v6 {
        let dad_value = if dad == Dad::Wait { "1" } else { "0" };
        netns
            .run(|| -> std::io::Result<()> {
                sysctl::write(&format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0")?;
                // enhanced_dad exists only on newer kernels; its absence is harmless.
                let _ = sysctl::write(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), dad_value);
                sysctl::write(&format!("net/ipv6/conf/{ifname}/accept_dad"), dad_value)
            })
            .or_internal(|| format!("entering netns {}", netns.path().display()))?
            .or_internal(|| format!("configuring IPv6 sysctls of {ifname}"))?;
    }
    for ip in &ips {
        ctr.add_addr(link.index, ip.address).map_err(|e| {
            Error::internal(format!(
                "failed to add IP addr {} to {ifname:?}: {e}",
                ip.address
            ))
        })?;
    }
    ctr.set_up(link.index)
        .or_internal(|| format!("failed to set {ifname:?} up"))?;
    if has_v6 && dad == Dad::Wait {
        rcni_netlink::wait_dad(ctr, link.index, DAD_TIMEOUT)
            .or_internal(|| format!("waiting for IPv6 DAD on {ifname}"))?;
    }
    Ok(())
}

/// The second half of [`configure_interface`]: the result's routes on `link` (a route
/// without `gw` goes via its family's gateway; one already there is fine).
///
/// # Errors
/// The first route the kernel refuses, naming it and the interface.
pub fn add_routes(ctr: &mut dyn Netlink, link: &Link, result: &Success) -> Result<()> {
    let ifname = &link.name;
    for route in &result.routes {
        let gw = route
            .gw
            .or_else(|| family_gateway(result, route.dst.is_ipv4()));
        let spec = RouteSpec {
            dst: route.dst,
            gw,
            oif: Some(link.index),
            src: None,
            table: route.table,
            scope: route.scope,
            priority: route.priority,
            mtu: None,
            advmss: None,
        };
        match ctr.add_route(&spec) {
            Err(e) if !e.is_exists() => {
                let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
                return Err(Error::internal(format!(
                    "failed to add route '{}{via}' on {ifname}: {e}",
                    route.dst
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// CHECK of a configured interface (Go `ip.ValidateExpectedInterfaceIPs` and
/// `ip.ValidateExpectedRoute`, with their wording): every address of `result` that belongs
/// to `link` is on it with a route to its subnet, and every route of `result` is in the
/// main table (with its `gw`, except for default routes, as in Go).
///
/// # Errors
/// The first address or route missing, or a failed dump.
pub fn check_interface(ctr: &mut dyn Netlink, link: &Link, result: &Success) -> Result<()> {
    let ifname = &link.name;
    let addrs = ctr
        .addrs(Some(link.index), None)
        .or_internal(|| "Cannot obtain List of IP Addresses".into())?;
    let mut routes = Vec::new();
    for family in [rcni_netlink::Family::V4, rcni_netlink::Family::V6] {
        routes.extend(
            ctr.routes(Some(family), None)
                .or_internal(|| format!("listing the routes of {ifname}"))?,
        );
    }
    for ip in own_ips(result, ifname) {
        if !addrs.iter().any(|a| a.address == ip.address) {
            return Err(Error::internal(format!(
                "Failed to match addr {} on interface {ifname}",
                ip.address
            )));
        }
        if !routes.iter().any(|r| same_dst(&r.dst, &ip.address)) {
            let gw = ip.gateway.map(|g| g.to_string()).unwrap_or_default();
            return Err(Error::internal(format!(
                "Failed to find Gateway {gw} for interface {ifname}"
            )));
        }
    }
    for route in &result.routes {
        let found = routes.iter().any(|r| {
            same_dst(&r.dst, &route.dst)
                && (route.dst.prefix() == 0 || route.gw.is_none() || r.gw == route.gw)
        });
        if !found {
            let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(Error::internal(format!(
                "Expected Route {}{via} not found in routing table",
                route.dst
            )));
        }
    }
    Ok(())
}

/// Same destination network (host bits ignored).
fn same_dst(a: &IpNetwork, b: &IpNetwork) -> bool {
    a.prefix() == b.prefix() && a.network() == b.network()
}

/// Runs a verb without output (DEL, CHECK, STATUS, GC) on the config's IPAM, if it has
/// one: how interface plugins forward STATUS and GC (spec §2) and release on DEL.
///
/// # Errors
/// IPAM's own error, unchanged.
pub fn forward(kind: Option<&str>, command: Command, req: &Request) -> Result<()> {
    match kind {
        Some(kind) => Delegate::find(kind, req)?.call(command, req),
        None => Ok(()),
    }
}

/// DEL of a plugin whose attachment is one interface in the container plus an IPAM
/// allocation (macvlan, ipvlan, vlan, dummy, tap): [`del_container_interface_and`] with
/// nothing else to tear down.
///
/// # Errors
/// As [`del_container_interface_and`].
pub fn del_container_interface(kind: Option<&str>, req: &Request) -> Result<()> {
    del_container_interface_and(kind, req, |_| Ok(()))
}

/// DEL of an attachment that is one interface in the container plus an IPAM allocation
/// and host-side state (bridge and ptp: masquerade rules, the MAC spoof check). Every
/// step runs even when an earlier one failed:
/// 1. IPAM's DEL (when `kind` is set) is started. The dhcp IPAM runs to completion here:
///    its daemon releases the lease through the interface. Any other IPAM (host-local,
///    static, a third-party store) keeps running while the next steps go on;
/// 2. the interface CNI_IFNAME is looked up and its deletion started on a thread of its
///    own: the kernel answers a link deletion only after an RCU grace period;
/// 3. meanwhile `teardown` runs with the interface's addresses (empty when it is gone),
///    so its firewall transactions wait out their grace periods at the same time;
/// 4. IPAM and the deletion are waited for, and then the kernel's destroy work of the
///    rule deletions (`rcni_firewall::nf::linger::settle`).
///
/// Already gone is success: no netns, a netns that no longer exists, no such interface.
///
/// # Errors
/// Every failure, IPAM's first and unchanged, then the interface's deletion (Go's
/// wording, "failed to delete \"eth0\": ...") and `teardown`'s.
pub fn del_container_interface_and(
    kind: Option<&str>,
    req: &Request,
    teardown: impl FnOnce(Vec<IpNetwork>) -> Result<()>,
) -> Result<()> {
    // dhcp's daemon releases the lease through the interface, so it finishes first; any
    // other IPAM is only started here.
    let ipam = match kind {
        Some(DHCP) => forward(kind, Command::Del, req).map(|()| None),
        Some(kind) => Delegate::find(kind, req)
            .and_then(|d| d.start(Command::Del, req))
            .map(Some),
        None => Ok(None),
    };
    let mut others = rcni_skel::Errors::default();
    let failed =
        |e: rcni_netlink::Error| Error::internal(format!("failed to delete {:?}: {e}", req.ifname));
    let (addresses, deletion) = match req.open_netns_if_exists() {
        Ok(Some(ns)) => match rcni_netlink::start_del_link_in(&ns, &req.ifname) {
            Ok(Some((addresses, deletion))) => (addresses, Some(deletion)),
            Ok(None) => (Vec::new(), None),
            Err(e) => {
                others.note::<()>(Err(failed(e)));
                (Vec::new(), None)
            }
        },
        Ok(None) => (Vec::new(), None),
        Err(e) => {
            others.note::<()>(Err(e));
            (Vec::new(), None)
        }
    };
    others.note(teardown(addresses));
    if let Some(deletion) = deletion {
        others.note(deletion.wait().map_err(failed));
    }
    // The link deletion outlasts a grace period, so what is left of the destroy work of
    // `teardown`'s rule deletions is short; it is waited for here rather than by the next
    // tool to release a netfilter socket.
    rcni_firewall::nf::linger::settle();
    // IPAM's error first, unchanged.
    let mut errors = rcni_skel::Errors::default();
    errors.note(ipam.and_then(|running| running.map_or(Ok(()), |r| r.wait().map(|_| ()))));
    errors.note(others.into_result());
    errors.into_result()
}

/// The IPAM whose DEL needs the interface still there (its daemon releases the lease
/// through it).
const DHCP: &str = "dhcp";

/// The gateway of the first address of a family: where routes without `gw` go.
#[must_use]
pub fn family_gateway(result: &Success, v4: bool) -> Option<IpAddr> {
    result
        .ips
        .iter()
        .find(|ip| ip.address.is_ipv4() == v4)
        .and_then(|ip| ip.gateway)
}

/// Turns IP forwarding on in the calling thread's namespace for the families asked for,
/// reading first (writing `ip_forward` resets per-interface IPv4 settings).
///
/// # Errors
/// The sysctl cannot be written.
pub fn enable_forwarding(v4: bool, v6: bool) -> Result<()> {
    if v4 {
        sysctl::write("net/ipv4/ip_forward", "1")
            .or_internal(|| "enabling IPv4 forwarding".into())?;
    }
    if v6 {
        sysctl::write("net/ipv6/conf/all/forwarding", "1")
            .or_internal(|| "enabling IPv6 forwarding".into())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink};
    use rcni_types::{Interface, IpConfig, Route};

    use super::*;

    fn result() -> Success {
        Success {
            cni_version: "1.0.0".into(),
            interfaces: vec![
                Interface {
                    name: "br0".into(),
                    ..Interface::default()
                },
                Interface {
                    name: "eth0".into(),
                    sandbox: "/ns".into(),
                    ..Interface::default()
                },
            ],
            ips: vec![
                IpConfig::new(
                    "10.1.0.5/24".parse().expect("cidr"),
                    "10.1.0.1".parse().ok(),
                    Some(1),
                ),
                IpConfig::new("10.2.0.5/24".parse().expect("cidr"), None, Some(0)),
            ],
            routes: vec![Route::new("0.0.0.0/0".parse().expect("cidr"), None)],
            ..Success::default()
        }
    }

    #[test]
    fn only_this_interfaces_addresses_and_routes_via_the_family_gateway() {
        let mut nl = FakeNetlink::new();
        nl.seed_link("eth0", Some("veth"));
        let link = nl.get_link(&"eth0".into()).expect("seeded");
        let ns = NetNs::current().expect("own netns");
        configure_interface(&ns, &mut nl, &link, &result(), Dad::Off).expect("configure");
        let calls = nl.take_calls();
        let added: Vec<String> = calls
            .iter()
            .filter_map(|c| match c {
                Call::AddAddr(_, addr) => Some(addr.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(added, ["10.1.0.5/24"], "the address on br0 is not ours");
        let route = calls.iter().find_map(|c| match c {
            Call::AddRoute(route) => Some(route.clone()),
            _ => None,
        });
        let route = route.expect("a route was added");
        assert_eq!(route.gw, "10.1.0.1".parse().ok(), "via the IPv4 gateway");
        assert_eq!(route.oif, Some(link.index));
    }
}
