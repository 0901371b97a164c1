//! Rule text pinned against the Go firewall plugin, and kernel tests: each runs on its own
//! thread inside a private network namespace (its own netfilter tables), so the host's rules
//! are never touched. Without root they print SKIP, or fail when `RCNI_REQUIRE_ROOT=1`.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use super::*;
use crate::error::ErrorKind;
use crate::testutil::{in_private_netns, run_tool, spawns};

const GO_FIREWALL: &str = "/usr/lib/cni/firewall";

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter()
        .map(|s| s.parse().expect("valid address"))
        .collect()
}

fn rules(list: &[&str]) -> ForwardRules {
    ForwardRules::new("CNI-ADMIN", &ips(list), None).expect("valid rules")
}

fn isolated(list: &[&str], bridge: &str, policy: IngressPolicy) -> ForwardRules {
    let iso = Isolation {
        bridge: bridge.to_owned(),
        policy,
    };
    ForwardRules::new("CNI-ADMIN", &ips(list), Some(iso)).expect("valid rules")
}

/// `iptables-save -t filter` (or ip6tables-save) without the timestamp comments.
fn filter(v6: bool) -> String {
    let tool = if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    };
    run_tool(tool, &["-t", "filter"])
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn lines_of(plan: &FamilyPlan) -> Vec<String> {
    plan.rules
        .iter()
        .map(|r| format!("-A {} {}", r.chain, r.args))
        .collect()
}

// ---- rule text (no root needed) ----

#[test]
fn plan_is_the_reference_layout() {
    let r = rules(&["10.88.0.2", "fd00:1::2", "10.88.0.2"]);
    assert_eq!(r.addresses().len(), 2, "repeats dropped");
    let plans = r.plans();
    assert_eq!(plans.len(), 2);
    assert_eq!(plans[0].chains, ["CNI-FORWARD", "CNI-ADMIN"]);
    assert_eq!(
        lines_of(&plans[0]),
        [
            r#"-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#,
            r#"-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN"#,
            "-A CNI-FORWARD -d 10.88.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A CNI-FORWARD -s 10.88.0.2/32 -j ACCEPT",
        ]
    );
    assert_eq!(
        lines_of(&plans[1])[2..],
        [
            "-A CNI-FORWARD -d fd00:1::2/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A CNI-FORWARD -s fd00:1::2/128 -j ACCEPT",
        ]
    );
    let own: Vec<bool> = plans[0].rules.iter().map(|r| r.own).collect();
    assert_eq!(own, [false, false, true, true]);
}

#[test]
fn only_families_with_an_address_are_planned() {
    assert_eq!(rules(&["10.0.0.1"]).plans().len(), 1);
    assert_eq!(rules(&["fd00::1"]).plans()[0].family, Family::V6);
    assert!(rules(&[]).plans().is_empty());
    // An IPv4-mapped address is IPv4, as Go's To4 says.
    assert_eq!(rules(&["::ffff:10.0.0.1"]).addresses(), ips(&["10.0.0.1"]));
}

#[test]
fn custom_admin_chain_is_the_jump_target() {
    let r = ForwardRules::new("MY-ADMIN", &ips(&["10.0.0.1"]), None).expect("valid");
    let plan = &r.plans()[0];
    assert_eq!(plan.chains[1], "MY-ADMIN");
    assert!(plan.rules[1].args.ends_with("-j MY-ADMIN"));
}

// From plugins/meta/firewall/ingresspolicy.go (Debian's 1.1.1 predates ingressPolicy), in
// the order the reference leaves the rules on a fresh host.
#[test]
fn isolation_rules_are_the_reference_layout() {
    let plan = &isolated(&["10.88.0.2"], "cni0", IngressPolicy::Isolated).plans()[0];
    assert_eq!(
        plan.chains,
        [
            "CNI-FORWARD",
            "CNI-ADMIN",
            "CNI-ISOLATION-STAGE-1",
            "CNI-ISOLATION-STAGE-2"
        ]
    );
    let iso: Vec<String> = lines_of(plan)[4..].to_vec();
    assert_eq!(
        iso,
        [
            r#"-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j CNI-ISOLATION-STAGE-1"#,
            r#"-A CNI-ISOLATION-STAGE-1 -i cni0 ! -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2"#,
            r#"-A CNI-ISOLATION-STAGE-1 -i cni0 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP"#,
            r#"-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN"#,
            r#"-A CNI-ISOLATION-STAGE-2 -o cni0 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP"#,
            r#"-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j RETURN"#,
        ]
    );
    let same = &isolated(&["10.88.0.2"], "cni0", IngressPolicy::SameBridge).plans()[0];
    assert_eq!(
        same.rules.len(),
        plan.rules.len() - 1,
        "no DROP within the bridge"
    );
    assert!(lines_of(same)[5].contains("(ingressPolicy: same-bridge)"));
}

