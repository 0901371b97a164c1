//! Kernel tests: each runs on its own thread inside a private network namespace (its own
//! netfilter tables), so the host's rules are never touched. Without root they print SKIP,
//! or fail when `RCNI_REQUIRE_ROOT=1`.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::error::ErrorKind;
use crate::testutil::{
    ContainerNs, TempDir, go_bridge, in_private_netns, require_go_bridge, run_tool, spawns, unique,
};

const CHAIN: &str = "CNI-514f2d63f742a896f7a7f9d8";

fn rule(network: &str, cid: &str, ifname: &str, address: &str) -> MasqueradeRule {
    MasqueradeRule::new(
        network,
        cid,
        ifname,
        address.parse().expect("valid address"),
    )
}

fn abc_v4() -> MasqueradeRule {
    rule("podman", "abc", "eth0", "10.1.2.2/24")
}

fn abc_v6() -> MasqueradeRule {
    rule("podman", "abc", "eth0", "fd00:1::2/64")
}

/// `iptables-save -t nat` without the timestamp comments (no counters: `-c` is not given).
fn nat(v6: bool) -> String {
    let tool = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    run_tool(tool, &["-t", "nat"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn nft_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "inet", "cni_plugins_masquerade"])
        .output()
        .expect("running nft");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

const EMPTY_NAT: &str = "*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
";

// Captured from /usr/lib/cni/bridge (Go, 1.1.1) for network "podman", container "abc",
// addresses 10.1.2.2/24 and fd00:1::2/64 (`iptables-save -t nat`, timestamps removed).
const GO_NAT_V4: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-514f2d63f742a896f7a7f9d8 - [0:0]
-A POSTROUTING -s 10.1.2.2/32 -m comment --comment "name: \"podman\" id: \"abc\"" -j CNI-514f2d63f742a896f7a7f9d8
-A CNI-514f2d63f742a896f7a7f9d8 -d 10.1.2.0/24 -m comment --comment "name: \"podman\" id: \"abc\"" -j ACCEPT
-A CNI-514f2d63f742a896f7a7f9d8 ! -d 224.0.0.0/4 -m comment --comment "name: \"podman\" id: \"abc\"" -j MASQUERADE
COMMIT
"#;
const GO_NAT_V6: &str = r#"*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-514f2d63f742a896f7a7f9d8 - [0:0]
-A POSTROUTING -s fd00:1::2/128 -m comment --comment "name: \"podman\" id: \"abc\"" -j CNI-514f2d63f742a896f7a7f9d8
-A CNI-514f2d63f742a896f7a7f9d8 -d fd00:1::/64 -m comment --comment "name: \"podman\" id: \"abc\"" -j ACCEPT
-A CNI-514f2d63f742a896f7a7f9d8 ! -d ff00::/8 -m comment --comment "name: \"podman\" id: \"abc\"" -j MASQUERADE
COMMIT
"#;

// ---- backend selection (no root needed) ----

#[test]
fn backend_parses_the_config_value() {
    assert_eq!(backend(Some("iptables")), Ok(Backend::Iptables));
    assert_eq!(backend(Some("nftables")), Ok(Backend::Nftables));
    for bad in ["", "nft", "IPTABLES"] {
        let err = backend(Some(bad)).expect_err("unknown backend");
        assert_eq!(err.kind(), ErrorKind::InvalidConfig);
        assert!(err.to_string().contains("ipMasqBackend"), "{err}");
    }
}

fn fake_tool(dir: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\n").expect("write fake tool");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn default_backend_prefers_iptables_unless_only_nft_exists() {
    let only_nft = TempDir::new("only-nft");
    fake_tool(&only_nft.0, "nft");
    assert_eq!(
        default_backend(std::slice::from_ref(&only_nft.0)),
        Backend::Nftables
    );

    let both = TempDir::new("both");
    fake_tool(&both.0, "nft");
    fake_tool(&both.0, "iptables-restore");
    assert_eq!(
        default_backend(std::slice::from_ref(&both.0)),
        Backend::Iptables
    );

    let none = TempDir::new("none");
    assert_eq!(
        default_backend(std::slice::from_ref(&none.0)),
        Backend::Iptables
    );
}

#[test]
fn control_characters_are_refused_before_any_process() {
    let bad = rule("pod\nman", "abc", "eth0", "10.1.2.2/24");
    for b in [Backend::Iptables, Backend::Nftables] {
        let (result, n) = spawns(|| masquerade(b).add(std::slice::from_ref(&bad)));
        assert_eq!(
            result.expect_err("refused").kind(),
            ErrorKind::InvalidConfig
        );
        assert_eq!(n, 0);
    }
}

// ---- iptables ----

#[test]
fn iptables_add_writes_the_reference_rules() {
    in_private_netns("iptables_add_writes_the_reference_rules", || {
        let ipt = masquerade(Backend::Iptables);
        let rules = [abc_v4(), abc_v6()];
        let (result, n) = spawns(|| ipt.add(&rules));
        result.expect("add");
        assert_eq!(n, 2, "one iptables-restore per family");
        assert_eq!(nat(false), GO_NAT_V4);
        assert_eq!(nat(true), GO_NAT_V6);
        ipt.check(&rules).expect("check after add");

        let (result, n) = spawns(|| ipt.del(&rules));
        result.expect("del");
        assert_eq!(
            n, 0,
            "iptables-nft: deleted over nf_tables netlink, no process"
        );
        assert_eq!(nat(false), EMPTY_NAT);
        assert_eq!(nat(true), EMPTY_NAT);
        let err = ipt.check(&rules).expect_err("check after del");
        assert_eq!(err.kind(), ErrorKind::CheckFailed);
        assert!(err.to_string().contains(CHAIN), "{err}");
    });
}

#[test]
fn iptables_ipv4_only_never_runs_ip6tables() {
    in_private_netns("iptables_ipv4_only_never_runs_ip6tables", || {
        let ipt = masquerade(Backend::Iptables);
        let (result, n) = spawns(|| ipt.add(&[abc_v4()]));
        result.expect("add");
        assert_eq!(n, 1);
        assert_eq!(nat(true), EMPTY_NAT);
        let (result, n) = spawns(|| ipt.del(&[abc_v4()]));
        result.expect("del");
        assert_eq!(n, 0);
        assert_eq!(nat(false), EMPTY_NAT);
    });
}

#[test]
fn iptables_add_and_del_are_idempotent() {
    in_private_netns("iptables_add_and_del_are_idempotent", || {
        let ipt = masquerade(Backend::Iptables);
        let rules = [abc_v4(), abc_v6()];
        ipt.add(&rules).expect("first add");
        let (result, n) = spawns(|| ipt.add(&rules));
        result.expect("second add");
        // Per family: the optimistic transaction is refused, one save, one rebuild.
        assert_eq!(n, 6);
        assert_eq!(nat(false), GO_NAT_V4);
        assert_eq!(nat(true), GO_NAT_V6);

        ipt.del(&rules).expect("first del");
        let (result, n) = spawns(|| ipt.del(&rules));
        result.expect("second del");
        // Per family: the optimistic transaction is refused, one save, nothing to apply.
        assert_eq!(n, 4);
        assert_eq!(nat(false), EMPTY_NAT);
        assert_eq!(nat(true), EMPTY_NAT);
    });
}

#[test]
fn iptables_add_repairs_partial_state() {
    in_private_netns("iptables_add_repairs_partial_state", || {
        let ipt = masquerade(Backend::Iptables);
        // Leftovers: our chain with a foreign rule, an old-style jump, a duplicate jump, and a
        // jump for an address the container no longer has.
        run_tool("iptables", &["-t", "nat", "-N", CHAIN]);
        run_tool("iptables", &["-t", "nat", "-A", CHAIN, "-j", "RETURN"]);
        for src in ["10.1.2.2/24", "10.1.2.9", "10.1.2.9"] {
            run_tool(
                "iptables",
                &["-t", "nat", "-A", "POSTROUTING", "-s", src, "-j", CHAIN],
            );
        }
        ipt.add(&[abc_v4()]).expect("add over leftovers");
        assert_eq!(nat(false), GO_NAT_V4);
    });
}

#[test]
fn iptables_del_removes_the_old_jump_form_and_keeps_others() {
    in_private_netns(
        "iptables_del_removes_the_old_jump_form_and_keeps_others",
        || {
            // The iptables-restore path (what iptables-legacy hosts take): netlink off.
            crate::nf::rules::off_on_this_thread();
            let ipt = masquerade(Backend::Iptables);
            let def = rule("podman", "def", "eth0", "10.1.2.3/24");
            ipt.add(std::slice::from_ref(&def)).expect("add def");
            let with_def = nat(false);
            ipt.add(&[abc_v4()]).expect("add abc");
            // The form written before the reference switched to `-s <ip>`.
            let comment = names::iptables_comment("podman", "abc");
            run_tool(
                "iptables",
                &[
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-s",
                    "10.1.2.2/24",
                    "-j",
                    CHAIN,
                    "-m",
                    "comment",
                    "--comment",
                    &comment,
                ],
            );
            let (result, n) = spawns(|| ipt.del(&[abc_v4()]));
            result.expect("del abc");
            assert_eq!(n, 3, "refused optimistic transaction, save, cleanup");
            assert_eq!(nat(false), with_def);
            ipt.check(&[def]).expect("def untouched");
        },
    );
}

#[test]
fn iptables_check_notices_a_missing_rule() {
    in_private_netns("iptables_check_notices_a_missing_rule", || {
        let ipt = masquerade(Backend::Iptables);
        ipt.add(&[abc_v4()]).expect("add");
        run_tool("iptables", &["-t", "nat", "-D", CHAIN, "2"]);
        let err = ipt.check(&[abc_v4()]).expect_err("rule missing");
        assert_eq!(err.kind(), ErrorKind::CheckFailed);
        assert!(err.to_string().contains("MASQUERADE"), "{err}");
    });
}

#[test]
fn iptables_gc_removes_only_unkept_containers_of_the_network() {
    in_private_netns(
        "iptables_gc_removes_only_unkept_containers_of_the_network",
        || {
            let ipt = masquerade(Backend::Iptables);
            let kept = [
                rule("podman", "kept", "eth0", "10.1.2.2/24"),
                rule("podman", "kept", "eth0", "fd00:1::2/64"),
            ];
            let other_net = [rule("other", "gone", "eth0", "10.9.0.2/16")];
            let gone = [
                rule("podman", "gone", "eth0", "10.1.2.3/24"),
                rule("podman", "gone", "eth0", "fd00:1::3/64"),
            ];
            ipt.add(&kept).expect("add kept");
            ipt.add(&other_net).expect("add other");
            let (v4, v6) = (nat(false), nat(true));
            ipt.add(&gone).expect("add gone");

            // The comment has no ifname: any attachment of "kept" keeps its chain.
            let keep = [("kept".to_owned(), "eth1".to_owned())];
            let (result, n) = spawns(|| ipt.gc("podman", &keep));
            result.expect("gc");
            assert_eq!(n, 4, "save and one transaction per family");
            assert_eq!(nat(false), v4);
            assert_eq!(nat(true), v6);
            ipt.check(&kept).expect("kept untouched");
            ipt.check(&other_net).expect("other network untouched");

            let (result, n) = spawns(|| ipt.gc("podman", &keep));
            result.expect("gc again");
            assert_eq!(n, 2, "only the saves");
        },
    );
}

// ---- nftables ----

fn expected_nft(rules: &[&str]) -> String {
    let mut text = format!(
        "table inet cni_plugins_masquerade {{\n\tcomment \"{}\"\n\tchain masq_checks {{\n\t\tcomment \"{}\"\n",
        names::NFT_MASQ_TABLE_COMMENT,
        names::NFT_MASQ_CHAIN_COMMENT
    );
    for rule in rules {
        text.push_str(&format!("\t\t{rule}\n"));
    }
    text.push_str(
        "\t}\n\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip daddr 224.0.0.0/4 return\n\t\tip6 daddr ff00::/8 return\n\t\tgoto masq_checks\n\t}\n}\n",
    );
    text
}

const ABC_COMMENT: &str = "1d8721804f16f412-e65086f8a75535c6, net: podman, if: eth0, id: abc";

fn abc_nft_rules() -> [String; 2] {
    [
        format!("ip saddr 10.1.2.2 ip daddr != 10.1.2.0/24 masquerade comment \"{ABC_COMMENT}\""),
        format!(
            "ip6 saddr fd00:1::2 ip6 daddr != fd00:1::/64 masquerade comment \"{ABC_COMMENT}\""
        ),
    ]
}

#[test]
fn nft_add_writes_the_reference_table() {
    in_private_netns("nft_add_writes_the_reference_table", || {
        let nft = masquerade(Backend::Nftables);
        let rules = [abc_v4(), abc_v6()];
        let (result, n) = spawns(|| nft.add(&rules));
        result.expect("add");
        assert_eq!(n, 2, "one listing, one batch");
        let [r4, r6] = abc_nft_rules();
        assert_eq!(nft_table(), expected_nft(&[&r4, &r6]));
        nft.check(&rules).expect("check after add");

        let (result, n) = spawns(|| nft.del(&rules));
        result.expect("del");
        assert_eq!(n, 2, "one listing, one batch");
        assert_eq!(nft_table(), expected_nft(&[]));
        let err = nft.check(&rules).expect_err("check after del");
        assert_eq!(err.kind(), ErrorKind::CheckFailed);
        // Nothing to delete: one netlink dump of masq_checks, no process.
        let (result, n) = spawns(|| nft.del(&rules));
        result.expect("second del");
        assert_eq!(n, 0);
    });
}

#[test]
fn nft_snat_and_excluded_subnets_of_the_family_only() {
    in_private_netns("nft_snat_and_excluded_subnets_of_the_family_only", || {
        let nft = masquerade(Backend::Nftables);
        let extended = |r: MasqueradeRule| {
            r.with_snat(
                Some("192.0.2.9".parse().expect("ip")),
                vec![
                    "198.51.100.0/24".parse().expect("net"),
                    "203.0.113.7/32".parse().expect("net"),
                    "fd00:9::/64".parse().expect("net"),
                ],
            )
        };
        let rules = [extended(abc_v4()), extended(abc_v6())];
        nft.add(&rules).expect("add");
        let c = names::nft_masquerade_comment("podman", "eth0", "abc");
        let r4 = format!(
            "ip saddr 10.1.2.2 ip daddr != 10.1.2.0/24 ip daddr != 198.51.100.0/24 \
             ip daddr != 203.0.113.7 snat ip to 192.0.2.9 comment \"{c}\""
        );
        // The IPv4 source is not for IPv6 addresses: they are masqueraded.
        let r6 = format!(
            "ip6 saddr fd00:1::2 ip6 daddr != fd00:1::/64 ip6 daddr != fd00:9::/64 \
             masquerade comment \"{c}\""
        );
        assert_eq!(nft_table(), expected_nft(&[&r4, &r6]));
        nft.check(&rules).expect("check");
        // A rule that differs only in its exclusions or its source is not ours.
        let fewer = abc_v4().with_snat(
            Some("192.0.2.9".parse().expect("ip")),
            vec!["198.51.100.0/24".parse().expect("net")],
        );
        assert_eq!(
            nft.check(&[fewer]).expect_err("exclusions differ").kind(),
            ErrorKind::CheckFailed
        );
        let other_source = abc_v4().with_snat(Some("192.0.2.10".parse().expect("ip")), vec![]);
        assert!(nft.check(&[other_source]).is_err(), "source differs");
        assert!(nft.check(&[abc_v4()]).is_err(), "masquerade is not snat");
        nft.del(&rules).expect("del");
        assert_eq!(nft_table(), expected_nft(&[]));
    });
}

#[test]
fn nft_del_without_table_is_success() {
    in_private_netns("nft_del_without_table_is_success", || {
        let nft = masquerade(Backend::Nftables);
        let (result, n) = spawns(|| nft.del(&[abc_v4()]));
        result.expect("del");
        assert_eq!(n, 0);
        assert_eq!(
            nft.check(&[abc_v4()]).expect_err("no table").kind(),
            ErrorKind::CheckFailed
        );
    });
}

#[test]
fn nft_add_replaces_stale_rules_of_the_attachment() {
    in_private_netns("nft_add_replaces_stale_rules_of_the_attachment", || {
        let nft = masquerade(Backend::Nftables);
        let other_if = rule("podman", "abc", "eth1", "10.1.3.2/24");
        nft.add(std::slice::from_ref(&other_if)).expect("add eth1");
        nft.add(&[rule("podman", "abc", "eth0", "10.1.2.77/24")])
            .expect("add with an old address");
        nft.add(&[abc_v4(), abc_v6()]).expect("add");
        nft.add(&[abc_v4(), abc_v6()]).expect("add again");
        let eth1 = format!(
            "ip saddr 10.1.3.2 ip daddr != 10.1.3.0/24 masquerade comment \"{}\"",
            names::nft_masquerade_comment("podman", "eth1", "abc")
        );
        let [r4, r6] = abc_nft_rules();
        assert_eq!(nft_table(), expected_nft(&[&eth1, &r4, &r6]));

        nft.del(&[abc_v4()]).expect("del eth0");
        assert_eq!(nft_table(), expected_nft(&[&eth1]));
        nft.check(&[other_if]).expect("eth1 untouched");
    });
}

#[test]
fn nft_gc_removes_only_unkept_attachments_of_the_network() {
    in_private_netns(
        "nft_gc_removes_only_unkept_attachments_of_the_network",
        || {
            let nft = masquerade(Backend::Nftables);
            let kept = rule("podman", "abc", "eth0", "10.1.2.2/24");
            let other_net = rule("other", "gone", "eth0", "10.9.0.2/16");
            nft.add(std::slice::from_ref(&kept)).expect("add kept");
            nft.add(std::slice::from_ref(&other_net))
                .expect("add other network");
            let before = nft_table();
            nft.add(&[rule("podman", "gone", "eth0", "10.1.2.3/24")])
                .expect("add gone");
            // Same container, other interface: not kept, since nft rules carry the ifname.
            nft.add(&[rule("podman", "abc", "eth1", "10.1.3.2/24")])
                .expect("add abc/eth1");
            let keep = [("abc".to_owned(), "eth0".to_owned())];
            let (result, n) = spawns(|| nft.gc("podman", &keep));
            result.expect("gc");
            assert_eq!(n, 2);
            assert_eq!(nft_table(), before);
            nft.check(&[kept, other_net]).expect("survivors");
        },
    );
}

// ---- both ----

#[test]
fn teardown_all_removes_rules_of_both_backends() {
    in_private_netns("teardown_all_removes_rules_of_both_backends", || {
        let rules = [abc_v4(), abc_v6()];
        masquerade(Backend::Iptables)
            .add(&rules)
            .expect("iptables add");
        masquerade(Backend::Nftables).add(&rules).expect("nft add");
        teardown_all(&rules).expect("teardown");
        assert_eq!(nat(false), EMPTY_NAT);
        assert_eq!(nat(true), EMPTY_NAT);
        assert_eq!(nft_table(), expected_nft(&[]));
        teardown_all(&rules).expect("teardown again");
    });
}

#[test]
fn gc_all_and_probes_cover_both_backends() {
    in_private_netns("gc_all_and_probes_cover_both_backends", || {
        assert!(usable(Backend::Iptables));
        assert!(usable(Backend::Nftables));
        let gone = [abc_v4(), abc_v6()];
        masquerade(Backend::Iptables)
            .add(&gone)
            .expect("iptables add");
        masquerade(Backend::Nftables).add(&gone).expect("nft add");
        gc_all("podman", &[]).expect("gc both");
        assert_eq!(nat(false), EMPTY_NAT);
        assert_eq!(nat(true), EMPTY_NAT);
        assert_eq!(nft_table(), expected_nft(&[]));
    });
}

#[test]
fn concurrent_adds_and_dels_do_not_interfere() {
    in_private_netns("concurrent_adds_and_dels_do_not_interfere", || {
        for backend in [Backend::Iptables, Backend::Nftables] {
            let rules: Vec<MasqueradeRule> = (0..12)
                .map(|i| {
                    rule(
                        "podman",
                        &format!("c{i}"),
                        "eth0",
                        &format!("10.1.2.{}/24", i + 10),
                    )
                })
                .collect();
            // Threads created here start in this thread's namespace.
            std::thread::scope(|s| {
                for r in &rules {
                    s.spawn(move || {
                        masquerade(backend)
                            .add(std::slice::from_ref(r))
                            .expect("concurrent add");
                    });
                }
            });
            masquerade(backend).check(&rules).expect("every add landed");
            std::thread::scope(|s| {
                for r in &rules {
                    s.spawn(move || {
                        masquerade(backend)
                            .del(std::slice::from_ref(r))
                            .expect("concurrent del");
                    });
                }
            });
        }
        assert_eq!(nat(false), EMPTY_NAT);
        assert_eq!(nft_table(), expected_nft(&[]));
    });
}

// ---- interop with the Go reference plugin ----

#[test]
fn interop_with_the_go_bridge_plugin() {
    let test = "interop_with_the_go_bridge_plugin";
    if !require_go_bridge(test) {
        return;
    }
    in_private_netns(test, || {
        let network = "rcni-interop";
        let cid = format!("interop-{}", unique());
        let data = TempDir::new("hostlocal");
        let conf = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": network,
            "type": "bridge",
            "bridge": "rcnifw0",
            "isGateway": true,
            "ipMasq": true,
            "ipam": {
                "type": "host-local",
                "dataDir": data.0,
                "ranges": [[{"subnet": "10.77.3.0/24"}], [{"subnet": "fd00:77:3::/64"}]],
            },
        })
        .to_string();
        let ns = ContainerNs::create("rcni-fw");
        let (empty4, empty6) = (nat(false), nat(true));

        // 1. Go adds; remember exactly what it wrote.
        let result: serde_json::Value =
            serde_json::from_str(&go_bridge("ADD", &conf, &ns, &cid)).expect("Go result JSON");
        let rules: Vec<MasqueradeRule> = result["ips"]
            .as_array()
            .expect("ips in the Go result")
            .iter()
            .map(|ip| {
                rule(
                    network,
                    &cid,
                    "eth0",
                    ip["address"].as_str().expect("address"),
                )
            })
            .collect();
        assert_eq!(rules.len(), 2, "one IPv4 and one IPv6 address");
        assert!(rules[0].ip().is_ipv4() && rules[1].ip().is_ipv6());
        let (go4, go6) = (nat(false), nat(true));
        let chain = names::masquerade_chain(network, &cid);
        // The Go plugin's own rules: its chain, and a jump for each address.
        for (saved, rule) in [(&go4, &rules[0]), (&go6, &rules[1])] {
            assert!(saved.contains(&format!(":{chain} - [0:0]")), "{saved}");
            let prefix = if rule.ip().is_ipv4() { 32 } else { 128 };
            let jump = format!("-A POSTROUTING -s {}/{prefix} ", rule.ip());
            assert!(saved.contains(&jump), "{saved}");
        }
        masquerade(Backend::Iptables)
            .check(&rules)
            .expect("our CHECK accepts the Go rules");

        // 2. Our teardown removes the Go chains and jumps completely.
        teardown_all(&rules).expect("teardown of Go rules");
        assert_eq!(nat(false), empty4);
        assert_eq!(nat(true), empty6);

        // 3. Our ADD writes byte-for-byte what Go wrote.
        masquerade(Backend::Iptables).add(&rules).expect("our add");
        assert_eq!(nat(false), go4);
        assert_eq!(nat(true), go6);

        // 4. Go's DEL removes our rules completely.
        go_bridge("DEL", &conf, &ns, &cid);
        assert_eq!(nat(false), empty4);
        assert_eq!(nat(true), empty6);
    });
}

