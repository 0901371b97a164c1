//! [`RealNetlink`]: the facade's operations as rtnetlink messages on a [`RouteSocket`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use ipnetwork::IpNetwork;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::InfoVrf;
use netlink_packet_route::link::{
    AfSpecBridge, BridgeFlag, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort,
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoPortData, InfoPortKind, InfoVeth, InfoVlan,
    IpVlanMode, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
    State,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::socket::RouteSocket;
use crate::types::RuleSpec;
use crate::types::VrfSpec;
use crate::types::{
    Addr, BridgePortSpec, BridgeSpec, BridgeVlan, DummySpec, Family, IpvlanMode, IpvlanSpec, Link,
    LinkData, LinkRef, MacvlanMode, MacvlanSpec, RouteSpec, VethSpec, VlanSpec,
};
use crate::{Netlink, scope};

/// `RT_TABLE_MAIN`.
const MAIN_TABLE: u32 = 254;
/// `RT_TABLE_UNSPEC`: every table, in a dump.
const ALL_TABLES: u32 = 0;
/// How often `ensure_bridge` creates again when a concurrent DEL removed the bridge between
/// our EEXIST and our lookup.
const BRIDGE_ATTEMPTS: usize = 3;

/// A blocking NETLINK_ROUTE socket bound in the namespace of the thread that created it;
/// it keeps working there whatever namespace the thread enters later.
#[derive(Debug)]
pub struct RealNetlink {
    sock: RouteSocket,
}

impl RealNetlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn new() -> Result<RealNetlink> {
        let sock = RouteSocket::new().map_err(|e| Error::from_io("opening netlink socket", &e))?;
        Ok(RealNetlink { sock })
    }

    /// How many dumps on this socket were started again because a concurrent change
    /// interrupted them (`NLM_F_DUMP_INTR`).
    #[must_use]
    pub fn dump_restarts(&self) -> u64 {
        self.sock.restarts()
    }

    /// A link's name for error messages, or "link N" when it cannot be read.
    fn describe(&mut self, index: u32) -> String {
        match self.get_link(&LinkRef::Index(index)) {
            Ok(link) => link.name,
            Err(_) => format!("link {index}"),
        }
    }

    /// Sends a change to link `index`; on failure, names the link in `what`.
    fn change_link(
        &mut self,
        msg: RouteNetlinkMessage,
        index: u32,
        what: impl FnOnce(&str) -> String,
    ) -> Result<()> {
        match self.sock.request(msg, 0) {
            Ok(_) => Ok(()),
            Err(e) => {
                let name = self.describe(index);
                Err(e.context(what(&name)))
            }
        }
    }

    fn set_flag(&mut self, index: u32, flag: LinkFlags, on: bool, what: &str) -> Result<()> {
        let mut msg = link_header(index);
        msg.header.change_mask = flag;
        if on {
            msg.header.flags = flag;
        }
        self.change_link(RouteNetlinkMessage::SetLink(msg), index, |n| {
            format!("setting {n} {what}")
        })
    }

    fn set_attr(&mut self, index: u32, attr: LinkAttribute, what: String) -> Result<()> {
        let mut msg = link_header(index);
        msg.attributes.push(attr);
        self.change_link(RouteNetlinkMessage::SetLink(msg), index, |n| {
            format!("setting {what} of {n}")
        })
    }

    fn create(&mut self, msg: LinkMessage, what: impl FnOnce() -> String) -> Result<()> {
        self.sock
            .request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| e.context(what()))
    }

    fn addr_request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        index: u32,
        what: String,
    ) -> Result<()> {
        match self.sock.request(msg, flags) {
            Ok(_) => Ok(()),
            Err(e) => {
                let name = self.describe(index);
                Err(e.context(format!("{what} {name}")))
            }
        }
    }

    fn route_request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
        route: &RouteSpec,
    ) -> Result<()> {
        self.sock
            .request(msg, flags)
            .map(drop)
            .map_err(|e| e.context(format!("{what} {route}")))
    }

    fn dump_routes(&mut self, family: Family, table: u32) -> Result<Vec<RouteSpec>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = address_family(family);
        msg.header.kind = RouteType::Unicast;
        if table != ALL_TABLES {
            msg.attributes.push(RouteAttribute::Table(table));
        }
        let replies = match self.sock.dump(&RouteNetlinkMessage::GetRoute(msg)) {
            Ok(replies) => replies,
            // A filtered dump of a table that was never created fails with ENOENT ("FIB
            // table does not exist") instead of returning nothing.
            Err(e) if table != ALL_TABLES && e.errno() == Some(libc::ENOENT) => Vec::new(),
            Err(e) => return Err(e.context(format!("listing routes in table {table}"))),
        };
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_view(&r),
                _ => None,
            })
            .filter(|r| table == ALL_TABLES || r.table == Some(table))
            .collect())
    }
}

