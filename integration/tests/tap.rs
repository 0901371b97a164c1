//! tap as a runtime runs it: the device made in the pod with its MTU, MAC, queues, owner
//! and group as `ip -d link` shows them, attached to a bridge of the pod, with IPAM's
//! addresses; bad input leaves nothing; DEL works without the netns and releases the
//! address. Debian's Go plugins (v1.1.1) have no tap to compare with.

use std::path::Path;

use rcni_integration::{Attachment, Host, Outcome, addrs_in, links_in, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

/// `ip -d -j link show dev <ifname>` in `ns`.
fn link(ns: &TestNetns, ifname: &str) -> Value {
    let out = ns.exec_ok(&["ip", "-d", "-j", "link", "show", "dev", ifname]);
    let doc: Value = serde_json::from_str(&out).expect("ip -j prints JSON");
    doc[0].clone()
}

fn pod(ctr: &TestNetns) -> Attachment<'_> {
    Attachment {
        container_id: "pod1",
        ifname: "tap0",
        netns: ctr.path(),
    }
}

/// One run of our tap in `host` for `at`, with `args` as CNI_ARGS when not empty.
fn run(host: &Host, command: &str, at: &Attachment, conf: &Value, args: &str) -> Outcome {
    let netns = at.netns.display().to_string();
    let path = our_plugins().display().to_string();
    let mut env = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", at.container_id),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", at.ifname),
        ("CNI_PATH", path.as_str()),
    ];
    if !args.is_empty() {
        env.push(("CNI_ARGS", args));
    }
    host.run(&our_plugins(), "tap", &env, conf)
}

fn conf(host: &Host, name: &str, keys: &Value, ipam: bool) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": name, "type": "tap"});
    if ipam {
        c["ipam"] = json!({"type": "host-local", "dataDir": host.data_dir,
                           "ranges": [[{"subnet": "10.170.0.0/24"}],
                                      [{"subnet": "fd00:170::/64"}]],
                           "routes": [{"dst": "10.171.0.0/16"}]});
    }
    if let (Some(doc), Some(keys)) = (c.as_object_mut(), keys.as_object()) {
        doc.extend(keys.clone());
    }
    c
}

#[test]
fn a_layer_2_tap_has_what_the_config_asks_for() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let _ = ctr.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    let keys = json!({"mtu": 1400, "mac": "02:00:00:00:17:01", "multiQueue": true,
                      "owner": 54321, "group": 54322, "bridge": "br0"});
    let c = conf(&host, "rcni-tap", &keys, false);
    let r = run(&host, "ADD", &pod(&ctr), &c, "").ok();
    assert_eq!(
        r,
        json!({"cniVersion": "1.0.0",
               "interfaces": [{"name": "tap0", "mac": "02:00:00:00:17:01",
                               "sandbox": ctr.path()}]})
    );
    let l = link(&ctr, "tap0");
    let info = &l["linkinfo"]["info_data"];
    assert_eq!(l["linkinfo"]["info_kind"], "tun", "{l}");
    assert_eq!(info["type"], "tap", "{l}");
    assert_eq!(info["pi"], false, "{l}");
    assert_eq!(info["vnet_hdr"], true, "{l}");
    assert_eq!(info["multi_queue"], true, "{l}");
    assert_eq!(info["persist"], true, "{l}");
    assert_eq!(info["user"], 54321, "{l}");
    assert_eq!(info["group"], 54322, "{l}");
    assert_eq!(l["mtu"], 1400, "{l}");
    assert_eq!(l["address"], "02:00:00:00:17:01", "{l}");
    assert_eq!(l["master"], "br0", "{l}");
    assert!(
        l["flags"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("UP"))),
        "{l}"
    );

    let mut check = c.clone();
    check["prevResult"] = r;
    run(&host, "CHECK", &pod(&ctr), &check, "").ok();
    for _ in 0..2 {
        run(&host, "DEL", &pod(&ctr), &check, "").ok();
    }
    assert_eq!(links_in(&ctr), ["lo", "br0"]);

    // Without owner and group the tap has neither; the MAC from CNI_ARGS.
    let c = conf(&host, "rcni-tap", &json!({}), false);
    let r = run(
        &host,
        "ADD",
        &pod(&ctr),
        &c,
        "IgnoreUnknown=1;MAC=02:00:00:00:17:02",
    )
    .ok();
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:17:02");
    let info = link(&ctr, "tap0")["linkinfo"]["info_data"].clone();
    assert!(
        info.get("user").is_none() && info.get("group").is_none(),
        "{info}"
    );
    assert_eq!(info["multi_queue"], false, "{info}");
    run(&host, "DEL", &pod(&ctr), &c, "").ok();
}

