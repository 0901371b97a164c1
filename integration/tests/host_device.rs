//! host-device as a runtime runs it, beside the Go reference plugin: the "existing device"
//! is one end of a veth pair made in the test's host namespace, so the pod reaches the
//! other end once the device is in; DEL brings it back under its own name. DEL without the
//! netns still releases the address (cni#1167, where the reference leaks it). Bad input
//! gets the reference's code and leaves the device where it was.
//!
//! `pciBusID` and the `deviceID` capability are covered by the plugin's unit tests against
//! a sysfs tree: this machine has no PCI network card to move.

use std::path::{Path, PathBuf};

use rcni_integration::{
    Attachment, GO_PLUGINS, Host, Outcome, addrs_in, links_in, our_plugins, ping, ready, tag,
};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

/// A host with the veth pair `hd0`/`hd1`, both up; `hd1` (staying on the host) has
/// `10.<net>.1/24`, `hd0` is the device the pod gets.
fn host_with_device(net: u8) -> Host {
    let host = Host::new();
    let peer = format!("10.{net}.0.1/24");
    for argv in [
        &[
            "ip", "link", "add", "hd0", "type", "veth", "peer", "name", "hd1",
        ][..],
        &["ip", "addr", "add", &peer, "dev", "hd1"],
        &["ip", "link", "set", "hd1", "up"],
        &["ip", "link", "set", "hd0", "up"],
    ] {
        let _ = host.sh(argv);
    }
    host
}

/// `ip -d -j link show dev <ifname>` in `ns`.
fn link(ns: &TestNetns, ifname: &str) -> Value {
    let out = ns.exec_ok(&["ip", "-d", "-j", "link", "show", "dev", ifname]);
    let doc: Value = serde_json::from_str(&out).expect("ip -j prints JSON");
    doc[0].clone()
}

/// A host-device config over `keys`, with host-local in `10.<net>.0.0/24` when `ipam`.
fn conf(host: &Host, version: &str, name: &str, net: u8, keys: &Value, ipam: bool) -> Value {
    let mut c = json!({"cniVersion": version, "name": name, "type": "host-device"});
    if ipam {
        c["ipam"] = json!({"type": "host-local", "dataDir": host.data_dir,
                           "ranges": [[{"subnet": format!("10.{net}.0.0/24")}]],
                           "routes": [{"dst": format!("10.{}.0.0/16", net + 1)}]});
    }
    if let (Some(doc), Some(keys)) = (c.as_object_mut(), keys.as_object()) {
        doc.extend(keys.clone());
    }
    c
}

/// One plugin run in `host` for `at`, with CNI_PATH `path` (IPAM's directory).
fn run(
    host: &Host,
    dir: &Path,
    command: &str,
    at: &Attachment,
    path: &Path,
    conf: &Value,
) -> Outcome {
    let netns = at.netns.display().to_string();
    let path = path.display().to_string();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", at.container_id),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", at.ifname),
        ("CNI_PATH", path.as_str()),
    ];
    host.run(dir, "host-device", &env, conf)
}

fn pod<'a>(ctr: &'a TestNetns, ifname: &'a str) -> Attachment<'a> {
    Attachment {
        container_id: "pod1",
        ifname,
        netns: ctr.path(),
    }
}

/// What differs by design between two runs: sandboxes, MACs; and an empty `dns` in a 1.x
/// result, which Debian's Go plugins (libcni 1.1) print and newer libcni (and we) omit.
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
        }
    }
    r
}

