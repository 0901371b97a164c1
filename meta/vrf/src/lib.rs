//! The vrf plugin (reference `plugins/meta/vrf`), a chained plugin: it puts CNI_IFNAME of
//! the container into the VRF `vrfname` (made when missing, with `table` or the first
//! table no VRF of the container uses), so the interface routes through that table, and
//! moves the interface's routes there. It passes `prevResult` on unchanged. Config
//! versions 0.3.1 and later, as the reference.
//!
//! DEL takes the interface out of the VRF and deletes the VRF once nothing is left in
//! it; a gone netns, VRF or interface is success (the reference fails on a missing
//! interface). A failed ADD deletes a VRF it made and frees the interface.

mod config;
mod setup;

use rcni_netlink::RealNetlink;
use rcni_netns::NetNs;
use rcni_skel::{Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::Conf;
pub use setup::{VrfLink, find_vrf, free_table};

/// What the reference accepts (`VersionsStartingFrom("0.3.1")`).
pub const VERSIONS: &[&str] = &["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

pub struct Vrf;

impl Plugin for Vrf {
    fn name(&self) -> &'static str {
        "vrf"
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        VERSIONS
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let prev = prev_result(req)?
            .ok_or_else(|| Error::internal("missing prevResult from earlier plugin"))?;
        let netns = req.open_netns()?;
        let mut ctr = netlink_in(&netns)?;
        setup::add(&conf, &req.ifname, &mut ctr)?;
        Ok(prev)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::decode(req)?;
        if conf.name.is_empty() {
            return Ok(());
        }
        let Some(netns) = req.open_netns_if_exists()? else {
            return Ok(());
        };
        let mut ctr = netlink_in(&netns)?;
        setup::del(&conf, &req.ifname, &mut ctr)
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        prev_result(req)?
            .ok_or_else(|| Error::internal("missing prevResult from earlier plugin"))?;
        let netns = req.open_netns()?;
        let mut ctr = netlink_in(&netns)?;
        setup::check(&conf, &req.ifname, &mut ctr)
    }
}

/// `prevResult` in the reference's wording when it does not parse.
fn prev_result(req: &Request) -> Result<Option<Success>> {
    req.prev_result().map_err(|e| {
        Error::internal(format!("could not parse prevResult: {}", e.msg)).with_details(e.details)
    })
}

fn netlink_in(netns: &NetNs) -> Result<RealNetlink> {
    netns
        .run(RealNetlink::new)
        .or_internal(|| format!("entering netns {}", netns.path().display()))?
        .or_internal(|| format!("opening netlink in netns {}", netns.path().display()))
}
