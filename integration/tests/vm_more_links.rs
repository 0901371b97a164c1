//! vrf chained after bridge, beside the Go reference plugin, on a kernel that has VRF
//! devices: the VM of `scripts/vm-test.sh` (this machine's kernel lacks them).
//!
//! Ignored on the host; in the VM: `scripts/vm-test.sh vm_more_links -- --include-ignored`.

use std::path::Path;

use rcni_integration::{
    Attachment, Conflist, GO_PLUGINS, Host, Outcome, addrs_in, links_in, our_plugins, ready, tag,
};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

const VM: &str = "needs a kernel with VRF devices: run with scripts/vm-test.sh";

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

fn attach<'a>(cid: &'a str, ns: &'a TestNetns, ifname: &'a str) -> Attachment<'a> {
    Attachment {
        container_id: cid,
        ifname,
        netns: ns.path(),
    }
}

/// `ip -d -j link show dev <ifname>` in `ns`.
fn link(ns: &TestNetns, ifname: &str) -> Value {
    let out = ns.exec_ok(&["ip", "-d", "-j", "link", "show", "dev", ifname]);
    let doc: Value = serde_json::from_str(&out).expect("ip -j prints JSON");
    doc[0].clone()
}

/// `ip <family> route show <which...>` in `ns`, one trimmed line per route.
fn routes(ns: &TestNetns, family: &str, which: &[&str]) -> Vec<String> {
    let mut argv = vec!["ip", family, "route", "show"];
    argv.extend_from_slice(which);
    let out = ns.exec(&argv);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// bridge `br-<net>` with host-local over 10.160.<n>.0/24 and fd00:160:<n>::/64, routes to
/// a remote network and a default, then vrf with `vrf` as its keys.
fn conflist(host: &Host, version: &str, name: &str, n: u8, vrf: &Value) -> Value {
    let mut vrf = vrf.clone();
    vrf["type"] = json!("vrf");
    json!({"cniVersion": version, "name": name, "plugins": [
        {"type": "bridge", "bridge": format!("br{n}"), "isGateway": true,
         "ipam": {"type": "host-local", "dataDir": host.data_dir,
                  "ranges": [[{"subnet": format!("10.160.{n}.0/24")}],
                             [{"subnet": format!("fd00:160:{n}::/64")}]],
                  "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.99.0.0/16"},
                             {"dst": "fd00:99::/64"}]}},
        vrf
    ]})
}

/// One plugin run with the CNI env, CNI_PATH its own directory.
fn run(
    host: &Host,
    dir: &Path,
    plugin: &str,
    command: &str,
    at: &Attachment,
    conf: &Value,
) -> Outcome {
    let netns = at.netns.display().to_string();
    let path = dir.display().to_string();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", at.container_id),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", at.ifname),
        ("CNI_PATH", path.as_str()),
    ];
    host.run(dir, plugin, &env, conf)
}

/// CHECK of our vrf alone, with `prev` as the cached result.
fn vrf_check(host: &Host, version: &str, keys: &Value, prev: &Value, at: &Attachment) -> Outcome {
    let mut conf = keys.clone();
    conf["cniVersion"] = json!(version);
    conf["name"] = json!("n");
    conf["type"] = json!("vrf");
    conf["prevResult"] = prev.clone();
    run(host, &our_plugins(), "vrf", "CHECK", at, &conf)
}

/// sandboxes, MACs and host veth names differ by design; an empty `dns` in a 1.x result is printed by
/// Debian's Go plugins (libcni 1.1) and left out by newer libcni and by us.
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
            if i.get("sandbox").is_some() {
                i["sandbox"] = json!("<netns>");
            }
            if i.get("mac").is_some() {
                i["mac"] = json!("<mac>");
            }
            if i["name"].as_str().is_some_and(|n| n.starts_with("veth")) {
                i["name"] = json!("<host veth>");
            }
        }
    }
    r
}

