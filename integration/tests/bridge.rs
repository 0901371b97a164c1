//! bridge + host-local run as a runtime runs them, in namespaces made by each test.

use std::path::Path;

use rcni_integration::{
    Attachment, Conflist, GO_PLUGINS, Host, addrs_in, links_in, our_plugins, ping, ready,
    routes_in, tag,
};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn bridge_conflist(host: &Host, version: &str, name: &str, bridge: &str, ranges: Value) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [{
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": true,
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

#[test]
fn two_pods_get_addresses_reach_each_other_and_del_leaves_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let t = tag();
    let net = format!("rcni-br-{t}");
    let list = Conflist::new(bridge_conflist(
        &host,
        "1.0.0",
        &net,
        "rcnibr0",
        json!([[{"subnet": "10.120.1.0/24"}]]),
    ));

    let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    let r2 = list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");

    // The result, as the reference shapes it: bridge, host veth, container veth.
    assert_eq!(r1["cniVersion"], "1.0.0");
    let ifs = r1["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "{r1}");
    assert_eq!(ifs[0]["name"], "rcnibr0");
    assert!(ifs[1]["name"].as_str().expect("veth").starts_with("veth"));
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], c1.path().display().to_string());
    assert_eq!(
        r1["ips"],
        json!([{"interface": 2, "address": "10.120.1.2/24", "gateway": "10.120.1.1"}])
    );
    assert_eq!(r1["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r2["ips"][0]["address"], "10.120.1.3/24");

    // The kernel agrees.
    assert_eq!(addrs_in(&c1, "eth0"), ["10.120.1.2/24"]);
    assert!(
        routes_in(&c1, "-4")
            .iter()
            .any(|r| r == "default via 10.120.1.1 dev eth0"),
        "{:?}",
        routes_in(&c1, "-4")
    );
    assert_eq!(addrs_in(&host.ns, "rcnibr0"), ["10.120.1.1/24"]);
    let mac = ifs[2]["mac"].as_str().expect("mac");
    let link = String::from_utf8_lossy(&c1.exec(&["ip", "-j", "link", "show", "eth0"]).stdout)
        .into_owned();
    assert!(link.contains(mac), "{link} should show {mac}");
    let notify = c1.exec_ok(&["sysctl", "-n", "net.ipv4.conf.eth0.arp_notify"]);
    assert_eq!(notify.trim(), "1", "arp_notify, as the reference sets it");

    // Traffic: pod to pod, pod to gateway (the host side).
    assert!(ping(&c1, "10.120.1.3"), "pod1 -> pod2");
    assert!(ping(&c2, "10.120.1.2"), "pod2 -> pod1");
    assert!(ping(&c1, "10.120.1.1"), "pod1 -> gateway");

    // Masquerade: one chain per container, jumped to from POSTROUTING.
    let nat = host.nat_rules().join("\n");
    assert_eq!(
        nat.matches("-A POSTROUTING -s 10.120.1.").count(),
        2,
        "{nat}"
    );
    assert!(nat.contains("-j MASQUERADE"), "{nat}");

    // CHECK with the cached result passes.
    list.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect("CHECK");

    for (cid, ns, r) in [("pod1", &c1, &r1), ("pod2", &c2, &r2)] {
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("DEL");
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("second DEL");
    }
    assert_eq!(links_in(&c1), ["lo"]);
    let host_links = host.links();
    assert!(
        !host_links.iter().any(|l| l.starts_with("veth")),
        "{host_links:?}"
    );
    assert!(
        host.reservations(&net).is_empty(),
        "{:?}",
        host.reservations(&net)
    );
    assert!(
        host.index_entries(&net).is_empty(),
        "host-local's index follows its reservations: {:?}",
        host.index_entries(&net)
    );
    assert!(
        !host.nat_rules().iter().any(|r| r.contains("10.120.1.")),
        "{:?}",
        host.nat_rules()
    );
}

#[test]
fn add_of_an_existing_interface_fails_and_changes_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-br-{}", tag());
    let list = Conflist::new(bridge_conflist(
        &host,
        "1.0.0",
        &net,
        "rcnibr1",
        json!([[{"subnet": "10.120.2.0/24"}]]),
    ));
    list.add(&host, &attach("pod1", &c1)).expect("first ADD");
    let links_before = host.links();
    let rules_before = host.nat_rules();

    let err = list
        .add(&host, &attach("pod1b", &c1))
        .expect_err("second ADD on eth0 must fail");
    let doc = err.err();
    assert!(
        doc["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("already exists"),
        "{doc}"
    );
    assert_eq!(host.links(), links_before);
    assert_eq!(host.nat_rules(), rules_before);
    assert_eq!(host.reservations(&net), ["10.120.2.2"]);
}

#[test]
fn del_after_the_netns_is_gone_still_releases_ip_and_rules() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-br-{}", tag());
    let list = Conflist::new(bridge_conflist(
        &host,
        "0.4.0",
        &net,
        "rcnibr2",
        json!([[{"subnet": "10.120.3.0/24"}]]),
    ));
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    let path = c1.path().to_path_buf();
    drop(c1);
    assert!(!path.exists());

    let gone = Attachment {
        container_id: "pod1",
        ifname: "eth0",
        netns: &path,
    };
    list.verb(&host, &gone, "DEL", Some(&r))
        .expect("DEL with a vanished netns");
    assert!(host.reservations(&net).is_empty());
    assert!(
        !host.nat_rules().iter().any(|l| l.contains("10.120.3.")),
        "{:?}",
        host.nat_rules()
    );
    // And with no netns at all, and no prevResult: still fine.
    let none = Attachment {
        container_id: "pod1",
        ifname: "eth0",
        netns: Path::new(""),
    };
    list.verb(&host, &none, "DEL", None)
        .expect("DEL without netns");
}

#[test]
fn dual_stack_pods_ping_over_both_families() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-br-{}", tag());
    let mut doc = bridge_conflist(
        &host,
        "1.1.0",
        &net,
        "rcnibr3",
        json!([[{"subnet": "10.120.4.0/24"}], [{"subnet": "fd12:3456:4::/64"}]]),
    );
    doc["plugins"][0]["isDefaultGateway"] = json!(true);
    doc["plugins"][0]["ipam"]["routes"] = json!([]);
    let list = Conflist::new(doc);
    let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");
    assert_eq!(
        r1["ips"],
        json!([
            {"interface": 2, "address": "10.120.4.2/24", "gateway": "10.120.4.1"},
            {"interface": 2, "address": "fd12:3456:4::2/64", "gateway": "fd12:3456:4::1"}
        ])
    );
    assert_eq!(
        r1["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.120.4.1"}, {"dst": "::/0", "gw": "fd12:3456:4::1"}])
    );
    assert!(
        routes_in(&c1, "-6")
            .iter()
            .any(|r| r.starts_with("default via fd12:3456:4::1 dev eth0")),
        "{:?}",
        routes_in(&c1, "-6")
    );
    assert!(ping(&c1, "fd12:3456:4::3"), "pod1 -> pod2 over IPv6");
    assert!(ping(&c1, "fd12:3456:4::1"), "pod1 -> gateway over IPv6");
    assert!(ping(&c2, "10.120.4.2"), "pod2 -> pod1 over IPv4");
}

