//! Parsing, precedence and validation tables, and the verbs driven through skel in-process.

use std::collections::HashMap;

use rcni_types::args::CniArgs;
use rcni_types::net::{parse_cidr, parse_ip};
use rcni_types::{Code, Dns, Route};
use serde_json::{Value, json};

use crate::{Conf, Static};

/// A config with `ipam` set to `ipam` and the other top-level keys from `extra`.
fn doc(version: &str, ipam: &Value, extra: &Value) -> Vec<u8> {
    let mut conf = json!({"cniVersion": version, "name": "net", "type": "bridge", "ipam": ipam});
    if let (Some(conf), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
        conf.extend(extra.clone());
    }
    serde_json::to_vec(&conf).expect("test config")
}

fn parse(version: &str, ipam: &Value, extra: &Value, cni_args: &str) -> rcni_types::Result<Conf> {
    Conf::parse(&doc(version, ipam, extra), &CniArgs::read(cni_args))
}

/// The addresses as "cidr" or "cidr gw", for compact expectations.
fn addresses(conf: &Conf) -> Vec<String> {
    conf.addresses
        .iter()
        .map(|a| match a.gateway {
            Some(gw) => format!("{} {gw}", a.address),
            None => a.address.to_string(),
        })
        .collect()
}

#[test]
fn address_sources_and_precedence() {
    struct Case {
        name: &'static str,
        ipam: Value,
        extra: Value,
        cni_args: &'static str,
        want: &'static [&'static str],
    }
    let config = json!({"type": "static", "addresses": [
        {"address": "10.0.0.2/24", "gateway": "10.0.0.1"},
        {"address": "fd00::2/64"},
    ]});
    let cases = [
        Case {
            name: "config only, host bits kept",
            ipam: config.clone(),
            extra: json!({}),
            cni_args: "",
            want: &["10.0.0.2/24 10.0.0.1", "fd00::2/64"],
        },
        Case {
            name: "no addresses at all",
            ipam: json!({"type": "static"}),
            extra: json!({}),
            cni_args: "",
            want: &[],
        },
        Case {
            name: "CNI_ARGS IP is appended after the config",
            ipam: config.clone(),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16, fd01::5/64",
            want: &[
                "10.0.0.2/24 10.0.0.1",
                "fd00::2/64",
                "10.1.0.5/16",
                "fd01::5/64",
            ],
        },
        Case {
            name: "CNI_ARGS gateways go to the CNI_ARGS address holding them",
            ipam: json!({"type": "static", "addresses": [{"address": "10.1.0.9/16"}]}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16,fd01::5/64;GATEWAY=fd01::1, 10.1.0.1",
            want: &["10.1.0.9/16", "10.1.0.5/16 10.1.0.1", "fd01::5/64 fd01::1"],
        },
        Case {
            name: "an unmatched CNI_ARGS gateway is ignored",
            ipam: json!({"type": "static"}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16;GATEWAY=192.168.0.1",
            want: &["10.1.0.5/16"],
        },
        Case {
            name: "the last matching CNI_ARGS gateway wins",
            ipam: json!({"type": "static"}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16;GATEWAY=10.1.0.1,10.1.0.254",
            want: &["10.1.0.5/16 10.1.0.254"],
        },
        Case {
            name: "the last IP key wins, and IgnoreUnknown lets Kubernetes keys through",
            ipam: json!({"type": "static"}),
            extra: json!({}),
            cni_args: "IgnoreUnknown=1;IP=10.9.0.1/8;K8S_POD_NAME=p;IP=10.1.0.5/16",
            want: &["10.1.0.5/16"],
        },
        Case {
            name: "empty IP and GATEWAY are ignored",
            ipam: config.clone(),
            extra: json!({}),
            cni_args: "IP=;GATEWAY=",
            want: &["10.0.0.2/24 10.0.0.1", "fd00::2/64"],
        },
        Case {
            name: "args.cni.ips replaces config and CNI_ARGS, gateways included",
            ipam: config.clone(),
            extra: json!({"args": {"cni": {"ips": ["10.9.9.9/8"]}}}),
            cni_args: "IP=10.1.0.5/16;GATEWAY=10.1.0.1",
            want: &["10.9.9.9/8"],
        },
        Case {
            name: "runtimeConfig.ips replaces args.cni.ips",
            ipam: config.clone(),
            extra: json!({
                "args": {"cni": {"ips": ["10.9.9.9/8"]}},
                "runtimeConfig": {"ips": ["10.8.8.8/8", "fd00::8/64"]},
            }),
            cni_args: "IP=10.1.0.5/16",
            want: &["10.8.8.8/8", "fd00::8/64"],
        },
        Case {
            name: "empty capability and args lists replace nothing",
            ipam: config.clone(),
            extra: json!({"args": {"cni": {"ips": []}}, "runtimeConfig": {"ips": null}}),
            cni_args: "",
            want: &["10.0.0.2/24 10.0.0.1", "fd00::2/64"],
        },
        Case {
            name: "a bad config address is not judged once replaced",
            ipam: json!({"type": "static", "addresses": [{"address": "bad"}]}),
            extra: json!({"runtimeConfig": {"ips": ["10.8.8.8/8"]}}),
            cni_args: "",
            want: &["10.8.8.8/8"],
        },
        Case {
            name: "keys match in any case",
            ipam: json!({"TYPE": "static", "Addresses": [{"ADDRESS": "10.0.0.2/24", "Gateway": "10.0.0.1"}]}),
            extra: json!({"RuntimeConfig": {"IPS": []}}),
            cni_args: "",
            want: &["10.0.0.2/24 10.0.0.1"],
        },
        Case {
            name: "IPv4-mapped addresses are IPv4",
            ipam: json!({"addresses": [{"address": "::ffff:10.0.0.2/120", "gateway": "::ffff:10.0.0.1"}]}),
            extra: json!({}),
            cni_args: "",
            want: &["10.0.0.2/24 10.0.0.1"],
        },
        Case {
            name: "a gateway of the other family is kept, as the reference does",
            ipam: json!({"addresses": [{"address": "10.0.0.2/24", "gateway": "fd00::1"}]}),
            extra: json!({}),
            cni_args: "",
            want: &["10.0.0.2/24 fd00::1"],
        },
        Case {
            name: "an empty or null gateway is none",
            ipam: json!({"addresses": [{"address": "10.0.0.2/24", "gateway": ""}, {"address": "10.0.0.3/24", "gateway": null}]}),
            extra: json!({}),
            cni_args: "",
            want: &["10.0.0.2/24", "10.0.0.3/24"],
        },
    ];
    for case in cases {
        let conf = parse("1.0.0", &case.ipam, &case.extra, case.cni_args)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(addresses(&conf), case.want, "{}", case.name);
    }
}

#[test]
fn invalid_input_is_refused_with_the_reference_message() {
    struct Case {
        name: &'static str,
        version: &'static str,
        ipam: Value,
        extra: Value,
        cni_args: &'static str,
        msg: &'static str,
    }
    let two_v4 = json!({"addresses": [{"address": "10.0.0.2/24"}, {"address": "10.0.0.3/24"}]});
    let cases = [
        Case {
            name: "no ipam",
            version: "1.0.0",
            ipam: Value::Null,
            extra: json!({}),
            cni_args: "",
            msg: "IPAM config missing 'ipam' key",
        },
        Case {
            name: "config address without prefix length",
            version: "1.0.0",
            ipam: json!({"addresses": [{"address": "10.0.0.2"}]}),
            extra: json!({}),
            cni_args: "",
            msg: "the 'address' field is expected to be in CIDR notation, got: '10.0.0.2'",
        },
        Case {
            name: "config address missing",
            version: "1.0.0",
            ipam: json!({"addresses": [{}]}),
            extra: json!({}),
            cni_args: "",
            msg: "the 'address' field is expected to be in CIDR notation, got: ''",
        },
        Case {
            name: "IPv4 prefix too long",
            version: "1.0.0",
            ipam: json!({"addresses": [{"address": "10.0.0.3/64"}]}),
            extra: json!({}),
            cni_args: "",
            msg: "the 'address' field is expected to be in CIDR notation, got: '10.0.0.3/64'",
        },
        Case {
            name: "config gateway not an IP",
            version: "1.0.0",
            ipam: json!({"addresses": [{"address": "10.0.0.2/24", "gateway": "bad"}]}),
            extra: json!({}),
            cni_args: "",
            msg: "invalid IP address: bad",
        },
        Case {
            name: "CNI_ARGS IP without prefix length",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5",
            msg: "the 'ip' field is expected to be in CIDR notation, got: '10.1.0.5'",
        },
        Case {
            name: "CNI_ARGS IP list with a trailing comma",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16,",
            msg: "the 'ip' field is expected to be in CIDR notation, got: ''",
        },
        Case {
            name: "CNI_ARGS gateway not an IP",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16;GATEWAY=10.1.0.1, nope",
            msg: "invalid gateway address:  nope",
        },
        Case {
            name: "CNI_ARGS gateway list with a trailing comma",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16;GATEWAY=10.1.0.1,",
            msg: "invalid gateway address: ",
        },
        Case {
            name: "CNI_ARGS unknown key",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({}),
            cni_args: "K8S_POD_NAME=x;IP=10.1.0.5/16",
            msg: "ARGS: unknown args [\"K8S_POD_NAME=x\"]",
        },
        Case {
            name: "CNI_ARGS malformed pair",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({}),
            cni_args: "IP=10.1.0.5/16;GATEWAY",
            msg: "ARGS: invalid pair \"GATEWAY\"",
        },
        Case {
            name: "args.cni.ips entry without prefix length",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({"args": {"cni": {"ips": ["10.9.9.9"]}}}),
            cni_args: "",
            msg: "an entry in the 'ips' field is NOT in CIDR notation, got: '10.9.9.9'",
        },
        Case {
            name: "ips capability entry without prefix length",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({"runtimeConfig": {"ips": ["fd00::8"]}}),
            cni_args: "",
            msg: "an entry in the 'ips' field is NOT in CIDR notation, got: 'fd00::8'",
        },
        Case {
            name: "bad args.cni.ips is judged even when the capability replaces it",
            version: "1.0.0",
            ipam: json!({}),
            extra: json!({"args": {"cni": {"ips": ["x"]}}, "runtimeConfig": {"ips": ["10.8.8.8/8"]}}),
            cni_args: "",
            msg: "an entry in the 'ips' field is NOT in CIDR notation, got: 'x'",
        },
        Case {
            name: "two IPv4 addresses at 0.2.0",
            version: "0.2.0",
            ipam: two_v4.clone(),
            extra: json!({}),
            cni_args: "",
            msg: "CNI version 0.2.0 does not support more than 1 address per family",
        },
        Case {
            name: "two IPv6 addresses at 0.1.0, one from CNI_ARGS",
            version: "0.1.0",
            ipam: json!({"addresses": [{"address": "fd00::2/64"}, {"address": "10.0.0.2/24"}]}),
            extra: json!({}),
            cni_args: "IP=fd01::2/64",
            msg: "CNI version 0.1.0 does not support more than 1 address per family",
        },
        Case {
            name: "route without dst",
            version: "1.0.0",
            ipam: json!({"routes": [{"gw": "10.0.0.1"}]}),
            extra: json!({}),
            cni_args: "",
            msg: "route 0: missing 'dst'",
        },
        Case {
            name: "route dst not a CIDR",
            version: "1.0.0",
            ipam: json!({"routes": [{"dst": "0.0.0.0"}]}),
            extra: json!({}),
            cni_args: "",
            msg: "invalid CIDR address: 0.0.0.0",
        },
    ];
    for case in cases {
        let e = parse(case.version, &case.ipam, &case.extra, case.cni_args).expect_err(case.name);
        assert_eq!(e.code, Code::Internal, "{}: {e}", case.name);
        assert_eq!(e.msg, case.msg, "{}", case.name);
    }
}

#[test]
fn values_of_the_wrong_type_are_refused() {
    let cases = [
        ("ipam not an object", json!({"ipam": "x"})),
        ("addresses not a list", json!({"ipam": {"addresses": {}}})),
        (
            "address not a string",
            json!({"ipam": {"addresses": [{"address": 1}]}}),
        ),
        (
            "untagged Version not a string",
            json!({"ipam": {"addresses": [{"address": "10.0.0.2/24", "version": 4}]}}),
        ),
        ("dns not an object", json!({"ipam": {"dns": []}})),
        (
            "runtimeConfig.ips not a list",
            json!({"ipam": {}, "runtimeConfig": {"ips": "10.0.0.2/24"}}),
        ),
        (
            "args.cni not an object",
            json!({"ipam": {}, "args": {"cni": 1}}),
        ),
        (
            "route mtu not an integer",
            json!({"ipam": {"routes": [{"dst": "0.0.0.0/0", "mtu": 1500.5}]}}),
        ),
    ];
    for (name, conf) in cases {
        let bytes = serde_json::to_vec(&conf).expect("test config");
        let e = Conf::parse(&bytes, &CniArgs::default()).expect_err(name);
        assert_eq!(e.code, Code::Internal, "{name}: {e}");
    }
}

#[test]
fn routes_and_dns_are_copied() {
    let ipam = json!({
        "addresses": [{"address": "10.0.0.2/24"}],
        "routes": [
            {"dst": "0.0.0.0/0", "gw": "10.0.0.1"},
            {"dst": "192.168.1.5/16", "gw": "", "mtu": 1400, "advmss": 0, "priority": 5, "table": 100, "scope": 0},
        ],
        "dns": {"nameservers": ["1.1.1.1"], "domain": "example.com", "search": ["a.example.com"], "options": ["ndots:2"]},
    });
    let conf = parse("1.1.0", &ipam, &json!({}), "").expect("valid");
    let default = Route::new("0.0.0.0/0".parse().expect("net"), "10.0.0.1".parse().ok());
    let mut custom = Route::new("192.168.1.5/16".parse().expect("net"), None);
    custom.mtu = Some(1400);
    custom.priority = Some(5);
    custom.table = Some(100);
    custom.scope = Some(0);
    assert_eq!(conf.routes, vec![default, custom]);
    assert_eq!(
        conf.dns,
        Dns {
            nameservers: vec!["1.1.1.1".into()],
            domain: "example.com".into(),
            search: vec!["a.example.com".into()],
            options: vec!["ndots:2".into()],
        }
    );
}

#[test]
fn go_address_parsing() {
    let cidrs: &[(&str, &str, Option<&str>)] = &[
        ("v4", "10.1.2.3/24", Some("10.1.2.3/24")),
        ("v6 compressed", "fd00:0:0:0::1/64", Some("fd00::1/64")),
        (
            "leading zeros in prefix",
            "10.1.2.3/024",
            Some("10.1.2.3/24"),
        ),
        ("v4-mapped", "::ffff:10.1.2.3/120", Some("10.1.2.3/24")),
        (
            "v4-mapped short prefix",
            "::ffff:10.1.2.3/64",
            Some("10.1.2.3/0"),
        ),
        ("no prefix", "10.1.2.3", None),
        ("empty prefix", "10.1.2.3/", None),
        ("signed prefix", "10.1.2.3/+24", None),
        ("v6 prefix too long", "fd00::1/129", None),
        ("zone", "fe80::1%eth0/64", None),
        ("leading zero octet", "010.1.2.3/24", None),
        ("empty", "", None),
    ];
    for (name, input, want) in cidrs {
        let got = parse_cidr(input).ok().map(|n| n.to_string());
        assert_eq!(got.as_deref(), *want, "{name}");
    }
    // (case, input, printed back or Err when Go rejects it)
    type IpCase = (&'static str, &'static str, Result<Option<&'static str>, ()>);
    let ips: &[IpCase] = &[
        ("empty is none", "", Ok(None)),
        ("v4", "10.0.0.1", Ok(Some("10.0.0.1"))),
        ("v4-mapped", "::ffff:10.0.0.1", Ok(Some("10.0.0.1"))),
        ("v6", "fd00::1", Ok(Some("fd00::1"))),
        ("with prefix", "10.0.0.1/24", Err(())),
        ("garbage", "gw", Err(())),
    ];
    for (name, input, want) in ips {
        let got = parse_ip(input)
            .map(|ip| ip.map(|ip| ip.to_string()))
            .map_err(|_| ());
        assert_eq!(got, want.map(|o| o.map(str::to_owned)), "{name}");
    }
}

// ---------------------------------------------------------------------------------------
// The verbs, through skel.

struct Outcome {
    status: i32,
    stdout: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).expect("stdout is JSON")
    }
    fn error_code(&self) -> u64 {
        assert_eq!(self.status, 1, "stdout: {}", self.stdout);
        self.json()["code"].as_u64().expect("error code")
    }
}

fn invoke(command: &str, cni_args: &str, stdin: &[u8]) -> Outcome {
    let env: HashMap<&str, &str> = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/any/path"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
        ("CNI_ARGS", cni_args),
    ]
    .into_iter()
    .collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = rcni_skel::run_with(&Static, &env, &mut &stdin[..], &mut out, &mut err);
    Outcome {
        status,
        stdout: String::from_utf8(out).expect("utf8"),
    }
}