// ---- teardown of one attachment without its addresses (DEL without netns or prevResult) ----

#[test]
fn teardown_container_without_addresses_removes_iptables_chains() {
    in_private_netns(
        "teardown_container_without_addresses_removes_iptables_chains",
        || {
            let ipt = masquerade(Backend::Iptables);
            let def = [
                rule("podman", "def", "eth0", "10.1.2.3/24"),
                rule("podman", "def", "eth0", "fd00:1::3/64"),
            ];
            ipt.add(&def).expect("add def");
            // A foreign chain reached from POSTROUTING (MASQUERADE is valid only there).
            run_tool("iptables", &["-t", "nat", "-N", "FOREIGN"]);
            run_tool(
                "iptables",
                &["-t", "nat", "-A", "POSTROUTING", "-j", "FOREIGN"],
            );
            let (v4, v6) = (nat(false), nat(true));
            ipt.add(&[abc_v4(), abc_v6()]).expect("add abc");
            // Jumps the reference never writes are removed too: any rule of `nat` that jumps
            // to the chain would keep it from being deleted.
            run_tool("iptables", &["-t", "nat", "-A", "FOREIGN", "-j", CHAIN]);
            run_tool(
                "ip6tables",
                &[
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-s",
                    "fd00:1::/64",
                    "-j",
                    CHAIN,
                ],
            );

            let (result, n) = spawns(|| teardown_container("podman", "abc", "eth0", &[]));
            result.expect("teardown without addresses");
            assert_eq!(n, 5, "one save and one restore per family, one nft listing");
            assert_eq!(nat(false), v4);
            assert_eq!(nat(true), v6);
            ipt.check(&def).expect("def untouched");

            let (result, n) = spawns(|| teardown_container("podman", "abc", "eth0", &[]));
            result.expect("teardown again");
            assert_eq!(n, 3, "the saves and the nft listing only");
        },
    );
}

