//! firewall chained after bridge, run as a runtime runs it, with the "host" a namespace
//! made by each test (its own netfilter tables): forwarding through a dropping FORWARD
//! chain, ingressPolicy isolation, mixed with the Go firewall (Debian's 1.1.1), and the
//! podman conflist (bridge + portmap + firewall + tuning).

use std::path::Path;

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, our_plugins, ping, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn bridge(host: &Host, br: &str, subnet: &str) -> Value {
    json!({
        "type": "bridge", "bridge": br, "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": subnet,
                 "routes": [{"dst": "0.0.0.0/0"}]}
    })
}

fn firewall(host: &Host, extra: &Value) -> Value {
    let mut fw = json!({"type": "firewall", "backend": "iptables",
                        "dataDir": host.data_dir.join("firewall")});
    if let (Some(fw), Some(extra)) = (fw.as_object_mut(), extra.as_object()) {
        fw.extend(extra.clone());
    }
    fw
}

fn doc(name: &str, version: &str, plugins: Vec<Value>) -> Value {
    json!({"cniVersion": version, "name": name, "plugins": plugins})
}

fn attach<'a>(cid: &'a str, ns: &'a TestNetns) -> Attachment<'a> {
    Attachment {
        container_id: cid,
        ifname: "eth0",
        netns: ns.path(),
    }
}

/// `iptables-save -t filter` of the host (both families), rule and chain lines only.
fn filter(host: &Host) -> Vec<String> {
    let mut lines = Vec::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        lines.extend(
            host.sh(&[tool, "-t", "filter"])
                .lines()
                .filter(|l| l.starts_with("-A") || l.starts_with(':'))
                .map(str::to_string),
        );
    }
    lines
}

fn mentions(rules: &[String], ip: &str) -> bool {
    rules.iter().any(|l| l.contains(&format!("{ip}/")))
}

/// A namespace outside the pod network, reached through the host: 10.131.<n>.2 behind the
/// host's 10.131.<n>.1.
fn remote(host: &Host, n: u8) -> TestNetns {
    let r = TestNetns::new();
    let (h, p) = (format!("rt{n}h{}", tag()), format!("rt{n}p"));
    for argv in [
        vec![
            "ip",
            "link",
            "add",
            &h,
            "type",
            "veth",
            "peer",
            "name",
            &p,
            "netns",
            r.name(),
        ],
        vec!["ip", "addr", "add", &format!("10.131.{n}.1/24"), "dev", &h],
        vec!["ip", "link", "set", &h, "up"],
    ] {
        let _ = host.sh(&argv);
    }
    for argv in [
        vec!["ip", "link", "set", "lo", "up"],
        vec!["ip", "link", "set", &p, "up"],
    ] {
        let _ = r.exec_ok(&argv);
    }
    let _ = r.exec_ok(&["ip", "addr", "add", &format!("10.131.{n}.2/24"), "dev", &p]);
    let _ = r.exec_ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &format!("10.131.{n}.1"),
    ]);
    r
}

#[test]
fn firewall_lets_the_pod_through_a_dropping_forward_chain_and_del_removes_its_rules() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let far = remote(&host, 1);
    let _ = host.sh(&["iptables", "-P", "FORWARD", "DROP"]);
    let pod = TestNetns::new();
    let net = format!("rcni-fw-{}", tag());
    let fw = firewall(&host, &json!({}));
    let both = Conflist::new(doc(
        &net,
        "1.0.0",
        vec![bridge(&host, "rcnifw0", "10.131.100.0/24"), fw.clone()],
    ));
    let fw_only = Conflist::new(doc(&net, "1.0.0", vec![fw]));
    let at = attach("fwpod1", &pod);
    let result = both.add(&host, &at).expect("ADD");
    let ip = "10.131.100.2";
    assert_eq!(
        result["ips"][0]["address"],
        format!("{ip}/24"),
        "prevResult passed on"
    );

    let rules = filter(&host);
    for want in [
        r#"-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#,
        r#"-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN"#,
        "-A CNI-FORWARD -d 10.131.100.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A CNI-FORWARD -s 10.131.100.2/32 -j ACCEPT",
    ] {
        assert!(
            rules.iter().any(|l| l == want),
            "{want} missing: {rules:#?}"
        );
    }
    assert!(
        !host
            .sh(&["ip6tables-save", "-t", "filter"])
            .contains("CNI-FORWARD"),
        "IPv4 only: the IPv6 table is not touched"
    );
    assert!(ping(&pod, "10.131.1.2"), "pod -> remote through the host");
    both.verb(&host, &at, "CHECK", Some(&result))
        .expect("CHECK");

    fw_only
        .verb(&host, &at, "DEL", Some(&result))
        .expect("firewall DEL");
    let rules = filter(&host);
    assert!(!mentions(&rules, ip), "{rules:#?}");
    assert!(
        rules.iter().any(|l| l.starts_with(":CNI-FORWARD")),
        "chains stay"
    );
    assert!(!ping(&pod, "10.131.1.2"), "FORWARD drops again");
    let e = fw_only
        .verb(&host, &at, "CHECK", Some(&result))
        .expect_err("CHECK after DEL");
    assert!(
        e.json()["msg"].as_str().unwrap_or_default().contains(ip),
        "{e:?}"
    );
    both.verb(&host, &at, "DEL", Some(&result)).expect("DEL");
    drop(far);
}

