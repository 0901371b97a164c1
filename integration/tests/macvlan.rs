//! macvlan (+ host-local, static) run as a runtime runs them, on a master that is a veth
//! inside the test's host namespace, beside the Go reference plugins.

use std::path::Path;

use rcni_integration::{
    Attachment, Conflist, GO_PLUGINS, Host, Outcome, addrs_in, links_in, our_plugins, ping, ready,
    routes_in, tag,
};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

/// The master: one end of a veth pair in the host namespace, both ends up.
const MASTER: &str = "mvm0";

fn host_with_master() -> Host {
    let host = Host::new();
    let _ = host.sh(&[
        "ip", "link", "add", MASTER, "type", "veth", "peer", "name", "mvm1",
    ]);
    let _ = host.sh(&["ip", "link", "set", "mvm1", "up"]);
    let _ = host.sh(&["ip", "link", "set", MASTER, "up"]);
    host
}

fn macvlan_conflist(host: &Host, version: &str, name: &str, ranges: Value) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [{
            "type": "macvlan",
            "master": MASTER,
            "ipam": {
                "type": "host-local",
                "dataDir": host.data_dir,
                "ranges": ranges,
                "routes": [{"dst": "0.0.0.0/0"}]
            }
        }]
    })
}

fn attach<'a>(cid: &'a str, ns: &'a TestNetns) -> Attachment<'a> {
    Attachment {
        container_id: cid,
        ifname: "eth0",
        netns: ns.path(),
    }
}

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

/// Nothing of the attachments is left: only `lo` in the pods, only `lo` and the master
/// pair on the host, no reservation.
fn assert_nothing_left(host: &Host, net: &str, pods: &[&TestNetns]) {
    for pod in pods {
        assert_eq!(links_in(pod), ["lo"]);
    }
    let mut host_links = host.links();
    host_links.sort();
    assert_eq!(host_links, ["lo", "mvm0", "mvm1"]);
    assert!(
        host.reservations(net).is_empty(),
        "{:?}",
        host.reservations(net)
    );
}

/// `ip -d -j link show <ifname>` in `ns`.
fn link_details(ns: &TestNetns, ifname: &str) -> Value {
    let shown: Value =
        serde_json::from_str(&ns.exec_ok(&["ip", "-d", "-j", "link", "show", ifname]))
            .expect("ip -j output");
    shown[0].clone()
}

