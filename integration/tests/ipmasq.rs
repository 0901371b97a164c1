//! ipmasq chained after bridge (without its own ipMasq), in namespaces made by each test:
//! the nat rules (iptables and nftables), a TCP connection from the pod to a namespace
//! that has no route back to the pod arriving from the host's address, the same rules as
//! bridge's `ipMasq` (so the two never fight), DEL (also without netns or prevResult),
//! and bad input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use rcni_integration::{Attachment, Conflist, Host, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

const PORT: u16 = 9099;

fn bridge(host: &Host, br: &str, subnet: &str, ip_masq: bool) -> Value {
    json!({
        "type": "bridge", "bridge": br, "isGateway": true, "ipMasq": ip_masq,
        "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": subnet,
                 "routes": [{"dst": "0.0.0.0/0"}]}
    })
}

fn list(net: &str, plugins: Vec<Value>) -> Value {
    json!({"cniVersion": "1.0.0", "name": net, "plugins": plugins})
}

fn at(ns: &TestNetns) -> Attachment<'_> {
    Attachment {
        container_id: "ipmasq-ctr",
        ifname: "eth0",
        netns: ns.path(),
    }
}

/// A namespace behind the host at 198.51.100.2 (host side .1) with NO route back to
/// the pod network: only masqueraded traffic can be answered.
fn outside(host: &Host) -> TestNetns {
    let far = TestNetns::new();
    let h = format!("om{}", tag());
    let _ = host.sh(&[
        "ip",
        "link",
        "add",
        &h,
        "type",
        "veth",
        "peer",
        "name",
        "om0",
        "netns",
        far.name(),
    ]);
    let _ = host.sh(&["ip", "addr", "add", "198.51.100.1/24", "dev", &h]);
    // A second host address, for SNAT.
    let _ = host.sh(&["ip", "addr", "add", "198.51.100.77/32", "dev", &h]);
    let _ = host.sh(&["ip", "link", "set", &h, "up"]);
    let _ = far.exec_ok(&["ip", "link", "set", "lo", "up"]);
    let _ = far.exec_ok(&["ip", "link", "set", "om0", "up"]);
    let _ = far.exec_ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "om0"]);
    far
}

/// One TCP connection from `pod` to the outside namespace; the source address the
/// outside saw, or None when it could not connect.
fn source_seen(pod: &TestNetns, far: &TestNetns) -> Option<String> {
    let listener = far.run(|| TcpListener::bind(("198.51.100.2", PORT)).expect("bind"));
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(false).ok();
        let (mut conn, peer) = listener.accept().ok()?;
        let mut buf = [0u8; 8];
        let _ = conn.read(&mut buf);
        Some(peer.ip().to_string())
    });
    let addr: SocketAddr = format!("198.51.100.2:{PORT}").parse().expect("addr");
    let connected = pod.run(|| {
        TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .and_then(|mut c| c.write_all(b"hi"))
            .is_ok()
    });
    if !connected {
        // Unblock the accept.
        let _ = far.run(|| TcpStream::connect(addr));
    }
    let seen = server.join().expect("server");
    if connected { seen } else { None }
}

fn nft_masq(host: &Host) -> String {
    String::from_utf8_lossy(
        &host
            .ns
            .exec(&["nft", "list", "table", "inet", "cni_plugins_masquerade"])
            .stdout,
    )
    .to_string()
}

