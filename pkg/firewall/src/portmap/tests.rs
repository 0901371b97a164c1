//! Rule text pinned against the Go plugin, and kernel tests: each of those runs on its own
//! thread inside a private network namespace (its own netfilter tables), so the host's
//! rules are never touched. Without root they print SKIP, or fail when
//! `RCNI_REQUIRE_ROOT=1`.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use super::iptables::{chain_rules, entry_rules, failed_line};
use super::nftables::{full_batch, rules_batch};
use super::*;
use crate::error::ErrorKind;
use crate::testutil::{in_private_netns, run_tool, spawns};

const GO_PORTMAP: &str = "/usr/lib/cni/portmap";
const CHAIN: &str = "CNI-DN-514f2d63f742a896f7a7f";

fn mapping(host: u16, container: u16, protocol: Protocol, host_ip: Option<&str>) -> PortMapping {
    PortMapping {
        host_port: host,
        container_port: container,
        protocol,
        host_ip: host_ip.map(|ip| ip.parse().expect("valid host IP")),
    }
}

/// The mappings of the pinned capture: every protocol, a host IP of each family and an
/// unspecified one.
fn mappings() -> Vec<PortMapping> {
    vec![
        mapping(8080, 80, Protocol::Tcp, None),
        mapping(8081, 81, Protocol::Udp, None),
        mapping(8082, 82, Protocol::Sctp, None),
        mapping(9090, 90, Protocol::Tcp, Some("192.168.1.5")),
        mapping(9091, 91, Protocol::Tcp, Some("fd00::5")),
        mapping(9092, 92, Protocol::Udp, Some("0.0.0.0")),
    ]
}

fn spec(cid: &str, v4: Option<&str>, v6: Option<&str>) -> PortmapSpec {
    let mut spec = PortmapSpec::new("podman", cid, mappings());
    spec.container_v4 = v4.map(|a| a.parse().expect("valid address"));
    spec.container_v6 = v6.map(|a| a.parse().expect("valid address"));
    spec
}

fn abc() -> PortmapSpec {
    spec("abc", Some("10.1.2.2/24"), Some("fd00:1::2/64"))
}

/// The Go config matching [`spec`] (same mappings), for running the reference.
fn go_conf(spec: &PortmapSpec, extra: serde_json::Value) -> serde_json::Value {
    let maps: Vec<serde_json::Value> = spec
        .mappings
        .iter()
        .map(|m| {
            let mut v = json!({
                "hostPort": m.host_port,
                "containerPort": m.container_port,
                "protocol": m.protocol.as_str(),
            });
            if let Some(ip) = m.host_ip {
                v["hostIP"] = json!(ip.to_string());
            }
            v
        })
        .collect();
    let ips: Vec<serde_json::Value> = [spec.container_v4, spec.container_v6]
        .into_iter()
        .flatten()
        .map(|a| json!({"interface": 0, "address": a.to_string()}))
        .collect();
    let mut conf = json!({
        "cniVersion": "1.0.0",
        "name": spec.network,
        "type": "portmap",
        "runtimeConfig": {"portMappings": maps},
        "prevResult": {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/pod"}],
            "ips": ips,
        },
    });
    if let (Some(conf), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            conf.insert(k.clone(), v.clone());
        }
    }
    conf
}

