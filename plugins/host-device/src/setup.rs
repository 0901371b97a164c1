//! ADD, DEL and CHECK against netlink handles: finding the device, moving it into the
//! container under CNI_IFNAME (its host name kept in its alias) and back, its addresses.
//!
//! A device travels through a temporary namespace both ways, as the reference's does
//! since v1.5.0: it is renamed where nobody watches, so udev and NetworkManager on the
//! host only ever see it leave under its own name and come back under its own name. Each
//! step is undone if a later one fails, so a failed ADD or DEL leaves the device where
//! it was, named as it was.

use std::os::fd::BorrowedFd;

use rcni_ipam::{Allocation, Dad};
use rcni_netlink::{Link, LinkRef, Netlink, parse_mac};
use rcni_netns::NetNs;
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Success};

use crate::config::{Conf, Selector};
use crate::sysfs::Sysfs;

/// The three namespaces a device passes through, each with a netlink handle inside it and
/// its namespace fd (the target of a move).
pub struct Sides<'a> {
    /// Where the plugin runs: where the device comes from and goes back to.
    pub host: &'a mut dyn Netlink,
    pub host_fd: BorrowedFd<'a>,
    /// An empty namespace of our own, for the renames.
    pub temp: &'a mut dyn Netlink,
    pub temp_fd: BorrowedFd<'a>,
    /// The container.
    pub ctr: &'a mut dyn Netlink,
    pub ctr_fd: BorrowedFd<'a>,
}

/// The device `selector` names, in the host namespace (Go `getLink`).
///
/// # Errors
/// No such device, or a selector that cannot be read, in the reference's wording after
/// "failed to find host device: ".
pub fn find_device(selector: &Selector, host: &mut dyn Netlink, sys: &Sysfs) -> Result<Link> {
    let found = match selector {
        Selector::Device(name) => by_name(host, name),
        Selector::HwAddr(text) => by_mac(host, text),
        Selector::KernelPath(path) => sys
            .kernelpath_netdev(path)
            .and_then(|name| by_name(host, &name)),
        Selector::Pci(id) => sys.pci_netdev(id).and_then(|name| by_name(host, &name)),
        Selector::Aux(id) => sys.aux_netdev(id).and_then(|name| by_name(host, &name)),
    };
    found.map_err(|e| {
        Error::internal(format!("failed to find host device: {}", e.msg)).with_details(e.details)
    })
}

fn by_name(host: &mut dyn Netlink, name: &str) -> Result<Link> {
    host.get_link(&LinkRef::from(name))
        .map_err(|e| Error::internal(e.to_string()))
}

fn by_mac(host: &mut dyn Netlink, text: &str) -> Result<Link> {
    let mac = parse_mac(text).ok_or_else(|| {
        Error::internal(format!(
            "failed to parse MAC address {text:?}: address {text}: invalid MAC address"
        ))
    })?;
    host.links()
        .or_internal(|| "failed to list node links".into())?
        .into_iter()
        .find(|l| l.mac == Some(mac))
        .ok_or_else(|| Error::internal("failed to find physical interface"))
}

/// ADD once the device is found: IPAM (started first, so it runs while the device
/// moves), the move into the container, then the addresses and routes. The device goes
/// back and the allocation is released when a later step fails.
///
/// # Errors
/// IPAM's error; the move; an address or route the kernel refuses.
pub fn add(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    dev: &Link,
    s: &mut Sides<'_>,
) -> Result<Success> {
    let ipam = conf
        .ipam
        .as_deref()
        .map(|kind| Allocation::start(kind, req))
        .transpose()?;
    let mut rollback = Rollback::new();
    if let Some(ipam) = &ipam {
        rollback.push(move || ipam.release());
    }
    let link = match move_in(s, dev, &req.ifname) {
        Ok(link) => link,
        Err(e) => return Err(rollback.fail(e)),
    };
    match configure(conf, req, netns, s.ctr, &link, ipam.as_ref()) {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => {
            let back = move_out(s, &req.ifname).and_then(|_| restore_up(s.host, dev));
            let e = match back {
                Err(undo) => e.with_details(format!(
                    "moving {:?} back to the host also failed: {undo}",
                    dev.name
                )),
                Ok(()) => e,
            };
            Err(rollback.fail(e))
        }
    }
}