#[test]
fn del_without_prev_result_removes_the_rules_from_the_record() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let net = format!("rcni-fw-{}", tag());
    let fw = firewall(&host, &json!({}));
    let both = Conflist::new(doc(
        &net,
        "0.4.0",
        vec![bridge(&host, "rcnifw1", "10.131.101.0/24"), fw.clone()],
    ));
    let at = attach("fwpod2", &pod);
    let result = both.add(&host, &at).expect("ADD");
    assert!(mentions(&filter(&host), "10.131.101.2"));
    let record = host
        .data_dir
        .join("firewall")
        .join(&net)
        .join("fwpod2_eth0.json");
    assert!(record.exists());
    let gone = Path::new("/run/netns/rcni-fw-gone-netns");
    let at_gone = Attachment {
        container_id: "fwpod2",
        ifname: "eth0",
        netns: gone,
    };
    Conflist::new(doc(&net, "0.4.0", vec![fw]))
        .verb(&host, &at_gone, "DEL", None)
        .expect("DEL without prevResult and netns");
    assert!(!mentions(&filter(&host), "10.131.101.2"));
    assert!(!record.exists());
    both.verb(&host, &at, "DEL", Some(&result)).expect("DEL");
}

#[test]
fn ingress_policy_same_bridge_isolates_two_bridges() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pods: Vec<TestNetns> = (0..3).map(|_| TestNetns::new()).collect();
    let t = tag();
    let lists: Vec<Conflist> = [("a", "10.131.110.0/24"), ("b", "10.131.111.0/24")]
        .iter()
        .map(|(x, subnet)| {
            Conflist::new(doc(
                &format!("rcni-fw-{x}-{t}"),
                "1.0.0",
                vec![
                    bridge(&host, &format!("rcniiso{x}"), subnet),
                    firewall(&host, &json!({"ingressPolicy": "same-bridge"})),
                ],
            ))
        })
        .collect();
    let no_fw = |i: usize| {
        let mut d = lists[i].doc.clone();
        d["plugins"] = json!([d["plugins"][0]]);
        Conflist::new(d)
    };
    // Without the firewall the host routes between the two bridges.
    let ats = [
        attach("isoa1", &pods[0]),
        attach("isoa2", &pods[1]),
        attach("isob1", &pods[2]),
    ];
    let plain: Vec<Value> = [(0, 0), (0, 1), (1, 2)]
        .iter()
        .map(|&(l, p)| no_fw(l).add(&host, &ats[p]).expect("bridge ADD"))
        .collect();
    assert!(
        ping(&pods[0], "10.131.111.2"),
        "a -> b routed before isolation"
    );
    for (&(l, p), r) in [(0, 0), (0, 1), (1, 2)].iter().zip(&plain) {
        no_fw(l)
            .verb(&host, &ats[p], "DEL", Some(r))
            .expect("bridge DEL");
    }

    let results: Vec<Value> = [(0, 0), (0, 1), (1, 2)]
        .iter()
        .map(|&(l, p)| {
            lists[l]
                .add(&host, &ats[p])
                .expect("ADD with ingressPolicy")
        })
        .collect();
    let rules = filter(&host);
    for want in [
        "-A CNI-ISOLATION-STAGE-1 -i rcniisoa ! -o rcniisoa",
        "-A CNI-ISOLATION-STAGE-1 -i rcniisob ! -o rcniisob",
        "-A CNI-ISOLATION-STAGE-2 -o rcniisoa",
        "-A CNI-ISOLATION-STAGE-2 -o rcniisob",
    ] {
        assert!(
            rules.iter().any(|l| l.starts_with(want)),
            "{want}: {rules:#?}"
        );
    }
    let ip_of = |r: &Value| {
        r["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        ping(&pods[0], &ip_of(&results[1])),
        "same bridge still talks"
    );
    assert!(!ping(&pods[0], &ip_of(&results[2])), "a -> b blocked");
    assert!(!ping(&pods[2], &ip_of(&results[0])), "b -> a blocked");
    for (&(l, p), r) in [(0, 0), (0, 1), (1, 2)].iter().zip(&results) {
        lists[l]
            .verb(&host, &ats[p], "CHECK", Some(r))
            .expect("CHECK");
        lists[l].verb(&host, &ats[p], "DEL", Some(r)).expect("DEL");
    }
    let rules = filter(&host);
    assert!(
        !rules.iter().any(|l| l.contains("-s 10.131.11")),
        "{rules:#?}"
    );
}

