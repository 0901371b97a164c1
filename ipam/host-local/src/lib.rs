//! host-local: IPAM from address ranges, with reservations kept as files on the host
//! (reference §2.4, §3.1). A drop-in for the Go plugin: same config keys, same results,
//! same error texts and codes, and the same on-disk store, so both can share a dataDir and
//! release each other's reservations. Beyond the Go plugin it answers STATUS (code 50 when
//! a range set is full) and GC (releases reservations of attachments that no longer exist).

pub mod allocator;
pub mod config;
pub mod dirents;
pub mod index;
pub mod names;
pub mod range;
pub mod store;
#[cfg(test)]
mod testdir;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use rcni_skel::{Errors, Plugin, Request};
use rcni_types::{Dns, Error, IpConfig, Result, Success};

use crate::allocator::IpAllocator;
use crate::config::{Conf, parse_resolv_conf};
use crate::store::{HostLocalStore, Owner};

/// The host-local plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostLocal;

impl Plugin for HostLocal {
    fn name(&self) -> &'static str {
        "host-local"
    }

    /// One address per range set; requested addresses (CNI_ARGS `IP`, `args.cni.ips`,
    /// `runtimeConfig.ips`) go to the set that contains them and must all be used.
    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::load(&req.config, &req.args)?;
        let dns = match &conf.resolv_conf {
            Some(path) => parse_resolv_conf(path)?,
            None => Dns::default(),
        };
        let store = HostLocalStore::open(&conf.data_dir, &conf.name)?;
        let ips = allocate(&conf, &store, &req.container_id, &req.ifname)?;
        Ok(Success {
            cni_version: req.version().to_string(),
            interfaces: Vec::new(),
            ips,
            routes: conf.routes,
            dns,
        })
    }

    /// Releases everything the attachment holds; nothing held is success.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(&req.config, &req.args)?;
        let store = HostLocalStore::open(&conf.data_dir, &conf.name)?;
        // Go releases once per range set; `release_by_id` says what that changes.
        store.release_by_id(&req.container_id, &req.ifname, conf.ranges.len())
    }

    /// Succeeds when the attachment (or, in the legacy format, the container) holds any
    /// address in the store.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(&req.config, &req.args)?;
        let store = HostLocalStore::open(&conf.data_dir, &conf.name)?;
        if store.find_by_id(&req.container_id, &req.ifname) {
            Ok(())
        } else {
            Err(Error::internal(format!(
                "host-local: Failed to find address added by container {}",
                req.container_id
            )))
        }
    }

    /// Code 50 when some range set has no address left to hand out.
    fn status(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(&req.config, &req.args)?;
        let store = HostLocalStore::open(&conf.data_dir, &conf.name)?;
        let reserved = store.reservations()?;
        for (index, set) in conf.ranges.iter().enumerate() {
            let used = reserved
                .iter()
                .filter(|r| {
                    set.range_for(r.ip)
                        .is_some_and(|range| range.gateway != r.ip)
                })
                .count();
            if u128::try_from(used).unwrap_or(u128::MAX) >= set.capacity() {
                return Err(Error::not_available(format!(
                    "no IP addresses available in range set {index}: {set}"
                )));
            }
        }
        Ok(())
    }

    /// Releases every reservation whose attachment is not in `cni.dev/valid-attachments`
    /// (a legacy single-line reservation stays while any attachment of its container is
    /// valid). Without the key, nothing is known to be stale and nothing is released.
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::load(&req.config, &req.args)?;
        let Some(valid) = req.net.gc_attachments() else {
            return Ok(());
        };
        let store = HostLocalStore::open(&conf.data_dir, &conf.name)?;
        let mut errors = Errors::default();
        for reservation in store.reservations()? {
            let keep = valid.iter().any(|a| match &reservation.owner {
                Owner::Attachment {
                    container_id,
                    ifname,
                } => a.container_id.trim() == container_id && a.ifname == *ifname,
                Owner::Legacy { container_id } => a.container_id.trim() == container_id,
            });
            if !keep {
                errors.note(store.release(reservation.ip));
            }
        }
        errors.into_result()
    }
}

/// One address from every range set, all or nothing (Go's `cmdAdd` loop).
fn allocate(conf: &Conf, store: &HostLocalStore, id: &str, ifname: &str) -> Result<Vec<IpConfig>> {
    // Each requested address once, given to the first set that contains it.
    let mut requested: Vec<IpAddr> = Vec::new();
    for ip in &conf.requested_ips {
        if !requested.contains(ip) {
            requested.push(*ip);
        }
    }
    // On failure, release as Go does: once for every set allocated so far.
    let undo = |err: Error, allocated: usize| match store.release_by_id(id, ifname, allocated) {
        Ok(()) => err,
        Err(cleanup) => err.with_details(format!("cleanup also failed: {}", cleanup.msg)),
    };
    let held = store.get_by_id(id, ifname);
    let mut ips = Vec::with_capacity(conf.ranges.len());
    for (index, set) in conf.ranges.iter().enumerate() {
        let wanted = requested
            .iter()
            .position(|ip| set.contains(*ip))
            .map(|i| requested.remove(i));
        match IpAllocator::new(set, store, index).get(id, ifname, wanted, &held) {
            Ok(ip) => ips.push(ip),
            Err(e) => {
                let e = e.context(format!("failed to allocate for range {index}"));
                return Err(undo(e, ips.len()));
            }
        }
    }
    if !requested.is_empty() {
        let left: Vec<String> = requested.iter().map(ToString::to_string).collect();
        let e = Error::internal(format!(
            "failed to allocate all requested IPs: {}",
            left.join(" ")
        ));
        return Err(undo(e, ips.len()));
    }
    Ok(ips)
}