impl Netlink for RealNetlink {
    fn get_link(&mut self, link: &LinkRef) -> Result<Link> {
        let mut msg = LinkMessage::default();
        match link {
            LinkRef::Index(i) => msg.header.index = *i,
            LinkRef::Name(n) => msg.attributes.push(LinkAttribute::IfName(n.clone())),
        }
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self
            .sock
            .request(RouteNetlinkMessage::GetLink(msg), 0)
            .map_err(|e| {
                if e.errno() == Some(libc::ENODEV) {
                    Error::link_not_found()
                } else {
                    e.context(format!("looking up {link}"))
                }
            })?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_view(&l)),
                _ => None,
            })
            .ok_or_else(|| {
                Error::new(
                    format!("looking up {link}"),
                    None,
                    "no link in the kernel's reply",
                )
            })
    }

    fn links(&mut self) -> Result<Vec<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self
            .sock
            .dump(&RouteNetlinkMessage::GetLink(msg))
            .map_err(|e| e.context("listing links"))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_view(&l)),
                _ => None,
            })
            .collect())
    }

    fn link_data(&mut self, index: u32) -> Result<LinkData> {
        let mut msg = link_header(index);
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let replies = self
            .sock
            .request(RouteNetlinkMessage::GetLink(msg), 0)
            .map_err(|e| {
                if e.errno() == Some(libc::ENODEV) {
                    Error::link_not_found()
                } else {
                    e.context(format!("looking up link {index}"))
                }
            })?;
        Ok(replies
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_data_of(l)),
                _ => None,
            })
            .unwrap_or(LinkData::Other))
    }

    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        let msg = veth_message(spec);
        self.create(msg, || {
            format!("creating veth {} (peer {})", spec.name, spec.peer_name)
        })
    }

    fn ensure_bridge(&mut self, spec: &BridgeSpec) -> Result<Link> {
        let name = &spec.name;
        for attempt in 1..=BRIDGE_ATTEMPTS {
            // Usually the bridge is there: a lookup does not take the kernel's rtnl lock,
            // which every pod's ADD otherwise queues on (a create that fails with EEXIST
            // would take it).
            let found = match self.get_link(&LinkRef::Name(name.clone())) {
                Ok(link) => Some(link),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e.context(format!("could not lookup {name:?}"))),
            };
            let mut link = match found {
                Some(link) => link,
                None => {
                    match self.create(bridge_message(spec), || format!("could not add {name:?}")) {
                        Ok(()) => {}
                        // Another ADD created it first (or it is not a bridge: checked below).
                        Err(e) if e.is_exists() => {}
                        Err(e) => return Err(e),
                    }
                    match self.get_link(&LinkRef::Name(name.clone())) {
                        Ok(link) => link,
                        // A concurrent DEL removed it between our EEXIST and the lookup.
                        Err(e) if e.is_not_found() && attempt < BRIDGE_ATTEMPTS => continue,
                        Err(e) => return Err(e.context(format!("could not lookup {name:?}"))),
                    }
                }
            };
            if !link.is_bridge() {
                return Err(Error::new(
                    "",
                    None,
                    format!("{name:?} already exists but is not a bridge"),
                ));
            }
            if spec.promisc && !link.promisc {
                self.set_promisc(link.index, true)?;
                link.promisc = true;
            }
            if !link.up {
                self.set_up(link.index)?;
                link.up = true;
            }
            return Ok(link);
        }
        Err(Error::new(
            "",
            Some(libc::ENODEV),
            format!("bridge {name:?} keeps disappearing"),
        ))
    }

    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<()> {
        let mode = match spec.mode {
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        let mut msg = new_link(&spec.name, spec.mtu, spec.mac, spec.ns);
        msg.attributes.push(LinkAttribute::Link(spec.parent));
        let mut data = vec![InfoMacVlan::Mode(mode)];
        if let Some(len) = spec.bc_queue_len {
            data.push(InfoMacVlan::BcQueueLen(len));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(data)),
        ]));
        self.create(msg, || {
            format!("creating macvlan {} on link {}", spec.name, spec.parent)
        })
    }

    fn create_ipvlan(&mut self, spec: &IpvlanSpec<'_>) -> Result<()> {
        let mode = match spec.mode {
            IpvlanMode::L2 => IpVlanMode::L2,
            IpvlanMode::L3 => IpVlanMode::L3,
            IpvlanMode::L3s => IpVlanMode::L3S,
        };
        let mut msg = new_link(&spec.name, spec.mtu, None, spec.ns);
        msg.attributes.push(LinkAttribute::Link(spec.parent));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::IpVlan),
            LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)])),
        ]));
        self.create(msg, || {
            format!("creating ipvlan {} on link {}", spec.name, spec.parent)
        })
    }

    fn create_vlan(&mut self, spec: &VlanSpec<'_>) -> Result<()> {
        let mut msg = new_link(&spec.name, spec.mtu, None, spec.ns);
        msg.attributes.push(LinkAttribute::Link(spec.parent));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vlan),
            LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(spec.vlan_id)])),
        ]));
        self.create(msg, || {
            format!(
                "creating vlan {} (id {}) on link {}",
                spec.name, spec.vlan_id, spec.parent
            )
        })
    }

    fn create_dummy(&mut self, spec: &DummySpec<'_>) -> Result<()> {
        let mut msg = new_link(&spec.name, spec.mtu, spec.mac, spec.ns);
        msg.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Dummy,
            )]));
        self.create(msg, || format!("creating dummy {}", spec.name))
    }

    fn create_vrf(&mut self, spec: &VrfSpec<'_>) -> Result<()> {
        let msg = vrf_message(spec);
        self.create(msg, || {
            format!("creating VRF {} (table {})", spec.name, spec.table)
        })
    }

    fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, true, "up")
    }

    fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, LinkFlags::Up, false, "down")
    }

    fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = link_header(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        match self.sock.request(RouteNetlinkMessage::SetLink(msg), 0) {
            Ok(_) => Ok(()),
            Err(e) => {
                let (port, bridge) = (self.describe(index), self.describe(master));
                Err(e.context(format!("connecting {port} to {bridge}")))
            }
        }
    }

    fn set_nomaster(&mut self, index: u32) -> Result<()> {
        self.set_attr(index, LinkAttribute::Controller(0), "no master".into())
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_attr(index, LinkAttribute::Mtu(mtu), format!("MTU {mtu}"))
    }

    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::Address(mac.to_vec()),
            format!("MAC {}", crate::format_mac(mac)),
        )
    }

    fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Promisc,
            on,
            if on { "promiscuous" } else { "not promiscuous" },
        )
    }

    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            LinkFlags::Allmulti,
            on,
            if on {
                "all-multicast"
            } else {
                "not all-multicast"
            },
        )
    }

    fn set_txqlen(&mut self, index: u32, txqlen: u32) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::TxQueueLen(txqlen),
            format!("transmit queue length {txqlen}"),
        )
    }

    fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::IfName(name.to_string()),
            format!("name {name}"),
        )
    }

    fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.set_attr(
            index,
            LinkAttribute::IfAlias(alias.to_string()),
            format!("alias {alias:?}"),
        )
    }

    fn set_ns_fd(&mut self, index: u32, ns: BorrowedFd<'_>) -> Result<()> {
        let mut msg = link_header(index);
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
        self.change_link(RouteNetlinkMessage::SetLink(msg), index, |n| {
            format!("moving {n} to another netns")
        })
    }

    fn set_bridge_port(&mut self, index: u32, spec: &BridgePortSpec) -> Result<()> {
        if spec.hairpin.is_none() && spec.isolated.is_none() {
            return Ok(());
        }
        let msg = bridge_port_message(index, spec);
        // Port options travel as IFLA_INFO_SLAVE_DATA, which only RTM_NEWLINK applies
        // (RTM_SETLINK accepts and ignores them), as `ip link set ... type bridge_slave`.
        self.change_link(RouteNetlinkMessage::NewLink(msg), index, |n| {
            format!("setting bridge port options of {n}")
        })
    }

    fn bridge_vlan_add(&mut self, index: u32, vid: u16, pvid: bool, untagged: bool) -> Result<()> {
        let msg = bridge_vlan_message(index, vid, pvid, untagged);
        self.change_link(RouteNetlinkMessage::SetLink(msg), index, |n| {
            format!("adding VLAN {vid} to bridge port {n}")
        })
    }

    fn bridge_vlan_del(&mut self, index: u32, vid: u16) -> Result<()> {
        // With AF_BRIDGE, RTM_DELLINK removes VLAN entries (rtnl_bridge_dellink), not the
        // link: bridge_vlan_message sets that family.
        let msg = bridge_vlan_message(index, vid, false, false);
        self.change_link(RouteNetlinkMessage::DelLink(msg), index, |n| {
            format!("removing VLAN {vid} from bridge port {n}")
        })
    }

    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>> {
        // A filtered AF_BRIDGE dump must leave the header's index at 0 under strict
        // checking ("Invalid values in header for bridge link dump request"): every bridge
        // port (and bridge) is listed and the port is picked here.
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let replies = self
            .sock
            .dump(&RouteNetlinkMessage::GetLink(msg))
            .map_err(|e| e.context(format!("listing bridge VLANs of link {index}")))?;
        let mut vlans: Vec<BridgeVlan> = replies
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if l.header.index == index => Some(l),
                _ => None,
            })
            .flat_map(bridge_vlans_of)
            .collect();
        vlans.sort_unstable();
        vlans.dedup();
        Ok(vlans)
    }

    fn del_link(&mut self, index: u32) -> Result<()> {
        let msg = link_header(index);
        match self.sock.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(()),
            // Naming a link that is gone would only say "link N".
            Err(e) if e.is_not_found() => Err(e.context(format!("deleting link {index}"))),
            Err(e) => {
                let name = self.describe(index);
                Err(e.context(format!("deleting {name}")))
            }
        }
    }

    fn add_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = RouteNetlinkMessage::NewAddress(address_message(index, addr));
        self.addr_request(
            msg,
            NLM_F_CREATE | NLM_F_EXCL,
            index,
            format!("adding {addr} to"),
        )
    }

    fn replace_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = RouteNetlinkMessage::NewAddress(address_message(index, addr));
        self.addr_request(
            msg,
            NLM_F_CREATE | NLM_F_REPLACE,
            index,
            format!("replacing {addr} on"),
        )
    }

    fn del_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = RouteNetlinkMessage::DelAddress(address_message(index, addr));
        self.addr_request(msg, 0, index, format!("removing {addr} from"))
    }

    fn addrs(&mut self, index: Option<u32>, family: Option<Family>) -> Result<Vec<Addr>> {
        let mut msg = AddressMessage::default();
        msg.header.family = family.map_or(AddressFamily::Unspec, address_family);
        // With strict checking the kernel filters by index itself.
        msg.header.index = index.unwrap_or(0);
        let replies = self
            .sock
            .dump(&RouteNetlinkMessage::GetAddress(msg))
            .map_err(|e| e.context("listing addresses"))?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => addr_view(&a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| f.matches(&a.address)))
            .collect())
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<()> {
        let msg = RouteNetlinkMessage::NewRoute(route_message(route, false));
        self.route_request(msg, NLM_F_CREATE | NLM_F_EXCL, "adding route", route)
    }

    fn replace_route(&mut self, route: &RouteSpec) -> Result<()> {
        let msg = RouteNetlinkMessage::NewRoute(route_message(route, false));
        self.route_request(msg, NLM_F_CREATE | NLM_F_REPLACE, "replacing route", route)
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<()> {
        let msg = RouteNetlinkMessage::DelRoute(route_message(route, true));
        self.route_request(msg, 0, "deleting route", route)
    }

    fn routes(&mut self, family: Option<Family>, table: Option<u32>) -> Result<Vec<RouteSpec>> {
        let table = table.unwrap_or(MAIN_TABLE);
        // Two dumps rather than one AF_UNSPEC dump, which also walks multicast and MPLS
        // tables with their own filter rules.
        let mut routes = Vec::new();
        for f in family.map_or(vec![Family::V4, Family::V6], |f| vec![f]) {
            routes.extend(self.dump_routes(f, table)?);
        }
        Ok(routes)
    }

    fn add_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        let msg = RouteNetlinkMessage::NewRule(rule_message(rule, false));
        self.sock
            .request(msg, NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| e.context(format!("adding rule {rule}")))
    }

    fn del_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        let msg = RouteNetlinkMessage::DelRule(rule_message(rule, true));
        self.sock
            .request(msg, 0)
            .map(drop)
            .map_err(|e| e.context(format!("deleting rule {rule}")))
    }

    fn rules(&mut self, family: Option<Family>) -> Result<Vec<RuleSpec>> {
        let mut rules = Vec::new();
        for f in family.map_or(vec![Family::V4, Family::V6], |f| vec![f]) {
            let mut msg = RuleMessage::default();
            msg.header.family = address_family(f);
            let replies = self
                .sock
                .dump(&RouteNetlinkMessage::GetRule(msg))
                .map_err(|e| e.context("listing rules"))?;
            rules.extend(replies.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRule(r) => Some(rule_view(&r, f)),
                _ => None,
            }));
        }
        Ok(rules)
    }
}

