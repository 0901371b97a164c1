//! ADD and CHECK: the master, the macvlan under a temporary name, its rename inside the
//! container, the IPAM result.

use std::os::fd::AsFd;

use rcni_ipam::{Allocation, Dad};
use rcni_netlink::{Link, LinkData, LinkRef, MacvlanSpec, Netlink};
use rcni_netns::NetNs;
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Success};

use crate::config::{Conf, mode_name};

/// The master: `master`, or the interface of the first default route, looked up through
/// `nl` (the host's handle, or the container's with `linkInContainer`); `mtu` must fit it.
///
/// # Errors
/// No default route, no such interface, an `mtu` out of `[0, master MTU]`; the
/// reference's wording.
pub fn master_link(conf: &Conf, nl: &mut dyn Netlink) -> Result<Link> {
    let master = rcni_ipam::find_master(nl, conf.master.as_deref())?;
    rcni_ipam::master_mtu(conf.mtu, &master)?;
    Ok(master)
}

pub fn add(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
) -> Result<Success> {
    let master = master_link(
        conf,
        rcni_ipam::master_side(conf.link_in_container, host, ctr),
    )?;
    // Refuse early, before IPAM allocates anything: the rename would fail (the reference
    // fails there, with this message).
    if ctr.get_link(&LinkRef::from(req.ifname.as_str())).is_ok() {
        return Err(Error::internal(format!(
            "failed to rename macvlan to {:?}: file exists",
            req.ifname
        )));
    }
    // IPAM runs in its own process while the link is made (DESIGN §7).
    let ipam = conf
        .ipam
        .as_deref()
        .map(|kind| Allocation::start(kind, req))
        .transpose()?;
    let mut rollback = Rollback::new();
    if let Some(ipam) = &ipam {
        // Whatever fails below, an allocation made by IPAM must be released.
        rollback.push(move || ipam.release());
    }
    let attach = Attach {
        conf,
        req,
        netns,
        master: &master,
    };
    match add_link(&attach, host, ctr, ipam.as_ref(), &mut rollback) {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => Err(rollback.fail(e)),
    }
}

/// What one ADD works on, borrowed for its whole length.
struct Attach<'a> {
    conf: &'a Conf,
    req: &'a Request,
    netns: &'a NetNs,
    master: &'a Link,
}

fn add_link<'a>(
    attach: &Attach<'a>,
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
    ipam: Option<&Allocation<'_>>,
    rollback: &mut Rollback<'a>,
) -> Result<Success> {
    let Attach {
        conf, req, netns, ..
    } = *attach;
    let link = rcni_netlink::create_renamed_on_master(
        host,
        ctr,
        conf.link_in_container,
        netns.as_fd(),
        &req.ifname,
        |nl, temporary, ns| {
            nl.create_macvlan(&MacvlanSpec {
                name: temporary.to_string(),
                parent: attach.master.index,
                mode: conf.mode,
                mtu: u32::try_from(conf.mtu).ok().filter(|m| *m > 0),
                mac: conf.mac,
                bc_queue_len: conf.bc_queue_len,
                ns,
            })
        },
    )
    .map_err(|e| Error::internal(format!("failed to create macvlan {:?}: {e}", req.ifname)))?;
    let index = link.index;
    // The socket is reopened in the closure because the plugin's handles are borrowed for
    // the rest of ADD.
    rollback.push(move || {
        let mut nl = rcni_ipam::container_netlink(netns)?;
        match nl.del_link(index) {
            Err(e) if !e.is_not_found() => Err(Error::internal(format!(
                "deleting macvlan {:?}: {e}",
                req.ifname
            ))),
            _ => Ok(()),
        }
    });

    // Without IPAM (layer 2 only) the result has no addresses.
    let source = ipam.map(Allocation::result).transpose()?;
    let mut result = rcni_ipam::container_result(req, netns, &link, source.unwrap_or_default());
    // The reference reports the config's DNS, not IPAM's.
    result.dns = conf.dns.clone();
    if ipam.is_some() {
        rcni_ipam::enable_neighbour_notify(netns, ctr, &link)?;
        rcni_ipam::configure_interface(netns, ctr, &link, &result, Dad::Wait)?;
    } else {
        ctr.set_up(index)
            .or_internal(|| format!("failed to set {:?} UP", req.ifname))?;
    }
    Ok(result)
}

