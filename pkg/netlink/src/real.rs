//! [`RealNetlink`]: the facade's operations as rtnetlink messages (built by `codec`) on a
//! [`RouteSocket`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use ipnetwork::IpNetwork;

use crate::codec::{
    self as nl, IfAddr, IfInfo, Msg, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RtMsg, attrs, find,
};
use crate::error::{Error, Result};
use crate::socket::{Reply, RouteSocket};
use crate::types::VrfSpec;
use crate::types::{
    Addr, BridgePortSpec, BridgeSpec, BridgeVlan, DummySpec, Family, IpvlanMode, IpvlanSpec, Link,
    LinkData, LinkRef, MacvlanMode, MacvlanSpec, RouteSpec, VethSpec, VlanSpec,
};
use crate::types::{Ipv4Conf, RuleSpec};
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

    /// One RTM_GETLINK `msg`, without statistics; a missing link is
    /// [`Error::link_not_found`], any other failure names `what`.
    fn request_link(&mut self, mut msg: Msg, what: impl FnOnce() -> String) -> Result<Vec<Reply>> {
        msg.u32(nl::IFLA_EXT_MASK, nl::RTEXT_FILTER_SKIP_STATS);
        self.sock.request(&msg, 0).map_err(|e| {
            if e.errno() == Some(libc::ENODEV) {
                Error::link_not_found()
            } else {
                e.context(what())
            }
        })
    }

    /// Sends a change to link `index`; on failure, names the link in `what`.
    fn change_link(
        &mut self,
        msg: &Msg,
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

    fn set_flag(&mut self, index: u32, flag: u32, on: bool, what: &str) -> Result<()> {
        let header = IfInfo {
            flags: if on { flag } else { 0 },
            change: flag,
            ..IfInfo::index(index)
        };
        let msg = Msg::link(nl::RTM_SETLINK, header);
        self.change_link(&msg, index, |n| format!("setting {n} {what}"))
    }

    /// RTM_SETLINK of `index` with one attribute that `add` writes.
    fn set_attr(&mut self, index: u32, add: impl FnOnce(&mut Msg), what: String) -> Result<()> {
        let mut msg = Msg::link(nl::RTM_SETLINK, IfInfo::index(index));
        add(&mut msg);
        self.change_link(&msg, index, |n| format!("setting {what} of {n}"))
    }

    fn create(&mut self, msg: &Msg, what: impl FnOnce() -> String) -> Result<()> {
        self.sock
            .request(msg, NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| e.context(what()))
    }

    fn addr_request(&mut self, msg: &Msg, flags: u16, index: u32, what: String) -> Result<()> {
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
        msg: &Msg,
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
        let mut msg = Msg::route(
            nl::RTM_GETROUTE,
            RtMsg {
                family: address_family(family),
                kind: nl::RTN_UNICAST,
                ..RtMsg::default()
            },
        );
        if table != ALL_TABLES {
            msg.u32(nl::RTA_TABLE, table);
        }
        let replies = match self.sock.dump(&msg) {
            Ok(replies) => replies,
            // A filtered dump of a table that was never created fails with ENOENT ("FIB
            // table does not exist") instead of returning nothing.
            Err(e) if table != ALL_TABLES && e.errno() == Some(libc::ENOENT) => Vec::new(),
            Err(e) => return Err(e.context(format!("listing routes in table {table}"))),
        };
        Ok(replies
            .iter()
            .filter(|m| m.kind == nl::RTM_NEWROUTE)
            .filter_map(|m| route_view(&m.payload))
            .filter(|r| table == ALL_TABLES || r.table == Some(table))
            .collect())
    }
}

impl Netlink for RealNetlink {
    fn get_link(&mut self, link: &LinkRef) -> Result<Link> {
        let msg = match link {
            LinkRef::Index(i) => Msg::link(nl::RTM_GETLINK, IfInfo::index(*i)),
            LinkRef::Name(n) => {
                let mut msg = Msg::link(nl::RTM_GETLINK, IfInfo::default());
                msg.str(nl::IFLA_IFNAME, n);
                msg
            }
        };
        let replies = self.request_link(msg, || format!("looking up {link}"))?;
        links_of(&replies).find_map(link_view).ok_or_else(|| {
            Error::new(
                format!("looking up {link}"),
                None,
                "no link in the kernel's reply",
            )
        })
    }

    fn links(&mut self) -> Result<Vec<Link>> {
        let mut msg = Msg::link(nl::RTM_GETLINK, IfInfo::default());
        msg.u32(nl::IFLA_EXT_MASK, nl::RTEXT_FILTER_SKIP_STATS);
        let replies = self
            .sock
            .dump(&msg)
            .map_err(|e| e.context("listing links"))?;
        Ok(links_of(&replies).filter_map(link_view).collect())
    }

    fn link_data(&mut self, index: u32) -> Result<LinkData> {
        let msg = Msg::link(nl::RTM_GETLINK, IfInfo::index(index));
        let replies = self.request_link(msg, || format!("looking up link {index}"))?;
        Ok(links_of(&replies)
            .next()
            .map_or(LinkData::Other, link_data_of))
    }

    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        let msg = veth_message(spec);
        self.create(&msg, || {
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
                    match self.create(&bridge_message(spec), || format!("could not add {name:?}")) {
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
        let msg = macvlan_message(spec);
        self.create(&msg, || {
            format!("creating macvlan {} on link {}", spec.name, spec.parent)
        })
    }

    fn create_ipvlan(&mut self, spec: &IpvlanSpec<'_>) -> Result<()> {
        let mode = match spec.mode {
            IpvlanMode::L2 => nl::IPVLAN_MODE_L2,
            IpvlanMode::L3 => nl::IPVLAN_MODE_L3,
            IpvlanMode::L3s => nl::IPVLAN_MODE_L3S,
        };
        let mut msg = new_link(&spec.name, spec.mtu, None, spec.ns);
        msg.u32(nl::IFLA_LINK, spec.parent);
        link_info(&mut msg, "ipvlan", |m| {
            m.u16(nl::IFLA_IPVLAN_MODE, mode);
        });
        self.create(&msg, || {
            format!("creating ipvlan {} on link {}", spec.name, spec.parent)
        })
    }

    fn create_vlan(&mut self, spec: &VlanSpec<'_>) -> Result<()> {
        let mut msg = new_link(&spec.name, spec.mtu, None, spec.ns);
        msg.u32(nl::IFLA_LINK, spec.parent);
        link_info(&mut msg, "vlan", |m| {
            m.u16(nl::IFLA_VLAN_ID, spec.vlan_id);
        });
        self.create(&msg, || {
            format!(
                "creating vlan {} (id {}) on link {}",
                spec.name, spec.vlan_id, spec.parent
            )
        })
    }

    fn create_dummy(&mut self, spec: &DummySpec<'_>) -> Result<()> {
        let mut msg = new_link(&spec.name, spec.mtu, spec.mac, spec.ns);
        let at = msg.begin(nl::IFLA_LINKINFO);
        msg.str(nl::IFLA_INFO_KIND, "dummy");
        msg.end(at);
        self.create(&msg, || format!("creating dummy {}", spec.name))
    }

    fn create_vrf(&mut self, spec: &VrfSpec<'_>) -> Result<()> {
        let msg = vrf_message(spec);
        self.create(&msg, || {
            format!("creating VRF {} (table {})", spec.name, spec.table)
        })
    }

    fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, nl::IFF_UP, true, "up")
    }

    fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_flag(index, nl::IFF_UP, false, "down")
    }

    fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = Msg::link(nl::RTM_SETLINK, IfInfo::index(index));
        msg.u32(nl::IFLA_MASTER, master);
        match self.sock.request(&msg, 0) {
            Ok(_) => Ok(()),
            Err(e) => {
                let (port, bridge) = (self.describe(index), self.describe(master));
                Err(e.context(format!("connecting {port} to {bridge}")))
            }
        }
    }

    fn set_nomaster(&mut self, index: u32) -> Result<()> {
        self.set_attr(
            index,
            |m| {
                m.u32(nl::IFLA_MASTER, 0);
            },
            "no master".into(),
        )
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_attr(
            index,
            |m| {
                m.u32(nl::IFLA_MTU, mtu);
            },
            format!("MTU {mtu}"),
        )
    }

    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_attr(
            index,
            |m| {
                m.attr(nl::IFLA_ADDRESS, &mac);
            },
            format!("MAC {}", crate::format_mac(mac)),
        )
    }

    fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            nl::IFF_PROMISC,
            on,
            if on { "promiscuous" } else { "not promiscuous" },
        )
    }

    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()> {
        self.set_flag(
            index,
            nl::IFF_ALLMULTI,
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
            |m| {
                m.u32(nl::IFLA_TXQLEN, txqlen);
            },
            format!("transmit queue length {txqlen}"),
        )
    }

    fn set_ipv4_conf(&mut self, index: u32, conf: Ipv4Conf, value: u32) -> Result<()> {
        self.set_attr(
            index,
            |m| {
                let spec = m.begin(nl::IFLA_AF_SPEC);
                let inet = m.begin(u16::from(nl::AF_INET));
                let values = m.begin(nl::IFLA_INET_CONF);
                m.u32(conf.id(), value);
                m.end(values);
                m.end(inet);
                m.end(spec);
            },
            format!("net.ipv4.conf {} = {value}", conf.name()),
        )
    }

    fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        self.set_attr(
            index,
            |m| {
                m.str(nl::IFLA_IFNAME, name);
            },
            format!("name {name}"),
        )
    }

    fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.set_attr(
            index,
            |m| {
                m.str(nl::IFLA_IFALIAS, alias);
            },
            format!("alias {alias:?}"),
        )
    }

    fn set_ns_fd(&mut self, index: u32, ns: BorrowedFd<'_>) -> Result<()> {
        let mut msg = Msg::link(nl::RTM_SETLINK, IfInfo::index(index));
        msg.u32(nl::IFLA_NET_NS_FD, fd_value(ns));
        self.change_link(&msg, index, |n| format!("moving {n} to another netns"))
    }

    fn set_bridge_port(&mut self, index: u32, spec: &BridgePortSpec) -> Result<()> {
        if spec.hairpin.is_none() && spec.isolated.is_none() {
            return Ok(());
        }
        let msg = bridge_port_message(index, spec);
        // Port options travel as IFLA_INFO_SLAVE_DATA, which only RTM_NEWLINK applies
        // (RTM_SETLINK accepts and ignores them), as `ip link set ... type bridge_slave`.
        self.change_link(&msg, index, |n| {
            format!("setting bridge port options of {n}")
        })
    }

    fn bridge_vlan_add(&mut self, index: u32, vid: u16, pvid: bool, untagged: bool) -> Result<()> {
        let msg = bridge_vlan_message(nl::RTM_SETLINK, index, vid, pvid, untagged);
        self.change_link(&msg, index, |n| {
            format!("adding VLAN {vid} to bridge port {n}")
        })
    }

    fn bridge_vlan_del(&mut self, index: u32, vid: u16) -> Result<()> {
        // With AF_BRIDGE, RTM_DELLINK removes VLAN entries (rtnl_bridge_dellink), not the
        // link: bridge_vlan_message sets that family.
        let msg = bridge_vlan_message(nl::RTM_DELLINK, index, vid, false, false);
        self.change_link(&msg, index, |n| {
            format!("removing VLAN {vid} from bridge port {n}")
        })
    }

    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>> {
        // A filtered AF_BRIDGE dump must leave the header's index at 0 under strict
        // checking ("Invalid values in header for bridge link dump request"): every bridge
        // port (and bridge) is listed and the port is picked here.
        let mut msg = Msg::link(
            nl::RTM_GETLINK,
            IfInfo {
                family: nl::AF_BRIDGE,
                ..IfInfo::default()
            },
        );
        msg.u32(nl::IFLA_EXT_MASK, nl::RTEXT_FILTER_BRVLAN);
        let replies = self
            .sock
            .dump(&msg)
            .map_err(|e| e.context(format!("listing bridge VLANs of link {index}")))?;
        let mut vlans: Vec<BridgeVlan> = links_of(&replies)
            .filter(|payload| IfInfo::parse(payload).is_some_and(|(h, _)| h.index == index))
            .flat_map(bridge_vlans_of)
            .collect();
        vlans.sort_unstable();
        vlans.dedup();
        Ok(vlans)
    }

    fn del_link(&mut self, index: u32) -> Result<()> {
        let msg = Msg::link(nl::RTM_DELLINK, IfInfo::index(index));
        match self.sock.request(&msg, 0) {
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
        let msg = address_message(nl::RTM_NEWADDR, index, addr);
        self.addr_request(
            &msg,
            NLM_F_CREATE | NLM_F_EXCL,
            index,
            format!("adding {addr} to"),
        )
    }

    fn replace_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = address_message(nl::RTM_NEWADDR, index, addr);
        self.addr_request(
            &msg,
            NLM_F_CREATE | NLM_F_REPLACE,
            index,
            format!("replacing {addr} on"),
        )
    }

    fn del_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        let msg = address_message(nl::RTM_DELADDR, index, addr);
        self.addr_request(&msg, 0, index, format!("removing {addr} from"))
    }

    fn addrs(&mut self, index: Option<u32>, family: Option<Family>) -> Result<Vec<Addr>> {
        // With strict checking the kernel filters by index itself.
        let msg = Msg::addr(
            nl::RTM_GETADDR,
            IfAddr {
                family: family.map_or(nl::AF_UNSPEC, address_family),
                index: index.unwrap_or(0),
                ..IfAddr::default()
            },
        );
        let replies = self
            .sock
            .dump(&msg)
            .map_err(|e| e.context("listing addresses"))?;
        Ok(replies
            .iter()
            .filter(|m| m.kind == nl::RTM_NEWADDR)
            .filter_map(|m| addr_view(&m.payload))
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| f.matches(&a.address)))
            .collect())
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<()> {
        let msg = route_message(route, false);
        self.route_request(&msg, NLM_F_CREATE | NLM_F_EXCL, "adding route", route)
    }

    fn replace_route(&mut self, route: &RouteSpec) -> Result<()> {
        let msg = route_message(route, false);
        self.route_request(&msg, NLM_F_CREATE | NLM_F_REPLACE, "replacing route", route)
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<()> {
        let msg = route_message(route, true);
        self.route_request(&msg, 0, "deleting route", route)
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
        let msg = rule_message(rule, false);
        self.sock
            .request(&msg, NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
            .map_err(|e| e.context(format!("adding rule {rule}")))
    }

    fn del_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        let msg = rule_message(rule, true);
        self.sock
            .request(&msg, 0)
            .map(drop)
            .map_err(|e| e.context(format!("deleting rule {rule}")))
    }

    fn rules(&mut self, family: Option<Family>) -> Result<Vec<RuleSpec>> {
        let mut rules = Vec::new();
        for f in family.map_or(vec![Family::V4, Family::V6], |f| vec![f]) {
            let msg = Msg::route(
                nl::RTM_GETRULE,
                RtMsg {
                    family: address_family(f),
                    ..RtMsg::default()
                },
            );
            let replies = self
                .sock
                .dump(&msg)
                .map_err(|e| e.context("listing rules"))?;
            rules.extend(
                replies
                    .iter()
                    .filter(|m| m.kind == nl::RTM_NEWRULE)
                    .filter_map(|m| rule_view(&m.payload, f)),
            );
        }
        Ok(rules)
    }
}

