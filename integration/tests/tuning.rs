//! tuning chained after bridge, run as a runtime runs it, in namespaces made by each test:
//! sysctls and link attributes in the pod, the reference's backup file, restore on DEL, and
//! backups exchanged with the Go tuning (Debian's 1.1.1, which has no txQLen).

use std::path::{Path, PathBuf};

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn bridge(host: &Host, subnet: &str, br: &str) -> Value {
    json!({
        "type": "bridge", "bridge": br, "isGateway": true,
        "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": subnet}
    })
}

fn list(host: &Host, version: &str, subnet: &str, br: &str, tuning: Value) -> Value {
    json!({
        "cniVersion": version,
        "name": format!("rcni-tu-{}", tag()),
        "plugins": [bridge(host, subnet, br), tuning]
    })
}

/// Only the tuning plugin of `doc`, as its own list (to DEL it alone and look in between).
fn tuning_only(doc: &Value) -> Value {
    json!({
        "cniVersion": doc["cniVersion"],
        "name": doc["name"],
        "plugins": [doc["plugins"][1]]
    })
}

fn attach<'a>(cid: &'a str, ns: &'a TestNetns) -> Attachment<'a> {
    Attachment {
        container_id: cid,
        ifname: "eth0",
        netns: ns.path(),
    }
}

/// `ip -d -j link show eth0` in the pod: (mac, mtu, promisc, allmulti, txqlen).
fn eth0(ns: &TestNetns) -> (String, u64, bool, bool, u64) {
    let out = ns.exec_ok(&["ip", "-d", "-j", "link", "show", "eth0"]);
    let doc: Value = serde_json::from_str(&out).expect("ip -j output");
    let l = &doc[0];
    let flags: Vec<&str> = l["flags"]
        .as_array()
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    (
        l["address"].as_str().unwrap_or_default().to_string(),
        l["mtu"].as_u64().unwrap_or_default(),
        flags.contains(&"PROMISC"),
        flags.contains(&"ALLMULTI"),
        l["txqlen"].as_u64().unwrap_or_default(),
    )
}

fn sysctl(ns: &TestNetns, key: &str) -> String {
    ns.exec_ok(&["cat", &format!("/proc/sys/{}", key.replace('.', "/"))])
        .trim()
        .to_string()
}

fn backup(dir: &Path, cid: &str) -> PathBuf {
    dir.join(format!("{cid}_eth0.json"))
}