#[test]
fn two_pods_on_one_master_ping_each_other_and_del_leaves_nothing() {
    if !ready() {
        return;
    }
    let host = host_with_master();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-mv-{}", tag());
    let list = Conflist::new(macvlan_conflist(
        &host,
        "1.0.0",
        &net,
        json!([[{"subnet": "10.122.1.0/24"}]]),
    ));
    let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    let r2 = list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");

    // The result, as the reference shapes it: the macvlan alone, IPs on index 0.
    let ifs = r1["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 1, "{r1}");
    assert_eq!(ifs[0]["name"], "eth0");
    assert_eq!(ifs[0]["sandbox"], c1.path().display().to_string());
    assert_eq!(
        r1["ips"],
        json!([{"interface": 0, "address": "10.122.1.2/24", "gateway": "10.122.1.1"}])
    );
    assert_eq!(r1["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r2["ips"][0]["address"], "10.122.1.3/24");

    // The kernel: a bridge-mode macvlan of the master, with the address and routes.
    let eth0 = link_details(&c1, "eth0");
    assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan", "{eth0}");
    assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "bridge", "{eth0}");
    assert_eq!(eth0["address"], ifs[0]["mac"], "{eth0}");
    assert_eq!(addrs_in(&c1, "eth0"), ["10.122.1.2/24"]);
    assert_eq!(
        routes_in(&c1, "-4"),
        [
            "default via 10.122.1.1 dev eth0",
            "10.122.1.0/24 dev eth0 proto kernel scope link src 10.122.1.2",
        ]
    );
    let notify = c1.exec_ok(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_notify"]);
    assert_eq!(notify.trim(), "1");

    assert!(ping(&c1, "10.122.1.3"), "pod1 -> pod2");
    assert!(ping(&c2, "10.122.1.2"), "pod2 -> pod1");

    list.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect("CHECK");
    for (cid, ns, r) in [("pod1", &c1, &r1), ("pod2", &c2, &r2)] {
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("DEL");
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("second DEL");
    }
    assert_nothing_left(&host, &net, &[&c1, &c2]);
}

#[test]
fn layer2_only_with_every_link_key() {
    if !ready() {
        return;
    }
    let host = host_with_master();
    let c1 = TestNetns::new();
    let net = format!("rcni-mv-{}", tag());
    let list = Conflist::new(json!({
        "cniVersion": "1.0.0", "name": net,
        "plugins": [{"type": "macvlan", "master": MASTER, "mode": "private", "mtu": 1400,
                     "bcqueuelen": 300, "capabilities": {"mac": true}}]
    }));
    let list = Conflist {
        capability_args: json!({"mac": "02:00:00:12:34:56"}),
        ..list
    };
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    assert!(r.get("ips").is_none(), "{r}");
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:12:34:56");
    let eth0 = link_details(&c1, "eth0");
    assert_eq!(eth0["linkinfo"]["info_data"]["mode"], "private", "{eth0}");
    assert_eq!(eth0["linkinfo"]["info_data"]["bcqueuelen"], 300, "{eth0}");
    assert_eq!(eth0["mtu"], 1400, "{eth0}");
    assert_eq!(eth0["address"], "02:00:00:12:34:56", "{eth0}");
    assert!(
        eth0["flags"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("UP"))),
        "layer 2 only: up, {eth0}"
    );
    list.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r))
        .expect("CHECK");
    // CHECK against another mode fails with the reference's message.
    let mut other = list.doc.clone();
    other["plugins"][0]["mode"] = json!("vepa");
    let other = Conflist {
        doc: other,
        ..Conflist::new(json!({}))
    };
    let e = other
        .verb(&host, &attach("pod1", &c1), "CHECK", Some(&r))
        .expect_err("mode differs");
    assert_eq!(
        e.err()["msg"],
        "container macvlan mode private does not match expected value: vepa"
    );
    list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
        .expect("DEL");
    assert_nothing_left(&host, &net, &[&c1]);
}

#[test]
fn master_defaults_to_the_default_route_interface() {
    if !ready() {
        return;
    }
    let host = host_with_master();
    let c1 = TestNetns::new();
    let net = format!("rcni-mv-{}", tag());
    let mut doc = macvlan_conflist(&host, "1.0.0", &net, json!([[{"subnet": "10.122.2.0/24"}]]));
    doc["plugins"][0]
        .as_object_mut()
        .expect("plugin")
        .remove("master");
    let list = Conflist::new(doc);
    let e = list
        .add(&host, &attach("pod1", &c1))
        .expect_err("no default route yet");
    assert_eq!(e.err()["msg"], "no default route interface found");
    assert!(host.reservations(&net).is_empty());

    let _ = host.sh(&["ip", "route", "add", "default", "dev", MASTER]);
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    let eth0 = link_details(&c1, "eth0");
    assert_eq!(eth0["linkinfo"]["info_kind"], "macvlan");
    let master: Value =
        serde_json::from_str(&host.sh(&["ip", "-j", "link", "show", MASTER])).expect("ip -j");
    assert_eq!(eth0["link_index"], master[0]["ifindex"], "{eth0}");
    list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
        .expect("DEL");
    assert_nothing_left(&host, &net, &[&c1]);
}

