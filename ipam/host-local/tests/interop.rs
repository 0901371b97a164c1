//! Our host-local against the Go one (Debian containernetworking-plugins, in /usr/lib/cni):
//! both binaries run as a runtime runs them (env + stdin), no root needed since host-local
//! touches only its dataDir.
//!
//! - Shared store: Go and ours allocate from one dataDir, continue each other's round
//!   robin, and release each other's reservations.
//! - Differential: the same config and sequence against two dataDirs gives the same
//!   output and the same files, in every version Go supports, and the same error codes.
//!
//! Without the Go binary the tests print SKIP; `RCNI_REQUIRE_GO=1` makes that a failure.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcni_testkit::{PluginOutput, run_plugin};
use serde_json::{Value, json};

const GO: &str = "/usr/lib/cni/host-local";
const OURS: &str = env!("CARGO_BIN_EXE_host-local");

/// Versions the Go 1.1.x host-local supports (its VERSION answer stops at 1.0.0).
const GO_VERSIONS: &[&str] = &["0.2.0", "0.3.1", "0.4.0", "1.0.0"];

fn go_available() -> bool {
    if Path::new(GO).exists() {
        return true;
    }
    assert!(
        std::env::var_os("RCNI_REQUIRE_GO").is_none(),
        "{GO} is missing and RCNI_REQUIRE_GO is set"
    );
    eprintln!("SKIP: {GO} not installed (Debian package containernetworking-plugins)");
    false
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "rcni-host-local-interop-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// One invocation: verb, attachment and CNI_ARGS; the config goes on stdin as given.
struct Call<'a> {
    command: &'a str,
    id: &'a str,
    ifname: &'a str,
    args: &'a str,
}

fn call<'a>(command: &'a str, id: &'a str) -> Call<'a> {
    Call {
        command,
        id,
        ifname: "eth0",
        args: "",
    }
}

fn run(bin: &str, c: &Call, stdin: &[u8]) -> PluginOutput {
    let env = [
        ("CNI_COMMAND", c.command),
        ("CNI_CONTAINERID", c.id),
        ("CNI_NETNS", "/var/run/netns/rcni-unused"),
        ("CNI_IFNAME", c.ifname),
        ("CNI_ARGS", c.args),
        ("CNI_PATH", "/usr/lib/cni"),
    ];
    run_plugin(bin, &env, stdin)
}

fn run_json(bin: &str, c: &Call, config: &Value) -> PluginOutput {
    run(bin, c, &serde_json::to_vec(config).expect("config"))
}