/// ADD for a device a userspace driver owns: nothing to move; IPAM's addresses are
/// reported (for the application that drives the device) but configured nowhere.
///
/// # Errors
/// IPAM's error.
pub fn add_dpdk(conf: &Conf, req: &Request, netns: &NetNs) -> Result<Success> {
    let iface = Interface {
        name: req.ifname.clone(),
        sandbox: netns.path().display().to_string(),
        ..Interface::default()
    };
    let mut result = Success {
        cni_version: req.version().to_string(),
        interfaces: vec![iface],
        ..Success::default()
    };
    if let Some(kind) = conf.ipam.as_deref() {
        let ipam = Allocation::start(kind, req)?;
        let source = match ipam.result() {
            Ok(source) => source,
            Err(e) => {
                let _ = ipam.release();
                return Err(e);
            }
        };
        result.ips = source.ips;
        result.routes = source.routes;
        for ip in &mut result.ips {
            ip.interface = Some(0);
        }
        result.dns = conf.dns.clone();
    }
    Ok(result)
}

fn configure(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    ipam: Option<&Allocation<'_>>,
) -> Result<Success> {
    let Some(ipam) = ipam else {
        // Layer 2 only: the device is up, and the result names it (Go `printLink`).
        return Ok(rcni_ipam::container_result(
            req,
            netns,
            link,
            Success::default(),
        ));
    };
    let mut result = rcni_ipam::container_result(req, netns, link, ipam.result()?);
    result.dns = conf.dns.clone();
    rcni_ipam::configure_interface(netns, ctr, link, &result, Dad::Wait)?;
    Ok(result)
}

/// Moves `dev` from the host into the container as `ifname`, its host name in its alias,
/// and sets it up there. On failure it is back on the host, named and up as it was.
///
/// # Errors
/// The step that failed, in the reference's wording.
pub fn move_in(s: &mut Sides<'_>, dev: &Link, ifname: &str) -> Result<Link> {
    let name = dev.name.as_str();
    s.host
        .set_ns_fd(dev.index, s.temp_fd)
        .map_err(|e| Error::internal(format!("failed to move {name:?} to tempNS: {e}")))?;
    let restore = |s: &mut Sides<'_>, e: Error, renamed: bool, aliased: bool| -> Error {
        let undo = back_to_host(s, if renamed { ifname } else { name }, dev, aliased)
            .and_then(|()| restore_up(s.host, dev));
        match undo {
            Ok(()) => e,
            Err(undo) => e.with_details(format!("moving {name:?} back also failed: {undo}")),
        }
    };
    let temp = match s.temp.get_link(&LinkRef::from(name)) {
        Ok(link) => link,
        Err(e) => {
            let e = Error::internal(format!("failed to find {name:?} in tempNS: {e}"));
            return Err(restore(s, e, false, false));
        }
    };
    if let Err(e) = s.temp.set_name(temp.index, ifname) {
        let e = Error::internal(format!(
            "failed to rename host device {name:?} to {ifname:?}: {e}"
        ));
        return Err(restore(s, e, false, false));
    }
    if let Err(e) = s.temp.set_alias(temp.index, name) {
        let e = Error::internal(format!("failed to set alias to {name:?}: {e}"));
        return Err(restore(s, e, true, false));
    }
    if let Err(e) = s.temp.set_ns_fd(temp.index, s.ctr_fd) {
        let e = Error::internal(format!(
            "failed to move {ifname:?} (host: {name:?}) to container NS: {e}"
        ));
        return Err(restore(s, e, true, true));
    }
    let up = s.ctr.get_link(&LinkRef::from(ifname)).and_then(|link| {
        s.ctr.set_up(link.index)?;
        s.ctr.get_link(&LinkRef::Index(link.index))
    });
    match up {
        Ok(link) => Ok(link),
        Err(e) => {
            let e = Error::internal(format!("failed to set {ifname:?} up: {e}"));
            let back = s
                .ctr
                .get_link(&LinkRef::from(ifname))
                .and_then(|link| s.ctr.set_ns_fd(link.index, s.temp_fd));
            match back {
                Ok(()) => Err(restore(s, e, true, true)),
                Err(undo) => {
                    Err(e.with_details(format!("moving {name:?} back also failed: {undo}")))
                }
            }
        }
    }
}

