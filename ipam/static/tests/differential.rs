//! Differential tests: the Go reference (`/usr/lib/cni/static`, Debian
//! containernetworking-plugins 1.1.1, cniVersion 0.1.0..1.0.0) and ours run with the same
//! env and stdin; results must be the same field by field, errors must carry the same code.
//!
//! Static never opens CNI_NETNS, so no root and no namespace are needed. Without the
//! reference installed the Go half prints SKIP (and fails with RCNI_REQUIRE_ROOT=1, as CI
//! sets it); the 1.1.0 checks of ours alone always run.

use std::path::Path;

use rcni_testkit::{PluginOutput, run_plugin};
use serde_json::{Value, json};

const GO_STATIC: &str = "/usr/lib/cni/static";
const OURS: &str = env!("CARGO_BIN_EXE_static");

/// Every version Go 1.1.1 supports.
const VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"];

fn run(bin: &str, command: &str, cni_args: &str, stdin: &Value) -> PluginOutput {
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "ctr-1"),
        ("CNI_NETNS", "/any/path"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("CNI_ARGS", cni_args),
    ];
    let input = serde_json::to_vec(stdin).expect("config serializes");
    run_plugin(bin, &env, &input)
}

/// True when the reference is installed; prints SKIP otherwise (a failure under CI).
fn have_reference(test: &str) -> bool {
    if Path::new(GO_STATIC).exists() {
        return true;
    }
    assert!(
        std::env::var("RCNI_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{test}: {GO_STATIC} is missing and RCNI_REQUIRE_ROOT=1 is set"
    );
    eprintln!("SKIP {test}: {GO_STATIC} not installed");
    false
}

fn conf(version: &str, ipam: &Value, extra: &Value) -> Value {
    let mut conf =
        json!({"cniVersion": version, "name": "diffnet", "type": "bridge", "ipam": ipam});
    if let (Some(conf), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
        conf.extend(extra.clone());
    }
    conf
}

/// Debian's Go 1.1.1 prints `"dns":{}` for 1.x results where newer Go (and we) omit it.
fn normalize(mut result: Value, version: &str) -> Value {
    if version.starts_with("1.")
        && let Some(obj) = result.as_object_mut()
        && obj.get("dns") == Some(&json!({}))
    {
        obj.remove("dns");
    }
    result
}

/// Compares two results key by key, naming the first field that differs.
fn assert_same_result(case: &str, go: &Value, ours: &Value) {
    let (Some(go_obj), Some(our_obj)) = (go.as_object(), ours.as_object()) else {
        panic!("{case}: not objects\n go:   {go}\n ours: {ours}");
    };
    let mut go_keys: Vec<&String> = go_obj.keys().collect();
    let mut our_keys: Vec<&String> = our_obj.keys().collect();
    go_keys.sort();
    our_keys.sort();
    assert_eq!(
        go_keys, our_keys,
        "{case}: keys\n go:   {go}\n ours: {ours}"
    );
    for (key, go_value) in go_obj {
        assert_eq!(
            Some(go_value),
            our_obj.get(key),
            "{case}: field {key:?}\n go:   {go}\n ours: {ours}"
        );
    }
}

/// Runs `command` on both plugins and checks they agree: the same exit status, the same
/// result (ADD), the same error code, and (with `same_msg`) the same error message.
fn compare(
    case: &str,
    command: &str,
    cni_args: &str,
    stdin: &Value,
    same_msg: bool,
) -> PluginOutput {
    let version = stdin["cniVersion"].as_str().unwrap_or("");
    let case = format!("{case} [{command} {version}]");
    let go = run(GO_STATIC, command, cni_args, stdin);
    let ours = run(OURS, command, cni_args, stdin);
    assert_eq!(
        go.status, ours.status,
        "{case}: exit status\n go:   {}\n ours: {}",
        go.stdout, ours.stdout
    );
    if go.status == 0 {
        if go.stdout.trim().is_empty() {
            assert_eq!(ours.stdout, "", "{case}: output");
        } else {
            assert_same_result(
                &case,
                &normalize(go.json(), version),
                &normalize(ours.json(), version),
            );
        }
    } else {
        let (go_err, our_err) = (go.json(), ours.json());
        assert_eq!(
            go_err["code"], our_err["code"],
            "{case}: error code\n go:   {go_err}\n ours: {our_err}"
        );
        if same_msg {
            assert_eq!(go_err["msg"], our_err["msg"], "{case}: error message");
        }
    }
    go
}

struct Case {
    name: &'static str,
    ipam: Value,
    extra: Value,
    cni_args: &'static str,
}

fn case(name: &'static str, ipam: Value, extra: Value, cni_args: &'static str) -> Case {
    Case {
        name,
        ipam,
        extra,
        cni_args,
    }
}

/// Configurations ADD accepts at least at some version (0.1.0/0.2.0 refuse two addresses
/// of a family and results without any address; both plugins must agree on that too).
fn accepted_cases() -> Vec<Case> {
    let none = json!({});
    vec![
        case(
            "single IPv4 with gateway, routes and dns",
            json!({"type": "static",
                "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.0.254"}],
                "dns": {"nameservers": ["10.10.0.1", "8.8.8.8"], "domain": "example.com",
                        "search": ["example.com", "svc.example.com"], "options": ["ndots:2"]}}),
            none.clone(),
            "",
        ),
        case(
            "dual stack from the config",
            json!({"type": "static",
                "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
                              {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0", "gw": "3ffe:ffff:0::1"},
                           {"dst": "3ffe:ffff:0:01ff::1/64"}],
                "dns": {"nameservers": ["8.8.8.8"]}}),
            none.clone(),
            "",
        ),
        case(
            "IPv6 only",
            json!({"type": "static", "addresses": [{"address": "fd00:1::5/64"}],
                   "routes": [{"dst": "0.0.0.0/0"}, {"dst": "fd00:2::/64", "gw": "fd00:1::1"}]}),
            none.clone(),
            "",
        ),
        case(
            "no addresses",
            json!({"type": "static", "routes": [{"dst": "0.0.0.0/0"}]}),
            none.clone(),
            "",
        ),
        case(
            "two IPv4 addresses",
            json!({"type": "static", "addresses": [{"address": "10.10.0.5/24"},
                                                   {"address": "10.20.0.5/24", "gateway": "10.20.0.1"}]}),
            none.clone(),
            "",
        ),
        case(
            "CNI_ARGS IP dual stack with gateways, one matching nothing",
            json!({"type": "static"}),
            none.clone(),
            "IP=10.1.0.5/16, fd01::5/64;GATEWAY=fd01::1,10.1.0.1, 192.168.0.1",
        ),
        case(
            "CNI_ARGS: fewer gateways than addresses",
            json!({"type": "static"}),
            none.clone(),
            "IP=10.1.0.5/16,fd01::5/64;GATEWAY=10.1.0.1",
        ),
        case(
            "CNI_ARGS: a gateway without IP",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}]}),
            none.clone(),
            "GATEWAY=10.1.0.1",
        ),
        case(
            "CNI_ARGS appended to the config; its gateway skips config addresses",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}]}),
            none.clone(),
            "IP=fd01::5/64;GATEWAY=10.1.0.1,fd01::1",
        ),
        case(
            "CNI_ARGS with IgnoreUnknown and Kubernetes keys",
            json!({"type": "static"}),
            none.clone(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;IP=10.1.0.5/16;GATEWAY=10.1.0.1",
        ),
        case(
            "CNI_ARGS empty values",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}]}),
            none.clone(),
            "IP=;GATEWAY=",
        ),
        case(
            "args.cni.ips replaces config and CNI_ARGS",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16", "gateway": "10.1.0.1"}]}),
            json!({"args": {"cni": {"ips": ["10.9.9.9/8", "fd09::9/64"]}}}),
            "IP=10.2.0.5/16;GATEWAY=10.2.0.1",
        ),
        case(
            "the ips capability replaces args.cni.ips",
            json!({"type": "static", "addresses": [{"address": "bad"}]}),
            json!({"capabilities": {"ips": true},
                   "runtimeConfig": {"ips": ["10.8.8.8/8", "fd08::8/64"]},
                   "args": {"cni": {"ips": ["10.9.9.9/8"]}}}),
            "IP=10.2.0.5/16",
        ),
        case(
            "empty ips lists replace nothing",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16", "gateway": "10.1.0.1"}]}),
            json!({"runtimeConfig": {"ips": []}, "args": {"cni": {"ips": null}}}),
            "",
        ),
        case(
            "keys in other cases",
            json!({"Type": "static", "ADDRESSES": [{"ADDRESS": "10.1.0.9/16", "GATEWAY": "10.1.0.1", "version": "4"}],
                   "Routes": [{"DST": "0.0.0.0/0", "GW": "10.1.0.1"}], "DNS": {"NameServers": ["1.1.1.1"]}}),
            json!({"RuntimeConfig": {"IPs": []}}),
            "",
        ),
        case(
            "IPv4-mapped addresses, empty gateway",
            json!({"type": "static", "addresses": [{"address": "::ffff:10.1.0.9/112", "gateway": "::ffff:10.1.0.1"},
                                                   {"address": "fd00::9/64", "gateway": ""}]}),
            none.clone(),
            "",
        ),
        case(
            "gateway of the other family",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16", "gateway": "fd00::1"}]}),
            none.clone(),
            "",
        ),
        case(
            "routes of a family without address",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}],
                   "routes": [{"dst": "::/0"}, {"dst": "10.0.0.0/8", "gw": ""}]}),
            none.clone(),
            "",
        ),
        case(
            "nulls and unknown keys",
            json!({"type": "static", "addresses": [{"address": "10.1.0.9/16", "gateway": null}],
                   "routes": null, "dns": null, "rangeStart": "x"}),
            json!({"runtimeConfig": null, "args": null, "unknown": [1, 2]}),
            "",
        ),
    ]
}