/// A rule message: `from <src> lookup <table>` with action "to table" on add; a delete
/// leaves the action unspecified so it matches whatever the rule does.
fn rule_message(rule: &RuleSpec, delete: bool) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = address_family(rule.family);
    if !delete {
        msg.header.action = RuleAction::ToTable;
    }
    msg.header.table = u8::try_from(rule.table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    if let Some(src) = rule.src {
        msg.header.src_len = src.prefix();
        msg.attributes.push(RuleAttribute::Source(src.network()));
    }
    msg.attributes.push(RuleAttribute::Table(rule.table));
    if let Some(p) = rule.priority {
        msg.attributes.push(RuleAttribute::Priority(p));
    }
    msg
}

fn rule_view(msg: &RuleMessage, family: Family) -> RuleSpec {
    let mut rule = RuleSpec {
        family,
        src: None,
        table: u32::from(msg.header.table),
        priority: None,
    };
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Source(ip) => {
                rule.src = IpNetwork::new(*ip, msg.header.src_len).ok();
            }
            RuleAttribute::Table(t) => rule.table = *t,
            RuleAttribute::Priority(p) => rule.priority = Some(*p),
            _ => {}
        }
    }
    rule
}

fn address_family(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

/// An RTM_SETLINK-style message addressing link `index`.
fn link_header(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// Common attributes of a link to create.
fn new_link(
    name: &str,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    ns: Option<BorrowedFd<'_>>,
) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mtu) = mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(ns) = ns {
        msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    }
    msg
}

