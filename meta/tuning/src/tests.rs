//! Config validation with named cases, and the link logic against `FakeNetlink` (no root).

use std::path::Path;

use rcni_netlink::{Call, FakeNetlink, Op};
use rcni_skel::Command;
use rcni_types::args::CniArgs;
use serde_json::{Value, json};

use super::*;

const NO_ALLOWLIST: &str = "/nonexistent/rcni/allowlist.conf";

fn request_raw(stdin: Vec<u8>, ifname: &str, args: &str) -> Request {
    let config: Value = serde_json::from_slice(&stdin).expect("test config is JSON");
    Request {
        command: Command::Add,
        container_id: "ctr".into(),
        netns: None,
        ifname: ifname.into(),
        args: CniArgs::read(args),
        raw_args: args.into(),
        path: Vec::new(),
        net: serde_json::from_slice(&stdin).expect("network config"),
        stdin,
        config,
    }
}

fn request(plugin: &Value, args: &str) -> Request {
    let mut config = json!({"cniVersion": "1.0.0", "name": "net", "type": "tuning"});
    if let (Some(doc), Some(keys)) = (config.as_object_mut(), plugin.as_object()) {
        doc.extend(keys.clone());
    }
    request_raw(config.to_string().into_bytes(), "eth0", args)
}

fn parse(plugin: &Value) -> Result<Conf> {
    Conf::parse(&request(plugin, ""), Path::new(NO_ALLOWLIST))
}

fn conf(plugin: &Value) -> Conf {
    parse(plugin).expect("valid config")
}

// ---- sysctl keys ----

#[test]
fn sysctl_keys_resolve_under_proc_sys_net() {
    let cases = [
        (
            "dots",
            "net.ipv4.ip_forward",
            "eth0",
            "/proc/sys/net/ipv4/ip_forward",
        ),
        (
            "slashes",
            "net/ipv4/ip_forward",
            "eth0",
            "/proc/sys/net/ipv4/ip_forward",
        ),
        (
            "leading slash",
            "/net/core/somaxconn",
            "eth0",
            "/proc/sys/net/core/somaxconn",
        ),
        (
            "IFNAME with dots",
            "net.ipv4.conf.IFNAME.rp_filter",
            "eth0",
            "/proc/sys/net/ipv4/conf/eth0/rp_filter",
        ),
        (
            "IFNAME keeps the interface's own dot",
            "net.ipv4.conf.IFNAME.rp_filter",
            "eth0.100",
            "/proc/sys/net/ipv4/conf/eth0.100/rp_filter",
        ),
        (
            "IFNAME with slashes",
            "net/ipv6/conf/IFNAME/accept_ra",
            "net1",
            "/proc/sys/net/ipv6/conf/net1/accept_ra",
        ),
        (
            "only the first IFNAME",
            "net.IFNAME.IFNAME",
            "eth0",
            "/proc/sys/net/eth0/IFNAME",
        ),
    ];
    for (name, key, ifname, want) in cases {
        let s = resolve_sysctl(key, ifname, "1".into()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.path, Path::new(want), "{name}");
        assert_eq!(s.key, key, "{name}: errors name the key as given");
    }
}

#[test]
fn sysctl_path_tricks_are_refused_naming_the_key() {
    let cases = [
        ("another subsystem", "kernel.foo"),
        ("another subsystem, slashes", "kernel/hostname"),
        ("dot-dot out of net", "net/../kernel/x"),
        ("dot-dot via dots", "net...kernel.x"),
        ("absolute dot-dot", "/net/../../etc/passwd"),
        ("net itself", "net"),
        ("net directory", "net/"),
        ("empty component", "net//ipv4/ip_forward"),
        ("trailing dot", "net.ipv4.ip_forward."),
        ("prefix lookalike", "network.foo"),
        ("empty key", ""),
        ("IFNAME outside net", "IFNAME.x"),
    ];
    for (name, key) in cases {
        let e = resolve_sysctl(key, "eth0", "1".into()).expect_err(name);
        assert_eq!(e.code.number(), 7, "{name}");
        assert_eq!(e.msg, format!("invalid net sysctl key: {key:?}"), "{name}");
    }
    // The interface name cannot smuggle a component in either (skel refuses "." and "..",
    // this is the second line of defence).
    let e = resolve_sysctl("net.ipv4.conf.IFNAME.x", "..", "1".into()).expect_err("..");
    assert_eq!(e.code.number(), 7);
}

