//! sbr chained after bridge on a pod's second interface, in namespaces made by each test:
//! the rules and the table in the pod, traffic from the second interface leaving through
//! its own gateway, DEL (also without netns or prevResult), bad input, and the same
//! kernel state as the Go sbr (Debian's 1.1.1).

use std::path::Path;

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn bridge(host: &Host, br: &str, subnet: &str, default_route: bool) -> Value {
    let mut ipam = json!({"type": "host-local", "dataDir": host.data_dir, "subnet": subnet});
    if default_route {
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    json!({"type": "bridge", "bridge": br, "isGateway": true, "ipam": ipam})
}

fn list(plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "1.0.0", "name": format!("rcni-sbr-{}", tag()), "plugins": plugins})
}

fn at<'a>(ifname: &'a str, ns: &'a TestNetns) -> Attachment<'a> {
    Attachment {
        container_id: "sbr-ctr",
        ifname,
        netns: ns.path(),
    }
}

fn lines(ns: &TestNetns, argv: &[&str]) -> Vec<String> {
    ns.exec_ok(argv)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// A pod with eth0 (default route, 10.77.1.0/24 on br-a) and net1 (10.77.2.0/24 on br-b)
/// with sbr chained from `sbr_dir`; returns the net1 list and its final result.
fn pod_with_sbr(host: &Host, pod: &TestNetns, sbr_dir: &Path, sbr: Value) -> (Conflist, Value) {
    let first = Conflist::new(list(vec![bridge(host, "br-a", "10.77.1.0/24", true)]));
    first.add(host, &at("eth0", pod)).expect("eth0 ADD");
    let second = Conflist::new(list(vec![bridge(host, "br-b", "10.77.2.0/24", false), sbr]))
        .with_dir("sbr", sbr_dir);
    let result = second.add(host, &at("net1", pod)).expect("net1 ADD");
    (second, result)
}

fn rx_packets(host: &Host, link: &str) -> u64 {
    let out = host.sh(&["ip", "-s", "-j", "link", "show", link]);
    let doc: Value = serde_json::from_str(&out).expect("ip -j");
    doc[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .unwrap_or_default()
}

#[test]
fn sbr_routes_the_second_interface_through_its_own_gateway_and_del_removes_the_rules() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let (second, result) = pod_with_sbr(&host, &pod, &our_plugins(), json!({"type": "sbr"}));
    let ip = result["ips"][0]["address"]
        .as_str()
        .expect("address")
        .split('/')
        .next()
        .expect("ip")
        .to_string();
    assert_eq!(ip, "10.77.2.2");
    // prevResult passed on unchanged: bridge's three interfaces and its address.
    assert_eq!(result["interfaces"].as_array().map(Vec::len), Some(3));
    assert_eq!(result["ips"][0]["gateway"], "10.77.2.1");

    let rules = lines(&pod, &["ip", "rule", "show"]);
    assert!(
        rules
            .iter()
            .any(|r| r.ends_with("from 10.77.2.2 lookup 100")),
        "{rules:?}"
    );
    let table = lines(&pod, &["ip", "route", "show", "table", "100"]);
    assert!(
        table
            .iter()
            .any(|r| r.starts_with("default via 10.77.2.1 dev net1")),
        "{table:?}"
    );
    assert!(
        table.iter().any(|r| r.starts_with("10.77.2.0/24 dev net1")),
        "{table:?}"
    );
    // The connected route moved out of main.
    let main = lines(&pod, &["ip", "route", "show", "table", "main"]);
    assert!(!main.iter().any(|r| r.contains("dev net1")), "{main:?}");
    let via = pod.exec_ok(&["ip", "route", "get", "192.0.2.1", "from", "10.77.2.2"]);
    assert!(via.contains("via 10.77.2.1 dev net1"), "{via}");
    let plain = pod.exec_ok(&["ip", "route", "get", "192.0.2.1"]);
    assert!(plain.contains("via 10.77.1.1 dev eth0"), "{plain}");

    // Real traffic: an outside address on the host, pinged from net1's address, arrives
    // through br-b (net1's gateway), not br-a.
    let _ = host.sh(&["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"]);
    let (a0, b0) = (rx_packets(&host, "br-a"), rx_packets(&host, "br-b"));
    let _ = pod.exec_ok(&[
        "ping",
        "-c",
        "5",
        "-i",
        "0.2",
        "-W",
        "2",
        "-I",
        "10.77.2.2",
        "192.0.2.1",
    ]);
    let (a1, b1) = (rx_packets(&host, "br-a"), rx_packets(&host, "br-b"));
    assert!(b1 - b0 >= 5, "br-b rx {b0} -> {b1}");
    assert!(a1 - a0 < 5, "br-a rx {a0} -> {a1}");

    second
        .verb(&host, &at("net1", &pod), "CHECK", Some(&result))
        .expect("CHECK");

    second
        .verb(&host, &at("net1", &pod), "DEL", Some(&result))
        .expect("DEL");
    let rules = lines(&pod, &["ip", "rule", "show"]);
    assert!(!rules.iter().any(|r| r.contains("10.77.2.2")), "{rules:?}");
    assert!(
        lines(&pod, &["ip", "route", "show", "table", "all"])
            .iter()
            .all(|r| !r.contains("table 100"))
    );
}

#[test]
fn sbr_del_without_prev_result_uses_the_links_addresses_and_without_netns_succeeds() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let sbr = json!({"type": "sbr"});
    let (_, result) = pod_with_sbr(&host, &pod, &our_plugins(), sbr.clone());
    assert!(
        lines(&pod, &["ip", "rule"])
            .iter()
            .any(|r| r.contains("10.77.2.2"))
    );
    let only = Conflist::new(list(vec![sbr]));
    only.verb(&host, &at("net1", &pod), "DEL", None)
        .expect("DEL without prevResult");
    assert!(
        !lines(&pod, &["ip", "rule"])
            .iter()
            .any(|r| r.contains("10.77.2.2"))
    );
    let gone = Path::new("/var/run/netns/rcni-sbr-no-such-netns");
    let none = Attachment {
        container_id: "sbr-ctr",
        ifname: "net1",
        netns: gone,
    };
    only.verb(&host, &none, "DEL", Some(&result))
        .expect("DEL without netns");
    only.verb(&host, &none, "DEL", None)
        .expect("DEL without netns or prevResult");
}