/// The host end in this namespace; the peer, with its own name, MTU, MAC and namespace,
/// nested in `IFLA_INFO_DATA` so the kernel creates it directly where it belongs.
pub(crate) fn veth_message(spec: &VethSpec<'_>) -> LinkMessage {
    let peer = new_link(&spec.peer_name, spec.mtu, spec.peer_mac, spec.peer_ns);
    let mut msg = new_link(&spec.name, spec.mtu, None, None);
    if let Some(master) = spec.master {
        msg.attributes.push(LinkAttribute::Controller(master));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    msg
}

/// A VRF with its routing table (`IFLA_VRF_TABLE` in `IFLA_INFO_DATA`).
pub(crate) fn vrf_message(spec: &VrfSpec<'_>) -> LinkMessage {
    let mut msg = new_link(&spec.name, None, None, spec.ns);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vrf),
        LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(spec.table)])),
    ]));
    msg
}

/// A bridge created up (and promiscuous if asked) in one request.
pub(crate) fn bridge_message(spec: &BridgeSpec) -> LinkMessage {
    let mut msg = new_link(&spec.name, spec.mtu, None, None);
    let mut flags = LinkFlags::Up;
    if spec.promisc {
        flags |= LinkFlags::Promisc;
    }
    msg.header.flags = flags;
    msg.header.change_mask = flags;
    let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
    // Only sent when wanted: kernels without CONFIG_BRIDGE_VLAN_FILTERING refuse the
    // attribute even when it says "off".
    if spec.vlan_filtering {
        info.push(LinkInfo::Data(InfoData::Bridge(vec![
            InfoBridge::VlanFiltering(true),
        ])));
    }
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    msg
}

