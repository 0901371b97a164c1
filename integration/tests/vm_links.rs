//! ipvlan, vlan and dummy run as a runtime runs them, beside the Go reference plugins, on a
//! kernel that has these link types: the VM of `scripts/vm-test.sh` (this machine's kernel
//! lacks them; `links.rs` covers what works without them).
//!
//! Ignored on the host; in the VM: `scripts/vm-test.sh vm_links -- --include-ignored`.

use std::path::Path;

use rcni_integration::{
    Attachment, Conflist, GO_PLUGINS, Host, addrs_in, links_in, our_plugins, ping, ready,
    routes_in, tag,
};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

const VM: &str = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh";

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

fn attach<'a>(cid: &'a str, ns: &'a TestNetns) -> Attachment<'a> {
    Attachment {
        container_id: cid,
        ifname: "eth0",
        netns: ns.path(),
    }
}

/// A host whose master is the veth `m0` (peer `m1`, both up so `m0` has carrier).
fn host_with_master() -> Host {
    let host = Host::new();
    for argv in [
        &[
            "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1",
        ][..],
        &["ip", "link", "set", "m1", "up"],
        &["ip", "link", "set", "m0", "up"],
    ] {
        let _ = host.sh(argv);
    }
    host
}

/// `ip -d -j link show dev <ifname>` in `ns`.
fn link(ns: &TestNetns, ifname: &str) -> Value {
    let out = ns.exec_ok(&["ip", "-d", "-j", "link", "show", "dev", ifname]);
    let doc: Value = serde_json::from_str(&out).expect("ip -j prints JSON");
    doc[0].clone()
}

/// One plugin in a list, with host-local over `ranges` in the host's data dir.
fn conflist(host: &Host, version: &str, net: &str, plugin: &Value, ranges: &Value) -> Value {
    let mut p = plugin.clone();
    p["ipam"] = json!({"type": "host-local", "dataDir": host.data_dir, "ranges": ranges,
                       "routes": [{"dst": "0.0.0.0/0"}]});
    json!({"cniVersion": version, "name": net, "plugins": [p]})
}

/// What differs by design between two runs: sandboxes, the MAC of links that take their
/// master's or a random one; and an empty `dns` in a 1.x result, which Debian's Go plugins
/// (libcni 1.1) print and newer libcni (and we) leave out.
fn normalise(mut r: Value) -> Value {
    if r["cniVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1."))
        && r["dns"] == json!({})
        && let Some(doc) = r.as_object_mut()
    {
        doc.remove("dns");
    }
    if let Some(ifs) = r["interfaces"].as_array_mut() {
        for i in ifs {
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("<netns>");
            }
            if i.get("mac").is_some() {
                i["mac"] = json!("<mac>");
            }
        }
    }
    r
}

/// The pod has only `lo`, the host only what it had, IPAM holds nothing.
fn assert_nothing_left(host: &Host, host_links: &[String], net: &str, pods: &[&TestNetns]) {
    for pod in pods {
        assert_eq!(links_in(pod), ["lo"]);
    }
    assert_eq!(host.links(), host_links);
    assert!(
        host.reservations(net).is_empty(),
        "{:?}",
        host.reservations(net)
    );
}

// --- ipvlan ------------------------------------------------------------------------------

