//! bandwidth chained after bridge, in namespaces made by each test: the tbf on the host
//! veth and on the `bwp…` ifb (with the redirect), the ifb in the result, timed TCP
//! transfers both ways capped near the configured rate, the same qdiscs and result as the
//! Go bandwidth (Debian's 1.1.1), DEL (also without netns or prevResult), bad input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

/// 8 Mbit/s = 1 MB/s; bursts of 64 KiB.
const RATE: u64 = 8_000_000;
const BURST: u64 = 64 * 1024 * 8;

fn list(host: &Host, net: &str, bw: Value) -> Value {
    json!({"cniVersion": "1.0.0", "name": net, "plugins": [
        {"type": "bridge", "bridge": "rcnibw0", "isGateway": true,
         "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": "10.89.0.0/24"}},
        bw
    ]})
}

fn both_limits() -> Value {
    json!({"type": "bandwidth", "ingressRate": RATE, "ingressBurst": BURST,
           "egressRate": RATE, "egressBurst": BURST})
}

fn at(ns: &TestNetns) -> Attachment<'_> {
    Attachment {
        container_id: "bw-ctr",
        ifname: "eth0",
        netns: ns.path(),
    }
}

/// `tc -j qdisc show dev <dev>` as (kind, handle, rate bytes/s) of each non-default qdisc.
fn qdiscs(host: &Host, dev: &str) -> Vec<(String, String, u64)> {
    let out = host.sh(&["tc", "-j", "qdisc", "show", "dev", dev]);
    let doc: Value = serde_json::from_str(&out).expect("tc -j");
    doc.as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["kind"] != "noqueue" && q["kind"] != "pfifo_fast")
        .map(|q| {
            (
                q["kind"].as_str().unwrap_or_default().to_string(),
                q["handle"].as_str().unwrap_or_default().to_string(),
                q["options"]["rate"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// tc's own text for a device's qdiscs and filters, device names and kernel ids removed.
fn tc_text(host: &Host, dev: &str, ifb: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for what in [
        vec!["tc", "qdisc", "show", "dev", dev],
        vec!["tc", "filter", "show", "dev", dev, "ingress"],
    ] {
        lines.extend(
            host.sh(&what)
                .lines()
                .map(|l| l.replace(dev, "VETH").replace(ifb, "IFB"))
                .filter(|l| {
                    !l.contains("fh 800::800") && !l.contains("ref ") && !l.contains("index ")
                }),
        );
    }
    lines
}

fn host_veth(result: &Value) -> String {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| {
            i["sandbox"].is_null()
                && i["name"] != "rcnibw0"
                && !i["name"].as_str().unwrap_or_default().starts_with("bwp")
        })
        .and_then(|i| i["name"].as_str())
        .expect("host veth")
        .to_string()
}

/// Sends `bytes` over TCP from `from` to a listener at `to_addr` in `to`; the rate the
/// receiver measured, in bits/s.
fn transfer(from: &TestNetns, to: &TestNetns, to_addr: &str, bytes: usize) -> f64 {
    let addr: SocketAddr = format!("{to_addr}:9100").parse().expect("addr");
    let listener = to.run(|| TcpListener::bind(addr).expect("bind"));
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0usize;
        // Skip the first 256 KiB: the burst and the queue fill go faster than the rate.
        let mut start = None;
        let mut counted = 0usize;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
            if got > 256 * 1024 {
                start.get_or_insert_with(Instant::now);
                counted += n;
            }
        }
        let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        counted as f64 * 8.0 / secs.max(1e-6)
    });
    from.run(|| {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("connect");
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = 0;
        while sent < bytes {
            c.write_all(&chunk).expect("write");
            sent += chunk.len();
        }
    });
    server.join().expect("server")
}

