//! The host-device plugin (reference `plugins/main/host-device`): moves an existing device
//! of the host (named by `device`, `hwaddr`, `kernelpath`, `pciBusID` or the `deviceID`
//! capability) into the container as CNI_IFNAME, with addresses from the delegated IPAM
//! when there is one; DEL moves it back under its own name, kept in its alias meanwhile.
//!
//! ADD, top to bottom: parse and resolve the selection (sysfs for PCI and auxiliary-bus
//! devices); open the container; find the device; start IPAM; move the device through a
//! temporary namespace, renaming it there; wait for IPAM; configure addresses and routes.
//! A device bound to a userspace (DPDK) driver has no interface and stays where it is.
//!
//! Unlike the reference, DEL releases the IPAM allocation even when the netns is gone or
//! CNI_NETNS is empty (cni#1167: addresses leaked after a reboot), finds nothing to move
//! back without complaint when the interface is gone, and does not judge the selection.
//!
//! Untested here: the `pciBusID`/`deviceID` paths are exercised against a sysfs tree laid
//! out like the kernel's (this machine has no PCI network card to move); the lookups
//! follow the reference's paths exactly.

mod config;
mod setup;
mod sysfs;

use rcni_netlink::{LinkRef, Netlink, RealNetlink};
use rcni_netns::NetNs;
use rcni_skel::{Command, Errors, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use config::{Conf, Selector};
pub use setup::{Sides, move_in, move_out};
pub use sysfs::Sysfs;

pub struct HostDevice;

impl Plugin for HostDevice {
    fn name(&self) -> &'static str {
        "host-device"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let sys = Sysfs::system();
        let conf = Conf::parse(req, &sys)?;
        let netns = req.open_netns()?;
        if conf.dpdk {
            return setup::add_dpdk(&conf, req, &netns);
        }
        let mut host = RealNetlink::new().or_internal(|| "opening netlink".into())?;
        let mut ctr = netlink_in(&netns)?;
        let dev = setup::find_device(&conf.selector, &mut host, &sys)?;
        // Refuse before IPAM allocates or the device moves: the name must be free.
        if ctr.get_link(&LinkRef::from(req.ifname.as_str())).is_ok() {
            return Err(Error::internal(format!(
                "failed to move link {:?}: an interface named {:?} already exists in netns {}",
                dev.name,
                req.ifname,
                netns.path().display()
            )));
        }
        let (host_ns, temp_ns) = (own_netns()?, temp_netns()?);
        let mut temp = netlink_in(&temp_ns)?;
        let mut sides = Sides {
            host: &mut host,
            host_fd: std::os::fd::AsFd::as_fd(&host_ns),
            temp: &mut temp,
            temp_fd: std::os::fd::AsFd::as_fd(&temp_ns),
            ctr: &mut ctr,
            ctr_fd: std::os::fd::AsFd::as_fd(&netns),
        };
        setup::add(&conf, req, &netns, &dev, &mut sides)
    }

    /// IPAM's DEL, to completion (a DHCP lease is released through the device), then the
    /// device back to the host. Every step runs; a gone netns or interface is success.
    fn del(&self, req: &Request) -> Result<()> {
        let decoded = Conf::decode(req)?;
        let mut errors = Errors::default();
        // IPAM first, to completion: a DHCP lease is released through the device.
        errors.note(rcni_ipam::forward(
            decoded.ipam.as_deref(),
            Command::Del,
            req,
        ));
        if !decoded.dpdk(&Sysfs::system()) {
            match req.open_netns_if_exists() {
                Ok(Some(netns)) => errors.note(move_back(&netns, &req.ifname)),
                Ok(None) => {}
                Err(e) => errors.note::<()>(Err(e)),
            }
        }
        errors.into_result()
    }

    /// The reference's CHECK: IPAM's CHECK, then the interface of `prevResult` in the
    /// container: there, with its MAC, its addresses and the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req, &Sysfs::system())?;
        let netns = req.open_netns()?;
        rcni_ipam::forward(conf.ipam.as_deref(), Command::Check, req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        if conf.dpdk {
            return Ok(());
        }
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

/// DEL's move: nothing to do (and no temporary namespace to make) when the container has
/// no `ifname` any more.
fn move_back(netns: &NetNs, ifname: &str) -> Result<()> {
    let mut ctr = netlink_in(netns)?;
    match ctr.get_link(&LinkRef::from(ifname)) {
        Err(e) if e.is_not_found() => return Ok(()),
        _ => {}
    }
    let (host_ns, temp_ns) = (own_netns()?, temp_netns()?);
    let mut host = RealNetlink::new().or_internal(|| "opening netlink".into())?;
    let mut temp = netlink_in(&temp_ns)?;
    let mut sides = Sides {
        host: &mut host,
        host_fd: std::os::fd::AsFd::as_fd(&host_ns),
        temp: &mut temp,
        temp_fd: std::os::fd::AsFd::as_fd(&temp_ns),
        ctr: &mut ctr,
        ctr_fd: std::os::fd::AsFd::as_fd(netns),
    };
    setup::move_out(&mut sides, ifname)
}

fn netlink_in(netns: &NetNs) -> Result<RealNetlink> {
    netns
        .run(RealNetlink::new)
        .or_internal(|| format!("entering netns {}", netns.path().display()))?
        .or_internal(|| format!("opening netlink in netns {}", netns.path().display()))
}

/// The namespace the plugin runs in: where devices come from and go back to.
fn own_netns() -> Result<NetNs> {
    NetNs::current().or_internal(|| "opening the current netns".into())
}

/// A new, empty network namespace (the reference's `ns.TempNetNS`), held only by the
/// returned handle: made on a short-lived thread, so this thread never leaves its own.
/// A device must not be left in it: when it goes, virtual devices go with it and
/// physical ones fall back to the initial namespace.
fn temp_netns() -> Result<NetNs> {
    std::thread::spawn(|| -> std::io::Result<NetNs> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        NetNs::current()
    })
    .join()
    .map_err(|_| Error::internal("failed to create tempNS: the thread panicked"))?
    .or_internal(|| "failed to create tempNS".into())
}