#[test]
fn link_in_container_uses_a_master_inside_the_pod() {
    if !ready() {
        return;
    }
    let host = host_with_master();
    let c1 = TestNetns::new();
    let _ = c1.exec_ok(&[
        "ip", "link", "add", "inner0", "type", "veth", "peer", "name", "inner1",
    ]);
    let _ = c1.exec_ok(&["ip", "link", "set", "inner0", "up"]);
    let net = format!("rcni-mv-{}", tag());
    let list = Conflist::new(json!({
        "cniVersion": "1.0.0", "name": net,
        "plugins": [{"type": "macvlan", "master": "inner0", "linkInContainer": true,
            "ipam": {"type": "static", "addresses": [{"address": "10.122.3.5/24"}]}}]
    }));
    let at = Attachment {
        container_id: "pod1",
        ifname: "net1",
        netns: c1.path(),
    };
    let r = list.add(&host, &at).expect("ADD");
    assert_eq!(
        r["ips"],
        json!([{"interface": 0, "address": "10.122.3.5/24"}])
    );
    let net1 = link_details(&c1, "net1");
    assert_eq!(net1["link"], "inner0", "{net1}");
    assert_eq!(addrs_in(&c1, "net1"), ["10.122.3.5/24"]);
    let mut host_links = host.links();
    host_links.sort();
    assert_eq!(host_links, ["lo", "mvm0", "mvm1"], "the host is untouched");
    list.verb(&host, &at, "CHECK", Some(&r)).expect("CHECK");
    // The master is looked up in the pod: one of the host's own names is not found there.
    let mut wrong = list.doc.clone();
    wrong["plugins"][0]["master"] = json!(MASTER);
    let wrong = Conflist {
        doc: wrong,
        ..Conflist::new(json!({}))
    };
    let e = wrong
        .verb(&host, &at, "CHECK", Some(&r))
        .expect_err("no mvm0 in the pod");
    assert_eq!(
        e.err()["msg"],
        "failed to lookup master \"mvm0\": Link not found"
    );
    list.verb(&host, &at, "DEL", Some(&r)).expect("DEL");
    let mut pod_links = links_in(&c1);
    pod_links.sort();
    assert_eq!(pod_links, ["inner0", "inner1", "lo"]);
}

/// What differs by design between two runs: MACs, sandboxes; and an empty `dns` in a 1.x
/// result, which Debian's Go plugins (libcni 1.1) print and newer libcni (and we) leave
/// out, as the 1.0.0 types' marshalling does since.
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
            i["mac"] = json!("<mac>");
            i["sandbox"] = json!("<netns>");
        }
    }
    r
}

/// One ADD with `dir`'s macvlan and host-local: the normalised result and what the
/// kernel shows in the pod.
fn observe(dir: &Path, version: &str, ipam: bool) -> Vec<Value> {
    let host = host_with_master();
    let c1 = TestNetns::new();
    let net = format!("rcni-mvv-{}", tag());
    let mut doc = macvlan_conflist(
        &host,
        version,
        &net,
        json!([[{"subnet": "10.122.4.0/24"}], [{"subnet": "fd12:3456:24::/64"}]]),
    );
    doc["plugins"][0]["mode"] = json!("vepa");
    doc["plugins"][0]["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "10.99.0.0/16"}]);
    // The IPAM's DNS is not reported, the config's is.
    let resolv = host.data_dir.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.122.4.54\nsearch example\n").expect("resolv.conf");
    doc["plugins"][0]["ipam"]["resolvConf"] = json!(resolv);
    doc["plugins"][0]["dns"] = json!({"nameservers": ["10.122.4.53"]});
    if !ipam {
        let plugin = doc["plugins"][0].as_object_mut().expect("plugin");
        plugin.remove("ipam");
        plugin.remove("dns");
    }
    let list = Conflist::new(doc)
        .with_dir("macvlan", dir)
        .with_dir("host-local", dir);
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    let eth0 = link_details(&c1, "eth0");
    let seen = vec![
        normalise(r.clone()),
        json!(addrs_in(&c1, "eth0")),
        json!(
            routes_in(&c1, "-4")
                .into_iter()
                .chain(routes_in(&c1, "-6"))
                .filter(|l| !l.starts_with("fe80::") && !l.starts_with("multicast"))
                .collect::<Vec<_>>()
        ),
        eth0["linkinfo"].clone(),
        json!([eth0["mtu"].clone(), eth0["flags"].clone()]),
    ];
    list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
        .expect("DEL");
    assert_nothing_left(&host, &net, &[&c1]);
    seen
}

#[test]
fn results_and_kernel_state_match_the_reference_at_every_version() {
    if !ready() {
        return;
    }
    for (version, ipam) in [
        ("0.3.1", true),
        ("0.4.0", true),
        ("1.0.0", true),
        ("1.0.0", false),
    ] {
        let ours = observe(&our_plugins(), version, ipam);
        let theirs = observe(go(), version, ipam);
        assert_eq!(
            ours, theirs,
            "cniVersion {version}, ipam {ipam}: ours vs the reference"
        );
    }
}

#[test]
fn del_after_the_netns_is_gone_still_releases_the_ip() {
    if !ready() {
        return;
    }
    let host = host_with_master();
    let c1 = TestNetns::new();
    let net = format!("rcni-mv-{}", tag());
    let list = Conflist::new(macvlan_conflist(
        &host,
        "0.4.0",
        &net,
        json!([[{"subnet": "10.122.5.0/24"}]]),
    ));
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    let path = c1.path().to_path_buf();
    drop(c1);
    let gone = Attachment {
        container_id: "pod1",
        ifname: "eth0",
        netns: &path,
    };
    list.verb(&host, &gone, "DEL", Some(&r))
        .expect("DEL with a vanished netns");
    assert!(host.reservations(&net).is_empty());
    let none = Attachment {
        container_id: "pod1",
        ifname: "eth0",
        netns: Path::new(""),
    };
    list.verb(&host, &none, "DEL", None)
        .expect("DEL without netns");
    // A DEL of a config whose ADD was refused still works (the master is not judged).
    let mut bad = list.doc.clone();
    bad["plugins"][0]["master"] = json!("nope");
    bad["plugins"][0]["mode"] = json!("weird");
    let bad = Conflist {
        doc: bad,
        ..Conflist::new(json!({}))
    };
    bad.verb(&host, &none, "DEL", None)
        .expect("DEL of a refused config");
}

/// Runs one macvlan verb from `dir` with a hand-made environment.
fn run_verb(host: &Host, dir: &Path, netns: &Path, ifname: &str, stdin: &Value) -> Outcome {
    let path = dir.display().to_string();
    let netns = netns.display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "pod1"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", path.as_str()),
    ];
    host.run(dir, "macvlan", &env, stdin)
}