#[test]
#[ignore = "needs a kernel with VRF devices: run with scripts/vm-test.sh"]
fn the_pod_interface_and_its_routes_go_into_the_vrf() {
    assert!(ready(), "{VM}");
    let mut results = Vec::new();
    for vrf_dir in [our_plugins(), go().to_path_buf()] {
        let ours = vrf_dir == our_plugins();
        let host = Host::new();
        let pod = TestNetns::new();
        let name = format!("rcni-vrf-{}", tag());
        let list = Conflist::new(conflist(
            &host,
            "1.0.0",
            &name,
            1,
            &json!({"vrfname": "blue"}),
        ))
        .with_dir("vrf", &vrf_dir);
        let at = attach("pod1", &pod, "eth0");
        let r = list.add(&host, &at).expect("ADD");
        results.push(normalise(r.clone()));

        // The kernel agrees: a VRF on table 1 (the first free one), eth0 enslaved to it.
        let vrf = link(&pod, "blue");
        assert_eq!(vrf["linkinfo"]["info_kind"], "vrf", "{vrf}");
        assert_eq!(vrf["linkinfo"]["info_data"]["table"], 1, "{vrf}");
        assert!(
            vrf["flags"]
                .as_array()
                .is_some_and(|f| f.contains(&json!("UP")))
        );
        let eth0 = link(&pod, "eth0");
        assert_eq!(eth0["master"], "blue", "{eth0}");
        assert_eq!(eth0["linkinfo"]["info_slave_kind"], "vrf", "{eth0}");
        let shown = pod.exec_ok(&["ip", "vrf", "show"]);
        assert!(
            shown
                .lines()
                .any(|l| l.split_whitespace().eq(["blue", "1"])),
            "{shown}"
        );
        assert_eq!(
            addrs_in(&pod, "eth0"),
            ["10.160.1.2/24", "fd00:160:1::2/64"]
        );

        // Nothing of eth0 is left in the main table; the connected routes are in the VRF's.
        let main4 = routes(&pod, "-4", &["table", "main"]);
        assert!(main4.is_empty(), "{main4:?}");
        let vrf4 = routes(&pod, "-4", &["vrf", "blue"]);
        let vrf6 = routes(&pod, "-6", &["vrf", "blue"]);
        assert!(
            vrf4.iter()
                .any(|r| r.starts_with("10.160.1.0/24 dev eth0 proto kernel scope link")),
            "{vrf4:?}"
        );
        assert!(
            vrf6.iter()
                .any(|r| r.starts_with("fd00:160:1::/64 dev eth0 proto kernel")),
            "{vrf6:?}"
        );
        let moved4 = [
            "default via 10.160.1.1 dev eth0",
            "10.99.0.0/16 via 10.160.1.1 dev eth0",
        ];
        let moved6 = "fd00:99::/64 via fd00:160:1::1 dev eth0";
        if ours {
            // The IPAM routes moved into the VRF's table, as the reference does since
            // v1.7.0.
            for r in moved4 {
                assert!(vrf4.iter().any(|l| l.starts_with(r)), "{r}: {vrf4:?}");
            }
            assert!(vrf6.iter().any(|l| l.starts_with(moved6)), "{vrf6:?}");
            assert!(
                pod.exec(&["ping", "-c", "1", "-W", "2", "-I", "blue", "10.160.1.1"])
                    .status
                    .success(),
                "the pod reaches its gateway through the VRF"
            );
            // vrf's own CHECK (bridge's looks for the routes in the main table, where the
            // VRF took them from: it fails behind the Go vrf v1.7+ just the same).
            vrf_check(&host, "1.0.0", &json!({"vrfname": "blue"}), &r, &at).ok();
        } else {
            // Debian's v1.1.1 predates moving routes: enslaving dropped them.
            for r in moved4 {
                assert!(!vrf4.iter().any(|l| l.starts_with(r)), "{r}: {vrf4:?}");
            }
        }
        list.verb(&host, &at, "DEL", Some(&r)).expect("DEL");
        assert_eq!(links_in(&pod), ["lo"], "the VRF went with its last port");
        list.verb(&host, &at, "DEL", Some(&r)).expect("second DEL");
        assert!(host.reservations(&name).is_empty());
    }
    assert_eq!(
        results[0], results[1],
        "prevResult passed on as Go's: ours vs Go"
    );
}

/// Two interfaces of one pod in one VRF: the second joins the first's table; DEL of the
/// first keeps the VRF, DEL of the last removes it. An explicit table is honoured and a
/// clash named, as Go's.
#[test]
#[ignore = "needs a kernel with VRF devices: run with scripts/vm-test.sh"]
fn a_vrf_is_shared_until_its_last_port_goes() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    let pod = TestNetns::new();
    let (n1, n2) = (format!("rcni-vrf-{}", tag()), format!("rcni-vrf-{}", tag()));
    let first = Conflist::new(conflist(
        &host,
        "0.4.0",
        &n1,
        2,
        &json!({"vrfname": "red", "table": 1234}),
    ));
    let second = Conflist::new(conflist(&host, "0.4.0", &n2, 3, &json!({"vrfname": "red"})));
    let (a1, a2) = (attach("pod1", &pod, "eth0"), attach("pod1", &pod, "net1"));
    let r1 = first.add(&host, &a1).expect("ADD eth0");
    let r2 = second.add(&host, &a2).expect("ADD net1");
    assert_eq!(link(&pod, "red")["linkinfo"]["info_data"]["table"], 1234);
    assert_eq!(link(&pod, "net1")["master"], "red");
    let t = routes(&pod, "-4", &["table", "1234"]);
    assert!(
        t.iter().any(|r| r.starts_with("10.160.2.0/24 dev eth0")),
        "{t:?}"
    );
    assert!(
        t.iter().any(|r| r.starts_with("10.160.3.0/24 dev net1")),
        "{t:?}"
    );

    // A different table for the same VRF: refused by both, naming the VRF's table.
    for dir in [our_plugins(), go().to_path_buf()] {
        let conf = json!({"cniVersion": "0.4.0", "name": "x", "type": "vrf",
                          "vrfname": "red", "table": 99, "prevResult": r2});
        let e = run(
            &host,
            &dir,
            "vrf",
            "ADD",
            &attach("pod1", &pod, "net1"),
            &conf,
        )
        .err();
        assert_eq!(e["code"], 999, "{e}");
        assert!(
            e["msg"].as_str().is_some_and(
                |m| m.contains("VRF red already exist with different routing table 1234")
            ),
            "{e}"
        );
    }

    first.verb(&host, &a1, "DEL", Some(&r1)).expect("DEL eth0");
    assert_eq!(
        link(&pod, "red")["linkinfo"]["info_kind"],
        "vrf",
        "net1 keeps it"
    );
    vrf_check(&host, "0.4.0", &json!({"vrfname": "red"}), &r2, &a2).ok();
    let e = vrf_check(&host, "0.4.0", &json!({"vrfname": "red"}), &r1, &a1).err();
    assert_eq!(e["msg"], "Failed to find eth0 associated to vrf red", "{e}");
    second.verb(&host, &a2, "DEL", Some(&r2)).expect("DEL net1");
    assert_eq!(links_in(&pod), ["lo"]);
}