#[test]
fn the_device_moves_in_gets_its_address_reaches_its_peer_and_comes_back() {
    if !ready() {
        return;
    }
    let name = format!("rcni-hd-{}", tag());
    let mut results = Vec::new();
    for dir in [our_plugins(), go().to_path_buf()] {
        let ours = dir == our_plugins();
        let host = host_with_device(141);
        let host_links = host.links();
        let ctr = TestNetns::new();
        let device = link(&host.ns, "hd0");
        let c = conf(&host, "1.0.0", &name, 141, &json!({"device": "hd0"}), true);
        let at = pod(&ctr, "eth0");
        let r = run(&host, &dir, "ADD", &at, &our_plugins(), &c).ok();
        assert_eq!(
            r["interfaces"],
            json!([{"name": "eth0", "mac": device["address"], "sandbox": ctr.path()}]),
            "{r}"
        );
        assert_eq!(
            r["ips"],
            json!([{"interface": 0, "address": "10.141.0.2/24", "gateway": "10.141.0.1"}])
        );
        assert!(!host.links().contains(&"hd0".to_string()), "moved away");
        let l = link(&ctr, "eth0");
        assert_eq!(l["address"], device["address"], "the same device: {l}");
        assert_eq!(l["ifalias"], "hd0", "its host name is kept: {l}");
        assert_eq!(addrs_in(&ctr, "eth0"), ["10.141.0.2/24"]);
        assert!(
            ping(&ctr, "10.141.0.1"),
            "the pod reaches the device's peer"
        );
        if ours {
            run(&host, &dir, "CHECK", &at, &our_plugins(), &{
                let mut c = c.clone();
                c["prevResult"] = r.clone();
                c
            })
            .ok();
        }
        results.push(normalise(r.clone()));

        let mut del = c.clone();
        del["prevResult"] = r.clone();
        run(&host, &dir, "DEL", &at, &our_plugins(), &del).ok();
        assert_eq!(host.links(), host_links, "back under its own name");
        let back = link(&host.ns, "hd0");
        assert_eq!(back["address"], device["address"]);
        if ours {
            // Debian's v1.1.1 leaves the alias; newer reference releases clear it, as we do.
            assert!(back.get("ifalias").is_none(), "alias cleared: {back}");
        }
        assert_eq!(links_in(&ctr), ["lo"]);
        assert!(host.reservations(&name).is_empty());
        let again = run(&host, &dir, "DEL", &at, &our_plugins(), &del);
        if ours {
            again.ok();
        } else {
            // The reference fails a second DEL: "failed to find \"eth0\": Link not found".
            assert_eq!(again.err()["code"], 999);
        }
    }
    assert_eq!(results[0], results[1], "ours vs Go");
}

#[test]
fn results_without_ipam_and_in_older_versions_match_the_reference() {
    if !ready() {
        return;
    }
    for (version, ipam, keys) in [
        ("1.0.0", false, json!({"device": "hd0"})),
        ("0.4.0", true, json!({"device": "hd0"})),
        (
            "0.3.1",
            true,
            json!({"device": "hd0", "dns": {"nameservers": ["10.1.1.1"]}}),
        ),
        ("0.2.0", true, json!({"device": "hd0"})),
        // DPDKMode, a key of the reference's NetConf: nothing moves, IPAM still runs.
        ("1.0.0", true, json!({"device": "hd0", "DPDKMode": true})),
    ] {
        let name = format!("rcni-hd-{}", tag());
        let mut results = Vec::new();
        for dir in [our_plugins(), go().to_path_buf()] {
            let host = host_with_device(142);
            let host_links = host.links();
            let ctr = TestNetns::new();
            let c = conf(&host, version, &name, 142, &keys, ipam);
            let at = pod(&ctr, "net1");
            let r = run(&host, &dir, "ADD", &at, &our_plugins(), &c).ok();
            results.push(normalise(r.clone()));
            let mut del = c.clone();
            del["prevResult"] = r;
            run(&host, &dir, "DEL", &at, &our_plugins(), &del).ok();
            assert_eq!(host.links(), host_links, "{version} {keys}");
            assert_eq!(links_in(&ctr), ["lo"], "{version} {keys}");
            assert!(host.reservations(&name).is_empty(), "{version} {keys}");
        }
        if keys.get("DPDKMode").is_some() {
            // The reference names the interface since v1.7.0; Debian's v1.1.1 prints
            // `"interfaces": null`.
            assert_eq!(
                results[0]["interfaces"],
                json!([{"name": "net1", "sandbox": "<netns>"}])
            );
            for r in &mut results {
                r.as_object_mut().map(|doc| doc.remove("interfaces"));
            }
        }
        assert_eq!(results[0], results[1], "{version} {keys}: ours vs Go");
    }
}

/// cni#1167: after a reboot the runtime calls DEL for pods whose netns is gone; the
/// reference fails before IPAM's DEL and the address stays allocated for good.
#[test]
fn del_without_the_netns_releases_the_address() {
    if !ready() {
        return;
    }
    let gone = Path::new("/run/netns/rcni-no-such-netns");
    for netns in [gone.to_str().expect("utf-8"), ""] {
        let name = format!("rcni-hd-{}", tag());
        for dir in [our_plugins(), go().to_path_buf()] {
            let ours = dir == our_plugins();
            let host = host_with_device(143);
            let c = conf(&host, "1.0.0", &name, 143, &json!({"device": "hd0"}), true);
            {
                let ctr = TestNetns::new();
                run(&host, &dir, "ADD", &pod(&ctr, "eth0"), &our_plugins(), &c).ok();
                assert_eq!(host.reservations(&name), ["10.143.0.2"]);
            }
            // The netns is gone, and the veth with it.
            let path = our_plugins().display().to_string();
            let mut env = vec![
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "pod1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", path.as_str()),
            ];
            if !netns.is_empty() {
                env.push(("CNI_NETNS", netns));
            }
            let out = host.run(&dir, "host-device", &env, &c);
            if ours {
                out.ok();
                assert!(host.reservations(&name).is_empty(), "{netns:?}: released");
            } else {
                assert_eq!(
                    host.reservations(&name),
                    ["10.143.0.2"],
                    "{netns:?}: the reference leaks it ({out:?})"
                );
            }
        }
    }
}