#[test]
fn teardown_container_without_addresses_removes_nft_rules_of_the_attachment() {
    in_private_netns(
        "teardown_container_without_addresses_removes_nft_rules_of_the_attachment",
        || {
            let nft = masquerade(Backend::Nftables);
            let def = rule("podman", "def", "eth0", "10.1.2.3/24");
            let abc_eth1 = rule("podman", "abc", "eth1", "10.1.3.2/24");
            let other_net = rule("other", "abc", "eth0", "10.9.0.2/16");
            nft.add(&[def.clone(), abc_eth1.clone(), other_net.clone()])
                .expect("add the others");
            let before = nft_table();
            nft.add(&[abc_v4(), abc_v6()]).expect("add abc/eth0");

            let (result, n) = spawns(|| teardown_container("podman", "abc", "eth0", &[]));
            result.expect("teardown without addresses");
            assert_eq!(n, 4, "two iptables saves, one nft listing, one nft batch");
            assert_eq!(nft_table(), before);
            nft.check(&[def, abc_eth1, other_net])
                .expect("other attachments untouched");
            assert_eq!(nat(false), EMPTY_NAT);
            assert_eq!(nat(true), EMPTY_NAT);

            let (result, n) = spawns(|| teardown_container("podman", "abc", "eth0", &[]));
            result.expect("teardown again");
            assert_eq!(n, 3, "the saves and the nft listing only");
        },
    );
}