fn masquerades_and_cleans_up(backend: &str) {
    let host = Host::new();
    let far = outside(&host);
    let pod = TestNetns::new();
    let net = format!("rcni-im-{}", tag());
    let ipmasq = json!({"type": "ipmasq", "backend": backend});
    let both = Conflist::new(list(
        &net,
        vec![
            bridge(&host, "rcniim0", "10.88.0.0/24", false),
            ipmasq.clone(),
        ],
    ));
    let result = both.add(&host, &at(&pod)).expect("ADD");
    // prevResult passed on unchanged.
    assert_eq!(result["ips"][0]["address"], "10.88.0.2/24");
    assert_eq!(result["interfaces"].as_array().map(Vec::len), Some(3));
    if backend == "iptables" {
        let nat = host.nat_rules();
        assert!(
            nat.iter()
                .any(|l| l.starts_with("-A POSTROUTING -s 10.88.0.2/32") && l.contains("-j CNI-")),
            "{nat:?}"
        );
        assert!(nat.iter().any(|l| l.contains("-j MASQUERADE")), "{nat:?}");
    } else {
        let t = nft_masq(&host);
        assert!(
            t.contains("ip saddr 10.88.0.2") && t.contains("masquerade"),
            "{t}"
        );
    }
    assert_eq!(source_seen(&pod, &far).as_deref(), Some("198.51.100.1"));
    both.verb(&host, &at(&pod), "CHECK", Some(&result))
        .expect("CHECK");

    both.verb(&host, &at(&pod), "DEL", Some(&result))
        .expect("DEL");
    assert!(!host.nat_rules().iter().any(|l| l.contains("CNI-")));
    assert!(!nft_masq(&host).contains("10.88.0.2"));
}

#[test]
fn ipmasq_iptables_masquerades_the_pod_and_del_removes_the_rules() {
    if !ready() {
        return;
    }
    masquerades_and_cleans_up("iptables");
}

#[test]
fn ipmasq_nftables_masquerades_the_pod_and_del_removes_the_rules() {
    if !ready() {
        return;
    }
    masquerades_and_cleans_up("nftables");
}

#[test]
fn ipmasq_snat_and_exclude_subnets_with_iptables() {
    if ready() {
        snat_and_exclude_subnets("iptables");
    }
}

#[test]
fn ipmasq_snat_and_exclude_subnets_with_nftables() {
    if ready() {
        snat_and_exclude_subnets("nftables");
    }
}

/// `snat` makes the outside see the configured source; an excluded subnet is not
/// masqueraded at all, so it cannot answer.
fn snat_and_exclude_subnets(backend: &str) {
    let host = Host::new();
    let far = outside(&host);
    let pod = TestNetns::new();
    let net = format!("rcni-im-{}", tag());
    let snat = json!({"type": "ipmasq", "snat": "198.51.100.77", "backend": backend});
    let c = Conflist::new(list(
        &net,
        vec![bridge(&host, "rcniim0", "10.88.0.0/24", false), snat],
    ));
    let result = c.add(&host, &at(&pod)).expect("ADD");
    if backend == "iptables" {
        let nat = host.nat_rules();
        assert!(
            nat.iter()
                .any(|l| l.contains("-j SNAT --to-source 198.51.100.77")),
            "{nat:?}"
        );
    } else {
        let table = nft_masq(&host);
        assert!(table.contains("snat ip to 198.51.100.77"), "{table}");
    }
    assert_eq!(source_seen(&pod, &far).as_deref(), Some("198.51.100.77"));
    c.verb(&host, &at(&pod), "CHECK", Some(&result))
        .expect("CHECK");
    c.verb(&host, &at(&pod), "DEL", Some(&result)).expect("DEL");
    assert!(!host.nat_rules().iter().any(|l| l.contains("CNI-")));
    assert!(!nft_masq(&host).contains("10.88.0."), "{}", nft_masq(&host));

    // The outside network excluded: not masqueraded, so it cannot answer.
    let pod2 = TestNetns::new();
    let excl = json!({"type": "ipmasq", "excludeSubnets": ["198.51.100.0/24"],
                      "backend": backend});
    let c = Conflist::new(list(
        &net,
        vec![bridge(&host, "rcniim0", "10.88.0.0/24", false), excl],
    ));
    let at2 = Attachment {
        container_id: "ipmasq-ctr2",
        ifname: "eth0",
        netns: pod2.path(),
    };
    let result = c.add(&host, &at2).expect("ADD");
    if backend == "iptables" {
        let nat = host.nat_rules();
        assert!(
            nat.iter()
                .any(|l| l.contains("-d 198.51.100.0/24") && l.ends_with("-j ACCEPT")),
            "{nat:?}"
        );
    } else {
        let table = nft_masq(&host);
        assert!(table.contains("ip daddr != 198.51.100.0/24"), "{table}");
    }
    c.verb(&host, &at2, "CHECK", Some(&result)).expect("CHECK");
    assert_eq!(source_seen(&pod2, &far), None);
    c.verb(&host, &at2, "DEL", Some(&result)).expect("DEL");
    assert!(!host.nat_rules().iter().any(|l| l.contains("CNI-")));
    assert!(!nft_masq(&host).contains("10.88.0."), "{}", nft_masq(&host));
}