// Captured from /usr/lib/cni/portmap (Go, Debian 1.1.1) for network "podman", container
// "abc", addresses 10.1.2.2/24 and fd00:1::2/64 and `mappings()` (`iptables-save -t nat`,
// `#` lines removed).
const GO_NAT_V4: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-514f2d63f742a896f7a7f - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-514f2d63f742a896f7a7f -s 10.1.2.0/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -s 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.2.2:80
-A CNI-DN-514f2d63f742a896f7a7f -s 10.1.2.0/24 -p udp -m udp --dport 8081 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -s 127.0.0.1/32 -p udp -m udp --dport 8081 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p udp -m udp --dport 8081 -j DNAT --to-destination 10.1.2.2:81
-A CNI-DN-514f2d63f742a896f7a7f -s 10.1.2.0/24 -p sctp -m sctp --dport 8082 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -s 127.0.0.1/32 -p sctp -m sctp --dport 8082 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p sctp -m sctp --dport 8082 -j DNAT --to-destination 10.1.2.2:82
-A CNI-DN-514f2d63f742a896f7a7f -s 10.1.2.0/24 -d 192.168.1.5/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -s 127.0.0.1/32 -d 192.168.1.5/32 -p tcp -m tcp --dport 9090 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -d 192.168.1.5/32 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.1.2.2:90
-A CNI-DN-514f2d63f742a896f7a7f -s 10.1.2.0/24 -p udp -m udp --dport 9092 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -s 127.0.0.1/32 -p udp -m udp --dport 9092 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p udp -m udp --dport 9092 -j DNAT --to-destination 10.1.2.2:92
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8082 -j CNI-DN-514f2d63f742a896f7a7f
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8080,9090,9091 -j CNI-DN-514f2d63f742a896f7a7f
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8081,9092 -j CNI-DN-514f2d63f742a896f7a7f
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"#;
const GO_NAT_V6: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-DN-514f2d63f742a896f7a7f - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-514f2d63f742a896f7a7f -s fd00:1::/64 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:1::2]:80
-A CNI-DN-514f2d63f742a896f7a7f -s fd00:1::/64 -p udp -m udp --dport 8081 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p udp -m udp --dport 8081 -j DNAT --to-destination [fd00:1::2]:81
-A CNI-DN-514f2d63f742a896f7a7f -s fd00:1::/64 -p sctp -m sctp --dport 8082 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -p sctp -m sctp --dport 8082 -j DNAT --to-destination [fd00:1::2]:82
-A CNI-DN-514f2d63f742a896f7a7f -s fd00:1::/64 -d fd00::5/128 -p tcp -m tcp --dport 9091 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-514f2d63f742a896f7a7f -d fd00::5/128 -p tcp -m tcp --dport 9091 -j DNAT --to-destination [fd00:1::2]:91
-A CNI-HOSTPORT-DNAT -p sctp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8082 -j CNI-DN-514f2d63f742a896f7a7f
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8080,9090,9091 -j CNI-DN-514f2d63f742a896f7a7f
-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"podman\" id: \"abc\"" -m multiport --dports 8081,9092 -j CNI-DN-514f2d63f742a896f7a7f
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"#;

/// What DEL leaves: the shared chains, never deleted (by either plugin).
const SHARED_ONLY: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"#;

const EMPTY_NAT: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
";

/// The `-A <chain> ` lines of `saved` for one chain, without the prefix.
fn rules_of(saved: &str, chain: &str) -> Vec<String> {
    let prefix = format!("-A {chain} ");
    saved
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_owned)
        .collect()
}

// ---- rule text (no root needed) ----

#[test]
fn iptables_rule_text_is_what_go_leaves() {
    let s = abc();
    let v4 = s.container_v4.expect("v4");
    let v6 = s.container_v6.expect("v6");
    assert_eq!(
        chain_rules(&s, Family::V4, v4),
        rules_of(GO_NAT_V4, CHAIN),
        "IPv4 chain"
    );
    assert_eq!(
        chain_rules(&s, Family::V6, v6),
        rules_of(GO_NAT_V6, CHAIN),
        "IPv6 chain"
    );
    assert_eq!(
        entry_rules(&s, Family::V4),
        rules_of(GO_NAT_V4, names::HOSTPORT_DNAT_CHAIN)
    );
    assert_eq!(
        entry_rules(&s, Family::V6),
        rules_of(GO_NAT_V6, names::HOSTPORT_DNAT_CHAIN)
    );
}

#[test]
fn masq_all_matches_every_source_and_drops_the_localhost_rule() {
    let mut s = spec("abc", Some("10.1.2.2/24"), None);
    s.mappings = vec![mapping(8080, 80, Protocol::Tcp, None)];
    s.masq_all = true;
    assert_eq!(
        chain_rules(&s, Family::V4, s.container_v4.expect("v4")),
        [
            "-p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK",
            "-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.2.2:80",
        ]
    );
    s.snat = false;
    assert_eq!(
        chain_rules(&s, Family::V4, s.container_v4.expect("v4")),
        ["-p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.2.2:80"]
    );
}

#[test]
fn external_mark_chain_and_conditions() {
    let mut s = spec("abc", Some("10.1.2.2/32"), None);
    s.mappings = vec![mapping(53, 5353, Protocol::Udp, None)];
    s.mark = MarkChain::External("KUBE-MARK-MASQ".into());
    s.conditions_v4 = vec![
        "-m".into(),
        "set".into(),
        "--match-set".into(),
        "a b".into(),
    ];
    assert_eq!(
        chain_rules(&s, Family::V4, s.container_v4.expect("v4"))[0],
        "-s 10.1.2.2/32 -p udp -m udp --dport 53 -j KUBE-MARK-MASQ"
    );
    assert_eq!(
        entry_rules(&s, Family::V4),
        [format!(
            "-p udp -m comment --comment \"dnat name: \\\"podman\\\" id: \\\"abc\\\"\" \
             -m multiport --dports 53 -m set --match-set \"a b\" -j {CHAIN}"
        )]
    );
}