#[test]
fn sbr_bad_table_is_a_config_error_naming_the_key_and_changes_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let first = Conflist::new(list(vec![bridge(&host, "br-b", "10.77.2.0/24", false)]));
    let result = first.add(&host, &at("net1", &pod)).expect("ADD");
    let before = (
        lines(&pod, &["ip", "rule"]),
        lines(&pod, &["ip", "route", "show", "table", "all"]),
    );
    let bad = Conflist::new(list(vec![json!({"type": "sbr", "table": 0})]));
    let err = bad
        .verb(&host, &at("net1", &pod), "ADD", Some(&result))
        .expect_err("bad table");
    let doc = err.err();
    assert_eq!(doc["code"], 7, "{doc}");
    assert!(
        doc["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("\"table\""),
        "{doc}"
    );
    let after = (
        lines(&pod, &["ip", "rule"]),
        lines(&pod, &["ip", "route", "show", "table", "all"]),
    );
    assert_eq!(before, after);
}

#[test]
fn sbr_gateways_and_source_hints() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let (second, result) = pod_with_sbr(
        &host,
        &pod,
        &our_plugins(),
        json!({"type": "sbr", "gateways": ["10.77.2.254"], "addSourceHints": true}),
    );
    let table = lines(&pod, &["ip", "route", "show", "table", "100"]);
    assert!(
        table
            .iter()
            .any(|r| r.starts_with("default via 10.77.2.254 dev net1")),
        "{table:?}"
    );
    // The subnet route stays in main, with the source hint.
    let main = lines(&pod, &["ip", "route", "show", "table", "main"]);
    assert!(
        main.iter()
            .any(|r| r.starts_with("10.77.2.0/24 dev net1") && r.contains("src 10.77.2.2")),
        "{main:?}"
    );
    second
        .verb(&host, &at("net1", &pod), "DEL", Some(&result))
        .expect("DEL");
    assert!(
        !lines(&pod, &["ip", "rule"])
            .iter()
            .any(|r| r.contains("10.77.2.2"))
    );
}

#[test]
fn sbr_with_table_adds_only_the_rules() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let (second, result) = pod_with_sbr(
        &host,
        &pod,
        &our_plugins(),
        json!({"type": "sbr", "table": 250}),
    );
    let rules = lines(&pod, &["ip", "rule"]);
    assert!(
        rules
            .iter()
            .any(|r| r.ends_with("from 10.77.2.2 lookup 250")),
        "{rules:?}"
    );
    let main = lines(&pod, &["ip", "route", "show", "table", "main"]);
    assert!(main.iter().any(|r| r.contains("dev net1")), "{main:?}");
    second
        .verb(&host, &at("net1", &pod), "CHECK", Some(&result))
        .expect("CHECK");
    second
        .verb(&host, &at("net1", &pod), "DEL", Some(&result))
        .expect("DEL");
    assert!(
        !lines(&pod, &["ip", "rule"])
            .iter()
            .any(|r| r.contains("lookup 250"))
    );
}

/// (rules, table 100, main, IPv6 table 100, result ips, result routes), rules after DEL.
type State = (
    (
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Value,
        Value,
    ),
    Vec<String>,
);

#[test]
fn sbr_matches_the_go_plugin() {
    if !ready() || !Path::new(GO_PLUGINS).join("sbr").is_file() {
        return;
    }
    let state = |dir: &Path| {
        let host = Host::new();
        let pod = TestNetns::new();
        let (second, result) = pod_with_sbr(&host, &pod, dir, json!({"type": "sbr"}));
        let seen = (
            lines(&pod, &["ip", "rule"]),
            lines(&pod, &["ip", "route", "show", "table", "100"]),
            lines(&pod, &["ip", "route", "show", "table", "main"]),
            lines(&pod, &["ip", "-6", "route", "show", "table", "100"]),
            result["ips"].clone(),
            result["routes"].clone(),
        );
        second
            .verb(&host, &at("net1", &pod), "DEL", Some(&result))
            .expect("DEL");
        (seen, lines(&pod, &["ip", "rule"]))
    };
    // One known difference: the reference moves routes with their protocol (the
    // connected routes stay "proto kernel"); ours are re-added as "proto boot", which
    // `ip` does not print. Routing is the same.
    let strip = |mut s: State| {
        for l in s.0.1.iter_mut().chain(s.0.3.iter_mut()) {
            *l = l.replace(" proto kernel", "");
        }
        s
    };
    let ours = strip(state(&our_plugins()));
    let go = strip(state(Path::new(GO_PLUGINS)));
    assert_eq!(ours, go);
}
