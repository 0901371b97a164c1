//! The macvlan plugin (reference `plugins/main/macvlan`): a macvlan on a master interface,
//! made under a temporary `veth…` name directly in the container namespace and renamed
//! there to CNI_IFNAME, with addresses from the delegated IPAM or none (layer 2 only).
//!
//! ADD, top to bottom: parse; open the container namespace and one netlink socket on each
//! side; find the master (and check `mtu` against it); start IPAM; create and rename the
//! macvlan; wait for IPAM; configure the interface. Everything created is registered in a
//! [`rcni_skel::Rollback`] until the end.

mod config;
mod setup;

use rcni_skel::{Command, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;

pub struct Macvlan;

impl Plugin for Macvlan {
    fn name(&self) -> &'static str {
        "macvlan"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let (netns, mut host, mut ctr) = rcni_ipam::open_attachment(req)?;
        setup::add(&conf, req, &netns, &mut host, &mut ctr)
    }

    /// Every step tried even when an earlier one failed, in the reference's order: IPAM
    /// (its process runs while the kernel deletes the link), then the container
    /// interface; a missing namespace or interface is success.
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        rcni_ipam::del_container_interface(conf.ipam.as_deref(), req)
    }

    /// The reference's CHECK: the master, IPAM's CHECK, then the container interface of
    /// `prevResult` (in this namespace, a macvlan in the configured mode, with its MAC),
    /// its addresses and the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let netns = req.open_netns()?;
        let (mut host, mut ctr) =
            rcni_netlink::open_pair(&netns).or_internal(|| "opening netlink sockets".into())?;
        setup::master_link(
            &conf,
            rcni_ipam::master_side(conf.link_in_container, &mut host, &mut ctr),
        )?;
        rcni_ipam::forward(conf.ipam.as_deref(), Command::Check, req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("required prevResult missing"))?;
        let netns_path = netns.path().display().to_string();
        let iface = prev
            .interfaces
            .iter()
            .find(|i| i.name == req.ifname && i.sandbox == netns_path)
            .cloned()
            .unwrap_or_default();
        if iface.sandbox != netns_path {
            return Err(Error::internal(format!(
                "sandbox in prevResult {} doesn't match configured netns: {netns_path}",
                iface.sandbox
            )));
        }
        setup::check(&conf, &mut ctr, &iface, &prev)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Status, req)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(Conf::decode(req)?.ipam.as_deref(), Command::Gc, req)
    }
}
