//! The ipvlan plugin (reference `plugins/main/ipvlan`): an ipvlan link on a master
//! interface of the host (or of the container, with `linkInContainer`), sharing the
//! master's MAC, with addresses from the delegated IPAM or, when chained without IPAM,
//! from `prevResult`.
//!
//! ADD, top to bottom: parse; open the container namespace and one netlink socket on each
//! side; find the master (`master`, the single interface of a chained `prevResult`, or the
//! default route's); start IPAM; create the ipvlan under a temporary name directly in the
//! container and rename it there; wait for IPAM; configure addresses and routes. The link
//! and the allocation are undone if a later step fails.

mod config;
mod setup;

use rcni_skel::{Command, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;

pub struct Ipvlan;

impl Plugin for Ipvlan {
    fn name(&self) -> &'static str {
        "ipvlan"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let (netns, mut host, mut ctr) = rcni_ipam::open_attachment(req)?;
        setup::add(&conf, req, &netns, &mut host, &mut ctr)
    }

    /// IPAM's DEL (when configured; chained without IPAM there is none) while the ipvlan
    /// is deleted. Unlike the reference, DEL does not look for the master, so it works
    /// when the master or the default route is gone.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        rcni_ipam::del_container_interface(conf.ipam.as_deref(), req)
    }

    /// The reference's CHECK: IPAM's CHECK, the master (when `master` is set), then the
    /// container interface of `prevResult`: an ipvlan in the configured mode with its MAC,
    /// its addresses and the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let netns = req.open_netns()?;
        rcni_ipam::forward(conf.ipam.as_deref(), Command::Check, req)?;
        let prev = conf
            .prev
            .as_ref()
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let iface = req.sandbox_interface(prev)?;
        let (mut host, mut ctr) =
            rcni_netlink::open_pair(&netns).or_internal(|| "opening netlink sockets".into())?;
        setup::check(&conf, &iface, prev, &mut host, &mut ctr)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Status, req)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Gc, req)
    }
}
