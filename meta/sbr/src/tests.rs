use rcni_netlink::{FakeNetlink, Netlink, Op, RouteSpec, RuleSpec};
use rcni_skel::Command;
use rcni_testkit::request;
use rcni_types::{Code, Interface, IpConfig, Success};
use serde_json::json;

use super::*;

fn conf(keys: &serde_json::Value) -> Result<Conf> {
    Conf::parse(&request(Command::Add, "sbr", keys))
}

fn net(s: &str) -> IpNetwork {
    s.parse().expect("net")
}

fn ipc(addr: &str, gw: Option<&str>, iface: Option<usize>) -> IpConfig {
    IpConfig::new(net(addr), gw.map(|g| g.parse().expect("gw")), iface)
}

fn prev() -> Success {
    let mut s = Success {
        cni_version: "1.0.0".into(),
        ..Success::default()
    };
    s.interfaces = vec![
        Interface {
            name: "eth0".into(),
            ..Interface::default()
        },
        Interface {
            name: "net1".into(),
            ..Interface::default()
        },
    ];
    s.ips = vec![
        ipc("10.0.0.5/24", Some("10.0.0.1"), Some(0)),
        ipc("10.1.0.5/24", Some("10.1.0.1"), Some(1)),
        ipc("fd00::5/64", None, None),
    ];
    s
}

#[test]
fn config_defaults() {
    assert_eq!(conf(&json!({})).expect("ok"), Conf::default());
}

#[test]
fn config_table_and_keys() {
    let c =
        conf(&json!({"table": 200, "gateways": ["10.9.0.1", "fd00::1"], "addSourceHints": true}))
            .expect("ok");
    assert_eq!(c.table, Some(200));
    assert_eq!(c.gateways.len(), 2);
    assert!(c.add_source_hints);
}

#[test]
fn config_bad_table_names_key() {
    for t in [json!(0), json!(-1), json!(5_000_000_000_i64)] {
        let e = conf(&json!({ "table": t })).expect_err("bad table");
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(e.msg.contains("\"table\""), "{}", e.msg);
    }
}

#[test]
fn config_table_of_wrong_type() {
    assert!(conf(&json!({"table": "x"})).is_err());
}

#[test]
fn config_more_than_two_gateways() {
    let e = conf(&json!({"gateways": ["10.0.0.1", "fd00::1", "10.0.0.2"]})).expect_err("3");
    assert!(e.msg.contains("more than 2 entries"), "{}", e.msg);
}

#[test]
fn config_bad_gateway_names_key() {
    let e = conf(&json!({"gateways": ["nope"]})).expect_err("bad gw");
    assert!(e.msg.contains("\"gateways\""), "{}", e.msg);
    let e = conf(&json!({"gateways": ["10.0.0.1", "10.0.0.2"]})).expect_err("two v4");
    assert!(e.msg.contains("more than one IPv4"), "{}", e.msg);
}

#[test]
fn interface_ips_filters_by_name() {
    let ips = interface_ips(&prev(), "net1").expect("ips");
    let addrs: Vec<_> = ips.iter().map(|i| i.address.to_string()).collect();
    assert_eq!(addrs, ["10.1.0.5/24", "fd00::5/64"]);
}

#[test]
fn interface_ips_none_is_an_error() {
    let e = interface_ips(&Success::default(), "eth0").expect_err("empty");
    assert!(
        e.msg
            .contains("No IP addresses supplied on interface: eth0")
    );
}

fn seeded() -> (FakeNetlink, u32) {
    let nl = FakeNetlink::new();
    let link = nl.seed_link("net1", Some("veth"));
    (nl, link.index)
}

#[test]
fn setup_picks_free_tables_adds_rules_and_moves_routes() {
    let (mut nl, idx) = seeded();
    // Table 100 is taken by a rule, 101 by a route.
    nl.add_rule(&RuleSpec::from_source(net("192.168.0.1/32"), 100))
        .expect("rule");
    let other = nl.seed_link("other", Some("veth"));
    let mut r = RouteSpec::new(net("192.168.9.0/24"));
    r.oif = Some(other.index);
    r.table = Some(101);
    nl.add_route(&r).expect("route");
    let mut connected = RouteSpec::new(net("10.1.0.0/24"));
    connected.oif = Some(idx);
    nl.add_route(&connected).expect("route");

    let ips = interface_ips(&prev(), "net1").expect("ips");
    let table = setup(&mut nl, "net1", &ips, &Conf::default()).expect("setup");
    assert_eq!(table, 102);
    let rules = nl.rule_list();
    assert!(rules.contains(&RuleSpec::from_source(net("10.1.0.5/32"), 102)));
    // One table per address: the IPv6 one gets the next free table.
    assert!(rules.contains(&RuleSpec::from_source(net("fd00::5/128"), 103)));
    let routes = nl.route_list();
    assert!(
        routes
            .iter()
            .any(|r| r.dst == net("0.0.0.0/0") && r.table == Some(102) && r.oif == Some(idx))
    );
    assert!(
        routes
            .iter()
            .any(|r| r.dst == net("10.1.0.0/24") && r.table == Some(102))
    );
    assert!(
        !routes
            .iter()
            .any(|r| r.oif == Some(idx) && r.table.unwrap_or(254) == 254)
    );
}

