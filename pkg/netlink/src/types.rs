//! What callers see: plain views of links, addresses and routes, and the specs to create them.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;

use ipnetwork::IpNetwork;

/// An interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index in its namespace.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`"bridge"`, `"veth"`, `"macvlan"`, ...); `None` for physical devices and `lo`.
    pub kind: Option<String>,
    /// Hardware address, when it is a 6-byte Ethernet address.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: u32,
    /// Index of the bridge (or bond, VRF) this link is attached to.
    pub master: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up: operstate UP, or UNKNOWN while running (as `lo` reports).
    pub oper_up: bool,
    /// Promiscuous mode (`IFF_PROMISC`).
    pub promisc: bool,
    /// All-multicast mode (`IFF_ALLMULTI`).
    pub allmulti: bool,
    /// Transmit queue length (`IFLA_TXQLEN`).
    pub txqlen: u32,
    /// Interface alias (`IFLA_IFALIAS`).
    pub alias: Option<String>,
    /// Namespace id of the peer's / lower device's namespace (`IFLA_LINK_NETNSID`).
    pub link_netnsid: Option<i32>,
    /// `IFLA_LINK`: for a veth, the peer's index (in the namespace of `link_netnsid`).
    pub peer_index: Option<u32>,
}

impl Link {
    /// True for a bridge.
    #[must_use]
    pub fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some("bridge")
    }
}

/// An interface address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    /// Index of the interface holding it.
    pub index: u32,
    /// Address with its prefix length (host bits kept: `10.1.2.3/24`).
    pub address: IpNetwork,
    /// IPv6 duplicate address detection still running (`IFA_F_TENTATIVE`).
    pub tentative: bool,
    /// IPv6 duplicate address detection failed (`IFA_F_DADFAILED`).
    pub dad_failed: bool,
    /// Scope (`RT_SCOPE_*`: 0 universe, 200 site, 253 link, 254 host).
    pub scope: u8,
    /// Configured, not learned from router advertisements (`IFA_F_PERMANENT`).
    pub permanent: bool,
}

/// A route to add or delete, and the view of a dumped route.
///
/// Unset fields take the kernel's (and Go netlink's) defaults when adding: main table,
/// universe scope, no priority. When deleting, unset fields match any route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination; host bits are cleared when sent.
    pub dst: IpNetwork,
    /// Next hop.
    pub gw: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Preferred source address (`RTA_PREFSRC`).
    pub src: Option<IpAddr>,
    /// Routing table (main when unset).
    pub table: Option<u32>,
    /// Scope (`RT_SCOPE_*` number: 0 universe, 253 link, 254 host).
    pub scope: Option<u8>,
    /// Metric (`RTA_PRIORITY`).
    pub priority: Option<u32>,
    /// Path MTU metric.
    pub mtu: Option<u32>,
    /// Advertised MSS metric.
    pub advmss: Option<u32>,
}

impl RouteSpec {
    /// A route to `dst` with everything else unset.
    #[must_use]
    pub fn new(dst: IpNetwork) -> RouteSpec {
        RouteSpec {
            dst,
            gw: None,
            oif: None,
            src: None,
            table: None,
            scope: None,
            priority: None,
            mtu: None,
            advmss: None,
        }
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gw {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev {oif}")?;
        }
        if let Some(table) = self.table {
            write!(f, " table {table}")?;
        }
        Ok(())
    }
}

/// `RT_SCOPE_*` values for [`RouteSpec::scope`] and [`Addr::scope`].
pub mod scope {
    /// Global.
    pub const UNIVERSE: u8 = 0;
    /// Site-local (IPv6).
    pub const SITE: u8 = 200;
    /// Directly attached (no gateway).
    pub const LINK: u8 = 253;
    /// Local to this host.
    pub const HOST: u8 = 254;
}

/// An interface named by index or name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkRef {
    /// By interface index.
    Index(u32),
    /// By interface name.
    Name(String),
}

impl From<u32> for LinkRef {
    fn from(index: u32) -> LinkRef {
        LinkRef::Index(index)
    }
}

impl From<&str> for LinkRef {
    fn from(name: &str) -> LinkRef {
        LinkRef::Name(name.to_string())
    }
}

