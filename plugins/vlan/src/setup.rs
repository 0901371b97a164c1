//! ADD and CHECK: the master, the VLAN link under a temporary name renamed in the
//! container, its addresses and routes.

use std::os::fd::AsFd;

use rcni_ipam::{Allocation, Dad, master_mtu, master_side};
use rcni_netlink::{Link, LinkData, Netlink, VlanSpec};
use rcni_netns::NetNs;
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Success};

use crate::config::Conf;

pub fn add(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<Success> {
    rcni_ipam::ensure_ifname_free(ctr, "vlan", &req.ifname, netns)?;
    let master = find_master(conf, master_side(conf.link_in_container, host, ctr))?;
    let mtu = master_mtu(conf.mtu, &master)?;

    // IPAM runs in its own process while the link is made (DESIGN §7).
    let kind = conf
        .ipam
        .as_deref()
        .ok_or_else(|| Error::internal("no plugin name provided"))?;
    let ipam = Allocation::start(kind, req)?;
    let mut rollback = Rollback::new();
    rollback.push(|| ipam.release());

    let created = rcni_netlink::create_renamed_on_master(
        host,
        ctr,
        conf.link_in_container,
        netns.as_fd(),
        &req.ifname,
        |nl, temp, ns| {
            nl.create_vlan(&VlanSpec {
                name: temp.to_string(),
                parent: master.index,
                vlan_id: conf.vlan_id,
                mtu,
                ns,
            })
        },
    );
    let link = created.map_err(|e| create_error(&e, conf))?;

    match configure(conf, req, netns, ctr, &link, &ipam) {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => Err(rollback.fail(rcni_ipam::undo_link(ctr, link.index, &req.ifname, e))),
    }
}

/// The master link, in the namespace `nl` works in.
fn find_master(conf: &Conf, nl: &mut dyn Netlink) -> Result<Link> {
    rcni_ipam::find_master(nl, Some(&conf.master))
}

/// A kernel without 802.1Q support says so plainly instead of "operation not supported".
fn create_error(e: &rcni_netlink::Error, conf: &Conf) -> Error {
    if e.is_unknown_link_kind() {
        Error::internal(format!(
            "vlan: this kernel does not support vlan links ({})",
            e.ack().unwrap_or_default()
        ))
        .with_details(format!("{e}; VLAN links come from the 8021q module"))
    } else {
        Error::internal(format!(
            "failed to create vlan {} on {:?}: {e}",
            conf.vlan_id, conf.master
        ))
    }
}

fn configure(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    ipam: &Allocation<'_>,
) -> Result<Success> {
    let source = ipam.result()?;
    let mut result = rcni_ipam::container_result(req, netns, link, source);
    // The config's DNS, whatever IPAM returned (as the reference).
    result.dns = conf.dns.clone();
    rcni_ipam::configure_interface(netns, ctr, link, &result, Dad::Wait)?;
    Ok(result)
}

/// CHECK of the container side: the interface of `prevResult` is a VLAN with the
/// configured id (and MTU, when set) and its MAC, its addresses and the result's routes
/// are in place.
pub fn check(
    conf: &Conf,
    iface: &Interface,
    prev: &Success,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<()> {
    find_master(conf, master_side(conf.link_in_container, host, ctr))?;
    let wording = rcni_ipam::Wording {
        prefix: "vlan: ",
        lower_case: false,
    };
    let link = rcni_ipam::check_container_link(ctr, iface, Some(("vlan", "vlan")), wording)?;
    let data = ctr
        .link_data(link.index)
        .or_internal(|| format!("reading the VLAN id of {}", link.name))?;
    if let LinkData::Vlan { id } = data
        && id != conf.vlan_id
    {
        return Err(Error::internal(format!(
            "vlan: interface {} has VLAN ID {id}, configured vlanId is {}",
            iface.name, conf.vlan_id
        )));
    }
    if conf.mtu != 0 && i64::from(link.mtu) != conf.mtu {
        return Err(Error::internal(format!(
            "vlan: interface {} has MTU {}, configured mtu is {}",
            iface.name, link.mtu, conf.mtu
        )));
    }
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink, Op, RouteSpec};
    use rcni_skel::Command;
    use rcni_testkit::fake_ipam;
    use serde_json::json;

    use super::*;
    use crate::config::tests::request;

    /// A container id unique to this test process.
    fn cid(name: &str) -> String {
        format!("{name}-{}", std::process::id())
    }

    fn add_request(name: &str, extra: &serde_json::Value) -> Request {
        let mut plugin = json!({"master": "net0", "vlanId": 42,
                                "ipam": {"type": "fake-ipam"},
                                "dns": {"nameservers": ["192.0.2.53"]}});
        if let (Some(doc), Some(keys)) = (plugin.as_object_mut(), extra.as_object()) {
            doc.extend(keys.clone());
        }
        let mut req = request(Command::Add, &plugin);
        req.container_id = cid(name);
        req.path = vec![fake_ipam::dir().to_path_buf()];
        req
    }

    fn run_add(req: &Request, host: &mut FakeNetlink, ctr: &mut FakeNetlink) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let netns = NetNs::current().expect("own netns");
        add(&conf, req, &netns, host, ctr)
    }

    #[test]
    fn add_makes_the_vlan_on_the_master_and_configures_it() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let master = host.seed_link("net0", None);
        let req = add_request("add-ok", &json!({"mtu": 1400}));
        let r = run_add(&req, &mut host, &mut ctr).expect("ADD");

        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, "eth0");
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(r.routes.len(), 1);
        assert_eq!(
            r.dns.nameservers,
            ["192.0.2.53"],
            "the config's dns replaces IPAM's, as in the reference"
        );
        let created = host.calls().iter().find_map(|c| match c {
            Call::CreateVlan {
                parent,
                vlan_id,
                mtu,
                in_other_ns,
                ..
            } => Some((*parent, *vlan_id, *mtu, *in_other_ns)),
            _ => None,
        });
        assert_eq!(created, Some((master.index, 42, Some(1400), true)));
        let link = ctr
            .get_link(&"eth0".into())
            .expect("renamed in the container");
        assert!(link.up);
        assert_eq!(
            ctr.link_data(link.index).expect("data"),
            LinkData::Vlan { id: 42 }
        );
        assert_eq!(fake_ipam::log(&cid("add-ok")), "ADD\n");

        let mut prefix = RouteSpec::new("10.1.2.0/24".parse().expect("cidr"));
        prefix.oif = Some(link.index);
        ctr.add_route(&prefix).expect("the kernel's prefix route");
        let conf = Conf::parse(&req).expect("conf");
        check(&conf, &r.interfaces[0], &r, &mut host, &mut ctr).expect("CHECK");
        let other = Conf::parse(&add_request("x", &json!({"vlanId": 43}))).expect("conf");
        let e = check(&other, &r.interfaces[0], &r, &mut host, &mut ctr).expect_err("id");
        assert_eq!(
            e.msg,
            "vlan: interface eth0 has VLAN ID 42, configured vlanId is 43"
        );
    }

    #[test]
    fn mtu_above_the_masters_fails_before_ipam() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("net0", None);
        let req = add_request("mtu", &json!({"mtu": 1501}));
        let e = run_add(&req, &mut host, &mut ctr).expect_err("mtu");
        assert_eq!(e.msg, "invalid MTU 1501, must be [0, master MTU(1500)]");
        assert_eq!(fake_ipam::log(&cid("mtu")), "", "IPAM never ran");
        let e = run_add(
            &add_request("nomaster", &json!({"master": "nope"})),
            &mut host,
            &mut ctr,
        )
        .expect_err("no master");
        assert_eq!(e.msg, "failed to lookup master \"nope\": Link not found");
    }

    #[test]
    fn failures_after_ipam_release_it_and_delete_the_link() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("net0", None);
        host.fail_next(Op::CreateVlan, libc::EEXIST);
        let e =
            run_add(&add_request("create", &json!({})), &mut host, &mut ctr).expect_err("create");
        assert!(
            e.msg.starts_with("failed to create vlan 42 on \"net0\""),
            "{e}"
        );
        assert_eq!(fake_ipam::log(&cid("create")), "ADD\nDEL\n");

        ctr.fail_next(Op::AddRoute, libc::EPERM);
        let e = run_add(&add_request("route", &json!({})), &mut host, &mut ctr).expect_err("route");
        assert!(e.msg.contains("10.9.0.0/16"), "{e}");
        assert_eq!(fake_ipam::log(&cid("route")), "ADD\nDEL\n");
        let names: Vec<String> = ctr.link_list().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo"], "the VLAN link is gone");
    }
}