#[test]
fn sysctl_bad_values_are_refused() {
    for (name, value) in [
        ("empty", ""),
        ("blank", "  "),
        ("newline inside", "1\n0"),
        ("NUL", "1\0"),
    ] {
        let e = resolve_sysctl("net.ipv4.ip_forward", "eth0", value.into()).expect_err(name);
        assert_eq!(e.code.number(), 7, "{name}");
        assert!(e.msg.contains("net.ipv4.ip_forward"), "{name}: {}", e.msg);
    }
    resolve_sysctl("net.ipv4.ip_local_port_range", "eth0", "1024\t65000".into())
        .expect("tabs separate multi-value sysctls");
}

#[test]
fn a_bad_sysctl_fails_the_whole_config() {
    let e = parse(&json!({"sysctl": {"net.ipv4.ip_forward": "1", "kernel.foo": "1"}}))
        .expect_err("kernel.foo");
    assert_eq!(e.msg, r#"invalid net sysctl key: "kernel.foo""#);
    let e = parse(&json!({"args": {"cni": {"sysctl": {"net/../kernel/x": "1"}}}}))
        .expect_err("args.cni sysctl");
    assert!(e.msg.contains("net/../kernel/x"), "{}", e.msg);
}

#[test]
fn duplicated_sysctl_keys_are_refused() {
    let stdin = br#"{"cniVersion":"1.0.0","name":"n","type":"tuning",
        "sysctl":{"net.core.somaxconn":"1","net.core.somaxconn":"2"}}"#;
    let req = request_raw(stdin.to_vec(), "eth0", "");
    let e = Conf::parse(&req, Path::new(NO_ALLOWLIST)).expect_err("duplicate");
    assert_eq!(e.msg, "duplicated sysctl keys are not allowed");
    assert!(e.details.contains("net.core.somaxconn"));
    // Keys that differ (even only in spelling) are different keys, as in Go.
    let stdin = br#"{"cniVersion":"1.0.0","name":"n","type":"tuning",
        "sysctl":{"net.core.somaxconn":"1","net/core/somaxconn":"2"}}"#;
    let req = request_raw(stdin.to_vec(), "eth0", "");
    Conf::parse(&req, Path::new(NO_ALLOWLIST)).expect("different keys");
}

