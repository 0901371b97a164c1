//! The sbr plugin (reference `plugins/meta/sbr`): source-based routing for the container
//! interface CNI_IFNAME. Traffic leaving the pod from one of that interface's addresses is
//! routed by a table of its own, so a pod with several interfaces answers each network
//! through that network's gateway.
//!
//! Keys (all optional):
//! - `table` (integer ≥ 1): the table the rules point to; only the rules are added, the
//!   table's routes come from elsewhere (IPAM routes with a `table`, as the reference).
//!   Without it each address gets its own table, the first free from 100 up (no rule and
//!   no route uses it): the default route through the address's gateway goes there, and
//!   the interface's main-table routes that belong to the address (source or gateway in
//!   its subnet, or neither set) are copied there; then they leave the main table.
//! - `gateways` (up to one IPv4 and one IPv6 address): the default route of each table
//!   goes through the listed gateway of the address's family instead of the `gateway` of
//!   `prevResult`.
//! - `addSourceHints` (bool): the subnet routes stay in the main table with the address as
//!   source hint (`src`), and only the interface's other routes leave the main table, so
//!   destination-based routing keeps working beside the source-based tables.
//!
//! - ADD: one rule `from <ip>/32` (`/128`) `lookup <table>` per address of CNI_IFNAME in
//!   `prevResult` (addresses without an interface index count, as in the reference); a
//!   failure undoes the rules and routes this ADD made. `prevResult` is printed unchanged.
//! - DEL: removes the rules whose source is an address of the interface (from the kernel,
//!   and from `prevResult` when the link is already gone), only those of `table` when it
//!   is configured. Without the netns there is
//!   nothing to remove; a missing `prevResult` is fine.
//! - CHECK: every address of the interface in `prevResult` still has its rule (the
//!   reference checks nothing).
//!
//! Like the reference, ADD and DEL hold an exclusive `flock` on the netns file so two sbr
//! runs in one pod never pick the same table.

use std::fs::File;
use std::net::IpAddr;

use ipnetwork::IpNetwork;
use nix::fcntl::{Flock, FlockArg};
use rcni_netlink::{LinkRef, Netlink, RouteSpec, RuleSpec};
use rcni_netns::NetNs;
use rcni_skel::{Plugin, Request};
use rcni_types::{Error, IpConfig, Result, Success};
use serde::Deserialize;

/// The first table picked when `table` is not configured (the reference's `firstTableID`).
pub const FIRST_TABLE: u32 = 100;

/// The plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sbr;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    table: Option<i64>,
    #[serde(default)]
    gateways: Option<Vec<String>>,
    #[serde(default)]
    add_source_hints: Option<bool>,
}

/// The validated keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    pub table: Option<u32>,
    pub gateways: Vec<IpAddr>,
    pub add_source_hints: bool,
}

impl Conf {
    /// Parses and validates the keys; nothing is touched before this succeeds.
    ///
    /// # Errors
    /// A key of the wrong type or out of range, named in the message (code 7).
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let table = match raw.table {
            None => None,
            Some(t) => match u32::try_from(t) {
                Ok(t) if t >= 1 => Some(t),
                _ => {
                    return Err(Error::invalid_config(format!(
                        "sbr: \"table\" must be between 1 and {}, got {t}",
                        u32::MAX
                    )));
                }
            },
        };
        let mut gateways = Vec::new();
        let listed = raw.gateways.unwrap_or_default();
        if listed.len() > 2 {
            return Err(Error::invalid_config(
                "sbr: \"gateways\" cannot contain more than 2 entries (one IPv4, one IPv6)",
            ));
        }
        for g in listed {
            let ip: IpAddr = g.parse().map_err(|_| {
                Error::invalid_config(format!("sbr: \"gateways\": {g:?} is not an IP address"))
            })?;
            if gateways
                .iter()
                .any(|x: &IpAddr| x.is_ipv4() == ip.is_ipv4())
            {
                return Err(Error::invalid_config(format!(
                    "sbr: \"gateways\": more than one {} gateway",
                    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                )));
            }
            gateways.push(ip);
        }
        Ok(Conf {
            table,
            gateways,
            add_source_hints: raw.add_source_hints.unwrap_or(false),
        })
    }

    fn gateway_for(&self, ip: &IpConfig) -> Option<IpAddr> {
        let v4 = ip.address.is_ipv4();
        self.gateways
            .iter()
            .copied()
            .find(|g| g.is_ipv4() == v4)
            .or(ip.gateway)
    }
}

/// The addresses of `prev` that belong to `ifname` (the reference's `getIPCfgs`): those
/// whose interface index names it, and those without an index.
///
/// # Errors
/// `prev` has no address at all.
pub fn interface_ips(prev: &Success, ifname: &str) -> Result<Vec<IpConfig>> {
    if prev.ips.is_empty() {
        return Err(Error::internal(format!(
            "No IP addresses supplied on interface: {ifname}"
        )));
    }
    Ok(prev
        .ips
        .iter()
        .filter(|ip| match ip.interface {
            None => true,
            Some(i) => prev
                .interfaces
                .get(i)
                .is_none_or(|iface| iface.name == ifname),
        })
        .cloned()
        .collect())
}

