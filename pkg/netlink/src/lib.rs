//! Synchronous netlink facade (DESIGN §4, STYLE "One netlink facade"), with its messages
//! built and read by hand (the `codec` module): a generic rtnetlink codec was ~0.4 MiB of every
//! plugin binary for the few attributes used here.
//!
//! Plugins talk to the kernel through [`Netlink`], an object-safe trait with typed
//! operations. [`RealNetlink`] is one blocking NETLINK_ROUTE socket bound in the namespace
//! it was created in; [`open_pair`] gives the host and container handles a command needs, so
//! no `setns` is needed for netlink work afterwards. [`FakeNetlink`] keeps a small in-memory
//! model and records every call, so plugin logic is tested without root.

#![allow(unsafe_code)]

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use rcni_netns::NetNs;

mod codec;
mod error;
mod fake;
mod mac;
mod real;
mod rename;
mod socket;
mod tuntap;
mod types;
mod veth;

pub use error::{Error, Result};
pub use fake::{Call, FakeNetlink, Op};
pub use mac::{format_mac, parse_mac, random_veth_name};
pub use real::RealNetlink;
pub use rename::{create_renamed, create_renamed_on_master};
pub use tuntap::{TapSpec, create_tap};
pub use types::VrfSpec;
pub use types::{
    Addr, BridgePortSpec, BridgeSpec, BridgeVlan, DummySpec, Family, Ipv4Conf, IpvlanMode,
    IpvlanSpec, Link, LinkData, LinkRef, MacvlanMode, MacvlanSpec, RouteSpec, RuleSpec, VethSpec,
    VlanSpec, scope,
};
pub use veth::{
    Deletion, PodVeth, VETH_NAME_ATTEMPTS, VethPair, create_veth_pair, del_link_by_name_addr,
    del_link_in, start_del_link_in,
};

