//! Config validation (no root) and the verbs through the plugin, each kernel test in a
//! private network namespace of its own thread.

use std::process::Command as Process;

use rcni_firewall::{Backend, MarkChain};
use rcni_skel::Command;
use rcni_types::Code;
use rcni_types::args::CniArgs;
use serde_json::{Value, json};

use super::*;

fn request_for(command: Command, plugin: &Value) -> Request {
    let mut config = json!({"cniVersion": "1.0.0", "name": "podman", "type": "portmap"});
    if let (Some(doc), Some(keys)) = (config.as_object_mut(), plugin.as_object()) {
        doc.extend(keys.clone());
    }
    let stdin = config.to_string().into_bytes();
    Request {
        command,
        container_id: "abc".into(),
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

fn request(plugin: &Value) -> Request {
    request_for(Command::Add, plugin)
}

fn maps(list: Value) -> Value {
    json!({"runtimeConfig": {"portMappings": list}})
}

fn prev() -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cni0", "mac": "0a:58:0a:01:02:01"},
            {"name": "veth1", "mac": "0a:58:0a:01:02:02"},
            {"name": "eth0", "mac": "0a:58:0a:01:02:03", "sandbox": "/var/run/netns/pod"}
        ],
        "ips": [
            {"interface": 2, "address": "10.1.2.2/24", "gateway": "10.1.2.1"},
            {"interface": 2, "address": "fd00:1::2/64", "gateway": "fd00:1::1"}
        ],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.1.2.1"]}
    })
}

#[test]
fn defaults_are_the_references() {
    let c = Conf::parse(&request(&maps(json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
    ]))))
    .expect("valid");
    assert!(c.spec.snat);
    assert!(!c.spec.masq_all);
    assert_eq!(c.spec.mark, MarkChain::Bit(13));
    assert_eq!(c.spec.network, "podman");
    assert_eq!(c.spec.container_id, "abc");
    assert_eq!(c.spec.mappings.len(), 1);
    assert_eq!(c.spec.mappings[0].protocol, Protocol::Tcp);
    assert_eq!(c.spec.mappings[0].host_ip, None);
}

#[test]
fn keys_are_read_case_insensitively() {
    let mut doc = maps(json!([
        {"HostPort": 53, "containerPort": 5353, "protocol": "UDP", "hostIP": "::ffff:192.168.1.5"},
        {"hostPort": 80, "containerPort": 8080}
    ]));
    doc["snat"] = json!(false);
    doc["masqAll"] = json!(true);
    doc["markMasqBit"] = json!(5);
    doc["backend"] = json!("nftables");
    doc["conditionsV4"] = json!(["ip", "saddr", "10.0.0.0/8"]);
    let c = Conf::parse(&request(&doc)).expect("valid");
    assert_eq!(c.backend, Backend::Nftables);
    assert!(!c.spec.snat && c.spec.masq_all);
    assert_eq!(c.spec.mark, MarkChain::Bit(5));
    let udp = c.spec.mappings[0];
    assert_eq!(
        (udp.host_port, udp.container_port, udp.protocol),
        (53, 5353, Protocol::Udp)
    );
    assert_eq!(udp.host_ip, Some("192.168.1.5".parse().expect("ip")));
    assert_eq!(c.spec.mappings[1].protocol, Protocol::Tcp, "tcp by default");
    assert_eq!(c.spec.conditions_v4, ["ip", "saddr", "10.0.0.0/8"]);
}

#[test]
fn bad_input_names_the_key() {
    let cases = [
        (
            maps(json!([{"hostPort": 0, "containerPort": 80, "protocol": "tcp"}])),
            "runtimeConfig.portMappings[0].hostPort 0",
        ),
        (
            maps(json!([
                {"hostPort": 1, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 2, "containerPort": 65536, "protocol": "tcp"}
            ])),
            "runtimeConfig.portMappings[1].containerPort 65536",
        ),
        (
            maps(json!([{"hostPort": -1, "containerPort": 80}])),
            "runtimeConfig.portMappings[0].hostPort -1",
        ),
        (
            maps(json!([{"hostPort": 1, "containerPort": 80, "protocol": "icmp"}])),
            "runtimeConfig.portMappings[0].protocol \"icmp\"",
        ),
        (
            maps(json!([{"hostPort": 1, "containerPort": 80, "hostIP": "nope"}])),
            "runtimeConfig.portMappings[0].hostIP \"nope\"",
        ),
        (json!({"markMasqBit": 32}), "markMasqBit 32"),
        (
            json!({"markMasqBit": 3, "externalSetMarkChain": "X"}),
            "Cannot specify externalSetMarkChain and markMasqBit",
        ),
        (json!({"backend": "ebtables"}), "backend"),
        (
            json!({"backend": "nftables", "externalSetMarkChain": "KUBE-MARK-MASQ"}),
            "[externalSetMarkChain]",
        ),
        (
            json!({"backend": "iptables", "conditionsV6": ["ip6", "saddr", "::1"]}),
            "[conditionsV6]",
        ),
    ];
    for (doc, expected) in cases {
        let err = Conf::parse(&request(&doc)).expect_err("invalid");
        assert_eq!(err.code, Code::InvalidConfig, "{doc}: {err}");
        assert!(err.msg.contains(expected), "{doc}: {}", err.msg);
    }
    let err = Conf::parse(&request(&maps(json!([{"hostPort": "80"}])))).expect_err("type");
    assert!(err.msg.contains("hostPort"), "{}", err.msg);
}