#[test]
fn a_layer_3_tap_gets_its_addresses_and_del_releases_them() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let name = format!("rcni-tap-{}", tag());
    let c = conf(
        &host,
        &name,
        &json!({"dns": {"nameservers": ["10.170.0.53"]}}),
        true,
    );
    {
        let ctr = TestNetns::new();
        let r = run(&host, "ADD", &pod(&ctr), &c, "").ok();
        assert_eq!(
            r["ips"],
            json!([{"interface": 0, "address": "10.170.0.2/24", "gateway": "10.170.0.1"},
                   {"interface": 0, "address": "fd00:170::2/64", "gateway": "fd00:170::1"}])
        );
        assert_eq!(r["routes"], json!([{"dst": "10.171.0.0/16"}]));
        assert_eq!(r["dns"], json!({"nameservers": ["10.170.0.53"]}));
        assert_eq!(addrs_in(&ctr, "tap0"), ["10.170.0.2/24", "fd00:170::2/64"]);
        let routes = ctr.exec_ok(&["ip", "-4", "route", "show"]);
        assert!(
            routes.contains("10.171.0.0/16 via 10.170.0.1 dev tap0"),
            "{routes}"
        );
        let mut check = c.clone();
        check["prevResult"] = r.clone();
        run(&host, "CHECK", &pod(&ctr), &check, "").ok();
        assert_eq!(host.reservations(&name).len(), 2);
        run(&host, "DEL", &pod(&ctr), &check, "").ok();
        assert_eq!(links_in(&ctr), ["lo"]);
        assert!(host.reservations(&name).is_empty());

        run(&host, "ADD", &pod(&ctr), &c, "").ok();
    }
    // The pod's netns is gone: DEL still releases the addresses.
    let gone = Attachment {
        container_id: "pod1",
        ifname: "tap0",
        netns: Path::new("/run/netns/rcni-no-such-netns"),
    };
    run(&host, "DEL", &gone, &c, "").ok();
    assert!(host.reservations(&name).is_empty());
}

#[test]
fn bad_input_is_named_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let name = format!("rcni-tap-{}", tag());
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let mut cases = vec![
        (
            "mac",
            json!({"mac": "zz"}),
            "",
            "invalid args zz for MAC addr",
        ),
        ("mtu", json!({"mtu": -1}), "", "invalid MTU -1"),
        (
            "mtu too big",
            json!({"mtu": 70000}),
            "",
            "failed to set MTU 70000",
        ),
        ("owner", json!({"owner": -1}), "", "owner"),
        ("multiQueue", json!({"multiQueue": "yes"}), "", "multiQueue"),
        (
            "bridge",
            json!({"bridge": "br9"}),
            "",
            "failed to get bridge br9",
        ),
        (
            "CNI_ARGS",
            json!({}),
            "FOO=bar",
            "ARGS: unknown args [\"FOO=bar\"]",
        ),
    ];
    if !selinux {
        cases.push((
            "selinuxContext without SELinux",
            json!({"selinuxContext": "system_u:system_r:container_t:s0"}),
            "",
            "failed set socket label",
        ));
    }
    for (case, keys, args, says) in cases {
        let c = conf(&host, &name, &keys, true);
        let e = run(&host, "ADD", &pod(&ctr), &c, args).err();
        assert_eq!(e["code"], 999, "{case}: {e}");
        let text = format!(
            "{} {}",
            e["msg"].as_str().unwrap_or_default(),
            e["details"].as_str().unwrap_or_default()
        );
        assert!(text.contains(says), "{case}: {e}");
        assert_eq!(links_in(&ctr), ["lo"], "{case}");
        assert!(host.reservations(&name).is_empty(), "{case}");
    }
    // A taken name: refused before IPAM, the other interface untouched.
    let _ = ctr.exec_ok(&[
        "ip", "link", "add", "tap0", "type", "veth", "peer", "name", "x0",
    ]);
    let e = run(
        &host,
        "ADD",
        &pod(&ctr),
        &conf(&host, &name, &json!({}), true),
        "",
    )
    .err();
    assert!(
        e["msg"]
            .as_str()
            .is_some_and(|m| m.contains("already exists")),
        "{e}"
    );
    assert!(host.reservations(&name).is_empty());
    assert_eq!(link(&ctr, "tap0")["linkinfo"]["info_kind"], "veth");
}

/// STATUS and GC reach IPAM: GC releases what the valid attachments no longer name.
#[test]
fn status_and_gc_are_forwarded_to_ipam() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let name = format!("rcni-tap-{}", tag());
    let mut c = conf(&host, &name, &json!({}), true);
    c["cniVersion"] = json!("1.1.0");
    run(&host, "ADD", &pod(&ctr), &c, "").ok();
    assert_eq!(host.reservations(&name).len(), 2);
    run(&host, "STATUS", &pod(&ctr), &c, "").ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "other", "ifname": "tap0"}]);
    run(&host, "GC", &pod(&ctr), &gc, "").ok();
    assert!(host.reservations(&name).is_empty(), "GC released them");
    run(&host, "DEL", &pod(&ctr), &c, "").ok();
    assert_eq!(links_in(&ctr), ["lo"]);
}
