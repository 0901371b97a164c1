//! ipvlan, vlan and dummy on any kernel: bad input gets the Go plugins' error code and a
//! message naming the key, before any kernel contact; a kernel without the link type gets
//! an error naming it; neither leaves anything behind; DEL always works. What needs the
//! link types themselves is in `vm_links.rs`.

use std::path::Path;

use rcni_integration::{Attachment, GO_PLUGINS, Host, Outcome, links_in, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

/// A host with a veth pair `m0`/`m1` (MTU 1400) to use as the master.
fn host_with_master() -> Host {
    let host = Host::new();
    let _ = host.sh(&[
        "ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1",
    ]);
    let _ = host.sh(&["ip", "link", "set", "m0", "mtu", "1400"]);
    host
}

/// One plugin run in `host` for the attachment `at`, CNI_PATH the plugin's directory.
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

/// The attachment `pod1`/`ifname` in `ctr`.
fn pod<'a>(ctr: &'a TestNetns, ifname: &'a str) -> Attachment<'a> {
    Attachment {
        container_id: "pod1",
        ifname,
        netns: ctr.path(),
    }
}

struct Case {
    name: &'static str,
    plugin: &'static str,
    conf: Value,
    ifname: &'static str,
    /// Text our message must contain (the key, or what is wrong with it).
    says: &'static str,
}

fn cases(host: &Host, net: &str) -> Vec<Case> {
    let ipam = json!({"type": "host-local", "dataDir": host.data_dir,
                      "ranges": [[{"subnet": "10.140.1.0/24"}]]});
    let conf = |plugin: &str, keys: Value| {
        let mut c = json!({"cniVersion": "1.0.0", "name": net, "type": plugin, "ipam": ipam});
        if let (Some(doc), Some(keys)) = (c.as_object_mut(), keys.as_object()) {
            doc.extend(keys.clone());
        }
        c
    };
    let case = |name, plugin, keys, says| Case {
        name,
        plugin,
        conf: conf(plugin, keys),
        ifname: "eth0",
        says,
    };
    let prev_two = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "a"}, {"name": "b"}],
                          "ips": [{"address": "10.140.1.9/24"}]});
    vec![
        case(
            "ipvlan: unknown mode",
            "ipvlan",
            json!({"master": "m0", "mode": "l4"}),
            "ipvlan mode: \"l4\"",
        ),
        case(
            "ipvlan: mode is case-sensitive",
            "ipvlan",
            json!({"master": "m0", "mode": "L3"}),
            "ipvlan mode: \"L3\"",
        ),
        case(
            "ipvlan: no master and no default route",
            "ipvlan",
            json!({}),
            "no default route interface found",
        ),
        case(
            "ipvlan: missing master",
            "ipvlan",
            json!({"master": "nope"}),
            "master \"nope\"",
        ),
        case(
            "ipvlan: chained without a single named interface",
            "ipvlan",
            json!({"prevResult": prev_two}),
            "chained master failure",
        ),
        case(
            "ipvlan: mtu of the wrong type",
            "ipvlan",
            json!({"master": "m0", "mtu": "1400"}),
            "mtu",
        ),
        Case {
            ifname: "abcdefghijklmnop",
            ..case(
                "ipvlan: ifname too long",
                "ipvlan",
                json!({"master": "m0"}),
                "interface name",
            )
        },
        case(
            "vlan: no master",
            "vlan",
            json!({"vlanId": 5}),
            "\"master\" field is required",
        ),
        case(
            "vlan: vlanId 4095",
            "vlan",
            json!({"master": "m0", "vlanId": 4095}),
            "vlanId",
        ),
        case(
            "vlan: negative vlanId",
            "vlan",
            json!({"master": "m0", "vlanId": -1}),
            "vlanId",
        ),
        case(
            "vlan: mtu above the master's",
            "vlan",
            json!({"master": "m0", "vlanId": 5, "mtu": 1500}),
            "invalid MTU 1500, must be [0, master MTU(1400)]",
        ),
        case(
            "vlan: negative mtu",
            "vlan",
            json!({"master": "m0", "vlanId": 5, "mtu": -1}),
            "invalid MTU -1",
        ),
        case(
            "vlan: missing master",
            "vlan",
            json!({"master": "nope", "vlanId": 5}),
            "Link not found",
        ),
        case(
            "vlan: vlanId of the wrong type",
            "vlan",
            json!({"master": "m0", "vlanId": "5"}),
            "vlanId",
        ),
        Case {
            ifname: "abcdefghijklmnop",
            ..case(
                "vlan: ifname too long",
                "vlan",
                json!({"master": "m0", "vlanId": 5}),
                "interface name",
            )
        },
    ]
}

