//! Root-only tests against the real kernel. Every test moves its own thread into a fresh
//! network namespace first (children such as `ip` inherit it), or works in a throwaway
//! named one; the host's interfaces are never touched.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ipnetwork::IpNetwork;
use rcni_netlink::{
    BridgePortSpec, BridgeSpec, BridgeVlan, DummySpec, Family, Ipv4Conf, IpvlanMode, IpvlanSpec,
    Link, LinkRef, MacvlanMode, MacvlanSpec, Netlink, RealNetlink, RouteSpec, VethSpec, VlanSpec,
    format_mac, open_pair, scope, wait_dad,
};
use rcni_netns::{NetNs, sysctl};
use rcni_testkit::{TestNetns, require_root, unshare_thread_netns};
use serde_json::Value;

/// Root check plus a fresh namespace for this test's thread, and a socket in it.
fn setup() -> Option<RealNetlink> {
    if !require_root() {
        return None;
    }
    unshare_thread_netns();
    Some(RealNetlink::new().expect("netlink socket"))
}

fn parse_json(out: &std::process::Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// `ip -j <args>` in this thread's namespace.
fn ip(args: &[&str]) -> Value {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("running ip");
    parse_json(&out, &format!("ip {args:?}"))
}

/// `ip -j <args>` inside `ns`.
fn ip_in(ns: &TestNetns, args: &[&str]) -> Value {
    let argv: Vec<&str> = ["ip", "-j"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    parse_json(&ns.exec(&argv), &format!("ip {args:?} in {}", ns.name()))
}

fn net(s: &str) -> IpNetwork {
    s.parse().expect("test network")
}

fn veth<'a>(name: &str, peer: &str) -> VethSpec<'a> {
    VethSpec {
        name: name.into(),
        peer_name: peer.into(),
        peer_ns: None,
        mtu: None,
        peer_mac: None,
        master: None,
    }
}

fn link(nl: &mut RealNetlink, name: &str) -> Link {
    nl.get_link(&LinkRef::from(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A veth pair `a`/`b` in this namespace, both up (so DAD and routes via it work).
fn up_pair(nl: &mut RealNetlink, a: &str, b: &str) -> (Link, Link) {
    nl.create_veth(&veth(a, b)).expect("veth pair");
    let (la, lb) = (link(nl, a), link(nl, b));
    nl.set_up(la.index).expect("a up");
    nl.set_up(lb.index).expect("b up");
    (la, lb)
}

/// As [`up_pair`], with `accept_dad` of each end set before it goes up.
fn dad_pair(nl: &mut RealNetlink, a: (&str, &str), b: (&str, &str)) -> (Link, Link) {
    nl.create_veth(&veth(a.0, b.0)).expect("veth pair");
    for (name, dad) in [a, b] {
        sysctl::write(&format!("net/ipv6/conf/{name}/accept_dad"), dad).expect("accept_dad");
    }
    let (la, lb) = (link(nl, a.0), link(nl, b.0));
    nl.set_up(la.index).expect("a up");
    nl.set_up(lb.index).expect("b up");
    (la, lb)
}

#[test]
fn lo_is_found_and_a_missing_link_is_not() {
    let Some(mut nl) = setup() else { return };
    let lo = link(&mut nl, "lo");
    assert_eq!(lo.index, 1);
    assert_eq!(lo.kind, None);
    assert!(lo.up && lo.oper_up, "{lo:?}");
    assert_eq!(nl.get_link(&LinkRef::Index(1)).expect("by index"), lo);

    let e = nl.get_link(&LinkRef::from("nope0")).expect_err("missing");
    assert!(e.is_not_found());
    assert_eq!(e.to_string(), "Link not found");
    assert!(
        nl.get_link(&LinkRef::Index(4242))
            .expect_err("missing index")
            .is_not_found()
    );
    assert_eq!(nl.links().expect("dump"), vec![lo]);
}

#[test]
fn veth_peer_is_born_in_the_other_namespace() {
    let Some(mut host) = setup() else { return };
    let ctr_ns = TestNetns::new();
    let netns = ctr_ns.netns();
    let mac = [0x0a, 0x58, 0x0a, 0x01, 0x02, 0x03];
    host.create_veth(&VethSpec {
        name: "veth0a0b0c0d".into(),
        peer_name: "eth0".into(),
        peer_ns: Some(netns.as_fd()),
        mtu: Some(1400),
        peer_mac: Some(mac),
        master: None,
    })
    .expect("create veth");

    let h = link(&mut host, "veth0a0b0c0d");
    assert_eq!(h.kind.as_deref(), Some("veth"));
    assert_eq!(h.mtu, 1400);
    assert!(h.link_netnsid.is_some(), "peer is in another netns: {h:?}");
    assert!(
        host.get_link(&LinkRef::from("eth0"))
            .expect_err("not here")
            .is_not_found()
    );

    let (_host2, mut ctr) = open_pair(&netns).expect("open pair");
    let c = link(&mut ctr, "eth0");
    assert_eq!(c.mac, Some(mac));
    assert_eq!(c.mtu, 1400);
    assert_eq!(c.peer_index, Some(h.index));
    assert_eq!(h.peer_index, Some(c.index));

    let shown = ip_in(&ctr_ns, &["-d", "link", "show", "eth0"]);
    assert_eq!(shown[0]["address"], format_mac(mac));
    assert_eq!(shown[0]["mtu"], 1400);
    assert_eq!(shown[0]["linkinfo"]["info_kind"], "veth");
    let host_shown = ip(&["-d", "link", "show", "veth0a0b0c0d"]);
    assert!(host_shown[0].get("link_netnsid").is_some(), "{host_shown}");
    // One queue each way on both ends: the count a veth uses by default, allocated as
    // such rather than cut back from one per CPU (which waits holding the rtnl lock).
    for (end, shown) in [("host", &host_shown), ("container", &shown)] {
        assert_eq!(shown[0]["num_tx_queues"], 1, "{end}: {shown}");
        assert_eq!(shown[0]["num_rx_queues"], 1, "{end}: {shown}");
    }

    // Deleting the host end takes the container end with it.
    host.del_link(h.index).expect("delete");
    assert!(
        ctr.get_link(&LinkRef::from("eth0"))
            .expect_err("gone")
            .is_not_found()
    );
}

#[test]
fn veth_name_clashes_are_eexist_with_a_readable_error() {
    let Some(mut nl) = setup() else { return };
    let other = TestNetns::new();
    let netns = other.netns();
    nl.create_veth(&VethSpec {
        peer_ns: Some(netns.as_fd()),
        ..veth("vethaaaa", "eth0")
    })
    .expect("first");
    let e = nl
        .create_veth(&veth("vethaaaa", "eth1"))
        .expect_err("host name taken");
    assert!(e.is_exists());
    assert_eq!(
        e.to_string(),
        "creating veth vethaaaa (peer eth1): File exists (os error 17)"
    );
    let e = nl
        .create_veth(&VethSpec {
            peer_ns: Some(netns.as_fd()),
            ..veth("vethbbbb", "eth0")
        })
        .expect_err("container name taken");
    assert!(e.is_exists(), "{e}");
    // The failed create left nothing behind on the host.
    assert!(
        nl.get_link(&LinkRef::from("vethbbbb"))
            .expect_err("absent")
            .is_not_found()
    );
}

#[test]
fn bridge_is_created_up_and_reused() {
    let Some(mut nl) = setup() else { return };
    let spec = BridgeSpec {
        name: "cni0".into(),
        mtu: Some(1450),
        vlan_filtering: false,
        promisc: true,
    };
    let br = nl.ensure_bridge(&spec).expect("create");
    assert!(br.is_bridge() && br.up && br.promisc, "{br:?}");
    let again = nl.ensure_bridge(&spec).expect("reuse");
    assert_eq!(again.index, br.index);
    let shown = ip(&["-d", "link", "show", "cni0"]);
    assert_eq!(shown[0]["linkinfo"]["info_kind"], "bridge");
    assert_eq!(shown[0]["mtu"], 1450);
    let flags = shown[0]["flags"].as_array().expect("flags");
    assert!(
        flags.contains(&Value::from("UP")) && flags.contains(&Value::from("PROMISC")),
        "{flags:?}"
    );

    // An existing bridge that is down comes back up.
    nl.set_down(br.index).expect("down");
    assert!(nl.ensure_bridge(&spec).expect("reuse").up);
    assert!(link(&mut nl, "cni0").up);
}

#[test]
fn concurrent_ensure_bridge_all_succeed() {
    let Some(_nl) = setup() else { return };
    let ns = Arc::new(NetNs::current().expect("this netns"));
    const THREADS: usize = 8;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ns, barrier) = (Arc::clone(&ns), Arc::clone(&barrier));
            std::thread::spawn(move || {
                // Each thread opens its socket inside the test's namespace.
                let mut nl = ns.run(RealNetlink::new).expect("enter").expect("socket");
                barrier.wait();
                nl.ensure_bridge(&BridgeSpec {
                    name: "race0".into(),
                    mtu: None,
                    vlan_filtering: false,
                    promisc: false,
                })
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let first = results[0].as_ref().expect("ensure_bridge").index;
    for r in &results {
        let br = r.as_ref().expect("every caller succeeds");
        assert_eq!(br.index, first);
        assert!(br.up);
    }
    assert_eq!(
        ip(&["link", "show", "type", "bridge"])
            .as_array()
            .expect("list")
            .len(),
        1
    );
}

#[test]
fn ensure_bridge_refuses_a_non_bridge() {
    let Some(mut nl) = setup() else { return };
    nl.create_veth(&veth("notbr0", "notbr1")).expect("veth");
    let spec = BridgeSpec {
        name: "notbr0".into(),
        mtu: None,
        vlan_filtering: false,
        promisc: false,
    };
    let e = nl.ensure_bridge(&spec).expect_err("a veth is not a bridge");
    assert_eq!(
        e.to_string(),
        "\"notbr0\" already exists but is not a bridge"
    );
}

#[test]
fn vlan_filtering_is_reported_when_unsupported() {
    let Some(mut nl) = setup() else { return };
    let spec = BridgeSpec {
        name: "vbr0".into(),
        mtu: None,
        vlan_filtering: true,
        promisc: false,
    };
    match nl.ensure_bridge(&spec) {
        Ok(br) => {
            let shown = ip(&["-d", "link", "show", "vbr0"]);
            assert_eq!(
                shown[0]["linkinfo"]["info_data"]["vlan_filtering"], 1,
                "{br:?}"
            );
        }
        // This VM's kernel lacks CONFIG_BRIDGE_VLAN_FILTERING.
        Err(e) => assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}"),
    }
}

#[test]
fn link_setters_change_what_ip_shows() {
    let Some(mut nl) = setup() else { return };
    nl.create_veth(&veth("set0", "set1")).expect("veth");
    let l = link(&mut nl, "set0");
    assert!(!l.up);
    nl.set_mtu(l.index, 1280).expect("mtu");
    let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    nl.set_mac(l.index, mac).expect("mac");
    nl.set_promisc(l.index, true).expect("promisc");
    nl.set_alias(l.index, "rcni test").expect("alias");
    nl.set_name(l.index, "renamed0").expect("rename while down");
    nl.set_up(l.index).expect("up");
    let got = link(&mut nl, "renamed0");
    assert_eq!(got.index, l.index);
    assert_eq!(
        (got.mtu, got.mac, got.alias.as_deref()),
        (1280, Some(mac), Some("rcni test"))
    );
    assert!(got.up && got.promisc);
    let shown = ip(&["link", "show", "renamed0"]);
    assert_eq!(shown[0]["mtu"], 1280);
    assert_eq!(shown[0]["address"], "02:11:22:33:44:55");
    assert_eq!(shown[0]["ifalias"], "rcni test");

    // Older kernels refuse to rename a link that is up (EBUSY); newer ones allow it.
    match nl.set_name(l.index, "again0") {
        Ok(()) => nl.set_name(l.index, "renamed0").expect("rename back"),
        Err(e) => {
            assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");
            assert!(
                e.to_string()
                    .starts_with("setting name again0 of renamed0: "),
                "{e}"
            );
        }
    }
    let e = nl.set_name(l.index, "set1").expect_err("name taken");
    assert!(e.is_exists());
    let text = e.to_string();
    assert!(
        text.starts_with("setting name set1 of renamed0: File exists"),
        "{text}"
    );
    nl.set_promisc(l.index, false).expect("promisc off");
    nl.set_down(l.index).expect("down");
    let got = link(&mut nl, "renamed0");
    assert!(!got.up && !got.promisc);
}

#[test]
fn master_and_bridge_port_flags() {
    let Some(mut nl) = setup() else { return };
    let br = nl
        .ensure_bridge(&BridgeSpec {
            name: "br0".into(),
            mtu: None,
            vlan_filtering: false,
            promisc: false,
        })
        .expect("bridge");
    nl.create_veth(&veth("port0", "port1")).expect("veth");
    let p = link(&mut nl, "port0");

    // Port flags need a bridge master.
    let e = nl
        .set_bridge_port(
            p.index,
            &BridgePortSpec {
                hairpin: Some(true),
                isolated: None,
            },
        )
        .expect_err("not a port yet");
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
    let e = nl.set_master(p.index, 9999).expect_err("no such master");
    assert_eq!(e.errno(), Some(libc::EINVAL), "{e}");

    nl.set_master(p.index, br.index).expect("master");
    assert_eq!(link(&mut nl, "port0").master, Some(br.index));
    nl.set_bridge_port(
        p.index,
        &BridgePortSpec {
            hairpin: Some(true),
            isolated: Some(true),
        },
    )
    .expect("hairpin + isolated");
    let shown = ip(&["-d", "link", "show", "port0"]);
    let port = &shown[0]["linkinfo"]["info_slave_data"];
    assert_eq!(shown[0]["linkinfo"]["info_slave_kind"], "bridge");
    assert_eq!(
        (&port["hairpin"], &port["isolated"]),
        (&Value::Bool(true), &Value::Bool(true))
    );

    // None leaves a flag alone.
    nl.set_bridge_port(
        p.index,
        &BridgePortSpec {
            hairpin: Some(false),
            isolated: None,
        },
    )
    .expect("hairpin off");
    let port = &ip(&["-d", "link", "show", "port0"])[0]["linkinfo"]["info_slave_data"];
    assert_eq!(
        (&port["hairpin"], &port["isolated"]),
        (&Value::Bool(false), &Value::Bool(true))
    );

    nl.set_nomaster(p.index).expect("nomaster");
    assert_eq!(link(&mut nl, "port0").master, None);
}

/// A bridge `name` (VLAN filtering as asked) with the veth end `port` attached to it.
fn bridge_with_port(nl: &mut RealNetlink, name: &str, filtering: bool, port: &str) -> (Link, Link) {
    let br = nl
        .ensure_bridge(&BridgeSpec {
            name: name.into(),
            mtu: None,
            vlan_filtering: filtering,
            promisc: false,
        })
        .expect("bridge");
    let (p, _) = up_pair(nl, port, &format!("{port}p"));
    nl.set_master(p.index, br.index).expect("master");
    (br, p)
}

/// `bridge -j vlan show dev <port>` in this thread's namespace, as (vid, pvid, untagged).
fn bridge_vlan_show(port: &str) -> Vec<BridgeVlan> {
    let out = Command::new("bridge")
        .args(["-j", "vlan", "show", "dev", port])
        .output()
        .expect("running bridge");
    let doc = parse_json(&out, "bridge vlan show");
    let mut vlans = Vec::new();
    for entry in doc.as_array().into_iter().flatten() {
        for v in entry["vlans"].as_array().into_iter().flatten() {
            let flags = v["flags"].to_string();
            vlans.push(BridgeVlan {
                vid: u16::try_from(v["vlan"].as_u64().expect("vid")).expect("vid fits"),
                pvid: flags.contains("PVID"),
                untagged: flags.contains("Egress Untagged"),
            });
        }
    }
    vlans
}

fn bvlan(vid: u16, pvid: bool, untagged: bool) -> BridgeVlan {
    BridgeVlan {
        vid,
        pvid,
        untagged,
    }
}

/// True when this kernel has bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING).
fn kernel_has_bridge_vlans(nl: &mut RealNetlink) -> bool {
    let probe = BridgeSpec {
        name: "vprobe0".into(),
        mtu: None,
        vlan_filtering: true,
        promisc: false,
    };
    match nl.ensure_bridge(&probe) {
        Ok(br) => {
            nl.del_link(br.index).expect("removing the probe bridge");
            true
        }
        Err(e) if e.errno() == Some(libc::EOPNOTSUPP) => false,
        Err(e) => panic!("probing bridge VLAN filtering: {e}"),
    }
}

/// On a kernel without bridge VLAN filtering (this machine's), every port VLAN change is
/// EOPNOTSUPP and a port lists no VLANs; `vm_bridge_port_vlans` covers the other kernels.
#[test]
fn bridge_vlans_without_kernel_support_are_eopnotsupp() {
    let Some(mut nl) = setup() else { return };
    if kernel_has_bridge_vlans(&mut nl) {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"this kernel has bridge VLAN filtering: see bridge_port_vlans_on_a_filtering_bridge\n",
        );
        return;
    }
    let (_, p) = bridge_with_port(&mut nl, "nbr0", false, "nport0");
    assert!(nl.bridge_vlans(p.index).expect("dump").is_empty());
    let e = nl
        .bridge_vlan_add(p.index, 100, true, true)
        .expect_err("no VLAN support");
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
    assert!(
        e.to_string()
            .starts_with("adding VLAN 100 to bridge port nport0: "),
        "{e}"
    );
    // The kernel ignores the result of a VLAN delete (br_vlan_info), even here.
    nl.bridge_vlan_del(p.index, 1).expect("delete is ignored");
    // The AF_BRIDGE delete never removes the link itself.
    assert_eq!(link(&mut nl, "nport0").index, p.index);
}

#[test]
#[ignore = "needs a kernel with bridge VLAN filtering: run with scripts/vm-test.sh"]
fn bridge_port_vlans_on_a_filtering_bridge() {
    let Some(mut nl) = setup() else { return };
    let (br, p) = bridge_with_port(&mut nl, "vbr1", true, "vport0");
    let shown = ip(&["-d", "link", "show", "vbr1"]);
    assert_eq!(shown[0]["linkinfo"]["info_data"]["vlan_filtering"], 1);

    // A new port is in the default VLAN 1, PVID and untagged, as `bridge` shows it.
    assert_eq!(
        nl.bridge_vlans(p.index).expect("dump"),
        [bvlan(1, true, true)]
    );
    assert_eq!(bridge_vlan_show("vport0"), [bvlan(1, true, true)]);
    // The bridge's own entries are reported under its index, not the port's.
    assert_eq!(
        nl.bridge_vlans(br.index).expect("dump"),
        [bvlan(1, true, true)]
    );

    // Access VLAN 100 takes the PVID; VLAN 1 stays until removed.
    nl.bridge_vlan_add(p.index, 100, true, true)
        .expect("access");
    assert_eq!(
        nl.bridge_vlans(p.index).expect("dump"),
        [bvlan(1, false, true), bvlan(100, true, true)]
    );
    nl.bridge_vlan_del(p.index, 1).expect("default vlan");
    nl.bridge_vlan_add(p.index, 200, false, false)
        .expect("tagged");
    nl.bridge_vlan_add(p.index, 4094, false, false)
        .expect("tagged");
    let want = [
        bvlan(100, true, true),
        bvlan(200, false, false),
        bvlan(4094, false, false),
    ];
    assert_eq!(nl.bridge_vlans(p.index).expect("dump"), want);
    assert_eq!(bridge_vlan_show("vport0"), want);

    // Adding an existing VLAN again replaces its flags (PVID and untagged both go).
    nl.bridge_vlan_add(p.index, 100, false, false)
        .expect("retag");
    assert_eq!(
        nl.bridge_vlans(p.index).expect("dump")[0],
        bvlan(100, false, false)
    );

    // Deleting a VLAN the port lacks succeeds (the kernel ignores the delete's outcome);
    // the link itself is never deleted.
    nl.bridge_vlan_del(p.index, 1).expect("gone already");
    nl.bridge_vlan_del(p.index, 4094).expect("del");
    assert_eq!(link(&mut nl, "vport0").index, p.index);
    assert_eq!(bridge_vlan_show("vport0").len(), 2);

    // Only bridge ports have VLANs to change.
    let other = link(&mut nl, "vport0p");
    let e = nl
        .bridge_vlan_add(other.index, 100, true, true)
        .expect_err("not a port");
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
    let e = nl
        .bridge_vlan_del(other.index, 100)
        .expect_err("not a port");
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
    assert!(nl.bridge_vlans(other.index).expect("dump").is_empty());
}

#[test]
#[ignore = "needs a kernel with bridge VLAN filtering: run with scripts/vm-test.sh"]
fn vlan_filtering_is_only_chosen_when_the_bridge_is_created() {
    let Some(mut nl) = setup() else { return };
    let (br, p) = bridge_with_port(&mut nl, "vbr2", false, "vport2");
    let again = nl
        .ensure_bridge(&BridgeSpec {
            name: "vbr2".into(),
            mtu: None,
            vlan_filtering: true,
            promisc: false,
        })
        .expect("existing bridge");
    assert_eq!(again.index, br.index);
    let shown = ip(&["-d", "link", "show", "vbr2"]);
    assert_eq!(shown[0]["linkinfo"]["info_data"]["vlan_filtering"], 0);
    // Port VLANs can still be configured (the kernel keeps them, unused, until filtering
    // is turned on), as the reference plugin does on such a bridge.
    nl.bridge_vlan_add(p.index, 100, true, true)
        .expect("access");
    assert!(
        nl.bridge_vlans(p.index)
            .expect("dump")
            .contains(&bvlan(100, true, true))
    );
}

#[test]
fn deleting_a_missing_link_is_not_found() {
    let Some(mut nl) = setup() else { return };
    let e = nl.del_link(4242).expect_err("missing");
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.errno(), Some(libc::ENODEV));
}

/// A pod veth: `eth0` inside `pod`, its peer `host` in this thread's namespace.
fn pod_veth(nl: &mut RealNetlink, pod: &TestNetns, host: &str) {
    let ns = pod.netns();
    nl.create_veth(&VethSpec {
        peer_ns: Some(ns.as_fd()),
        ..veth(host, "eth0")
    })
    .expect("pod veth");
}

#[test]
fn a_started_deletion_is_done_when_the_link_is_gone_from_both_namespaces() {
    let Some(mut nl) = setup() else { return };
    let pod = TestNetns::new();
    for round in 0..3 {
        pod_veth(&mut nl, &pod, "dl-host");
        let ns = pod.netns();
        let addr = "10.77.0.2/24";
        let _ = pod.exec_ok(&["ip", "addr", "add", addr, "dev", "eth0"]);
        let (addrs, deletion) = rcni_netlink::start_del_link_in(&ns, "eth0")
            .expect("start")
            .expect("eth0 is there");
        assert_eq!(addrs, vec![net(addr)], "round {round}");
        deletion.wait().expect("deleted");
        // Gone on both sides the moment wait() returns, and the name is free again.
        assert!(
            ip_in(&pod, &["link", "show"])
                .as_array()
                .expect("links")
                .iter()
                .all(|l| l["ifname"] != "eth0")
        );
        assert!(
            nl.get_link(&LinkRef::from("dl-host"))
                .expect_err("peer gone")
                .is_not_found()
        );
    }
    // Nothing left to delete: no deletion at all.
    assert!(
        rcni_netlink::start_del_link_in(&pod.netns(), "eth0")
            .expect("lookup")
            .is_none()
    );
}

#[test]
fn a_refused_deletion_is_reported_with_the_kernels_errno() {
    let Some(_nl) = setup() else { return };
    let pod = TestNetns::new();
    // The loopback device cannot be deleted (it has no rtnl_link_ops).
    let (_, deletion) = rcni_netlink::start_del_link_in(&pod.netns(), "lo")
        .expect("start")
        .expect("lo is there");
    let e = deletion.wait().expect_err("lo stays");
    assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
    assert_eq!(ip_in(&pod, &["link", "show", "lo"])[0]["ifname"], "lo");
}

#[test]
fn moving_a_link_to_another_namespace() {
    let Some(mut nl) = setup() else { return };
    let other = TestNetns::new();
    nl.create_veth(&veth("mv0", "mv1")).expect("veth");
    let l = link(&mut nl, "mv1");
    nl.set_ns_fd(l.index, other.netns().as_fd()).expect("move");
    assert!(
        nl.get_link(&LinkRef::from("mv1"))
            .expect_err("moved")
            .is_not_found()
    );
    assert_eq!(ip_in(&other, &["link", "show", "mv1"])[0]["ifname"], "mv1");
}

#[test]
fn addresses_add_list_replace_delete() {
    let Some(mut nl) = setup() else { return };
    let (a, _) = up_pair(&mut nl, "ad0", "ad1");
    sysctl::write("net/ipv6/conf/ad0/accept_dad", "0").expect("no DAD");
    let v4 = net("10.1.2.3/24");
    let v6 = net("fd00:1::3/64");
    nl.add_addr(a.index, v4).expect("v4");
    nl.add_addr(a.index, v6).expect("v6");
    let e = nl.add_addr(a.index, v4).expect_err("dup");
    assert!(e.is_exists());
    // The kernel adds an extended-ack explanation after the OS error.
    let text = e.to_string();
    assert!(
        text.starts_with("adding 10.1.2.3/24 to ad0: File exists (os error 17)"),
        "{text}"
    );
    nl.replace_addr(a.index, v4).expect("replace existing");

    let v4s = nl.addrs(Some(a.index), Some(Family::V4)).expect("v4 list");
    assert_eq!(v4s.len(), 1);
    assert_eq!(v4s[0].address, v4);
    assert_eq!(v4s[0].scope, scope::UNIVERSE);
    assert!(v4s[0].permanent && !v4s[0].tentative);
    let all = nl.addrs(Some(a.index), None).expect("all");
    assert!(all.iter().any(|x| x.address == v6), "{all:?}");
    // The link-local address the kernel added is there too, with link scope.
    assert!(
        all.iter()
            .any(|x| x.address.ip().to_string().starts_with("fe80") && x.scope == scope::LINK)
    );
    assert!(
        nl.addrs(None, Some(Family::V4))
            .expect("ns")
            .iter()
            .any(|x| x.index == 1),
        "lo's 127.0.0.1"
    );

    let shown = ip(&["addr", "show", "dev", "ad0"]);
    let locals: Vec<String> = shown[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .map(|i| format!("{}/{}", i["local"].as_str().expect("local"), i["prefixlen"]))
        .collect();
    assert!(
        locals.contains(&"10.1.2.3/24".into()) && locals.contains(&"fd00:1::3/64".into()),
        "{locals:?}"
    );
    assert_eq!(shown[0]["addr_info"][0]["broadcast"], "10.1.2.255");

    nl.del_addr(a.index, v4).expect("delete");
    let e = nl.del_addr(a.index, v4).expect_err("gone");
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.errno(), Some(libc::EADDRNOTAVAIL));
}

#[test]
fn routes_with_gateways_link_scope_tables_and_metrics() {
    let Some(mut nl) = setup() else { return };
    let (a, _) = up_pair(&mut nl, "rt0", "rt1");
    sysctl::write("net/ipv6/conf/rt0/accept_dad", "0").expect("no DAD");
    nl.add_addr(a.index, net("10.1.0.2/24")).expect("v4 addr");
    nl.add_addr(a.index, net("fd00:1::2/64")).expect("v6 addr");

    let mut via = RouteSpec::new(net("10.9.0.0/16"));
    via.gw = Some("10.1.0.1".parse().expect("gw"));
    via.oif = Some(a.index);
    via.mtu = Some(1300);
    via.advmss = Some(1200);
    nl.add_route(&via).expect("gateway route");
    let e = nl.add_route(&via).expect_err("dup");
    assert!(e.is_exists(), "{e}");
    assert!(
        e.to_string()
            .starts_with("adding route 10.9.0.0/16 via 10.1.0.1"),
        "{e}"
    );

    let mut onlink = RouteSpec::new(net("10.8.0.5/16"));
    onlink.oif = Some(a.index);
    onlink.scope = Some(scope::LINK);
    nl.add_route(&onlink)
        .expect("link-scope route (host bits are cleared)");

    let mut default = RouteSpec::new(net("0.0.0.0/0"));
    default.gw = Some("10.1.0.1".parse().expect("gw"));
    nl.add_route(&default).expect("default route");

    let mut v6 = RouteSpec::new(net("fd00:9::/64"));
    v6.gw = Some("fd00:1::1".parse().expect("gw"));
    v6.oif = Some(a.index);
    v6.priority = Some(100);
    nl.add_route(&v6).expect("v6 gateway route");

    let mut other_table = RouteSpec::new(net("10.7.0.0/16"));
    other_table.oif = Some(a.index);
    other_table.table = Some(1000);
    nl.add_route(&other_table).expect("table 1000");

    let v4 = nl.routes(Some(Family::V4), None).expect("v4 routes");
    let find = |dst: &str| v4.iter().find(|r| r.dst == net(dst)).cloned();
    let got = find("10.9.0.0/16").expect("gateway route listed");
    assert_eq!(
        (got.gw, got.oif, got.mtu, got.advmss),
        (via.gw, via.oif, Some(1300), Some(1200))
    );
    assert_eq!(got.table, Some(254));
    assert_eq!(
        find("10.8.0.0/16").expect("link route").scope,
        Some(scope::LINK)
    );
    assert_eq!(find("0.0.0.0/0").expect("default").gw, default.gw);
    // The kernel's prefix route for the address, in the main table.
    assert_eq!(
        find("10.1.0.0/24").expect("prefix route").src,
        Some("10.1.0.2".parse::<IpAddr>().expect("ip"))
    );
    assert!(
        find("10.7.0.0/16").is_none(),
        "other tables stay out of the main table's list"
    );

    let v6s = nl.routes(Some(Family::V6), None).expect("v6 routes");
    let got6 = v6s
        .iter()
        .find(|r| r.dst == net("fd00:9::/64"))
        .expect("v6 route");
    assert_eq!((got6.gw, got6.priority), (v6.gw, Some(100)));
    let both = nl.routes(None, None).expect("both families");
    assert_eq!(both.len(), v4.len() + v6s.len());
    let t1000 = nl.routes(None, Some(1000)).expect("table 1000");
    assert_eq!(
        t1000.iter().map(|r| r.dst).collect::<Vec<_>>(),
        vec![net("10.7.0.0/16")]
    );
    let every = nl.routes(Some(Family::V4), Some(0)).expect("all tables");
    assert!(every.iter().any(|r| r.dst == net("10.7.0.0/16")));
    assert!(every.len() > v4.len());

    let shown = ip(&["route", "show", "10.9.0.0/16"]);
    assert_eq!(shown[0]["gateway"], "10.1.0.1");
    assert_eq!(shown[0]["dev"], "rt0");
    let shown = ip(&["route", "show", "10.8.0.0/16"]);
    assert_eq!(shown[0]["scope"], "link");

    via.mtu = Some(1280);
    nl.replace_route(&via).expect("replace");
    let got = nl.routes(Some(Family::V4), None).expect("list");
    assert_eq!(
        got.iter().find(|r| r.dst == via.dst).and_then(|r| r.mtu),
        Some(1280)
    );

    nl.del_route(&via).expect("delete");
    let e = nl.del_route(&via).expect_err("gone");
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.errno(), Some(libc::ESRCH));
    // A delete naming only the destination matches any route to it.
    nl.del_route(&RouteSpec::new(net("fd00:9::/64")))
        .expect("delete by destination");
    nl.del_route(&RouteSpec {
        table: Some(1000),
        ..RouteSpec::new(net("10.7.0.0/16"))
    })
    .expect("delete in table 1000");
}

#[test]
fn dad_wait_with_accept_dad_on_and_off() {
    let Some(mut nl) = setup() else { return };
    // accept_dad is set before the links go up: the link-local address is made then.
    let (a, b) = dad_pair(&mut nl, ("dad0", "1"), ("dad1", "0"));

    nl.add_addr(a.index, net("fd00:d::1/64"))
        .expect("addr with DAD");
    let fresh = nl.addrs(Some(a.index), Some(Family::V6)).expect("list");
    assert!(
        fresh
            .iter()
            .any(|x| x.address == net("fd00:d::1/64") && x.tentative),
        "{fresh:?}"
    );
    let start = Instant::now();
    wait_dad(&mut nl, a.index, Duration::from_secs(5)).expect("DAD completes");
    let with_dad = start.elapsed();
    assert!(
        nl.addrs(Some(a.index), Some(Family::V6))
            .expect("list")
            .iter()
            .all(|x| !x.tentative)
    );

    nl.add_addr(b.index, net("fd00:d::2/64"))
        .expect("addr without DAD");
    let start = Instant::now();
    wait_dad(&mut nl, b.index, Duration::from_secs(5)).expect("nothing to wait for");
    let without = start.elapsed();
    assert!(
        without < Duration::from_millis(100),
        "{without:?} (with DAD: {with_dad:?})"
    );
    assert!(with_dad > without, "{with_dad:?} vs {without:?}");
}

#[test]
fn dad_failure_is_reported() {
    let Some(mut nl) = setup() else { return };
    let (a, b) = dad_pair(&mut nl, ("dup0", "1"), ("dup1", "0"));
    let taken = net("fd00:e::1/64");
    nl.add_addr(b.index, taken).expect("owner");
    wait_dad(&mut nl, b.index, Duration::from_secs(5)).expect("owner settles");
    nl.add_addr(a.index, taken).expect("duplicate");
    let e = wait_dad(&mut nl, a.index, Duration::from_secs(5)).expect_err("DAD fails");
    assert!(e.to_string().contains("DADFAILED"), "{e}");
}

#[test]
fn dad_timeout_on_a_link_without_carrier() {
    let Some(mut nl) = setup() else { return };
    nl.create_veth(&veth("nc0", "nc1")).expect("veth");
    let a = link(&mut nl, "nc0");
    nl.set_up(a.index)
        .expect("up; the peer stays down, so no carrier");
    sysctl::write("net/ipv6/conf/nc0/accept_dad", "1").expect("DAD on");
    nl.add_addr(a.index, net("fd00:f::1/64")).expect("addr");
    let e = wait_dad(&mut nl, a.index, Duration::from_millis(200)).expect_err("stays tentative");
    assert_eq!(e.errno(), Some(libc::ETIMEDOUT), "{e}");
}

#[test]
fn dumps_span_many_datagrams() {
    let Some(mut nl) = setup() else { return };
    const PAIRS: u32 = 150;
    for i in 0..PAIRS {
        nl.create_veth(&veth(&format!("m{i}a"), &format!("m{i}b")))
            .expect("veth");
    }
    let links = nl.links().expect("dump");
    assert_eq!(links.len(), 1 + 2 * PAIRS as usize);
    for i in 0..PAIRS {
        assert!(
            links.iter().any(|l| l.name == format!("m{i}b")),
            "m{i}b missing"
        );
    }
    for l in links.iter().filter(|l| l.name.ends_with('a')) {
        let n: u32 = l.name[1..l.name.len() - 1].parse().expect("number");
        nl.add_addr(l.index, net(&format!("10.{}.{}.1/24", n / 200, n % 200)))
            .expect("addr");
    }
    let addrs = nl.addrs(None, Some(Family::V4)).expect("addr dump");
    assert_eq!(addrs.len(), 1 + PAIRS as usize);
    let ip_count = ip(&["link", "show"]).as_array().expect("list").len();
    assert_eq!(ip_count, links.len());
}

#[test]
fn dumps_survive_concurrent_changes() {
    let Some(mut nl) = setup() else { return };
    for i in 0..100 {
        nl.create_veth(&veth(&format!("c{i}a"), &format!("c{i}b")))
            .expect("veth");
    }
    let ns = NetNs::current().expect("this netns");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut nl = ns.run(RealNetlink::new).expect("enter").expect("socket");
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                nl.create_veth(&veth("churn0", "churn1"))
                    .expect("churn create");
                let l = nl.get_link(&LinkRef::from("churn0")).expect("churn link");
                nl.del_link(l.index).expect("churn delete");
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    for _ in 0..30 {
        let links = nl.links().expect("dump despite churn");
        assert!(
            links
                .iter()
                .filter(|l| l.name.starts_with('c') && l.name.len() <= 4 + 1)
                .count()
                >= 200
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let changes = churn.join().expect("churn thread");
    assert!(changes > 0);
    eprintln!("{changes} changes, {} dumps restarted", nl.dump_restarts());
}

#[test]
fn macvlan_is_created_in_the_target_namespace() {
    let Some(mut nl) = setup() else { return };
    let other = TestNetns::new();
    let netns = other.netns();
    let (parent, _) = up_pair(&mut nl, "mvp0", "mvp1");
    nl.create_macvlan(&MacvlanSpec {
        name: "mv0".into(),
        parent: parent.index,
        mode: MacvlanMode::Bridge,
        mtu: Some(1400),
        mac: Some([0x02, 0, 0, 0, 0, 0x42]),
        bc_queue_len: Some(2000),
        ns: Some(netns.as_fd()),
    })
    .expect("macvlan");
    let shown = ip_in(&other, &["-d", "link", "show", "mv0"]);
    assert_eq!(shown[0]["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(shown[0]["linkinfo"]["info_data"]["mode"], "bridge");
    assert_eq!(shown[0]["linkinfo"]["info_data"]["bcqueuelen"], 2000);
    assert_eq!(shown[0]["mtu"], 1400);
    assert_eq!(shown[0]["address"], "02:00:00:00:00:42");
    assert!(
        nl.get_link(&LinkRef::from("mv0"))
            .expect_err("not here")
            .is_not_found()
    );

    // A name taken in the target namespace is EEXIST.
    let e = nl
        .create_macvlan(&MacvlanSpec {
            name: "mv0".into(),
            parent: parent.index,
            mode: MacvlanMode::Private,
            mtu: None,
            mac: None,
            bc_queue_len: None,
            ns: Some(netns.as_fd()),
        })
        .expect_err("taken in the target");
    assert!(e.is_exists(), "{e}");
    // A name taken only here (the parent's own name) does not clash on this kernel: the
    // link is created in the target namespace directly.
    nl.create_macvlan(&MacvlanSpec {
        name: "mvp1".into(),
        parent: parent.index,
        mode: MacvlanMode::Vepa,
        mtu: None,
        mac: None,
        bc_queue_len: None,
        ns: Some(netns.as_fd()),
    })
    .expect("host-side name clash is fine");
}

#[test]
fn kinds_this_kernel_may_lack_fail_with_the_kernel_explanation() {
    let Some(mut nl) = setup() else { return };
    let (parent, _) = up_pair(&mut nl, "kp0", "kp1");
    let results = [
        (
            "dummy",
            nl.create_dummy(&DummySpec {
                name: "d0".into(),
                mtu: None,
                mac: None,
                ns: None,
            }),
        ),
        (
            "ipvlan",
            nl.create_ipvlan(&IpvlanSpec {
                name: "i0".into(),
                parent: parent.index,
                mode: IpvlanMode::L2,
                mtu: None,
                ns: None,
            }),
        ),
        (
            "vlan",
            nl.create_vlan(&VlanSpec {
                name: "v0".into(),
                parent: parent.index,
                vlan_id: 7,
                mtu: None,
                ns: None,
            }),
        ),
    ];
    for (kind, result) in results {
        let name = match kind {
            "dummy" => "d0",
            "ipvlan" => "i0",
            _ => "v0",
        };
        match result {
            Ok(()) => {
                let shown = ip(&["-d", "link", "show", name]);
                assert_eq!(shown[0]["linkinfo"]["info_kind"], kind);
            }
            Err(e) => {
                assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{kind}: {e}");
                assert!(
                    e.to_string().ends_with("Unknown device type"),
                    "{kind}: {e}"
                );
            }
        }
    }
}

#[test]
fn open_pair_handles_work_after_leaving_the_namespace() {
    let Some(mut host) = setup() else { return };
    let ctr_ns = TestNetns::new();
    let netns = ctr_ns.netns();
    let here = NetNs::current().expect("this netns");
    let (mut h, mut c) = open_pair(&netns).expect("pair");
    assert!(
        NetNs::current().expect("after").same_as(&here),
        "open_pair moved the thread"
    );
    let ctr_links = c.links().expect("container links");
    assert_eq!(
        ctr_links
            .iter()
            .map(|l| l.name.as_str())
            .collect::<Vec<_>>(),
        ["lo"]
    );
    c.set_up(1).expect("container lo up");
    assert_eq!(
        ip_in(&ctr_ns, &["link", "show", "lo"])[0]["operstate"],
        "UNKNOWN"
    );
    assert!(link(&mut c, "lo").up);
    h.create_veth(&veth("hx0", "hx1")).expect("host veth");
    assert!(host.get_link(&LinkRef::from("hx0")).is_ok());
    assert!(
        c.get_link(&LinkRef::from("hx0"))
            .expect_err("not in the container")
            .is_not_found()
    );

    // A namespace path that is gone is reported as such.
    let e = NetNs::open(std::path::Path::new("/run/netns/rcni-t-gone")).expect_err("missing");
    assert!(rcni_netns::is_missing(&e));
}

#[test]
fn allmulti_and_txqlen_are_set_and_read_back() {
    let Some(mut nl) = setup() else { return };
    nl.create_veth(&veth("amq0", "amq1")).expect("veth");
    let l = link(&mut nl, "amq0");
    assert!(!l.allmulti);
    assert_eq!(l.txqlen, 1000, "veth default queue length");
    nl.set_allmulti(l.index, true).expect("allmulti on");
    nl.set_txqlen(l.index, 42).expect("txqlen");
    let got = link(&mut nl, "amq0");
    assert!(got.allmulti && !got.promisc);
    assert_eq!(got.txqlen, 42);
    let shown = ip(&["-d", "link", "show", "amq0"]);
    assert_eq!(shown[0]["txqlen"], 42);
    assert!(
        shown[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "ALLMULTI")),
        "{shown}"
    );
    nl.set_allmulti(l.index, false).expect("allmulti off");
    nl.set_txqlen(l.index, 0).expect("txqlen 0");
    let got = link(&mut nl, "amq0");
    assert!(!got.allmulti);
    assert_eq!(got.txqlen, 0);
    let e = nl.set_txqlen(9999, 1).expect_err("no such link");
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn ipv4_conf_is_set_over_netlink_as_sysctl_shows_it() {
    let Some(mut nl) = setup() else { return };
    nl.create_veth(&veth("anf0", "anf1")).expect("veth");
    let l = link(&mut nl, "anf0");
    let read = || sysctl::read("net.ipv4.conf.anf0.arp_notify").expect("read sysctl");
    assert_eq!(read(), "0");
    nl.set_ipv4_conf(l.index, Ipv4Conf::ArpNotify, 1)
        .expect("arp_notify on");
    assert_eq!(read(), "1");
    assert_eq!(
        sysctl::read("net.ipv4.conf.anf1.arp_notify").expect("peer"),
        "0",
        "only that link"
    );
    nl.set_ipv4_conf(l.index, Ipv4Conf::ArpNotify, 0)
        .expect("arp_notify off");
    assert_eq!(read(), "0");
    let e = nl
        .set_ipv4_conf(9999, Ipv4Conf::ArpNotify, 1)
        .expect_err("no such link");
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn tap_is_created_persistent_with_owner_group_and_queues() {
    let Some(mut nl) = setup() else { return };
    let spec = rcni_netlink::TapSpec {
        name: "tap0".into(),
        multi_queue: true,
        vnet_hdr: true,
        owner: Some(1234),
        group: Some(4321),
    };
    rcni_netlink::create_tap(&spec).expect("tap");
    let l = link(&mut nl, "tap0");
    assert_eq!(l.kind.as_deref(), Some("tun"));
    assert!(!l.up, "made down");
    let shown = ip(&["-d", "link", "show", "tap0"]);
    let info = &shown[0]["linkinfo"]["info_data"];
    assert_eq!(info["type"], "tap", "{shown}");
    assert_eq!(info["pi"], false, "{shown}");
    assert_eq!(info["vnet_hdr"], true, "{shown}");
    assert_eq!(info["multi_queue"], true, "{shown}");
    assert_eq!(info["persist"], true, "{shown}");
    assert_eq!(info["user"], 1234, "{shown}");
    assert_eq!(info["group"], 4321, "{shown}");

    // Made exclusively: the same name again is EBUSY, and the device stays as it was.
    let e = rcni_netlink::create_tap(&spec).expect_err("exists");
    assert_eq!(e.errno(), Some(libc::EBUSY), "{e}");
    let plain = rcni_netlink::TapSpec {
        name: "tap1".into(),
        multi_queue: false,
        vnet_hdr: false,
        owner: None,
        group: None,
    };
    rcni_netlink::create_tap(&plain).expect("plain tap");
    let shown = ip(&["-d", "link", "show", "tap1"]);
    let info = &shown[0]["linkinfo"]["info_data"];
    assert_eq!(info["multi_queue"], false, "{shown}");
    assert_eq!(info["vnet_hdr"], false, "{shown}");
    assert!(info.get("user").is_none(), "no owner: {shown}");
    let tap1 = link(&mut nl, "tap1");
    nl.del_link(tap1.index).expect("delete");
}

#[test]
fn vrf_is_created_with_its_table_or_refused_as_an_unknown_kind() {
    let Some(mut nl) = setup() else { return };
    let spec = rcni_netlink::VrfSpec {
        name: "vrf0".into(),
        table: 1234,
        ns: None,
    };
    match nl.create_vrf(&spec) {
        Ok(()) => {
            let l = link(&mut nl, "vrf0");
            assert_eq!(l.kind.as_deref(), Some("vrf"));
            assert_eq!(
                nl.link_data(l.index).expect("data"),
                rcni_netlink::LinkData::Vrf { table: 1234 }
            );
            let shown = ip(&["-d", "link", "show", "vrf0"]);
            assert_eq!(shown[0]["linkinfo"]["info_data"]["table"], 1234, "{shown}");
            assert!(nl.create_vrf(&spec).expect_err("exists").is_exists());
        }
        Err(e) => assert!(e.is_unknown_link_kind(), "{e}"),
    }
}