/// Bad input: both plugins must fail with the same code (999 in every case here: the
/// reference's plain errors). `same_msg` where our message is the reference's word for word.
fn refused_cases() -> Vec<(Case, bool)> {
    let none = json!({});
    let addr = |a: &str| json!({"type": "static", "addresses": [{"address": a}]});
    vec![
        (
            case(
                "address without prefix length",
                addr("10.1.0.9"),
                none.clone(),
                "",
            ),
            true,
        ),
        (
            case("address not an IP", addr("bad/24"), none.clone(), ""),
            true,
        ),
        (
            case(
                "IPv4 prefix too long",
                addr("10.1.0.9/33"),
                none.clone(),
                "",
            ),
            true,
        ),
        (
            case(
                "empty address",
                json!({"type": "static", "addresses": [{}]}),
                none.clone(),
                "",
            ),
            true,
        ),
        (
            case(
                "config gateway not an IP",
                json!({"type": "static", "addresses": [{"address": "10.1.0.9/16", "gateway": "10.1.0"}]}),
                none.clone(),
                "",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS IP without prefix length",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS IP list with a bad entry",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5/16,x",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS gateway not an IP",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5/16;GATEWAY=10.1.0.1,gw",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS: more gateways than addresses, one empty",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5/16;GATEWAY=10.1.0.1,,10.1.0.2",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS malformed pair",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5/16;GATEWAY",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS pair with two =",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5/16=x",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS trailing ;",
                addr("10.1.0.9/16"),
                none.clone(),
                "IP=10.1.0.5/16;",
            ),
            true,
        ),
        (
            case(
                "CNI_ARGS unknown key",
                addr("10.1.0.9/16"),
                none.clone(),
                "K8S_POD_NAME=p",
            ),
            false,
        ),
        (
            case(
                "CNI_ARGS lowercase ip is unknown",
                addr("10.1.0.9/16"),
                none.clone(),
                "ip=10.1.0.5/16",
            ),
            false,
        ),
        (
            case(
                "CNI_ARGS bad IgnoreUnknown",
                addr("10.1.0.9/16"),
                none.clone(),
                "IgnoreUnknown=maybe",
            ),
            false,
        ),
        (
            case(
                "args.cni.ips entry without prefix length",
                addr("10.1.0.9/16"),
                json!({"args": {"cni": {"ips": ["10.9.9.9"]}}}),
                "",
            ),
            true,
        ),
        (
            case(
                "ips capability entry without prefix length",
                addr("10.1.0.9/16"),
                json!({"runtimeConfig": {"ips": ["10.8.8.8/8", "fd08::8"]}}),
                "",
            ),
            true,
        ),
        (case("no ipam", Value::Null, none.clone(), ""), true),
        (
            case(
                "key spelled Address (Go's untagged IPNet field)",
                json!({"type": "static", "addresses": [{"Address": "10.1.0.9/16"}]}),
                none.clone(),
                "",
            ),
            false,
        ),
        (
            case(
                "untagged Version not a string",
                json!({"type": "static", "addresses": [{"address": "10.1.0.9/16", "version": 4}]}),
                none.clone(),
                "",
            ),
            false,
        ),
        (
            case(
                "route dst not a CIDR",
                json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}], "routes": [{"dst": "10.0.0.0"}]}),
                none.clone(),
                "",
            ),
            false,
        ),
        (
            case(
                "ips capability not a list",
                addr("10.1.0.9/16"),
                json!({"runtimeConfig": {"ips": "10.8.8.8/8"}}),
                "",
            ),
            false,
        ),
        (
            case(
                "addresses not a list",
                json!({"type": "static", "addresses": {"address": "10.1.0.9/16"}}),
                none.clone(),
                "",
            ),
            false,
        ),
    ]
}