#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn ipvlan_pods_on_one_master_reach_each_other_and_del_leaves_nothing() {
    assert!(ready(), "{VM}");
    let host = host_with_master();
    let host_links = host.links();
    let master = link(&host.ns, "m0");
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-ipvl-{}", tag());
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "ipvlan", "master": "m0"}),
        &json!([[{"subnet": "10.150.1.0/24"}], [{"subnet": "fd00:150:1::/64"}]]),
    ));
    let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    let r2 = list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");

    // The result, as the reference shapes it: the ipvlan alone, with the master's MAC.
    assert_eq!(
        r1["interfaces"],
        json!([{"name": "eth0", "mac": master["address"], "sandbox": c1.path()}])
    );
    assert_eq!(
        r1["ips"],
        json!([
            {"interface": 0, "address": "10.150.1.2/24", "gateway": "10.150.1.1"},
            {"interface": 0, "address": "fd00:150:1::2/64", "gateway": "fd00:150:1::1"}
        ])
    );
    assert_eq!(r1["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r2["ips"][0]["address"], "10.150.1.3/24");

    // The kernel agrees: an l2 ipvlan on m0, up, with the addresses and the routes.
    let l = link(&c1, "eth0");
    assert_eq!(l["linkinfo"]["info_kind"], "ipvlan", "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["mode"], "l2", "{l}");
    assert_eq!(l["link_index"], master["ifindex"], "{l}");
    assert!(
        l["link_netnsid"].is_number(),
        "the master is in another netns: {l}"
    );
    assert_eq!(l["address"], master["address"], "{l}");
    assert_eq!(l["operstate"], "UNKNOWN", "{l}");
    assert!(
        l["flags"].as_array().expect("flags").contains(&json!("UP")),
        "{l}"
    );
    assert_eq!(addrs_in(&c1, "eth0"), ["10.150.1.2/24", "fd00:150:1::2/64"]);
    let routes = routes_in(&c1, "-4");
    assert!(
        routes
            .iter()
            .any(|r| r == "default via 10.150.1.1 dev eth0"),
        "{routes:?}"
    );

    assert!(ping(&c1, "10.150.1.3"), "pod1 -> pod2");
    assert!(ping(&c2, "10.150.1.2"), "pod2 -> pod1");
    assert!(ping(&c1, "fd00:150:1::3"), "pod1 -> pod2 over IPv6");

    list.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect("CHECK");
    for (cid, ns, r) in [("pod1", &c1, &r1), ("pod2", &c2, &r2)] {
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("DEL");
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("second DEL");
    }
    assert_nothing_left(&host, &host_links, &net, &[&c1, &c2]);
}

#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn ipvlan_l3_and_l3s_modes_are_set_and_checked() {
    assert!(ready(), "{VM}");
    let host = host_with_master();
    let host_links = host.links();
    for (i, mode) in ["l3", "l3s"].into_iter().enumerate() {
        let (c1, c2) = (TestNetns::new(), TestNetns::new());
        let net = format!("rcni-ipvl-{}", tag());
        let subnet = format!("10.150.{}.0/24", 10 + i);
        let list = Conflist::new(conflist(
            &host,
            "0.4.0",
            &net,
            &json!({"type": "ipvlan", "master": "m0", "mode": mode, "mtu": 1400}),
            &json!([[{"subnet": subnet}]]),
        ));
        let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
        let r2 = list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");
        assert_eq!(r1["ips"][0]["version"], "4", "0.4.0 shape: {r1}");
        let l = link(&c1, "eth0");
        assert_eq!(l["linkinfo"]["info_data"]["mode"], mode, "{l}");
        assert_eq!(l["mtu"], 1400, "{l}");
        let peer = r2["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .expect("pod2 address");
        assert!(ping(&c1, peer), "{mode}: pod1 -> pod2");
        list.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
            .expect("CHECK");

        // CHECK names a mode that differs from the configured one.
        let other = if mode == "l3" { "l3s" } else { "l3" };
        let wrong = Conflist::new(conflist(
            &host,
            "0.4.0",
            &net,
            &json!({"type": "ipvlan", "master": "m0", "mode": other}),
            &json!([[{"subnet": subnet}]]),
        ));
        let e = wrong
            .verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
            .expect_err("mode differs")
            .err();
        assert_eq!(
            e["msg"],
            format!("Container IPVlan mode {mode} does not match expected value: {other}")
        );
        for (cid, ns, r) in [("pod1", &c1, &r1), ("pod2", &c2, &r2)] {
            list.verb(&host, &attach(cid, ns), "DEL", Some(r))
                .expect("DEL");
        }
        assert_nothing_left(&host, &host_links, &net, &[&c1, &c2]);
    }
}

/// Our ipvlan and Go's, each on a host of its own, give the same result for the same
/// config at every result version, and each one's CHECK and DEL accept the other's pod.
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn ipvlan_results_match_the_reference_and_attachments_interoperate() {
    assert!(ready(), "{VM}");
    let plugin = json!({"type": "ipvlan", "master": "m0", "mode": "l2",
                        "dns": {"nameservers": ["192.0.2.53"]}});
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let mut results = Vec::new();
        for dir in [our_plugins(), go().to_path_buf()] {
            let host = host_with_master();
            let pod = TestNetns::new();
            let net = format!("rcni-ipvl-{}", tag());
            let list = Conflist::new(conflist(
                &host,
                version,
                &net,
                &plugin,
                &json!([[{"subnet": "10.150.20.0/24"}]]),
            ))
            .with_dir("ipvlan", &dir)
            .with_cni_path(&dir);
            let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
            assert_eq!(
                r["interfaces"][0]["mac"],
                link(&host.ns, "m0")["address"],
                "{r}"
            );
            results.push(normalise(r.clone()));
            list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
                .expect("DEL");
        }
        assert_eq!(results[0], results[1], "{version}: ours vs Go");
    }

    // One host, two pods: Go's ADD checked and deleted by ours, and the other way round.
    let host = host_with_master();
    let host_links = host.links();
    let net = format!("rcni-ipvl-{}", tag());
    let doc = conflist(
        &host,
        "1.0.0",
        &net,
        &plugin,
        &json!([[{"subnet": "10.150.21.0/24"}]]),
    );
    let ours = Conflist::new(doc.clone());
    let theirs = Conflist::new(doc)
        .with_dir("ipvlan", go())
        .with_cni_path(&our_plugins());
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let r1 = theirs.add(&host, &attach("pod1", &c1)).expect("Go ADD");
    let r2 = ours.add(&host, &attach("pod2", &c2)).expect("our ADD");
    assert!(ping(&c1, "10.150.21.3"), "Go's pod -> ours");
    ours.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect("our CHECK of Go's pod");
    theirs
        .verb(&host, &attach("pod2", &c2), "CHECK", Some(&r2))
        .expect("Go's CHECK of our pod");
    ours.verb(&host, &attach("pod1", &c1), "DEL", Some(&r1))
        .expect("our DEL of Go's pod");
    theirs
        .verb(&host, &attach("pod2", &c2), "DEL", Some(&r2))
        .expect("Go's DEL of our pod");
    assert_nothing_left(&host, &host_links, &net, &[&c1, &c2]);
}

/// Without `master`: chained, the single interface of `prevResult` (whose IPs are used,
/// no IPAM); not chained, the interface of the default route. Same results as Go's.
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn ipvlan_master_from_the_chain_or_the_default_route() {
    assert!(ready(), "{VM}");
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "m0"}],
                      "ips": [{"address": "10.150.30.7/24", "gateway": "10.150.30.1",
                               "interface": 0}],
                      "routes": [{"dst": "10.150.128.0/17"}],
                      "dns": {"nameservers": ["10.150.30.53"]}});
    let mut results = Vec::new();
    for dir in [our_plugins(), go().to_path_buf()] {
        let host = host_with_master();
        let host_links = host.links();
        let pod = TestNetns::new();
        let conf = json!({"cniVersion": "1.0.0", "name": "chained", "type": "ipvlan",
                          "prevResult": prev});
        let netns = pod.path().display().to_string();
        let path = dir.display().to_string();
        let env = |command| {
            [
                ("CNI_COMMAND", command),
                ("CNI_CONTAINERID", "pod1"),
                ("CNI_NETNS", netns.as_str()),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", path.as_str()),
            ]
        };
        let r = host.run(&dir, "ipvlan", &env("ADD"), &conf).ok();
        let l = link(&pod, "eth0");
        assert_eq!(l["link_index"], link(&host.ns, "m0")["ifindex"], "{l}");
        assert_eq!(addrs_in(&pod, "eth0"), ["10.150.30.7/24"]);
        assert!(
            routes_in(&pod, "-4")
                .iter()
                .any(|r| r == "10.150.128.0/17 via 10.150.30.1 dev eth0"),
            "{:?}",
            routes_in(&pod, "-4")
        );
        results.push(normalise(r));
        let _ = host.run(&dir, "ipvlan", &env("DEL"), &conf).ok();
        assert_eq!(links_in(&pod), ["lo"]);
        assert_eq!(host.links(), host_links);
    }
    assert_eq!(results[0], results[1], "chained: ours vs Go");

    // The default route's interface: m9, not m0.
    let host = host_with_master();
    for argv in [
        &[
            "ip", "link", "add", "m9", "type", "veth", "peer", "name", "m8",
        ][..],
        &["ip", "link", "set", "m8", "up"],
        &["ip", "link", "set", "m9", "up"],
        &["ip", "addr", "add", "10.150.31.1/24", "dev", "m9"],
        &["ip", "route", "add", "default", "via", "10.150.31.254"],
    ] {
        let _ = host.sh(argv);
    }
    let pod = TestNetns::new();
    let net = format!("rcni-ipvl-{}", tag());
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "ipvlan"}),
        &json!([[{"subnet": "10.150.32.0/24"}]]),
    ));
    let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
    let l = link(&pod, "eth0");
    assert_eq!(l["link_index"], link(&host.ns, "m9")["ifindex"], "{l}");
    list.verb(&host, &attach("pod1", &pod), "CHECK", Some(&r))
        .expect("CHECK without master");
    list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
        .expect("DEL");
    assert_eq!(links_in(&pod), ["lo"]);
}