#[test]
fn bandwidth_shapes_both_ways_and_del_removes_the_ifb() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let net = format!("rcni-bw-{}", tag());
    let c = Conflist::new(list(&host, &net, both_limits()));
    let result = c.add(&host, &at(&pod)).expect("ADD");
    let veth = host_veth(&result);
    let ifb = result["interfaces"]
        .as_array()
        .and_then(|a| a.last())
        .expect("ifb in result");
    let ifb_name = ifb["name"].as_str().expect("name").to_string();
    assert!(
        ifb_name.starts_with("bwp") && ifb_name.len() == 15,
        "{ifb_name}"
    );
    assert!(ifb["mac"].as_str().is_some_and(|m| m.len() == 17), "{ifb}");
    assert!(ifb["sandbox"].is_null());

    let v = qdiscs(&host, &veth);
    assert!(v.contains(&("tbf".into(), "1:".into(), RATE / 8)), "{v:?}");
    assert!(v.iter().any(|q| q.0 == "ingress"), "{v:?}");
    let link: Value =
        serde_json::from_str(&host.sh(&["ip", "-j", "link", "show", &ifb_name])).expect("ip -j");
    // `ip -j` leaves txqlen out when it is 0.
    assert!(link[0].get("txqlen").is_none_or(|q| q == 0), "{link}");
    let i = qdiscs(&host, &ifb_name);
    assert!(i.contains(&("tbf".into(), "1:".into(), RATE / 8)), "{i:?}");
    let filters = host.sh(&["tc", "filter", "show", "dev", &veth, "ingress"]);
    assert!(
        filters.contains(&format!("Redirect to device {ifb_name}")),
        "{filters}"
    );

    c.verb(&host, &at(&pod), "CHECK", Some(&result))
        .expect("CHECK");

    // Timed transfers, 3 MB each way (about 3 s at 1 MB/s).
    let egress = transfer(&pod, &host.ns, "10.89.0.1", 3 << 20);
    let ingress = transfer(&host.ns, &pod, "10.89.0.2", 3 << 20);
    let rate = RATE as f64;
    for (what, got) in [("egress", egress), ("ingress", ingress)] {
        assert!(
            got > rate * 0.6 && got < rate * 1.25,
            "{what}: {got:.0} bit/s for a {rate} bit/s limit"
        );
    }

    c.verb(&host, &at(&pod), "DEL", Some(&result)).expect("DEL");
    assert!(
        !host.links().iter().any(|l| l.starts_with("bwp")),
        "{:?}",
        host.links()
    );
}

#[test]
fn bandwidth_from_the_capability_with_only_egress() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let net = format!("rcni-bw-{}", tag());
    let mut c = Conflist::new(list(
        &host,
        &net,
        json!({"type": "bandwidth", "capabilities": {"bandwidth": true}}),
    ));
    c.capability_args = json!({"bandwidth": {"egressRate": RATE, "egressBurst": BURST}});
    let result = c.add(&host, &at(&pod)).expect("ADD");
    let veth = host_veth(&result);
    assert!(!qdiscs(&host, &veth).iter().any(|q| q.0 == "tbf"));
    assert!(host.links().iter().any(|l| l.starts_with("bwp")));
    c.verb(&host, &at(&pod), "CHECK", Some(&result))
        .expect("CHECK");
    c.verb(&host, &at(&pod), "DEL", Some(&result)).expect("DEL");
    assert!(!host.links().iter().any(|l| l.starts_with("bwp")));
}

#[test]
fn bandwidth_without_limits_passes_the_result_through() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let net = format!("rcni-bw-{}", tag());
    let bridge_only = Conflist::new(json!({"cniVersion": "1.0.0", "name": net,
        "plugins": [list(&host, &net, json!({}))["plugins"][0]]}));
    let prev = bridge_only.add(&host, &at(&pod)).expect("ADD");
    let out = host.run(
        &our_plugins(),
        "bandwidth",
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "bw-ctr"),
            ("CNI_NETNS", &pod.path().display().to_string()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", &our_plugins().display().to_string()),
        ],
        &json!({"cniVersion": "1.0.0", "name": net, "type": "bandwidth", "prevResult": prev}),
    );
    assert_eq!(out.ok(), prev);
}