pub(crate) fn bridge_port_message(index: u32, spec: &BridgePortSpec) -> LinkMessage {
    let mut opts = Vec::new();
    if let Some(on) = spec.hairpin {
        opts.push(InfoBridgePort::HairpinMode(on));
    }
    if let Some(on) = spec.isolated {
        opts.push(InfoBridgePort::Isolated(on));
    }
    let mut msg = link_header(index);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(opts)),
    ]));
    msg
}

/// An AF_BRIDGE link message for one VLAN entry of port `index`, addressed to its bridge
/// (`BRIDGE_FLAGS_MASTER`, as Go netlink's `BridgeVlanAdd(.., master=true)` sends it).
pub(crate) fn bridge_vlan_message(index: u32, vid: u16, pvid: bool, untagged: bool) -> LinkMessage {
    let mut flags = BridgeVlanInfoFlags::empty();
    if pvid {
        flags |= BridgeVlanInfoFlags::Pvid;
    }
    if untagged {
        flags |= BridgeVlanInfoFlags::Untagged;
    }
    let mut msg = link_header(index);
    msg.header.interface_family = AddressFamily::Bridge;
    msg.attributes.push(LinkAttribute::AfSpecBridge(vec![
        AfSpecBridge::Flags(BridgeFlag::Controller),
        AfSpecBridge::VlanInfo(BridgeVlanInfo { flags, vid }),
    ]));
    msg
}

/// The VLAN entries of one AF_BRIDGE link message (one per VLAN: the dump asks for
/// `RTEXT_FILTER_BRVLAN`, not the compressed ranges).
fn bridge_vlans_of(msg: &LinkMessage) -> Vec<BridgeVlan> {
    msg.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::AfSpecBridge(spec) => Some(spec),
            _ => None,
        })
        .flatten()
        .filter_map(|s| match s {
            AfSpecBridge::VlanInfo(info) => Some(BridgeVlan {
                vid: info.vid,
                pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
            }),
            _ => None,
        })
        .collect()
}

/// IPv4 addresses carry local, peer (the same) and broadcast addresses, as Go netlink and
/// iproute2 send them; IPv6 only the address.
pub(crate) fn address_message(index: u32, addr: IpNetwork) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = addr.prefix();
    msg.header.scope = AddressScope::Universe;
    match addr {
        IpNetwork::V4(v4) => {
            msg.header.family = AddressFamily::Inet;
            msg.attributes
                .push(AddressAttribute::Local(IpAddr::V4(v4.ip())));
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V4(v4.ip())));
            if v4.prefix() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        IpNetwork::V6(v6) => {
            msg.header.family = AddressFamily::Inet6;
            msg.attributes
                .push(AddressAttribute::Address(IpAddr::V6(v6.ip())));
        }
    }
    msg
}

/// A route message. Adds default to the main table, universe scope, unicast, protocol
/// "boot" (what Go netlink sends). Deletes leave scope, type and protocol as wildcards.
pub(crate) fn route_message(route: &RouteSpec, delete: bool) -> RouteMessage {
    let mut msg = RouteMessage::default();
    let table = route.table.unwrap_or(MAIN_TABLE);
    msg.header.address_family = if route.dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.destination_prefix_length = route.dst.prefix();
    msg.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    if delete {
        msg.header.scope = RouteScope::from(route.scope.unwrap_or(RouteScope::NoWhere.into()));
    } else {
        msg.header.scope = RouteScope::from(route.scope.unwrap_or(scope::UNIVERSE));
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.kind = RouteType::Unicast;
    }
    // The kernel refuses IPv4 destinations with host bits set.
    let dst = route.dst.network();
    if route.dst.prefix() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    }
    if let Some(gw) = route.gw {
        msg.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    }
    if let Some(src) = route.src {
        msg.attributes
            .push(RouteAttribute::PrefSource(RouteAddress::from(src)));
    }
    if let Some(oif) = route.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(priority) = route.priority {
        msg.attributes.push(RouteAttribute::Priority(priority));
    }
    msg.attributes.push(RouteAttribute::Table(table));
    let mut metrics = Vec::new();
    if let Some(mtu) = route.mtu {
        metrics.push(RouteMetric::Mtu(mtu));
    }
    if let Some(advmss) = route.advmss {
        metrics.push(RouteMetric::Advmss(advmss));
    }
    if !metrics.is_empty() {
        msg.attributes.push(RouteAttribute::Metrics(metrics));
    }
    msg
}