/// A rule message: `from <src> lookup <table>` with action "to table" on add; a delete
/// leaves the action unspecified so it matches whatever the rule does.
pub(crate) fn rule_message(rule: &RuleSpec, delete: bool) -> Msg {
    let kind = if delete {
        nl::RTM_DELRULE
    } else {
        nl::RTM_NEWRULE
    };
    let header = RtMsg {
        family: address_family(rule.family),
        src_len: rule.src.map_or(0, |s| s.prefix()),
        table: u8::try_from(rule.table).unwrap_or(nl::RT_TABLE_UNSPEC),
        kind: if delete { 0 } else { nl::FR_ACT_TO_TBL },
        ..RtMsg::default()
    };
    let mut msg = Msg::route(kind, header);
    if let Some(src) = rule.src {
        msg.ip(nl::FRA_SRC, src.network());
    }
    msg.u32(nl::FRA_TABLE, rule.table);
    if let Some(p) = rule.priority {
        msg.u32(nl::FRA_PRIORITY, p);
    }
    msg
}

fn rule_view(payload: &[u8], family: Family) -> Option<RuleSpec> {
    let (h, rest) = RtMsg::parse(payload)?;
    let mut rule = RuleSpec {
        family,
        src: None,
        table: u32::from(h.table),
        priority: None,
    };
    for (kind, v) in attrs(rest) {
        match kind {
            nl::FRA_SRC => {
                rule.src = nl::ip_of(v).and_then(|ip| IpNetwork::new(ip, h.src_len).ok())
            }
            nl::FRA_TABLE => rule.table = nl::u32_of(v).unwrap_or(rule.table),
            nl::FRA_PRIORITY => rule.priority = nl::u32_of(v),
            _ => {}
        }
    }
    Some(rule)
}

fn address_family(family: Family) -> u8 {
    match family {
        Family::V4 => nl::AF_INET,
        Family::V6 => nl::AF_INET6,
    }
}

/// The payloads of the RTM_NEWLINK messages among `replies`.
fn links_of(replies: &[Reply]) -> impl Iterator<Item = &[u8]> {
    replies
        .iter()
        .filter(|m| m.kind == nl::RTM_NEWLINK)
        .map(|m| m.payload.as_slice())
}

/// The value the kernel reads from `IFLA_NET_NS_FD`: the descriptor number.
fn fd_value(ns: BorrowedFd<'_>) -> u32 {
    u32::try_from(ns.as_raw_fd()).unwrap_or(u32::MAX)
}

/// The attributes every new link may carry, after its `ifinfomsg`.
fn link_attrs(
    msg: &mut Msg,
    name: &str,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
    ns: Option<BorrowedFd<'_>>,
) {
    msg.str(nl::IFLA_IFNAME, name);
    if let Some(mtu) = mtu {
        msg.u32(nl::IFLA_MTU, mtu);
    }
    if let Some(mac) = mac {
        msg.attr(nl::IFLA_ADDRESS, &mac);
    }
    if let Some(ns) = ns {
        msg.u32(nl::IFLA_NET_NS_FD, fd_value(ns));
    }
}

/// An RTM_NEWLINK for a link to create.
fn new_link(name: &str, mtu: Option<u32>, mac: Option<[u8; 6]>, ns: Option<BorrowedFd<'_>>) -> Msg {
    let mut msg = Msg::link(nl::RTM_NEWLINK, IfInfo::default());
    link_attrs(&mut msg, name, mtu, mac, ns);
    msg
}

