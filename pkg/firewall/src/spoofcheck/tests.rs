//! The spoof check's batches (no root), its table in a private namespace, real traffic over a
//! bridge between two namespaces, and interop with the Go bridge plugin.

use std::process::Command;

use super::*;
use crate::testutil::{
    ContainerNs, TempDir, go_bridge, in_private_netns, require_go_bridge, run_tool, spawns,
    succeeds, unique,
};

const MAC: [u8; 6] = [0x0a, 0x58, 0x0a, 0x01, 0x02, 0x03];

fn check(veth: &str, cid: &str, ifname: &str, mac: [u8; 6]) -> SpoofCheck {
    SpoofCheck {
        host_veth: veth.to_owned(),
        container_mac: mac,
        container_id: cid.to_owned(),
        ifname: ifname.to_owned(),
    }
}

/// `nft list table bridge nat` as it reads with exactly these attachments, set up in order.
fn expected_table(checks: &[&SpoofCheck]) -> String {
    let mut text = String::from(
        "table bridge nat {\n\tchain PREROUTING {\n\t\ttype filter hook prerouting priority dstnat; policy accept;\n",
    );
    for c in checks {
        let id = format!("{}-{}", c.container_id, c.ifname);
        text.push_str(&format!(
            "\t\tiifname \"{}\" jump cni-br-iface-{id} comment \"macspoofchk-{id}\"\n",
            c.host_veth
        ));
    }
    text.push_str("\t}\n");
    for c in checks {
        let id = format!("{}-{}", c.container_id, c.ifname);
        text.push_str(&format!(
            "\n\tchain cni-br-iface-{id} {{\n\t\tjump cni-br-iface-{id}-mac comment \"macspoofchk-{id}\"\n\t}}\n"
        ));
        text.push_str(&format!(
            "\n\tchain cni-br-iface-{id}-mac {{\n\t\tether saddr {} return comment \"macspoofchk-{id}\"\n\t\tdrop comment \"macspoofchk-{id}\"\n\t}}\n",
            names::format_mac(c.container_mac)
        ));
    }
    text.push_str("}\n");
    text
}

/// `nft list table bridge nat`, or "" when the table does not exist.
fn bridge_nat() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "bridge", "nat"])
        .output()
        .expect("running nft");
    String::from_utf8(out.stdout).expect("utf-8 output")
}

// ---- batches (no root) ----

