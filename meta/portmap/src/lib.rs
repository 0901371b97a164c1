//! The portmap plugin (reference `plugins/meta/portmap`): forwards host ports, given by the
//! runtime in the `portMappings` capability, to the container addresses of `prevResult`,
//! with the iptables or nftables backend of `rcni_firewall`. A chained plugin: it prints
//! `prevResult` unchanged.
//!
//! Processes per call (iptables backend, one mapping, IPv4 only): ADD 1 (`iptables-restore`;
//! 3 on the host's first ADD), DEL none where iptables-nft holds the rules (the container's
//! chain and the jump to it are deleted over nf_tables netlink, [`rcni_firewall::nf::rules`]; with
//! iptables-legacy, 1 `iptables-restore`), CHECK 1; none at all without mappings. A family
//! with no container address is never touched. nftables backend: ADD 1 `nft -f` per
//! family (2 on the host's first), DEL none (the rules are found and deleted over nf_tables
//! netlink). Conntrack entries are deleted over ctnetlink and `route_localnet` is set
//! through netlink and `/proc`, without processes. DEL's netfilter sockets are released
//! after the plugin exits ([`rcni_firewall::nf::linger`]).

mod config;
mod conntrack;

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rcni_firewall::nf::linger;
use rcni_firewall::nf::rules::{self as nftrules, TableFamily};
use rcni_firewall::{Backend, ErrorKind, PortmapSpec, Protocol, names};
use rcni_netlink::{Family, LinkRef, Netlink, RealNetlink};
use rcni_skel::{Errors, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::{Conf, container_addresses};

pub struct Portmap;

/// A firewall failure as a CNI error: bad input is code 7, the rest 999.
fn cni_error(e: &rcni_firewall::Error) -> Error {
    match e.kind() {
        ErrorKind::InvalidConfig => Error::invalid_config(e.to_string()),
        _ => Error::internal(e.to_string()),
    }
}

impl Plugin for Portmap {
    fn name(&self) -> &'static str {
        "portmap"
    }

    /// 1. rules for every family with a container address (undone if a later family
    ///    fails); 2. stale UDP conntrack entries of the mapped ports deleted (failures are
    ///    only informative, as in the reference); 3. with `snat` and IPv4, `route_localnet`
    ///    on the host interface routing to the container, so 127.0.0.1 can be DNATed to it.
    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("must be called as chained plugin"))?;
        if conf.spec.mappings.is_empty() {
            return Ok(prev);
        }
        let spec = conf.spec_for(Some(&prev), &req.ifname);
        let mapper = rcni_firewall::portmapper(conf.backend);
        // A failed ADD leaves nothing behind: an IPv6 failure undoes the IPv4 rules too.
        let added = mapper
            .add(&spec)
            .map_err(|e| cni_error(&e))
            .and_then(|()| after_add(&spec));
        linger::hand_off();
        if let Err(e) = added {
            let _ = mapper.del(&spec);
            return Err(e);
        }
        Ok(prev)
    }

    /// Removes the container's rules of every family it had an address in (both when
    /// `prevResult` is missing: they are found by chain name and comment), then the UDP
    /// conntrack entries its mappings left. Needs the port mappings, as the reference does:
    /// without them there is nothing to remove and no process is started.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        if conf.spec.mappings.is_empty() {
            return Ok(());
        }
        // A prevResult that does not parse is treated as missing: DEL is best effort.
        let prev = req.prev_result().ok().flatten();
        let spec = conf.spec_for(prev.as_ref(), &req.ifname);
        let mut errors = Errors::default();
        let removed = match conf.backend {
            Backend::Nftables => del_nftables(&spec),
            Backend::Iptables => del_iptables_nft(&spec),
        };
        if removed.is_err() {
            errors.note(
                rcni_firewall::portmapper(conf.backend)
                    .del(&spec)
                    .map_err(|e| cni_error(&e)),
            );
        }
        flush_udp_conntrack(&spec, true);
        linger::hand_off();
        errors.into_result()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        if conf.spec.mappings.is_empty() {
            return Ok(());
        }
        let spec = conf.spec_for(Some(&prev), &req.ifname);
        rcni_firewall::portmapper(conf.backend)
            .check(&spec)
            .map_err(|e| cni_error(&e))
    }

    /// Removes the chains of this network's containers that are not in
    /// `cni.dev/valid-attachments` (iptables; the nftables rules carry no network name, see
    /// [`rcni_firewall::NftablesPortmap`]).
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let Some(valid) = req.net.gc_attachments() else {
            return Ok(());
        };
        let keep: Vec<(String, String)> = valid
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        rcni_firewall::portmapper(conf.backend)
            .gc(&req.net.name, &keep)
            .map_err(|e| cni_error(&e))
    }
}