/// `IFLA_LINKINFO` with the kind and the `IFLA_INFO_DATA` that `data` writes.
fn link_info(msg: &mut Msg, kind: &str, data: impl FnOnce(&mut Msg)) {
    let info = msg.begin(nl::IFLA_LINKINFO);
    msg.str(nl::IFLA_INFO_KIND, kind);
    let at = msg.begin(nl::IFLA_INFO_DATA);
    data(msg);
    msg.end(at);
    msg.end(info);
}

/// The host end in this namespace; the peer, with its own name, MTU, MAC and namespace,
/// nested in `IFLA_INFO_DATA` so the kernel creates it directly where it belongs.
pub(crate) fn veth_message(spec: &VethSpec<'_>) -> Msg {
    let mut msg = new_link(&spec.name, spec.mtu, None, None);
    if let Some(master) = spec.master {
        msg.u32(nl::IFLA_MASTER, master);
    }
    one_queue(&mut msg);
    link_info(&mut msg, "veth", |m| {
        let peer = m.begin(nl::VETH_INFO_PEER);
        m.raw_link_header(IfInfo::default());
        link_attrs(m, &spec.peer_name, spec.mtu, spec.peer_mac, spec.peer_ns);
        one_queue(m);
        m.end(peer);
    });
    msg
}

/// One transmit and one receive queue, as a veth ends up using anyway. Without them the
/// kernel allocates one per possible CPU and then cuts the count in use back to one
/// (`veth_init_queues`), which waits out an expedited RCU grace period holding the rtnl
/// lock, twice per pair: under parallel ADDs that kept every other netlink request on the
/// host waiting.
fn one_queue(msg: &mut Msg) {
    msg.u32(nl::IFLA_NUM_TX_QUEUES, 1)
        .u32(nl::IFLA_NUM_RX_QUEUES, 1);
}

pub(crate) fn macvlan_message(spec: &MacvlanSpec<'_>) -> Msg {
    let mode = match spec.mode {
        MacvlanMode::Private => nl::MACVLAN_MODE_PRIVATE,
        MacvlanMode::Vepa => nl::MACVLAN_MODE_VEPA,
        MacvlanMode::Bridge => nl::MACVLAN_MODE_BRIDGE,
        MacvlanMode::Passthru => nl::MACVLAN_MODE_PASSTHRU,
    };
    let mut msg = new_link(&spec.name, spec.mtu, spec.mac, spec.ns);
    msg.u32(nl::IFLA_LINK, spec.parent);
    link_info(&mut msg, "macvlan", |m| {
        m.u32(nl::IFLA_MACVLAN_MODE, mode);
        if let Some(len) = spec.bc_queue_len {
            m.u32(nl::IFLA_MACVLAN_BC_QUEUE_LEN, len);
        }
    });
    msg
}

/// A VRF with its routing table (`IFLA_VRF_TABLE` in `IFLA_INFO_DATA`).
pub(crate) fn vrf_message(spec: &VrfSpec<'_>) -> Msg {
    let mut msg = new_link(&spec.name, None, None, spec.ns);
    link_info(&mut msg, "vrf", |m| {
        m.u32(nl::IFLA_VRF_TABLE, spec.table);
    });
    msg
}

/// A bridge created up (and promiscuous if asked) in one request.
pub(crate) fn bridge_message(spec: &BridgeSpec) -> Msg {
    let mut flags = nl::IFF_UP;
    if spec.promisc {
        flags |= nl::IFF_PROMISC;
    }
    let header = IfInfo {
        flags,
        change: flags,
        ..IfInfo::default()
    };
    let mut msg = Msg::link(nl::RTM_NEWLINK, header);
    link_attrs(&mut msg, &spec.name, spec.mtu, None, None);
    let info = msg.begin(nl::IFLA_LINKINFO);
    msg.str(nl::IFLA_INFO_KIND, "bridge");
    // Only sent when wanted: kernels without CONFIG_BRIDGE_VLAN_FILTERING refuse the
    // attribute even when it says "off".
    if spec.vlan_filtering {
        let at = msg.begin(nl::IFLA_INFO_DATA);
        msg.u8(nl::IFLA_BR_VLAN_FILTERING, 1);
        msg.end(at);
    }
    msg.end(info);
    msg
}

/// Port options travel as `IFLA_INFO_SLAVE_DATA`, which only RTM_NEWLINK applies
/// (RTM_SETLINK accepts and ignores them), as `ip link set ... type bridge_slave`.
pub(crate) fn bridge_port_message(index: u32, spec: &BridgePortSpec) -> Msg {
    let mut msg = Msg::link(nl::RTM_NEWLINK, IfInfo::index(index));
    let info = msg.begin(nl::IFLA_LINKINFO);
    msg.str(nl::IFLA_INFO_SLAVE_KIND, "bridge");
    let at = msg.begin(nl::IFLA_INFO_SLAVE_DATA);
    if let Some(on) = spec.hairpin {
        msg.u8(nl::IFLA_BRPORT_MODE, u8::from(on));
    }
    if let Some(on) = spec.isolated {
        msg.u8(nl::IFLA_BRPORT_ISOLATED, u8::from(on));
    }
    msg.end(at);
    msg.end(info);
    msg
}

/// An AF_BRIDGE link message for one VLAN entry of port `index`, addressed to its bridge
/// (`BRIDGE_FLAGS_MASTER`, as Go netlink's `BridgeVlanAdd(.., master=true)` sends it).
/// With AF_BRIDGE, RTM_DELLINK removes the entry (rtnl_bridge_dellink), not the link.
pub(crate) fn bridge_vlan_message(
    kind: u16,
    index: u32,
    vid: u16,
    pvid: bool,
    untagged: bool,
) -> Msg {
    let mut flags = 0u16;
    if pvid {
        flags |= nl::BRIDGE_VLAN_INFO_PVID;
    }
    if untagged {
        flags |= nl::BRIDGE_VLAN_INFO_UNTAGGED;
    }
    let header = IfInfo {
        family: nl::AF_BRIDGE,
        ..IfInfo::index(index)
    };
    let mut msg = Msg::link(kind, header);
    let at = msg.begin(nl::IFLA_AF_SPEC);
    msg.u16(nl::IFLA_BRIDGE_FLAGS, nl::BRIDGE_FLAGS_MASTER);
    let mut info = [0u8; 4];
    info[..2].copy_from_slice(&flags.to_ne_bytes());
    info[2..].copy_from_slice(&vid.to_ne_bytes());
    msg.attr(nl::IFLA_BRIDGE_VLAN_INFO, &info);
    msg.end(at);
    msg
}

