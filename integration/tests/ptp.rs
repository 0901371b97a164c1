//! ptp + host-local (and static) run as a runtime runs them, in namespaces made by each
//! test, beside the Go reference plugins.

use std::path::Path;

use rcni_integration::{
    Attachment, Conflist, GO_PLUGINS, Host, Outcome, addrs_in, links_in, our_plugins, ping, ready,
    routes_in, tag,
};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn ptp_conflist(host: &Host, version: &str, name: &str, ranges: Value) -> Value {
    json!({
        "cniVersion": version,
        "name": name,
        "plugins": [{
            "type": "ptp",
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

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

/// The host veth of a result (interface 0).
fn host_veth(r: &Value) -> String {
    r["interfaces"][0]["name"]
        .as_str()
        .expect("host veth name")
        .to_string()
}

/// Nothing of the attachments is left: no link in the pods, no veth on the host, no
/// reservation, no masquerade rule for the subnet.
fn assert_nothing_left(host: &Host, net: &str, pods: &[&TestNetns], subnet_prefix: &str) {
    for pod in pods {
        assert_eq!(links_in(pod), ["lo"]);
    }
    let host_links = host.links();
    assert!(
        !host_links.iter().any(|l| l.starts_with("veth")),
        "{host_links:?}"
    );
    assert!(
        host.reservations(net).is_empty(),
        "{:?}",
        host.reservations(net)
    );
    assert!(
        !host.nat_rules().iter().any(|r| r.contains(subnet_prefix)),
        "{:?}",
        host.nat_rules()
    );
}

#[test]
fn two_pods_ping_the_host_and_each_other_and_del_leaves_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-ptp-{}", tag());
    let list = Conflist::new(ptp_conflist(
        &host,
        "1.0.0",
        &net,
        json!([[{"subnet": "10.121.1.0/24"}]]),
    ));
    // An address of the host's own, reached through the default route via the gateway.
    let _ = host.sh(&["ip", "addr", "add", "192.0.2.10/32", "dev", "lo"]);

    let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    let r2 = list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");

    // The result, as the reference shapes it: host veth, container veth; IPs on index 1.
    assert_eq!(r1["cniVersion"], "1.0.0");
    let ifs = r1["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 2, "{r1}");
    let veth1 = host_veth(&r1);
    assert!(veth1.starts_with("veth") && veth1.len() == 12, "{veth1}");
    assert!(ifs[0].get("sandbox").is_none(), "{r1}");
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], c1.path().display().to_string());
    assert_eq!(
        r1["ips"],
        json!([{"interface": 1, "address": "10.121.1.2/24", "gateway": "10.121.1.1"}])
    );
    assert_eq!(r1["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(r2["ips"][0]["address"], "10.121.1.3/24");

    // The kernel: the address keeps its prefix, every route goes via the gateway.
    assert_eq!(addrs_in(&c1, "eth0"), ["10.121.1.2/24"]);
    assert_eq!(
        routes_in(&c1, "-4"),
        [
            "default via 10.121.1.1 dev eth0",
            "10.121.1.0/24 via 10.121.1.1 dev eth0 src 10.121.1.2",
            "10.121.1.1 dev eth0 scope link src 10.121.1.2",
        ]
    );
    assert_eq!(addrs_in(&host.ns, &veth1), ["10.121.1.1/32"]);
    assert!(
        routes_in(&host.ns, "-4").contains(&format!("10.121.1.2 dev {veth1} scope host")),
        "{:?}",
        routes_in(&host.ns, "-4")
    );
    assert_eq!(
        host.sh(&["sysctl", "-n", "net.ipv4.ip_forward"]).trim(),
        "1"
    );
    let mac = ifs[1]["mac"].as_str().expect("mac");
    let link = c1.exec_ok(&["ip", "-j", "link", "show", "eth0"]);
    assert!(link.contains(mac), "{link} should show {mac}");

    // Traffic: pod to host (gateway and another host address), pod to pod both ways.
    assert!(ping(&c1, "10.121.1.1"), "pod1 -> gateway on the host");
    assert!(ping(&c1, "192.0.2.10"), "pod1 -> a host address");
    assert!(ping(&c1, "10.121.1.3"), "pod1 -> pod2");
    assert!(ping(&c2, "10.121.1.2"), "pod2 -> pod1");

    // Masquerade: one chain per container, jumped to from POSTROUTING.
    let nat = host.nat_rules().join("\n");
    assert_eq!(
        nat.matches("-A POSTROUTING -s 10.121.1.").count(),
        2,
        "{nat}"
    );

    list.verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect("CHECK");
    // CHECK notices a missing route.
    let _ = c1.exec_ok(&["ip", "route", "del", "default"]);
    let broken = list
        .verb(&host, &attach("pod1", &c1), "CHECK", Some(&r1))
        .expect_err("CHECK without the default route");
    assert!(
        broken.err()["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("0.0.0.0/0"),
        "{broken:?}"
    );

    for (cid, ns, r) in [("pod1", &c1, &r1), ("pod2", &c2, &r2)] {
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("DEL");
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("second DEL");
    }
    assert_nothing_left(&host, &net, &[&c1, &c2], "10.121.1.");
    assert!(
        !routes_in(&host.ns, "-4")
            .iter()
            .any(|r| r.contains("10.121.1.")),
        "{:?}",
        routes_in(&host.ns, "-4")
    );
}

#[test]
fn dual_stack_pods_reach_each_other_over_both_families() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-ptp-{}", tag());
    let mut doc = ptp_conflist(
        &host,
        "1.1.0",
        &net,
        json!([[{"subnet": "10.121.2.0/24"}], [{"subnet": "fd12:3456:21::/64"}]]),
    );
    doc["plugins"][0]["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]);
    let list = Conflist::new(doc);
    let r1 = list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    let r2 = list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");
    assert_eq!(
        r1["ips"],
        json!([
            {"interface": 1, "address": "10.121.2.2/24", "gateway": "10.121.2.1"},
            {"interface": 1, "address": "fd12:3456:21::2/64", "gateway": "fd12:3456:21::1"}
        ])
    );
    assert!(
        routes_in(&c1, "-6")
            .iter()
            .any(|r| r.starts_with("fd12:3456:21::/64 via fd12:3456:21::1 dev eth0 src")),
        "{:?}",
        routes_in(&c1, "-6")
    );
    assert_eq!(
        host.sh(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "1"
    );
    assert!(ping(&c1, "fd12:3456:21::1"), "pod1 -> gateway over IPv6");
    assert!(ping(&c1, "fd12:3456:21::3"), "pod1 -> pod2 over IPv6");
    assert!(ping(&c2, "10.121.2.2"), "pod2 -> pod1 over IPv4");
    for (cid, ns, r) in [("pod1", &c1, &r1), ("pod2", &c2, &r2)] {
        list.verb(&host, &attach(cid, ns), "DEL", Some(r))
            .expect("DEL");
    }
    assert_nothing_left(&host, &net, &[&c1, &c2], "10.121.2.");
}

/// What differs by design between two runs: MACs, random veth names, sandboxes; and an
/// empty `dns` in a 1.x result, which Debian's Go plugins (libcni 1.1) print and newer
/// libcni (and we) leave out, as the 1.0.0 types' marshalling does since.
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

/// One ADD with `dir`'s ptp and host-local: the normalised result and what the kernel
/// shows in the pod and on the host (veth name replaced).
fn observe(dir: &Path, version: &str, dns: bool) -> Vec<Value> {
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-ptpv-{}", tag());
    let mut doc = ptp_conflist(
        &host,
        version,
        &net,
        json!([[{"subnet": "10.121.3.0/24"}], [{"subnet": "fd12:3456:23::/64"}]]),
    );
    doc["plugins"][0]["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}, {"dst": "10.99.0.0/16"}]);
    if dns {
        doc["plugins"][0]["dns"] = json!({"nameservers": ["10.121.3.53"], "search": ["example"]});
    }
    let list = Conflist::new(doc)
        .with_dir("ptp", dir)
        .with_dir("host-local", dir);
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    let veth = host_veth(&r);
    let on_host = |lines: Vec<String>| -> Value {
        json!(
            lines
                .iter()
                .map(|l| l.replace(&veth, "<veth>"))
                .filter(|l| !l.starts_with("fe80::"))
                .collect::<Vec<_>>()
        )
    };
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
        on_host(addrs_in(&host.ns, &veth)),
        on_host(routes_in(&host.ns, "-4")),
        on_host(routes_in(&host.ns, "-6")),
    ];
    list.verb(&host, &attach("pod1", &c1), "DEL", Some(&r))
        .expect("DEL");
    assert_nothing_left(&host, &net, &[&c1], "10.121.3.");
    seen
}

#[test]
fn results_and_kernel_state_match_the_reference_at_every_version() {
    if !ready() {
        return;
    }
    // The config's dns replaces IPAM's; without it, the empty DNS prints as Go prints it.
    for (version, dns) in [
        ("0.3.1", true),
        ("0.4.0", true),
        ("1.0.0", true),
        ("1.0.0", false),
    ] {
        let ours = observe(&our_plugins(), version, dns);
        let theirs = observe(go(), version, dns);
        assert_eq!(
            ours, theirs,
            "cniVersion {version}, dns {dns}: ours vs the reference"
        );
    }
}

#[test]
fn del_after_the_netns_is_gone_still_releases_ip_and_rules() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-ptp-{}", tag());
    let list = Conflist::new(ptp_conflist(
        &host,
        "0.4.0",
        &net,
        json!([[{"subnet": "10.121.4.0/24"}]]),
    ));
    let r = list.add(&host, &attach("pod1", &c1)).expect("ADD");
    assert_eq!(r["ips"][0]["version"], "4");
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
    assert!(
        !host.nat_rules().iter().any(|l| l.contains("10.121.4.")),
        "{:?}",
        host.nat_rules()
    );
    // Without a netns and without prevResult: still fine.
    let none = Attachment {
        container_id: "pod1",
        ifname: "eth0",
        netns: Path::new(""),
    };
    list.verb(&host, &none, "DEL", None)
        .expect("DEL without netns");
}

#[test]
fn add_of_an_existing_interface_fails_and_changes_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-ptp-{}", tag());
    let list = Conflist::new(ptp_conflist(
        &host,
        "1.0.0",
        &net,
        json!([[{"subnet": "10.121.5.0/24"}]]),
    ));
    list.add(&host, &attach("pod1", &c1)).expect("first ADD");
    let (links, rules) = (host.links(), host.nat_rules());
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
    assert_eq!(host.links(), links);
    assert_eq!(host.nat_rules(), rules);
    assert_eq!(host.reservations(&net), ["10.121.5.2"]);
}

/// Runs one plugin verb from `dir` with a hand-made environment.
fn run_verb(
    host: &Host,
    dir: &Path,
    command: &str,
    netns: &Path,
    ifname: &str,
    stdin: &Value,
) -> Outcome {
    let path = dir.display().to_string();
    let netns = netns.display().to_string();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "pod1"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", ifname),
        ("CNI_PATH", path.as_str()),
    ];
    host.run(dir, "ptp", &env, stdin)
}

#[test]
fn bad_input_gets_the_reference_code_names_the_key_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let net = format!("rcni-ptpe-{}", tag());
    let conf = |host: &Host, extra: Value| {
        let mut doc = json!({"cniVersion": "1.0.0", "name": net, "type": "ptp", "ipMasq": true,
            "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": "10.121.6.0/24"}});
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        doc
    };
    // (case, extra keys, ifname, what our message must name)
    let cases = [
        ("mtu too large", json!({"mtu": 100_000}), "eth0", "mtu"),
        ("mtu too small", json!({"mtu": 20}), "eth0", "mtu"),
        ("mtu not a number", json!({"mtu": "x"}), "eth0", "mtu"),
        (
            "ifname too long",
            json!({}),
            "eth0123456789abc",
            "interface name",
        ),
        ("no ipam", json!({"ipam": null}), "eth0", "ipam"),
    ];
    for (name, extra, ifname, says) in cases {
        let mut codes = Vec::new();
        for dir in [our_plugins().as_path(), go()] {
            let host = Host::new();
            let c1 = TestNetns::new();
            let out = run_verb(
                &host,
                dir,
                "ADD",
                c1.path(),
                ifname,
                &conf(&host, extra.clone()),
            );
            let doc = out.err();
            codes.push(doc["code"].clone());
            if dir != go() {
                let text = format!("{} {}", doc["msg"], doc["details"]).to_lowercase();
                assert!(text.contains(says), "{name}: {doc}");
            }
            assert_eq!(host.links(), ["lo"], "{name}: {dir:?}");
            assert_eq!(links_in(&c1), ["lo"], "{name}: {dir:?}");
            assert!(host.reservations(&net).is_empty(), "{name}: {dir:?}");
            assert!(host.nat_rules().is_empty(), "{name}: {dir:?}");
        }
        assert_eq!(codes[0], codes[1], "{name}: ours vs Go");
    }
    // ipMasqBackend is newer than the Go plugin here (1.1.1 ignores it): ours refuses a
    // backend that does not exist, naming the key, before anything is made.
    let host = Host::new();
    let c1 = TestNetns::new();
    let out = run_verb(
        &host,
        &our_plugins(),
        "ADD",
        c1.path(),
        "eth0",
        &conf(&host, json!({"ipMasqBackend": "pf"})),
    );
    let doc = out.err();
    assert_eq!(doc["code"], 999);
    assert!(
        doc["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("ipMasqBackend"),
        "{doc}"
    );
    assert_eq!(host.links(), ["lo"]);
    assert!(host.reservations(&net).is_empty());
}

#[test]
fn gc_and_status_are_forwarded_to_ipam_and_gc_drops_stale_rules() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-ptpg-{}", tag());
    let doc = ptp_conflist(
        &host,
        "1.1.0",
        &net,
        json!([[{"subnet": "10.121.7.0/24", "rangeStart": "10.121.7.2", "rangeEnd": "10.121.7.3"}]]),
    );
    let list = Conflist::new(doc.clone());
    let mut plugin = doc["plugins"][0].clone();
    plugin["name"] = json!(net);
    plugin["cniVersion"] = json!("1.1.0");

    let status = |host: &Host| run_verb(host, &our_plugins(), "STATUS", Path::new(""), "", &plugin);
    status(&host).ok();
    list.add(&host, &attach("pod1", &c1)).expect("ADD pod1");
    list.add(&host, &attach("pod2", &c2)).expect("ADD pod2");
    // The range holds two pods: host-local answers STATUS with "no address left" (50).
    assert_eq!(status(&host).err()["code"], 50);

    let kept = reservation_of(&host, &net, "pod2");
    let mut gc = plugin.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "pod2", "ifname": "eth0"}]);
    run_verb(&host, &our_plugins(), "GC", Path::new(""), "", &gc).ok();
    assert_eq!(host.reservations(&net), [kept]);
    let nat = host.nat_rules().join("\n");
    assert_eq!(
        nat.matches("-A POSTROUTING -s 10.121.7.").count(),
        1,
        "{nat}"
    );
    status(&host).ok();
}