/// `linkInContainer`: the master is an interface of the pod, and the ipvlan is made there.
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn ipvlan_link_in_container_uses_the_pods_own_master() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    let pod = TestNetns::new();
    let ns = pod.name().to_string();
    for argv in [
        &[
            "ip", "link", "add", "lower0", "netns", &ns, "type", "veth", "peer", "name", "l1",
        ][..],
        &["ip", "link", "set", "l1", "up"],
    ] {
        let _ = host.sh(argv);
    }
    let _ = pod.exec_ok(&["ip", "link", "set", "lower0", "up"]);
    let host_links = host.links();
    let net = format!("rcni-ipvl-{}", tag());
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "ipvlan", "master": "lower0", "linkInContainer": true}),
        &json!([[{"subnet": "10.150.40.0/24"}]]),
    ));
    let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
    let l = link(&pod, "eth0");
    assert_eq!(l["link"], "lower0", "the master is beside it: {l}");
    assert_eq!(addrs_in(&pod, "eth0"), ["10.150.40.2/24"]);
    list.verb(&host, &attach("pod1", &pod), "CHECK", Some(&r))
        .expect("CHECK");
    list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
        .expect("DEL");
    assert_eq!(links_in(&pod), ["lo", "lower0"]);
    assert_eq!(host.links(), host_links);
    assert!(host.reservations(&net).is_empty());
}