#[test]
fn add_matches_the_reference_at_every_version() {
    if !have_reference("add_matches_the_reference_at_every_version") {
        return;
    }
    for c in accepted_cases() {
        for version in VERSIONS {
            let stdin = conf(version, &c.ipam, &c.extra);
            compare(c.name, "ADD", c.cni_args, &stdin, true);
        }
    }
}

#[test]
fn add_refuses_bad_input_with_the_reference_code() {
    if !have_reference("add_refuses_bad_input_with_the_reference_code") {
        return;
    }
    for (c, same_msg) in refused_cases() {
        for version in VERSIONS {
            let stdin = conf(version, &c.ipam, &c.extra);
            let go = compare(c.name, "ADD", c.cni_args, &stdin, same_msg);
            assert_eq!(
                go.status, 1,
                "{} [{version}]: the reference accepted it",
                c.name
            );
        }
    }
}

#[test]
fn missing_cni_version_is_0_1_0() {
    if !have_reference("missing_cni_version_is_0_1_0") {
        return;
    }
    let mut stdin = conf(
        "",
        &json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}]}),
        &json!({}),
    );
    if let Some(obj) = stdin.as_object_mut() {
        obj.remove("cniVersion");
    }
    let go = compare("no cniVersion", "ADD", "IP=fd00::9/64", &stdin, true);
    assert_eq!(go.json()["cniVersion"], "0.1.0");
}

