//! The two install layouts give the same answers: the multi-call `cni` binary reached
//! through one symlink per plugin (what `scripts/install.sh --multicall` installs) and the
//! separate binaries. The podman conflist and a dual-stack bridge+host-local conflist are
//! each run through both, each in a fresh "host" namespace, and the results, the
//! netfilter rules and the errors for bad input are compared; DEL must leave nothing in
//! either layout.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcni_integration::{Attachment, Conflist, Host, our_plugins, ping, ready};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

/// A directory with one symlink per bundled plugin, all pointing at the `cni` binary.
struct MulticallDir(PathBuf);

impl MulticallDir {
    fn new() -> MulticallDir {
        let cni = our_plugins().join("cni");
        assert!(cni.is_file(), "{} missing: build --release", cni.display());
        let out = Command::new(&cni)
            .arg("--list")
            .output()
            .expect("cni --list");
        assert!(out.status.success(), "cni --list: {out:?}");
        let dir = std::env::temp_dir().join(format!("rcni-mc-{}", rcni_testkit::random_hex(4)));
        std::fs::create_dir_all(&dir).expect("symlink dir");
        let names = String::from_utf8_lossy(&out.stdout).into_owned();
        for name in names.lines().filter(|n| !n.is_empty()) {
            std::os::unix::fs::symlink(&cni, dir.join(name)).expect("symlink");
        }
        assert!(dir.join("bridge").is_symlink(), "cni --list: {names}");
        MulticallDir(dir)
    }
}

impl Drop for MulticallDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces what differs by design between two runs (random MACs and host veth names,
/// the pod's netns path, the host's data dir) with placeholders.
fn normalise(v: &Value, netns: &Path, data_dir: &Path) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let host_veth =
                        k == "name" && v.as_str().is_some_and(|n| n.starts_with("veth"));
                    let v = if k == "mac" {
                        json!("<mac>")
                    } else if host_veth {
                        json!("<veth>")
                    } else {
                        normalise(v, netns, data_dir)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => items
            .iter()
            .map(|v| normalise(v, netns, data_dir))
            .collect(),
        Value::String(s) => Value::String(
            s.replace(&netns.display().to_string(), "<netns>")
                .replace(&data_dir.display().to_string(), "<data>"),
        ),
        other => other.clone(),
    }
}

/// Every rule and chain line of the host's nat and filter tables, both families.
fn netfilter(host: &Host) -> Vec<String> {
    let mut lines = Vec::new();
    for tool in ["iptables-save", "ip6tables-save"] {
        for table in ["nat", "filter"] {
            lines.extend(
                host.sh(&[tool, "-t", table])
                    .lines()
                    .filter(|l| l.starts_with("-A") || l.starts_with(':'))
                    .map(|l| format!("{tool} {table} {}", l.split(" [").next().unwrap_or(l))),
            );
        }
    }
    lines.sort();
    lines
}

/// What one layout did with a conflist: the ADD result, the rules it made, what is left
/// after DEL.
#[derive(Debug, PartialEq)]
struct Run {
    result: Value,
    rules_after_add: Vec<String>,
    rules_after_del: Vec<String>,
    links_after_del: Vec<String>,
    reservations_after_del: Vec<String>,
}

fn run_list(dir: &Path, doc: &Value, caps: &Value, gateway: &str) -> Run {
    let host = Host::new();
    let pod = TestNetns::new();
    // State stays under this host's data dir: IPAM reservations, firewall and tuning.
    let mut doc = doc.clone();
    for plugin in doc["plugins"].as_array_mut().into_iter().flatten() {
        if plugin.get("ipam").is_some() {
            plugin["ipam"]["dataDir"] = json!(host.data_dir);
        }
        if let Some(kind @ ("firewall" | "tuning")) = plugin["type"].as_str() {
            plugin["dataDir"] = json!(host.data_dir.join(kind));
        }
    }
    let doc = &doc;
    let list = Conflist {
        capability_args: caps.clone(),
        ..Conflist::new(doc.clone())
    };
    let list = Conflist {
        default_dir: dir.to_path_buf(),
        ..list
    };
    let at = Attachment {
        container_id: "mcpod",
        ifname: "eth0",
        netns: pod.path(),
    };
    let links_before = host.links();
    let result = list
        .add(&host, &at)
        .unwrap_or_else(|o| panic!("{}: ADD {o:?}", dir.display()));
    assert!(ping(&pod, gateway), "{}: pod -> gateway", dir.display());
    list.verb(&host, &at, "CHECK", Some(&result))
        .unwrap_or_else(|o| panic!("{}: CHECK {o:?}", dir.display()));
    let rules_after_add = netfilter(&host);
    list.verb(&host, &at, "DEL", Some(&result))
        .unwrap_or_else(|o| panic!("{}: DEL {o:?}", dir.display()));
    let mut links_after_del = host.links();
    links_after_del.retain(|l| !links_before.contains(l) && !l.starts_with("cni-"));
    let net = doc["name"].as_str().unwrap_or_default();
    Run {
        result: normalise(&result, pod.path(), &host.data_dir),
        rules_after_add,
        rules_after_del: netfilter(&host),
        links_after_del,
        reservations_after_del: host.reservations(net),
    }
}