/// The kernel operations plugins use, on one namespace. Object-safe: `&mut dyn Netlink`.
///
/// Creation is exclusive (`NLM_F_EXCL`): an existing object is an error with
/// [`Error::is_exists`], which callers may tolerate. Operations on a missing object fail
/// with [`Error::is_not_found`].
pub trait Netlink {
    /// Looks a link up by index or name; a missing one is "Link not found" (`ENODEV`).
    fn get_link(&mut self, link: &LinkRef) -> Result<Link>;
    /// Every link in the namespace.
    fn links(&mut self) -> Result<Vec<Link>>;
    /// The kind-specific settings of link `index` (ipvlan or macvlan mode, VLAN id).
    fn link_data(&mut self, index: u32) -> Result<LinkData>;
    /// Creates a veth pair, the peer directly in `spec.peer_ns` when given.
    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()>;
    /// Creates the bridge, or accepts an existing bridge of that name (concurrent ADDs race
    /// here); fails with "\"<name>\" already exists but is not a bridge" otherwise. The
    /// bridge is up (and promiscuous if asked) on return.
    fn ensure_bridge(&mut self, spec: &BridgeSpec) -> Result<Link>;
    /// Creates a macvlan on `spec.parent`, moved into `spec.ns` when given.
    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<()>;
    /// Creates an ipvlan on `spec.parent`, moved into `spec.ns` when given.
    fn create_ipvlan(&mut self, spec: &IpvlanSpec<'_>) -> Result<()>;
    /// Creates an 802.1Q VLAN on `spec.parent`, moved into `spec.ns` when given.
    fn create_vlan(&mut self, spec: &VlanSpec<'_>) -> Result<()>;
    /// Creates a dummy link, moved into `spec.ns` when given.
    fn create_dummy(&mut self, spec: &DummySpec<'_>) -> Result<()>;
    /// Creates a VRF device using routing table `spec.table`, moved into `spec.ns` when
    /// given. A kernel without VRF support refuses it as an unknown link kind.
    fn create_vrf(&mut self, spec: &VrfSpec<'_>) -> Result<()>;
    /// Sets the link administratively up.
    fn set_up(&mut self, index: u32) -> Result<()>;
    /// Sets the link administratively down.
    fn set_down(&mut self, index: u32) -> Result<()>;
    /// Attaches the link to a bridge (or other master).
    fn set_master(&mut self, index: u32, master: u32) -> Result<()>;
    /// Detaches the link from its master.
    fn set_nomaster(&mut self, index: u32) -> Result<()>;
    /// Sets the MTU.
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()>;
    /// Sets the MAC address.
    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()>;
    /// Turns promiscuous mode on or off.
    fn set_promisc(&mut self, index: u32, on: bool) -> Result<()>;
    /// Turns all-multicast mode on or off (`ip link set .. allmulticast on|off`).
    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()>;
    /// Sets the transmit queue length (`ip link set .. txqueuelen N`).
    fn set_txqlen(&mut self, index: u32, txqlen: u32) -> Result<()>;
    /// Sets one `net.ipv4.conf.<if>` value of the link (see [`Ipv4Conf`]).
    fn set_ipv4_conf(&mut self, index: u32, conf: Ipv4Conf, value: u32) -> Result<()>;
    /// Renames the link (it must be down).
    fn set_name(&mut self, index: u32, name: &str) -> Result<()>;
    /// Sets the interface alias.
    fn set_alias(&mut self, index: u32, alias: &str) -> Result<()>;
    /// Moves the link into the namespace `ns`.
    fn set_ns_fd(&mut self, index: u32, ns: BorrowedFd<'_>) -> Result<()>;
    /// Sets bridge port flags of a link attached to a bridge.
    fn set_bridge_port(&mut self, index: u32, spec: &BridgePortSpec) -> Result<()>;
    /// Adds VLAN `vid` to the bridge port `index` (`bridge vlan add dev <port> vid <vid>
    /// [pvid] [untagged] master`). An entry the port already has takes the new flags (`pvid`
    /// false takes the PVID away from it); a new PVID takes the flag from the old one. The
    /// port must be attached to a bridge. A kernel without bridge VLAN filtering
    /// (CONFIG_BRIDGE_VLAN_FILTERING) refuses with `EOPNOTSUPP`.
    fn bridge_vlan_add(&mut self, index: u32, vid: u16, pvid: bool, untagged: bool) -> Result<()>;
    /// Removes VLAN `vid` from the bridge port `index`. The kernel answers success whether
    /// or not the port had it (also without VLAN filtering support: br_vlan_info ignores
    /// the delete's result); only a link that is no bridge port fails (`EOPNOTSUPP`).
    fn bridge_vlan_del(&mut self, index: u32, vid: u16) -> Result<()>;
    /// The VLANs of bridge port (or bridge) `index`, by vid; empty when it has none or the
    /// kernel has no bridge VLAN filtering.
    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>>;
    /// Deletes the link (a veth takes its peer with it).
    fn del_link(&mut self, index: u32) -> Result<()>;
    /// Adds an address (exclusive: an existing one is [`Error::is_exists`]).
    fn add_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()>;
    /// Adds an address or updates an existing one.
    fn replace_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()>;
    /// Removes an address (a missing one is [`Error::is_not_found`]).
    fn del_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()>;
    /// Addresses, optionally of one link and/or one family.
    fn addrs(&mut self, index: Option<u32>, family: Option<Family>) -> Result<Vec<Addr>>;
    /// Adds a route (exclusive: an existing one is [`Error::is_exists`]).
    fn add_route(&mut self, route: &RouteSpec) -> Result<()>;
    /// Adds a route or replaces the one with the same destination, table and metric.
    fn replace_route(&mut self, route: &RouteSpec) -> Result<()>;
    /// Deletes the route matching the set fields (none: [`Error::is_not_found`], `ESRCH`).
    fn del_route(&mut self, route: &RouteSpec) -> Result<()>;
    /// Unicast routes of one family (both when `None`) in `table`: the main table when
    /// `None`, every table with `Some(0)`.
    fn routes(&mut self, family: Option<Family>, table: Option<u32>) -> Result<Vec<RouteSpec>>;
    /// Adds a policy routing rule (exclusive: an identical one is [`Error::is_exists`]).
    fn add_rule(&mut self, rule: &RuleSpec) -> Result<()>;
    /// Deletes the rule matching the set fields (none: [`Error::is_not_found`]).
    fn del_rule(&mut self, rule: &RuleSpec) -> Result<()>;
    /// Policy routing rules of one family (both when `None`).
    fn rules(&mut self, family: Option<Family>) -> Result<Vec<RuleSpec>>;
}

/// Opens the two handles a command needs: one in the calling thread's namespace (the
/// host) and one created inside `container`, both usable without further `setns`.
pub fn open_pair(container: &NetNs) -> Result<(RealNetlink, RealNetlink)> {
    let host = RealNetlink::new()?;
    let ctr = container
        .run(RealNetlink::new)
        .map_err(|e| Error::from_io(format!("entering netns {}", container.path().display()), &e))?
        .map_err(|e| e.context(format!("in netns {}", container.path().display())))?;
    Ok((host, ctr))
}

/// Waits until no IPv6 address of link `index` is tentative (duplicate address detection
/// done), as the reference's `SettleAddresses` does before adding routes. Fails when DAD
/// failed for an address or after `timeout`.
///
/// DAD only runs on a link that is up with carrier: an address on a link without carrier
/// stays tentative until the timeout.
pub fn wait_dad(nl: &mut dyn Netlink, index: u32, timeout: Duration) -> Result<()> {
    const FIRST_PAUSE: Duration = Duration::from_millis(2);
    const MAX_PAUSE: Duration = Duration::from_millis(20);
    let start = Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        let addrs = nl
            .addrs(Some(index), Some(Family::V6))
            .map_err(|e| e.context(format!("waiting for IPv6 DAD on link {index}")))?;
        if let Some(failed) = addrs.iter().find(|a| a.dad_failed) {
            return Err(Error::new(
                "",
                Some(libc::EADDRINUSE),
                format!(
                    "link {index} has address {} in DADFAILED state",
                    failed.address
                ),
            ));
        }
        let Some(pending) = addrs.iter().find(|a| a.tentative) else {
            return Ok(());
        };
        if start.elapsed() >= timeout {
            return Err(Error::new(
                "",
                Some(libc::ETIMEDOUT),
                format!(
                    "link {index} still has tentative IPv6 address {} after {timeout:?}",
                    pending.address
                ),
            ));
        }
        std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
