//! [`FakeNetlink`]: an in-memory stand-in for the kernel, for plugin tests without root.
//!
//! It records every call, keeps a small model of links, addresses and routes per namespace
//! (so `get_link` after `create_veth` finds the link), follows the kernel's errnos for the
//! common failures (EEXIST, ENODEV, EADDRNOTAVAIL, ESRCH), and fails the next call of a
//! chosen operation with an injected errno. [`FakeNetlink::pair`] gives a host and a
//! container handle sharing one model: a veth peer sent to "the other namespace" appears in
//! the container handle. The model is deliberately small: no automatic prefix routes, no
//! IPv6 link-local addresses, no DAD unless marked with [`FakeNetlink::set_addr_state`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::types::VrfSpec;
use crate::types::{
    Addr, BridgePortSpec, BridgeSpec, BridgeVlan, DummySpec, Family, IpvlanMode, IpvlanSpec, Link,
    LinkData, LinkRef, MacvlanMode, MacvlanSpec, RouteSpec, VethSpec, VlanSpec,
};
use crate::types::{Ipv4Conf, RuleSpec};
use crate::{Netlink, scope};

/// `RT_TABLE_MAIN`.
const MAIN_TABLE: u32 = 254;
/// What the kernel gives new Ethernet-like links.
const DEFAULT_MTU: u32 = 1500;
/// The transmit queue length the kernel gives `lo` and new veth links.
const DEFAULT_TXQLEN: u32 = 1000;
/// The VLAN a new bridge and its new ports are in (`default_pvid`).
const DEFAULT_PVID: u16 = 1;

/// The facade operations, to choose which one fails next ([`FakeNetlink::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetLink,
    Links,
    LinkData,
    CreateVeth,
    EnsureBridge,
    CreateMacvlan,
    CreateIpvlan,
    CreateVlan,
    CreateDummy,
    CreateVrf,
    SetUp,
    SetDown,
    SetMaster,
    SetNomaster,
    SetMtu,
    SetMac,
    SetPromisc,
    SetAllmulti,
    SetTxqlen,
    SetIpv4Conf,
    SetName,
    SetAlias,
    SetNsFd,
    SetBridgePort,
    BridgeVlanAdd,
    BridgeVlanDel,
    BridgeVlans,
    DelLink,
    AddAddr,
    ReplaceAddr,
    DelAddr,
    Addrs,
    AddRoute,
    ReplaceRoute,
    DelRoute,
    Routes,
    AddRule,
    DelRule,
    Rules,
}

/// One recorded call with its arguments (namespace fds recorded as "given or not").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    GetLink(LinkRef),
    Links,
    LinkData(u32),
    CreateVeth {
        name: String,
        peer_name: String,
        peer_in_other_ns: bool,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
        master: Option<u32>,
    },
    EnsureBridge(BridgeSpec),
    CreateMacvlan {
        name: String,
        parent: u32,
        mode: MacvlanMode,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        bc_queue_len: Option<u32>,
        in_other_ns: bool,
    },
    CreateIpvlan {
        name: String,
        parent: u32,
        mode: IpvlanMode,
        mtu: Option<u32>,
        in_other_ns: bool,
    },
    CreateVlan {
        name: String,
        parent: u32,
        vlan_id: u16,
        mtu: Option<u32>,
        in_other_ns: bool,
    },
    CreateDummy {
        name: String,
        mtu: Option<u32>,
        mac: Option<[u8; 6]>,
        in_other_ns: bool,
    },
    CreateVrf {
        name: String,
        table: u32,
        in_other_ns: bool,
    },
    SetUp(u32),
    SetDown(u32),
    SetMaster(u32, u32),
    SetNomaster(u32),
    SetMtu(u32, u32),
    SetMac(u32, [u8; 6]),
    SetPromisc(u32, bool),
    SetAllmulti(u32, bool),
    SetTxqlen(u32, u32),
    SetIpv4Conf(u32, Ipv4Conf, u32),
    SetName(u32, String),
    SetAlias(u32, String),
    SetNsFd(u32),
    SetBridgePort(u32, BridgePortSpec),
    BridgeVlanAdd {
        index: u32,
        vid: u16,
        pvid: bool,
        untagged: bool,
    },
    BridgeVlanDel(u32, u16),
    BridgeVlans(u32),
    DelLink(u32),
    AddAddr(u32, IpNetwork),
    ReplaceAddr(u32, IpNetwork),
    DelAddr(u32, IpNetwork),
    Addrs(Option<u32>, Option<Family>),
    AddRoute(RouteSpec),
    ReplaceRoute(RouteSpec),
    DelRoute(RouteSpec),
    Routes(Option<Family>, Option<u32>),
    AddRule(RuleSpec),
    DelRule(RuleSpec),
    Rules(Option<Family>),
}

impl Call {
    /// Which operation this call was.
    #[must_use]
    pub fn op(&self) -> Op {
        match self {
            Call::GetLink(_) => Op::GetLink,
            Call::Links => Op::Links,
            Call::LinkData(_) => Op::LinkData,
            Call::CreateVeth { .. } => Op::CreateVeth,
            Call::EnsureBridge(_) => Op::EnsureBridge,
            Call::CreateMacvlan { .. } => Op::CreateMacvlan,
            Call::CreateIpvlan { .. } => Op::CreateIpvlan,
            Call::CreateVlan { .. } => Op::CreateVlan,
            Call::CreateDummy { .. } => Op::CreateDummy,
            Call::CreateVrf { .. } => Op::CreateVrf,
            Call::SetUp(_) => Op::SetUp,
            Call::SetDown(_) => Op::SetDown,
            Call::SetMaster(..) => Op::SetMaster,
            Call::SetNomaster(_) => Op::SetNomaster,
            Call::SetMtu(..) => Op::SetMtu,
            Call::SetMac(..) => Op::SetMac,
            Call::SetPromisc(..) => Op::SetPromisc,
            Call::SetAllmulti(..) => Op::SetAllmulti,
            Call::SetTxqlen(..) => Op::SetTxqlen,
            Call::SetIpv4Conf(..) => Op::SetIpv4Conf,
            Call::SetName(..) => Op::SetName,
            Call::SetAlias(..) => Op::SetAlias,
            Call::SetNsFd(_) => Op::SetNsFd,
            Call::SetBridgePort(..) => Op::SetBridgePort,
            Call::BridgeVlanAdd { .. } => Op::BridgeVlanAdd,
            Call::BridgeVlanDel(..) => Op::BridgeVlanDel,
            Call::BridgeVlans(_) => Op::BridgeVlans,
            Call::DelLink(_) => Op::DelLink,
            Call::AddAddr(..) => Op::AddAddr,
            Call::ReplaceAddr(..) => Op::ReplaceAddr,
            Call::DelAddr(..) => Op::DelAddr,
            Call::Addrs(..) => Op::Addrs,
            Call::AddRoute(_) => Op::AddRoute,
            Call::ReplaceRoute(_) => Op::ReplaceRoute,
            Call::DelRoute(_) => Op::DelRoute,
            Call::Routes(..) => Op::Routes,
            Call::AddRule(_) => Op::AddRule,
            Call::DelRule(_) => Op::DelRule,
            Call::Rules(_) => Op::Rules,
        }
    }
}