fn same_in_both_layouts(doc: &Value, caps: &Value, gateway: &str) -> Run {
    let multi = MulticallDir::new();
    let separate = run_list(&our_plugins(), doc, caps, gateway);
    let symlinked = run_list(&multi.0, doc, caps, gateway);
    assert_eq!(
        separate, symlinked,
        "separate binaries vs multi-call symlinks"
    );
    assert!(
        separate.links_after_del.is_empty(),
        "{:?}",
        separate.links_after_del
    );
    assert!(
        separate.reservations_after_del.is_empty(),
        "{:?}",
        separate.reservations_after_del
    );
    separate
}

#[test]
fn podman_chain_gives_identical_results_through_both_layouts() {
    if !ready() {
        return;
    }
    let doc = json!({
        "cniVersion": "0.4.0",
        "name": "mc-podman",
        "plugins": [
            {"type": "bridge", "bridge": "cni-podman0", "isGateway": true, "ipMasq": true,
             "hairpinMode": true,
             "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                      "ranges": [[{"subnet": "10.88.0.0/16", "gateway": "10.88.0.1"}]]}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": "iptables"},
            {"type": "tuning"}
        ]
    });
    let caps = json!({"portMappings": [
        {"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}
    ]});
    let run = same_in_both_layouts(&doc, &caps, "10.88.0.1");
    assert_eq!(run.result["cniVersion"], "0.4.0");
    assert_eq!(run.result["ips"][0]["address"], "10.88.0.2/16");
    assert!(
        run.rules_after_add
            .iter()
            .any(|l| l.contains("CNI-HOSTPORT-DNAT")),
        "{:#?}",
        run.rules_after_add
    );
    assert!(
        run.rules_after_add
            .iter()
            .any(|l| l.contains("CNI-FORWARD")),
        "{:#?}",
        run.rules_after_add
    );
    assert!(
        !run.rules_after_del.iter().any(|l| l.contains("10.88.0.2")),
        "{:#?}",
        run.rules_after_del
    );
}

#[test]
fn dual_stack_bridge_gives_identical_results_through_both_layouts() {
    if !ready() {
        return;
    }
    let doc = json!({
        "cniVersion": "1.1.0",
        "name": "mc-dual",
        "plugins": [
            {"type": "bridge", "bridge": "cni-mcdual", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local",
                      "ranges": [[{"subnet": "10.89.0.0/24"}], [{"subnet": "fd00:89::/64"}]],
                      "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}}
        ]
    });
    let run = same_in_both_layouts(&doc, &json!({}), "10.89.0.1");
    let addrs: Vec<_> = run.result["ips"]
        .as_array()
        .map(|ips| ips.iter().map(|ip| ip["address"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(addrs, vec![json!("10.89.0.2/24"), json!("fd00:89::2/64")]);
    assert!(
        run.rules_after_add
            .iter()
            .any(|l| l.starts_with("iptables-save nat") && l.contains("MASQUERADE")),
        "{:#?}",
        run.rules_after_add
    );
}

/// Bad input: the same error document and exit status from both layouts.
#[test]
fn errors_are_identical_through_both_layouts() {
    if !ready() {
        return;
    }
    let multi = MulticallDir::new();
    let host = Host::new();
    let pod = TestNetns::new();
    let netns = pod.path().display().to_string();
    let cases: [(&str, &str, &[u8]); 4] = [
        ("bridge", "ADD", b"{not json"),
        (
            "host-local",
            "ADD",
            br#"{"cniVersion":"9.9.9","name":"x","type":"host-local"}"#,
        ),
        (
            "portmap",
            "ADD",
            br#"{"cniVersion":"1.0.0","name":"x","type":"portmap"}"#,
        ),
        ("tuning", "VERSION", b"{}"),
    ];
    for (plugin, command, stdin) in cases {
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", "mcerr"),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ];
        let a = host.run_raw(&our_plugins(), plugin, &env, stdin);
        let b = host.run_raw(&multi.0, plugin, &env, stdin);
        assert_eq!(
            (a.status, &a.stdout),
            (b.status, &b.stdout),
            "{plugin} {command}"
        );
        if command != "VERSION" {
            assert_eq!(a.status, 1, "{plugin} {command}: {a:?}");
        }
    }
}