/// From the temporary namespace back to the host: alias and name as they were.
fn back_to_host(s: &mut Sides<'_>, current: &str, dev: &Link, aliased: bool) -> Result<()> {
    let link = s
        .temp
        .get_link(&LinkRef::from(current))
        .or_internal(|| format!("finding {current:?} in tempNS"))?;
    if aliased {
        let alias = dev.alias.as_deref().unwrap_or_default();
        s.temp
            .set_alias(link.index, alias)
            .or_internal(|| format!("restoring the alias of {current:?}"))?;
    }
    if current != dev.name {
        s.temp
            .set_name(link.index, &dev.name)
            .or_internal(|| format!("renaming {current:?} back to {:?}", dev.name))?;
    }
    s.temp
        .set_ns_fd(link.index, s.host_fd)
        .or_internal(|| format!("moving {:?} to the host", dev.name))
}

/// Moving between namespaces takes a device down: it was up on the host, so it is again.
fn restore_up(host: &mut dyn Netlink, dev: &Link) -> Result<()> {
    if !dev.up {
        return Ok(());
    }
    let link = host
        .get_link(&LinkRef::from(dev.name.as_str()))
        .or_internal(|| format!("finding {:?} on the host", dev.name))?;
    host.set_up(link.index)
        .or_internal(|| format!("setting {:?} up", dev.name))
}

/// Moves the container's `ifname` back to the host under the name in its alias, and
/// clears the alias (Go `moveLinkOut`). It stays down there, as the reference leaves it:
/// its state before ADD is not known any more. A missing `ifname` is success (nothing
/// to move: DEL again, or a failed ADD).
///
/// # Errors
/// `ifname` has no alias (not a device this plugin moved); a step of the move, after
/// which the device is back in the container as it was.
pub fn move_out(s: &mut Sides<'_>, ifname: &str) -> Result<()> {
    let dev = match s.ctr.get_link(&LinkRef::from(ifname)) {
        Ok(link) => link,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => {
            return Err(Error::internal(format!(
                "failed to find {ifname:?} in containerNS: {e}"
            )));
        }
    };
    let Some(original) = dev.alias.clone().filter(|a| !a.is_empty()) else {
        return Err(Error::internal(format!(
            "failed to find original ifname for {ifname:?} (alias is not set)"
        )));
    };
    s.ctr
        .set_ns_fd(dev.index, s.temp_fd)
        .map_err(|e| Error::internal(format!("failed to move {ifname:?} to tempNS: {e}")))?;
    let temp = s
        .temp
        .get_link(&LinkRef::from(ifname))
        .map_err(|e| Error::internal(format!("failed to find {ifname:?} in tempNS: {e}")))?;
    // Back into the container as it was, when a step below fails.
    let restore = |s: &mut Sides<'_>, e: Error, renamed: bool, unaliased: bool| -> Error {
        let mut undo = Ok(());
        if unaliased {
            undo = s.temp.set_alias(temp.index, &original);
        }
        if renamed {
            undo = undo.and_then(|()| s.temp.set_name(temp.index, ifname));
        }
        let undo = undo
            .and_then(|()| s.temp.set_ns_fd(temp.index, s.ctr_fd))
            .and_then(|()| {
                if dev.up {
                    let link = s.ctr.get_link(&LinkRef::from(ifname))?;
                    s.ctr.set_up(link.index)
                } else {
                    Ok(())
                }
            });
        match undo {
            Ok(()) => e,
            Err(undo) => e.with_details(format!(
                "moving {ifname:?} back to the container also failed: {undo}"
            )),
        }
    };
    if let Err(e) = s.temp.set_name(temp.index, &original) {
        let e = Error::internal(format!(
            "failed to rename device {ifname:?} to {original:?}: {e}"
        ));
        return Err(restore(s, e, false, false));
    }
    if let Err(e) = s.temp.set_alias(temp.index, "") {
        let e = Error::internal(format!("failed to unset alias of {original:?}: {e}"));
        return Err(restore(s, e, true, false));
    }
    if let Err(e) = s.temp.set_ns_fd(temp.index, s.host_fd) {
        let e = Error::internal(format!("failed to move {original:?} to hostNS: {e}"));
        return Err(restore(s, e, true, true));
    }
    Ok(())
}