/// Every file of a network's store: name -> bytes.
fn store(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, fs::read(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

fn ipam(data_dir: &Path, version: &str, ipam: &Value) -> Value {
    let mut ipam = ipam.clone();
    ipam["type"] = json!("host-local");
    ipam["dataDir"] = json!(data_dir);
    json!({"cniVersion": version, "name": "interop", "type": "bridge", "ipam": ipam})
}

#[test]
fn go_and_ours_share_one_data_dir() {
    if !go_available() {
        return;
    }
    let tmp = TempDir::new("shared");
    let dir = tmp.path().join("interop");
    let conf = ipam(
        tmp.path(),
        "1.0.0",
        &json!({"ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/120"}]]}),
    );
    let addrs = |o: &PluginOutput| -> Vec<String> {
        o.json()["ips"]
            .as_array()
            .expect("ips")
            .iter()
            .map(|ip| ip["address"].as_str().unwrap_or_default().to_string())
            .collect()
    };

    // 1. Go allocates, ours continues its round robin, and Go continues ours.
    let go1 = run_json(GO, &call("ADD", "go-1"), &conf).ok("Go ADD");
    assert_eq!(addrs(&go1), ["10.77.0.2/24", "fd77::2/120"]);
    let ours = run_json(OURS, &call("ADD", "ours-1"), &conf).ok("our ADD");
    assert_eq!(addrs(&ours), ["10.77.0.3/24", "fd77::3/120"]);
    let go2 = run_json(GO, &call("ADD", "go-2"), &conf).ok("Go ADD after ours");
    assert_eq!(addrs(&go2), ["10.77.0.4/24", "fd77::4/120"]);

    // 2. The files: one format, whoever wrote them.
    let files = store(&dir);
    for (name, id) in [
        ("10.77.0.2", "go-1"),
        ("fd77::2", "go-1"),
        ("10.77.0.3", "ours-1"),
        ("fd77::3", "ours-1"),
        ("10.77.0.4", "go-2"),
    ] {
        assert_eq!(
            files.get(name).map(Vec::as_slice),
            Some(format!("{id}\r\neth0").as_bytes()),
            "{name}"
        );
    }
    assert_eq!(
        files.get("last_reserved_ip.0").map(Vec::as_slice),
        Some(&b"10.77.0.4"[..])
    );
    assert_eq!(
        files.get("last_reserved_ip.1").map(Vec::as_slice),
        Some(&b"fd77::4"[..])
    );
    assert_eq!(files.get("lock").map(Vec::as_slice), Some(&b""[..]));

    // 3. Each sees the other's reservations: CHECK, and the duplicate ADD check.
    run_json(OURS, &call("CHECK", "go-1"), &conf).ok("our CHECK of Go's");
    run_json(GO, &call("CHECK", "ours-1"), &conf).ok("Go CHECK of ours");
    let ours_dup = run_json(OURS, &call("ADD", "go-1"), &conf);
    let go_dup = run_json(GO, &call("ADD", "ours-1"), &conf);
    assert_eq!(ours_dup.code(), Some(999));
    assert_eq!(
        ours_dup.msg(),
        "failed to allocate for range 0: 10.77.0.2 has been allocated to go-1, duplicate allocation is not allowed"
    );
    assert_eq!(go_dup.code(), Some(999));
    assert_eq!(
        go_dup.msg(),
        "failed to allocate for range 0: 10.77.0.3 has been allocated to ours-1, duplicate allocation is not allowed"
    );

    // 4. Ours releases Go's reservation and Go releases ours, then at once hands those
    // addresses to another container: our index of owners (<dataDir>/.rcni-index) still
    // names ours-1 for them, and must not be believed.
    run_json(OURS, &call("DEL", "go-1"), &conf).ok("our DEL of Go's");
    run_json(GO, &call("DEL", "ours-1"), &conf).ok("Go DEL of ours");
    let mut reuse = conf.clone();
    reuse["args"] = json!({"cni": {"ips": ["10.77.0.3", "fd77::3"]}});
    let go3 = run_json(GO, &call("ADD", "go-3"), &reuse).ok("Go ADD of the freed addresses");
    assert_eq!(addrs(&go3), ["10.77.0.3/24", "fd77::3/120"]);
    let dup = run_json(OURS, &call("ADD", "go-3"), &conf);
    assert_eq!(
        dup.msg(),
        "failed to allocate for range 0: 10.77.0.3 has been allocated to go-3, duplicate allocation is not allowed"
    );
    for gone in ["go-1", "ours-1"] {
        let msg = run_json(OURS, &call("CHECK", gone), &conf).msg();
        assert_eq!(
            msg,
            format!("host-local: Failed to find address added by container {gone}")
        );
    }
    let files = store(&dir);
    assert!(!files.contains_key("10.77.0.2") && !files.contains_key("fd77::2"));
    assert!(files.contains_key("10.77.0.4"));
    run_json(OURS, &call("DEL", "go-3"), &conf).ok("our DEL of the new owner");
    let files = store(&dir);
    assert!(!files.contains_key("10.77.0.3") && !files.contains_key("fd77::3"));

    // 5. The legacy single-line format, released by either.
    fs::write(dir.join("10.77.0.50"), "legacy-1").expect("legacy file");
    fs::write(dir.join("10.77.0.51"), "legacy-2\n").expect("legacy file");
    run_json(OURS, &call("DEL", "legacy-1"), &conf).ok("our DEL of a legacy file");
    run_json(GO, &call("DEL", "legacy-2"), &conf).ok("Go DEL of a legacy file");
    let files = store(&dir);
    assert!(!files.contains_key("10.77.0.50") && !files.contains_key("10.77.0.51"));

    // 6. Both DEL the rest; the store holds only the lock and the markers.
    run_json(OURS, &call("DEL", "go-2"), &conf).ok("our DEL");
    run_json(GO, &call("DEL", "go-2"), &conf).ok("Go repeated DEL");
    let names: Vec<String> = store(&dir).into_keys().collect();
    assert_eq!(names, ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
    // Nothing reserved, nothing indexed: an empty index beside the store.
    let index = store(&tmp.path().join(".rcni-index"));
    assert!(index.is_empty(), "{:?}", index.keys());
}