#[test]
fn bad_input_gets_the_reference_code_names_the_key_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let net = format!("rcni-mve-{}", tag());
    let conf = |host: &Host, extra: Value| {
        let mut doc = json!({"cniVersion": "1.0.0", "name": net, "type": "macvlan",
            "master": MASTER,
            "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": "10.122.6.0/24"}});
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        doc
    };
    // (case, extra keys, ifname, what our message must name)
    let cases = [
        (
            "no such master",
            json!({"master": "nope"}),
            "eth0",
            "master",
        ),
        ("no such mode", json!({"mode": "weird"}), "eth0", "mode"),
        (
            "mtu above the master's",
            json!({"mtu": 9000}),
            "eth0",
            "mtu",
        ),
        ("negative mtu", json!({"mtu": -1}), "eth0", "mtu"),
        ("bad mac", json!({"mac": "zz"}), "eth0", "mac"),
        (
            "ifname too long",
            json!({}),
            "eth0123456789abc",
            "interface name",
        ),
        ("unknown CNI_ARGS", json!({}), "eth0", "args"),
    ];
    for (name, extra, ifname, says) in cases {
        let mut codes = Vec::new();
        for dir in [our_plugins().as_path(), go()] {
            let host = host_with_master();
            let c1 = TestNetns::new();
            let stdin = conf(&host, extra.clone());
            let out = if name == "unknown CNI_ARGS" {
                let (path, netns) = (dir.display().to_string(), c1.path().display().to_string());
                let env = [
                    ("CNI_COMMAND", "ADD"),
                    ("CNI_CONTAINERID", "pod1"),
                    ("CNI_NETNS", netns.as_str()),
                    ("CNI_IFNAME", ifname),
                    ("CNI_PATH", path.as_str()),
                    ("CNI_ARGS", "FOO=bar"),
                ];
                host.run(dir, "macvlan", &env, &stdin)
            } else {
                run_verb(&host, dir, c1.path(), ifname, &stdin)
            };
            let doc = out.err();
            codes.push(doc["code"].clone());
            if dir != go() {
                let text = format!("{} {}", doc["msg"], doc["details"]).to_lowercase();
                assert!(text.contains(says), "{name}: {doc}");
            }
            assert_nothing_left(&host, &net, &[&c1]);
        }
        assert_eq!(codes[0], codes[1], "{name}: ours vs Go");
    }
}