#[test]
fn more_than_15_ports_split_into_multiport_groups() {
    let mut s = spec("abc", Some("10.1.2.2/24"), None);
    s.mappings = (0..20)
        .map(|i| mapping(10_000 + i, 80, Protocol::Tcp, None))
        .collect();
    let entries = entry_rules(&s, Family::V4);
    assert_eq!(entries.len(), 2);
    let first: Vec<String> = (10_000..10_015).map(|p: u16| p.to_string()).collect();
    assert!(
        entries[0].contains(&format!("--dports {} ", first.join(","))),
        "{}",
        entries[0]
    );
    assert!(entries[1].contains("--dports 10015,10016,10017,10018,10019 "));
}

#[test]
fn names_are_pinned() {
    assert_eq!(names::portmap_dnat_chain("podman", "abc"), CHAIN);
    assert_eq!(
        names::portmap_old_snat_chain("podman", "abc"),
        "CNI-SN-514f2d63f742a896f7a7f"
    );
    assert_eq!(
        names::portmap_dnat_comment("podman", "abc"),
        r#"dnat name: "podman" id: "abc""#
    );
    let long = names::portmap_dnat_comment("podman", &"f".repeat(300));
    assert_eq!(long.len(), 256);
    assert!(long.ends_with("fff..."));
    assert_eq!(names::HOSTPORT_DNAT_CHAIN, "CNI-HOSTPORT-DNAT");
    assert_eq!(names::HOSTPORT_SETMARK_CHAIN, "CNI-HOSTPORT-SETMARK");
    assert_eq!(names::HOSTPORT_MASQ_CHAIN, "CNI-HOSTPORT-MASQ");
    assert_eq!(names::NFT_PORTMAP_TABLE, "cni_hostport");
    assert_eq!(MarkChain::mark(13), "0x2000/0x2000");
    assert_eq!(MarkChain::mark(0), "0x1/0x1");
    assert_eq!(MarkChain::mark(31), "0x80000000/0x80000000");
}

#[test]
fn restore_errors_name_the_line() {
    assert_eq!(
        failed_line("iptables-restore: line 3 failed: Bad rule (does a matching rule exist)"),
        Some(3)
    );
    assert_eq!(
        failed_line(
            "iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist\nError occurred at line: 2\n"
        ),
        Some(2)
    );
    assert_eq!(failed_line("no number"), None);
}

#[test]
fn backend_follows_the_reference_rules() {
    let ipt = vec!["-s".to_owned(), "10.0.0.0/8".to_owned()];
    let nft = vec!["ip".to_owned(), "saddr".to_owned(), "10.0.0.0/8".to_owned()];
    assert_eq!(conditions_backend(&[]), None);
    assert_eq!(conditions_backend(&[String::new()]), None);
    assert_eq!(conditions_backend(&ipt), Some(Backend::Iptables));
    assert_eq!(conditions_backend(&["!".into()]), Some(Backend::Iptables));
    assert_eq!(conditions_backend(&nft), Some(Backend::Nftables));
    assert_eq!(
        portmap_backend(Some("nftables"), false, &nft, &[]),
        Ok(Backend::Nftables)
    );
    assert_eq!(
        portmap_backend(Some("iptables"), true, &ipt, &ipt),
        Ok(Backend::Iptables)
    );
    let err = portmap_backend(Some("nftables"), true, &ipt, &[]).expect_err("wrong options");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert_eq!(
        err.to_string(),
        "nftables backend was requested but configuration contains iptables-specific options \
         [externalSetMarkChain conditionsV4]"
    );
    let err = portmap_backend(Some("iptables"), false, &[], &nft).expect_err("wrong options");
    assert!(err.to_string().ends_with("[conditionsV6]"), "{err}");
    let err = portmap_backend(Some("ebtables"), false, &[], &[]).expect_err("unknown");
    assert!(err.to_string().contains("backend"), "{err}");
}