fn dual_stack() -> Value {
    json!({"type": "static", "addresses": [
        {"address": "10.0.0.2/24", "gateway": "10.0.0.1"},
        {"address": "fd00::2/64", "gateway": "fd00::1"},
    ], "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]})
}

#[test]
fn add_prints_the_result_in_every_version() {
    let cases: &[(&str, Value)] = &[
        (
            "0.2.0",
            json!({"cniVersion": "0.2.0",
                "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
                "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
                "dns": {}}),
        ),
        (
            "0.4.0",
            json!({"cniVersion": "0.4.0",
                "ips": [
                    {"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"},
                    {"version": "6", "address": "fd00::2/64", "gateway": "fd00::1"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
                "dns": {}}),
        ),
        (
            "1.1.0",
            json!({"cniVersion": "1.1.0",
                "ips": [
                    {"address": "10.0.0.2/24", "gateway": "10.0.0.1"},
                    {"address": "fd00::2/64", "gateway": "fd00::1"}],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}),
        ),
    ];
    for (version, want) in cases {
        let out = invoke("ADD", "", &doc(version, &dual_stack(), &json!({})));
        assert_eq!(out.status, 0, "{version}: {}", out.stdout);
        assert_eq!(&out.json(), want, "{version}");
    }
}

#[test]
fn add_without_addresses_fails_only_for_0_2_0() {
    let out = invoke(
        "ADD",
        "",
        &doc("0.2.0", &json!({"type": "static"}), &json!({})),
    );
    assert_eq!(out.error_code(), 999);
    let out = invoke(
        "ADD",
        "",
        &doc("1.0.0", &json!({"type": "static"}), &json!({})),
    );
    assert_eq!(out.json(), json!({"cniVersion": "1.0.0"}));
}

#[test]
fn del_status_and_gc_always_succeed() {
    // DEL does not read the config, so even one that ADD refuses is cleaned up.
    let bad = doc(
        "1.1.0",
        &json!({"addresses": [{"address": "bad"}]}),
        &json!({}),
    );
    for command in ["DEL", "STATUS", "GC"] {
        let out = invoke(command, "garbage", &bad);
        assert_eq!((out.status, out.stdout.as_str()), (0, ""), "{command}");
    }
    let gc = doc(
        "1.1.0",
        &dual_stack(),
        &json!({"cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]}),
    );
    let out = invoke("GC", "", &gc);
    assert_eq!((out.status, out.stdout.as_str()), (0, ""));
}

#[test]
fn check_compares_gateways_like_the_reference() {
    let prev = |gw4: Option<&str>| {
        let mut ip4 = json!({"address": "10.0.0.2/24"});
        if let Some(gw) = gw4 {
            ip4["gateway"] = json!(gw);
        }
        json!({"cniVersion": "1.0.0", "ips": [ip4, {"address": "fd00::2/64", "gateway": "fd00::1"}]})
    };
    struct Case {
        name: &'static str,
        extra: Value,
        cni_args: &'static str,
        /// `None`: success; `Some(msg)`: code 999 with that message.
        want: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "matching result",
            extra: json!({"prevResult": prev(Some("10.0.0.1"))}),
            cni_args: "",
            want: None,
        },
        Case {
            name: "gateway differs",
            extra: json!({"prevResult": prev(Some("10.0.0.254"))}),
            cni_args: "",
            want: Some("static: Failed to match addr 10.0.0.2 on interface eth0"),
        },
        Case {
            name: "gateway missing from the result",
            extra: json!({"prevResult": prev(None)}),
            cni_args: "",
            want: Some("static: Failed to match addr 10.0.0.2 on interface eth0"),
        },
        Case {
            name: "address missing from the result is not checked",
            extra: json!({"prevResult": {"cniVersion": "1.0.0", "ips": []}}),
            cni_args: "",
            want: None,
        },
        Case {
            name: "a configured address without gateway accepts any",
            extra: json!({"prevResult": prev(Some("10.0.0.254")), "runtimeConfig": {"ips": ["10.0.0.2/24"]}}),
            cni_args: "",
            want: None,
        },
        Case {
            name: "prevResult missing",
            extra: json!({}),
            cni_args: "",
            want: Some("Required prevResult missing"),
        },
        Case {
            name: "config errors come first",
            extra: json!({}),
            cni_args: "IP=10.0.0.9",
            want: Some("the 'ip' field is expected to be in CIDR notation, got: '10.0.0.9'"),
        },
    ];
    for case in cases {
        let out = invoke(
            "CHECK",
            case.cni_args,
            &doc("1.0.0", &dual_stack(), &case.extra),
        );
        match case.want {
            None => assert_eq!((out.status, out.stdout.as_str()), (0, ""), "{}", case.name),
            Some(msg) => {
                assert_eq!(out.error_code(), 999, "{}", case.name);
                assert_eq!(out.json()["msg"], msg, "{}", case.name);
            }
        }
    }
    let out = invoke(
        "CHECK",
        "",
        &doc("0.3.1", &dual_stack(), &json!({"prevResult": prev(None)})),
    );
    assert_eq!(out.error_code(), 1, "CHECK needs 0.4.0");
    let bad_prev = json!({"prevResult": {"cniVersion": "1.0.0", "ips": [{"address": "x"}]}});
    let out = invoke("CHECK", "", &doc("1.0.0", &dual_stack(), &bad_prev));
    assert_eq!(
        out.error_code(),
        999,
        "unreadable prevResult: {}",
        out.stdout
    );
}