impl From<String> for LinkRef {
    fn from(name: String) -> LinkRef {
        LinkRef::Name(name)
    }
}

impl From<&String> for LinkRef {
    fn from(name: &String) -> LinkRef {
        LinkRef::Name(name.clone())
    }
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRef::Index(i) => write!(f, "index {i}"),
            LinkRef::Name(n) => f.write_str(n),
        }
    }
}

/// An IP family, to filter dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    #[must_use]
    pub fn of(addr: &IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// True when `net` belongs to this family.
    #[must_use]
    pub fn matches(self, net: &IpNetwork) -> bool {
        (self == Family::V4) == net.is_ipv4()
    }
}

/// A veth pair: `name` in the socket's namespace, `peer_name` in `peer_ns` (or beside it).
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    /// Host end, created in this socket's namespace.
    pub name: String,
    /// Other end.
    pub peer_name: String,
    /// Namespace the peer is born in (`IFLA_NET_NS_FD` on the peer); `None`: this one.
    pub peer_ns: Option<BorrowedFd<'a>>,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of the peer end.
    pub peer_mac: Option<[u8; 6]>,
    /// Master the host end joins at creation (`IFLA_MASTER`, e.g. a bridge): one request
    /// under the kernel's rtnl lock instead of two.
    pub master: Option<u32>,
}

/// A bridge for [`crate::Netlink::ensure_bridge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Bridge name.
    pub name: String,
    /// MTU set at creation (an existing bridge keeps its own).
    pub mtu: Option<u32>,
    /// Enable VLAN filtering at creation (needs CONFIG_BRIDGE_VLAN_FILTERING).
    pub vlan_filtering: bool,
    /// Turn promiscuous mode on (never turned off).
    pub promisc: bool,
}

/// Bridge port flags for [`crate::Netlink::set_bridge_port`]; `None` leaves a flag alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BridgePortSpec {
    /// Hairpin mode: forward frames back out of the port they came in on.
    pub hairpin: Option<bool>,
    /// Isolated: no forwarding to other isolated ports.
    pub isolated: Option<bool>,
}

/// One VLAN of a bridge port, as `bridge vlan show` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BridgeVlan {
    /// VLAN id (1-4094).
    pub vid: u16,
    /// Untagged frames arriving on the port are classified into this VLAN (at most one per
    /// port).
    pub pvid: bool,
    /// Frames of this VLAN leave the port without a tag.
    pub untagged: bool,
}

/// The kind-specific settings of a link (`IFLA_INFO_DATA`) that plugins verify on CHECK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkData {
    /// An ipvlan and its mode.
    Ipvlan {
        /// Mode.
        mode: IpvlanMode,
    },
    /// A macvlan and its mode.
    Macvlan {
        /// Mode.
        mode: MacvlanMode,
    },
    /// An 802.1Q VLAN and its id.
    Vlan {
        /// VLAN id.
        id: u16,
    },
    /// A VRF and the routing table it uses.
    Vrf {
        /// Routing table id (`IFLA_VRF_TABLE`).
        table: u32,
    },
    /// Any other kind, or a mode this facade has no name for.
    Other,
}

/// Macvlan mode (`IFLA_MACVLAN_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MacvlanMode {
    /// No traffic between macvlans of the same parent.
    Private,
    /// Traffic between macvlans goes through the external switch.
    Vepa,
    /// Macvlans of the same parent talk directly (the CNI default).
    Bridge,
    /// One macvlan takes over the parent.
    Passthru,
}

/// A macvlan on `parent`, created in the socket's namespace and moved to `ns` if given.
#[derive(Debug, Clone)]
pub struct MacvlanSpec<'a> {
    /// Name (clashes are checked in the socket's namespace first, then in `ns`).
    pub name: String,
    /// Index of the parent interface, in the socket's namespace.
    pub parent: u32,
    /// Mode.
    pub mode: MacvlanMode,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// Broadcast queue length (`IFLA_MACVLAN_BC_QUEUE_LEN`, Linux 5.11); `None`: the
    /// kernel's default.
    pub bc_queue_len: Option<u32>,
    /// Target namespace (`IFLA_NET_NS_FD`).
    pub ns: Option<BorrowedFd<'a>>,
}

