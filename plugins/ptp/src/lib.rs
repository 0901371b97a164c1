//! The ptp plugin (reference `plugins/main/ptp`): a veth pair routed, not bridged. The
//! container reaches everything through the gateway address, which sits as a /32 (/128)
//! on the host end; the host reaches the container through a host route on that end.
//!
//! ADD, top to bottom: parse; open the container namespace and one netlink socket on each
//! side; start IPAM; create the veth pair with its peer born inside the container; wait
//! for IPAM; enable forwarding; configure the container side, then the host side;
//! masquerade. Everything created is registered in a [`rcni_skel::Rollback`] until the end.

mod config;
mod setup;

use rcni_netlink::{LinkRef, Netlink};
use rcni_skel::{Command, Errors, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;

pub struct Ptp;

impl Plugin for Ptp {
    fn name(&self) -> &'static str {
        "ptp"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let (netns, mut host, mut ctr) = rcni_ipam::open_attachment(req)?;
        setup::add(&conf, req, &netns, &mut host, &mut ctr)
    }

    /// Every step tried even when an earlier one failed, in the reference's order:
    /// 1. IPAM (its process starts first and runs while the kernel deletes the veth, which
    ///    takes most of a DEL; it is waited for after step 2);
    /// 2. the container interface (its addresses are remembered for step 3);
    /// 3. masquerade rules, from the interface's addresses and prevResult, or by the
    ///    attachment's chain name when neither is left, so they go even when the namespace
    ///    is already gone (the reference leaks them then: plugins#810).
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        let mut errors = Errors::default();

        // IPAM first, to completion: a DHCP lease is released through the interface.
        errors.note(rcni_ipam::forward(Some(&conf.ipam), Command::Del, req));
        let mut addresses = Vec::new();
        match req.open_netns_if_exists() {
            Ok(Some(ns)) => match rcni_netlink::del_link_in(&ns, &req.ifname) {
                Ok(deleted) => addresses.extend(deleted.unwrap_or_default()),
                Err(e) => errors.note::<()>(Err(Error::internal(format!(
                    "failed to delete {:?}: {e}",
                    req.ifname
                )))),
            },
            Ok(None) => {}
            Err(e) => errors.note::<()>(Err(e)),
        }
        if conf.ip_masq {
            if let Ok(Some(prev)) = req.prev_result() {
                addresses.extend(prev.ips.iter().map(|ip| ip.address));
            }
            errors.note(
                rcni_firewall::teardown_addresses(
                    &conf.network,
                    &req.container_id,
                    &req.ifname,
                    addresses,
                )
                .or_internal(|| "tearing down ipMasq".into()),
            );
        }
        errors.into_result()
    }

    /// The reference's CHECK: IPAM's CHECK, then the container interface of `prevResult`
    /// (in this namespace, a veth, with its MAC), its addresses and the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        let netns = req.open_netns()?;
        rcni_ipam::forward(Some(&conf.ipam), Command::Check, req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("ptp: Required prevResult missing"))?;
        let sandbox = req.sandbox_interface(&prev)?;
        let mut ctr = rcni_ipam::container_netlink(&netns)?;
        setup::check(&mut ctr, &sandbox, &prev)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Some(&Conf::decode(req)?.ipam), Command::Status, req)
    }

    /// Forwards GC to IPAM and removes masquerade rules of attachments that are gone.
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        let mut errors = Errors::default();
        errors.note(rcni_ipam::forward(Some(&conf.ipam), Command::Gc, req));
        if let Some(valid) = req.net.gc_attachments() {
            let keep: Vec<(String, String)> = valid
                .iter()
                .map(|a| (a.container_id.clone(), a.ifname.clone()))
                .collect();
            errors
                .note(rcni_firewall::gc_all(&conf.network, &keep).or_internal(|| {
                    format!("garbage-collecting ipMasq rules of {}", conf.network)
                }));
        }
        errors.into_result()
    }
}

/// The interface `name` in `nl`'s namespace, with Go's CHECK wording when it is missing.
fn container_link(nl: &mut dyn Netlink, name: &str) -> Result<rcni_netlink::Link> {
    nl.get_link(&LinkRef::from(name)).map_err(|_| {
        Error::internal(format!(
            "ptp: Container Interface name in prevResult: {name} not found"
        ))
    })
}