/// Runs one step on both binaries, each with its own dataDir, and checks they agree.
struct Differential {
    go: TempDir,
    ours: TempDir,
    version: String,
    ipam: Value,
}

impl Differential {
    fn new(name: &str, version: &str, ipam: Value) -> Differential {
        Differential {
            go: TempDir::new(&format!("{name}-go")),
            ours: TempDir::new(&format!("{name}-ours")),
            version: version.to_string(),
            ipam,
        }
    }

    fn step(&self, c: &Call, extra: &Value) -> (PluginOutput, PluginOutput) {
        let conf = |dir: &Path| {
            let mut conf = ipam(dir, &self.version, &self.ipam);
            if let (Some(conf), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
                conf.extend(extra.clone());
            }
            conf
        };
        let go = run_json(GO, c, &conf(self.go.path()));
        let ours = run_json(OURS, c, &conf(self.ours.path()));
        let what = format!("{} {} {} at {}", c.command, c.id, c.args, self.version);
        assert_eq!(
            ours.status, go.status,
            "{what}: ours {} / Go {}",
            ours.stdout, go.stdout
        );
        if go.status == 0 {
            assert_same_result(&self.version, &ours, &go, &what);
        } else {
            assert_eq!(
                ours.code(),
                go.code(),
                "{what}: ours {} / Go {}",
                ours.stdout,
                go.stdout
            );
            assert_eq!(ours.msg(), go.msg(), "{what}");
        }
        assert_eq!(
            store(&self.ours.path().join("interop")),
            store(&self.go.path().join("interop")),
            "{what}: the stores differ"
        );
        (ours, go)
    }

    /// Puts the same file into both stores (as an older host-local would have left it).
    fn write(&self, name: &str, content: &str) {
        for dir in [self.go.path(), self.ours.path()] {
            let net = dir.join("interop");
            fs::create_dir_all(&net).expect("store dir");
            fs::write(net.join(name), content).expect("store file");
        }
    }
}

/// 0.x results are byte-identical. For 1.0.0 the Go 1.1 library prints the struct in field
/// order with `"dns":{}` always; newer Go (and we) sort the keys and omit an empty `dns`.
fn assert_same_result(version: &str, ours: &PluginOutput, go: &PluginOutput, what: &str) {
    if version.starts_with("0.") || go.stdout.is_empty() {
        assert_eq!(ours.stdout, go.stdout, "{what}");
        return;
    }
    let normalise = |o: &PluginOutput| {
        let mut v = o.json();
        if let Some(map) = v.as_object_mut()
            && map.get("dns") == Some(&json!({}))
        {
            map.remove("dns");
        }
        v
    };
    assert_eq!(normalise(ours), normalise(go), "{what}");
}