#[test]
fn setup_batch_is_the_reference_rule_set() {
    let batch = serde_json::to_string(&check("veth1234", "abc", "eth0", MAC).setup_commands())
        .expect("serializable");
    let chain = |verb: &str, name: &str| {
        format!(r#"{{"{verb}":{{"chain":{{"family":"bridge","table":"nat","name":"{name}"}}}}}}"#)
    };
    let rule = |chain: &str, expr: &str| {
        format!(
            r#"{{"add":{{"rule":{{"family":"bridge","table":"nat","chain":"{chain}","expr":{expr},"comment":"macspoofchk-abc-eth0"}}}}}}"#
        )
    };
    let expected = [
        r#"{"add":{"table":{"family":"bridge","name":"nat"}}}"#.to_owned(),
        r#"{"add":{"chain":{"family":"bridge","table":"nat","name":"PREROUTING","type":"filter","hook":"prerouting","prio":-300,"policy":"accept"}}}"#.to_owned(),
        chain("add", "cni-br-iface-abc-eth0"),
        chain("add", "cni-br-iface-abc-eth0-mac"),
        chain("flush", "cni-br-iface-abc-eth0"),
        chain("flush", "cni-br-iface-abc-eth0-mac"),
        rule(
            "PREROUTING",
            r#"[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"veth1234"}},{"jump":{"target":"cni-br-iface-abc-eth0"}}]"#,
        ),
        rule(
            "cni-br-iface-abc-eth0",
            r#"[{"jump":{"target":"cni-br-iface-abc-eth0-mac"}}]"#,
        ),
        rule(
            "cni-br-iface-abc-eth0-mac",
            r#"[{"match":{"op":"==","left":{"payload":{"protocol":"ether","field":"saddr"}},"right":"0a:58:0a:01:02:03"}},{"return":null}]"#,
        ),
        rule("cni-br-iface-abc-eth0-mac", r#"[{"drop":null}]"#),
    ];
    assert_eq!(batch, format!("[{}]", expected.join(",")));
}

#[test]
fn teardown_batch_deletes_the_jumps_then_both_chains() {
    let batch =
        serde_json::to_string(&teardown_commands("abc", "eth0", &[4, 9])).expect("serializable");
    let rule = |handle: u64| {
        format!(
            r#"{{"delete":{{"rule":{{"family":"bridge","table":"nat","chain":"PREROUTING","handle":{handle}}}}}}}"#
        )
    };
    let mut expected = vec![rule(4), rule(9)];
    for name in ["cni-br-iface-abc-eth0", "cni-br-iface-abc-eth0-mac"] {
        for verb in ["add", "flush", "delete"] {
            expected.push(format!(
                r#"{{"{verb}":{{"chain":{{"family":"bridge","table":"nat","name":"{name}"}}}}}}"#
            ));
        }
    }
    assert_eq!(batch, format!("[{}]", expected.join(",")));
}

#[test]
fn jumps_are_found_by_comment_or_target() {
    let listed = |handle, chain: &str, comment: Option<&str>, target: &str| ListedRule {
        chain: chain.to_owned(),
        handle,
        comment: comment.map(str::to_owned),
        expr: serde_json::json!([{"jump": {"target": target}}]),
    };
    let rules = [
        listed(1, "PREROUTING", Some("macspoofchk-abc-eth0"), "elsewhere"),
        listed(2, "PREROUTING", None, "cni-br-iface-abc-eth0"),
        listed(
            3,
            "PREROUTING",
            Some("macspoofchk-abc-eth1"),
            "cni-br-iface-abc-eth1",
        ),
        listed(4, "PREROUTING", Some("macspoofchk-abc-eth0x"), "x"),
        listed(5, "other", Some("macspoofchk-abc-eth0"), "x"),
    ];
    let ours: Vec<u64> = rules
        .iter()
        .filter(|r| is_jump_of(r, "abc", "eth0"))
        .map(|r| r.handle)
        .collect();
    assert_eq!(ours, [1, 2]);
}

// ---- the table (root, private namespace) ----

#[test]
fn setup_and_teardown_write_and_remove_the_reference_table() {
    in_private_netns(
        "setup_and_teardown_write_and_remove_the_reference_table",
        || {
            let abc = check("veth1234", "abc", "eth0", MAC);
            let def = check("veth5678", "def", "eth1", [2, 0, 0, 0, 0, 0xfe]);
            let (result, n) = spawns(|| abc.setup());
            result.expect("setup abc");
            assert_eq!(n, 1, "one nft batch");
            def.setup().expect("setup def");
            assert_eq!(bridge_nat(), expected_table(&[&abc, &def]));

            let (result, n) = spawns(|| SpoofCheck::teardown("abc", "eth0"));
            result.expect("teardown abc");
            assert_eq!(n, 2, "one listing of PREROUTING, one batch");
            assert_eq!(bridge_nat(), expected_table(&[&def]));

            let (result, n) = spawns(|| SpoofCheck::teardown("abc", "eth0"));
            result.expect("teardown again");
            assert_eq!(n, 2);
            SpoofCheck::teardown("def", "eth1").expect("teardown def");
            assert_eq!(bridge_nat(), expected_table(&[]));
        },
    );
}

#[test]
fn teardown_without_the_table_is_success_and_creates_nothing() {
    in_private_netns(
        "teardown_without_the_table_is_success_and_creates_nothing",
        || {
            let (result, n) = spawns(|| SpoofCheck::teardown("abc", "eth0"));
            result.expect("teardown without a table");
            assert_eq!(
                n, 2,
                "the listing, and the batch nft refuses for the missing table"
            );
            assert_eq!(run_tool("nft", &["list", "tables"]), "");
        },
    );
}

#[test]
fn repeated_setup_refills_and_teardown_removes_every_jump() {
    in_private_netns(
        "repeated_setup_refills_and_teardown_removes_every_jump",
        || {
            let first = check("veth1234", "abc", "eth0", MAC);
            first.setup().expect("setup");
            // A retried ADD with a new host veth and MAC; and a foreign jump to our chain.
            let second = check("vethabcd", "abc", "eth0", [2, 0, 0, 0, 0, 1]);
            second.setup().expect("setup again");
            run_tool(
                "nft",
                &["add rule bridge nat PREROUTING iifname \"x\" jump cni-br-iface-abc-eth0"],
            );
            let listing = bridge_nat();
            let jumps = listing
                .lines()
                .filter(|l| l.contains("jump cni-br-iface-abc-eth0") && !l.contains("-mac"))
                .count();
            assert_eq!(jumps, 3, "{listing}");
            assert!(listing.contains("ether saddr 02:00:00:00:00:01 return"));
            assert!(!listing.contains("0a:58:0a:01:02:03"), "{listing}");

            SpoofCheck::teardown("abc", "eth0").expect("teardown");
            assert_eq!(bridge_nat(), expected_table(&[]));
        },
    );
}

#[test]
fn names_that_nft_text_cannot_write_work_through_json() {
    in_private_netns("names_that_nft_text_cannot_write_work_through_json", || {
        let odd = check("veth@1", "1abc", "e#th+0", MAC);
        odd.setup().expect("setup with odd names");
        let listing = run_tool("nft", &["-j", "list", "table", "bridge", "nat"]);
        assert!(
            listing.contains("cni-br-iface-1abc-e#th+0-mac"),
            "{listing}"
        );
        SpoofCheck::teardown("1abc", "e#th+0").expect("teardown with odd names");
        assert_eq!(bridge_nat(), expected_table(&[]));
    });
}

// ---- real traffic (root, private namespace plus two named ones) ----

/// A bridge port: a named namespace whose `eth0` is the peer of `host` on bridge `rcnisc0`.
struct Port {
    ns: ContainerNs,
    host: String,
}

impl Port {
    fn new(host: &str, address: &str) -> Self {
        let ns = ContainerNs::create("rcni-sc");
        run_tool(
            "ip",
            &[
                "link",
                "add",
                host,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ],
        );
        run_tool("ip", &["link", "set", host, "master", "rcnisc0", "up"]);
        for args in [
            vec!["addr", "add", address, "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
        ] {
            let mut full = vec!["-n", ns.name()];
            full.extend(args);
            run_tool("ip", &full);
        }
        Self {
            ns,
            host: host.to_owned(),
        }
    }

    fn mac(&self) -> [u8; 6] {
        let json = run_tool("ip", &["-n", self.ns.name(), "-j", "link", "show", "eth0"]);
        let links: serde_json::Value = serde_json::from_str(&json).expect("ip -j output");
        let text = links[0]["address"].as_str().expect("eth0 has an address");
        let mut mac = [0u8; 6];
        for (byte, hex) in mac.iter_mut().zip(text.split(':')) {
            *byte = u8::from_str_radix(hex, 16).expect("hex MAC");
        }
        mac
    }

    fn set_mac(&self, mac: &str) {
        run_tool(
            "ip",
            &[
                "-n",
                self.ns.name(),
                "link",
                "set",
                "dev",
                "eth0",
                "address",
                mac,
            ],
        );
    }

    /// One ping with fresh neighbour caches on both sides, so a reply never depends on an
    /// old MAC still cached from an earlier round.
    fn pings(&self, other: &Port, address: &str) -> bool {
        for ns in [self.ns.name(), other.ns.name()] {
            run_tool("ip", &["-n", ns, "neigh", "flush", "all"]);
        }
        succeeds(
            "ip",
            &[
                "netns",
                "exec",
                self.ns.name(),
                "ping",
                "-c",
                "1",
                "-W",
                "2",
                address,
            ],
        )
    }
}

#[test]
fn spoofed_frames_are_dropped_and_teardown_restores_traffic() {
    in_private_netns(
        "spoofed_frames_are_dropped_and_teardown_restores_traffic",
        || {
            run_tool("ip", &["link", "add", "rcnisc0", "type", "bridge"]);
            run_tool("ip", &["link", "set", "rcnisc0", "up"]);
            let a = Port::new("rcnisca", "10.99.0.1/24");
            let b = Port::new("rcniscb", "10.99.0.2/24");
            assert!(a.pings(&b, "10.99.0.2"), "ping before the spoof check");

            let cid = format!("sc-{}", unique());
            check(&a.host, &cid, "eth0", a.mac())
                .setup()
                .expect("setup");
            assert!(
                a.pings(&b, "10.99.0.2"),
                "ping with the container's own MAC"
            );

            a.set_mac("02:00:00:00:00:99");
            assert!(
                !a.pings(&b, "10.99.0.2"),
                "ping from a spoofed MAC must fail"
            );

            SpoofCheck::teardown(&cid, "eth0").expect("teardown");
            assert!(a.pings(&b, "10.99.0.2"), "ping after teardown");
            let listing = bridge_nat();
            assert!(!listing.contains(&cid), "{listing}");
            assert_eq!(listing, expected_table(&[]));
        },
    );
}

// ---- interop with the Go bridge plugin ----

#[test]
fn interop_with_the_go_bridge_macspoofchk() {
    let test = "interop_with_the_go_bridge_macspoofchk";
    if !require_go_bridge(test) {
        return;
    }
    in_private_netns(test, || {
        let data = TempDir::new("hostlocal");
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "rcni-spoof",
            "type": "bridge",
            "bridge": "rcnisc1",
            "macspoofchk": true,
            "ipam": {
                "type": "host-local",
                "dataDir": data.0,
                "ranges": [[{"subnet": "10.77.5.0/24"}]],
            },
        })
        .to_string();
        let ns = ContainerNs::create("rcni-sc");
        let cid = format!("spoof-{}", unique());

        // 1. Go sets up; our expected table is what it wrote, byte for byte.
        let result: serde_json::Value =
            serde_json::from_str(&go_bridge("ADD", &conf, &ns, &cid)).expect("Go result JSON");
        let interfaces = result["interfaces"].as_array().expect("interfaces");
        let veth = interfaces
            .iter()
            .find(|i| i.get("sandbox").is_none() && i["name"] != "rcnisc1")
            .and_then(|i| i["name"].as_str())
            .expect("host veth in the Go result");
        let mac_text = interfaces
            .iter()
            .find(|i| i.get("sandbox").is_some())
            .and_then(|i| i["mac"].as_str())
            .expect("container MAC in the Go result");
        let mut mac = [0u8; 6];
        for (byte, hex) in mac.iter_mut().zip(mac_text.split(':')) {
            *byte = u8::from_str_radix(hex, 16).expect("hex MAC");
        }
        let ours = check(veth, &cid, "eth0", mac);
        let go_table = bridge_nat();
        assert_eq!(go_table, expected_table(&[&ours]));

        // 2. Our teardown removes the Go rules completely.
        SpoofCheck::teardown(&cid, "eth0").expect("teardown of the Go rules");
        assert_eq!(bridge_nat(), expected_table(&[]));

        // 3. Our setup writes what Go wrote.
        ours.setup().expect("our setup");
        assert_eq!(bridge_nat(), go_table);

        // 4. Go's DEL removes our rules completely.
        go_bridge("DEL", &conf, &ns, &cid);
        assert_eq!(bridge_nat(), expected_table(&[]));
    });
}