/// ADD refuses a taken name before IPAM runs, and undoes the link and the allocation
/// when a later step fails (the reference leaves its ipvlan behind then).
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn ipvlan_failed_add_leaves_nothing() {
    assert!(ready(), "{VM}");
    let host = host_with_master();
    let host_links = host.links();
    let pod = TestNetns::new();
    let net = format!("rcni-ipvl-{}", tag());
    let mut doc = conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "ipvlan", "master": "m0"}),
        &json!([[{"subnet": "10.150.50.0/24"}]]),
    );
    // A gateway the pod cannot reach: the route is refused after the link is made.
    doc["plugins"][0]["ipam"]["routes"] = json!([{"dst": "10.99.0.0/16", "gw": "192.0.2.1"}]);
    let e = Conflist::new(doc)
        .add(&host, &attach("pod1", &pod))
        .expect_err("unreachable gateway")
        .err();
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("10.99.0.0/16"),
        "{e}"
    );
    assert_nothing_left(&host, &host_links, &net, &[&pod]);

    let _ = pod.exec_ok(&["ip", "link", "add", "eth0", "type", "dummy"]);
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "ipvlan", "master": "m0"}),
        &json!([[{"subnet": "10.150.50.0/24"}]]),
    ));
    let e = list
        .add(&host, &attach("pod1", &pod))
        .expect_err("eth0 is taken")
        .err();
    assert!(
        e["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("already exists"),
        "{e}"
    );
    assert_eq!(links_in(&pod), ["lo", "eth0"]);
    assert!(host.reservations(&net).is_empty());
}

// --- vlan --------------------------------------------------------------------------------

/// The wire beyond the host's `m0`: a switch namespace bridging `m0`'s peer with two peer
/// namespaces, one listening on VLAN 100 at 10.151.1.100, one on VLAN 200 at 10.151.1.200
/// (the same subnet: only the tag keeps them apart).
struct VlanWire {
    host: Host,
    _switch: TestNetns,
    peers: [TestNetns; 2],
}