#[test]
fn same_sequence_same_results_in_every_version() {
    if !go_available() {
        return;
    }
    let resolv = TempDir::new("resolv");
    let resolv_conf = resolv.path().join("resolv.conf");
    fs::write(
        &resolv_conf,
        "# test\nnameserver 10.53.0.1\nnameserver fd53::1\ndomain example.org\nsearch a.example b.example\noptions ndots:2\n",
    )
    .expect("resolv.conf");
    for version in GO_VERSIONS {
        let d = Differential::new(
            "seq",
            version,
            json!({
                "ranges": [
                    [{"subnet": "10.88.0.0/29"}, {"subnet": "10.88.1.0/24", "rangeStart": "10.88.1.10", "rangeEnd": "10.88.1.11", "gateway": "10.88.1.254"}],
                    [{"subnet": "fd88::/64", "rangeStart": "fd88::fffe", "rangeEnd": "fd88::1:9"}],
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd99::/64", "gw": "fd88::9"}, {"dst": "192.168.7.0/24", "gw": "10.88.0.9"}],
                "resolvConf": resolv_conf,
            }),
        );
        let none = json!({});
        // Round robin across the two v4 ranges and through the v6 one, then wrap.
        for id in ["a", "b", "c", "d", "e", "f", "g"] {
            d.step(&call("ADD", id), &none);
        }
        let (full, _) = d.step(&call("ADD", "h"), &none); // 10.88.0.2-.6 and .10-.11 taken
        assert_eq!(
            full.msg(),
            "failed to allocate for range 0: no IP addresses available in range set: 10.88.0.1-10.88.0.6,10.88.1.10-10.88.1.11"
        );
        d.step(&call("DEL", "b"), &none);
        d.step(&call("DEL", "d"), &none);
        let (wrapped, _) = d.step(&call("ADD", "i"), &none);
        assert!(
            wrapped.stdout.contains("10.88.0.3/29"),
            "{}",
            wrapped.stdout
        );
        d.step(&call("ADD", "a"), &none); // duplicate
        d.step(&call("DEL", "a"), &none);
        let ip_arg = Call {
            args: "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.88.0.2",
            ..call("ADD", "j")
        };
        d.step(&ip_arg, &none); // requested and free (freed with a)
        let taken = Call {
            args: "IP=10.88.1.10",
            ..call("ADD", "k")
        };
        d.step(&taken, &none);
        let gateway = Call {
            args: "IP=10.88.0.1",
            ..call("ADD", "k")
        };
        d.step(&gateway, &none);
        let (unfulfilled, _) = d.step(
            &call("ADD", "k"),
            &json!({"args": {"cni": {"ips": ["10.99.0.1"]}}}),
        );
        assert_eq!(
            unfulfilled.msg(),
            "failed to allocate all requested IPs: 10.99.0.1"
        );
        d.step(&call("DEL", "c"), &none);
        d.step(
            &call("ADD", "k"),
            &json!({"runtimeConfig": {"ips": ["fd88::1:0/64"]}}),
        );
        let second_if = Call {
            ifname: "net1",
            ..call("ADD", "k")
        };
        d.step(&second_if, &none);
        d.step(&call("DEL", "nobody"), &none);
        if version != &"0.2.0" && version != &"0.3.1" {
            d.step(&call("CHECK", "k"), &none);
            d.step(&call("CHECK", "gone"), &none);
        }
    }
}

#[test]
fn partial_failure_releases_earlier_sets() {
    if !go_available() {
        return;
    }
    let d = Differential::new(
        "partial",
        "0.4.0",
        json!({"ranges": [
            [{"subnet": "10.44.0.0/24"}],
            [{"subnet": "fd44::/120", "rangeStart": "fd44::10", "rangeEnd": "fd44::11"}],
        ]}),
    );
    let none = json!({});
    d.step(&call("ADD", "a"), &none);
    d.step(&call("ADD", "b"), &none);
    let (failed, _) = d.step(&call("ADD", "c"), &none);
    assert_eq!(
        failed.msg(),
        "failed to allocate for range 1: no IP addresses available in range set: fd44::10-fd44::11"
    );
    d.step(&call("DEL", "a"), &none);
    d.step(&call("ADD", "c"), &none);
}

#[test]
fn legacy_reservations_are_released_like_go() {
    if !go_available() {
        return;
    }
    let v4 = json!([{"subnet": "10.22.0.0/24"}]);
    let v6 = json!([{"subnet": "fd22::/120"}]);
    for (name, ranges) in [("one set", json!([v4])), ("two sets", json!([v4, v6]))] {
        let d = Differential::new("legacy-files", "0.4.0", json!({ "ranges": ranges }));
        let none = json!({});
        d.step(&call("ADD", "a"), &none);
        d.write("10.22.0.100", "a");
        d.write("10.22.0.101", "a\n");
        d.write("10.22.0.102", "b");
        // One set: (a, eth0) matched, so Go keeps the legacy files; two sets: they go.
        d.step(&call("DEL", "a"), &none);
        d.step(&call("CHECK", "a"), &none);
        d.step(&call("DEL", "a"), &none);
        d.step(&call("CHECK", "b"), &none);
        let (dup, _) = d.step(&call("ADD", "b"), &none);
        assert!(
            dup.msg().contains("10.22.0.102 has been allocated to b"),
            "{name}: {}",
            dup.stdout
        );
    }
}

#[test]
fn ip_ranges_capability_and_legacy_keys_agree() {
    if !go_available() {
        return;
    }
    for version in ["0.3.1", "1.0.0"] {
        let d = Differential::new(
            "legacy",
            version,
            json!({
                "subnet": "10.66.0.0/16",
                "rangeStart": "10.66.3.250",
                "rangeEnd": "10.66.4.2",
                "gateway": "10.66.0.254",
                "ranges": [[{"subnet": "fd66::/112"}]],
            }),
        );
        let caps = json!({"runtimeConfig": {"ipRanges": [[{"subnet": "10.67.0.0/30"}]]}});
        for id in ["a", "b", "c"] {
            d.step(&call("ADD", id), &caps);
        }
        d.step(&call("DEL", "b"), &caps);
        d.step(&call("ADD", "d"), &caps);
    }
}

#[test]
fn same_error_codes_for_bad_input() {
    if !go_available() {
        return;
    }
    let tmp = TempDir::new("errors");
    let good = ipam(tmp.path(), "0.4.0", &json!({"subnet": "10.55.0.0/24"}));
    let with_ipam = |version: &str, ipam_section: Value| ipam(tmp.path(), version, &ipam_section);
    let r = |subnet: &str| json!([{"subnet": subnet}]);
    struct Case<'a> {
        name: &'a str,
        stdin: Vec<u8>,
        call: Call<'a>,
        /// Go's message is ours too (otherwise only the code must agree).
        same_msg: bool,
    }
    let js = |v: &Value| serde_json::to_vec(v).expect("config");
    let cases = vec![
        Case {
            name: "overlapping range sets",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"ranges": [r("10.55.0.0/24"), r("10.55.0.0/16")]}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "overlapping ranges in a set",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"ranges": [[{"subnet": "10.55.0.0/24"}, {"subnet": "10.55.0.128/25"}]]}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "gateway outside the subnet is accepted by both",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": "10.56.0.0/24", "gateway": "10.57.0.1"}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "invalid JSON",
            stdin: b"{\"cniVersion\":\"0.4.0\",\"name\":\"n\",\"ipam\":{".to_vec(),
            call: call("ADD", "c1"),
            same_msg: false,
        },
        Case {
            name: "unknown CNI_ARGS",
            stdin: js(&good),
            call: Call {
                args: "FOO=bar",
                ..call("ADD", "c2")
            },
            same_msg: false,
        },
        Case {
            name: "malformed CNI_ARGS",
            stdin: js(&good),
            call: Call {
                args: "IP",
                ..call("ADD", "c2")
            },
            same_msg: true,
        },
        Case {
            name: "bad IP in CNI_ARGS",
            stdin: js(&good),
            call: Call {
                args: "IP=10.55.0.300",
                ..call("ADD", "c2")
            },
            same_msg: true,
        },
        Case {
            name: "bad IgnoreUnknown",
            stdin: js(&good),
            call: Call {
                args: "IgnoreUnknown=yes",
                ..call("ADD", "c2")
            },
            same_msg: false,
        },
        Case {
            name: "bad CNI_ARGS on DEL too",
            stdin: js(&good),
            call: Call {
                args: "FOO=bar",
                ..call("DEL", "c2")
            },
            same_msg: false,
        },
        Case {
            name: "host bits in subnet",
            stdin: js(&with_ipam("0.4.0", json!({"subnet": "10.55.0.9/24"}))),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "subnet too small",
            stdin: js(&with_ipam("0.4.0", json!({"ranges": [r("10.58.0.0/32")]}))),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "rangeStart outside",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": "10.55.0.0/24", "rangeStart": "10.56.0.1"}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "rangeEnd before rangeStart",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": "10.55.0.0/24", "rangeStart": "10.55.0.9", "rangeEnd": "10.55.0.3"}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "mixed families in a set",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"ranges": [[{"subnet": "10.55.0.0/24"}, {"subnet": "fd55::/64"}]]}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "two v4 sets at 0.2.0",
            stdin: js(&with_ipam(
                "0.2.0",
                json!({"ranges": [r("10.55.0.0/24"), r("10.59.0.0/24")]}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "empty range set",
            stdin: js(&with_ipam("0.4.0", json!({"ranges": [[]]}))),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "no ranges",
            stdin: js(&with_ipam("0.4.0", json!({}))),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "no ipam",
            stdin: js(&json!({"cniVersion": "0.4.0", "name": "n"})),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "bad subnet",
            stdin: js(&with_ipam("0.4.0", json!({"subnet": "10.55.0.0/33"}))),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "null subnet",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": null, "ranges": [r("10.55.0.0/24")]}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "bad gateway",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": "10.55.0.0/24", "gateway": "nope"}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "ranges of the wrong type",
            stdin: js(&with_ipam("0.4.0", json!({"ranges": "10.55.0.0/24"}))),
            call: call("ADD", "c1"),
            same_msg: false,
        },
        Case {
            name: "requested gateway",
            stdin: js(&good),
            call: Call {
                args: "IP=10.55.0.1",
                ..call("ADD", "c3")
            },
            same_msg: true,
        },
        Case {
            name: "unreadable resolvConf",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": "10.60.0.0/24", "resolvConf": "/nonexistent/resolv.conf"}),
            )),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "unsupported version",
            stdin: js(&with_ipam("9.9.9", json!({"subnet": "10.55.0.0/24"}))),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "CHECK before 0.4.0",
            stdin: js(&with_ipam("0.3.1", json!({"subnet": "10.55.0.0/24"}))),
            call: call("CHECK", "c1"),
            same_msg: true,
        },
        Case {
            name: "missing network name",
            stdin: js(&json!({"cniVersion": "0.4.0", "ipam": {"subnet": "10.55.0.0/24"}})),
            call: call("ADD", "c1"),
            same_msg: true,
        },
        Case {
            name: "ipam not an object",
            stdin: js(&json!({"cniVersion": "0.4.0", "name": "n", "ipam": "host-local"})),
            call: call("ADD", "c1"),
            same_msg: false,
        },
        Case {
            name: "dataDir that cannot be created",
            stdin: js(&with_ipam(
                "0.4.0",
                json!({"subnet": "10.55.0.0/24", "dataDir": "/proc/rcni-no"}),
            )),
            call: call("ADD", "c1"),
            same_msg: false,
        },
        Case {
            name: "CHECK of an unknown container",
            stdin: js(&good),
            call: call("CHECK", "c9"),
            same_msg: true,
        },
    ];
    // Both run against one dataDir: what Go adds is deleted before ours runs.
    for case in &cases {
        let go = run(GO, &case.call, &case.stdin);
        let undo = Call {
            command: "DEL",
            ..call("DEL", case.call.id)
        };
        if go.status == 0 && case.call.command == "ADD" {
            run(GO, &undo, &case.stdin).ok("Go DEL");
        }
        let ours = run(OURS, &case.call, &case.stdin);
        if ours.status == 0 && case.call.command == "ADD" {
            run(OURS, &undo, &case.stdin).ok("our DEL");
        }
        let name = case.name;
        assert_eq!(
            ours.status, go.status,
            "{name}: ours {} / Go {}",
            ours.stdout, go.stdout
        );
        if go.status != 0 {
            assert_eq!(
                ours.code(),
                go.code(),
                "{name}: ours {} / Go {}",
                ours.stdout,
                go.stdout
            );
            if case.same_msg {
                assert_eq!(ours.msg(), go.msg(), "{name}");
            }
        }
    }
}

