//! loopback, compared with the reference.

use std::path::Path;

use rcni_integration::{GO_PLUGINS, Host, our_plugins, ready};
use rcni_testkit::TestNetns;
use serde_json::json;

fn run(
    host: &Host,
    dir: &Path,
    command: &str,
    netns: &str,
    version: &str,
) -> rcni_integration::Outcome {
    let path = dir.display().to_string();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "pod1"),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "lo"),
        ("CNI_PATH", &path),
    ];
    host.run(
        dir,
        "loopback",
        &env,
        &json!({"cniVersion": version, "name": "lo", "type": "loopback"}),
    )
}

#[test]
fn loopback_comes_up_and_goes_down() {
    if !ready() {
        return;
    }
    let host = Host::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let mut results = Vec::new();
        for dir in [our_plugins(), Path::new(GO_PLUGINS).to_path_buf()] {
            let c1 = TestNetns::new();
            let netns = c1.path().display().to_string();
            let mut r = run(&host, &dir, "ADD", &netns, version).ok();
            let link =
                String::from_utf8_lossy(&c1.exec(&["ip", "-j", "link", "show", "lo"]).stdout)
                    .into_owned();
            assert!(link.contains("\"UP\""), "{link}");
            assert!(rcni_integration::ping(&c1, "127.0.0.1"));
            if version != "0.3.1" {
                run(&host, &dir, "CHECK", &netns, version).ok();
            }
            run(&host, &dir, "DEL", &netns, version).ok();
            let link =
                String::from_utf8_lossy(&c1.exec(&["ip", "-j", "link", "show", "lo"]).stdout)
                    .into_owned();
            assert!(!link.contains("\"UP\""), "{link}");
            r["interfaces"][0]["sandbox"] = json!("<netns>");
            results.push(r);
        }
        // Go 1.1.1's loopback prints its 1.0.0-shaped result under any label: no
        // `ips[].version` at 0.x (which the spec requires and we print), and an empty
        // "dns" at 1.0.0 (which later Go versions and we omit).
        if version == "1.0.0" {
            results[1].as_object_mut().map(|o| o.remove("dns"));
        } else {
            for ip in results[0]["ips"].as_array_mut().into_iter().flatten() {
                assert!(
                    ip.as_object_mut()
                        .and_then(|o| o.remove("version"))
                        .is_some(),
                    "{ip}"
                );
            }
        }
        assert_eq!(results[0], results[1], "cniVersion {version}");
    }
    // DEL of a namespace that is gone succeeds.
    run(
        &host,
        &our_plugins(),
        "DEL",
        "/run/netns/rcni-t-gone",
        "1.0.0",
    )
    .ok();
}