#[test]
fn bad_input_gets_the_reference_code_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let net = format!("rcni-lnk-{}", tag());
    let (ours_host, go_host) = (host_with_master(), host_with_master());
    let (ours_ctr, go_ctr) = (TestNetns::new(), TestNetns::new());
    let host_links = ours_host.links();
    for (mine, theirs) in cases(&ours_host, &net)
        .into_iter()
        .zip(cases(&go_host, &net))
    {
        let ours = run(
            &ours_host,
            &our_plugins(),
            mine.plugin,
            "ADD",
            &pod(&ours_ctr, mine.ifname),
            &mine.conf,
        )
        .err();
        let reference = run(
            &go_host,
            go(),
            theirs.plugin,
            "ADD",
            &pod(&go_ctr, theirs.ifname),
            &theirs.conf,
        )
        .err();
        assert_eq!(
            ours["code"], reference["code"],
            "{}: ours {ours} vs Go {reference}",
            mine.name
        );
        let text = format!(
            "{} {}",
            ours["msg"].as_str().unwrap_or_default(),
            ours["details"].as_str().unwrap_or_default()
        );
        assert!(text.contains(mine.says), "{}: {ours}", mine.name);
        assert_eq!(ours_host.links(), host_links, "{}", mine.name);
        assert_eq!(links_in(&ours_ctr), ["lo"], "{}", mine.name);
        assert!(ours_host.reservations(&net).is_empty(), "{}", mine.name);
    }
}

#[test]
fn dummy_needs_ipam_as_the_reference_says() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let conf = json!({"cniVersion": "1.0.0", "name": "n", "type": "dummy"});
    for command in ["ADD", "CHECK"] {
        let e = run(
            &host,
            &our_plugins(),
            "dummy",
            command,
            &pod(&ctr, "eth0"),
            &conf,
        )
        .err();
        assert_eq!(e["code"], 999, "{e}");
        assert_eq!(e["msg"], "dummy interface requires an IPAM configuration");
    }
    assert_eq!(links_in(&ctr), ["lo"]);
}

/// Whether this kernel makes links of `kind` (tried on a veth in a throwaway namespace).
fn kernel_has(kind: &str) -> bool {
    let probe = TestNetns::new();
    let _ = probe.exec_ok(&[
        "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1",
    ]);
    let args: &[&str] = match kind {
        "ipvlan" => &["link", "p0", "name", "x0", "type", "ipvlan"],
        "vlan" => &["link", "p0", "name", "x0", "type", "vlan", "id", "5"],
        _ => &["name", "x0", "type", kind],
    };
    let mut argv = vec!["ip", "link", "add"];
    argv.extend_from_slice(args);
    probe.exec(&argv).status.success()
}

/// On this machine's kernel (no ipvlan, 8021q or dummy) each plugin fails naming the
/// missing link type, after IPAM has run, and releases the address; DEL then works, twice.
/// On a kernel that has the type, ADD works and DEL cleans up, so the test holds anywhere.
#[test]
fn a_kernel_without_the_link_type_is_named_and_nothing_is_left() {
    if !ready() {
        return;
    }
    for kind in ["ipvlan", "vlan", "dummy"] {
        let host = host_with_master();
        let ctr = TestNetns::new();
        let net = format!("rcni-lnk-{}", tag());
        let conf = json!({"cniVersion": "1.0.0", "name": net, "type": kind,
                          "master": "m0", "vlanId": 7,
                          "ipam": {"type": "host-local", "dataDir": host.data_dir,
                                   "ranges": [[{"subnet": "10.140.2.0/24"}]]}});
        let host_links = host.links();
        let add = run(
            &host,
            &our_plugins(),
            kind,
            "ADD",
            &pod(&ctr, "eth0"),
            &conf,
        );
        if kernel_has(kind) {
            add.ok();
            assert_eq!(host.reservations(&net), ["10.140.2.2"], "{kind}");
        } else {
            let e = add.err();
            assert_eq!(e["code"], 999, "{kind}: {e}");
            assert_eq!(
                e["msg"],
                format!("{kind}: this kernel does not support {kind} links (Unknown device type)"),
                "{e}"
            );
            assert!(host.reservations(&net).is_empty(), "{kind}: IPAM released");
            assert_eq!(links_in(&ctr), ["lo"], "{kind}");
            assert_eq!(host.links(), host_links, "{kind}");
        }
        for _ in 0..2 {
            run(
                &host,
                &our_plugins(),
                kind,
                "DEL",
                &pod(&ctr, "eth0"),
                &conf,
            )
            .ok();
        }
        assert!(host.reservations(&net).is_empty(), "{kind}");
        assert_eq!(links_in(&ctr), ["lo"], "{kind}");
        assert_eq!(host.links(), host_links, "{kind}");
    }
}

