//! The tap plugin (reference `plugins/main/tap`): a persistent tap device named
//! CNI_IFNAME, made in the container (for a VM or a userspace network stack to open),
//! with `mac`, `mtu`, `multiQueue`, `owner`, `group`, `selinuxContext` and an optional
//! `bridge` of the container to attach it to; addresses from the delegated IPAM when
//! there is one.
//!
//! ADD, top to bottom: check the config; open the container; refuse a taken name or a
//! missing bridge; start IPAM; make the tap through `/dev/net/tun` inside the container
//! (so no temporary name is needed: it never exists on the host); set MTU, MAC, bridge,
//! up; wait for IPAM; configure addresses and routes. The tap and the allocation are
//! undone if a later step fails (the reference leaks the tap when setting its MAC or
//! bridge fails).
//!
//! Flags: `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, plus `IFF_MULTI_QUEUE` with `multiQueue`
//! (a process attaching sets its own, except the queue mode, which must match).

mod config;
mod setup;

use rcni_netlink::RealNetlink;
use rcni_netns::NetNs;
use rcni_skel::{Command, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;

pub struct Tap;

impl Plugin for Tap {
    fn name(&self) -> &'static str {
        "tap"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let netns = req.open_netns()?;
        let mut ctr = netlink_in(&netns)?;
        setup::add(&conf, req, &netns, &mut ctr, |_, spec| {
            setup::create_in(&netns, &conf, spec)
        })
    }

    /// IPAM's DEL while the tap is deleted; a gone netns or tap is success.
    fn del(&self, req: &Request) -> Result<()> {
        rcni_ipam::del_container_interface(Conf::decode(req)?.ipam.as_deref(), req)
    }

    /// The reference's CHECK: IPAM's CHECK, then the interface of `prevResult` in the
    /// container with its addresses and the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let netns = req.open_netns()?;
        rcni_ipam::forward(conf.ipam.as_deref(), Command::Check, req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let iface = req.sandbox_interface(&prev)?;
        let mut ctr = netlink_in(&netns)?;
        setup::check(&iface, &prev, &mut ctr)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Status, req)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Gc, req)
    }
}

fn netlink_in(netns: &NetNs) -> Result<RealNetlink> {
    netns
        .run(RealNetlink::new)
        .or_internal(|| format!("entering netns {}", netns.path().display()))?
        .or_internal(|| format!("opening netlink in netns {}", netns.path().display()))
}
