//! Mixed bundles: our plugins and the Go reference plugins (Debian's, in /usr/lib/cni)
//! in one conflist and on one dataDir, cleaning up after each other.

use std::path::Path;

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, ping, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

fn conflist(host: &Host, net: &str, subnet: &str) -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": net,
        "plugins": [{
            "type": "bridge", "bridge": "rcniio0", "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": subnet}
        }]
    })
}

fn go() -> &'static Path {
    Path::new(GO_PLUGINS)
}

#[test]
fn our_bridge_with_go_host_local_and_the_other_way_round() {
    if !ready() {
        return;
    }
    let ours = rcni_integration::our_plugins();
    for (bridge_dir, ipam_dir, label) in [
        (ours.as_path(), go(), "our bridge + Go host-local"),
        (go(), ours.as_path(), "Go bridge + our host-local"),
    ] {
        let host = Host::new();
        let c1 = TestNetns::new();
        let net = format!("rcni-io-{}", tag());
        let list = Conflist::new(conflist(&host, &net, "10.120.10.0/24"))
            .with_dir("bridge", bridge_dir)
            .with_cni_path(ipam_dir);
        let at = Attachment {
            container_id: "pod1",
            ifname: "eth0",
            netns: c1.path(),
        };
        let r = list
            .add(&host, &at)
            .unwrap_or_else(|o| panic!("{label}: ADD {o:?}"));
        assert_eq!(r["ips"][0]["address"], "10.120.10.2/24", "{label}: {r}");
        assert!(ping(&c1, "10.120.10.1"), "{label}: pod -> gateway");
        assert_eq!(host.reservations(&net), ["10.120.10.2"], "{label}");
        list.verb(&host, &at, "DEL", Some(&r))
            .unwrap_or_else(|o| panic!("{label}: DEL {o:?}"));
        assert!(host.reservations(&net).is_empty(), "{label}");
        assert!(
            !host.nat_rules().iter().any(|l| l.contains("10.120.10.")),
            "{label}: {:?}",
            host.nat_rules()
        );
    }
}

#[test]
fn go_and_rcni_share_a_data_dir_and_release_each_others_attachments() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let (c1, c2) = (TestNetns::new(), TestNetns::new());
    let net = format!("rcni-io-{}", tag());
    let ours = Conflist::new(conflist(&host, &net, "10.120.11.0/24"));
    let theirs = Conflist::new(conflist(&host, &net, "10.120.11.0/24"));
    let theirs = Conflist {
        default_dir: go().to_path_buf(),
        ..theirs
    };
    let a1 = Attachment {
        container_id: "gopod",
        ifname: "eth0",
        netns: c1.path(),
    };
    let a2 = Attachment {
        container_id: "rspod",
        ifname: "eth0",
        netns: c2.path(),
    };

    let r1 = theirs.add(&host, &a1).expect("Go ADD");
    let r2 = ours.add(&host, &a2).expect("our ADD");
    assert_eq!(r1["ips"][0]["address"], "10.120.11.2/24");
    assert_eq!(
        r2["ips"][0]["address"], "10.120.11.3/24",
        "round robin continues from Go's marker"
    );
    let content =
        std::fs::read(host.data_dir.join(&net).join("10.120.11.3")).expect("our reservation");
    assert_eq!(
        content, b"rspod\r\neth0",
        "byte-identical reservation format"
    );
    assert!(
        ping(&c1, "10.120.11.3") && ping(&c2, "10.120.11.2"),
        "Go pod <-> rcni pod"
    );

    // Each side removes the other's attachment: veth, reservation, masquerade chain.
    ours.verb(&host, &a1, "DEL", Some(&r1))
        .expect("our DEL of Go's pod");
    theirs
        .verb(&host, &a2, "DEL", Some(&r2))
        .expect("Go DEL of our pod");
    assert!(
        host.reservations(&net).is_empty(),
        "{:?}",
        host.reservations(&net)
    );
    assert!(
        !host
            .nat_rules()
            .iter()
            .any(|l| l.contains("10.120.11.") || l.starts_with(":CNI-")),
        "{:?}",
        host.nat_rules()
    );
    assert!(
        !host.links().iter().any(|l| l.starts_with("veth")),
        "{:?}",
        host.links()
    );
}