#[test]
fn container_addresses_follow_the_reference() {
    let prev = Success::from_json(&prev(), "1.0.0").expect("result");
    let (v4, v6) = container_addresses(&prev, "eth0");
    assert_eq!(v4, Some("10.1.2.2/24".parse().expect("net")));
    assert_eq!(v6, Some("fd00:1::2/64".parse().expect("net")));
    assert_eq!(container_addresses(&prev, "eth1"), (None, None));
    // Host-side interfaces (no sandbox) never qualify; addresses without an interface do.
    let mut doc = prev.clone();
    doc.ips[0].interface = Some(1);
    doc.ips[1].interface = None;
    let (v4, v6) = container_addresses(&doc, "veth1");
    assert_eq!(v4, None);
    assert_eq!(v6, Some("fd00:1::2/64".parse().expect("net")));
}

#[test]
fn add_requires_prev_result_and_passes_it_on_unchanged() {
    let err = Portmap
        .add(&request(&maps(json!([]))))
        .expect_err("not chained");
    assert_eq!(err.msg, "must be called as chained plugin");
    let mut doc = maps(json!([]));
    doc["prevResult"] = prev();
    let out = Portmap.add(&request(&doc)).expect("no mappings");
    assert_eq!(
        out.to_json("1.0.0").expect("printable"),
        Success::from_json(&prev(), "1.0.0")
            .expect("result")
            .to_json("1.0.0")
            .expect("printable")
    );
    let err = Portmap
        .check(&request_for(Command::Check, &maps(json!([]))))
        .expect_err("check needs prevResult");
    assert_eq!(err.msg, "Required prevResult missing");
    Portmap
        .del(&request_for(Command::Del, &maps(json!([]))))
        .expect("DEL without mappings does nothing");
}

// ---- kernel ----

fn in_netns(f: impl FnOnce() + Send + 'static) {
    if !rcni_testkit::require_root() {
        return;
    }
    std::thread::spawn(move || {
        rcni_testkit::unshare_thread_netns();
        f();
    })
    .join()
    .expect("test thread");
}

fn tool(args: &[&str]) -> String {
    let out = Process::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run tool");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn chained(backend: &str, prev_result: Option<Value>) -> Value {
    let mut doc = maps(json!([
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}
    ]));
    doc["backend"] = json!(backend);
    if let Some(prev) = prev_result {
        doc["prevResult"] = prev;
    }
    doc
}

#[test]
fn verbs_through_the_plugin_with_iptables() {
    in_netns(|| {
        let doc = chained("iptables", Some(prev()));
        Portmap.add(&request(&doc)).expect("ADD");
        Portmap
            .check(&request_for(Command::Check, &doc))
            .expect("CHECK");
        let v4 = tool(&["iptables-save", "-t", "nat"]);
        let v6 = tool(&["ip6tables-save", "-t", "nat"]);
        assert!(v4.contains("--to-destination 10.1.2.2:80"), "{v4}");
        assert!(v6.contains("--to-destination [fd00:1::2]:53"), "{v6}");
        // DEL without prevResult (netns gone, cache lost): found by chain name.
        let del = chained("iptables", None);
        Portmap.del(&request_for(Command::Del, &del)).expect("DEL");
        Portmap
            .del(&request_for(Command::Del, &del))
            .expect("second DEL");
        for save in ["iptables-save", "ip6tables-save"] {
            let nat = tool(&[save, "-t", "nat"]);
            assert!(!nat.contains("CNI-DN-"), "{nat}");
        }
        let err = Portmap
            .check(&request_for(Command::Check, &doc))
            .expect_err("CHECK after DEL");
        assert_eq!(err.code, Code::Internal);
    });
}

#[test]
fn verbs_through_the_plugin_with_nftables() {
    in_netns(|| {
        let doc = chained("nftables", Some(prev()));
        Portmap.add(&request(&doc)).expect("ADD");
        Portmap
            .check(&request_for(Command::Check, &doc))
            .expect("CHECK");
        let v6 = tool(&["nft", "list", "table", "ip6", "cni_hostport"]);
        assert!(
            v6.contains("udp dport 5353 dnat to [fd00:1::2]:53 comment \"abc\""),
            "{v6}"
        );
        Portmap
            .del(&request_for(Command::Del, &chained("nftables", None)))
            .expect("DEL");
        for family in ["ip", "ip6"] {
            let table = tool(&["nft", "list", "table", family, "cni_hostport"]);
            assert!(!table.contains("\"abc\""), "{table}");
        }
    });
}

#[test]
fn route_localnet_is_set_on_the_interface_routing_to_the_container() {
    in_netns(|| {
        tool(&[
            "ip", "link", "add", "rcnipm0", "type", "veth", "peer", "name", "rcnipm1",
        ]);
        tool(&["ip", "link", "set", "rcnipm0", "up"]);
        tool(&["ip", "link", "set", "rcnipm1", "up"]);
        tool(&["ip", "addr", "add", "10.1.2.1/24", "dev", "rcnipm0"]);
        let key = "net/ipv4/conf/rcnipm0/route_localnet";
        assert_eq!(rcni_netns::sysctl::read(key).expect("sysctl"), "0");
        let mut doc = chained("iptables", Some(prev()));
        doc["snat"] = json!(false);
        Portmap.add(&request(&doc)).expect("ADD without snat");
        assert_eq!(rcni_netns::sysctl::read(key).expect("sysctl"), "0");
        Portmap
            .add(&request(&chained("nftables", Some(prev()))))
            .expect("ADD with snat");
        assert_eq!(rcni_netns::sysctl::read(key).expect("sysctl"), "1");
    });
}