/// Ipvlan mode (`IFLA_IPVLAN_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpvlanMode {
    /// Layer 2.
    L2,
    /// Layer 3 (the CNI default).
    L3,
    /// Layer 3 with netfilter on the slave.
    L3s,
}

/// An ipvlan on `parent`, created in the socket's namespace and moved to `ns` if given.
#[derive(Debug, Clone)]
pub struct IpvlanSpec<'a> {
    /// Name.
    pub name: String,
    /// Index of the parent interface, in the socket's namespace.
    pub parent: u32,
    /// Mode.
    pub mode: IpvlanMode,
    /// MTU.
    pub mtu: Option<u32>,
    /// Target namespace (`IFLA_NET_NS_FD`).
    pub ns: Option<BorrowedFd<'a>>,
}

/// An 802.1Q VLAN on `parent`, created in the socket's namespace and moved to `ns` if given.
#[derive(Debug, Clone)]
pub struct VlanSpec<'a> {
    /// Name.
    pub name: String,
    /// Index of the parent interface, in the socket's namespace.
    pub parent: u32,
    /// VLAN id (0-4094).
    pub vlan_id: u16,
    /// MTU.
    pub mtu: Option<u32>,
    /// Target namespace (`IFLA_NET_NS_FD`).
    pub ns: Option<BorrowedFd<'a>>,
}

/// A dummy link, created in the socket's namespace and moved to `ns` if given.
#[derive(Debug, Clone)]
pub struct DummySpec<'a> {
    /// Name.
    pub name: String,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// Target namespace (`IFLA_NET_NS_FD`).
    pub ns: Option<BorrowedFd<'a>>,
}

/// A VRF device (an L3 master whose ports route through `table`), created in the socket's
/// namespace and moved to `ns` if given. It needs the kernel's `vrf` module.
#[derive(Debug, Clone)]
pub struct VrfSpec<'a> {
    /// Name.
    pub name: String,
    /// Routing table id the VRF's ports use.
    pub table: u32,
    /// Target namespace (`IFLA_NET_NS_FD`).
    pub ns: Option<BorrowedFd<'a>>,
}

/// A policy routing rule (`ip rule`): `from <src> lookup <table>`, at a priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// Family of the rule (from `src` when it is set).
    pub family: Family,
    /// Source selector; every source when unset.
    pub src: Option<IpNetwork>,
    /// Table looked up (`FRA_TABLE`).
    pub table: u32,
    /// Priority (`FRA_PRIORITY`); the kernel picks one below the last rule when unset.
    pub priority: Option<u32>,
}

impl RuleSpec {
    /// `from <src> lookup <table>`.
    #[must_use]
    pub fn from_source(src: IpNetwork, table: u32) -> RuleSpec {
        RuleSpec {
            family: Family::of(&src.ip()),
            src: Some(src),
            table,
            priority: None,
        }
    }
}

impl fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.src {
            Some(src) => write!(f, "from {src}")?,
            None => write!(f, "from all")?,
        }
        write!(f, " lookup {}", self.table)?;
        if let Some(p) = self.priority {
            write!(f, " priority {p}")?;
        }
        Ok(())
    }
}

/// A per-interface IPv4 setting (`net.ipv4.conf.<if>.*`) that netlink can set: the
/// kernel's `IPV4_DEVCONF_*` index, set with `RTM_SETLINK` in `IFLA_AF_SPEC` / `AF_INET` /
/// `IFLA_INET_CONF`. Unlike a write under `/proc/sys`, this needs no path lookup: the
/// sysctl directories of every namespace's `eth0` share one dentry hash chain, so that
/// lookup grows with the number of pods on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ipv4Conf {
    /// `arp_notify`: announce the address with a gratuitous ARP when the link comes up.
    ArpNotify,
}

impl Ipv4Conf {
    /// The `IPV4_DEVCONF_*` index (`include/uapi/linux/ip.h`).
    #[must_use]
    pub fn id(self) -> u16 {
        match self {
            Ipv4Conf::ArpNotify => 22,
        }
    }

    /// The sysctl name under `net.ipv4.conf.<if>`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Ipv4Conf::ArpNotify => "arp_notify",
        }
    }
}