#[test]
fn names_that_cannot_be_written_are_refused() {
    for bad in [
        "",
        "-X",
        "!X",
        "two words",
        "quo\"te",
        "A-chain-name-far-too-long-for-xt",
    ] {
        let e = ForwardRules::new(bad, &[], None).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad}");
    }
    for bad in ["", "a bridge", "br/0", "sixteen-chars-xx", "-br"] {
        let iso = Isolation {
            bridge: bad.to_owned(),
            policy: IngressPolicy::SameBridge,
        };
        let e = ForwardRules::new("CNI-ADMIN", &[], Some(iso)).expect_err(bad);
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad}");
    }
}

// ---- kernel tests ----

/// Runs the Go firewall plugin from this thread (so in this thread's namespace).
fn go_firewall(command: &str, prev_ips: &[&str]) {
    let ips: Vec<String> = prev_ips
        .iter()
        .map(|ip| {
            let (version, prefix) = if ip.contains(':') {
                ("6", 64)
            } else {
                ("4", 16)
            };
            format!(r#"{{"version":"{version}","address":"{ip}/{prefix}","interface":1}}"#)
        })
        .collect();
    let conf = format!(
        r#"{{"cniVersion":"0.4.0","name":"podman","type":"firewall","backend":"iptables",
        "prevResult":{{"cniVersion":"0.4.0","interfaces":[{{"name":"cni0"}},
        {{"name":"eth0","sandbox":"/x"}}],"ips":[{}],"dns":{{}}}}}}"#,
        ips.join(",")
    );
    let mut cmd = Command::new(GO_FIREWALL);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "abc")
        .env("CNI_NETNS", "/proc/self/ns/net")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let out = crate::testutil::feed(cmd, &conf);
    assert!(
        out.status.success(),
        "Go firewall {command}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_go_firewall(test: &str) -> bool {
    if Path::new(GO_FIREWALL).exists() {
        return true;
    }
    assert!(
        std::env::var("RCNI_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{test}: {GO_FIREWALL} is missing and RCNI_REQUIRE_ROOT=1 is set"
    );
    eprintln!("SKIP {test}: {GO_FIREWALL} not installed");
    false
}

/// Both families' filter tables after `f` ran in a fresh namespace.
fn tables_after(f: impl FnOnce() + Send + 'static) -> (String, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    in_private_netns("tables_after", move || {
        f();
        tx.send((filter(false), filter(true))).expect("send tables");
    });
    rx.recv().unwrap_or_default()
}

#[test]
fn add_writes_what_the_go_plugin_writes() {
    if !nix::unistd::geteuid().is_root()
        || !require_go_firewall("add_writes_what_the_go_plugin_writes")
    {
        return in_private_netns("add_writes_what_the_go_plugin_writes", || {});
    }
    let theirs = tables_after(|| go_firewall("ADD", &["10.88.0.2", "fd00:1::2"]));
    let ours = tables_after(|| {
        rules(&["10.88.0.2", "fd00:1::2"])
            .add(Prior::Absent)
            .expect("add");
    });
    assert!(
        theirs.0.contains("-s 10.88.0.2/32 -j ACCEPT"),
        "{}",
        theirs.0
    );
    assert_eq!(ours.0, theirs.0);
    assert_eq!(ours.1, theirs.1);

    // A second container, after a first from the Go plugin: same text again.
    let theirs = tables_after(|| {
        go_firewall("ADD", &["10.88.0.2"]);
        go_firewall("ADD", &["10.88.0.3"]);
    });
    let ours = tables_after(|| {
        go_firewall("ADD", &["10.88.0.2"]);
        rules(&["10.88.0.3"]).add(Prior::Absent).expect("add");
    });
    assert_eq!(ours.0, theirs.0);
}

