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

    /// Every step tried even when an earlier one failed: IPAM, then the container
    /// interface, whose deletion in the kernel overlaps the removal of the masquerade
    /// rules ([`rcni_ipam::del_container_interface_and`]). The rules are found from the
    /// interface's addresses and prevResult, or by the attachment's chain name when
    /// neither is left, so they go even when the namespace is already gone (the reference
    /// leaks them then: plugins#810).
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        rcni_ipam::del_container_interface_and(Some(&conf.ipam), req, |addresses| {
            if conf.ip_masq {
                rcni_ipam::del_masquerade(&conf.network, req, addresses)
            } else {
                Ok(())
            }
        })
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