/// The address alone, as a host prefix.
fn host(ip: IpAddr) -> IpNetwork {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    IpNetwork::new(ip, len).expect("full-length prefix")
}

fn nl_err(what: &str, e: &rcni_netlink::Error) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// The first table from [`FIRST_TABLE`] that no rule points to and no route is in.
///
/// # Errors
/// Listing rules or routes failed.
pub fn free_table(nl: &mut dyn Netlink) -> Result<u32> {
    let rules = nl
        .rules(None)
        .map_err(|e| nl_err("Failed to list all rules", &e))?;
    let routes = nl
        .routes(None, Some(0))
        .map_err(|e| nl_err("Failed to list all routes", &e))?;
    let mut table = FIRST_TABLE;
    while rules.iter().any(|r| r.table == table) || routes.iter().any(|r| r.table == Some(table)) {
        table += 1;
    }
    Ok(table)
}

/// What an ADD did, to undo on failure.
#[derive(Debug, Default)]
struct Done {
    rules: Vec<RuleSpec>,
    /// Routes added to the address tables, and main-table routes deleted (to put back).
    added: Vec<RouteSpec>,
    moved: Vec<(RouteSpec, RouteSpec)>,
}

impl Done {
    fn undo(self, nl: &mut dyn Netlink) {
        for (orig, _) in self.moved.into_iter().rev() {
            let _ = nl.replace_route(&orig);
        }
        for r in self.added.into_iter().rev() {
            let _ = nl.del_route(&r);
        }
        for r in self.rules.into_iter().rev() {
            let _ = nl.del_rule(&r);
        }
    }
}

/// ADD's kernel work in the container (the reference's `doRoutes` and
/// `doRoutesWithTable`). Returns the first table used.
///
/// # Errors
/// The link is missing, or a rule or route could not be added; what was done is undone.
pub fn setup(nl: &mut dyn Netlink, ifname: &str, ips: &[IpConfig], conf: &Conf) -> Result<u32> {
    let link = nl
        .get_link(&LinkRef::from(ifname))
        .map_err(|e| Error::internal(format!("Cannot find network interface {ifname}: {e}")))?;
    let mut done = Done::default();
    match setup_steps(nl, link.index, ips, conf, &mut done) {
        Ok(table) => Ok(table),
        Err(e) => {
            done.undo(nl);
            Err(e)
        }
    }
}

fn add_rule(nl: &mut dyn Netlink, ip: IpAddr, table: u32, done: &mut Done) -> Result<()> {
    let rule = RuleSpec::from_source(host(ip), table);
    match nl.add_rule(&rule) {
        Ok(()) => {
            done.rules.push(rule);
            Ok(())
        }
        Err(e) if e.is_exists() => Ok(()),
        Err(e) => Err(nl_err("Failed to add rule", &e)),
    }
}

fn setup_steps(
    nl: &mut dyn Netlink,
    index: u32,
    ips: &[IpConfig],
    conf: &Conf,
    done: &mut Done,
) -> Result<u32> {
    if let Some(table) = conf.table {
        // A configured table: only the rules, its routes come from elsewhere.
        for ip in ips {
            add_rule(nl, ip.address.ip(), table, done)?;
        }
        return Ok(table);
    }
    let rules = nl
        .rules(None)
        .map_err(|e| nl_err("Failed to list all rules", &e))?;
    let all_routes = nl
        .routes(None, Some(0))
        .map_err(|e| nl_err("Failed to list all routes", &e))?;
    let used = |t: u32| {
        rules.iter().any(|r| r.table == t) || all_routes.iter().any(|r| r.table == Some(t))
    };
    let mut next = FIRST_TABLE;
    let mut free = || {
        while used(next) {
            next += 1;
        }
        next += 1;
        next - 1
    };
    // The interface's routes in the main table.
    let link_routes: Vec<RouteSpec> = nl
        .routes(None, None)
        .map_err(|e| nl_err("Unable to list routes", &e))?
        .into_iter()
        .filter(|r| r.oif == Some(index))
        .collect();
    let mut first = None;
    // One table per address, as the reference (since v1.0.0).
    for ip in ips {
        let table = free();
        first.get_or_insert(table);
        add_rule(nl, ip.address.ip(), table, done)?;
        if let Some(gw) = conf.gateway_for(ip) {
            let dst = if gw.is_ipv4() {
                "0.0.0.0/0".parse()
            } else {
                "::/0".parse()
            }
            .expect("default route");
            let mut route = RouteSpec::new(dst);
            route.gw = Some(gw);
            route.oif = Some(index);
            route.table = Some(table);
            match nl.add_route(&route) {
                Ok(()) => done.added.push(route),
                Err(e) if e.is_exists() => {}
                Err(e) => {
                    return Err(Error::internal(format!(
                        "Failed to add default route to {gw}: {e}"
                    )));
                }
            }
        }
        // Copy the interface's routes that belong to this address (its source or gateway
        // inside the address's subnet, or neither set) into its table.
        for r in &link_routes {
            let mine = r.src.is_some_and(|a| ip.address.contains(a))
                || r.gw.is_some_and(|a| ip.address.contains(a))
                || (r.src.is_none() && r.gw.is_none());
            if !mine {
                continue;
            }
            let mut copy = r.clone();
            copy.table = Some(table);
            nl.replace_route(&copy)
                .map_err(|e| nl_err("Failed to readd route", &e))?;
            done.added.push(copy);
        }
    }
    if conf.add_source_hints {
        // Subnet routes stay in main with the address as source hint; the other routes of
        // the interface leave main.
        for ip in ips {
            let mut route = RouteSpec::new(
                IpNetwork::new(ip.address.network(), ip.address.prefix()).unwrap_or(ip.address),
            );
            route.oif = Some(index);
            route.src = Some(ip.address.ip());
            route.scope = Some(rcni_netlink::scope::LINK);
            // As the reference: a failure here is only a warning.
            let _ = nl.replace_route(&route);
        }
        for r in link_routes
            .iter()
            .filter(|r| r.scope != Some(rcni_netlink::scope::LINK))
        {
            if nl.del_route(r).is_ok() {
                done.moved.push((r.clone(), r.clone()));
            }
        }
    } else {
        for r in &link_routes {
            nl.del_route(r)
                .map_err(|e| nl_err("Failed to delete route", &e))?;
            done.moved.push((r.clone(), r.clone()));
        }
    }
    Ok(first.unwrap_or(FIRST_TABLE))
}