#[test]
fn process_counts_per_change() {
    in_private_netns("process_counts_per_change", || {
        // Where iptables is iptables-nft, what only checks, creates and appends is done
        // over netlink (`crate::nf::xt`): (processes with iptables-legacy, with nft).
        let nft = crate::nf::xt::is_nft(Family::V4);
        let expect = |legacy: usize, over_netlink: usize| if nft { over_netlink } else { legacy };
        // The host's first ADD: the optimistic transaction fails, the creating one works
        // (by the tool also with nft: iptables-nft makes the FORWARD base chain on first
        // use, and a rule for a chain that is not there is refused).
        let (done, n) = spawns(|| rules(&["10.88.0.2", "fd00::2"]).add(Prior::Absent));
        done.expect("first add");
        assert_eq!(n, 4, "first ADD on the host: two per family");
        let (done, n) = spawns(|| rules(&["10.88.0.3", "fd00::3"]).add(Prior::Absent));
        done.expect("second add");
        assert_eq!(n, expect(2, 0), "one transaction per family");
        let (done, n) = spawns(|| rules(&["10.88.0.4"]).add(Prior::Absent));
        done.expect("third add");
        assert_eq!(n, expect(1, 0), "IPv4 only: no ip6tables");
        let (done, n) = spawns(|| rules(&["10.88.0.4"]).check());
        done.expect("check");
        assert_eq!(n, expect(1, 0));
        let (done, n) = spawns(|| rules(&["10.88.0.4"]).del());
        done.expect("del");
        assert_eq!(n, 1);
        // Repeated DEL: the optimistic transaction fails, one read finds nothing to do.
        let (done, n) = spawns(|| rules(&["10.88.0.4"]).del());
        done.expect("repeated del");
        assert_eq!(n, 2);
    });
}

#[test]
fn repeated_add_with_prior_keeps_one_copy() {
    in_private_netns("repeated_add_with_prior_keeps_one_copy", || {
        let r = rules(&["10.88.0.2"]);
        r.add(Prior::Absent).expect("add");
        let before = filter(false);
        let (done, n) = spawns(|| r.add(Prior::MayExist));
        done.expect("repeat");
        let checking = usize::from(!crate::nf::xt::is_nft(Family::V4));
        assert_eq!(
            n, checking,
            "all present: one checking transaction, over netlink if it can"
        );
        assert_eq!(filter(false), before);
        // The rules went missing meanwhile: a repeat puts them back, once.
        run_tool("iptables", &["-F", "CNI-FORWARD"]);
        r.add(Prior::MayExist).expect("repair");
        assert_eq!(filter(false), before);
    });
}

#[test]
fn missing_plumbing_is_restored_in_the_reference_order() {
    in_private_netns(
        "missing_plumbing_is_restored_in_the_reference_order",
        || {
            // An administrator made CNI-ADMIN beforehand, and FORWARD has a rule of its own.
            run_tool("iptables", &["-N", "CNI-ADMIN"]);
            run_tool(
                "iptables",
                &["-A", "CNI-ADMIN", "-s", "192.0.2.9", "-j", "DROP"],
            );
            run_tool("iptables", &["-A", "FORWARD", "-j", "ACCEPT"]);
            rules(&["10.88.0.2"]).add(Prior::Absent).expect("add");
            let t = filter(false);
            let forward: Vec<&str> = t.lines().filter(|l| l.starts_with("-A FORWARD")).collect();
            assert_eq!(
                forward,
                [
                    r#"-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#,
                    "-A FORWARD -j ACCEPT"
                ]
            );
            assert!(t.contains("-A CNI-ADMIN -s 192.0.2.9/32 -j DROP"), "{t}");
            // Someone flushed FORWARD (a firewall reload): the next ADD puts the jump back.
            run_tool("iptables", &["-F", "FORWARD"]);
            let (done, n) = spawns(|| rules(&["10.88.0.3"]).add(Prior::Absent));
            done.expect("add after flush");
            // The repair only creates and appends: iptables-nft's rules are written over
            // netlink then, without a process.
            let repair = usize::from(!crate::nf::xt::is_nft(Family::V4));
            assert_eq!(n, 3 + repair, "optimistic, creating, read, repair");
            rules(&["10.88.0.3"]).check().expect("complete again");
            rules(&["10.88.0.2"])
                .check()
                .expect("first container untouched");
        },
    );
}

#[test]
fn del_removes_the_go_plugins_rules_and_the_go_plugin_removes_ours() {
    if !nix::unistd::geteuid().is_root() || !require_go_firewall("del_go_interop") {
        return in_private_netns("del_go_interop", || {});
    }
    in_private_netns("del_go_interop", || {
        go_firewall("ADD", &["10.88.0.2", "fd00:1::2"]);
        let after_go_add = (filter(false), filter(true));
        rules(&["10.88.0.2", "fd00:1::2"]).del().expect("our del");
        assert!(!filter(false).contains("10.88.0.2"));
        assert!(!filter(true).contains("fd00:1::2"));
        rules(&["10.88.0.2", "fd00:1::2"])
            .add(Prior::Absent)
            .expect("our add");
        assert_eq!((filter(false), filter(true)), after_go_add);
        go_firewall("DEL", &["10.88.0.2", "fd00:1::2"]);
        assert!(!filter(false).contains("10.88.0.2"));
        assert!(!filter(true).contains("fd00:1::2"));
        assert!(filter(false).contains(":CNI-FORWARD"), "chains stay");
    });
}