#[test]
fn teardown_container_with_addresses_keeps_the_cheap_path() {
    in_private_netns(
        "teardown_container_with_addresses_keeps_the_cheap_path",
        || {
            let rules = [abc_v4(), abc_v6()];
            masquerade(Backend::Iptables)
                .add(&rules)
                .expect("iptables add");
            let (result, n) = spawns(|| teardown_container("podman", "abc", "eth0", &rules));
            result.expect("teardown with addresses");
            assert_eq!(n, 0, "over nf_tables netlink: no process");
            assert_eq!(nat(false), EMPTY_NAT);
            assert_eq!(nat(true), EMPTY_NAT);
        },
    );
}

#[test]
fn teardown_container_without_addresses_removes_go_bridge_rules() {
    let test = "teardown_container_without_addresses_removes_go_bridge_rules";
    if !require_go_bridge(test) {
        return;
    }
    in_private_netns(test, || {
        let network = "rcni-teardown";
        let data = TempDir::new("hostlocal");
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": network,
            "type": "bridge",
            "bridge": "rcnifw1",
            "isGateway": true,
            "ipMasq": true,
            "ipam": {
                "type": "host-local",
                "dataDir": data.0,
                "ranges": [[{"subnet": "10.77.4.0/24"}], [{"subnet": "fd00:77:4::/64"}]],
            },
        })
        .to_string();
        let (empty4, empty6) = (nat(false), nat(true));
        let other_ns = ContainerNs::create("rcni-fw");
        let other = format!("other-{}", unique());
        go_bridge("ADD", &conf, &other_ns, &other);
        let (other4, other6) = (nat(false), nat(true));

        let ns = ContainerNs::create("rcni-fw");
        let cid = format!("gone-{}", unique());
        go_bridge("ADD", &conf, &ns, &cid);
        let chain = names::masquerade_chain(network, &cid);
        let (go4, go6) = (nat(false), nat(true));
        assert!(go4.contains(&format!("-j {chain}")), "{go4}");
        assert!(go6.contains(&format!("-j {chain}")), "{go6}");

        // The container's netns is gone and there is no prevResult: only names are known.
        drop(ns);
        let (result, n) = spawns(|| teardown_container(network, &cid, "eth0", &[]));
        result.expect("teardown of the Go rules");
        assert_eq!(n, 5, "one save and one restore per family, one nft listing");
        assert_eq!(nat(false), other4);
        assert_eq!(nat(true), other6);

        go_bridge("DEL", &conf, &other_ns, &other);
        assert_eq!(nat(false), empty4);
        assert_eq!(nat(true), empty6);
    });
}