#[test]
fn nft_batches_are_the_reference_transaction() {
    let mut s = spec(
        "icee6giejonei6so",
        Some("10.0.0.2/24"),
        Some("2001:db8::2/64"),
    );
    s.mappings = vec![
        mapping(8080, 80, Protocol::Tcp, None),
        mapping(8081, 81, Protocol::Udp, Some("192.168.0.1")),
    ];
    let t = "ip cni_hostport";
    let c = "\"icee6giejonei6so\"";
    let rules = format!(
        "add rule {t} hostports tcp dport 8080 dnat to 10.0.0.2:80 comment {c}\n\
         add rule {t} hostports ip daddr 192.168.0.1 udp dport 8081 dnat to 10.0.0.2:81 comment {c}\n\
         add rule {t} masquerading ip saddr 10.0.0.2 ip daddr 10.0.0.2 masquerade comment {c}\n\
         add rule {t} masquerading ip saddr 127.0.0.1 ip daddr 10.0.0.2 masquerade comment {c}\n"
    );
    let net = s.container_v4.expect("v4");
    assert_eq!(
        rules_batch(&s, Family::V4, net).expect("quotable").text(),
        rules
    );
    assert_eq!(
        full_batch(&s, Family::V4, net).expect("quotable").text(),
        format!(
            "add table {t} {{ comment \"CNI portmap plugin\" ; }}\n\
             add chain {t} hostports\n\
             add chain {t} hostip_hostports\n\
             add chain {t} hostports_all\n\
             flush chain {t} hostports_all\n\
             add rule {t} hostports_all jump hostip_hostports\n\
             add rule {t} hostports_all jump hostports\n\
             add chain {t} prerouting {{ type nat hook prerouting priority -100 ; }}\n\
             flush chain {t} prerouting\n\
             add rule {t} prerouting fib daddr type local jump hostports_all\n\
             add chain {t} output {{ type nat hook output priority -100 ; }}\n\
             flush chain {t} output\n\
             add rule {t} output fib daddr type local jump hostports_all\n\
             add chain {t} masquerading {{ type nat hook postrouting priority 100 ; }}\n\
             {rules}"
        )
    );
    // IPv6: brackets, no localhost rule, the IPv4 host IP skipped.
    let net6 = s.container_v6.expect("v6");
    assert_eq!(
        rules_batch(&s, Family::V6, net6).expect("quotable").text(),
        format!(
            "add rule ip6 cni_hostport hostports tcp dport 8080 dnat to [2001:db8::2]:80 comment {c}\n\
             add rule ip6 cni_hostport masquerading ip6 saddr 2001:db8::2 ip6 daddr 2001:db8::2 masquerade comment {c}\n"
        )
    );
    // masqAll: any source, one rule (reference 3d27709f).
    s.masq_all = true;
    s.conditions_v4 = vec!["iifname".into(), "\"eth0\"".into()];
    let full = full_batch(&s, Family::V4, net).expect("quotable");
    assert!(full.text().contains(&format!(
        "add rule {t} masquerading ip saddr 0.0.0.0/0 ip daddr 10.0.0.2 masquerade comment {c}\n"
    )));
    assert!(!full.text().contains("127.0.0.1"));
    assert!(full.text().contains(&format!(
        "add rule {t} prerouting iifname \"eth0\" fib daddr type local jump hostports_all\n"
    )));
}

#[test]
fn bad_input_is_refused_before_any_process() {
    let mut bad = abc();
    bad.container_id = "a\nb".into();
    let mut bit = abc();
    bit.mark = MarkChain::Bit(32);
    for spec in [bad, bit] {
        for b in [Backend::Iptables, Backend::Nftables] {
            let (result, n) = spawns(|| portmapper(b).add(&spec));
            assert_eq!(
                result.expect_err("refused").kind(),
                ErrorKind::InvalidConfig
            );
            assert_eq!(n, 0);
        }
    }
}

#[test]
fn no_mappings_start_no_process() {
    let mut s = abc();
    s.mappings.clear();
    for b in [Backend::Iptables, Backend::Nftables] {
        let pm = portmapper(b);
        let (result, n) = spawns(|| {
            pm.add(&s)?;
            pm.check(&s)?;
            pm.del(&s)
        });
        result.expect("nothing to do");
        assert_eq!(n, 0, "{b:?}");
    }
}

// ---- kernel: iptables ----

/// `iptables-save -t nat` (or ip6tables) without the `#` lines.
fn nat(family: Family) -> String {
    let tool = match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    };
    run_tool(tool, &["-t", "nat"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Runs `f` in a fresh private netns on its own thread and returns both nat tables after.
fn nat_after(test: &str, f: impl FnOnce() + Send + 'static) -> Option<(String, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    in_private_netns(test, move || {
        f();
        tx.send((nat(Family::V4), nat(Family::V6)))
            .expect("send tables");
    });
    rx.recv().ok()
}

