//! The verbs end to end, in process: env and stdin through the real dispatcher, state in a
//! temporary dataDir.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::HostLocal;
use crate::testdir::TestDir;

struct Outcome {
    status: i32,
    stdout: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).expect("JSON on stdout")
    }

    fn ok(self, what: &str) -> Outcome {
        assert_eq!(self.status, 0, "{what}: {}", self.stdout);
        self
    }

    /// The error document, checked to be a failure with `code`.
    fn err(self, what: &str, code: u64) -> String {
        assert_eq!(self.status, 1, "{what}: {}", self.stdout);
        let doc = self.json();
        assert_eq!(doc["code"], code, "{what}: {doc}");
        doc["msg"].as_str().unwrap_or_default().to_string()
    }
}

fn call(command: &str, id: &str, ifname: &str, args: &str, config: &Value) -> Outcome {
    let env: HashMap<&str, &str> = HashMap::from([
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", "/var/run/netns/unused"),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", args),
        ("CNI_PATH", "/opt/cni/bin"),
    ]);
    let stdin = serde_json::to_vec(config).expect("config");
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = rcni_skel::run_with(
        &HostLocal,
        &env,
        &mut stdin.as_slice(),
        &mut stdout,
        &mut stderr,
    );
    Outcome {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
    }
}

fn add(id: &str, config: &Value) -> Value {
    call("ADD", id, "eth0", "", config).ok(id).json()
}