/// The VLAN entries of one AF_BRIDGE link message (one per VLAN: the dump asks for
/// `RTEXT_FILTER_BRVLAN`, not the compressed ranges).
fn bridge_vlans_of(payload: &[u8]) -> Vec<BridgeVlan> {
    let Some((_, rest)) = IfInfo::parse(payload) else {
        return Vec::new();
    };
    attrs(rest)
        .filter(|(k, _)| *k == nl::IFLA_AF_SPEC)
        .flat_map(|(_, spec)| attrs(spec))
        .filter(|(k, _)| *k == nl::IFLA_BRIDGE_VLAN_INFO)
        .filter_map(|(_, v)| {
            let flags = nl::u16_of(v)?;
            let vid = nl::u16_of(v.get(2..)?)?;
            Some(BridgeVlan {
                vid,
                pvid: flags & nl::BRIDGE_VLAN_INFO_PVID != 0,
                untagged: flags & nl::BRIDGE_VLAN_INFO_UNTAGGED != 0,
            })
        })
        .collect()
}

/// IPv4 addresses carry local, peer (the same) and broadcast addresses, as Go netlink and
/// iproute2 send them; IPv6 only the address.
pub(crate) fn address_message(kind: u16, index: u32, addr: IpNetwork) -> Msg {
    let header = IfAddr {
        family: match addr {
            IpNetwork::V4(_) => nl::AF_INET,
            IpNetwork::V6(_) => nl::AF_INET6,
        },
        prefix_len: addr.prefix(),
        scope: scope::UNIVERSE,
        index,
        ..IfAddr::default()
    };
    let mut msg = Msg::addr(kind, header);
    match addr {
        IpNetwork::V4(v4) => {
            msg.attr(nl::IFA_LOCAL, &v4.ip().octets());
            msg.attr(nl::IFA_ADDRESS, &v4.ip().octets());
            if v4.prefix() < 31 {
                msg.attr(nl::IFA_BROADCAST, &v4.broadcast().octets());
            }
        }
        IpNetwork::V6(v6) => {
            msg.attr(nl::IFA_ADDRESS, &v6.ip().octets());
        }
    }
    msg
}

/// A route message. Adds default to the main table, universe scope, unicast, protocol
/// "boot" (what Go netlink sends). Deletes leave scope, type and protocol as wildcards.
pub(crate) fn route_message(route: &RouteSpec, delete: bool) -> Msg {
    let table = route.table.unwrap_or(MAIN_TABLE);
    let mut header = RtMsg {
        family: if route.dst.is_ipv4() {
            nl::AF_INET
        } else {
            nl::AF_INET6
        },
        dst_len: route.dst.prefix(),
        table: u8::try_from(table).unwrap_or(nl::RT_TABLE_UNSPEC),
        ..RtMsg::default()
    };
    let kind = if delete {
        header.scope = route.scope.unwrap_or(nl::RT_SCOPE_NOWHERE);
        header.protocol = nl::RTPROT_UNSPEC;
        header.kind = nl::RTN_UNSPEC;
        nl::RTM_DELROUTE
    } else {
        header.scope = route.scope.unwrap_or(scope::UNIVERSE);
        header.protocol = nl::RTPROT_BOOT;
        header.kind = nl::RTN_UNICAST;
        nl::RTM_NEWROUTE
    };
    let mut msg = Msg::route(kind, header);
    // The kernel refuses IPv4 destinations with host bits set.
    if route.dst.prefix() > 0 {
        msg.ip(nl::RTA_DST, route.dst.network());
    }
    if let Some(gw) = route.gw {
        msg.ip(nl::RTA_GATEWAY, gw);
    }
    if let Some(src) = route.src {
        msg.ip(nl::RTA_PREFSRC, src);
    }
    if let Some(oif) = route.oif {
        msg.u32(nl::RTA_OIF, oif);
    }
    if let Some(priority) = route.priority {
        msg.u32(nl::RTA_PRIORITY, priority);
    }
    msg.u32(nl::RTA_TABLE, table);
    if route.mtu.is_some() || route.advmss.is_some() {
        let at = msg.begin(nl::RTA_METRICS);
        if let Some(mtu) = route.mtu {
            msg.u32(nl::RTAX_MTU, mtu);
        }
        if let Some(advmss) = route.advmss {
            msg.u32(nl::RTAX_ADVMSS, advmss);
        }
        msg.end(at);
    }
    msg
}

pub(crate) fn link_view(payload: &[u8]) -> Option<Link> {
    let (h, rest) = IfInfo::parse(payload)?;
    let mut link = Link {
        index: h.index,
        name: String::new(),
        kind: None,
        mac: None,
        mtu: 0,
        master: None,
        up: h.flags & nl::IFF_UP != 0,
        oper_up: false,
        promisc: h.flags & nl::IFF_PROMISC != 0,
        allmulti: h.flags & nl::IFF_ALLMULTI != 0,
        txqlen: 0,
        alias: None,
        link_netnsid: None,
        peer_index: None,
    };
    for (kind, v) in attrs(rest) {
        match kind {
            nl::IFLA_IFNAME => link.name = nl::str_of(v),
            nl::IFLA_MTU => link.mtu = nl::u32_of(v).unwrap_or(0),
            nl::IFLA_TXQLEN => link.txqlen = nl::u32_of(v).unwrap_or(0),
            nl::IFLA_ADDRESS => link.mac = <[u8; 6]>::try_from(v).ok(),
            nl::IFLA_MASTER => link.master = nl::u32_of(v).filter(|m| *m != 0),
            nl::IFLA_IFALIAS => link.alias = Some(nl::str_of(v)),
            nl::IFLA_LINK_NETNSID => {
                link.link_netnsid = nl::u32_of(v).map(|id| i32::from_ne_bytes(id.to_ne_bytes()));
            }
            nl::IFLA_LINK => link.peer_index = nl::u32_of(v),
            // `lo` and devices without operstate support report UNKNOWN while working.
            nl::IFLA_OPERSTATE => {
                let state = nl::u8_of(v);
                link.oper_up = state == Some(nl::IF_OPER_UP)
                    || (state == Some(nl::IF_OPER_UNKNOWN) && h.flags & nl::IFF_RUNNING != 0);
            }
            nl::IFLA_LINKINFO => link.kind = find(v, nl::IFLA_INFO_KIND).map(nl::str_of),
            _ => {}
        }
    }
    Some(link)
}