/// DEL needs neither the master nor the netns: a runtime cleaning up after a failed ADD,
/// or after the master went away, gets success (the Go vlan and ipvlan plugins look the
/// master up first and fail).
#[test]
fn del_works_without_master_netns_or_link() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let gone = Path::new("/run/netns/rcni-no-such-netns");
    for (kind, keys) in [
        ("ipvlan", json!({"master": "nope"})),
        ("ipvlan", json!({})),
        ("vlan", json!({"master": "nope", "vlanId": 5})),
        ("vlan", json!({"vlanId": 9999})),
        ("dummy", json!({})),
    ] {
        let mut conf = json!({"cniVersion": "1.0.0", "name": "n", "type": kind,
                              "ipam": {"type": "host-local", "dataDir": host.data_dir,
                                       "ranges": [[{"subnet": "10.140.3.0/24"}]]}});
        if let (Some(doc), Some(keys)) = (conf.as_object_mut(), keys.as_object()) {
            doc.extend(keys.clone());
        }
        run(
            &host,
            &our_plugins(),
            kind,
            "DEL",
            &pod(&ctr, "eth0"),
            &conf,
        )
        .ok();
        let path = our_plugins().display().to_string();
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "pod1"),
            ("CNI_NETNS", gone.to_str().expect("utf-8")),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        host.run(&our_plugins(), kind, &env, &conf).ok();
        let env_no_netns = [env[0], env[1], env[3], env[4]];
        host.run(&our_plugins(), kind, &env_no_netns, &conf).ok();
    }
    let reference = run(
        &host,
        go(),
        "vlan",
        "DEL",
        &pod(&ctr, "eth0"),
        &json!({"cniVersion": "1.0.0", "name": "n", "type": "vlan", "master": "nope",
                "ipam": {"type": "host-local", "dataDir": host.data_dir,
                         "ranges": [[{"subnet": "10.140.3.0/24"}]]}}),
    );
    assert_eq!(
        reference.status, 1,
        "the reference fails here: {reference:?}"
    );
}

/// STATUS and GC reach IPAM: GC releases what the valid attachments no longer name.
#[test]
fn status_and_gc_are_forwarded_to_ipam() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let net = format!("rcni-lnk-{}", tag());
    for kind in ["ipvlan", "vlan", "dummy"] {
        let conf = json!({"cniVersion": "1.1.0", "name": net, "type": kind, "master": "m0",
                          "ipam": {"type": "host-local", "dataDir": host.data_dir,
                                   "ranges": [[{"subnet": "10.140.4.0/24"}]]}});
        // A reservation made directly through IPAM, for an attachment GC will not name.
        let mut ipam_conf = conf.clone();
        ipam_conf["type"] = json!("host-local");
        run(
            &host,
            &our_plugins(),
            "host-local",
            "ADD",
            &pod(&ctr, "eth0"),
            &ipam_conf,
        )
        .ok();
        assert_eq!(host.reservations(&net).len(), 1, "{kind}");

        run(
            &host,
            &our_plugins(),
            kind,
            "STATUS",
            &pod(&ctr, "eth0"),
            &conf,
        )
        .ok();
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "other", "ifname": "eth0"}]);
        run(&host, &our_plugins(), kind, "GC", &pod(&ctr, "eth0"), &gc).ok();
        assert!(host.reservations(&net).is_empty(), "{kind}: GC released it");
    }
}