struct Case {
    name: &'static str,
    keys: Value,
    /// Text our message must contain (the key, or what is wrong with it).
    says: &'static str,
}

fn cases() -> Vec<Case> {
    let case = |name, keys, says| Case { name, keys, says };
    vec![
        case(
            "no selector",
            json!({}),
            r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#,
        ),
        case(
            "device missing",
            json!({"device": "nope"}),
            "failed to find host device: Link not found",
        ),
        case("device of the wrong type", json!({"device": 5}), "device"),
        case(
            "hwaddr that does not parse",
            json!({"hwaddr": "zz"}),
            "failed to parse MAC address \"zz\"",
        ),
        case(
            "hwaddr nobody has",
            json!({"hwaddr": "02:00:00:00:00:99"}),
            "failed to find physical interface",
        ),
        case(
            "kernelpath outside /sys/devices",
            json!({"kernelpath": "/proc"}),
            "kernel device path \"/proc\" must be absolute and begin with /sys/devices/",
        ),
        case(
            "kernelpath without a net directory",
            json!({"kernelpath": "/sys/devices/rcni-nope"}),
            "/sys/devices/rcni-nope/net",
        ),
        case(
            "pciBusID of no device",
            json!({"pciBusID": "0000:99:00.0"}),
            "error with host device: /sys/bus/pci/devices/0000:99:00.0/driver",
        ),
        case(
            "deviceID of no device",
            json!({"runtimeConfig": {"deviceID": "0000:99:00.0"}}),
            "0000:99:00.0",
        ),
    ]
}

#[test]
fn bad_input_gets_the_reference_code_and_leaves_the_device() {
    if !ready() {
        return;
    }
    let name = format!("rcni-hd-{}", tag());
    let (ours_host, go_host) = (host_with_device(144), host_with_device(144));
    let (ours_ctr, go_ctr) = (TestNetns::new(), TestNetns::new());
    let host_links = ours_host.links();
    for case in cases() {
        let ours = run(
            &ours_host,
            &our_plugins(),
            "ADD",
            &pod(&ours_ctr, "eth0"),
            &our_plugins(),
            &conf(&ours_host, "1.0.0", &name, 144, &case.keys, true),
        )
        .err();
        let reference = run(
            &go_host,
            go(),
            "ADD",
            &pod(&go_ctr, "eth0"),
            &our_plugins(),
            &conf(&go_host, "1.0.0", &name, 144, &case.keys, true),
        )
        .err();
        assert_eq!(
            ours["code"], reference["code"],
            "{}: ours {ours} vs Go {reference}",
            case.name
        );
        let text = format!(
            "{} {}",
            ours["msg"].as_str().unwrap_or_default(),
            ours["details"].as_str().unwrap_or_default()
        );
        assert!(text.contains(case.says), "{}: {ours}", case.name);
        assert_eq!(ours_host.links(), host_links, "{}", case.name);
        assert_eq!(links_in(&ours_ctr), ["lo"], "{}", case.name);
        assert!(ours_host.reservations(&name).is_empty(), "{}", case.name);
    }
}