/// The ipvlan or macvlan mode, VLAN id or VRF table in a link's `IFLA_INFO_DATA`.
pub(crate) fn link_data_of(payload: &[u8]) -> LinkData {
    let info = IfInfo::parse(payload).and_then(|(_, rest)| find(rest, nl::IFLA_LINKINFO));
    let Some(info) = info else {
        return LinkData::Other;
    };
    let kind = find(info, nl::IFLA_INFO_KIND).map(nl::str_of);
    let data = find(info, nl::IFLA_INFO_DATA).unwrap_or_default();
    let found = match kind.as_deref() {
        Some("ipvlan") => find(data, nl::IFLA_IPVLAN_MODE)
            .and_then(nl::u16_of)
            .and_then(|mode| match mode {
                nl::IPVLAN_MODE_L2 => Some(IpvlanMode::L2),
                nl::IPVLAN_MODE_L3 => Some(IpvlanMode::L3),
                nl::IPVLAN_MODE_L3S => Some(IpvlanMode::L3s),
                _ => None,
            })
            .map(|mode| LinkData::Ipvlan { mode }),
        Some("macvlan") => find(data, nl::IFLA_MACVLAN_MODE)
            .and_then(nl::u32_of)
            .and_then(|mode| match mode {
                nl::MACVLAN_MODE_PRIVATE => Some(MacvlanMode::Private),
                nl::MACVLAN_MODE_VEPA => Some(MacvlanMode::Vepa),
                nl::MACVLAN_MODE_BRIDGE => Some(MacvlanMode::Bridge),
                nl::MACVLAN_MODE_PASSTHRU => Some(MacvlanMode::Passthru),
                _ => None,
            })
            .map(|mode| LinkData::Macvlan { mode }),
        Some("vlan") => find(data, nl::IFLA_VLAN_ID)
            .and_then(nl::u16_of)
            .map(|id| LinkData::Vlan { id }),
        Some("vrf") => find(data, nl::IFLA_VRF_TABLE)
            .and_then(nl::u32_of)
            .map(|table| LinkData::Vrf { table }),
        _ => None,
    };
    found.unwrap_or(LinkData::Other)
}

pub(crate) fn addr_view(payload: &[u8]) -> Option<Addr> {
    let (h, rest) = IfAddr::parse(payload)?;
    let mut local = None;
    let mut address = None;
    let mut flags = u32::from(h.flags);
    for (kind, v) in attrs(rest) {
        match kind {
            nl::IFA_LOCAL => local = nl::ip_of(v),
            nl::IFA_ADDRESS => address = nl::ip_of(v),
            // The 32-bit attribute supersedes the 8 bits of the header.
            nl::IFA_FLAGS => flags = nl::u32_of(v).unwrap_or(flags),
            _ => {}
        }
    }
    // For IPv4 IFA_LOCAL is the interface's address (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 sends IFA_ADDRESS only.
    let ip = local.or(address)?;
    Some(Addr {
        index: h.index,
        address: IpNetwork::new(ip, h.prefix_len).ok()?,
        tentative: flags & nl::IFA_F_TENTATIVE != 0,
        dad_failed: flags & nl::IFA_F_DADFAILED != 0,
        scope: h.scope,
        permanent: flags & nl::IFA_F_PERMANENT != 0,
    })
}