fn have_go_portmap(test: &str) -> bool {
    if Path::new(GO_PORTMAP).exists() {
        return true;
    }
    assert!(
        std::env::var("RCNI_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{test}: {GO_PORTMAP} is missing and RCNI_REQUIRE_ROOT=1 is set"
    );
    eprintln!("SKIP {test}: {GO_PORTMAP} not installed");
    false
}

/// Runs the Go portmap from this thread (so in its namespace); panics unless it succeeds.
fn go_portmap(command: &str, cid: &str, conf: &serde_json::Value) {
    let mut child = Command::new(GO_PORTMAP)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", "/var/run/netns/pod")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the Go portmap");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(conf.to_string().as_bytes())
        .expect("write config");
    let out = child.wait_with_output().expect("wait for the Go portmap");
    assert!(
        out.status.success(),
        "Go portmap {command}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn iptables_add_writes_what_go_writes_and_del_removes_it() {
    in_private_netns(
        "iptables_add_writes_what_go_writes_and_del_removes_it",
        || {
            let ipt = portmapper(Backend::Iptables);
            let s = abc();
            // The first ADD of a host: the quick transaction is refused (no shared chains), the
            // table is read and set up: three processes per family.
            let (result, n) = spawns(|| ipt.add(&s));
            result.expect("add");
            assert_eq!(n, 6);
            assert_eq!(nat(Family::V4), GO_NAT_V4);
            assert_eq!(nat(Family::V6), GO_NAT_V6);
            let (result, n) = spawns(|| ipt.check(&s));
            result.expect("check after add");
            assert_eq!(n, 2, "one restore of -C checks per family");

            let (result, n) = spawns(|| ipt.del(&s));
            result.expect("del");
            assert_eq!(n, 2, "one iptables-restore per family");
            assert_eq!(nat(Family::V4), SHARED_ONLY);
            assert_eq!(nat(Family::V6), SHARED_ONLY);
            let err = ipt.check(&s).expect_err("check after del");
            assert_eq!(err.kind(), ErrorKind::CheckFailed);
            assert!(err.to_string().contains(CHAIN), "{err}");

            // Every later ADD: one process per family.
            let (result, n) = spawns(|| ipt.add(&s));
            result.expect("add again");
            assert_eq!(n, 2);
            assert_eq!(nat(Family::V4), GO_NAT_V4);
            assert_eq!(nat(Family::V6), GO_NAT_V6);
        },
    );
}

#[test]
fn iptables_ipv4_only_never_runs_ip6tables() {
    in_private_netns("iptables_ipv4_only_never_runs_ip6tables", || {
        let ipt = portmapper(Backend::Iptables);
        let first = spec("first", Some("10.1.2.3/24"), None);
        ipt.add(&first)
            .expect("first add sets up the shared chains");
        assert_eq!(nat(Family::V6), EMPTY_NAT);
        let s = spec("abc", Some("10.1.2.2/24"), None);
        let (result, n) = spawns(|| ipt.add(&s));
        result.expect("add");
        assert_eq!(n, 1);
        let (result, n) = spawns(|| ipt.del(&s));
        result.expect("del");
        assert_eq!(n, 1);
        assert_eq!(nat(Family::V6), EMPTY_NAT);
        assert!(!nat(Family::V4).contains(CHAIN));
    });
}

#[test]
fn iptables_add_is_idempotent_and_del_spares_other_containers() {
    in_private_netns(
        "iptables_add_is_idempotent_and_del_spares_other_containers",
        || {
            let ipt = portmapper(Backend::Iptables);
            let other = spec("other", Some("10.1.2.3/24"), Some("fd00:1::3/64"));
            ipt.add(&other).expect("other add");
            let with_other = (nat(Family::V4), nat(Family::V6));
            let s = abc();
            ipt.add(&s).expect("first add");
            let once = (nat(Family::V4), nat(Family::V6));
            let (result, n) = spawns(|| ipt.add(&s));
            result.expect("second add");
            // Per family: the quick transaction is refused, one save, one rebuild.
            assert_eq!(n, 6);
            assert_eq!((nat(Family::V4), nat(Family::V6)), once);

            ipt.del(&s).expect("del");
            assert_eq!((nat(Family::V4), nat(Family::V6)), with_other);
            // Already gone: refused quick DEL, one save, nothing to do.
            let (result, n) = spawns(|| ipt.del(&s));
            result.expect("second del");
            assert_eq!(n, 4);
            assert_eq!((nat(Family::V4), nat(Family::V6)), with_other);
            ipt.check(&other).expect("the other container is intact");
        },
    );
}

#[test]
fn iptables_del_without_addresses_finds_the_chain_by_name() {
    in_private_netns(
        "iptables_del_without_addresses_finds_the_chain_by_name",
        || {
            let ipt = portmapper(Backend::Iptables);
            ipt.add(&abc()).expect("add");
            // No prevResult (netns gone after a reboot), and other mappings than at ADD: the
            // quick transaction is refused, the chain and its entries are found by name.
            let mut gone = spec("abc", None, None);
            gone.mappings.truncate(1);
            ipt.del(&gone).expect("del by name");
            assert_eq!(nat(Family::V4), SHARED_ONLY);
            assert_eq!(nat(Family::V6), SHARED_ONLY);
        },
    );
}

#[test]
fn iptables_check_names_a_missing_rule_in_both_families() {
    in_private_netns(
        "iptables_check_names_a_missing_rule_in_both_families",
        || {
            let ipt = portmapper(Backend::Iptables);
            let s = abc();
            ipt.add(&s).expect("add");
            run_tool(
                "ip6tables",
                &[
                    "-t",
                    "nat",
                    "-D",
                    CHAIN,
                    "-d",
                    "fd00::5/128",
                    "-p",
                    "tcp",
                    "-m",
                    "tcp",
                    "--dport",
                    "9091",
                    "-j",
                    "DNAT",
                    "--to-destination",
                    "[fd00:1::2]:91",
                ],
            );
            let err = ipt.check(&s).expect_err("IPv6 rule missing");
            assert_eq!(err.kind(), ErrorKind::CheckFailed);
            let msg = err.to_string();
            assert!(
                msg.contains("IPv6") && msg.contains("--dport 9091"),
                "{msg}"
            );
            let v4_only = spec("abc", Some("10.1.2.2/24"), None);
            ipt.check(&v4_only).expect("IPv4 is intact");
        },
    );
}

#[test]
fn iptables_non_default_mark_bit_gets_its_own_shared_rules() {
    in_private_netns(
        "iptables_non_default_mark_bit_gets_its_own_shared_rules",
        || {
            let ipt = portmapper(Backend::Iptables);
            ipt.add(&spec("first", Some("10.1.2.3/24"), None))
                .expect("default bit");
            let mut s = spec("abc", Some("10.1.2.2/24"), None);
            s.mark = MarkChain::Bit(14);
            ipt.add(&s).expect("bit 14");
            let saved = nat(Family::V4);
            assert_eq!(
                rules_of(&saved, names::HOSTPORT_SETMARK_CHAIN),
                [
                    "-m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x2000/0x2000",
                    "-m comment --comment \"CNI portfwd masquerade mark\" -j MARK --set-xmark 0x4000/0x4000",
                ]
            );
            ipt.check(&s).expect("check");
        },
    );
}

#[test]
fn iptables_gc_removes_only_stale_containers_of_the_network() {
    in_private_netns(
        "iptables_gc_removes_only_stale_containers_of_the_network",
        || {
            let ipt = portmapper(Backend::Iptables);
            let kept = spec("kept", Some("10.1.2.2/24"), None);
            let stale = spec("stale", Some("10.1.2.3/24"), Some("fd00:1::3/64"));
            let mut foreign = spec("stale", Some("10.1.3.3/24"), None);
            foreign.network = "other".into();
            for s in [&kept, &stale, &foreign] {
                ipt.add(s).expect("add");
            }
            ipt.gc("podman", &[("kept".to_owned(), "eth0".to_owned())])
                .expect("gc");
            ipt.check(&kept).expect("kept survives");
            ipt.check(&foreign).expect("other network survives");
            for family in Family::ALL {
                assert!(
                    !nat(family).contains(&names::portmap_dnat_chain("podman", "stale")),
                    "{family:?}"
                );
            }
        },
    );
}

#[test]
fn iptables_state_equals_go_for_every_option() {
    if !have_go_portmap("iptables_state_equals_go_for_every_option") {
        return;
    }
    let mut many = abc();
    many.mappings = (0..20)
        .map(|i| mapping(10_000 + i, 80, Protocol::Tcp, None))
        .collect();
    let mut no_snat = abc();
    no_snat.snat = false;
    let mut bit = abc();
    bit.mark = MarkChain::Bit(14);
    let mut conditions = abc();
    conditions.conditions_v4 = vec!["-s".into(), "192.168.0.0/16".into()];
    conditions.conditions_v6 = vec!["!".into(), "-i".into(), "eth9".into()];
    let cases = [
        ("many ports", many, json!({})),
        ("snat off", no_snat, json!({"snat": false})),
        ("mark bit 14", bit, json!({"markMasqBit": 14})),
        (
            "conditions",
            conditions,
            json!({"conditionsV4": ["-s", "192.168.0.0/16"], "conditionsV6": ["!", "-i", "eth9"]}),
        ),
    ];
    for (label, ours, extra) in cases {
        let go = go_conf(&ours, extra);
        let theirs = ours.clone();
        let Some(ours_state) = nat_after(label, move || {
            portmapper(Backend::Iptables).add(&ours).expect("our add");
        }) else {
            return;
        };
        let go_state = nat_after(label, move || {
            go_portmap("ADD", &theirs.container_id, &go);
        })
        .expect("Go state");
        assert_eq!(ours_state, go_state, "{label}");
    }
}

#[test]
fn iptables_external_mark_chain_equals_go() {
    if !have_go_portmap("iptables_external_mark_chain_equals_go") {
        return;
    }
    let mut ours = abc();
    ours.mark = MarkChain::External("KUBE-MARK-MASQ".into());
    let go = go_conf(&ours, json!({"externalSetMarkChain": "KUBE-MARK-MASQ"}));
    let theirs = ours.clone();
    let make_chain = || {
        for tool in ["iptables", "ip6tables"] {
            run_tool(tool, &["-t", "nat", "-N", "KUBE-MARK-MASQ"]);
        }
    };
    let Some(ours_state) = nat_after("external chain", move || {
        make_chain();
        portmapper(Backend::Iptables).add(&ours).expect("our add");
    }) else {
        return;
    };
    let go_state = nat_after("external chain", move || {
        make_chain();
        go_portmap("ADD", &theirs.container_id, &go);
    })
    .expect("Go state");
    assert_eq!(ours_state, go_state);
    assert!(!ours_state.0.contains("CNI-HOSTPORT-SETMARK"));
}

#[test]
fn iptables_interop_with_go_both_ways() {
    if !have_go_portmap("iptables_interop_with_go_both_ways") {
        return;
    }
    in_private_netns("iptables_interop_with_go_both_ways", || {
        let ipt = portmapper(Backend::Iptables);
        let s = abc();
        let conf = go_conf(&s, json!({}));
        // Go adds, we check and delete.
        go_portmap("ADD", "abc", &conf);
        ipt.check(&s).expect("our CHECK of Go's rules");
        ipt.del(&s).expect("our DEL of Go's rules");
        assert_eq!(nat(Family::V4), SHARED_ONLY);
        assert_eq!(nat(Family::V6), SHARED_ONLY);
        // We add, Go deletes. (Go 1.1.1's CHECK looks for each address's rules in both
        // families, so it fails on any host with ip6tables; HEAD fixed it.)
        ipt.add(&s).expect("our add");
        go_portmap("DEL", "abc", &conf);
        assert_eq!(nat(Family::V4), SHARED_ONLY);
        assert_eq!(nat(Family::V6), SHARED_ONLY);
    });
}

// ---- kernel: nftables ----

fn nft_table(family: &str) -> String {
    let out = Command::new("nft")
        .args(["list", "table", family, "cni_hostport"])
        .output()
        .expect("running nft");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `nft list table ip cni_hostport` after the ADD of container `abc` at 10.1.2.2/24 with
/// `mappings()`: the layout of the reference's nftables backend (v1.9).
const NFT_V4: &str = "table ip cni_hostport {
\tcomment \"CNI portmap plugin\"
\tchain hostports {
\t\ttcp dport 8080 dnat to 10.1.2.2:80 comment \"abc\"
\t\tudp dport 8081 dnat to 10.1.2.2:81 comment \"abc\"
\t\tsctp dport 8082 dnat to 10.1.2.2:82 comment \"abc\"
\t\tip daddr 192.168.1.5 tcp dport 9090 dnat to 10.1.2.2:90 comment \"abc\"
\t\tudp dport 9092 dnat to 10.1.2.2:92 comment \"abc\"
\t}

\tchain hostip_hostports {
\t}

\tchain hostports_all {
\t\tjump hostip_hostports
\t\tjump hostports
\t}

\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tfib daddr type local jump hostports_all
\t}

\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tfib daddr type local jump hostports_all
\t}