#[test]
fn tuning_sets_everything_asked_and_del_restores_the_originals() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let dir = host.data_dir.join("tuning");
    let doc = list(
        &host,
        "1.0.0",
        "10.130.1.0/24",
        "rcnitu0",
        json!({
            "type": "tuning", "dataDir": dir,
            "sysctl": {"net.ipv4.conf.IFNAME.rp_filter": "2", "net/ipv4/tcp_syn_retries": "4"},
            "mac": "02:aa:bb:cc:dd:01", "mtu": 1400, "promisc": true,
            "allmulti": true, "txQLen": 500
        }),
    );
    let conflist = Conflist::new(doc.clone());
    let at = attach("tupod1", &pod);
    // The link as the bridge made it, before tuning runs.
    let bridge_only = Conflist::new(json!({
        "cniVersion": "1.0.0", "name": doc["name"], "plugins": [doc["plugins"][0]]
    }));
    let first = bridge_only.add(&host, &at).expect("bridge ADD");
    let (orig_mac, orig_mtu, ..) = eth0(&pod);
    let orig_syn = sysctl(&pod, "net.ipv4.tcp_syn_retries");
    assert_ne!(orig_syn, "4");
    let mut conf = doc["plugins"][1].clone();
    conf["name"] = doc["name"].clone();
    conf["cniVersion"] = json!("1.0.0");
    conf["prevResult"] = first.clone();
    let path = our_plugins().display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "tupod1"),
        ("CNI_NETNS", pod.path().to_str().expect("utf-8 path")),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
    ];
    let result = host.run(&our_plugins(), "tuning", &env, &conf).ok();

    // The result: prevResult with eth0's new MAC.
    let ifs = result["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "{result}");
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["mac"], "02:aa:bb:cc:dd:01");
    assert_eq!(ifs[0], first["interfaces"][0], "other interfaces untouched");
    assert_eq!(result["ips"], first["ips"]);

    // The kernel agrees.
    assert_eq!(
        eth0(&pod),
        ("02:aa:bb:cc:dd:01".to_string(), 1400, true, true, 500)
    );
    assert_eq!(sysctl(&pod, "net.ipv4.conf.eth0.rp_filter"), "2");
    assert_eq!(sysctl(&pod, "net.ipv4.tcp_syn_retries"), "4");

    // The backup: the originals of the attributes changed, in the reference's format.
    let saved = std::fs::read_to_string(backup(&dir, "tupod1")).expect("backup written");
    assert_eq!(
        saved,
        format!(
            "{{\n \"mac\": \"{orig_mac}\",\n \"promisc\": false,\n \"mtu\": {orig_mtu},\n \
             \"allmulti\": false,\n \"txQLen\": 1000\n}}"
        )
    );

    conflist
        .verb(&host, &at, "CHECK", Some(&result))
        .expect("CHECK after ADD");
    let _ = pod.exec_ok(&["ip", "link", "set", "eth0", "mtu", "1300"]);
    let e = conflist
        .verb(&host, &at, "CHECK", Some(&result))
        .expect_err("CHECK sees the MTU change");
    assert!(
        e.json()["msg"].as_str().unwrap_or_default().contains("MTU"),
        "{e:?}"
    );

    // DEL of tuning alone: the link is as the bridge made it again, the backup is gone.
    Conflist::new(tuning_only(&doc))
        .verb(&host, &at, "DEL", Some(&result))
        .expect("tuning DEL");
    assert_eq!(eth0(&pod), (orig_mac, orig_mtu, false, false, 1000));
    assert!(!backup(&dir, "tupod1").exists());
    // sysctls are not restored (they go with the namespace), as the reference.
    assert_eq!(sysctl(&pod, "net.ipv4.tcp_syn_retries"), "4");
    // A repeated DEL is fine.
    conflist
        .verb(&host, &at, "DEL", Some(&result))
        .expect("full DEL");
}

#[test]
fn bad_input_changes_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let dir = host.data_dir.join("tuning");
    let base = list(
        &host,
        "0.4.0",
        "10.130.2.0/24",
        "rcnitu1",
        json!({"type": "tuning"}),
    );
    let bridge_only = Conflist::new(json!({
        "cniVersion": "0.4.0", "name": base["name"], "plugins": [base["plugins"][0]]
    }));
    let at = attach("tupod2", &pod);
    let prev = bridge_only.add(&host, &at).expect("bridge ADD");
    let before = (eth0(&pod), sysctl(&pod, "net.ipv4.tcp_syn_retries"));
    let cases = [
        (
            "kernel sysctl",
            json!({"net.ipv4.tcp_syn_retries": "3", "kernel.foo": "1"}),
            "kernel.foo",
        ),
        (
            "path trick",
            json!({"net.ipv4.tcp_syn_retries": "3", "net/../kernel/x": "1"}),
            "net/../kernel/x",
        ),
        // Valid keys; the kernel refuses the second value after the first was written.
        (
            "value the kernel refuses",
            json!({"net.ipv4.tcp_syn_retries": "3", "net.ipv4.tcp_timestamps": "not-a-number"}),
            "net.ipv4.tcp_timestamps",
        ),
    ];
    let path = our_plugins().display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "tupod2"),
        ("CNI_NETNS", pod.path().to_str().expect("utf-8 path")),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
    ];
    for (name, sysctls, key) in cases {
        let conf = json!({
            "cniVersion": "0.4.0", "name": base["name"], "type": "tuning", "dataDir": dir,
            "sysctl": sysctls, "mtu": 1300, "mac": "02:aa:bb:cc:dd:02",
            "prevResult": prev
        });
        let err = host.run(&our_plugins(), "tuning", &env, &conf).err();
        assert!(
            err["msg"].as_str().unwrap_or_default().contains(key),
            "{name}: {err}"
        );
        assert_eq!(
            (eth0(&pod), sysctl(&pod, "net.ipv4.tcp_syn_retries")),
            before,
            "{name}: nothing changed"
        );
        assert!(!backup(&dir, "tupod2").exists(), "{name}: no backup");
    }
    bridge_only
        .verb(&host, &at, "DEL", Some(&prev))
        .expect("bridge DEL");
}

