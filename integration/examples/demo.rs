//! The demo: two pods on one bridge through a real conflist, as a runtime would run it.
//!
//! Everything happens in throwaway network namespaces: one stands in for the node (the
//! bridge, the gateway address and the masquerade rules live there), one per pod. So the
//! machine's own interfaces, routes, sysctls and firewall are never touched.

use rcni_integration::{Attachment, Conflist, Host, addrs_in, links_in, ping, routes_in};
use rcni_testkit::TestNetns;
use serde_json::json;

fn main() {
    if !rcni_integration::ready() {
        eprintln!("the demo needs root: it creates network namespaces");
        std::process::exit(1);
    }
    let node = Host::new();
    let pods = [TestNetns::new(), TestNetns::new()];
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "rcni-demo",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "rcni0",
                "isGateway": true,
                "ipMasq": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": node.data_dir,
                    "ranges": [[{"subnet": "10.120.200.0/24"}], [{"subnet": "fd12:3456:200::/64"}]],
                    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
                }
            }
        ]
    });
    println!(
        "== conflist (plugins from {})\n{}",
        rcni_integration::our_plugins().display(),
        pretty(&conflist)
    );
    println!(
        "== node namespace {}; pods {} and {}",
        node.ns.name(),
        pods[0].name(),
        pods[1].name()
    );
    let list = Conflist::new(conflist);

    let mut results = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let cid = format!("demo-pod-{i}");
        let at = Attachment {
            container_id: &cid,
            ifname: "eth0",
            netns: pod.path(),
        };
        let result = list
            .add(&node, &at)
            .unwrap_or_else(|o| fail(&format!("ADD {cid}"), &o));
        println!("\n== ADD {cid}: result\n{}", pretty(&result));
        println!("   eth0 in the pod: {:?}", addrs_in(pod, "eth0"));
        println!("   routes in the pod: {:?}", routes_in(pod, "-4"));
        results.push((cid, result));
    }

    let addr = |r: &serde_json::Value, i: usize| {
        r["ips"][i]["address"]
            .as_str()
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let checks = [
        ("pod 0 -> pod 1 (IPv4)", &pods[0], addr(&results[1].1, 0)),
        ("pod 1 -> pod 0 (IPv4)", &pods[1], addr(&results[0].1, 0)),
        ("pod 0 -> pod 1 (IPv6)", &pods[0], addr(&results[1].1, 1)),
        (
            "pod 0 -> node gateway",
            &pods[0],
            "10.120.200.1".to_string(),
        ),
        (
            "pod 1 -> node gateway",
            &pods[1],
            "10.120.200.1".to_string(),
        ),
    ];
    println!();
    let mut all_ok = true;
    for (what, from, to) in checks {
        let ok = ping(from, &to);
        all_ok &= ok;
        println!("ping {what} {to}: {}", if ok { "ok" } else { "FAILED" });
    }
    println!(
        "\n== masquerade rules on the node\n{}",
        node.nat_rules().join("\n")
    );

    for ((cid, result), pod) in results.iter().zip(&pods) {
        let at = Attachment {
            container_id: cid,
            ifname: "eth0",
            netns: pod.path(),
        };
        list.verb(&node, &at, "DEL", Some(result))
            .unwrap_or_else(|o| fail(&format!("DEL {cid}"), &o));
    }
    let leftovers = [
        (
            "veths on the node",
            node.links()
                .into_iter()
                .filter(|l| l.starts_with("veth"))
                .collect::<Vec<_>>(),
        ),
        (
            "links in pod 0",
            links_in(&pods[0])
                .into_iter()
                .filter(|l| l != "lo")
                .collect(),
        ),
        ("IP reservations", node.reservations("rcni-demo")),
        ("masquerade rules", node.nat_rules()),
    ];
    println!("\n== after DEL");
    for (what, left) in &leftovers {
        println!(
            "{what}: {}",
            if left.is_empty() {
                "none".to_string()
            } else {
                format!("{left:?}")
            }
        );
        all_ok &= left.is_empty();
    }
    if !all_ok {
        eprintln!("\ndemo FAILED");
        std::process::exit(1);
    }
    println!(
        "\ndemo ok: both pods were attached, talked to each other and the node, and left nothing behind"
    );
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn fail(what: &str, o: &rcni_integration::Outcome) -> ! {
    eprintln!("{what} failed: {} {}", o.stdout, o.stderr);
    std::process::exit(1);
}