fn vlan_wire() -> VlanWire {
    let host = Host::new();
    let switch = TestNetns::new();
    let peers = [TestNetns::new(), TestNetns::new()];
    let sw = switch.name().to_string();
    let _ = host.sh(&[
        "ip", "link", "add", "m0", "type", "veth", "peer", "name", "s0", "netns", &sw,
    ]);
    let _ = host.sh(&["ip", "link", "set", "m0", "up"]);
    let _ = switch.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    let _ = switch.exec_ok(&["ip", "link", "set", "s0", "master", "br0", "up"]);
    for (peer, id) in peers.iter().zip(["100", "200"]) {
        let port = format!("s{id}");
        let _ = switch.exec_ok(&[
            "ip",
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "e0",
            "netns",
            peer.name(),
        ]);
        let _ = switch.exec_ok(&["ip", "link", "set", &port, "master", "br0", "up"]);
        let sub = format!("e0.{id}");
        let addr = format!("10.151.1.{id}/24");
        for argv in [
            &["ip", "link", "set", "e0", "up"][..],
            &[
                "ip", "link", "add", "link", "e0", "name", &sub, "type", "vlan", "id", id,
            ],
            &["ip", "addr", "add", &addr, "dev", &sub],
            &["ip", "link", "set", &sub, "up"],
        ] {
            let _ = peer.exec_ok(argv);
        }
    }
    let _ = switch.exec_ok(&["ip", "link", "set", "br0", "up"]);
    VlanWire {
        host,
        _switch: switch,
        peers,
    }
}

#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn vlan_pod_reaches_its_vlan_only_and_del_leaves_nothing() {
    assert!(ready(), "{VM}");
    let wire = vlan_wire();
    let host = &wire.host;
    let host_links = host.links();
    let master = link(&host.ns, "m0");
    let pod = TestNetns::new();
    let net = format!("rcni-vlan-{}", tag());
    // Go's static IPAM for the address: ours runs beside the reference's IPAM.
    let doc = json!({"cniVersion": "1.0.0", "name": net, "plugins": [{
        "type": "vlan", "master": "m0", "vlanId": 100, "mtu": 1400,
        "ipam": {"type": "static", "addresses": [{"address": "10.151.1.5/24"}]}
    }]});
    let list = Conflist::new(doc).with_cni_path(go());
    let r = list.add(host, &attach("pod1", &pod)).expect("ADD");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(
        r["ips"],
        json!([{"interface": 0, "address": "10.151.1.5/24"}])
    );

    let l = link(&pod, "eth0");
    assert_eq!(l["linkinfo"]["info_kind"], "vlan", "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["id"], 100, "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["protocol"], "802.1Q", "{l}");
    assert_eq!(l["link_index"], master["ifindex"], "{l}");
    assert_eq!(l["mtu"], 1400, "{l}");
    assert_eq!(l["address"], r["interfaces"][0]["mac"], "{l}");
    assert_eq!(addrs_in(&pod, "eth0"), ["10.151.1.5/24"]);

    assert!(ping(&pod, "10.151.1.100"), "the peer on VLAN 100");
    assert!(
        !ping(&pod, "10.151.1.200"),
        "the peer on VLAN 200 is out of reach"
    );
    assert!(ping(&wire.peers[0], "10.151.1.5"), "and back");

    list.verb(host, &attach("pod1", &pod), "CHECK", Some(&r))
        .expect("CHECK");
    list.verb(host, &attach("pod1", &pod), "DEL", Some(&r))
        .expect("DEL");
    list.verb(host, &attach("pod1", &pod), "DEL", Some(&r))
        .expect("second DEL");
    assert_eq!(links_in(&pod), ["lo"]);
    assert_eq!(host.links(), host_links);
    // The VLAN id is free again on m0.
    let again = list.add(host, &attach("pod1", &pod)).expect("ADD again");
    list.verb(host, &attach("pod1", &pod), "DEL", Some(&again))
        .expect("DEL");
}