/// One namespace of the model.
#[derive(Debug, Default)]
struct Space {
    links: BTreeMap<u32, Link>,
    addrs: Vec<Addr>,
    routes: Vec<RouteSpec>,
    rules: Vec<RuleSpec>,
    ports: HashMap<u32, BridgePortSpec>,
    /// VLAN entries of bridges and bridge ports, by index then vid.
    vlans: HashMap<u32, BTreeMap<u16, BridgeVlan>>,
    /// Bridges created with VLAN filtering on.
    filtering: HashSet<u32>,
    /// Kind-specific settings of ipvlan, macvlan and VLAN links.
    data: HashMap<u32, LinkData>,
    next_index: u32,
}

impl Space {
    /// A namespace as the kernel makes it: only `lo`, down.
    fn new() -> Space {
        let mut space = Space {
            next_index: 2,
            ..Space::default()
        };
        space.links.insert(
            1,
            Link {
                index: 1,
                name: "lo".into(),
                kind: None,
                mac: Some([0; 6]),
                mtu: 65536,
                master: None,
                up: false,
                oper_up: false,
                promisc: false,
                allmulti: false,
                txqlen: DEFAULT_TXQLEN,
                alias: None,
                link_netnsid: None,
                peer_index: None,
            },
        );
        space
    }

    fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    fn get_mut(&mut self, index: u32) -> Result<&mut Link> {
        self.links.get_mut(&index).ok_or_else(Error::link_not_found)
    }

    fn check_free(&self, name: &str) -> Result<()> {
        if self.by_name(name).is_some() {
            Err(errno(libc::EEXIST))
        } else {
            Ok(())
        }
    }

    fn insert(&mut self, mut link: Link) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        link.index = index;
        self.links.insert(index, link);
        index
    }

    /// Removes a link and everything hanging off it, as unregistering a device does.
    fn remove(&mut self, index: u32) -> Option<Link> {
        let link = self.links.remove(&index)?;
        self.addrs.retain(|a| a.index != index);
        self.routes.retain(|r| r.oif != Some(index));
        self.ports.remove(&index);
        self.vlans.remove(&index);
        self.filtering.remove(&index);
        self.data.remove(&index);
        for other in self.links.values_mut() {
            if other.master == Some(index) {
                other.master = None;
                // A port leaving its bridge loses its VLAN entries (nbp_vlan_flush).
                self.vlans.remove(&other.index);
            }
        }
        Some(link)
    }

    /// The bridge `index` is attached to, when it is attached to one.
    fn bridge_of(&self, index: u32) -> Option<u32> {
        let master = self.links.get(&index)?.master?;
        self.links
            .get(&master)
            .is_some_and(Link::is_bridge)
            .then_some(master)
    }

    /// A bridge, or a port joining one, starts in the default VLAN 1 as PVID, untagged
    /// (the kernel's `default_pvid`), whether filtering is on or not.
    fn set_default_vlan(&mut self, index: u32) {
        let vlan = BridgeVlan {
            vid: DEFAULT_PVID,
            pvid: true,
            untagged: true,
        };
        self.vlans
            .insert(index, BTreeMap::from([(DEFAULT_PVID, vlan)]));
    }
}

#[derive(Debug)]
struct World {
    spaces: Vec<Space>,
    next_mac: u32,
    /// The kernel was built without CONFIG_BRIDGE_VLAN_FILTERING.
    no_bridge_vlans: bool,
    /// Namespace fds bound to a space with [`FakeNetlink::bind_ns_fd`], by fd number.
    ns_fds: HashMap<RawFd, usize>,
}

impl World {
    /// The space `fd` was bound to, or `default`.
    fn space_of(&self, fd: BorrowedFd<'_>, default: usize) -> usize {
        self.ns_fds.get(&fd.as_raw_fd()).copied().unwrap_or(default)
    }

    fn mac(&mut self) -> [u8; 6] {
        self.next_mac += 1;
        let [_, a, b, c] = self.next_mac.to_be_bytes();
        [0x02, 0x42, 0x00, a, b, c]
    }
}

/// In-memory [`Netlink`] for tests: records calls, models links/addresses/routes, injects
/// errnos.
#[derive(Debug)]
pub struct FakeNetlink {
    world: Arc<Mutex<World>>,
    ns: usize,
    other: usize,
    calls: Vec<Call>,
    failures: HashMap<Op, VecDeque<i32>>,
}

fn errno(e: i32) -> Error {
    Error::from_errno("", e)
}

fn new_link(name: &str, kind: &str, mtu: Option<u32>, mac: [u8; 6]) -> Link {
    Link {
        index: 0,
        name: name.to_string(),
        kind: Some(kind.to_string()),
        mac: Some(mac),
        mtu: mtu.unwrap_or(DEFAULT_MTU),
        master: None,
        up: false,
        oper_up: false,
        promisc: false,
        allmulti: false,
        txqlen: DEFAULT_TXQLEN,
        alias: None,
        link_netnsid: None,
        peer_index: None,
    }
}

/// Same address in the kernel's sense: IPv4 compares address and prefix, IPv6 the address.
fn same_addr(a: &IpNetwork, b: &IpNetwork) -> bool {
    match (a, b) {
        (IpNetwork::V4(x), IpNetwork::V4(y)) => x.ip() == y.ip() && x.prefix() == y.prefix(),
        (IpNetwork::V6(x), IpNetwork::V6(y)) => x.ip() == y.ip(),
        _ => false,
    }
}

/// The route as the kernel stores it: masked destination, table and scope filled in.
fn stored_route(route: &RouteSpec) -> RouteSpec {
    let mut r = route.clone();
    r.dst = IpNetwork::new(route.dst.network(), route.dst.prefix()).unwrap_or(route.dst);
    r.table = Some(route.table.unwrap_or(MAIN_TABLE));
    r.scope = Some(route.scope.unwrap_or(scope::UNIVERSE));
    r
}

/// The kernel's key for EEXIST/REPLACE: destination, table, metric.
fn same_route_key(a: &RouteSpec, b: &RouteSpec) -> bool {
    a.dst == b.dst && a.table == b.table && a.priority.unwrap_or(0) == b.priority.unwrap_or(0)
}

/// A delete matches when every field it sets matches.
fn delete_matches(filter: &RouteSpec, r: &RouteSpec) -> bool {
    filter.dst == r.dst
        && filter.table == r.table
        && filter.gw.is_none_or(|g| r.gw == Some(g))
        && filter.oif.is_none_or(|o| r.oif == Some(o))
        && filter.priority.is_none_or(|p| r.priority == Some(p))
        && filter.scope.is_none_or(|s| r.scope == Some(s))
}

/// The kernel's checks before adding a port VLAN (rtnl_bridge_setlink, nbp_vlan_add).
fn check_vlan_port(space: &Space, index: u32, vid: u16, no_vlans: bool) -> Result<()> {
    if !space.links.contains_key(&index) {
        return Err(errno(libc::ENODEV));
    }
    // Not a bridge port, or no VLAN support compiled in.
    if space.bridge_of(index).is_none() || no_vlans {
        return Err(errno(libc::EOPNOTSUPP));
    }
    if vid == 0 || vid >= 4095 {
        return Err(errno(libc::EINVAL));
    }
    Ok(())
}

impl Default for FakeNetlink {
    fn default() -> Self {
        FakeNetlink::new()
    }
}