#[test]
fn layer2_only_without_ipam() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let list = Conflist::new(json!({
        "cniVersion": "1.0.0", "name": format!("rcni-l2-{}", tag()),
        "plugins": [{"type": "bridge", "bridge": "rcnibr4", "mtu": 1400, "hairpinMode": true}]
    }));
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    assert!(r.get("ips").is_none(), "{r}");
    let link =
        String::from_utf8_lossy(&c1.exec(&["ip", "-j", "-d", "link", "show", "eth0"]).stdout)
            .into_owned();
    assert!(link.contains("\"mtu\":1400"), "{link}");
    assert!(link.contains("\"UP\""), "{link}");
    let port = host.sh(&["ip", "-j", "-d", "link", "show", "master", "rcnibr4"]);
    assert!(port.contains("\"hairpin\":true"), "{port}");
}

#[test]
fn concurrent_adds_on_a_new_bridge_all_succeed() {
    if !ready() {
        return;
    }
    const PODS: usize = 16;
    let host = Host::new();
    let net = format!("rcni-cc-{}", tag());
    let pods: Vec<TestNetns> = (0..PODS).map(|_| TestNetns::new()).collect();
    let list = Conflist::new(bridge_conflist(
        &host,
        "1.0.0",
        &net,
        "rcnibr5",
        json!([[{"subnet": "10.120.5.0/24"}]]),
    ));
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (list, host) = (&list, &host);
                s.spawn(move || {
                    let cid = format!("pod{i}");
                    list.add(host, &attach(&cid, ns))
                        .unwrap_or_else(|o| panic!("ADD {cid}: {o:?}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut ips: Vec<String> = results
        .iter()
        .map(|r| r["ips"][0]["address"].as_str().expect("ip").to_string())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), PODS, "distinct addresses: {ips:?}");
    assert_eq!(host.reservations(&net).len(), PODS);

    std::thread::scope(|s| {
        for (i, (ns, r)) in pods.iter().zip(&results).enumerate() {
            let (list, host) = (&list, &host);
            s.spawn(move || {
                let cid = format!("pod{i}");
                list.verb(host, &attach(&cid, ns), "DEL", Some(r))
                    .unwrap_or_else(|o| panic!("DEL {cid}: {o:?}"));
            });
        }
    });
    assert!(
        !host.links().iter().any(|l| l.starts_with("veth")),
        "{:?}",
        host.links()
    );
    assert!(host.reservations(&net).is_empty());
    assert!(
        !host.nat_rules().iter().any(|l| l.contains("10.120.5.")),
        "{:?}",
        host.nat_rules()
    );
}

#[test]
fn results_match_the_reference_at_every_version() {
    if !ready() {
        return;
    }
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let results: Vec<Value> = [our_plugins(), Path::new(GO_PLUGINS).to_path_buf()]
            .iter()
            .map(|dir| {
                let host = Host::new();
                let c1 = TestNetns::new();
                let net = format!("rcni-v-{}", tag());
                let mut doc = bridge_conflist(
                    &host,
                    version,
                    &net,
                    "rcnibr6",
                    json!([[{"subnet": "10.120.6.0/24"}], [{"subnet": "fd12:3456:6::/64"}]]),
                );
                doc["plugins"][0]["isDefaultGateway"] = json!(true);
                // Go 1.1.1 fails when IPAM also lists a default route without a gateway
                // (it adds a second one: "file exists"); we tolerate it, the test avoids it.
                doc["plugins"][0]["ipam"]["routes"] = json!([{"dst": "10.99.0.0/16"}]);
                doc["plugins"][0]["dns"] = json!({"nameservers": ["10.120.6.53"]});
                let list = Conflist::new(doc)
                    .with_dir("bridge", dir)
                    .with_dir("host-local", dir);
                let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
                list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
                    .expect("DEL");
                normalise(r)
            })
            .collect();
        assert_eq!(
            results[0], results[1],
            "cniVersion {version}: ours vs the reference"
        );
    }
}

#[test]
fn version_1_1_0_is_1_0_0_relabelled() {
    if !ready() {
        return;
    }
    let mut results = Vec::new();
    for version in ["1.0.0", "1.1.0"] {
        let host = Host::new();
        let c1 = TestNetns::new();
        let net = format!("rcni-v-{}", tag());
        let list = Conflist::new(bridge_conflist(
            &host,
            version,
            &net,
            "rcnibr7",
            json!([[{"subnet": "10.120.7.0/24"}]]),
        ));
        let mut r = normalise(list.add(&host, &attach("pod1", &c1)).expect("ADD"));
        assert_eq!(r["cniVersion"], version);
        r["cniVersion"] = json!("x");
        results.push(r);
    }
    assert_eq!(results[0], results[1]);
}

/// Replaces what differs by design between two runs: MACs, random veth names, sandboxes.
fn normalise(mut r: Value) -> Value {
    if let Some(ifs) = r["interfaces"].as_array_mut() {
        for i in ifs {
            i["mac"] = json!("<mac>");
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("<veth>");
            }
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("<netns>");
            }
        }
    }
    r
}