/// Bad input: the reference's codes, and nothing made in the pod.
#[test]
#[ignore = "needs a kernel with VRF devices: run with scripts/vm-test.sh"]
fn bad_input_gets_the_reference_code_and_leaves_nothing() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    let pod = TestNetns::new();
    let _ = pod.exec_ok(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
    ]);
    let pod_links = links_in(&pod);
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}],
                      "ips": [{"address": "10.160.9.2/24", "interface": 0}]});
    let cases = [
        (
            "no vrfname",
            json!({"cniVersion": "1.0.0", "prevResult": prev}),
            "valid vrf name",
        ),
        (
            "no prevResult",
            json!({"cniVersion": "1.0.0", "vrfname": "v"}),
            "missing prevResult",
        ),
        (
            "table of the wrong type",
            json!({"cniVersion": "1.0.0", "vrfname": "v", "table": "1", "prevResult": prev}),
            "table",
        ),
        (
            "version before 0.3.1",
            json!({"cniVersion": "0.3.0", "vrfname": "v", "prevResult": prev}),
            "0.3.0",
        ),
        (
            "interface missing",
            json!({"cniVersion": "1.0.0", "vrfname": "v", "prevResult": prev}),
            "could not get link by name net9",
        ),
    ];
    for (case, keys, says) in cases {
        let mut conf = json!({"name": "n", "type": "vrf"});
        if let (Some(doc), Some(keys)) = (conf.as_object_mut(), keys.as_object()) {
            doc.extend(keys.clone());
        }
        let ifname = if case == "interface missing" {
            "net9"
        } else {
            "eth0"
        };
        let ours = run(
            &host,
            &our_plugins(),
            "vrf",
            "ADD",
            &attach("p", &pod, ifname),
            &conf,
        )
        .err();
        let reference = run(&host, go(), "vrf", "ADD", &attach("p", &pod, ifname), &conf).err();
        assert_eq!(
            ours["code"], reference["code"],
            "{case}: ours {ours} vs Go {reference}"
        );
        let text = format!(
            "{} {}",
            ours["msg"].as_str().unwrap_or_default(),
            ours["details"].as_str().unwrap_or_default()
        );
        assert!(text.contains(says), "{case}: {ours}");
        if case == "interface missing" {
            // The reference leaves the VRF it made behind; ours deletes it again.
            let _ = pod.exec(&["ip", "link", "del", "v"]);
        }
        assert_eq!(links_in(&pod), pod_links, "{case}");
    }
}

/// DEL without the netns, without the VRF or the interface: success, as Go's.
#[test]
#[ignore = "needs a kernel with VRF devices: run with scripts/vm-test.sh"]
fn del_of_what_is_gone_succeeds() {
    assert!(ready(), "{VM}");
    let host = Host::new();
    let pod = TestNetns::new();
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "vrf", "vrfname": "v"});
    for dir in [our_plugins(), go().to_path_buf()] {
        run(&host, &dir, "vrf", "DEL", &attach("p", &pod, "eth0"), &conf).ok();
        let gone = Path::new("/run/netns/rcni-no-such-netns");
        let a = Attachment {
            container_id: "p",
            ifname: "eth0",
            netns: gone,
        };
        run(&host, &dir, "vrf", "DEL", &a, &conf).ok();
    }
    // A VRF without the interface: ours succeeds and removes the empty VRF.
    let _ = pod.exec_ok(&["ip", "link", "add", "v", "type", "vrf", "table", "5"]);
    run(
        &host,
        &our_plugins(),
        "vrf",
        "DEL",
        &attach("p", &pod, "eth0"),
        &conf,
    )
    .ok();
    assert_eq!(links_in(&pod), ["lo"]);
}