#[test]
fn allowlist_restricts_keys_when_present() {
    let dir = std::env::temp_dir().join(format!("rcni-tuning-allow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let list = dir.join("allowlist.conf");
    std::fs::write(
        &list,
        "^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n\n  ^net\\.core\\.somaxconn$ \n",
    )
    .expect("write allow-list");
    let req = request(
        &json!({"sysctl": {"net.ipv4.conf.IFNAME.rp_filter": "1"}}),
        "",
    );
    Conf::parse(&req, &list).expect("allowed");
    let req = request(&json!({"sysctl": {"net.ipv4.ip_forward": "1"}}), "");
    let e = Conf::parse(&req, &list).expect_err("not allowed");
    assert_eq!(
        e.msg,
        "Sysctl net.ipv4.ip_forward is not allowed. Only the following sysctls are allowed: \
         [^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$ ^net\\.core\\.somaxconn$]"
    );
    std::fs::write(&list, "([unclosed\n").expect("write allow-list");
    let e = Conf::parse(&req, &list).expect_err("bad pattern");
    assert!(e.msg.contains("invalid pattern"), "{}", e.msg);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- link attributes and their sources ----

#[test]
fn mac_sources_override_in_the_reference_order() {
    let mac = |c: &Conf| c.mac.map(|m| m.to_string());
    let base = json!({"mac": "02:00:00:00:00:01"});
    assert_eq!(mac(&conf(&base)).as_deref(), Some("02:00:00:00:00:01"));
    let c = Conf::parse(
        &request(&base, "IgnoreUnknown=1;MAC=02:00:00:00:00:02"),
        Path::new(NO_ALLOWLIST),
    )
    .expect("CNI_ARGS");
    assert_eq!(mac(&c).as_deref(), Some("02:00:00:00:00:02"));
    let with_rc =
        json!({"mac": "02:00:00:00:00:01", "runtimeConfig": {"mac": "02:00:00:00:00:03"}});
    let c = Conf::parse(
        &request(&with_rc, "MAC=02:00:00:00:00:02"),
        Path::new(NO_ALLOWLIST),
    )
    .expect("capability beats CNI_ARGS");
    assert_eq!(mac(&c).as_deref(), Some("02:00:00:00:00:03"));
    let with_args = json!({
        "mac": "02:00:00:00:00:01",
        "runtimeConfig": {"mac": "02:00:00:00:00:03"},
        "args": {"cni": {"mac": "02:00:00:00:00:04"}}
    });
    assert_eq!(mac(&conf(&with_args)).as_deref(), Some("02:00:00:00:00:04"));
    // Unknown CNI_ARGS without IgnoreUnknown: an error, as Go's LoadArgs.
    let e = Conf::parse(&request(&base, "K8S_POD_NAME=x"), Path::new(NO_ALLOWLIST))
        .expect_err("unknown arg");
    assert!(e.msg.contains("K8S_POD_NAME"), "{}", e.msg);
}

#[test]
fn args_cni_overrides_every_attribute() {
    let c = conf(&json!({
        "promisc": true, "mtu": 1400, "allmulti": false, "txQLen": 100,
        "sysctl": {"net.core.somaxconn": "100"},
        "args": {"cni": {"promisc": false, "mtu": 1300, "allmulti": true, "txQLen": 0,
                         "sysctl": {"net.core.somaxconn": "200", "net.ipv4.ip_forward": "1"}}}
    }));
    assert!(!c.promisc);
    assert_eq!(
        (c.mtu, c.allmulti, c.txqlen),
        (Some(1300), Some(true), Some(0))
    );
    let values: Vec<(&str, &str)> = c
        .sysctls
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    assert_eq!(
        values,
        [("net.core.somaxconn", "200"), ("net.ipv4.ip_forward", "1")]
    );
    assert!(c.changes_link());
    assert!(!conf(&json!({"sysctl": {"net.core.somaxconn": "1"}})).changes_link());
}

#[test]
fn bad_attribute_values_are_refused_naming_the_key() {
    let cases = [
        ("negative mtu", json!({"mtu": -1}), "invalid mtu -1"),
        ("huge mtu", json!({"mtu": 5_000_000_000_i64}), "invalid mtu"),
        (
            "negative txQLen",
            json!({"txQLen": -5}),
            "invalid txQLen -5",
        ),
        (
            "bad mac",
            json!({"mac": "zz:00:00:00:00:01"}),
            "for MAC addr",
        ),
        (
            "short mac",
            json!({"mac": "02:00:00:00:01"}),
            "for MAC addr",
        ),
        (
            "8-byte mac",
            json!({"mac": "02:00:00:00:00:00:00:01"}),
            "for MAC addr",
        ),
    ];
    for (name, plugin, want) in cases {
        let e = parse(&plugin).expect_err(name);
        assert_eq!(e.code.number(), 7, "{name}");
        assert!(e.msg.contains(want), "{name}: {}", e.msg);
    }
    // Type mismatches are decoding failures (999), as Go's json.Unmarshal.
    for plugin in [
        json!({"mtu": "1500"}),
        json!({"promisc": "yes"}),
        json!({"sysctl": {"a": 1}}),
    ] {
        let e = parse(&plugin).expect_err("type mismatch");
        assert_eq!(e.code.number(), 999, "{plugin}");
    }
}

#[test]
fn macs_parse_as_go_does() {
    for s in ["0a:58:0A:58:00:02", "0a-58-0a-58-00-02", "0a58.0a58.0002"] {
        assert_eq!(
            parse_go_mac(s).map(|m| m.to_string()).as_deref(),
            Some("0a:58:0a:58:00:02"),
            "{s}"
        );
    }
    for s in [
        "",
        "0a:58:0a:58:00",
        "0a:58:0a:58:00:0g",
        "0a:58-0a:58:00:02",
        "0a580a580002",
    ] {
        assert_eq!(parse_go_mac(s), None, "{s}");
    }
}

#[test]
fn data_dir_defaults_and_del_reads_only_it() {
    assert_eq!(conf(&json!({})).data_dir, Path::new("/run/cni/tuning"));
    let req = request(
        &json!({"dataDir": "/tmp/x", "sysctl": {"kernel.foo": "1"}}),
        "",
    );
    assert_eq!(
        Conf::data_dir(&req).expect("DEL ignores the rest"),
        Path::new("/tmp/x")
    );
}

// ---- link changes against the fake ----

fn fake_with_eth0() -> (FakeNetlink, Link) {
    let mut nl = FakeNetlink::new();
    let link = nl.seed_link("eth0", Some("veth"));
    nl.set_mtu(link.index, 1500).expect("mtu");
    let link = nl.get_link(&LinkRef::Index(link.index)).expect("eth0");
    (nl, link)
}

fn temp_file(tag: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("rcni-tuning-{tag}-{}", std::process::id()))
        .join("ctr_eth0.json")
}

#[test]
fn only_asked_attributes_are_touched_and_backed_up() {
    let (mut nl, link) = fake_with_eth0();
    let file = temp_file("only-asked");
    let c = conf(&json!({"mtu": 1400, "txQLen": 1000}));
    let before = nl.calls().len();
    tune_link(&mut nl, "eth0", &c, &file).expect("tune");
    let sets: Vec<&Call> = nl.calls()[before..]
        .iter()
        .filter(|c| c.op() != Op::GetLink)
        .collect();
    // txQLen already 1000: no call for it.
    assert_eq!(sets, [&Call::SetMtu(link.index, 1400)]);
    let text = std::fs::read_to_string(&file).expect("backup written");
    assert_eq!(text, "{\n \"mtu\": 1500,\n \"txQLen\": 1000\n}");
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}

#[test]
fn a_failed_change_puts_link_and_backup_back() {
    let (mut nl, link) = fake_with_eth0();
    let file = temp_file("rollback");
    let c = conf(&json!({"mac": "02:00:00:00:00:09", "mtu": 1400, "allmulti": true}));
    nl.fail_next(Op::SetAllmulti, libc_einval());
    let e = tune_link(&mut nl, "eth0", &c, &file).expect_err("allmulti fails");
    assert!(e.msg.contains("all-multicast"), "{}", e.msg);
    let now = nl.get_link(&LinkRef::Index(link.index)).expect("eth0");
    assert_eq!((now.mac, now.mtu, now.allmulti), (link.mac, 1500, false));
    assert!(!file.exists(), "no backup left behind");
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}

#[test]
fn a_repeated_add_keeps_the_first_originals() {
    let (mut nl, link) = fake_with_eth0();
    let file = temp_file("repeat");
    tune_link(&mut nl, "eth0", &conf(&json!({"mtu": 1400})), &file).expect("first");
    tune_link(
        &mut nl,
        "eth0",
        &conf(&json!({"mtu": 1300, "promisc": true})),
        &file,
    )
    .expect("second");
    let saved = Backup::parse(&std::fs::read(&file).expect("backup")).expect("parses");
    assert_eq!((saved.mtu, saved.promisc), (1500, Some(false)));
    let now = nl.get_link(&LinkRef::Index(link.index)).expect("eth0");
    restore_link(&mut nl, &now, &saved).expect("restore");
    let back = nl.get_link(&LinkRef::Index(link.index)).expect("eth0");
    assert_eq!((back.mtu, back.promisc), (1500, false));
    let _ = std::fs::remove_dir_all(file.parent().expect("dir"));
}

#[test]
fn check_compares_every_configured_attribute() {
    let (mut nl, link) = fake_with_eth0();
    let c = conf(&json!({"mtu": 1400, "allmulti": true, "txQLen": 5}));
    let e = check_link(&mut nl, "eth0", &c).expect_err("nothing applied yet");
    assert!(
        e.msg.contains("MTU of eth0 is 1400, current value is 1500"),
        "{}",
        e.msg
    );
    apply_link(&mut nl, &link, &c).expect("apply");
    check_link(&mut nl, "eth0", &c).expect("all as configured");
    nl.set_promisc(link.index, true).expect("promisc");
    let e = check_link(&mut nl, "eth0", &c).expect_err("promisc on, not configured");
    assert!(e.msg.contains("configured promisc is false"), "{}", e.msg);
    let e = check_link(&mut nl, "eth9", &c).expect_err("no link");
    assert_eq!(e.msg, "Cannot find container link eth9");
}

fn libc_einval() -> i32 {
    22
}