pub(crate) fn link_view(msg: &LinkMessage) -> Link {
    let flags = msg.header.flags;
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        master: None,
        up: flags.contains(LinkFlags::Up),
        oper_up: false,
        promisc: flags.contains(LinkFlags::Promisc),
        allmulti: flags.contains(LinkFlags::Allmulti),
        txqlen: 0,
        alias: None,
        link_netnsid: None,
        peer_index: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::TxQueueLen(q) => link.txqlen = *q,
            LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
            LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
            LinkAttribute::Link(i) => link.peer_index = Some(*i),
            // `lo` and devices without operstate support report UNKNOWN while working.
            LinkAttribute::OperState(state) => {
                link.oper_up = *state == State::Up
                    || (*state == State::Unknown && flags.contains(LinkFlags::Running));
            }
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// The ipvlan or macvlan mode or VLAN id in a link's `IFLA_INFO_DATA`.
pub(crate) fn link_data_of(msg: &LinkMessage) -> LinkData {
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => Some(infos),
        _ => None,
    });
    for info in infos.into_iter().flatten() {
        let LinkInfo::Data(data) = info else { continue };
        let found = match data {
            InfoData::IpVlan(attrs) => attrs
                .iter()
                .find_map(|a| match a {
                    InfoIpVlan::Mode(IpVlanMode::L2) => Some(IpvlanMode::L2),
                    InfoIpVlan::Mode(IpVlanMode::L3) => Some(IpvlanMode::L3),
                    InfoIpVlan::Mode(IpVlanMode::L3S) => Some(IpvlanMode::L3s),
                    _ => None,
                })
                .map(|mode| LinkData::Ipvlan { mode }),
            InfoData::MacVlan(attrs) => attrs
                .iter()
                .find_map(|a| match a {
                    InfoMacVlan::Mode(MacVlanMode::Private) => Some(MacvlanMode::Private),
                    InfoMacVlan::Mode(MacVlanMode::Vepa) => Some(MacvlanMode::Vepa),
                    InfoMacVlan::Mode(MacVlanMode::Bridge) => Some(MacvlanMode::Bridge),
                    InfoMacVlan::Mode(MacVlanMode::Passthrough) => Some(MacvlanMode::Passthru),
                    _ => None,
                })
                .map(|mode| LinkData::Macvlan { mode }),
            InfoData::Vlan(attrs) => attrs.iter().find_map(|a| match a {
                InfoVlan::Id(id) => Some(LinkData::Vlan { id: *id }),
                _ => None,
            }),
            InfoData::Vrf(attrs) => attrs.iter().find_map(|a| match a {
                InfoVrf::TableId(table) => Some(LinkData::Vrf { table: *table }),
                _ => None,
            }),
            _ => None,
        };
        if let Some(found) = found {
            return found;
        }
    }
    LinkData::Other
}

pub(crate) fn addr_view(msg: &AddressMessage) -> Option<Addr> {
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            // The 32-bit attribute supersedes the 8 bits of the header.
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface's address (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 sends IFA_ADDRESS only.
    let ip = local.or(address)?;
    Some(Addr {
        index: msg.header.index,
        address: IpNetwork::new(ip, msg.header.prefix_len).ok()?,
        tentative: flags.contains(AddressFlags::Tentative),
        dad_failed: flags.contains(AddressFlags::Dadfailed),
        scope: u8::from(msg.header.scope),
        permanent: flags.contains(AddressFlags::Permanent),
    })
}