#[test]
fn without_ipmasq_the_outside_cannot_answer() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let far = outside(&host);
    let pod = TestNetns::new();
    let plain = Conflist::new(list(
        &format!("rcni-im-{}", tag()),
        vec![bridge(&host, "rcniim0", "10.88.0.0/24", false)],
    ));
    plain.add(&host, &at(&pod)).expect("ADD");
    assert_eq!(source_seen(&pod, &far), None);
}

#[test]
fn ipmasq_writes_exactly_what_bridge_ipmasq_writes() {
    if !ready() {
        return;
    }
    let net = format!("rcni-im-{}", tag());
    let rules = |chained: bool| {
        let host = Host::new();
        let pod = TestNetns::new();
        let plugins = if chained {
            vec![
                bridge(&host, "rcniim0", "10.88.0.0/24", false),
                json!({"type": "ipmasq", "backend": "iptables"}),
            ]
        } else {
            vec![
                json!({"type": "bridge", "bridge": "rcniim0", "isGateway": true,
                        "ipMasq": true, "ipMasqBackend": "iptables",
                        "ipam": {"type": "host-local", "dataDir": host.data_dir,
                                 "subnet": "10.88.0.0/24", "routes": [{"dst": "0.0.0.0/0"}]}}),
            ]
        };
        let c = Conflist::new(list(&net, plugins));
        let result = c.add(&host, &at(&pod)).expect("ADD");
        let nat = host.nat_rules();
        // The other one's DEL removes them.
        let other = if chained {
            json!({"type": "bridge", "bridge": "rcniim0", "ipMasq": true,
                   "ipam": {"type": "host-local", "dataDir": host.data_dir,
                            "subnet": "10.88.0.0/24"}})
        } else {
            json!({"type": "ipmasq"})
        };
        Conflist::new(list(&net, vec![other]))
            .verb(&host, &at(&pod), "DEL", Some(&result))
            .expect("DEL");
        assert!(!host.nat_rules().iter().any(|l| l.contains("CNI-")));
        nat
    };
    assert_eq!(rules(true), rules(false));
}

#[test]
fn ipmasq_del_without_netns_or_prev_result_and_bad_input() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let net = format!("rcni-im-{}", tag());
    let both = Conflist::new(list(
        &net,
        vec![
            bridge(&host, "rcniim0", "10.88.0.0/24", false),
            json!({"type": "ipmasq", "backend": "iptables"}),
        ],
    ));
    let result = both.add(&host, &at(&pod)).expect("ADD");
    let before = host.nat_rules();

    for bad in [
        json!({"type": "ipmasq", "backend": "pf"}),
        json!({"type": "ipmasq", "snat": "not-an-ip"}),
        json!({"type": "ipmasq", "excludeSubnets": ["198.51.100.0/33"]}),
    ] {
        let out = Conflist::new(list(&net, vec![bad]))
            .verb(&host, &at(&pod), "ADD", Some(&result))
            .expect_err("bad input");
        let doc = out.err();
        assert_eq!(doc["code"], 7, "{doc}");
        assert_eq!(host.nat_rules(), before);
    }

    let gone = Attachment {
        container_id: "ipmasq-ctr",
        ifname: "eth0",
        netns: Path::new("/var/run/netns/rcni-ipmasq-gone"),
    };
    Conflist::new(list(&net, vec![json!({"type": "ipmasq"})]))
        .verb(&host, &gone, "DEL", None)
        .expect("DEL without netns or prevResult");
    assert!(
        !host.nat_rules().iter().any(|l| l.contains("CNI-")),
        "{:?}",
        host.nat_rules()
    );
}
