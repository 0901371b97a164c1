//! Bad input: the reference's error code, a message naming the problem, nothing created.

use std::path::Path;

use rcni_integration::{GO_PLUGINS, Host, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::json;

struct Case {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    stdin: String,
    /// Text the message must contain (ours).
    says: &'static str,
}

fn cases(host: &Host, netns: &Path, net: &str) -> Vec<Case> {
    let ipam = |ranges: serde_json::Value| {
        json!({"cniVersion": "0.4.0", "name": net, "type": "bridge", "bridge": "rcnier0",
               "ipam": {"type": "host-local", "dataDir": host.data_dir, "ranges": ranges}})
        .to_string()
    };
    let good = ipam(json!([[{"subnet": "10.120.20.0/24"}]]));
    let env = |extra: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut e = vec![
            ("CNI_COMMAND", "ADD".to_string()),
            ("CNI_CONTAINERID", "pod1".to_string()),
            ("CNI_NETNS", netns.display().to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
        ];
        for (k, v) in extra {
            e.retain(|(key, _)| key != k);
            if !v.is_empty() {
                e.push((k, (*v).to_string()));
            }
        }
        e
    };
    vec![
        Case {
            name: "invalid JSON",
            env: env(&[]),
            stdin: "{\"cniVersion\":".into(),
            says: "",
        },
        Case {
            name: "unknown cniVersion",
            env: env(&[]),
            stdin: good.replace("0.4.0", "7.7.7"),
            says: "incompatible CNI versions",
        },
        Case {
            name: "missing CNI_NETNS",
            env: env(&[("CNI_NETNS", "")]),
            stdin: good.clone(),
            says: "CNI_NETNS",
        },
        Case {
            name: "unknown CNI_ARGS key",
            env: env(&[("CNI_ARGS", "FOO=bar")]),
            stdin: good.clone(),
            says: "FOO",
        },
        Case {
            name: "malformed CNI_ARGS",
            env: env(&[("CNI_ARGS", "FOO")]),
            stdin: good.clone(),
            says: "FOO",
        },
        Case {
            name: "overlapping range sets",
            env: env(&[]),
            stdin: ipam(json!([[{"subnet": "10.120.20.0/24"}], [{"subnet": "10.120.20.128/25"}]])),
            says: "overlap",
        },
        // A gateway outside its subnet is accepted by the reference host-local (and by ours).
        Case {
            name: "vlan out of range",
            env: env(&[]),
            stdin: good.replace(
                "\"bridge\":\"rcnier0\"",
                "\"bridge\":\"rcnier0\",\"vlan\":5000",
            ),
            says: "VLAN",
        },
    ]
}

#[test]
fn bad_input_gets_the_reference_code_and_creates_nothing() {
    if !ready() {
        return;
    }
    let c1 = TestNetns::new();
    // The Go bridge gets its own pod: 1.1.1 leaves the container veth behind when IPAM fails.
    let c_go = TestNetns::new();
    let net = format!("rcni-err-{}", tag());
    let go_host = Host::new();
    let our_host = Host::new();
    let ours = our_plugins();
    for (ours_case, go_case) in
        cases(&our_host, c1.path(), &net)
            .into_iter()
            .zip(cases(&go_host, c_go.path(), &net))
    {
        let run = |host: &Host, dir: &Path, case: &Case| {
            let path = dir.display().to_string();
            let mut env: Vec<(&str, &str)> =
                case.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.push(("CNI_PATH", &path));
            host.run_raw(dir, "bridge", &env, case.stdin.as_bytes())
        };
        let mine = run(&our_host, &ours, &ours_case).err();
        let theirs = run(&go_host, Path::new(GO_PLUGINS), &go_case).err();
        assert_eq!(
            mine["code"], theirs["code"],
            "{}: ours {mine} vs Go {theirs}",
            ours_case.name
        );
        let msg = format!(
            "{} {}",
            mine["msg"].as_str().unwrap_or(""),
            mine["details"].as_str().unwrap_or("")
        );
        assert!(msg.contains(ours_case.says), "{}: {mine}", ours_case.name);

        // Nothing left behind: no bridge, no veth, no reservation, no rule.
        assert_eq!(our_host.links(), ["lo"], "{}", ours_case.name);
        assert_eq!(
            rcni_integration::links_in(&c1),
            ["lo"],
            "{}",
            ours_case.name
        );
        assert!(our_host.reservations(&net).is_empty(), "{}", ours_case.name);
        assert!(
            our_host.nat_rules().is_empty(),
            "{}: {:?}",
            ours_case.name,
            our_host.nat_rules()
        );
        // The Go bridge leaves its bridge behind on IPAM errors; clean its host for the next case.
        let _ = go_host.ns.exec(&["ip", "link", "del", "rcnier0"]);
    }
}