pub(crate) fn route_view(msg: &RouteMessage) -> Option<RouteSpec> {
    let h = &msg.header;
    if h.kind != RouteType::Unicast {
        return None;
    }
    let unspecified = match h.address_family {
        AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut dst = unspecified;
    let mut route = RouteSpec::new(IpNetwork::new(unspecified, 0).ok()?);
    route.table = Some(u32::from(h.table));
    route.scope = Some(u8::from(h.scope));
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = ip_of(a)?,
            RouteAttribute::Gateway(a) => route.gw = ip_of(a),
            RouteAttribute::PrefSource(a) => route.src = ip_of(a),
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            RouteAttribute::Priority(p) => route.priority = Some(*p),
            RouteAttribute::Table(t) => route.table = Some(*t),
            RouteAttribute::Metrics(metrics) => {
                for m in metrics {
                    match m {
                        RouteMetric::Mtu(v) => route.mtu = Some(*v),
                        RouteMetric::Advmss(v) => route.advmss = Some(*v),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    route.dst = IpNetwork::new(dst, h.destination_prefix_length).ok()?;
    Some(route)
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test network")
    }

    #[test]
    fn veth_peer_carries_its_own_name_mtu_mac() {
        let spec = VethSpec {
            name: "veth0123abcd".into(),
            peer_name: "eth0".into(),
            peer_ns: None,
            mtu: Some(1400),
            peer_mac: Some([2, 0, 0, 0, 0, 1]),
            master: None,
        };
        let msg = veth_message(&spec);
        assert!(
            msg.attributes
                .contains(&LinkAttribute::IfName("veth0123abcd".into()))
        );
        assert!(msg.attributes.contains(&LinkAttribute::Mtu(1400)));
        let peer = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                _ => None,
            }),
            _ => None,
        });
        let peer = peer.expect("peer message");
        assert!(
            peer.attributes
                .contains(&LinkAttribute::IfName("eth0".into()))
        );
        assert!(peer.attributes.contains(&LinkAttribute::Mtu(1400)));
        assert!(
            peer.attributes
                .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]))
        );
        assert!(
            !msg.attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::Address(_)))
        );
    }

    #[test]
    fn bridge_is_created_up_without_vlan_attribute_unless_asked() {
        let spec = BridgeSpec {
            name: "cni0".into(),
            mtu: None,
            vlan_filtering: false,
            promisc: true,
        };
        let msg = bridge_message(&spec);
        assert_eq!(msg.header.flags, LinkFlags::Up | LinkFlags::Promisc);
        assert_eq!(msg.header.change_mask, LinkFlags::Up | LinkFlags::Promisc);
        assert!(
            msg.attributes
                .contains(&LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Bridge
                )]))
        );
    }

    #[test]
    fn ipv4_address_has_local_and_broadcast() {
        let msg = address_message(3, net("10.1.2.3/24"));
        assert_eq!(msg.header.prefix_len, 24);
        assert_eq!(msg.header.family, AddressFamily::Inet);
        assert!(
            msg.attributes
                .contains(&AddressAttribute::Local("10.1.2.3".parse().expect("ip")))
        );
        assert!(msg.attributes.contains(&AddressAttribute::Broadcast(
            "10.1.2.255".parse().expect("ip")
        )));
        let p2p = address_message(3, net("10.1.2.3/31"));
        assert!(
            !p2p.attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Broadcast(_)))
        );
    }

    #[test]
    fn route_destination_is_masked_and_default_has_none() {
        let mut spec = RouteSpec::new(net("10.1.2.3/24"));
        spec.gw = Some("10.1.2.1".parse().expect("ip"));
        let msg = route_message(&spec, false);
        assert!(
            msg.attributes
                .contains(&RouteAttribute::Destination(RouteAddress::Inet(
                    "10.1.2.0".parse().expect("ip")
                )))
        );
        assert_eq!(msg.header.protocol, RouteProtocol::Boot);
        assert_eq!(msg.header.scope, RouteScope::Universe);
        let default = route_message(&RouteSpec::new(net("0.0.0.0/0")), false);
        assert!(
            !default
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(_)))
        );
    }

    #[test]
    fn route_delete_leaves_wildcards() {
        let msg = route_message(&RouteSpec::new(net("fd00::/64")), true);
        assert_eq!(msg.header.scope, RouteScope::NoWhere);
        assert_eq!(msg.header.kind, RouteType::Unspec);
        assert_eq!(msg.header.protocol, RouteProtocol::Unspec);
        assert_eq!(msg.header.address_family, AddressFamily::Inet6);
    }

    #[test]
    fn route_in_big_table_uses_the_attribute() {
        let mut spec = RouteSpec::new(net("10.0.0.0/8"));
        spec.table = Some(1000);
        let msg = route_message(&spec, false);
        assert_eq!(msg.header.table, RouteHeader::RT_TABLE_UNSPEC);
        assert!(msg.attributes.contains(&RouteAttribute::Table(1000)));
    }

    #[test]
    fn route_view_reads_back_what_route_message_writes() {
        let mut spec = RouteSpec::new(net("10.9.0.0/16"));
        spec.gw = Some("10.1.0.1".parse().expect("ip"));
        spec.oif = Some(4);
        spec.priority = Some(100);
        spec.mtu = Some(1300);
        spec.advmss = Some(1200);
        spec.scope = Some(scope::UNIVERSE);
        spec.table = Some(MAIN_TABLE);
        let back = route_view(&route_message(&spec, false)).expect("unicast route");
        assert_eq!(back, spec);
    }

    #[test]
    fn addr_view_prefers_local_and_reads_flags() {
        let mut msg = address_message(7, net("fd00::5/64"));
        msg.attributes.push(AddressAttribute::Flags(
            AddressFlags::Tentative | AddressFlags::Permanent,
        ));
        let a = addr_view(&msg).expect("address");
        assert_eq!(a.address, net("fd00::5/64"));
        assert!(a.tentative && a.permanent && !a.dad_failed);
        assert_eq!(a.index, 7);
    }

    #[test]
    fn link_data_reads_ipvlan_macvlan_mode_and_vlan_id() {
        let with = |data: InfoData| {
            let mut msg = LinkMessage::default();
            msg.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Dummy),
                LinkInfo::Data(data),
            ]));
            link_data_of(&msg)
        };
        assert_eq!(
            with(InfoData::IpVlan(vec![InfoIpVlan::Mode(IpVlanMode::L3S)])),
            LinkData::Ipvlan {
                mode: IpvlanMode::L3s
            }
        );
        assert_eq!(
            with(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Vepa
            )])),
            LinkData::Macvlan {
                mode: MacvlanMode::Vepa
            }
        );
        assert_eq!(
            with(InfoData::Vlan(vec![InfoVlan::Id(42)])),
            LinkData::Vlan { id: 42 }
        );
        assert_eq!(link_data_of(&LinkMessage::default()), LinkData::Other);
    }

    #[test]
    fn vrf_message_carries_its_table_and_link_data_reads_it_back() {
        let msg = vrf_message(&VrfSpec {
            name: "vrf0".into(),
            table: 1001,
            ns: None,
        });
        assert!(
            msg.attributes
                .contains(&LinkAttribute::IfName("vrf0".into()))
        );
        assert!(msg.attributes.contains(&LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vrf),
            LinkInfo::Data(InfoData::Vrf(vec![InfoVrf::TableId(1001)])),
        ])));
        assert_eq!(link_data_of(&msg), LinkData::Vrf { table: 1001 });
    }

    #[test]
    fn link_view_reads_kind_master_and_peer() {
        let mut msg = link_header(9);
        msg.header.flags = LinkFlags::Up | LinkFlags::Running;
        msg.attributes = vec![
            LinkAttribute::IfName("veth1".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Address(vec![1, 2, 3, 4, 5, 6]),
            LinkAttribute::Controller(3),
            LinkAttribute::Link(2),
            LinkAttribute::LinkNetNsId(0),
            LinkAttribute::OperState(State::Up),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]),
        ];
        let l = link_view(&msg);
        assert_eq!(l.name, "veth1");
        assert_eq!(l.kind.as_deref(), Some("veth"));
        assert_eq!(l.mac, Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(
            (l.master, l.peer_index, l.link_netnsid),
            (Some(3), Some(2), Some(0))
        );
        assert!(l.up && l.oper_up && !l.promisc);
    }

    #[test]
    fn bridge_vlan_message_is_af_bridge_with_master_flag_and_vlan_info() {
        let msg = bridge_vlan_message(7, 100, true, true);
        // AF_BRIDGE is what makes RTM_DELLINK remove a VLAN instead of the link.
        assert_eq!(msg.header.interface_family, AddressFamily::Bridge);
        assert_eq!(msg.header.index, 7);
        assert_eq!(
            msg.attributes,
            vec![LinkAttribute::AfSpecBridge(vec![
                AfSpecBridge::Flags(BridgeFlag::Controller),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
                    vid: 100
                }),
            ])]
        );
        let tagged = bridge_vlan_message(7, 200, false, false);
        assert!(
            tagged
                .attributes
                .contains(&LinkAttribute::AfSpecBridge(vec![
                    AfSpecBridge::Flags(BridgeFlag::Controller),
                    AfSpecBridge::VlanInfo(BridgeVlanInfo {
                        flags: BridgeVlanInfoFlags::empty(),
                        vid: 200
                    }),
                ]))
        );
    }

    #[test]
    fn bridge_vlan_message_bytes_match_the_kernel_layout() {
        use netlink_packet_core::Emitable;
        let msg = bridge_vlan_message(3, 0x0102, true, false);
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        // ifinfomsg: family AF_BRIDGE (7), pad, type 0, index 3, flags 0, change 0.
        assert_eq!(buf[0], 7);
        assert_eq!(&buf[4..8], &3u32.to_ne_bytes());
        assert!(buf[8..16].iter().all(|b| *b == 0));
        // IFLA_AF_SPEC (26) holding IFLA_BRIDGE_FLAGS (0) = MASTER (1) and
        // IFLA_BRIDGE_VLAN_INFO (2) = {flags PVID (2), vid 0x0102}.
        let attr = &buf[16..];
        assert_eq!(u16::from_ne_bytes([attr[2], attr[3]]) & 0x3fff, 26);
        let inner = &attr[4..];
        assert_eq!(&inner[..8], &[6, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&inner[8..16], &[8, 0, 2, 0, 2, 0, 2, 1]);
    }

    #[test]
    fn bridge_vlans_of_reads_every_vlan_info() {
        let mut msg = link_header(4);
        msg.header.interface_family = AddressFamily::Bridge;
        msg.attributes = vec![
            LinkAttribute::IfName("veth1".into()),
            LinkAttribute::AfSpecBridge(vec![
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
                    vid: 1,
                }),
                AfSpecBridge::VlanInfo(BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::empty(),
                    vid: 300,
                }),
            ]),
        ];
        assert_eq!(
            bridge_vlans_of(&msg),
            vec![
                BridgeVlan {
                    vid: 1,
                    pvid: true,
                    untagged: true
                },
                BridgeVlan {
                    vid: 300,
                    pvid: false,
                    untagged: false
                },
            ]
        );
    }

    #[test]
    fn bridge_port_message_sets_only_given_flags() {
        let msg = bridge_port_message(
            5,
            &BridgePortSpec {
                hairpin: Some(true),
                isolated: None,
            },
        );
        assert_eq!(
            msg.attributes,
            vec![LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                    true
                )])),
            ])]
        );
    }
}