#[test]
fn concurrent_adds_from_both_never_collide() {
    if !go_available() {
        return;
    }
    let tmp = TempDir::new("concurrent");
    let conf = ipam(tmp.path(), "0.4.0", &json!({"subnet": "10.33.0.0/24"}));
    let stdin = serde_json::to_vec(&conf).expect("config");
    let ids: Vec<String> = (0..24).map(|i| format!("c{i}")).collect();
    // Half Go, half ours, all at once: the shared flock keeps the reservations apart.
    let outcomes: Vec<PluginOutput> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let stdin = &stdin;
                s.spawn(move || run(if i % 2 == 0 { GO } else { OURS }, &call("ADD", id), stdin))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("runner thread"))
            .collect()
    });
    for o in &outcomes {
        assert_eq!(o.status, 0, "{}", o.stdout);
    }
    let files = store(&tmp.path().join("interop"));
    let reserved: Vec<&String> = files.keys().filter(|n| n.starts_with("10.33.0.")).collect();
    assert_eq!(reserved.len(), ids.len(), "{reserved:?}");
    let mut owners: Vec<Vec<u8>> = reserved.iter().map(|n| files[*n].clone()).collect();
    owners.sort();
    owners.dedup();
    assert_eq!(owners.len(), ids.len(), "one address per container");
}