impl FakeNetlink {
    /// A fake namespace holding only `lo` (down). Links sent to another namespace go to a
    /// second, otherwise unreachable one.
    #[must_use]
    pub fn new() -> FakeNetlink {
        let world = World {
            spaces: vec![Space::new(), Space::new()],
            next_mac: 0,
            no_bridge_vlans: false,
            ns_fds: HashMap::new(),
        };
        FakeNetlink {
            world: Arc::new(Mutex::new(world)),
            ns: 0,
            other: 1,
            calls: Vec::new(),
            failures: HashMap::new(),
        }
    }

    /// A host handle and a container handle sharing one model; each one's "other
    /// namespace" (veth peer, `set_ns_fd`, `ns` of a spec) is the other handle's.
    #[must_use]
    pub fn pair() -> (FakeNetlink, FakeNetlink) {
        let host = FakeNetlink::new();
        let ctr = FakeNetlink {
            world: Arc::clone(&host.world),
            ns: 1,
            other: 0,
            calls: Vec::new(),
            failures: HashMap::new(),
        };
        (host, ctr)
    }

    /// A handle on a new namespace (only `lo`) of the same model, whose "other namespace"
    /// is this handle's: a third namespace, such as a temporary one links pass through.
    #[must_use]
    pub fn another(&self) -> FakeNetlink {
        let ns = {
            let mut world = self.world();
            world.spaces.push(Space::new());
            world.spaces.len() - 1
        };
        FakeNetlink {
            world: Arc::clone(&self.world),
            ns,
            other: self.ns,
            calls: Vec::new(),
            failures: HashMap::new(),
        }
    }

    /// Makes `set_ns_fd` with `fd` (by fd number, while it stays open) move links into
    /// `target`'s namespace, on every handle of this model; fds not bound move links to
    /// the handle's "other namespace".
    pub fn bind_ns_fd(&self, fd: BorrowedFd<'_>, target: &FakeNetlink) {
        self.world().ns_fds.insert(fd.as_raw_fd(), target.ns);
    }

    /// Every call made on this handle so far, in order.
    #[must_use]
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Returns and forgets the recorded calls.
    pub fn take_calls(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.calls)
    }

    /// Makes the next call of `op` on this handle fail with `errno` (queued: calling twice
    /// fails the next two calls).
    pub fn fail_next(&mut self, op: Op, errno: i32) {
        self.failures.entry(op).or_default().push_back(errno);
    }

    /// Adds a link to this handle's namespace without recording a call (test setup, e.g. a
    /// host `eth0` to put a macvlan on); returns it with its index.
    pub fn seed_link(&self, name: &str, kind: Option<&str>) -> Link {
        let mut world = self.world();
        let mac = world.mac();
        let mut link = new_link(name, kind.unwrap_or_default(), None, mac);
        link.kind = kind.map(str::to_string);
        let space = &mut world.spaces[self.ns];
        link.index = space.insert(link.clone());
        link
    }

    /// The links of this handle's namespace, without recording a call.
    #[must_use]
    pub fn link_list(&self) -> Vec<Link> {
        self.world().spaces[self.ns]
            .links
            .values()
            .cloned()
            .collect()
    }

    /// The addresses of this handle's namespace, without recording a call.
    #[must_use]
    pub fn addr_list(&self) -> Vec<Addr> {
        self.world().spaces[self.ns].addrs.clone()
    }

    /// The routes of this handle's namespace (all tables), without recording a call.
    #[must_use]
    pub fn route_list(&self) -> Vec<RouteSpec> {
        self.world().spaces[self.ns].routes.clone()
    }

    /// The rules of this handle's namespace, without recording a call.
    #[must_use]
    pub fn rule_list(&self) -> Vec<RuleSpec> {
        self.world().spaces[self.ns].rules.clone()
    }

    /// The bridge port flags set on link `index`, without recording a call.
    #[must_use]
    pub fn bridge_port(&self, index: u32) -> Option<BridgePortSpec> {
        self.world().spaces[self.ns].ports.get(&index).cloned()
    }

    /// Models a kernel without bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING off), as
    /// this machine's: a bridge asked for with `vlan_filtering` and every port VLAN change
    /// fail with `EOPNOTSUPP`, and bridges and ports have no VLAN entries. Applies to every
    /// handle sharing this model.
    pub fn without_bridge_vlan_filtering(&self) {
        self.world().no_bridge_vlans = true;
    }

    /// The VLAN entries of bridge port (or bridge) `index`, without recording a call.
    #[must_use]
    pub fn port_vlans(&self, index: u32) -> Vec<BridgeVlan> {
        self.world().spaces[self.ns]
            .vlans
            .get(&index)
            .map(|v| v.values().copied().collect())
            .unwrap_or_default()
    }

    /// Whether bridge `index` was created with VLAN filtering on.
    #[must_use]
    pub fn vlan_filtering(&self, index: u32) -> bool {
        self.world().spaces[self.ns].filtering.contains(&index)
    }

    /// Marks an address as tentative and/or DAD-failed (to exercise [`crate::wait_dad`]).
    pub fn set_addr_state(&self, index: u32, addr: IpNetwork, tentative: bool, dad_failed: bool) {
        let mut world = self.world();
        for a in &mut world.spaces[self.ns].addrs {
            if a.index == index && same_addr(&a.address, &addr) {
                a.tentative = tentative;
                a.dad_failed = dad_failed;
            }
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the call and returns the injected failure for its operation, if any.
    fn record(&mut self, call: Call) -> Result<()> {
        let op = call.op();
        self.calls.push(call);
        match self.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(e) => Err(Error::from_errno(format!("fake {op:?}"), e)),
            None => Ok(()),
        }
    }

    fn target(&self, other: bool) -> usize {
        if other { self.other } else { self.ns }
    }

    /// Creates a link of `kind` in this or the other namespace, refusing clashing names.
    fn create_plain(&mut self, mut link: Link, other_ns: bool) -> Result<()> {
        let target = self.target(other_ns);
        let mut world = self.world();
        let mac = world.mac();
        link.mac = link.mac.or(Some(mac));
        let space = &mut world.spaces[target];
        space.check_free(&link.name)?;
        space.insert(link);
        Ok(())
    }

    /// As [`FakeNetlink::create_plain`], remembering the link's kind-specific settings.
    fn create_with_data(&mut self, link: Link, other_ns: bool, data: LinkData) -> Result<()> {
        let name = link.name.clone();
        self.create_plain(link, other_ns)?;
        let target = self.target(other_ns);
        let mut world = self.world();
        let space = &mut world.spaces[target];
        if let Some(index) = space.by_name(&name).map(|l| l.index) {
            space.data.insert(index, data);
        }
        Ok(())
    }

    fn check_parent(&self, parent: u32) -> Result<()> {
        if self.world().spaces[self.ns].links.contains_key(&parent) {
            Ok(())
        } else {
            Err(errno(libc::ENODEV))
        }
    }

    fn update(&mut self, index: u32, f: impl FnOnce(&mut Link)) -> Result<()> {
        let mut world = self.world();
        f(world.spaces[self.ns].get_mut(index)?);
        Ok(())
    }
}