#[test]
fn del_without_netns_or_prev_result_removes_the_backup() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let dir = host.data_dir.join("tuning");
    let doc = list(
        &host,
        "0.4.0",
        "10.130.3.0/24",
        "rcnitu2",
        json!({"type": "tuning", "dataDir": dir, "mtu": 1280}),
    );
    let conflist = Conflist::new(doc.clone());
    let at = attach("tupod3", &pod);
    let result = conflist.add(&host, &at).expect("ADD");
    assert!(backup(&dir, "tupod3").exists());
    let gone = Path::new("/run/netns/rcni-tuning-gone-netns");
    let at_gone = Attachment {
        container_id: "tupod3",
        ifname: "eth0",
        netns: gone,
    };
    Conflist::new(tuning_only(&doc))
        .verb(&host, &at_gone, "DEL", None)
        .expect("DEL without netns and prevResult");
    assert!(!backup(&dir, "tupod3").exists(), "nothing left behind");
    conflist
        .verb(&host, &at, "DEL", Some(&result))
        .expect("full DEL");
}

/// Runs tuning from `dir` on an existing pod (ADD or DEL), with `prev` as prevResult.
fn run_tuning(host: &Host, dir: &Path, command: &str, pod: &TestNetns, cid: &str, conf: &Value) {
    let path = dir.display().to_string();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", pod.path().to_str().expect("utf-8 path")),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
    ];
    host.run(dir, "tuning", &env, conf).ok();
}

#[test]
fn go_and_rcni_tuning_write_the_same_backup_and_restore_each_others() {
    if !ready() {
        return;
    }
    let go = Path::new(GO_PLUGINS);
    let ours = our_plugins();
    let host = Host::new();
    let dir = host.data_dir.join("tuning");
    let base = list(&host, "0.4.0", "10.130.4.0/24", "rcnitu3", json!({}));
    let bridge_only = Conflist::new(json!({
        "cniVersion": "0.4.0", "name": base["name"], "plugins": [base["plugins"][0]]
    }));
    let (p1, p2) = (TestNetns::new(), TestNetns::new());
    let mut prevs = Vec::new();
    for (cid, pod) in [("gotu1", &p1), ("rstu1", &p2)] {
        prevs.push(
            bridge_only
                .add(&host, &attach(cid, pod))
                .expect("bridge ADD"),
        );
        // Same starting point for both, so the backups can be compared byte for byte.
        let _ = pod.exec_ok(&["ip", "link", "set", "eth0", "address", "02:00:00:00:00:aa"]);
    }
    let conf = |prev: &Value| {
        json!({
            "cniVersion": "0.4.0", "name": base["name"], "type": "tuning", "dataDir": dir,
            "mac": "02:aa:bb:cc:dd:03", "mtu": 1280, "promisc": true, "allmulti": true,
            "prevResult": prev
        })
    };
    run_tuning(&host, go, "ADD", &p1, "gotu1", &conf(&prevs[0]));
    run_tuning(&host, &ours, "ADD", &p2, "rstu1", &conf(&prevs[1]));
    let theirs = std::fs::read(backup(&dir, "gotu1")).expect("Go backup");
    let mine = std::fs::read(backup(&dir, "rstu1")).expect("our backup");
    assert_eq!(
        String::from_utf8_lossy(&mine),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(eth0(&p1), eth0(&p2), "same attributes set");
    // Each DELs what the other added.
    run_tuning(&host, &ours, "DEL", &p1, "gotu1", &conf(&prevs[0]));
    run_tuning(&host, go, "DEL", &p2, "rstu1", &conf(&prevs[1]));
    for pod in [&p1, &p2] {
        let (mac, mtu, promisc, allmulti, _) = eth0(pod);
        assert_eq!(
            (mac.as_str(), mtu, promisc, allmulti),
            ("02:00:00:00:00:aa", 1500, false, false)
        );
    }
    assert!(!backup(&dir, "gotu1").exists());
    assert!(!backup(&dir, "rstu1").exists());
    for (cid, pod, prev) in [("gotu1", &p1, &prevs[0]), ("rstu1", &p2, &prevs[1])] {
        bridge_only
            .verb(&host, &attach(cid, pod), "DEL", Some(prev))
            .expect("bridge DEL");
    }
}