/// Our vlan and Go's give the same results; each one's CHECK and DEL accept the other's
/// pod; CHECK names a VLAN id that differs from the configured one.
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn vlan_results_match_the_reference_and_attachments_interoperate() {
    assert!(ready(), "{VM}");
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let mut results = Vec::new();
        for dir in [our_plugins(), go().to_path_buf()] {
            let host = host_with_master();
            let pod = TestNetns::new();
            let net = format!("rcni-vlan-{}", tag());
            let list = Conflist::new(conflist(
                &host,
                version,
                &net,
                &json!({"type": "vlan", "master": "m0", "vlanId": 42,
                        "dns": {"nameservers": ["192.0.2.53"]}}),
                &json!([[{"subnet": "10.151.20.0/24"}]]),
            ))
            .with_dir("vlan", &dir)
            .with_cni_path(&dir);
            let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
            results.push(normalise(r.clone()));
            list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
                .expect("DEL");
            assert_eq!(links_in(&pod), ["lo"]);
        }
        assert_eq!(results[0], results[1], "{version}: ours vs Go");
    }

    let host = host_with_master();
    let host_links = host.links();
    let net = format!("rcni-vlan-{}", tag());
    let doc = |id: u16| {
        conflist(
            &host,
            "1.0.0",
            &net,
            &json!({"type": "vlan", "master": "m0", "vlanId": id}),
            &json!([[{"subnet": "10.151.21.0/24"}]]),
        )
    };
    let theirs = Conflist::new(doc(7))
        .with_dir("vlan", go())
        .with_cni_path(&our_plugins());
    let ours = Conflist::new(doc(8));
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let r1 = theirs.add(&host, &attach("pod1", &c1)).expect("Go ADD");
    let r2 = ours.add(&host, &attach("pod2", &c2)).expect("our ADD");
    Conflist::new(doc(7))
        .verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect("our CHECK of Go's pod");
    let e = ours
        .verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect_err("pod1 is on VLAN 7")
        .err();
    assert_eq!(
        e["msg"],
        "vlan: interface eth0 has VLAN ID 7, configured vlanId is 8"
    );
    Conflist::new(doc(8))
        .with_dir("vlan", go())
        .verb(&host, &attach("pod2", &c2), "CHECK", Some(&r2))
        .expect("Go's CHECK of our pod");
    ours.verb(&host, &attach("pod1", &c1), "DEL", Some(&r1))
        .expect("our DEL of Go's pod");
    theirs
        .verb(&host, &attach("pod2", &c2), "DEL", Some(&r2))
        .expect("Go's DEL of our pod");
    assert_nothing_left(&host, &host_links, &net, &[&c1, &c2]);
}

/// `linkInContainer`: the VLAN is made on an interface of the pod.
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn vlan_link_in_container_uses_the_pods_own_master() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    let pod = TestNetns::new();
    let ns = pod.name().to_string();
    let _ = host.sh(&[
        "ip", "link", "add", "lower0", "netns", &ns, "type", "veth", "peer", "name", "l1",
    ]);
    let _ = host.sh(&["ip", "link", "set", "l1", "up"]);
    let _ = pod.exec_ok(&["ip", "link", "set", "lower0", "up"]);
    let net = format!("rcni-vlan-{}", tag());
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "vlan", "master": "lower0", "vlanId": 300, "linkInContainer": true}),
        &json!([[{"subnet": "10.151.40.0/24"}]]),
    ));
    let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
    let l = link(&pod, "eth0");
    assert_eq!(l["link"], "lower0", "{l}");
    assert_eq!(l["linkinfo"]["info_data"]["id"], 300, "{l}");
    list.verb(&host, &attach("pod1", &pod), "CHECK", Some(&r))
        .expect("CHECK");
    list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
        .expect("DEL");
    assert_eq!(links_in(&pod), ["lo", "lower0"]);
    assert!(host.reservations(&net).is_empty());
}

// --- dummy -------------------------------------------------------------------------------