/// CHECK inside the container: `iface` (from `prevResult`) is a macvlan in the configured
/// mode with the result's MAC, and carries the result's addresses and routes. Go's
/// wording.
pub fn check(conf: &Conf, ctr: &mut dyn Netlink, iface: &Interface, prev: &Success) -> Result<()> {
    let wording = rcni_ipam::Wording {
        prefix: "",
        lower_case: true,
    };
    let link = rcni_ipam::check_container_link(ctr, iface, Some(("macvlan", "macvlan")), wording)?;
    if let Ok(LinkData::Macvlan { mode }) = ctr.link_data(link.index)
        && mode != conf.mode
    {
        return Err(Error::internal(format!(
            "container macvlan mode {} does not match expected value: {}",
            mode_name(mode),
            mode_name(conf.mode)
        )));
    }
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink, MacvlanMode, RouteSpec};
    use serde_json::json;

    use super::*;
    use crate::config::tests::request;

    fn conf(keys: serde_json::Value) -> Conf {
        Conf::parse(&request(keys)).expect("valid config")
    }

    #[test]
    fn master_defaults_to_the_default_route_interface() {
        let mut host = FakeNetlink::new();
        let e = master_link(&conf(json!({})), &mut host).expect_err("no default route");
        assert_eq!(e.msg, "no default route interface found");
        host.seed_link("eth0", None);
        let uplink = host.seed_link("uplink", None);
        host.add_route(&RouteSpec {
            oif: Some(uplink.index),
            gw: "192.0.2.1".parse().ok(),
            ..RouteSpec::new("0.0.0.0/0".parse().expect("cidr"))
        })
        .expect("default route");
        let m = master_link(&conf(json!({})), &mut host).expect("default");
        assert_eq!(m.name, "uplink");
        let m = master_link(&conf(json!({"master": "eth0"})), &mut host).expect("named");
        assert_eq!(m.name, "eth0");
    }

    #[test]
    fn master_and_mtu_errors_name_their_key() {
        let mut host = FakeNetlink::new();
        host.seed_link("eth0", None);
        let e = master_link(&conf(json!({"master": "nope"})), &mut host).expect_err("missing");
        assert_eq!(e.msg, "failed to lookup master \"nope\": Link not found");
        for mtu in [-1, 1501] {
            let e = master_link(&conf(json!({"master": "eth0", "mtu": mtu})), &mut host)
                .expect_err("mtu");
            assert_eq!(
                e.msg,
                format!("invalid MTU {mtu}, must be [0, master MTU(1500)]")
            );
        }
        master_link(&conf(json!({"master": "eth0", "mtu": 1500})), &mut host).expect("fits");
    }

    #[test]
    fn layer2_add_creates_in_the_container_renames_and_sets_up() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let eth0 = host.seed_link("eth0", None);
        let c = conf(json!({"master": "eth0", "mode": "vepa", "mtu": 1400,
            "mac": "02:00:00:00:00:07", "bcqueuelen": 50}));
        let mut req = request(json!({}));
        req.netns = Some("/ns".into());
        let ns = NetNs::current().expect("own netns");
        let r = add(&c, &req, &ns, &mut host, &mut ctr).expect("ADD");

        let created = host.take_calls().into_iter().find_map(|c| match c {
            Call::CreateMacvlan {
                name,
                parent,
                mode,
                mtu,
                mac,
                bc_queue_len,
                in_other_ns,
            } => Some((name, parent, mode, mtu, mac, bc_queue_len, in_other_ns)),
            _ => None,
        });
        let (name, parent, mode, mtu, mac, bcq, other) = created.expect("created");
        assert!(name.starts_with("veth") && name.len() == 12, "{name}");
        assert_eq!(
            (parent, mode, mtu, mac, bcq, other),
            (
                eth0.index,
                MacvlanMode::Vepa,
                Some(1400),
                Some([2, 0, 0, 0, 0, 7]),
                Some(50),
                true
            )
        );
        let link = ctr
            .get_link(&"eth0".into())
            .expect("renamed in the container");
        assert!(link.up, "layer 2 only: just up");
        assert!(ctr.get_link(&name.as_str().into()).is_err());
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, "eth0");
        assert_eq!(r.interfaces[0].mac, "02:00:00:00:00:07");
        assert!(r.ips.is_empty());

        let again = add(&c, &req, &ns, &mut host, &mut ctr).expect_err("eth0 exists");
        assert_eq!(
            again.msg,
            "failed to rename macvlan to \"eth0\": file exists"
        );
    }

    #[test]
    fn link_in_container_looks_for_the_master_there() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("eth0", None);
        let c = conf(json!({"master": "eth0", "linkInContainer": true}));
        let mut req = request(json!({}));
        req.ifname = "net1".into();
        let ns = NetNs::current().expect("own netns");
        let e = add(&c, &req, &ns, &mut host, &mut ctr).expect_err("not in the container");
        assert_eq!(e.msg, "failed to lookup master \"eth0\": Link not found");
        let inner = ctr.seed_link("eth0", None);
        add(&c, &req, &ns, &mut host, &mut ctr).expect("ADD");
        let created = ctr.take_calls().into_iter().find_map(|c| match c {
            Call::CreateMacvlan {
                parent,
                in_other_ns,
                ..
            } => Some((parent, in_other_ns)),
            _ => None,
        });
        assert_eq!(created, Some((inner.index, false)), "made in place");
        assert!(ctr.get_link(&"net1".into()).is_ok());
    }

    #[test]
    fn check_compares_kind_mode_and_mac() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        host.seed_link("eth0", None);
        let c = conf(json!({"master": "eth0", "mode": "private"}));
        let req = request(json!({}));
        let ns = NetNs::current().expect("own netns");
        let r = add(&c, &req, &ns, &mut host, &mut ctr).expect("ADD");
        let iface = r.interfaces[0].clone();
        check(&c, &mut ctr, &iface, &r).expect("as added");

        let e = check(&conf(json!({"mode": "bridge"})), &mut ctr, &iface, &r).expect_err("mode");
        assert_eq!(
            e.msg,
            "container macvlan mode private does not match expected value: bridge"
        );
        let wrong_mac = Interface {
            mac: "02:00:00:00:00:99".into(),
            ..iface.clone()
        };
        let e = check(&c, &mut ctr, &wrong_mac, &r).expect_err("mac");
        assert!(
            e.msg.starts_with("interface eth0 Mac 02:00:00:00:00:99"),
            "{e}"
        );
        ctr.seed_link("veth0", Some("veth"));
        let veth = Interface {
            name: "veth0".into(),
            ..iface
        };
        let e = check(&c, &mut ctr, &veth, &r).expect_err("kind");
        assert_eq!(
            e.msg,
            "error: Container interface veth0 not of type macvlan"
        );
    }

    /// On the real kernel: made under a temporary name in the container, renamed, with
    /// every attribute asked for; CHECK agrees; nothing is left on the host.
    #[test]
    fn kernel_macvlan_lands_renamed_in_the_container() {
        use rcni_netlink::RealNetlink;
        use rcni_testkit::TestNetns;

        if !rcni_testkit::require_root() {
            return;
        }
        let (host_ns, ctr_ns) = (TestNetns::new(), TestNetns::new());
        let _ = host_ns.exec_ok(&[
            "ip", "link", "add", "mvm0", "type", "veth", "peer", "name", "mvm1",
        ]);
        let _ = host_ns.exec_ok(&["ip", "link", "set", "mvm0", "up"]);
        let open = |ns: &TestNetns| ns.run(RealNetlink::new).expect("netlink socket");
        let (mut host, mut ctr) = (open(&host_ns), open(&ctr_ns));
        let c = conf(json!({"master": "mvm0", "mode": "private", "mtu": 1400,
            "bcqueuelen": 100, "mac": "02:00:00:00:00:42"}));
        let mut req = request(json!({}));
        req.netns = Some(ctr_ns.path().to_path_buf());
        let ns = ctr_ns.netns();
        let r = add(&c, &req, &ns, &mut host, &mut ctr).expect("ADD");
        assert_eq!(r.interfaces[0].sandbox, ctr_ns.path().display().to_string());

        let shown: serde_json::Value =
            serde_json::from_str(&ctr_ns.exec_ok(&["ip", "-j", "-d", "link", "show", "eth0"]))
                .expect("ip -j");
        let eth0 = &shown[0];
        assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan");
        assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "private");
        assert_eq!(eth0["linkinfo"]["info_data"]["bcqueuelen"], 100);
        assert_eq!(eth0["mtu"], 1400);
        assert_eq!(eth0["address"], "02:00:00:00:00:42");
        assert!(
            eth0["flags"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("UP"))),
            "{eth0}"
        );
        let host_links = host_ns.exec_ok(&["ip", "-o", "link"]);
        assert_eq!(
            host_links.lines().count(),
            3,
            "lo and the master pair: {host_links}"
        );
        check(&c, &mut ctr, &r.interfaces[0], &r).expect("CHECK");

        rcni_netlink::del_link_in(&ns, "eth0").expect("delete");
        assert_eq!(ctr_ns.exec_ok(&["ip", "-o", "link"]).lines().count(), 1);
    }
}