\tchain masquerading {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 10.1.2.2 ip daddr 10.1.2.2 masquerade comment \"abc\"
\t\tip saddr 127.0.0.1 ip daddr 10.1.2.2 masquerade comment \"abc\"
\t}
}
";

/// The rules of `table` minus every line mentioning `needle`.
fn without(table: &str, needle: &str) -> String {
    table
        .lines()
        .filter(|l| !l.contains(needle))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn nftables_add_check_del_in_both_families() {
    in_private_netns("nftables_add_check_del_in_both_families", || {
        let nft = portmapper(Backend::Nftables);
        let s = abc();
        // First ADD: the small batch is refused (no table), the reference's batch follows.
        let (result, n) = spawns(|| nft.add(&s));
        result.expect("add");
        assert_eq!(n, 4);
        assert_eq!(nft_table("ip"), NFT_V4);
        let v6 = nft_table("ip6");
        assert!(
            v6.contains("ip6 daddr fd00::5 tcp dport 9091 dnat to [fd00:1::2]:91 comment \"abc\""),
            "{v6}"
        );
        assert!(
            v6.contains("ip6 saddr fd00:1::2 ip6 daddr fd00:1::2 masquerade comment \"abc\""),
            "{v6}"
        );
        assert!(!v6.contains("::1 "), "no localhost rule for IPv6: {v6}");
        let (result, n) = spawns(|| nft.check(&s));
        result.expect("check");
        assert_eq!(n, 2);

        // A second container: one batch per family.
        let other = spec("other", Some("10.1.2.3/24"), Some("fd00:1::3/64"));
        let (result, n) = spawns(|| nft.add(&other));
        result.expect("add other");
        assert_eq!(n, 2);

        let (result, n) = spawns(|| nft.del(&s));
        result.expect("del");
        assert_eq!(n, 4, "one listing and one batch per family");
        assert_eq!(
            without(&nft_table("ip"), "\"other\""),
            without(NFT_V4, "\"abc\"")
        );
        nft.check(&other).expect("the other container is intact");
        let err = nft.check(&s).expect_err("gone");
        assert_eq!(err.kind(), ErrorKind::CheckFailed);

        // Without addresses (no prevResult): both tables searched by comment.
        nft.del(&spec("other", None, None)).expect("del by comment");
        for family in ["ip", "ip6"] {
            let table = nft_table(family);
            assert!(!table.contains("comment \"other\""), "{table}");
        }
        // Nothing left: one listing per family, no batch.
        let (result, n) = spawns(|| nft.del(&s));
        result.expect("del again");
        assert_eq!(n, 2);
    });
}

#[test]
fn nftables_conditions_rewrite_the_entry_rules() {
    in_private_netns("nftables_conditions_rewrite_the_entry_rules", || {
        let nft = portmapper(Backend::Nftables);
        let mut s = spec("abc", Some("10.1.2.2/24"), None);
        s.conditions_v4 = vec!["ip".into(), "saddr".into(), "!=".into(), "10.9.9.9".into()];
        let (result, n) = spawns(|| nft.add(&s));
        result.expect("add");
        assert_eq!(n, 1, "the reference's batch straight away");
        let table = nft_table("ip");
        assert!(
            table.contains("ip saddr != 10.9.9.9 fib daddr type local jump hostports_all"),
            "{table}"
        );
        assert_eq!(
            nft_table("ip6"),
            "",
            "no IPv6 table without an IPv6 address"
        );
    });
}

#[test]
fn nftables_repeated_add_is_removed_by_one_del() {
    in_private_netns("nftables_repeated_add_is_removed_by_one_del", || {
        let nft = portmapper(Backend::Nftables);
        let s = spec("abc", Some("10.1.2.2/24"), None);
        nft.add(&s).expect("add");
        nft.add(&s).expect("add again");
        nft.check(&s).expect("check");
        nft.del(&s).expect("del");
        assert!(!nft_table("ip").contains("comment \"abc\""));
    });
}

#[test]
fn masq_all_and_hairpin_sources_in_nft() {
    in_private_netns("masq_all_and_hairpin_sources_in_nft", || {
        let nft = portmapper(Backend::Nftables);
        let mut s = spec("abc", Some("10.1.2.2/24"), Some("fd00:1::2/64"));
        s.masq_all = true;
        nft.add(&s).expect("add");
        assert!(nft_table("ip").contains("ip daddr 10.1.2.2 masquerade comment \"abc\""));
        assert!(!nft_table("ip").contains("127.0.0.1"));
        nft.check(&s).expect("check with masqAll");
    });
}

#[test]
fn host_ip_families_are_kept_apart() {
    let s = abc();
    let v4: Vec<u16> = s
        .mappings
        .iter()
        .filter(|m| m.applies_to(Family::V4))
        .map(|m| m.host_port)
        .collect();
    assert_eq!(v4, [8080, 8081, 8082, 9090, 9092]);
    let v6: Vec<u16> = s
        .mappings
        .iter()
        .filter(|m| m.applies_to(Family::V6))
        .map(|m| m.host_port)
        .collect();
    assert_eq!(v6, [8080, 8081, 8082, 9091]);
    assert_eq!(
        mappings()[5].destination(),
        None::<IpAddr>,
        "0.0.0.0 is any address"
    );
}