/// The address host-local reserved for `cid`.
fn reservation_of(host: &Host, net: &str, cid: &str) -> String {
    host.reservations(net)
        .into_iter()
        .find(|ip| {
            std::fs::read_to_string(host.data_dir.join(net).join(ip))
                .is_ok_and(|c| c.starts_with(cid))
        })
        .unwrap_or_default()
}

#[test]
fn interop_with_go_ipam_plugins_in_both_directions() {
    if !ready() {
        return;
    }
    let ours = our_plugins();
    let static_ipam = |_: &Host| {
        json!({"type": "static", "addresses": [
            {"address": "10.121.8.7/24", "gateway": "10.121.8.1"}]})
    };
    let host_local = |host: &Host| json!({"type": "host-local", "dataDir": host.data_dir, "subnet": "10.121.8.0/24"});
    type Ipam = fn(&Host) -> Value;
    let runs: [(&Path, &Path, Ipam, &str, &str); 3] = [
        (
            ours.as_path(),
            go(),
            host_local,
            "10.121.8.2/24",
            "our ptp + Go host-local",
        ),
        (
            ours.as_path(),
            go(),
            static_ipam,
            "10.121.8.7/24",
            "our ptp + Go static",
        ),
        (
            go(),
            ours.as_path(),
            host_local,
            "10.121.8.2/24",
            "Go ptp + our host-local",
        ),
    ];
    for (ptp_dir, ipam_dir, ipam, address, label) in runs {
        let host = Host::new();
        let c1 = TestNetns::new();
        let net = format!("rcni-ptpi-{}", tag());
        let list = Conflist::new(json!({
            "cniVersion": "0.4.0", "name": net,
            "plugins": [{"type": "ptp", "ipMasq": true, "ipam": ipam(&host)}]
        }))
        .with_dir("ptp", ptp_dir)
        .with_cni_path(ipam_dir);
        let at = attach("pod1", &c1);
        let r = list
            .add(&host, &at)
            .unwrap_or_else(|o| panic!("{label}: ADD {o:?}"));
        assert_eq!(r["ips"][0]["address"], address, "{label}: {r}");
        assert!(ping(&c1, "10.121.8.1"), "{label}: pod -> gateway");
        list.verb(&host, &at, "CHECK", Some(&r))
            .unwrap_or_else(|o| panic!("{label}: CHECK {o:?}"));
        list.verb(&host, &at, "DEL", Some(&r))
            .unwrap_or_else(|o| panic!("{label}: DEL {o:?}"));
        assert_nothing_left(&host, &net, &[&c1], "10.121.8.");
    }
}

#[test]
fn our_del_removes_an_attachment_made_by_the_go_plugin_and_back() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-ptpx-{}", tag());
    let doc = ptp_conflist(&host, "0.4.0", &net, json!([[{"subnet": "10.121.9.0/24"}]]));
    let ours = Conflist::new(doc.clone());
    let theirs = Conflist {
        default_dir: go().to_path_buf(),
        ..Conflist::new(doc)
    };
    let r1 = theirs.add(&host, &attach("gopod", &c1)).expect("Go ADD");
    let r2 = ours.add(&host, &attach("rspod", &c2)).expect("our ADD");
    assert!(
        ping(&c1, "10.121.9.3") && ping(&c2, "10.121.9.2"),
        "Go pod <-> our pod"
    );
    ours.verb(&host, &attach("gopod", &c1), "DEL", Some(&r1))
        .expect("our DEL of Go's pod");
    theirs
        .verb(&host, &attach("rspod", &c2), "DEL", Some(&r2))
        .expect("Go DEL of our pod");
    assert_nothing_left(&host, &net, &[&c1, &c2], "10.121.9.");
    assert!(
        !host.nat_rules().iter().any(|l| l.starts_with(":CNI-")),
        "{:?}",
        host.nat_rules()
    );
}