#[test]
fn go_firewall_rules_removed_by_ours_and_the_other_way_round() {
    if !ready() {
        return;
    }
    let go = Path::new(GO_PLUGINS);
    for (add_dir, del_dir, label) in [
        (go.to_path_buf(), our_plugins(), "Go ADD, our DEL"),
        (our_plugins(), go.to_path_buf(), "our ADD, Go DEL"),
    ] {
        let host = Host::new();
        let pod = TestNetns::new();
        let net = format!("rcni-fw-{}", tag());
        let fw = firewall(&host, &json!({}));
        let chain = |dir: &Path| {
            Conflist::new(doc(
                &net,
                "0.4.0",
                vec![bridge(&host, "rcnifw2", "10.131.102.0/24"), fw.clone()],
            ))
            .with_dir("firewall", dir)
        };
        let at = attach("fwpod3", &pod);
        let result = chain(&add_dir)
            .add(&host, &at)
            .unwrap_or_else(|o| panic!("{label}: {o:?}"));
        assert!(mentions(&filter(&host), "10.131.102.2"), "{label}");
        chain(&add_dir)
            .verb(&host, &at, "CHECK", Some(&result))
            .unwrap_or_else(|o| panic!("{label}: CHECK {o:?}"));
        chain(&del_dir)
            .verb(&host, &at, "CHECK", Some(&result))
            .unwrap_or_else(|o| panic!("{label}: cross CHECK {o:?}"));
        chain(&del_dir)
            .verb(&host, &at, "DEL", Some(&result))
            .unwrap_or_else(|o| panic!("{label}: DEL {o:?}"));
        let rules = filter(&host);
        assert!(!mentions(&rules, "10.131.102.2"), "{label}: {rules:#?}");
    }
}

/// The podman conflist (reference §5.2: 87-podman-bridge.conflist, cniVersion 0.4.0) with
/// our bridge, firewall and tuning, and the given portmap.
fn podman(host: &Host, portmap_dir: &Path, label: &str) {
    let pod = TestNetns::new();
    let net = format!("podman-{}", tag());
    let list = Conflist::new(json!({
        "cniVersion": "0.4.0",
        "name": net,
        "plugins": [
            {"type": "bridge", "bridge": "cni-podman0", "isGateway": true, "ipMasq": true,
             "hairpinMode": true,
             "ipam": {"type": "host-local", "dataDir": host.data_dir,
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": "iptables", "dataDir": host.data_dir.join("firewall")},
            {"type": "tuning", "dataDir": host.data_dir.join("tuning")}
        ]
    }))
    .with_dir("portmap", portmap_dir);
    let list = Conflist {
        capability_args: json!({"portMappings": [
            {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
        ]}),
        ..list
    };
    let at = attach("podmanpod", &pod);
    let result = list
        .add(host, &at)
        .unwrap_or_else(|o| panic!("{label}: ADD {o:?}"));
    assert_eq!(result["cniVersion"], "0.4.0", "{label}");
    assert_eq!(
        result["dns"],
        json!({}),
        "{label}: 0.4.0 shape kept through the chain"
    );
    let ip = result["ips"][0]["address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .unwrap_or_default()
        .to_string();
    assert!(mentions(&filter(host), &ip), "{label}");
    assert!(
        host.nat_rules()
            .iter()
            .any(|l| l.contains("CNI-HOSTPORT-DNAT")),
        "{label}: portmap ran"
    );
    assert!(ping(&pod, "10.88.0.1"), "{label}: pod -> gateway");
    // Debian's Go portmap (1.1.1) fails CHECK on any IPv4-only pod: it looks for the IPv6
    // DNAT chain it never created. CHECK then runs without it; every other plugin is ours.
    let check = if portmap_dir == Path::new(GO_PLUGINS) {
        let mut d = list.doc.clone();
        if let Some(plugins) = d["plugins"].as_array_mut() {
            plugins.retain(|p| p["type"] != "portmap");
        }
        Conflist::new(d)
    } else {
        Conflist::new(list.doc.clone()).with_dir("portmap", portmap_dir)
    };
    check
        .verb(host, &at, "CHECK", Some(&result))
        .unwrap_or_else(|o| panic!("{label}: CHECK {o:?}"));
    list.verb(host, &at, "DEL", Some(&result))
        .unwrap_or_else(|o| panic!("{label}: DEL {o:?}"));
    assert!(!mentions(&filter(host), &ip), "{label}: filter rules left");
    assert!(
        !host
            .nat_rules()
            .iter()
            .any(|l| l.contains(&format!("{ip}/")) || l.contains(&format!("{ip}:"))),
        "{label}: nat rules left: {:?}",
        host.nat_rules()
    );
    assert!(
        host.reservations(&net).is_empty(),
        "{label}: address released"
    );
    let leftovers = |dir: &str| {
        std::fs::read_dir(host.data_dir.join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(
        leftovers("tuning"),
        0,
        "{label}: no tuning backup (nothing to back up)"
    );
    list.verb(host, &at, "DEL", Some(&result))
        .unwrap_or_else(|o| panic!("{label}: repeated DEL {o:?}"));
}

#[test]
fn podman_conflist_add_check_del() {
    if !ready() {
        return;
    }
    podman(&Host::new(), Path::new(GO_PLUGINS), "Go portmap");
    let ours = our_plugins();
    if ours.join("portmap").is_file() {
        podman(&Host::new(), &ours, "our portmap");
    } else {
        eprintln!("our portmap is not built yet: ran with the Go portmap only");
    }
}
