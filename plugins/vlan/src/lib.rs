//! The vlan plugin (reference `plugins/main/vlan`): an 802.1Q VLAN link on a master
//! interface of the host (or of the container, with `linkInContainer`), with addresses
//! from the delegated IPAM.
//!
//! ADD, top to bottom: parse; open the container namespace and one netlink socket on each
//! side; look the master up and judge `mtu` against it; start IPAM; create the VLAN under
//! a temporary name directly in the container and rename it there; wait for IPAM;
//! configure addresses and routes. The link and the allocation are undone if a later
//! step fails.

mod config;
mod setup;

use rcni_skel::{Command, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;

pub struct Vlan;

impl Plugin for Vlan {
    fn name(&self) -> &'static str {
        "vlan"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let (netns, mut host, mut ctr) = rcni_ipam::open_attachment(req)?;
        setup::add(&conf, req, &netns, &mut host, &mut ctr)
    }

    /// IPAM's DEL while the VLAN link is deleted. Unlike the reference, DEL does not look
    /// the master up, so it works when the master is gone.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        rcni_ipam::del_container_interface(conf.ipam.as_deref(), req)
    }

    /// The reference's CHECK: IPAM's CHECK, the master, then the container interface of
    /// `prevResult`: a VLAN with the configured id (and MTU), its MAC, its addresses and
    /// the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let netns = req.open_netns()?;
        rcni_ipam::forward(conf.ipam.as_deref(), Command::Check, req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("vlan: Required prevResult missing"))?;
        let iface = req.sandbox_interface(&prev)?;
        let (mut host, mut ctr) =
            rcni_netlink::open_pair(&netns).or_internal(|| "opening netlink sockets".into())?;
        setup::check(&conf, &iface, &prev, &mut host, &mut ctr)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Status, req)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Gc, req)
    }
}
