//! Proof that the test VM of `scripts/vm-test.sh` has the kernel features this machine's
//! kernel lacks (dummy, vlan, ipvlan, vrf, bridge VLAN filtering), driven through the real
//! `ip` and `bridge` tools, and that our release binaries run there.
//!
//! Ignored on the host; in the VM: `scripts/vm-test.sh vm_smoke -- --include-ignored`.

use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A network namespace `rcni-vm-<random>` made with `ip netns add`, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        let name = format!("rcni-vm-{}", rcni_testkit::random_hex(4));
        stdout(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n <ns> ARGS` (words split on spaces), asserting success; returns stdout.
    fn ip(&self, args: &str) -> String {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend(args.split_whitespace());
        stdout(&argv)
    }

    /// Runs a command inside the namespace (`ip netns exec`), asserting success.
    fn exec(&self, args: &str) -> String {
        let mut argv = vec!["ip", "netns", "exec", &self.name];
        argv.extend(args.split_whitespace());
        stdout(&argv)
    }

    /// The `ip -d -j link show` object of `ifname`.
    fn link(&self, ifname: &str) -> Value {
        let doc: Value = serde_json::from_str(&self.ip(&format!("-d -j link show dev {ifname}")))
            .expect("ip -j prints JSON");
        doc[0].clone()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.name]);
    }
}

fn run(argv: &[&str]) -> Output {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {argv:?}: {e}"))
}

fn check(argv: &[&str], out: &Output) {
    assert!(
        out.status.success(),
        "{argv:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout(argv: &[&str]) -> String {
    let out = run(argv);
    check(argv, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn dummy_link() {
    let ns = Netns::new();
    ns.ip("link add dummy0 type dummy");
    ns.ip("addr add 192.0.2.1/24 dev dummy0");
    ns.ip("link set dummy0 up");
    let link = ns.link("dummy0");
    assert_eq!(link["linkinfo"]["info_kind"], "dummy", "{link}");
    let route = ns.ip("route show 192.0.2.0/24");
    assert!(route.contains("dev dummy0"), "{route}");
}

#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn vlan_on_veth() {
    let ns = Netns::new();
    ns.ip("link add veth0 type veth peer name veth1");
    ns.ip("link add link veth0 name veth0.100 type vlan id 100");
    ns.ip("link set veth0 up");
    ns.ip("link set veth0.100 up");
    let link = ns.link("veth0.100");
    assert_eq!(link["linkinfo"]["info_kind"], "vlan", "{link}");
    assert_eq!(link["linkinfo"]["info_data"]["id"], 100, "{link}");
    assert_eq!(link["link"], "veth0", "{link}");
}

#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn ipvlan_on_veth() {
    let ns = Netns::new();
    ns.ip("link add veth0 type veth peer name veth1");
    ns.ip("link add link veth0 name ipvl0 type ipvlan mode l2");
    ns.ip("link set veth0 up");
    ns.ip("link set ipvl0 up");
    let link = ns.link("ipvl0");
    assert_eq!(link["linkinfo"]["info_kind"], "ipvlan", "{link}");
    assert_eq!(link["linkinfo"]["info_data"]["mode"], "l2", "{link}");
    // An ipvlan shares its parent's MAC address.
    assert_eq!(link["address"], ns.link("veth0")["address"], "{link}");
}

#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn vrf_with_a_member() {
    let ns = Netns::new();
    ns.ip("link add vrf0 type vrf table 10");
    ns.ip("link set vrf0 up");
    ns.ip("link add veth0 type veth peer name veth1");
    ns.ip("link set veth0 master vrf0");
    ns.ip("addr add 198.51.100.1/24 dev veth0");
    ns.ip("link set veth0 up");
    let link = ns.link("vrf0");
    assert_eq!(link["linkinfo"]["info_kind"], "vrf", "{link}");
    assert_eq!(link["linkinfo"]["info_data"]["table"], 10, "{link}");
    assert_eq!(ns.link("veth0")["master"], "vrf0");
    // The member's connected route moved to the VRF's table.
    let routes = ns.ip("route show table 10");
    assert!(routes.contains("198.51.100.0/24 dev veth0"), "{routes}");
    // And back to the main table when it leaves (before the namespace goes).
    ns.ip("link set veth0 nomaster");
    let routes = ns.ip("route show table main");
    assert!(routes.contains("198.51.100.0/24 dev veth0"), "{routes}");
}

#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn bridge_vlan_filtering() {
    let ns = Netns::new();
    ns.ip("link add br0 type bridge vlan_filtering 1");
    ns.ip("link add veth0 type veth peer name veth1");
    ns.ip("link set veth0 master br0");
    ns.exec("bridge vlan add dev veth0 vid 100 pvid untagged");
    ns.exec("bridge vlan add dev veth0 vid 200");
    let link = ns.link("br0");
    assert_eq!(link["linkinfo"]["info_data"]["vlan_filtering"], 1, "{link}");
    let doc: Value = serde_json::from_str(&ns.exec("bridge -j vlan show dev veth0"))
        .expect("bridge -j prints JSON");
    let vlans = doc[0]["vlans"].as_array().cloned().unwrap_or_default();
    let vlan = |vid: u64| vlans.iter().find(|v| v["vlan"] == vid).cloned();
    let v100 = vlan(100).unwrap_or_else(|| panic!("no vlan 100: {doc}"));
    let flags = v100["flags"].as_array().cloned().unwrap_or_default();
    assert!(
        flags.contains(&"PVID".into()) && flags.contains(&"Egress Untagged".into()),
        "{doc}"
    );
    assert!(vlan(200).is_some(), "{doc}");
    // The default vlan 1 stays, but pvid 100 took its PVID flag.
    let v1 = vlan(1).unwrap_or_else(|| panic!("no vlan 1: {doc}"));
    assert!(!v1["flags"].to_string().contains("PVID"), "{doc}");
}

/// The tools the plugins and tests use work in the VM: ping over a veth pair between two
/// namespaces, iptables-nft with the matches and targets masquerade and port mappings use,
/// iptables-restore, and nft.
#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn ping_iptables_and_nft() {
    let a = Netns::new();
    let b = Netns::new();
    a.ip(&format!(
        "link add eth0 type veth peer name eth0 netns {}",
        b.name
    ));
    a.ip("addr add 10.99.0.1/24 dev eth0");
    b.ip("addr add 10.99.0.2/24 dev eth0");
    a.ip("link set eth0 up");
    b.ip("link set eth0 up");
    a.exec("ping -c 1 -W 5 10.99.0.2");

    let rules = [
        "iptables -t nat -N RCNI-VM",
        "iptables -t nat -A POSTROUTING -s 10.99.0.0/24 -m comment --comment rcni-vm -j RCNI-VM",
        "iptables -t nat -A RCNI-VM -d 224.0.0.0/4 -j ACCEPT",
        "iptables -t nat -A RCNI-VM -m addrtype ! --dst-type LOCAL -j MASQUERADE",
        "iptables -t nat -A PREROUTING -p tcp -m multiport --dports 80,443 -j DNAT --to-destination 10.99.0.2",
        "iptables -t nat -A OUTPUT -m mark --mark 0x2000/0x2000 -j MARK --set-xmark 0x0/0x2000",
        "iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "ip6tables -t nat -A POSTROUTING -s fd99::/64 -j MASQUERADE",
    ];
    for rule in rules {
        a.exec(rule);
    }
    let dir = std::env::temp_dir().join(format!("rcni-vm-{}", rcni_testkit::random_hex(4)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let restore = dir.join("rules");
    std::fs::write(
        &restore,
        "*nat\n:RCNI-VM-2 - [0:0]\n-A RCNI-VM-2 -j RETURN\nCOMMIT\n",
    )
    .expect("writing rules");
    a.exec(&format!("iptables-restore --noflush {}", restore.display()));
    let saved = a.exec("iptables-save -t nat");
    for want in [
        "-j MASQUERADE",
        "--to-destination 10.99.0.2",
        ":RCNI-VM-2",
        "rcni-vm",
    ] {
        assert!(saved.contains(want), "{want} missing:\n{saved}");
    }
    assert!(
        a.exec("ip6tables-save -t nat")
            .contains("-s fd99::/64 -j MASQUERADE")
    );

    let ruleset = dir.join("ruleset.nft");
    std::fs::write(
        &ruleset,
        "table inet rcni_vm {\n chain post {\n  type nat hook postrouting priority 100;\n  \
         ip saddr 10.99.0.0/24 oifname \"eth0\" masquerade\n }\n}\n",
    )
    .expect("writing ruleset");
    a.exec(&format!("nft -f {}", ruleset.display()));
    let listed = a.exec("nft list table inet rcni_vm");
    assert!(listed.contains("masquerade"), "{listed}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every release plugin binary packed into the VM (all but the `cni` bundle) answers VERSION.
#[test]
#[ignore = "needs a kernel with vlan/dummy/ipvlan/vrf: run with scripts/vm-test.sh"]
fn release_plugins_answer_version() {
    use std::os::unix::fs::PermissionsExt;

    let dir = rcni_integration::our_plugins();
    let mut plugins: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "cni")
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|e| e.path())
        .collect();
    plugins.sort();
    assert!(
        !plugins.is_empty(),
        "no plugin binaries in {}",
        dir.display()
    );
    for plugin in plugins {
        let name = plugin.display().to_string();
        let out = Command::new(&plugin)
            .env_clear()
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {name}: {e}"));
        check(&[&name, "VERSION"], &out);
        let doc: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{name}: VERSION printed no JSON ({e}): {out:?}"));
        assert!(doc["cniVersion"].is_string(), "{name}: {doc}");
        let supported = doc["supportedVersions"].to_string();
        // The reference firewall plugin starts at 0.4.0 (it needs CHECK); ours matches it.
        let oldest: &[&str] = if plugin.ends_with("firewall") {
            &[]
        } else {
            &["0.3.1"]
        };
        for v in oldest.iter().chain(&["0.4.0", "1.0.0", "1.1.0"]) {
            assert!(
                supported.contains(&format!("\"{v}\"")),
                "{name}: {v} missing: {doc}"
            );
        }
    }
}