#[test]
fn check_names_what_is_missing() {
    in_private_netns("check_names_what_is_missing", || {
        let r = rules(&["10.88.0.2"]);
        let e = r.check().expect_err("nothing there");
        assert_eq!(e.kind(), ErrorKind::CheckFailed);
        assert!(
            e.to_string().contains("chain CNI-FORWARD is missing"),
            "{e}"
        );
        r.add(Prior::Absent).expect("add");
        r.check().expect("complete");
        run_tool(
            "iptables",
            &["-D", "CNI-FORWARD", "-s", "10.88.0.2/32", "-j", "ACCEPT"],
        );
        let e = r.check().expect_err("rule gone");
        assert!(
            e.to_string()
                .contains("`-A CNI-FORWARD -s 10.88.0.2/32 -j ACCEPT` not found"),
            "{e}"
        );
    });
}

#[test]
fn isolation_rules_for_two_bridges() {
    in_private_netns("isolation_rules_for_two_bridges", || {
        isolated(&["10.1.0.2"], "br-a", IngressPolicy::SameBridge)
            .add(Prior::Absent)
            .expect("first bridge");
        let (done, n) = spawns(|| {
            isolated(&["10.1.0.3"], "br-a", IngressPolicy::SameBridge).add(Prior::Absent)
        });
        done.expect("second pod, same bridge");
        assert_eq!(n, 1, "bridge already isolated: one transaction");
        isolated(&["10.2.0.2"], "br-b", IngressPolicy::Isolated)
            .add(Prior::Absent)
            .expect("second bridge");
        let t = filter(false);
        let chain = |name: &str| -> Vec<String> {
            t.lines()
                .filter(|l| l.starts_with(&format!("-A {name} ")))
                .map(|l| {
                    l.split(" -m comment").next().unwrap_or(l).to_owned()
                        + l.rsplit_once(" -j ").map(|(_, j)| j).unwrap_or("")
                })
                .collect()
        };
        // Reference order: the jump to the isolation chains before CNI-FORWARD, a new
        // bridge's rules first, RETURN last.
        assert_eq!(
            chain("FORWARD"),
            ["-A FORWARDCNI-ISOLATION-STAGE-1", "-A FORWARDCNI-FORWARD"]
        );
        assert_eq!(
            chain("CNI-ISOLATION-STAGE-1"),
            [
                "-A CNI-ISOLATION-STAGE-1 -i br-b -o br-bDROP",
                "-A CNI-ISOLATION-STAGE-1 -i br-b ! -o br-bCNI-ISOLATION-STAGE-2",
                "-A CNI-ISOLATION-STAGE-1 -i br-a ! -o br-aCNI-ISOLATION-STAGE-2",
                "-A CNI-ISOLATION-STAGE-1RETURN",
            ]
        );
        assert_eq!(
            chain("CNI-ISOLATION-STAGE-2"),
            [
                "-A CNI-ISOLATION-STAGE-2 -o br-bDROP",
                "-A CNI-ISOLATION-STAGE-2 -o br-aDROP",
                "-A CNI-ISOLATION-STAGE-2RETURN",
            ]
        );
        // DEL leaves the shared isolation rules, as the reference.
        isolated(&["10.1.0.2"], "br-a", IngressPolicy::SameBridge)
            .del()
            .expect("del");
        assert_eq!(chain("CNI-ISOLATION-STAGE-2").len(), 3);
        isolated(&["10.2.0.2"], "br-b", IngressPolicy::Isolated)
            .check()
            .expect("check with isolation");
    });
}

#[test]
fn isolation_only_has_no_forward_rules() {
    let iso = Isolation {
        bridge: "cni0".to_owned(),
        policy: IngressPolicy::SameBridge,
    };
    let r = ForwardRules::isolation_only(&ips(&["10.0.0.2", "fd00::2"]), iso).expect("valid");
    let plans = r.plans();
    assert_eq!(plans.len(), 2);
    assert_eq!(
        plans[0].chains,
        ["CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"]
    );
    assert!(
        plans[0]
            .rules
            .iter()
            .all(|r| !r.own && r.chain != "CNI-FORWARD")
    );
    assert_eq!(plans[0].rules.len(), 5);
}