#[test]
fn interop_with_go_ipam_plugins_in_both_directions() {
    if !ready() {
        return;
    }
    let ours = our_plugins();
    let static_ipam = |_: &Host| {
        json!({"type": "static", "addresses": [
            {"address": "10.122.7.7/24", "gateway": "10.122.7.1"}]})
    };
    let host_local = |host: &Host| json!({"type": "host-local", "dataDir": host.data_dir, "subnet": "10.122.7.0/24"});
    type Ipam = fn(&Host) -> Value;
    let runs: [(&Path, &Path, Ipam, &str, &str); 3] = [
        (
            ours.as_path(),
            go(),
            host_local,
            "10.122.7.2/24",
            "our macvlan + Go host-local",
        ),
        (
            ours.as_path(),
            go(),
            static_ipam,
            "10.122.7.7/24",
            "our macvlan + Go static",
        ),
        (
            go(),
            ours.as_path(),
            host_local,
            "10.122.7.2/24",
            "Go macvlan + our host-local",
        ),
    ];
    for (macvlan_dir, ipam_dir, ipam, address, label) in runs {
        let host = host_with_master();
        let (c1, peer) = (TestNetns::new(), TestNetns::new());
        let net = format!("rcni-mvi-{}", tag());
        // A second pod from the other implementation, to talk to.
        let list = |dir: &Path, ipam: Value| {
            Conflist::new(json!({
                "cniVersion": "0.4.0", "name": net,
                "plugins": [{"type": "macvlan", "master": MASTER, "ipam": ipam}]
            }))
            .with_dir("macvlan", dir)
            .with_cni_path(ipam_dir)
        };
        let mixed = list(macvlan_dir, ipam(&host));
        let at = attach("pod1", &c1);
        let r = mixed
            .add(&host, &at)
            .unwrap_or_else(|o| panic!("{label}: ADD {o:?}"));
        assert_eq!(r["ips"][0]["address"], address, "{label}: {r}");
        let other = list(
            if macvlan_dir == go() { &ours } else { go() },
            json!({"type": "static", "addresses": [{"address": "10.122.7.99/24"}]}),
        );
        let rp = other
            .add(&host, &attach("peer", &peer))
            .unwrap_or_else(|o| panic!("{label}: peer ADD {o:?}"));
        assert!(ping(&c1, "10.122.7.99"), "{label}: pod -> peer");
        mixed
            .verb(&host, &at, "CHECK", Some(&r))
            .unwrap_or_else(|o| panic!("{label}: CHECK {o:?}"));
        mixed
            .verb(&host, &at, "DEL", Some(&r))
            .unwrap_or_else(|o| panic!("{label}: DEL {o:?}"));
        other
            .verb(&host, &attach("peer", &peer), "DEL", Some(&rp))
            .unwrap_or_else(|o| panic!("{label}: peer DEL {o:?}"));
        assert_nothing_left(&host, &net, &[&c1, &peer]);
    }
}

#[test]
fn status_and_gc_are_forwarded_to_ipam() {
    if !ready() {
        return;
    }
    let host = host_with_master();
    let c1 = TestNetns::new();
    let net = format!("rcni-mvg-{}", tag());
    let doc = macvlan_conflist(
        &host,
        "1.1.0",
        &net,
        json!([[{"subnet": "10.122.8.0/24", "rangeStart": "10.122.8.2", "rangeEnd": "10.122.8.2"}]]),
    );
    let list = Conflist::new(doc.clone());
    let mut plugin = doc["plugins"][0].clone();
    plugin["name"] = json!(net);
    plugin["cniVersion"] = json!("1.1.0");
    let verb = |command: &str, stdin: &Value| {
        let path = our_plugins().display().to_string();
        let env = [("CNI_COMMAND", command), ("CNI_PATH", path.as_str())];
        host.run(&our_plugins(), "macvlan", &env, stdin)
    };
    verb("STATUS", &plugin).ok();
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    assert_eq!(verb("STATUS", &plugin).err()["code"], 50, "range used up");
    let mut gc = plugin.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    verb("GC", &gc).ok();
    assert!(host.reservations(&net).is_empty(), "GC released pod1");
    verb("STATUS", &plugin).ok();
    list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
        .expect("DEL");
    assert_nothing_left(&host, &net, &[&c1]);
}