#[test]
fn bandwidth_bad_input_names_the_key_and_changes_nothing_and_del_needs_nothing() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let pod = TestNetns::new();
    let net = format!("rcni-bw-{}", tag());
    let c = Conflist::new(list(
        &host,
        &net,
        json!({"type": "bandwidth", "ingressRate": RATE}),
    ));
    let err = c.add(&host, &at(&pod)).expect_err("rate without burst");
    let doc = err.err();
    assert_eq!(doc["code"], 7, "{doc}");
    assert!(
        doc["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("ingressRate"),
        "{doc}"
    );
    assert!(!host.links().iter().any(|l| l.starts_with("bwp")));
    for l in host.links() {
        assert!(
            !qdiscs(&host, &l)
                .iter()
                .any(|q| q.0 == "tbf" || q.0 == "ingress"),
            "{l}"
        );
    }

    // A real one, then DEL with neither netns nor prevResult removes the ifb.
    let good = Conflist::new(list(&host, &net, both_limits()));
    let other = TestNetns::new();
    let second = Attachment {
        container_id: "bw-ctr2",
        ifname: "eth0",
        netns: other.path(),
    };
    let _ = good.add(&host, &second).expect("ADD");
    assert!(host.links().iter().any(|l| l.starts_with("bwp")));
    let gone = Attachment {
        container_id: "bw-ctr2",
        ifname: "eth0",
        netns: Path::new("/var/run/netns/rcni-bw-gone"),
    };
    Conflist::new(json!({"cniVersion": "1.0.0", "name": net, "plugins": [both_limits()]}))
        .verb(&host, &gone, "DEL", None)
        .expect("DEL without netns or prevResult");
    assert!(!host.links().iter().any(|l| l.starts_with("bwp")));
}

/// (ifb name, interfaces in the result, veth tc text, ifb qdiscs, ifb has the veth MTU).
type Seen = (String, Option<usize>, Vec<String>, String, bool);

#[test]
fn bandwidth_matches_the_go_plugin() {
    if !ready() || !Path::new(GO_PLUGINS).join("bandwidth").is_file() {
        return;
    }
    let net = format!("rcni-bw-{}", tag());
    let seen = |dir: &Path| {
        let host = Host::new();
        let pod = TestNetns::new();
        let c = Conflist::new(list(&host, &net, both_limits())).with_dir("bandwidth", dir);
        let result = c.add(&host, &at(&pod)).expect("ADD");
        let veth = host_veth(&result);
        let ifb = result["interfaces"][3]["name"]
            .as_str()
            .expect("ifb")
            .to_string();
        let state = (
            ifb.clone(),
            result["interfaces"].as_array().map(Vec::len),
            tc_text(&host, &veth, &ifb),
            host.sh(&["tc", "qdisc", "show", "dev", &ifb])
                .replace(&ifb, "IFB"),
            host.sh(&["ip", "-j", "link", "show", &ifb])
                .contains(&format!("\"mtu\":{}", 1500)),
        );
        c.verb(&host, &at(&pod), "DEL", Some(&result)).expect("DEL");
        assert!(!host.links().iter().any(|l| l.starts_with("bwp")));
        state
    };
    // The Go filter has a second, unreachable "action order 2: mirred ... pass" (its
    // netlink library adds the RedirIndex action after the listed one); drop it.
    let strip = |mut s: Seen| {
        if let Some(i) = s.2.iter().position(|l| l.contains("action order 2")) {
            s.2.truncate(i);
        }
        while s.2.last().is_some_and(|l| l.trim().is_empty()) {
            s.2.pop();
        }
        s
    };
    let ours = strip(seen(&our_plugins()));
    let go = strip(seen(Path::new(GO_PLUGINS)));
    assert_eq!(ours, go);
}