fn addresses(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .map(|ip| ip["address"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Reservation files (name, content), without the lock and markers.
fn files(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(std::result::Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip."))
                .map(|n| {
                    let content = fs::read_to_string(dir.join(&n)).unwrap_or_default();
                    (n, content)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn config(tmp: &TestDir, version: &str, ipam: Value) -> Value {
    let mut ipam = ipam;
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(tmp.path());
    json!({"cniVersion": version, "name": "net1", "ipam": ipam})
}

#[test]
fn dual_stack_add_del_check() {
    let tmp = TestDir::new("verbs");
    let dir = tmp.path().join("net1");
    let conf = config(
        &tmp,
        "1.0.0",
        json!({
            "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        }),
    );
    let result = add("c1", &conf);
    assert_eq!(
        result,
        json!({
            "cniVersion": "1.0.0",
            "ips": [
                {"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
                {"address": "2001:db8::2/64", "gateway": "2001:db8::1"},
            ],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        })
    );
    assert_eq!(
        files(&dir),
        [
            ("10.1.0.2".into(), "c1\r\neth0".into()),
            ("2001:db8::2".into(), "c1\r\neth0".into()),
        ]
    );
    call("CHECK", "c1", "eth0", "", &conf).ok("check");
    let msg = call("ADD", "c1", "eth0", "", &conf).err("second ADD", 999);
    assert_eq!(
        msg,
        "failed to allocate for range 0: 10.1.0.2 has been allocated to c1, duplicate allocation is not allowed"
    );
    // Nothing was allocated before the failure, so nothing is released.
    assert_eq!(files(&dir).len(), 2);
    call("CHECK", "c1", "eth0", "", &conf).ok("check after the failed ADD");

    add("c2", &conf);
    call("DEL", "c1", "eth0", "", &conf).ok("del");
    let msg = call("CHECK", "c1", "eth0", "", &conf).err("check after del", 999);
    assert_eq!(
        msg,
        "host-local: Failed to find address added by container c1"
    );
    call("DEL", "c1", "eth0", "", &conf).ok("repeated del");
    assert_eq!(files(&dir).len(), 2, "only c2 left");
    let empty = TestDir::new("verbs-empty");
    call(
        "DEL",
        "c1",
        "eth0",
        "",
        &config(&empty, "1.0.0", json!({"subnet": "10.1.0.0/24"})),
    )
    .ok("del on an empty dataDir");
}

#[test]
fn requested_addresses_from_every_source() {
    let tmp = TestDir::new("requested");
    let dir = tmp.path().join("net1");
    let mut conf = config(
        &tmp,
        "0.4.0",
        json!({"ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]]}),
    );
    let r = call(
        "ADD",
        "c1",
        "eth0",
        "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.50",
        &conf,
    )
    .ok("CNI_ARGS");
    assert_eq!(addresses(&r.json()), ["10.1.0.50/24", "2001:db8::2/64"]);

    conf["args"] = json!({"cni": {"ips": ["2001:db8::99"]}});
    let r = add("c2", &conf);
    assert_eq!(addresses(&r), ["10.1.0.51/24", "2001:db8::99/64"]);

    // A requested address moves the set's marker too.
    conf["args"] = json!(null);
    conf["runtimeConfig"] = json!({"ips": ["10.1.0.7/24"]});
    let r = add("c3", &conf);
    assert_eq!(addresses(&r), ["10.1.0.7/24", "2001:db8::9a/64"]);

    // Requested outside every set: nothing is kept.
    let before = files(&dir);
    conf["args"] = json!({"cni": {"ips": ["10.9.9.9"]}});
    conf["runtimeConfig"] = json!({});
    let msg = call("ADD", "c4", "eth0", "", &conf).err("unfulfilled", 999);
    assert_eq!(msg, "failed to allocate all requested IPs: 10.9.9.9");
    assert_eq!(files(&dir), before);

    // Taken: the earlier set's address is released again.
    conf["args"] = json!({"cni": {"ips": ["2001:db8::99"]}});
    let msg = call("ADD", "c5", "eth0", "", &conf).err("taken", 999);
    assert_eq!(
        msg,
        "failed to allocate for range 1: requested IP address 2001:db8::99 is not available in range set 2001:db8::1-2001:db8::ffff:ffff:ffff:ffff"
    );
    assert_eq!(files(&dir), before);

    let msg = call("ADD", "c6", "eth0", "IP=10.1.0.1", &conf).err("gateway", 999);
    assert_eq!(
        msg,
        "failed to allocate for range 0: requested ip 10.1.0.1 is subnet's gateway"
    );
    let msg = call("ADD", "c6", "eth0", "IP=10.1.0.8;FOO=1", &conf).err("unknown arg", 999);
    assert!(msg.starts_with("ARGS: unknown args"), "{msg}");
}

#[test]
fn ip_ranges_capability_goes_first() {
    let tmp = TestDir::new("ipranges");
    let mut conf = config(&tmp, "0.3.1", json!({"subnet": "10.1.0.0/24"}));
    conf["runtimeConfig"] =
        json!({"ipRanges": [[{"subnet": "10.2.0.0/24", "rangeStart": "10.2.0.100"}]]});
    let r = add("c1", &conf);
    assert_eq!(
        r,
        json!({
            "cniVersion": "0.3.1",
            "ips": [
                {"version": "4", "address": "10.2.0.100/24", "gateway": "10.2.0.1"},
                {"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"},
            ],
            "dns": {},
        })
    );
    let dir = tmp.path().join("net1");
    assert_eq!(
        fs::read_to_string(dir.join("last_reserved_ip.0")).expect("0"),
        "10.2.0.100"
    );
    assert_eq!(
        fs::read_to_string(dir.join("last_reserved_ip.1")).expect("1"),
        "10.1.0.2"
    );
}

#[test]
fn status_reports_a_full_range_set() {
    let tmp = TestDir::new("status");
    let conf = config(
        &tmp,
        "1.1.0",
        json!({"ranges": [[{"subnet": "2001:db8::/64"}], [{"subnet": "10.1.0.0/29", "rangeEnd": "10.1.0.3"}]]}),
    );
    call("STATUS", "", "", "", &conf).ok("empty store");
    add("c1", &conf);
    call("STATUS", "", "", "", &conf).ok("one left");
    // A stray file for the gateway does not count as a used address.
    fs::write(tmp.path().join("net1/10.1.0.1"), "x").expect("gateway file");
    call("STATUS", "", "", "", &conf).ok("still one left");
    let msg = call("ADD", "c2", "eth0", "", &conf).ok("c2").json();
    assert_eq!(addresses(&msg)[1], "10.1.0.3/29");
    let msg = call("STATUS", "", "", "", &conf).err("full", 50);
    assert_eq!(
        msg,
        "no IP addresses available in range set 1: 10.1.0.1-10.1.0.3"
    );
    call("DEL", "c1", "eth0", "", &conf).ok("del");
    call("STATUS", "", "", "", &conf).ok("room again");
}

#[test]
fn gc_releases_what_is_not_valid() {
    let tmp = TestDir::new("gc");
    let dir = tmp.path().join("net1");
    let mut conf = config(&tmp, "1.1.0", json!({"subnet": "10.1.0.0/24"}));
    add("c1", &conf);
    add("c2", &conf);
    call("ADD", "c2", "eth1", "", &conf).ok("c2 eth1");
    add("c3", &conf);
    fs::write(dir.join("10.1.0.100"), "legacy-kept").expect("legacy");
    fs::write(dir.join("10.1.0.101"), "legacy-gone").expect("legacy");
    fs::write(dir.join("notes.txt"), "not a reservation").expect("other file");

    // Without the key nothing is known to be stale.
    call("GC", "", "", "", &conf).ok("gc without attachments");
    assert_eq!(files(&dir).len(), 7);

    conf["cni.dev/valid-attachments"] = json!([
        {"containerID": "c1", "ifname": "eth0"},
        {"containerID": "c2", "ifname": "eth1"},
        {"containerID": "legacy-kept", "ifname": "eth7"},
    ]);
    call("GC", "", "", "", &conf).ok("gc");
    assert_eq!(
        files(&dir),
        [
            ("10.1.0.100".into(), "legacy-kept".into()),
            ("10.1.0.2".into(), "c1\r\neth0".into()),
            ("10.1.0.4".into(), "c2\r\neth1".into()),
            ("notes.txt".into(), "not a reservation".into()),
        ]
    );
    assert!(dir.join("last_reserved_ip.0").exists());

    conf["cni.dev/valid-attachments"] = json!([]);
    call("GC", "", "", "", &conf).ok("gc everything");
    assert_eq!(
        files(&dir),
        [("notes.txt".into(), "not a reservation".into())]
    );
}

#[test]
fn results_in_every_version() {
    let tmp = TestDir::new("versions");
    let resolv = tmp.path().join("resolv.conf");
    fs::write(&resolv, "nameserver 10.0.0.53\nsearch example.com\n").expect("resolv.conf");
    let ipam = json!({
        "ranges": [[{"subnet": "10.1.0.0/24"}], [{"subnet": "2001:db8::/64"}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "2001:db8:9::/64", "gw": "2001:db8::9"}],
        "resolvConf": resolv,
    });
    let dns = json!({"nameservers": ["10.0.0.53"], "search": ["example.com"]});
    let cases = [
        (
            "0.2.0",
            json!({
                "cniVersion": "0.2.0",
                "ip4": {"ip": "10.1.0.2/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
                "ip6": {"ip": "2001:db8::2/64", "gateway": "2001:db8::1",
                        "routes": [{"dst": "2001:db8:9::/64", "gw": "2001:db8::9"}]},
                "dns": dns,
            }),
        ),
        (
            "0.4.0",
            json!({
                "cniVersion": "0.4.0",
                "ips": [
                    {"version": "4", "address": "10.1.0.3/24", "gateway": "10.1.0.1"},
                    {"version": "6", "address": "2001:db8::3/64", "gateway": "2001:db8::1"},
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "2001:db8:9::/64", "gw": "2001:db8::9"}],
                "dns": dns,
            }),
        ),
        (
            "1.1.0",
            json!({
                "cniVersion": "1.1.0",
                "ips": [
                    {"address": "10.1.0.4/24", "gateway": "10.1.0.1"},
                    {"address": "2001:db8::4/64", "gateway": "2001:db8::1"},
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "2001:db8:9::/64", "gw": "2001:db8::9"}],
                "dns": dns,
            }),
        ),
    ];
    for (version, want) in cases {
        let got = add(
            &format!("c-{version}"),
            &config(&tmp, version, ipam.clone()),
        );
        assert_eq!(got, want, "{version}");
    }
}