/// CHECK of the container side (Go `validateCniContainerInterface`, then the addresses
/// and routes of `prev`).
///
/// # Errors
/// The first thing that differs from `prev`, in the reference's wording.
pub fn check(iface: &Interface, prev: &Success, ctr: &mut dyn Netlink) -> Result<()> {
    let link = rcni_ipam::check_container_link(ctr, iface, None, rcni_ipam::Wording::GO)?;
    if iface.sandbox.is_empty() {
        return Err(Error::internal(format!(
            "Error: Container interface {} should not be in host namespace",
            link.name
        )));
    }
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::os::fd::AsFd;

    use rcni_netlink::{Call, FakeNetlink, Op};
    use rcni_skel::Command;
    use rcni_testkit::fake_ipam;
    use serde_json::json;

    use super::*;
    use crate::config::tests::request;
    use crate::sysfs::tests::tree;
    use rcni_netlink::format_mac;

    /// Host, temporary and container namespaces of one fake model, with an fd standing
    /// for each (bound, so moves land where the real ones would).
    struct World {
        host: FakeNetlink,
        temp: FakeNetlink,
        ctr: FakeNetlink,
        fds: [File; 3],
    }

    impl World {
        fn new() -> World {
            let (host, ctr) = FakeNetlink::pair();
            let temp = host.another();
            let fds = [(); 3].map(|()| File::open("/dev/null").expect("an fd"));
            host.bind_ns_fd(fds[0].as_fd(), &host);
            host.bind_ns_fd(fds[1].as_fd(), &temp);
            host.bind_ns_fd(fds[2].as_fd(), &ctr);
            World {
                host,
                temp,
                ctr,
                fds,
            }
        }

        fn sides(&mut self) -> Sides<'_> {
            Sides {
                host: &mut self.host,
                host_fd: self.fds[0].as_fd(),
                temp: &mut self.temp,
                temp_fd: self.fds[1].as_fd(),
                ctr: &mut self.ctr,
                ctr_fd: self.fds[2].as_fd(),
            }
        }

        /// A device `name` on the host, up, with an alias if given.
        fn device(&mut self, name: &str, alias: Option<&str>) -> Link {
            let dev = self.host.seed_link(name, None);
            self.host.set_up(dev.index).expect("up");
            if let Some(alias) = alias {
                self.host.set_alias(dev.index, alias).expect("alias");
            }
            self.host.take_calls();
            self.host
                .get_link(&LinkRef::Index(dev.index))
                .expect("device")
        }

        fn names(nl: &FakeNetlink) -> Vec<String> {
            nl.link_list().into_iter().map(|l| l.name).collect()
        }
    }

    #[test]
    fn a_device_goes_in_renamed_and_comes_back_with_its_name() {
        let mut w = World::new();
        let dev = w.device("eth1", None);
        let link = move_in(&mut w.sides(), &dev, "net1").expect("in");
        assert_eq!(link.name, "net1");
        assert_eq!(link.alias.as_deref(), Some("eth1"), "the host name is kept");
        assert!(link.up);
        assert_eq!(link.mac, dev.mac);
        assert_eq!(World::names(&w.host), ["lo"]);
        assert_eq!(
            World::names(&w.temp),
            ["lo"],
            "nothing stays in the temporary netns"
        );
        assert_eq!(World::names(&w.ctr), ["lo", "net1"]);
        // Renamed in the temporary namespace, never on the host nor in the container.
        assert!(!w.host.calls().iter().any(|c| c.op() == Op::SetName));
        assert!(!w.ctr.calls().iter().any(|c| c.op() == Op::SetName));
        assert!(
            w.temp
                .calls()
                .contains(&Call::SetName(link.index, "net1".into()))
        );

        move_out(&mut w.sides(), "net1").expect("out");
        let back = w.host.get_link(&"eth1".into()).expect("back on the host");
        assert_eq!(back.alias, None, "alias cleared");
        assert!(!back.up, "left down, as the reference leaves it");
        assert_eq!(World::names(&w.ctr), ["lo"]);
        assert_eq!(World::names(&w.temp), ["lo"]);
        assert!(!w.ctr.calls().iter().any(|c| c.op() == Op::SetName));

        move_out(&mut w.sides(), "net1").expect("gone already: success");
    }

    #[test]
    fn a_failed_move_in_leaves_the_device_as_it_was() {
        for (fails, op) in [
            ("temp", Op::SetName),
            ("temp", Op::SetAlias),
            ("temp", Op::SetNsFd),
            ("ctr", Op::SetUp),
        ] {
            let mut w = World::new();
            let dev = w.device("eth1", Some("uplink"));
            match fails {
                "temp" => w.temp.fail_next(op, libc::EBUSY),
                _ => w.ctr.fail_next(op, libc::EBUSY),
            }
            let e = move_in(&mut w.sides(), &dev, "net1").expect_err("injected");
            assert_eq!(e.code.number(), 999, "{op:?}");
            assert!(!e.details.contains("also failed"), "{op:?}: {e:?}");
            let back = w.host.get_link(&"eth1".into()).expect("on the host");
            assert_eq!(back.alias.as_deref(), Some("uplink"), "{op:?}");
            assert!(back.up, "{op:?}: up again, as before");
            assert_eq!(World::names(&w.temp), ["lo"], "{op:?}");
            assert_eq!(World::names(&w.ctr), ["lo"], "{op:?}");
        }
    }

    #[test]
    fn a_failed_move_out_leaves_the_device_in_the_container() {
        let mut w = World::new();
        let dev = w.device("eth1", None);
        move_in(&mut w.sides(), &dev, "net1").expect("in");
        // Someone took the name on the host meanwhile.
        w.host.seed_link("eth1", Some("dummy"));
        let e = move_out(&mut w.sides(), "net1").expect_err("name taken");
        assert_eq!(
            e.msg,
            "failed to move \"eth1\" to hostNS: File exists (os error 17)"
        );
        let still = w
            .ctr
            .get_link(&"net1".into())
            .expect("still in the container");
        assert_eq!(still.alias.as_deref(), Some("eth1"), "DEL can be retried");
        assert!(still.up);
        assert_eq!(World::names(&w.temp), ["lo"]);
    }

    #[test]
    fn only_devices_with_an_alias_are_moved_out() {
        let mut w = World::new();
        w.ctr.seed_link("net1", Some("veth"));
        let e = move_out(&mut w.sides(), "net1").expect_err("not ours");
        assert_eq!(
            e.msg,
            "failed to find original ifname for \"net1\" (alias is not set)"
        );
        assert_eq!(World::names(&w.ctr), ["lo", "net1"]);
    }

    #[test]
    fn devices_are_found_by_name_mac_and_sysfs() {
        let sys = tree("find-device");
        let mut host = FakeNetlink::new();
        let ens4 = host.seed_link("ens4", None);
        host.seed_link("enp1s0f0s1", None);
        let mac = format_mac(ens4.mac.expect("mac")).to_uppercase();
        for selector in [
            Selector::Device("ens4".into()),
            Selector::HwAddr(mac.clone()),
            Selector::HwAddr(mac.replace(':', "-")),
            Selector::KernelPath("/sys/devices/pci0000:00/0000:00:04.0".into()),
            Selector::Pci("0000:00:04.0".into()),
        ] {
            let found = find_device(&selector, &mut host, &sys).expect("found");
            assert_eq!(found.index, ens4.index, "{selector:?}");
        }
        let aux = find_device(&Selector::Aux("mlx5_core.sf.2".into()), &mut host, &sys);
        assert_eq!(aux.expect("aux").name, "enp1s0f0s1");

        let e = find_device(&Selector::Device("eth9".into()), &mut host, &sys).expect_err("x");
        assert_eq!(e.msg, "failed to find host device: Link not found");
        let e = find_device(
            &Selector::HwAddr("02:00:00:00:00:99".into()),
            &mut host,
            &sys,
        )
        .expect_err("no such mac");
        assert_eq!(
            e.msg,
            "failed to find host device: failed to find physical interface"
        );
        let e = find_device(&Selector::HwAddr("zz".into()), &mut host, &sys).expect_err("bad");
        assert_eq!(
            e.msg,
            "failed to find host device: failed to parse MAC address \"zz\": address zz: \
             invalid MAC address"
        );
        let e = find_device(&Selector::Pci("0000:00:03.0".into()), &mut host, &sys)
            .expect_err("ens3 is not in this namespace");
        assert_eq!(e.msg, "failed to find host device: Link not found");
    }

    fn add_request(name: &str) -> Request {
        let mut req = request(
            Command::Add,
            &json!({"device": "eth1", "ipam": {"type": fake_ipam::NAME},
                    "dns": {"nameservers": ["10.9.9.9"]}}),
        );
        req.container_id = format!("{name}-{}", std::process::id());
        req.path = vec![fake_ipam::dir().to_path_buf()];
        req
    }

    #[test]
    fn add_configures_the_moved_device_and_reports_it() {
        let mut w = World::new();
        let dev = w.device("eth1", None);
        let req = add_request("add-ok");
        let conf = Conf::parse(&req, &tree("add-ok")).expect("conf");
        let netns = NetNs::current().expect("own netns");
        let r = add(&conf, &req, &netns, &dev, &mut w.sides()).expect("ADD");
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, "net1");
        assert_eq!(r.interfaces[0].mac, format_mac(dev.mac.expect("mac")));
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(
            r.dns.nameservers,
            ["10.9.9.9"],
            "the config's dns, as the reference"
        );
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\n");
        let link = w.ctr.get_link(&"net1".into()).expect("moved");
        let addrs: Vec<String> = w
            .ctr
            .addr_list()
            .iter()
            .map(|a| a.address.to_string())
            .collect();
        assert_eq!(addrs, ["10.1.2.3/24"]);
        assert!(
            w.ctr
                .route_list()
                .iter()
                .any(|r| r.dst.to_string() == "10.9.0.0/16")
        );

        let mut prefix = rcni_netlink::RouteSpec::new("10.1.2.0/24".parse().expect("cidr"));
        prefix.oif = Some(link.index);
        w.ctr.add_route(&prefix).expect("the kernel's prefix route");
        check(&r.interfaces[0], &r, &mut w.ctr).expect("CHECK");
        let mut other = r.interfaces[0].clone();
        other.mac = "02:00:00:00:00:99".into();
        let e = check(&other, &r, &mut w.ctr).expect_err("mac");
        assert!(
            e.msg
                .starts_with("Interface net1 Mac 02:00:00:00:00:99 doesn't match"),
            "{e}"
        );
    }

    #[test]
    fn a_failed_configuration_moves_the_device_back_and_releases_ipam() {
        let mut w = World::new();
        let dev = w.device("eth1", None);
        w.ctr.fail_next(Op::AddAddr, libc::EPERM);
        let req = add_request("add-fail");
        let conf = Conf::parse(&req, &tree("add-fail")).expect("conf");
        let netns = NetNs::current().expect("own netns");
        let e = add(&conf, &req, &netns, &dev, &mut w.sides()).expect_err("addr");
        assert!(e.msg.contains("10.1.2.3/24"), "{e}");
        assert!(!e.details.contains("also failed"), "{e:?}");
        let back = w.host.get_link(&"eth1".into()).expect("back");
        assert!(back.up && back.alias.is_none());
        assert_eq!(World::names(&w.ctr), ["lo"]);
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\nDEL\n");
    }

    #[test]
    fn dpdk_devices_only_get_ipam() {
        let mut req = add_request("dpdk");
        req.config["DPDKMode"] = json!(true);
        req.stdin = req.config.to_string().into_bytes();
        let conf = Conf::parse(&req, &tree("dpdk-add")).expect("conf");
        assert!(conf.dpdk);
        let netns = NetNs::current().expect("own netns");
        let r = add_dpdk(&conf, &req, &netns).expect("ADD");
        assert_eq!(r.interfaces[0].name, "net1");
        assert!(r.interfaces[0].mac.is_empty());
        assert_eq!(r.ips[0].address.to_string(), "10.1.2.3/24");
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\n");
    }
}