#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn dummy_has_its_addresses_and_del_leaves_nothing() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    let host_links = host.links();
    let pod = TestNetns::new();
    let _ = pod.exec_ok(&["ip", "link", "set", "lo", "up"]);
    let net = format!("rcni-dmy-{}", tag());
    // Go's host-local for the addresses, both families.
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "dummy"}),
        &json!([[{"subnet": "10.152.1.0/24"}], [{"subnet": "fd00:152:1::/64"}]]),
    ))
    .with_cni_path(go());
    let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
    assert_eq!(r["interfaces"][0]["name"], "eth0");
    assert_eq!(
        r["interfaces"][0]["sandbox"],
        pod.path().display().to_string()
    );
    assert_eq!(
        r["ips"],
        json!([
            {"interface": 0, "address": "10.152.1.2/24", "gateway": "10.152.1.1"},
            {"interface": 0, "address": "fd00:152:1::2/64", "gateway": "fd00:152:1::1"}
        ])
    );
    let l = link(&pod, "eth0");
    assert_eq!(l["linkinfo"]["info_kind"], "dummy", "{l}");
    assert_eq!(l["address"], r["interfaces"][0]["mac"], "{l}");
    assert!(
        l["flags"].as_array().expect("flags").contains(&json!("UP")),
        "{l}"
    );
    assert_eq!(
        addrs_in(&pod, "eth0"),
        ["10.152.1.2/24", "fd00:152:1::2/64"]
    );
    assert!(
        routes_in(&pod, "-4")
            .iter()
            .any(|r| r == "default via 10.152.1.1 dev eth0"),
        "{:?}",
        routes_in(&pod, "-4")
    );
    assert!(ping(&pod, "10.152.1.2"), "its own address answers");
    assert!(ping(&pod, "fd00:152:1::2"), "over IPv6 too, at once");

    list.verb(&host, &attach("pod1", &pod), "CHECK", Some(&r))
        .expect("CHECK");
    let _ = pod.exec_ok(&["ip", "link", "set", "eth0", "down"]);
    let e = list
        .verb(&host, &attach("pod1", &pod), "CHECK", Some(&r))
        .expect_err("down")
        .err();
    assert_eq!(e["msg"], "Interface eth0 is down");
    for _ in 0..2 {
        list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
            .expect("DEL");
    }
    assert_nothing_left(&host, &host_links, &net, &[&pod]);
}

/// With Go's static IPAM and ours; a taken name fails before IPAM runs.
#[test]
#[ignore = "needs a kernel with ipvlan/vlan/dummy: run with scripts/vm-test.sh"]
fn dummy_with_static_ipam_and_a_taken_name() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    for path in [go().to_path_buf(), our_plugins()] {
        let pod = TestNetns::new();
        let doc = json!({"cniVersion": "0.4.0", "name": "dmy", "plugins": [{
            "type": "dummy",
            "ipam": {"type": "static", "addresses": [{"address": "198.51.100.7/24"}]}
        }]});
        let list = Conflist::new(doc).with_cni_path(&path);
        let r = list.add(&host, &attach("pod1", &pod)).expect("ADD");
        assert_eq!(
            r["ips"],
            json!([{"version": "4", "interface": 0, "address": "198.51.100.7/24"}]),
            "{}",
            path.display()
        );
        assert_eq!(addrs_in(&pod, "eth0"), ["198.51.100.7/24"]);
        list.verb(&host, &attach("pod1", &pod), "CHECK", Some(&r))
            .expect("CHECK");
        let e = list
            .add(&host, &attach("pod2", &pod))
            .expect_err("eth0 is taken")
            .err();
        assert!(
            e["msg"]
                .as_str()
                .unwrap_or_default()
                .contains("already exists"),
            "{e}"
        );
        list.verb(&host, &attach("pod1", &pod), "DEL", Some(&r))
            .expect("DEL");
        assert_eq!(links_in(&pod), ["lo"]);
    }
    let pod = TestNetns::new();
    let net = format!("rcni-dmy-{}", tag());
    let list = Conflist::new(conflist(
        &host,
        "1.0.0",
        &net,
        &json!({"type": "dummy"}),
        &json!([[{"subnet": "10.152.2.0/24"}]]),
    ));
    let _ = pod.exec_ok(&["ip", "link", "add", "eth0", "type", "dummy"]);
    list.add(&host, &attach("pod1", &pod))
        .expect_err("eth0 is taken");
    assert!(host.reservations(&net).is_empty(), "IPAM never ran");
}
