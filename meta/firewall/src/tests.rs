//! Config validation and the record, without root.

use std::path::{Path, PathBuf};

use rcni_firewall::IngressPolicy;
use rcni_skel::Command;
use rcni_types::args::CniArgs;
use serde_json::{Value, json};

use super::*;

fn request(plugin: &Value) -> Request {
    let mut config = json!({"cniVersion": "1.0.0", "name": "podman", "type": "firewall"});
    if let (Some(doc), Some(keys)) = (config.as_object_mut(), plugin.as_object()) {
        doc.extend(keys.clone());
    }
    let stdin = config.to_string().into_bytes();
    Request {
        command: Command::Add,
        container_id: "ctr".into(),
        netns: None,
        ifname: "eth0".into(),
        args: CniArgs::read(""),
        raw_args: String::new(),
        path: Vec::new(),
        net: serde_json::from_slice(&stdin).expect("network config"),
        stdin,
        config,
    }
}

#[test]
fn defaults_are_the_references() {
    let c = Conf::parse(&request(&json!({}))).expect("valid");
    assert_eq!(c.backend, None, "chosen at run time");
    assert_eq!(c.admin_chain, "CNI-ADMIN");
    assert_eq!(c.zone, "trusted");
    assert_eq!(c.ingress_policy, None);
    assert_eq!(c.data_dir, Path::new("/run/cni/firewall"));
    assert_eq!(c.network, "podman");
}

#[test]
fn keys_are_read() {
    let c = Conf::parse(&request(&json!({
        "backend": "iptables", "iptablesAdminChainName": "MY-ADMIN",
        "firewalldZone": "internal", "ingressPolicy": "isolated", "dataDir": "/tmp/fw"
    })))
    .expect("valid");
    assert_eq!(c.backend, Some(Backend::Iptables));
    assert_eq!(c.admin_chain, "MY-ADMIN");
    assert_eq!(c.zone, "internal");
    assert_eq!(c.ingress_policy, Some(IngressPolicy::Isolated));
    assert_eq!(c.data_dir, Path::new("/tmp/fw"));
    let c = Conf::parse(&request(
        &json!({"backend": "firewalld", "ingressPolicy": "open"}),
    ))
    .expect("valid");
    assert_eq!(c.backend, Some(Backend::Firewalld));
    assert_eq!(c.ingress_policy, None);
    // As the reference: any other backend value means "choose".
    let c = Conf::parse(&request(&json!({"backend": "nftables"}))).expect("valid");
    assert_eq!(c.backend, None);
}

#[test]
fn bad_values_are_refused_before_anything_changes() {
    let cases = [
        (
            "unknown ingress policy",
            json!({"ingressPolicy": "closed"}),
            7,
            r#"unknown ingress policy: "closed""#,
        ),
        (
            "admin chain with a space",
            json!({"iptablesAdminChainName": "MY ADMIN"}),
            7,
            "iptablesAdminChainName",
        ),
        (
            "admin chain too long",
            json!({"iptablesAdminChainName": "X".repeat(29)}),
            7,
            "iptablesAdminChainName",
        ),
        (
            "zone with a space",
            json!({"firewalldZone": "my zone"}),
            7,
            "firewalldZone",
        ),
        (
            "backend of the wrong type",
            json!({"backend": 1}),
            999,
            "backend",
        ),
    ];
    for (name, plugin, code, text) in cases {
        let e = Conf::parse(&request(&plugin)).expect_err(name);
        assert_eq!(e.code.number(), code, "{name}");
        assert!(e.msg.contains(text), "{name}: {}", e.msg);
    }
}

fn result(interfaces: &[&str]) -> Success {
    let mut doc = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": [
        {"address": "10.88.0.2/16", "interface": 1},
        {"address": "fd00::2/64", "interface": 1}
    ]});
    doc["interfaces"] = interfaces.iter().map(|n| json!({"name": n})).collect();
    Success::from_json(&doc, "1.0.0").expect("valid result")
}

#[test]
fn the_isolated_bridge_is_the_first_interface() {
    let c = Conf::parse(&request(&json!({"ingressPolicy": "same-bridge"}))).expect("valid");
    let iso = isolation(&c, &result(&["cni0", "veth1", "eth0"]))
        .expect("bridge")
        .expect("policy set");
    assert_eq!(iso.bridge, "cni0");
    assert_eq!(iso.policy, IngressPolicy::SameBridge);
    let e = isolation(&c, &result(&[])).expect_err("no interface");
    assert!(e.msg.contains("make sure to chain"), "{}", e.msg);
    let e = isolation(&c, &result(&[""])).expect_err("empty name");
    assert_eq!(e.msg, "got empty bridge name");
    let open = Conf::parse(&request(&json!({}))).expect("valid");
    assert_eq!(isolation(&open, &result(&[])).expect("open"), None);
    assert_eq!(
        addresses(&result(&[])),
        [
            "10.88.0.2".parse::<IpAddr>().expect("ip"),
            "fd00::2".parse().expect("ip")
        ]
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rcni-fwp-{tag}-{}", std::process::id()))
}

#[test]
fn the_record_round_trips_and_lists_by_attachment() {
    let dir = temp_dir("record");
    let file = state::path(&dir, "podman", "ctr1", "eth0");
    assert_eq!(file, dir.join("podman/ctr1_eth0.json"));
    let s = State {
        backend: Backend::Firewalld,
        zone: "trusted".into(),
        addresses: vec!["10.88.0.2".parse().expect("ip")],
    };
    s.write(&file).expect("write");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        r#"{"backend":"firewalld","zone":"trusted","addresses":["10.88.0.2"]}"#
    );
    assert_eq!(State::read(&file), Some(s));
    state::path(&dir, "podman", "ctr_2", "net1")
        .parent()
        .map(std::fs::create_dir_all);
    std::fs::write(state::path(&dir, "podman", "ctr_2", "net1"), "garbage").expect("write");
    std::fs::write(dir.join("podman/.tmp.json.tmp"), "x").expect("write");
    let mut stems: Vec<String> = state::list(&state::network_dir(&dir, "podman"))
        .into_iter()
        .map(|(_, stem)| stem)
        .collect();
    stems.sort();
    assert_eq!(stems, ["ctr1_eth0", "ctr_2_net1"]);
    assert_eq!(
        State::read(&state::path(&dir, "podman", "ctr_2", "net1")),
        None
    );
    state::remove(&file).expect("remove");
    state::remove(&file).expect("already gone is fine");
    let _ = std::fs::remove_dir_all(&dir);
}