impl Netlink for FakeNetlink {
    fn get_link(&mut self, link: &LinkRef) -> Result<Link> {
        self.record(Call::GetLink(link.clone()))?;
        let world = self.world();
        let space = &world.spaces[self.ns];
        let found = match link {
            LinkRef::Index(i) => space.links.get(i),
            LinkRef::Name(n) => space.by_name(n),
        };
        found.cloned().ok_or_else(Error::link_not_found)
    }

    fn links(&mut self) -> Result<Vec<Link>> {
        self.record(Call::Links)?;
        Ok(self.link_list())
    }

    fn link_data(&mut self, index: u32) -> Result<LinkData> {
        self.record(Call::LinkData(index))?;
        let world = self.world();
        let space = &world.spaces[self.ns];
        if !space.links.contains_key(&index) {
            return Err(Error::link_not_found());
        }
        Ok(space.data.get(&index).copied().unwrap_or(LinkData::Other))
    }

    fn create_veth(&mut self, spec: &VethSpec<'_>) -> Result<()> {
        let cross = spec.peer_ns.is_some();
        self.record(Call::CreateVeth {
            name: spec.name.clone(),
            peer_name: spec.peer_name.clone(),
            peer_in_other_ns: cross,
            mtu: spec.mtu,
            peer_mac: spec.peer_mac,
            master: spec.master,
        })?;
        let op = || format!("creating veth {} (peer {})", spec.name, spec.peer_name);
        let (here, there) = (self.ns, self.target(cross));
        let mut world = self.world();
        let (mac, peer_mac) = (world.mac(), world.mac());
        world.spaces[here]
            .check_free(&spec.name)
            .map_err(|e| e.context(op()))?;
        world.spaces[there]
            .check_free(&spec.peer_name)
            .map_err(|e| e.context(op()))?;
        let netnsid = cross.then_some(0);
        if let Some(master) = spec.master
            && !world.spaces[here].links.contains_key(&master)
        {
            return Err(Error::from_errno(op(), libc::ENODEV));
        }
        let mut host = new_link(&spec.name, "veth", spec.mtu, mac);
        host.link_netnsid = netnsid;
        host.master = spec.master;
        let mut peer = new_link(
            &spec.peer_name,
            "veth",
            spec.mtu,
            spec.peer_mac.unwrap_or(peer_mac),
        );
        peer.link_netnsid = netnsid;
        let host_index = world.spaces[here].insert(host);
        let peer_index = world.spaces[there].insert(peer);
        if let Some(l) = world.spaces[here].links.get_mut(&host_index) {
            l.peer_index = Some(peer_index);
        }
        if let Some(l) = world.spaces[there].links.get_mut(&peer_index) {
            l.peer_index = Some(host_index);
        }
        Ok(())
    }

    fn ensure_bridge(&mut self, spec: &BridgeSpec) -> Result<Link> {
        self.record(Call::EnsureBridge(spec.clone()))?;
        let ns = self.ns;
        let mut world = self.world();
        let mac = world.mac();
        let no_vlans = world.no_bridge_vlans;
        let space = &mut world.spaces[ns];
        let index = match space.by_name(&spec.name) {
            Some(l) if l.is_bridge() => l.index,
            Some(_) => {
                return Err(Error::new(
                    "",
                    None,
                    format!("{:?} already exists but is not a bridge", spec.name),
                ));
            }
            // Filtering is only chosen at creation, as the real call does.
            None if spec.vlan_filtering && no_vlans => {
                return Err(Error::from_errno(
                    format!("could not add {:?}", spec.name),
                    libc::EOPNOTSUPP,
                ));
            }
            None => {
                let index = space.insert(new_link(&spec.name, "bridge", spec.mtu, mac));
                if spec.vlan_filtering {
                    space.filtering.insert(index);
                }
                if !no_vlans {
                    space.set_default_vlan(index);
                }
                index
            }
        };
        let link = space.get_mut(index)?;
        link.up = true;
        link.promisc |= spec.promisc;
        Ok(link.clone())
    }

    fn create_macvlan(&mut self, spec: &MacvlanSpec<'_>) -> Result<()> {
        let other = spec.ns.is_some();
        self.record(Call::CreateMacvlan {
            name: spec.name.clone(),
            parent: spec.parent,
            mode: spec.mode,
            mtu: spec.mtu,
            mac: spec.mac,
            bc_queue_len: spec.bc_queue_len,
            in_other_ns: other,
        })?;
        let op = || format!("creating macvlan {} on link {}", spec.name, spec.parent);
        self.check_parent(spec.parent)
            .map_err(|e| e.context(op()))?;
        let mut link = new_link(&spec.name, "macvlan", spec.mtu, [0; 6]);
        link.mac = spec.mac;
        link.peer_index = Some(spec.parent);
        let data = LinkData::Macvlan { mode: spec.mode };
        self.create_with_data(link, other, data)
            .map_err(|e| e.context(op()))
    }

    fn create_ipvlan(&mut self, spec: &IpvlanSpec<'_>) -> Result<()> {
        let other = spec.ns.is_some();
        self.record(Call::CreateIpvlan {
            name: spec.name.clone(),
            parent: spec.parent,
            mode: spec.mode,
            mtu: spec.mtu,
            in_other_ns: other,
        })?;
        let op = || format!("creating ipvlan {} on link {}", spec.name, spec.parent);
        self.check_parent(spec.parent)
            .map_err(|e| e.context(op()))?;
        let mut link = new_link(&spec.name, "ipvlan", spec.mtu, [0; 6]);
        link.peer_index = Some(spec.parent);
        let data = LinkData::Ipvlan { mode: spec.mode };
        self.create_with_data(link, other, data)
            .map_err(|e| e.context(op()))
    }

    fn create_vlan(&mut self, spec: &VlanSpec<'_>) -> Result<()> {
        let other = spec.ns.is_some();
        self.record(Call::CreateVlan {
            name: spec.name.clone(),
            parent: spec.parent,
            vlan_id: spec.vlan_id,
            mtu: spec.mtu,
            in_other_ns: other,
        })?;
        let op = || {
            format!(
                "creating vlan {} (id {}) on link {}",
                spec.name, spec.vlan_id, spec.parent
            )
        };
        self.check_parent(spec.parent)
            .map_err(|e| e.context(op()))?;
        let mut link = new_link(&spec.name, "vlan", spec.mtu, [0; 6]);
        link.peer_index = Some(spec.parent);
        let data = LinkData::Vlan { id: spec.vlan_id };
        self.create_with_data(link, other, data)
            .map_err(|e| e.context(op()))
    }

    fn create_dummy(&mut self, spec: &DummySpec<'_>) -> Result<()> {
        let other = spec.ns.is_some();
        self.record(Call::CreateDummy {
            name: spec.name.clone(),
            mtu: spec.mtu,
            mac: spec.mac,
            in_other_ns: other,
        })?;
        let mut link = new_link(&spec.name, "dummy", spec.mtu, [0; 6]);
        link.mac = spec.mac;
        self.create_plain(link, other)
            .map_err(|e| e.context(format!("creating dummy {}", spec.name)))
    }

