//! The bridge plugin (reference `plugins/main/bridge`): a veth pair whose host end is a
//! port of a Linux bridge, with addresses from the delegated IPAM, an optional gateway on
//! the bridge and optional masquerading.
//!
//! ADD, top to bottom: parse; open the container namespace and one netlink socket on each
//! side; start IPAM; ensure the bridge; create the veth pair with its peer born inside the
//! container; wait for IPAM; configure the container side; put the gateway on the bridge;
//! masquerade. Everything created is registered in a [`Rollback`] until the end.

mod config;
mod setup;
mod vlan;

use rcni_skel::{Command, Errors, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;

pub struct Bridge;

impl Plugin for Bridge {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let (netns, mut host, mut ctr) = rcni_ipam::open_attachment(req)?;
        setup::add(&conf, req, &netns, &mut host, &mut ctr)
    }

    /// Every step tried even when an earlier one failed:
    /// 1. IPAM, to completion before the interface goes (a DHCP client releases its
    ///    lease through it; the reference's bridge deletes the link first and cannot);
    /// 2. the container interface: its addresses are remembered and its deletion runs on
    ///    a thread of its own ([`rcni_ipam::del_container_interface_and`]) while
    /// 3. the MAC spoof check and
    /// 4. the masquerade rules go: found from the interface's addresses and prevResult,
    ///    or by the attachment's chain name when neither is left, so they go even when
    ///    the namespace is already gone (the reference leaks them: plugins#810).
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        rcni_ipam::del_container_interface_and(conf.ipam.as_deref(), req, |addresses| {
            let mut errors = Errors::default();
            if conf.mac_spoof_check {
                errors.note(
                    rcni_firewall::SpoofCheck::teardown(&req.container_id, &req.ifname)
                        .or_internal(|| "tearing down the MAC spoof check".into()),
                );
            }
            if conf.ip_masq {
                errors.note(rcni_ipam::del_masquerade(&conf.network, req, addresses));
            }
            errors.into_result()
        })
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        rcni_ipam::forward(conf.ipam.as_deref(), Command::Check, req)?;
        let netns = req.open_netns()?;
        let (mut host, mut ctr) =
            rcni_netlink::open_pair(&netns).or_internal(|| "opening netlink sockets".into())?;
        setup::check(&conf, req, &prev, &mut host, &mut ctr)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::parse(req)?.ipam.as_deref(), Command::Status, req)
    }

    /// Forwards GC to IPAM and removes masquerade rules of attachments that are gone.
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let mut errors = Errors::default();
        errors.note(rcni_ipam::forward(conf.ipam.as_deref(), Command::Gc, req));
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