#[test]
fn check_matches_the_reference() {
    if !have_reference("check_matches_the_reference") {
        return;
    }
    let ipam = json!({"type": "static",
        "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
                      {"address": "fd00::5/64", "gateway": "fd00::1"}],
        "routes": [{"dst": "0.0.0.0/0"}]});
    for version in ["0.4.0", "1.0.0"] {
        // The cached result a runtime would send: what the reference printed for ADD.
        let added = run(GO_STATIC, "ADD", "", &conf(version, &ipam, &json!({})));
        assert_eq!(added.status, 0, "{}", added.stdout);
        let prev = added.json();

        let mut wrong_gw = prev.clone();
        wrong_gw["ips"][0]["gateway"] = json!("10.10.0.254");
        let mut no_gw = prev.clone();
        if let Some(ip) = no_gw["ips"][1].as_object_mut() {
            ip.remove("gateway");
        }
        let other_ips = json!({"cniVersion": version, "ips": []});
        let cases: &[(&str, Value, &str)] = &[
            ("the ADD result", json!({"prevResult": prev}), ""),
            ("gateway differs", json!({"prevResult": wrong_gw}), ""),
            ("gateway missing", json!({"prevResult": no_gw}), ""),
            (
                "addresses absent from the result",
                json!({"prevResult": other_ips}),
                "",
            ),
            ("no prevResult", json!({}), ""),
            ("bad CNI_ARGS", json!({"prevResult": prev}), "IP=10.10.0.9"),
            (
                "capability without gateways",
                json!({"prevResult": wrong_gw, "runtimeConfig": {"ips": ["10.10.0.5/24"]}}),
                "",
            ),
        ];
        for (name, extra, cni_args) in cases {
            compare(name, "CHECK", cni_args, &conf(version, &ipam, extra), true);
        }
    }
    // CHECK needs 0.4.0.
    compare(
        "old version",
        "CHECK",
        "",
        &conf("0.3.1", &ipam, &json!({})),
        false,
    );
}