    fn create_vrf(&mut self, spec: &VrfSpec<'_>) -> Result<()> {
        let other = spec.ns.is_some();
        self.record(Call::CreateVrf {
            name: spec.name.clone(),
            table: spec.table,
            in_other_ns: other,
        })?;
        // The kernel gives a VRF the largest MTU it allows (65575) and a random MAC.
        let mut link = new_link(&spec.name, "vrf", Some(65575), [0; 6]);
        link.mac = None;
        let data = LinkData::Vrf { table: spec.table };
        self.create_with_data(link, other, data)
            .map_err(|e| e.context(format!("creating VRF {}", spec.name)))
    }

    fn set_up(&mut self, index: u32) -> Result<()> {
        self.record(Call::SetUp(index))?;
        self.update(index, |l| {
            l.up = true;
            l.oper_up = true;
        })
    }

    fn set_down(&mut self, index: u32) -> Result<()> {
        self.record(Call::SetDown(index))?;
        self.update(index, |l| {
            l.up = false;
            l.oper_up = false;
        })
    }

    fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        self.record(Call::SetMaster(index, master))?;
        if !self.world().spaces[self.ns].links.contains_key(&master) {
            // do_set_master: an unknown master index is EINVAL, not ENODEV.
            return Err(errno(libc::EINVAL));
        }
        self.update(index, |l| l.master = Some(master))?;
        let ns = self.ns;
        let mut world = self.world();
        let no_vlans = world.no_bridge_vlans;
        let space = &mut world.spaces[ns];
        space.vlans.remove(&index);
        if !no_vlans && space.bridge_of(index).is_some() {
            space.set_default_vlan(index);
        }
        Ok(())
    }

    fn set_nomaster(&mut self, index: u32) -> Result<()> {
        self.record(Call::SetNomaster(index))?;
        self.update(index, |l| l.master = None)?;
        self.world().spaces[self.ns].vlans.remove(&index);
        Ok(())
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.record(Call::SetMtu(index, mtu))?;
        self.update(index, |l| l.mtu = mtu)
    }

    fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.record(Call::SetMac(index, mac))?;
        self.update(index, |l| l.mac = Some(mac))
    }

    fn set_promisc(&mut self, index: u32, on: bool) -> Result<()> {
        self.record(Call::SetPromisc(index, on))?;
        self.update(index, |l| l.promisc = on)
    }

    fn set_allmulti(&mut self, index: u32, on: bool) -> Result<()> {
        self.record(Call::SetAllmulti(index, on))?;
        self.update(index, |l| l.allmulti = on)
    }

    fn set_txqlen(&mut self, index: u32, txqlen: u32) -> Result<()> {
        self.record(Call::SetTxqlen(index, txqlen))?;
        self.update(index, |l| l.txqlen = txqlen)
    }

    fn set_ipv4_conf(&mut self, index: u32, conf: Ipv4Conf, value: u32) -> Result<()> {
        self.record(Call::SetIpv4Conf(index, conf, value))?;
        self.update(index, |_| {})
    }

    fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        self.record(Call::SetName(index, name.to_string()))?;
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        let link = space.links.get(&index).ok_or_else(Error::link_not_found)?;
        if link.name == name {
            return Ok(());
        }
        if link.up {
            // Kernels before 6.x rename only links that are down; the fake keeps the
            // stricter rule so callers work on both.
            return Err(errno(libc::EBUSY));
        }
        space.check_free(name)?;
        space.get_mut(index)?.name = name.to_string();
        Ok(())
    }

    fn set_alias(&mut self, index: u32, alias: &str) -> Result<()> {
        self.record(Call::SetAlias(index, alias.to_string()))?;
        self.update(index, |l| {
            l.alias = (!alias.is_empty()).then(|| alias.to_string())
        })
    }

    fn set_ns_fd(&mut self, index: u32, ns: BorrowedFd<'_>) -> Result<()> {
        self.record(Call::SetNsFd(index))?;
        let mut world = self.world();
        let (here, there) = (self.ns, world.space_of(ns, self.other));
        let name = world.spaces[here]
            .links
            .get(&index)
            .ok_or_else(Error::link_not_found)?
            .name
            .clone();
        world.spaces[there].check_free(&name)?;
        let data = world.spaces[here].data.get(&index).copied();
        let Some(mut link) = world.spaces[here].remove(index) else {
            return Err(Error::link_not_found());
        };
        // Moving flushes addresses and detaches from the master, and the link goes down.
        link.master = None;
        link.up = false;
        link.oper_up = false;
        // The kernel keeps the index when it is free in the target namespace.
        let target = &mut world.spaces[there];
        let new_index =
            if let std::collections::btree_map::Entry::Vacant(slot) = target.links.entry(index) {
                link.index = index;
                slot.insert(link.clone());
                target.next_index = target.next_index.max(index + 1);
                index
            } else {
                target.insert(link.clone())
            };
        if let Some(data) = data {
            target.data.insert(new_index, data);
        }
        // A veth peer now sees the moved end in another namespace, or in its own.
        if link.kind.as_deref() == Some("veth")
            && let Some(peer) = link.peer_index
        {
            let peer_space = if link.link_netnsid.is_some() {
                there
            } else {
                here
            };
            let netnsid = (peer_space != there).then_some(0);
            if let Some(p) = world.spaces[peer_space].links.get_mut(&peer) {
                p.peer_index = Some(new_index);
                p.link_netnsid = netnsid;
            }
            if let Some(moved) = world.spaces[there].links.get_mut(&new_index) {
                moved.link_netnsid = netnsid;
            }
        }
        Ok(())
    }

    fn set_bridge_port(&mut self, index: u32, spec: &BridgePortSpec) -> Result<()> {
        self.record(Call::SetBridgePort(index, spec.clone()))?;
        if spec.hairpin.is_none() && spec.isolated.is_none() {
            return Ok(());
        }
        let ns = self.ns;
        let mut world = self.world();
        let space = &mut world.spaces[ns];
        let link = space.links.get(&index).ok_or_else(Error::link_not_found)?;
        let is_port = link
            .master
            .and_then(|m| space.links.get(&m))
            .is_some_and(Link::is_bridge);
        if !is_port {
            return Err(errno(libc::EOPNOTSUPP));
        }
        let port = space.ports.entry(index).or_default();
        if spec.hairpin.is_some() {
            port.hairpin = spec.hairpin;
        }
        if spec.isolated.is_some() {
            port.isolated = spec.isolated;
        }
        Ok(())
    }

    fn bridge_vlan_add(&mut self, index: u32, vid: u16, pvid: bool, untagged: bool) -> Result<()> {
        self.record(Call::BridgeVlanAdd {
            index,
            vid,
            pvid,
            untagged,
        })?;
        let op = || format!("adding VLAN {vid} to bridge port {index}");
        let ns = self.ns;
        let mut world = self.world();
        let no_vlans = world.no_bridge_vlans;
        let space = &mut world.spaces[ns];
        check_vlan_port(space, index, vid, no_vlans).map_err(|e| e.context(op()))?;
        let entries = space.vlans.entry(index).or_default();
        if pvid {
            for other in entries.values_mut() {
                other.pvid = false;
            }
        }
        entries.insert(
            vid,
            BridgeVlan {
                vid,
                pvid,
                untagged,
            },
        );
        Ok(())
    }

    fn bridge_vlan_del(&mut self, index: u32, vid: u16) -> Result<()> {
        self.record(Call::BridgeVlanDel(index, vid))?;
        let op = || format!("removing VLAN {vid} from bridge port {index}");
        let ns = self.ns;
        let mut world = self.world();
        let space = &mut world.spaces[ns];
        if !space.links.contains_key(&index) {
            return Err(errno(libc::ENODEV).context(op()));
        }
        if space.bridge_of(index).is_none() {
            return Err(errno(libc::EOPNOTSUPP).context(op()));
        }
        // The kernel ignores the outcome of the delete itself (br_vlan_info): a missing
        // VLAN, or no VLAN support at all, is success.
        if let Some(v) = space.vlans.get_mut(&index) {
            v.remove(&vid);
        }
        Ok(())
    }

    fn bridge_vlans(&mut self, index: u32) -> Result<Vec<BridgeVlan>> {
        self.record(Call::BridgeVlans(index))?;
        Ok(self.port_vlans(index))
    }

    fn del_link(&mut self, index: u32) -> Result<()> {
        self.record(Call::DelLink(index))?;
        let (here, there) = (self.ns, self.other);
        let mut world = self.world();
        let link = world.spaces[here]
            .remove(index)
            .ok_or_else(|| errno(libc::ENODEV))?;
        // A veth takes its peer with it, wherever the peer is.
        if link.kind.as_deref() == Some("veth")
            && let Some(peer) = link.peer_index
        {
            let peer_space = if link.link_netnsid.is_some() {
                there
            } else {
                here
            };
            world.spaces[peer_space].remove(peer);
        }
        Ok(())
    }

    fn add_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        self.record(Call::AddAddr(index, addr))?;
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        if !space.links.contains_key(&index) {
            return Err(errno(libc::ENODEV));
        }
        if space
            .addrs
            .iter()
            .any(|a| a.index == index && same_addr(&a.address, &addr))
        {
            return Err(errno(libc::EEXIST));
        }
        space.addrs.push(Addr {
            index,
            address: addr,
            tentative: false,
            dad_failed: false,
            scope: scope::UNIVERSE,
            permanent: true,
        });
        Ok(())
    }

    fn replace_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        self.record(Call::ReplaceAddr(index, addr))?;
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        if !space.links.contains_key(&index) {
            return Err(errno(libc::ENODEV));
        }
        space
            .addrs
            .retain(|a| !(a.index == index && same_addr(&a.address, &addr)));
        space.addrs.push(Addr {
            index,
            address: addr,
            tentative: false,
            dad_failed: false,
            scope: scope::UNIVERSE,
            permanent: true,
        });
        Ok(())
    }

    fn del_addr(&mut self, index: u32, addr: IpNetwork) -> Result<()> {
        self.record(Call::DelAddr(index, addr))?;
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        let before = space.addrs.len();
        space
            .addrs
            .retain(|a| !(a.index == index && same_addr(&a.address, &addr)));
        if space.addrs.len() == before {
            Err(errno(libc::EADDRNOTAVAIL))
        } else {
            Ok(())
        }
    }

    fn addrs(&mut self, index: Option<u32>, family: Option<Family>) -> Result<Vec<Addr>> {
        self.record(Call::Addrs(index, family))?;
        Ok(self
            .addr_list()
            .into_iter()
            .filter(|a| index.is_none_or(|i| a.index == i))
            .filter(|a| family.is_none_or(|f| f.matches(&a.address)))
            .collect())
    }

    fn add_route(&mut self, route: &RouteSpec) -> Result<()> {
        self.record(Call::AddRoute(route.clone()))?;
        let stored = stored_route(route);
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        if stored.oif.is_some_and(|o| !space.links.contains_key(&o)) {
            return Err(errno(libc::ENODEV));
        }
        if space.routes.iter().any(|r| same_route_key(r, &stored)) {
            return Err(errno(libc::EEXIST));
        }
        space.routes.push(stored);
        Ok(())
    }

    fn replace_route(&mut self, route: &RouteSpec) -> Result<()> {
        self.record(Call::ReplaceRoute(route.clone()))?;
        let stored = stored_route(route);
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        if stored.oif.is_some_and(|o| !space.links.contains_key(&o)) {
            return Err(errno(libc::ENODEV));
        }
        space.routes.retain(|r| !same_route_key(r, &stored));
        space.routes.push(stored);
        Ok(())
    }

    fn del_route(&mut self, route: &RouteSpec) -> Result<()> {
        self.record(Call::DelRoute(route.clone()))?;
        let mut filter = stored_route(route);
        filter.scope = route.scope;
        let mut world = self.world();
        let space = &mut world.spaces[self.ns];
        match space.routes.iter().position(|r| delete_matches(&filter, r)) {
            Some(i) => {
                space.routes.remove(i);
                Ok(())
            }
            None => Err(errno(libc::ESRCH)),
        }
    }

    fn routes(&mut self, family: Option<Family>, table: Option<u32>) -> Result<Vec<RouteSpec>> {
        self.record(Call::Routes(family, table))?;
        let table = table.unwrap_or(MAIN_TABLE);
        Ok(self
            .route_list()
            .into_iter()
            .filter(|r| family.is_none_or(|f| f.matches(&r.dst)))
            .filter(|r| table == 0 || r.table == Some(table))
            .collect())
    }

    fn add_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        self.record(Call::AddRule(rule.clone()))?;
        let mut world = self.world();
        let rules = &mut world.spaces[self.ns].rules;
        if rules.contains(rule) {
            return Err(errno(libc::EEXIST));
        }
        rules.push(rule.clone());
        Ok(())
    }

    fn del_rule(&mut self, rule: &RuleSpec) -> Result<()> {
        self.record(Call::DelRule(rule.clone()))?;
        let mut world = self.world();
        let rules = &mut world.spaces[self.ns].rules;
        let found = rules.iter().position(|r| {
            r.family == rule.family
                && r.table == rule.table
                && (rule.src.is_none() || r.src == rule.src)
                && (rule.priority.is_none() || r.priority == rule.priority)
        });
        match found {
            Some(i) => {
                rules.remove(i);
                Ok(())
            }
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn rules(&mut self, family: Option<Family>) -> Result<Vec<RuleSpec>> {
        self.record(Call::Rules(family))?;
        Ok(self
            .rule_list()
            .into_iter()
            .filter(|r| family.is_none_or(|f| r.family == f))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test network")
    }

    fn veth<'a>(name: &str, peer: &str, ns: Option<BorrowedFd<'a>>) -> VethSpec<'a> {
        VethSpec {
            name: name.into(),
            peer_name: peer.into(),
            peer_ns: ns,
            mtu: Some(1400),
            peer_mac: None,
            master: None,
        }
    }

    #[test]
    fn veth_peer_appears_in_the_container_handle() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let fd = std::fs::File::open("/dev/null").expect("any fd");
        host.create_veth(&veth("veth1", "eth0", Some(fd.as_fd())))
            .expect("create");
        let h = host.get_link(&"veth1".into()).expect("host end");
        let c = ctr.get_link(&"eth0".into()).expect("container end");
        assert_eq!(h.peer_index, Some(c.index));
        assert_eq!(c.peer_index, Some(h.index));
        assert_eq!((h.mtu, c.mtu), (1400, 1400));
        assert!(
            host.get_link(&"eth0".into())
                .expect_err("not on host")
                .is_not_found()
        );
        assert_eq!(
            host.calls()[0],
            Call::CreateVeth {
                name: "veth1".into(),
                peer_name: "eth0".into(),
                peer_in_other_ns: true,
                mtu: Some(1400),
                peer_mac: None,
                master: None
            }
        );
        // Deleting the host end removes the peer too.
        host.del_link(h.index).expect("delete");
        assert!(
            ctr.get_link(&"eth0".into())
                .expect_err("gone")
                .is_not_found()
        );
        assert!(host.del_link(h.index).expect_err("again").is_not_found());
    }

    #[test]
    fn moving_a_veth_end_keeps_the_pair_consistent() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.create_veth(&veth("h0", "c0", None)).expect("create");
        let (h, c) = (
            host.get_link(&"h0".into()).expect("h0"),
            host.get_link(&"c0".into()).expect("c0"),
        );
        let fd = std::fs::File::open("/dev/null").expect("any fd");
        host.set_ns_fd(c.index, fd.as_fd()).expect("move");
        let moved = ctr.get_link(&"c0".into()).expect("moved");
        assert_eq!(moved.index, c.index, "index kept when free");
        assert_eq!(
            (moved.peer_index, moved.link_netnsid),
            (Some(h.index), Some(0))
        );
        let h = host.get_link(&"h0".into()).expect("h0");
        assert_eq!((h.peer_index, h.link_netnsid), (Some(c.index), Some(0)));
        host.del_link(h.index).expect("delete");
        assert!(
            ctr.link_list().iter().all(|l| l.name != "c0"),
            "peer removed with its pair"
        );
    }

    #[test]
    fn clashing_names_are_eexist() {
        let mut nl = FakeNetlink::new();
        nl.create_veth(&veth("a", "b", None)).expect("create");
        let e = nl.create_veth(&veth("a", "c", None)).expect_err("clash");
        assert!(e.is_exists());
        assert_eq!(
            e.to_string(),
            "creating veth a (peer c): File exists (os error 17)"
        );
        assert!(
            nl.create_veth(&veth("c", "b", None))
                .expect_err("peer clash")
                .is_exists()
        );
    }

    #[test]
    fn injected_errno_fails_only_the_next_call() {
        let mut nl = FakeNetlink::new();
        nl.fail_next(Op::SetUp, libc::EBUSY);
        let e = nl.set_up(1).expect_err("injected");
        assert_eq!(e.errno(), Some(libc::EBUSY));
        nl.set_up(1).expect("second call works");
        assert_eq!(nl.calls(), &[Call::SetUp(1), Call::SetUp(1)]);
        assert!(nl.get_link(&LinkRef::Index(1)).expect("lo").up);
    }

    #[test]
    fn ensure_bridge_reuses_a_bridge_and_refuses_other_kinds() {
        let mut nl = FakeNetlink::new();
        let spec = BridgeSpec {
            name: "cni0".into(),
            mtu: None,
            vlan_filtering: false,
            promisc: false,
        };
        let a = nl.ensure_bridge(&spec).expect("create");
        let b = nl.ensure_bridge(&spec).expect("reuse");
        assert_eq!(a.index, b.index);
        assert!(b.up && b.is_bridge());
        nl.seed_link("eth9", None);
        let spec = BridgeSpec {
            name: "eth9".into(),
            ..spec
        };
        let e = nl.ensure_bridge(&spec).expect_err("not a bridge");
        assert_eq!(e.to_string(), "\"eth9\" already exists but is not a bridge");
        assert!(!e.is_exists());
    }

    #[test]
    fn addresses_follow_kernel_rules() {
        let mut nl = FakeNetlink::new();
        nl.add_addr(1, net("10.0.0.1/24")).expect("add");
        assert!(
            nl.add_addr(1, net("10.0.0.1/24"))
                .expect_err("dup")
                .is_exists()
        );
        nl.add_addr(1, net("fd00::1/64")).expect("v6");
        assert!(
            nl.add_addr(1, net("fd00::1/80"))
                .expect_err("v6 dup")
                .is_exists()
        );
        assert!(
            nl.add_addr(42, net("10.0.0.2/24"))
                .expect_err("no link")
                .is_not_found()
        );
        assert_eq!(nl.addrs(Some(1), Some(Family::V6)).expect("list").len(), 1);
        nl.del_addr(1, net("10.0.0.1/24")).expect("del");
        assert!(
            nl.del_addr(1, net("10.0.0.1/24"))
                .expect_err("gone")
                .is_not_found()
        );
    }

    #[test]
    fn routes_follow_kernel_rules() {
        let mut nl = FakeNetlink::new();
        let mut r = RouteSpec::new(net("10.1.2.3/24"));
        r.oif = Some(1);
        nl.add_route(&r).expect("add");
        assert!(nl.add_route(&r).expect_err("dup").is_exists());
        let listed = nl.routes(Some(Family::V4), None).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].dst, net("10.1.2.0/24"));
        assert!(nl.routes(Some(Family::V6), None).expect("v6").is_empty());
        nl.del_route(&RouteSpec::new(net("10.1.2.0/24")))
            .expect("del");
        assert!(nl.del_route(&r).expect_err("gone").is_not_found());
    }

    #[test]
    fn set_name_needs_the_link_down() {
        let mut nl = FakeNetlink::new();
        nl.create_veth(&veth("a", "b", None)).expect("create");
        let a = nl.get_link(&"a".into()).expect("a");
        nl.set_up(a.index).expect("up");
        assert_eq!(
            nl.set_name(a.index, "z").expect_err("busy").errno(),
            Some(libc::EBUSY)
        );
        nl.set_down(a.index).expect("down");
        assert!(nl.set_name(a.index, "b").expect_err("taken").is_exists());
        nl.set_name(a.index, "z").expect("rename");
        assert_eq!(nl.get_link(&a.index.into()).expect("z").name, "z");
    }

    #[test]
    fn bridge_port_flags_need_a_bridge_master() {
        let mut nl = FakeNetlink::new();
        let br = nl
            .ensure_bridge(&BridgeSpec {
                name: "br0".into(),
                mtu: None,
                vlan_filtering: false,
                promisc: false,
            })
            .expect("bridge");
        nl.create_veth(&veth("p0", "p1", None)).expect("veth");
        let p0 = nl.get_link(&"p0".into()).expect("p0").index;
        let spec = BridgePortSpec {
            hairpin: Some(true),
            isolated: None,
        };
        assert_eq!(
            nl.set_bridge_port(p0, &spec)
                .expect_err("no master")
                .errno(),
            Some(libc::EOPNOTSUPP)
        );
        nl.set_master(p0, br.index).expect("master");
        nl.set_bridge_port(p0, &spec).expect("port flags");
        assert_eq!(nl.bridge_port(p0), Some(spec));
    }

    fn vlan(vid: u16, pvid: bool, untagged: bool) -> BridgeVlan {
        BridgeVlan {
            vid,
            pvid,
            untagged,
        }
    }

    /// A bridge `br0` (filtering as asked) with veth `p0` attached; returns their indexes.
    fn bridge_with_port(nl: &mut FakeNetlink, vlan_filtering: bool) -> (u32, u32) {
        let br = nl
            .ensure_bridge(&BridgeSpec {
                name: "br0".into(),
                mtu: None,
                vlan_filtering,
                promisc: false,
            })
            .expect("bridge");
        nl.create_veth(&veth("p0", "p1", None)).expect("veth");
        let p0 = nl.get_link(&"p0".into()).expect("p0").index;
        nl.set_master(p0, br.index).expect("master");
        (br.index, p0)
    }

    #[test]
    fn bridge_port_vlans_follow_kernel_rules() {
        let mut nl = FakeNetlink::new();
        let (br, p0) = bridge_with_port(&mut nl, true);
        assert!(nl.vlan_filtering(br));
        // A new port starts in the default VLAN, as the bridge itself does.
        assert_eq!(nl.bridge_vlans(p0).expect("list"), [vlan(1, true, true)]);
        assert_eq!(nl.port_vlans(br), [vlan(1, true, true)]);
        // A new PVID takes the flag from the old one.
        nl.bridge_vlan_add(p0, 100, true, true)
            .expect("access vlan");
        assert_eq!(
            nl.port_vlans(p0),
            [vlan(1, false, true), vlan(100, true, true)]
        );
        nl.bridge_vlan_del(p0, 1).expect("default vlan");
        nl.bridge_vlan_add(p0, 200, false, false).expect("tagged");
        // Adding an existing entry again replaces its flags.
        nl.bridge_vlan_add(p0, 100, false, false).expect("retag");
        assert_eq!(
            nl.port_vlans(p0),
            [vlan(100, false, false), vlan(200, false, false)]
        );
        nl.bridge_vlan_del(p0, 1)
            .expect("gone already: still success");
        assert_eq!(
            nl.bridge_vlan_add(p0, 4095, false, false)
                .expect_err("out of range")
                .errno(),
            Some(libc::EINVAL)
        );
        // Only bridge ports have VLANs to change.
        let p1 = nl.get_link(&"p1".into()).expect("p1").index;
        assert_eq!(
            nl.bridge_vlan_add(p1, 100, true, true)
                .expect_err("not a port")
                .errno(),
            Some(libc::EOPNOTSUPP)
        );
        assert!(
            nl.bridge_vlan_add(99, 100, true, true)
                .expect_err("no link")
                .is_not_found()
        );
        assert!(nl.calls().contains(&Call::BridgeVlanAdd {
            index: p0,
            vid: 100,
            pvid: true,
            untagged: true
        }));
        assert!(nl.calls().contains(&Call::BridgeVlanDel(p0, 1)));
        // Leaving the bridge flushes the port's VLANs.
        nl.set_nomaster(p0).expect("nomaster");
        assert!(nl.port_vlans(p0).is_empty());
    }

    #[test]
    fn kernel_without_bridge_vlan_filtering() {
        let mut nl = FakeNetlink::new();
        nl.without_bridge_vlan_filtering();
        let spec = BridgeSpec {
            name: "br0".into(),
            mtu: None,
            vlan_filtering: true,
            promisc: false,
        };
        let e = nl.ensure_bridge(&spec).expect_err("unsupported");
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP));
        let os = std::io::Error::from_raw_os_error(libc::EOPNOTSUPP);
        assert_eq!(e.to_string(), format!("could not add \"br0\": {os}"));
        assert!(nl.link_list().iter().all(|l| l.name != "br0"), "no bridge");
        // A bridge without filtering is fine; its ports have no VLANs to change.
        let (_, p0) = bridge_with_port(&mut nl, false);
        assert!(nl.bridge_vlans(p0).expect("list").is_empty());
        assert_eq!(
            nl.bridge_vlan_add(p0, 100, true, true)
                .expect_err("unsupported")
                .errno(),
            Some(libc::EOPNOTSUPP)
        );
        // The kernel ignores what the delete itself returns.
        nl.bridge_vlan_del(p0, 1).expect("delete is ignored");
    }

    #[test]
    fn filtering_is_chosen_only_when_the_bridge_is_created() {
        let mut nl = FakeNetlink::new();
        let (br, _) = bridge_with_port(&mut nl, false);
        let again = nl
            .ensure_bridge(&BridgeSpec {
                name: "br0".into(),
                mtu: None,
                vlan_filtering: true,
                promisc: false,
            })
            .expect("existing bridge");
        assert_eq!(again.index, br);
        assert!(!nl.vlan_filtering(br));
    }

    #[test]
    fn link_data_follows_ipvlan_and_vlan_links_into_the_other_namespace() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let parent = host.seed_link("eth0", None).index;
        let ns = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        let fd = std::os::fd::AsFd::as_fd(&ns);
        host.create_ipvlan(&IpvlanSpec {
            name: "ipv0".into(),
            parent,
            mode: IpvlanMode::L3s,
            mtu: None,
            ns: Some(fd),
        })
        .expect("ipvlan");
        host.create_vlan(&VlanSpec {
            name: "vl0".into(),
            parent,
            vlan_id: 7,
            mtu: None,
            ns: None,
        })
        .expect("vlan");
        let ipv = ctr.get_link(&"ipv0".into()).expect("in the container");
        assert_eq!(
            ctr.link_data(ipv.index).expect("data"),
            LinkData::Ipvlan {
                mode: IpvlanMode::L3s
            }
        );
        let vl = host.get_link(&"vl0".into()).expect("on the host");
        assert_eq!(
            host.link_data(vl.index).expect("data"),
            LinkData::Vlan { id: 7 }
        );
        host.set_ns_fd(vl.index, fd).expect("move");
        let moved = ctr.get_link(&"vl0".into()).expect("moved");
        assert_eq!(
            ctr.link_data(moved.index).expect("data"),
            LinkData::Vlan { id: 7 }
        );
        assert_eq!(host.link_data(parent).expect("data"), LinkData::Other);
        assert!(ctr.link_data(999).expect_err("no link").is_not_found());
    }

    #[test]
    fn wait_dad_reports_failure_and_timeout() {
        let mut nl = FakeNetlink::new();
        let a = net("fd00::7/64");
        nl.add_addr(1, a).expect("add");
        crate::wait_dad(&mut nl, 1, std::time::Duration::from_millis(50)).expect("settled");
        nl.set_addr_state(1, a, true, false);
        let e =
            crate::wait_dad(&mut nl, 1, std::time::Duration::from_millis(30)).expect_err("timeout");
        assert_eq!(e.errno(), Some(libc::ETIMEDOUT));
        nl.set_addr_state(1, a, false, true);
        let e =
            crate::wait_dad(&mut nl, 1, std::time::Duration::from_secs(1)).expect_err("dadfailed");
        assert!(e.to_string().contains("DADFAILED"), "{e}");
    }

    #[test]
    fn allmulti_and_txqlen_are_recorded_and_modelled() {
        let mut nl = FakeNetlink::new();
        let l = nl.seed_link("eth0", Some("veth"));
        assert!(!l.allmulti);
        assert_eq!(l.txqlen, DEFAULT_TXQLEN);
        nl.set_allmulti(l.index, true).expect("allmulti");
        nl.set_txqlen(l.index, 7).expect("txqlen");
        let got = nl.get_link(&LinkRef::Index(l.index)).expect("link");
        assert!(got.allmulti);
        assert_eq!(got.txqlen, 7);
        assert!(nl.calls().contains(&Call::SetAllmulti(l.index, true)));
        assert!(nl.calls().contains(&Call::SetTxqlen(l.index, 7)));
        nl.fail_next(Op::SetTxqlen, libc::EINVAL);
        assert!(nl.set_txqlen(l.index, 8).is_err());
    }
}