#[test]
fn setup_with_table_only_adds_rules() {
    let (mut nl, idx) = seeded();
    let mut connected = RouteSpec::new(net("10.1.0.0/24"));
    connected.oif = Some(idx);
    nl.add_route(&connected).expect("route");
    let ips = interface_ips(&prev(), "net1").expect("ips");
    let c = Conf {
        table: Some(300),
        ..Conf::default()
    };
    assert_eq!(setup(&mut nl, "net1", &ips, &c).expect("setup"), 300);
    assert_eq!(nl.rule_list().len(), 2);
    assert!(nl.route_list().iter().all(|r| r.table != Some(300)));
    check_rules(&mut nl, &ips, &c).expect("check");
}

#[test]
fn setup_gateways_override_and_source_hints() {
    let (mut nl, idx) = seeded();
    let ips = interface_ips(&prev(), "net1").expect("ips");
    let c = Conf {
        gateways: vec![
            "10.1.0.254".parse().expect("ip"),
            "fd00::1".parse().expect("ip"),
        ],
        add_source_hints: true,
        ..Conf::default()
    };
    let table = setup(&mut nl, "net1", &ips, &c).expect("setup");
    let routes = nl.route_list();
    let v4 = routes
        .iter()
        .find(|r| r.dst == net("0.0.0.0/0") && r.table == Some(table))
        .expect("v4 default");
    assert_eq!(v4.gw, Some("10.1.0.254".parse().expect("ip")));
    assert_eq!(v4.oif, Some(idx));
    // The subnet route stays in main with the source hint.
    let hinted = routes
        .iter()
        .find(|r| r.dst == net("10.1.0.0/24") && r.table.unwrap_or(254) == 254)
        .expect("subnet route in main");
    assert_eq!(hinted.src, Some("10.1.0.5".parse().expect("ip")));
    assert!(
        routes
            .iter()
            .any(|r| r.dst == net("::/0") && r.gw == Some("fd00::1".parse().expect("ip")))
    );
}

#[test]
fn setup_failure_undoes_rules() {
    let (mut nl, _) = seeded();
    nl.fail_next(Op::AddRoute, libc_eperm());
    let ips = interface_ips(&prev(), "net1").expect("ips");
    let e = setup(&mut nl, "net1", &ips, &Conf::default()).expect_err("fails");
    assert!(
        e.msg.contains("Failed to add default route to 10.1.0.1"),
        "{}",
        e.msg
    );
    assert!(nl.rule_list().is_empty());
}

fn libc_eperm() -> i32 {
    1
}

#[test]
fn setup_missing_link() {
    let mut nl = FakeNetlink::new();
    let ips = interface_ips(&prev(), "net1").expect("ips");
    let e = setup(&mut nl, "net1", &ips, &Conf::default()).expect_err("no link");
    assert!(e.msg.contains("Cannot find network interface net1"));
    assert!(nl.rule_list().is_empty());
}

#[test]
fn tidy_removes_only_matching_rules() {
    let (mut nl, _) = seeded();
    nl.add_rule(&RuleSpec::from_source(net("10.1.0.5/32"), 100))
        .expect("rule");
    nl.add_rule(&RuleSpec::from_source(net("10.0.0.5/32"), 101))
        .expect("rule");
    tidy_rules(&mut nl, &["10.1.0.5".parse().expect("ip")], Some(7)).expect("tidy");
    assert_eq!(nl.rule_list().len(), 2, "other tables are left alone");
    tidy_rules(&mut nl, &["10.1.0.5".parse().expect("ip")], None).expect("tidy");
    assert_eq!(
        nl.rule_list(),
        vec![RuleSpec::from_source(net("10.0.0.5/32"), 101)]
    );
}

#[test]
fn check_reports_missing_rule() {
    let (mut nl, _) = seeded();
    let ips = interface_ips(&prev(), "net1").expect("ips");
    let e = check_rules(&mut nl, &ips, &Conf::default()).expect_err("missing");
    assert!(e.msg.contains("10.1.0.5/32"), "{}", e.msg);
}

#[test]
fn del_without_netns_succeeds() {
    let req = request(Command::Del, "sbr", &json!({}));
    Sbr.del(&req).expect("del");
}

#[test]
fn add_without_prev_result_fails() {
    let req = request(Command::Add, "sbr", &json!({}));
    let e = Sbr.add(&req).expect_err("no prev");
    assert!(e.msg.contains("chained plugin"));
}