/// What makes the reference lose the device leaves ours on the host: a pod that has the
/// interface name already (Debian's v1.1.1 moves the device in first, then fails to
/// rename it), and an IPAM plugin that is not there (the reference moves the device in,
/// then fails without moving it back).
#[test]
fn failures_after_the_lookup_leave_the_device_on_the_host() {
    if !ready() {
        return;
    }
    for (case, ipam) in [
        (
            "taken name",
            json!({"type": "host-local", "ranges": [[{"subnet": "10.145.0.0/24"}]]}),
        ),
        ("no such IPAM", json!({"type": "rcni-no-such-ipam"})),
    ] {
        for dir in [our_plugins(), go().to_path_buf()] {
            let ours = dir == our_plugins();
            let host = host_with_device(145);
            let host_links = host.links();
            let ctr = TestNetns::new();
            if case == "taken name" {
                let _ = ctr.exec_ok(&[
                    "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
                ]);
            }
            let mut ipam = ipam.clone();
            ipam["dataDir"] = json!(host.data_dir);
            let c = json!({"cniVersion": "1.0.0", "name": "n", "type": "host-device",
                           "device": "hd0", "ipam": ipam});
            let e = run(&host, &dir, "ADD", &pod(&ctr, "eth0"), &our_plugins(), &c).err();
            assert_eq!(e["code"], 999, "{case}: {e}");
            if ours {
                assert_eq!(host.links(), host_links, "{case}: {e}");
                assert!(
                    link(&host.ns, "hd0")["flags"]
                        .as_array()
                        .is_some_and(|f| f.contains(&json!("UP")))
                );
                assert!(host.reservations("n").is_empty(), "{case}");
            } else {
                assert!(
                    !host.links().contains(&"hd0".to_string()),
                    "{case}: the reference lost the device into the pod"
                );
            }
        }
    }
}

/// A directory with a `host-device` wrapper that runs `plugin` in a mount namespace of
/// its own with sysfs mounted afresh: sysfs then lists the devices of the namespace the
/// plugin runs in (the test's host), so kernel paths lead to the test's veth.
fn with_own_sysfs(host: &Host, plugin: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = host.data_dir.join("sysfs-wrapper");
    std::fs::create_dir_all(&dir).expect("wrapper dir");
    let script = dir.join("host-device");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec unshare -m sh -c 'mount -t sysfs sysfs /sys && exec \"$0\"' {}\n",
            plugin.display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

#[test]
fn hwaddr_and_kernelpath_find_the_device() {
    if !ready() {
        return;
    }
    for which in ["hwaddr", "kernelpath"] {
        let mut results = Vec::new();
        for plugins in [our_plugins(), go().to_path_buf()] {
            let host = host_with_device(146);
            let host_links = host.links();
            let ctr = TestNetns::new();
            let device = link(&host.ns, "hd0");
            // Virtual devices sit under /sys/devices/virtual/net/; the first by name is
            // hd0 (before hd1 and lo).
            let (keys, dir) = if which == "hwaddr" {
                let mac = device["address"].as_str().expect("mac").to_uppercase();
                (json!({"hwaddr": mac}), plugins.clone())
            } else {
                let dir = with_own_sysfs(&host, &plugins.join("host-device"));
                (json!({"kernelpath": "/sys/devices/virtual"}), dir)
            };
            let name = format!("rcni-hd-{}", tag());
            let c = conf(&host, "1.0.0", &name, 146, &keys, true);
            let at = pod(&ctr, "eth0");
            let r = run(&host, &dir, "ADD", &at, &our_plugins(), &c).ok();
            assert_eq!(link(&ctr, "eth0")["address"], device["address"], "{which}");
            assert!(ping(&ctr, "10.146.0.1"), "{which}");
            results.push(normalise(r.clone()));
            let mut del = c.clone();
            del["prevResult"] = r;
            run(&host, &dir, "DEL", &at, &our_plugins(), &del).ok();
            assert_eq!(host.links(), host_links, "{which}");
        }
        assert_eq!(results[0], results[1], "{which}: ours vs Go");
    }
}

/// STATUS and GC reach IPAM: GC releases what the valid attachments no longer name.
#[test]
fn status_and_gc_are_forwarded_to_ipam() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let ctr = TestNetns::new();
    let name = format!("rcni-hd-{}", tag());
    let c = conf(&host, "1.1.0", &name, 147, &json!({"device": "hd0"}), true);
    let mut ipam_conf = c.clone();
    ipam_conf["type"] = json!("host-local");
    let path = our_plugins().display().to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "pod1"),
        ("CNI_NETNS", ctr.path().to_str().expect("utf-8")),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
    ];
    host.run(&our_plugins(), "host-local", &env, &ipam_conf)
        .ok();
    assert_eq!(host.reservations(&name).len(), 1);
    run(
        &host,
        &our_plugins(),
        "STATUS",
        &pod(&ctr, "eth0"),
        &our_plugins(),
        &c,
    )
    .ok();
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "other", "ifname": "eth0"}]);
    run(
        &host,
        &our_plugins(),
        "GC",
        &pod(&ctr, "eth0"),
        &our_plugins(),
        &gc,
    )
    .ok();
    assert!(host.reservations(&name).is_empty(), "GC released it");
}
