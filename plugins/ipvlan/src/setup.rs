//! ADD and CHECK: the master, the ipvlan under a temporary name renamed in the container,
//! its addresses and routes.

use std::os::fd::AsFd;

use rcni_ipam::{Allocation, Dad, master_mtu, master_side};
use rcni_netlink::{IpvlanSpec, Link, LinkData, Netlink};
use rcni_netns::NetNs;
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Success};

use crate::config::{Conf, Master, mode_name};

pub fn add(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<Success> {
    rcni_ipam::ensure_ifname_free(ctr, "ipvlan", &req.ifname, netns)?;
    let master = find_master(conf, master_side(conf.link_in_container, host, ctr))?;
    let mtu = master_mtu(conf.mtu, &master)?;

    // IPAM runs in its own process while the link is made (DESIGN §7).
    let ipam = if conf.uses_prev_ips() {
        None
    } else {
        conf.ipam
            .as_deref()
            .map(|kind| Allocation::start(kind, req))
            .transpose()?
    };
    let mut rollback = Rollback::new();
    if let Some(ipam) = &ipam {
        rollback.push(move || ipam.release());
    }

    let created = rcni_netlink::create_renamed_on_master(
        host,
        ctr,
        conf.link_in_container,
        netns.as_fd(),
        &req.ifname,
        |nl, temp, ns| {
            nl.create_ipvlan(&IpvlanSpec {
                name: temp.to_string(),
                parent: master.index,
                mode: conf.mode,
                mtu,
                ns,
            })
        },
    );
    let link = created.map_err(|e| create_error(&e, &req.ifname))?;

    match configure(conf, req, netns, ctr, &link, ipam.as_ref()) {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => Err(rollback.fail(rcni_ipam::undo_link(ctr, link.index, &req.ifname, e))),
    }
}

/// The master link, in the namespace `nl` works in: `master` (or the chain's), else the
/// default route's interface.
fn find_master(conf: &Conf, nl: &mut dyn Netlink) -> Result<Link> {
    let name = match &conf.master {
        Master::Named(name) => Some(name.as_str()),
        Master::DefaultRoute | Master::Unknown => None,
    };
    rcni_ipam::find_master(nl, name)
}

/// A kernel without ipvlan support says so plainly instead of "operation not supported".
fn create_error(e: &rcni_netlink::Error, ifname: &str) -> Error {
    if e.is_unknown_link_kind() {
        Error::internal(format!(
            "ipvlan: this kernel does not support ipvlan links ({})",
            e.ack().unwrap_or_default()
        ))
        .with_details(e.to_string())
    } else {
        Error::internal(format!("failed to create ipvlan {ifname:?}: {e}"))
    }
}

fn configure(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    ipam: Option<&Allocation<'_>>,
) -> Result<Success> {
    let source = match ipam {
        Some(ipam) => ipam.result()?,
        None => conf.prev.clone().unwrap_or_default(),
    };
    let mut result = rcni_ipam::container_result(req, netns, link, source);
    // The config's DNS, whatever IPAM returned (as the reference).
    result.dns = conf.dns.clone();
    rcni_ipam::enable_neighbour_notify(netns, ctr, link)?;
    rcni_ipam::configure_interface(netns, ctr, link, &result, Dad::Wait)?;
    Ok(result)
}

/// CHECK of the container side: the interface of `prevResult` is an ipvlan in the
/// configured mode with its MAC, its addresses and the result's routes are in place.
pub fn check(
    conf: &Conf,
    iface: &Interface,
    prev: &Success,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<()> {
    if let Master::Named(name) = &conf.master {
        let nl = master_side(conf.link_in_container, host, ctr);
        rcni_ipam::find_master(nl, Some(name))?;
    }
    let link = rcni_ipam::check_container_link(
        ctr,
        iface,
        Some(("ipvlan", "ipvlan")),
        rcni_ipam::Wording::GO,
    )?;
    let data = ctr
        .link_data(link.index)
        .or_internal(|| format!("reading the ipvlan mode of {}", link.name))?;
    if let LinkData::Ipvlan { mode } = data
        && mode != conf.mode
    {
        return Err(Error::internal(format!(
            "Container IPVlan mode {} does not match expected value: {}",
            mode_name(mode),
            mode_name(conf.mode)
        )));
    }
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink, IpvlanMode, Op, RouteSpec};
    use rcni_skel::Command;
    use serde_json::{Value, json};

    use super::*;
    use crate::config::tests::request;

    /// An interface name no test machine has: the best-effort sysctl writes for it fail
    /// instead of changing a real interface.
    const IFNAME: &str = "rcnitst0";

    fn chained(master: &str, extra: &Value) -> Request {
        let mut plugin = json!({"prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": master}],
            "ips": [{"address": "10.1.2.3/24", "gateway": "10.1.2.1", "interface": 0}],
            "routes": [{"dst": "10.9.0.0/16"}]
        }});
        if let (Some(doc), Some(keys)) = (plugin.as_object_mut(), extra.as_object()) {
            doc.extend(keys.clone());
        }
        let mut req = request(Command::Add, &plugin);
        req.ifname = IFNAME.into();
        req
    }

    fn run_add(req: &Request, host: &mut FakeNetlink, ctr: &mut FakeNetlink) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let netns = NetNs::current().expect("own netns");
        add(&conf, req, &netns, host, ctr)
    }

    #[test]
    fn chained_add_renames_in_the_container_and_uses_prev_ips() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let master = host.seed_link("net0", None);
        let req = chained("net0", &json!({"mode": "l3", "mtu": 1400}));
        let r = run_add(&req, &mut host, &mut ctr).expect("ADD");

        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, IFNAME);
        assert!(!r.interfaces[0].sandbox.is_empty());
        assert_eq!(r.ips.len(), 1);
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(r.routes.len(), 1, "prevResult's routes are kept");

        let created = host.calls().iter().find_map(|c| match c {
            Call::CreateIpvlan {
                parent,
                mode,
                mtu,
                in_other_ns,
                ..
            } => Some((*parent, *mode, *mtu, *in_other_ns)),
            _ => None,
        });
        assert_eq!(
            created,
            Some((master.index, IpvlanMode::L3, Some(1400), true)),
            "made on the host, born in the container"
        );
        let link = ctr
            .get_link(&IFNAME.into())
            .expect("renamed in the container");
        assert!(link.up);
        assert_eq!(
            ctr.link_data(link.index).expect("data"),
            LinkData::Ipvlan {
                mode: IpvlanMode::L3
            }
        );
        let addrs: Vec<String> = ctr
            .addr_list()
            .iter()
            .map(|a| a.address.to_string())
            .collect();
        assert_eq!(addrs, ["10.1.2.3/24"]);
        let routes: Vec<RouteSpec> = ctr.route_list();
        assert!(
            routes
                .iter()
                .any(|r| r.dst.to_string() == "10.9.0.0/16" && r.gw == "10.1.2.1".parse().ok()),
            "{routes:?}"
        );

        // CHECK with the result passes (the fake makes no prefix routes: the kernel's is
        // added here); the wrong mode is named.
        let mut prefix = RouteSpec::new("10.1.2.0/24".parse().expect("cidr"));
        prefix.oif = Some(link.index);
        ctr.add_route(&prefix).expect("prefix route");
        let mut check_req = request(Command::Check, &json!({"mode": "l3"}));
        check_req.ifname = IFNAME.into();
        let conf = Conf::parse(&check_req).expect("conf");
        check(&conf, &r.interfaces[0], &r, &mut host, &mut ctr).expect("CHECK");
        let l2 = Conf::parse(&request(Command::Check, &json!({}))).expect("conf");
        let e = check(&l2, &r.interfaces[0], &r, &mut host, &mut ctr).expect_err("mode");
        assert_eq!(
            e.msg,
            "Container IPVlan mode l3 does not match expected value: l2"
        );
    }

    #[test]
    fn link_in_container_finds_the_master_there() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        ctr.seed_link("net0", None);
        let req = chained("net0", &json!({"linkInContainer": true}));
        run_add(&req, &mut host, &mut ctr).expect("ADD");
        assert!(
            !host
                .calls()
                .iter()
                .any(|c| matches!(c, Call::CreateIpvlan { .. })),
            "nothing made through the host"
        );
        assert!(ctr.calls().iter().any(|c| matches!(
            c,
            Call::CreateIpvlan {
                in_other_ns: false,
                ..
            }
        )));
    }

    #[test]
    fn default_route_interface_is_the_master() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let uplink = host.seed_link("uplink", None);
        host.seed_link("other", None);
        let mut route = RouteSpec::new("0.0.0.0/0".parse().expect("cidr"));
        route.oif = Some(uplink.index);
        host.add_route(&route).expect("default route");
        let conf = Conf::parse(&request(
            Command::Add,
            &json!({"ipam": {"type": "host-local"}}),
        ))
        .expect("conf");
        assert_eq!(find_master(&conf, &mut host).expect("found").name, "uplink");

        let e = find_master(&conf, &mut ctr).expect_err("no default route there");
        assert_eq!(e.msg, "no default route interface found");
    }

    #[test]
    fn bad_mtu_and_taken_name_fail_before_anything_is_made() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("net0", None);
        let req = chained("net0", &json!({"mtu": 9000}));
        let e = run_add(&req, &mut host, &mut ctr).expect_err("mtu above the master's");
        assert_eq!(e.msg, "invalid MTU 9000, must be [0, master MTU(1500)]");
        let req = chained("net0", &json!({"mtu": -1}));
        run_add(&req, &mut host, &mut ctr).expect_err("negative mtu");

        ctr.seed_link(IFNAME, Some("veth"));
        let e = run_add(&chained("net0", &json!({})), &mut host, &mut ctr).expect_err("taken");
        assert!(e.msg.contains("already exists"), "{e}");
        assert!(
            !host
                .calls()
                .iter()
                .any(|c| matches!(c, Call::CreateIpvlan { .. })),
            "no link was made"
        );
    }

    #[test]
    fn a_failure_after_creation_deletes_the_link() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("net0", None);
        ctr.fail_next(Op::AddAddr, libc::EPERM);
        let e = run_add(&chained("net0", &json!({})), &mut host, &mut ctr).expect_err("addr");
        assert!(e.msg.contains("10.1.2.3/24"), "{e}");
        let names: Vec<String> = ctr.link_list().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo"], "the ipvlan is gone");
    }

    #[test]
    fn a_kernel_refusal_names_the_ipvlan() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("net0", None);
        host.fail_next(Op::CreateIpvlan, libc::EINVAL);
        let e = run_add(&chained("net0", &json!({})), &mut host, &mut ctr).expect_err("EINVAL");
        assert!(e.msg.starts_with("failed to create ipvlan"), "{e}");
        assert_eq!(ctr.link_list().len(), 1);
    }
}