pub(crate) fn route_view(payload: &[u8]) -> Option<RouteSpec> {
    let (h, rest) = RtMsg::parse(payload)?;
    if h.kind != nl::RTN_UNICAST {
        return None;
    }
    let unspecified = match h.family {
        nl::AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        nl::AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    let mut dst = unspecified;
    let mut route = RouteSpec::new(IpNetwork::new(unspecified, 0).ok()?);
    route.table = Some(u32::from(h.table));
    route.scope = Some(h.scope);
    for (kind, v) in attrs(rest) {
        match kind {
            nl::RTA_DST => dst = nl::ip_of(v)?,
            nl::RTA_GATEWAY => route.gw = nl::ip_of(v),
            nl::RTA_PREFSRC => route.src = nl::ip_of(v),
            nl::RTA_OIF => route.oif = nl::u32_of(v),
            nl::RTA_PRIORITY => route.priority = nl::u32_of(v),
            nl::RTA_TABLE => route.table = nl::u32_of(v).or(route.table),
            nl::RTA_METRICS => {
                for (metric, value) in attrs(v) {
                    match metric {
                        nl::RTAX_MTU => route.mtu = nl::u32_of(value),
                        nl::RTAX_ADVMSS => route.advmss = nl::u32_of(value),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    route.dst = IpNetwork::new(dst, h.dst_len).ok()?;
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test network")
    }

    /// A message's `ifinfomsg` (or other header of `len` bytes) and its attributes.
    fn body(msg: &Msg, len: usize) -> &[u8] {
        &msg.payload()[len..]
    }

    fn u32_attr(data: &[u8], kind: u16) -> Option<u32> {
        find(data, kind).and_then(nl::u32_of)
    }

    #[test]
    fn veth_peer_carries_its_own_name_mtu_mac() {
        let spec = VethSpec {
            name: "veth0123abcd".into(),
            peer_name: "eth0".into(),
            peer_ns: None,
            mtu: Some(1400),
            peer_mac: Some([2, 0, 0, 0, 0, 1]),
            master: Some(3),
        };
        let msg = veth_message(&spec);
        assert_eq!(msg.kind(), nl::RTM_NEWLINK);
        let attrs_ = body(&msg, IfInfo::LEN);
        assert_eq!(
            find(attrs_, nl::IFLA_IFNAME).map(nl::str_of).as_deref(),
            Some("veth0123abcd")
        );
        assert_eq!(u32_attr(attrs_, nl::IFLA_MTU), Some(1400));
        assert_eq!(u32_attr(attrs_, nl::IFLA_MASTER), Some(3));
        assert_eq!(find(attrs_, nl::IFLA_ADDRESS), None);
        let info = find(attrs_, nl::IFLA_LINKINFO).expect("linkinfo");
        assert_eq!(
            find(info, nl::IFLA_INFO_KIND).map(nl::str_of).as_deref(),
            Some("veth")
        );
        let peer = find(info, nl::IFLA_INFO_DATA)
            .and_then(|d| find(d, nl::VETH_INFO_PEER))
            .expect("peer");
        let (header, peer) = IfInfo::parse(peer).expect("peer ifinfomsg");
        assert_eq!(header, IfInfo::default());
        assert_eq!(
            find(peer, nl::IFLA_IFNAME).map(nl::str_of).as_deref(),
            Some("eth0")
        );
        assert_eq!(u32_attr(peer, nl::IFLA_MTU), Some(1400));
        assert_eq!(
            find(peer, nl::IFLA_ADDRESS),
            Some(&[2u8, 0, 0, 0, 0, 1][..])
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
        let (h, rest) = IfInfo::parse(msg.payload()).expect("header");
        assert_eq!(h.flags, nl::IFF_UP | nl::IFF_PROMISC);
        assert_eq!(h.change, nl::IFF_UP | nl::IFF_PROMISC);
        let info = find(rest, nl::IFLA_LINKINFO).expect("linkinfo");
        assert_eq!(
            find(info, nl::IFLA_INFO_KIND).map(nl::str_of).as_deref(),
            Some("bridge")
        );
        assert_eq!(find(info, nl::IFLA_INFO_DATA), None);
        let filtering = bridge_message(&BridgeSpec {
            vlan_filtering: true,
            ..spec
        });
        let info = find(body(&filtering, IfInfo::LEN), nl::IFLA_LINKINFO).expect("linkinfo");
        let data = find(info, nl::IFLA_INFO_DATA).expect("data");
        assert_eq!(find(data, nl::IFLA_BR_VLAN_FILTERING), Some(&[1u8][..]));
    }

    #[test]
    fn ipv4_address_has_local_and_broadcast() {
        let msg = address_message(nl::RTM_NEWADDR, 3, net("10.1.2.3/24"));
        let (h, rest) = IfAddr::parse(msg.payload()).expect("header");
        assert_eq!((h.prefix_len, h.family, h.index), (24, nl::AF_INET, 3));
        assert_eq!(find(rest, nl::IFA_LOCAL), Some(&[10u8, 1, 2, 3][..]));
        assert_eq!(find(rest, nl::IFA_ADDRESS), Some(&[10u8, 1, 2, 3][..]));
        assert_eq!(find(rest, nl::IFA_BROADCAST), Some(&[10u8, 1, 2, 255][..]));
        let p2p = address_message(nl::RTM_NEWADDR, 3, net("10.1.2.3/31"));
        assert_eq!(find(body(&p2p, IfAddr::LEN), nl::IFA_BROADCAST), None);
        let v6 = address_message(nl::RTM_DELADDR, 3, net("fd00::1/64"));
        assert_eq!(v6.kind(), nl::RTM_DELADDR);
        assert_eq!(find(body(&v6, IfAddr::LEN), nl::IFA_LOCAL), None);
    }

    #[test]
    fn route_destination_is_masked_and_default_has_none() {
        let mut spec = RouteSpec::new(net("10.1.2.3/24"));
        spec.gw = Some("10.1.2.1".parse().expect("ip"));
        let msg = route_message(&spec, false);
        let (h, rest) = RtMsg::parse(msg.payload()).expect("header");
        assert_eq!(find(rest, nl::RTA_DST), Some(&[10u8, 1, 2, 0][..]));
        assert_eq!(find(rest, nl::RTA_GATEWAY), Some(&[10u8, 1, 2, 1][..]));
        assert_eq!(h.protocol, nl::RTPROT_BOOT);
        assert_eq!(h.scope, scope::UNIVERSE);
        assert_eq!(h.kind, nl::RTN_UNICAST);
        let default = route_message(&RouteSpec::new(net("0.0.0.0/0")), false);
        assert_eq!(find(body(&default, RtMsg::LEN), nl::RTA_DST), None);
    }

    #[test]
    fn route_delete_leaves_wildcards() {
        let msg = route_message(&RouteSpec::new(net("fd00::/64")), true);
        assert_eq!(msg.kind(), nl::RTM_DELROUTE);
        let (h, _) = RtMsg::parse(msg.payload()).expect("header");
        assert_eq!(h.scope, nl::RT_SCOPE_NOWHERE);
        assert_eq!(h.kind, nl::RTN_UNSPEC);
        assert_eq!(h.protocol, nl::RTPROT_UNSPEC);
        assert_eq!(h.family, nl::AF_INET6);
    }

    #[test]
    fn route_in_big_table_uses_the_attribute() {
        let mut spec = RouteSpec::new(net("10.0.0.0/8"));
        spec.table = Some(1000);
        let msg = route_message(&spec, false);
        let (h, rest) = RtMsg::parse(msg.payload()).expect("header");
        assert_eq!(h.table, nl::RT_TABLE_UNSPEC);
        assert_eq!(u32_attr(rest, nl::RTA_TABLE), Some(1000));
    }

    #[test]
    fn route_view_reads_back_what_route_message_writes() {
        let mut spec = RouteSpec::new(net("10.9.0.0/16"));
        spec.gw = Some("10.1.0.1".parse().expect("ip"));
        spec.src = Some("10.1.0.7".parse().expect("ip"));
        spec.oif = Some(4);
        spec.priority = Some(100);
        spec.mtu = Some(1300);
        spec.advmss = Some(1200);
        spec.scope = Some(scope::UNIVERSE);
        spec.table = Some(MAIN_TABLE);
        let back = route_view(route_message(&spec, false).payload()).expect("unicast route");
        assert_eq!(back, spec);
        let mut v6 = RouteSpec::new(net("fd00:1::/64"));
        v6.gw = Some("fd00::1".parse().expect("ip"));
        v6.scope = Some(scope::UNIVERSE);
        v6.table = Some(1000);
        assert_eq!(route_view(route_message(&v6, false).payload()), Some(v6));
        // Not unicast (a delete's wildcard type): not a route to report.
        assert_eq!(route_view(route_message(&spec, true).payload()), None);
    }

    #[test]
    fn addr_view_prefers_local_and_reads_flags() {
        let mut msg = address_message(nl::RTM_NEWADDR, 7, net("fd00::5/64"));
        msg.u32(nl::IFA_FLAGS, nl::IFA_F_TENTATIVE | nl::IFA_F_PERMANENT);
        let a = addr_view(msg.payload()).expect("address");
        assert_eq!(a.address, net("fd00::5/64"));
        assert!(a.tentative && a.permanent && !a.dad_failed);
        assert_eq!(a.index, 7);
        let v4 = addr_view(address_message(nl::RTM_NEWADDR, 2, net("10.0.0.9/8")).payload());
        assert_eq!(v4.map(|a| a.address), Some(net("10.0.0.9/8")));
    }

    #[test]
    fn link_data_reads_ipvlan_macvlan_mode_vlan_id_and_vrf_table() {
        let with = |kind: &str, data: &dyn Fn(&mut Msg)| {
            let mut msg = new_link("x", None, None, None);
            link_info(&mut msg, kind, |m| data(m));
            link_data_of(msg.payload())
        };
        assert_eq!(
            with("ipvlan", &|m| {
                m.u16(nl::IFLA_IPVLAN_MODE, nl::IPVLAN_MODE_L3S);
            }),
            LinkData::Ipvlan {
                mode: IpvlanMode::L3s
            }
        );
        assert_eq!(
            with("macvlan", &|m| {
                m.u32(nl::IFLA_MACVLAN_MODE, nl::MACVLAN_MODE_VEPA);
            }),
            LinkData::Macvlan {
                mode: MacvlanMode::Vepa
            }
        );
        assert_eq!(
            with("vlan", &|m| {
                m.u16(nl::IFLA_VLAN_ID, 42);
            }),
            LinkData::Vlan { id: 42 }
        );
        let vrf = vrf_message(&VrfSpec {
            name: "vrf0".into(),
            table: 1001,
            ns: None,
        });
        assert_eq!(link_data_of(vrf.payload()), LinkData::Vrf { table: 1001 });
        assert_eq!(
            link_data_of(new_link("y", None, None, None).payload()),
            LinkData::Other
        );
    }

    #[test]
    fn macvlan_message_carries_mode_parent_and_queue_length() {
        let msg = macvlan_message(&MacvlanSpec {
            name: "mv0".into(),
            parent: 4,
            mode: MacvlanMode::Passthru,
            mtu: None,
            mac: None,
            bc_queue_len: Some(100),
            ns: None,
        });
        let rest = body(&msg, IfInfo::LEN);
        assert_eq!(u32_attr(rest, nl::IFLA_LINK), Some(4));
        let data = find(rest, nl::IFLA_LINKINFO)
            .and_then(|i| find(i, nl::IFLA_INFO_DATA))
            .expect("data");
        assert_eq!(
            u32_attr(data, nl::IFLA_MACVLAN_MODE),
            Some(nl::MACVLAN_MODE_PASSTHRU)
        );
        assert_eq!(u32_attr(data, nl::IFLA_MACVLAN_BC_QUEUE_LEN), Some(100));
        assert_eq!(
            link_data_of(msg.payload()),
            LinkData::Macvlan {
                mode: MacvlanMode::Passthru
            }
        );
    }

    #[test]
    fn link_view_reads_kind_master_and_peer() {
        let header = IfInfo {
            flags: nl::IFF_UP | nl::IFF_RUNNING,
            ..IfInfo::index(9)
        };
        let mut msg = Msg::link(nl::RTM_NEWLINK, header);
        msg.str(nl::IFLA_IFNAME, "veth1")
            .u32(nl::IFLA_MTU, 1500)
            .attr(nl::IFLA_ADDRESS, &[1, 2, 3, 4, 5, 6])
            .u32(nl::IFLA_MASTER, 3)
            .u32(nl::IFLA_LINK, 2)
            .u32(nl::IFLA_LINK_NETNSID, 0)
            .u8(nl::IFLA_OPERSTATE, nl::IF_OPER_UP)
            .str(nl::IFLA_IFALIAS, "pod");
        let at = msg.begin(nl::IFLA_LINKINFO);
        msg.str(nl::IFLA_INFO_KIND, "veth");
        msg.end(at);
        let l = link_view(msg.payload()).expect("link");
        assert_eq!(l.name, "veth1");
        assert_eq!(l.kind.as_deref(), Some("veth"));
        assert_eq!(l.mac, Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(l.alias.as_deref(), Some("pod"));
        assert_eq!(
            (l.master, l.peer_index, l.link_netnsid),
            (Some(3), Some(2), Some(0))
        );
        assert!(l.up && l.oper_up && !l.promisc);
        // `lo`: operstate UNKNOWN while running counts as up; no master 0.
        let mut lo = Msg::link(nl::RTM_NEWLINK, header);
        lo.u8(nl::IFLA_OPERSTATE, nl::IF_OPER_UNKNOWN)
            .u32(nl::IFLA_MASTER, 0);
        let l = link_view(lo.payload()).expect("link");
        assert!(l.oper_up && l.master.is_none() && l.kind.is_none());
    }

    #[test]
    fn bridge_vlan_message_bytes_match_the_kernel_layout() {
        let msg = bridge_vlan_message(nl::RTM_SETLINK, 3, 0x0102, true, false);
        let buf = msg.payload();
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
        let mut msg = bridge_vlan_message(nl::RTM_NEWLINK, 4, 1, true, true);
        // A second entry in its own AF_SPEC, as the dump may split them.
        let at = msg.begin(nl::IFLA_AF_SPEC);
        msg.attr(nl::IFLA_BRIDGE_VLAN_INFO, &[0, 0, 44, 1]);
        msg.end(at);
        assert_eq!(
            bridge_vlans_of(msg.payload()),
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
        assert_eq!(msg.kind(), nl::RTM_NEWLINK);
        let info = find(body(&msg, IfInfo::LEN), nl::IFLA_LINKINFO).expect("linkinfo");
        assert_eq!(
            find(info, nl::IFLA_INFO_SLAVE_KIND)
                .map(nl::str_of)
                .as_deref(),
            Some("bridge")
        );
        let data = find(info, nl::IFLA_INFO_SLAVE_DATA).expect("slave data");
        assert_eq!(
            attrs(data).collect::<Vec<_>>(),
            vec![(nl::IFLA_BRPORT_MODE, &[1u8][..])]
        );
    }

    #[test]
    fn rules_round_trip() {
        let rule = RuleSpec {
            family: Family::V4,
            src: Some(net("10.0.0.5/32")),
            table: 100,
            priority: Some(32000),
        };
        let msg = rule_message(&rule, false);
        let (h, _) = RtMsg::parse(msg.payload()).expect("header");
        assert_eq!(h.kind, nl::FR_ACT_TO_TBL);
        assert_eq!(rule_view(msg.payload(), Family::V4), Some(rule.clone()));
        let del = rule_message(&rule, true);
        assert_eq!(del.kind(), nl::RTM_DELRULE);
        assert_eq!(RtMsg::parse(del.payload()).map(|(h, _)| h.kind), Some(0));
    }
}