/// DEL's kernel work (the reference's `tidyRules`): removes every rule whose source is one
/// of `addrs`, carrying on past failures and returning the last.
///
/// # Errors
/// Listing rules failed, or a rule could not be deleted.
pub fn tidy_rules(nl: &mut dyn Netlink, addrs: &[IpAddr], table: Option<u32>) -> Result<()> {
    let rules = nl
        .rules(None)
        .map_err(|e| nl_err("Failed to list all rules to tidy", &e))?;
    let mut last = Ok(());
    for rule in rules {
        let Some(src) = rule.src else { continue };
        if !addrs.contains(&src.ip()) || table.is_some_and(|t| rule.table != t) {
            continue;
        }
        match nl.del_rule(&rule) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => last = Err(nl_err("Failed to delete rule", &e)),
        }
    }
    last
}

/// Holds `flock(LOCK_EX)` on the netns file while alive (the reference's filemutex).
fn lock_netns(ns: &NetNs) -> Result<Flock<File>> {
    let path = ns.path();
    let file = File::open(path)
        .map_err(|e| Error::internal(format!("opening {}: {e}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::internal(format!("locking {}: {e}", path.display())))
}

impl Plugin for Sbr {
    fn name(&self) -> &'static str {
        "sbr"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("This plugin must be called as chained plugin"))?;
        let ips = interface_ips(&prev, &req.ifname)?;
        let ns = req.open_netns()?;
        let _lock = lock_netns(&ns)?;
        let mut nl = rcni_ipam::container_netlink(&ns)?;
        setup(&mut nl, &req.ifname, &ips, &conf)?;
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let Some(ns) = req.open_netns_if_exists()? else {
            return Ok(());
        };
        let _lock = lock_netns(&ns)?;
        let mut nl = rcni_ipam::container_netlink(&ns)?;
        let mut addrs: Vec<IpAddr> = Vec::new();
        // prevResult may be missing or unreadable: the kernel's addresses then decide.
        if let Ok(Some(prev)) = req.prev_result()
            && let Ok(ips) = interface_ips(&prev, &req.ifname)
        {
            addrs.extend(ips.iter().map(|ip| ip.address.ip()));
        }
        match nl.get_link(&LinkRef::from(req.ifname.as_str())) {
            Ok(link) => {
                let found = nl
                    .addrs(Some(link.index), None)
                    .map_err(|e| nl_err("Failed to list all addrs", &e))?;
                addrs.extend(found.iter().map(|a| a.address.ip()));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(nl_err(&format!("Failed to get link {}", req.ifname), &e)),
        }
        if addrs.is_empty() {
            return Ok(());
        }
        tidy_rules(&mut nl, &addrs, conf.table)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let Some(prev) = req.prev_result()? else {
            return Err(Error::internal(
                "This plugin must be called as chained plugin",
            ));
        };
        let ips = interface_ips(&prev, &req.ifname)?;
        let ns = req.open_netns()?;
        let mut nl = rcni_ipam::container_netlink(&ns)?;
        check_rules(&mut nl, &ips, &conf)
    }
}

/// CHECK: every address has a rule `from <ip>` (to the configured table when set).
///
/// # Errors
/// A rule is missing.
pub fn check_rules(nl: &mut dyn Netlink, ips: &[IpConfig], conf: &Conf) -> Result<()> {
    let rules = nl
        .rules(None)
        .map_err(|e| nl_err("Failed to list all rules", &e))?;
    for ip in ips {
        let src = host(ip.address.ip());
        let found = rules
            .iter()
            .any(|r| r.src == Some(src) && conf.table.is_none_or(|t| r.table == t));
        if !found {
            return Err(Error::internal(format!(
                "sbr: no source-based routing rule from {src}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