#[test]
fn del_matches_the_reference() {
    if !have_reference("del_matches_the_reference") {
        return;
    }
    let good = json!({"type": "static", "addresses": [{"address": "10.10.0.5/24"}]});
    let bad = json!({"type": "static", "addresses": [{"address": "bad"}]});
    for version in VERSIONS {
        for (name, ipam, cni_args) in [
            ("good config", &good, ""),
            ("config ADD refuses", &bad, "garbage"),
        ] {
            let go = compare(
                name,
                "DEL",
                cni_args,
                &conf(version, ipam, &json!({})),
                true,
            );
            assert_eq!(go.status, 0, "{name} [{version}]");
        }
    }
}

/// Go 1.1.1 does not know 1.1.0; ours must serve it, including STATUS and GC.
#[test]
fn ours_serves_1_1_0() {
    let ipam = json!({"type": "static",
        "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
                      {"address": "fd00::5/64"}],
        "routes": [{"dst": "0.0.0.0/0", "mtu": 1400, "table": 100}],
        "dns": {"nameservers": ["10.10.0.1"]}});
    let stdin = conf("1.1.0", &ipam, &json!({}));
    let added = run(OURS, "ADD", "", &stdin);
    assert_eq!(added.status, 0, "{}", added.stdout);
    let result = added.json();
    assert_eq!(
        result,
        json!({"cniVersion": "1.1.0",
            "ips": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}, {"address": "fd00::5/64"}],
            "routes": [{"dst": "0.0.0.0/0", "mtu": 1400, "table": 100}],
            "dns": {"nameservers": ["10.10.0.1"]}})
    );

    let checked = run(
        OURS,
        "CHECK",
        "",
        &conf("1.1.0", &ipam, &json!({"prevResult": result})),
    );
    assert_eq!((checked.status, checked.stdout.as_str()), (0, ""));

    let gc = conf(
        "1.1.0",
        &ipam,
        &json!({"cni.dev/valid-attachments": [{"containerID": "ctr-2", "ifname": "eth0"}]}),
    );
    for (command, stdin) in [("STATUS", &stdin), ("GC", &gc), ("DEL", &stdin)] {
        let out = run(OURS, command, "", stdin);
        assert_eq!((out.status, out.stdout.as_str()), (0, ""), "{command}");
    }

    let version = run(OURS, "VERSION", "", &json!({"cniVersion": "1.1.0"}));
    let supported = &version.json()["supportedVersions"];
    for v in VERSIONS.iter().chain(&["1.1.0"]) {
        assert!(
            supported.as_array().is_some_and(|s| s.contains(&json!(v))),
            "VERSION lists {v}: {supported}"
        );
    }
}