#[test]
fn mac_spoof_check_rules_follow_the_attachment() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-sc-{}", tag());
    let mut doc = bridge_conflist(
        &host,
        "1.0.0",
        &net,
        "rcnibr8",
        json!([[{"subnet": "10.120.8.0/24"}]]),
    );
    doc["plugins"][0]["macspoofchk"] = json!(true);
    let list = Conflist::new(doc);
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    let table = host.sh(&["nft", "list", "table", "bridge", "nat"]);
    assert!(table.contains("cni-br-iface-pod1-eth0-mac"), "{table}");
    assert!(
        table.contains(&format!(
            "ether saddr {} return",
            r["interfaces"][2]["mac"].as_str().expect("mac")
        )),
        "{table}"
    );
    assert!(ping(&c1, "10.120.8.1"), "the real MAC passes");
    c1.exec(&[
        "ip",
        "link",
        "set",
        "dev",
        "eth0",
        "address",
        "02:00:00:00:00:99",
    ]);
    c1.exec(&["ip", "neigh", "flush", "all"]);
    host.ns.exec(&["ip", "neigh", "flush", "all"]);
    assert!(!ping(&c1, "10.120.8.1"), "a spoofed MAC is dropped");
    list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
        .expect("DEL");
    let table = host.sh(&["nft", "list", "table", "bridge", "nat"]);
    assert!(!table.contains("pod1-eth0"), "{table}");
}