/// The families the container had addresses in; both when `prevResult` is missing.
fn table_families(spec: &PortmapSpec) -> Vec<TableFamily> {
    match (spec.container_v4, spec.container_v6) {
        (None, None) => vec![TableFamily::Ip, TableFamily::Ip6],
        (v4, v6) => v4
            .map(|_| TableFamily::Ip)
            .into_iter()
            .chain(v6.map(|_| TableFamily::Ip6))
            .collect(),
    }
}

/// The iptables DEL over nf_tables netlink, where iptables-nft holds the container's
/// chain (see [`nftrules::delete_iptables_chain`]); `Err` when anything is not as
/// expected (iptables-legacy, a chain already gone, an old SNAT chain), and the
/// `iptables-restore` path decides.
fn del_iptables_nft(spec: &PortmapSpec) -> std::result::Result<(), ()> {
    let chain = names::portmap_dnat_chain(&spec.network, &spec.container_id);
    for family in table_families(spec) {
        match nftrules::delete_iptables_chain(
            family,
            names::NAT_TABLE,
            names::HOSTPORT_DNAT_CHAIN,
            &chain,
        ) {
            Ok(nftrules::Removed::Done) => {}
            Ok(nftrules::Removed::NotHere) | Err(_) => return Err(()),
        }
    }
    Ok(())
}

/// The nftables DEL over netlink (see [`rcni_firewall::nf::rules`]): no process, and no listing of every
/// rule; `Err` when the socket or the kernel failed, and the `nft` path should try.
fn del_nftables(spec: &PortmapSpec) -> std::result::Result<(), ()> {
    let families = table_families(spec);
    let chains = [
        names::NFT_HOSTPORTS_CHAIN,
        names::NFT_HOSTIP_HOSTPORTS_CHAIN,
        names::NFT_PORTMAP_MASQ_CHAIN,
    ];
    for family in families {
        nftrules::delete_commented(
            family,
            names::NFT_PORTMAP_TABLE,
            &chains,
            &spec.container_id,
        )
        .map_err(drop)?;
    }
    Ok(())
}

fn after_add(spec: &PortmapSpec) -> Result<()> {
    flush_udp_conntrack(spec, false);
    if spec.snat
        && let Some(v4) = spec.container_v4
    {
        enable_localnet_routing(v4.ip())?;
    }
    Ok(())
}

/// Deletes the conntrack entries of the mapped UDP host ports in every family with a
/// container address (both when none is known). On DEL (`only_container`), only flows
/// answered by the container's own address, when it is known. Failures are ignored: the
/// rules are what matters, and the reference only logs them.
fn flush_udp_conntrack(spec: &PortmapSpec, only_container: bool) {
    let ports: Vec<u16> = spec
        .mappings
        .iter()
        .filter(|m| m.protocol == Protocol::Udp)
        .map(|m| m.host_port)
        .collect();
    if ports.is_empty() {
        return;
    }
    let containers: Vec<(IpAddr, Option<IpAddr>)> = match (spec.container_v4, spec.container_v6) {
        (None, None) => vec![
            (IpAddr::from([0u8; 4]), None),
            (IpAddr::from([0u16; 8]), None),
        ],
        (v4, v6) => [v4, v6]
            .into_iter()
            .flatten()
            .map(|net: IpNetwork| (net.ip(), only_container.then(|| net.ip())))
            .collect(),
    };
    let Ok(mut ct) = conntrack::Conntrack::open() else {
        return;
    };
    for (family, reply_source) in containers {
        for port in &ports {
            let _ = ct.delete_udp_port(family, *port, reply_source);
        }
    }
    linger::keep(ct.into_socket());
}

/// Sets `route_localnet` on the host interface that routes to `container`, so that
/// connections from 127.0.0.1 to a mapped port may leave through it after DNAT. The
/// interface is the one of the main table's longest matching route (the reference asks the
/// kernel with RTM_GETROUTE, which also sees policy routing); none found, nothing to do.
fn enable_localnet_routing(container: IpAddr) -> Result<()> {
    let what = || format!("unable to enable route_localnet for {container}");
    let mut nl = RealNetlink::new().or_internal(what)?;
    let routes = nl.routes(Some(Family::V4), None).or_internal(what)?;
    let Some(oif) = routes
        .iter()
        .filter(|r| r.dst.contains(container))
        .max_by_key(|r| r.dst.prefix())
        .and_then(|r| r.oif)
    else {
        return Ok(());
    };
    let link = nl.get_link(&LinkRef::Index(oif)).or_internal(what)?;
    rcni_netns::sysctl::write(&format!("net/ipv4/conf/{}/route_localnet", link.name), "1")
        .or_internal(what)
}

#[cfg(test)]
mod tests;
