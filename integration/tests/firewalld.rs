//! The firewall plugin's firewalld backend against a real firewalld (Debian's), which the
//! test starts inside its throwaway "host" namespace on a private D-Bus system bus, so
//! neither the machine's firewall nor its bus is touched. The plugin finds firewalld the
//! way the reference does (its name owned on the system bus, reached through
//! `DBUS_SYSTEM_BUS_ADDRESS`) and puts the pod's addresses into the zone as sources;
//! the Go firewall plugin and ours remove each other's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, our_plugins, ping, ready};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

const FIREWALLD: &str = "/usr/sbin/firewalld";

/// A D-Bus system bus of the test's own and a firewalld inside `host`'s namespace, both
/// stopped (by PID) when dropped.
struct Firewalld {
    dir: PathBuf,
    address: String,
    bus: Child,
    daemon: Child,
}

impl Firewalld {
    fn start(host: &Host) -> Firewalld {
        let dir = std::env::temp_dir().join(format!("rcni-fwd-{}", rcni_testkit::random_hex(4)));
        std::fs::create_dir_all(&dir).expect("bus dir");
        let socket = dir.join("bus");
        let config = dir.join("bus.conf");
        std::fs::write(&config, bus_config(&socket)).expect("bus config");
        let bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .arg("--nofork")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (package dbus-daemon)");
        let address = format!("unix:path={}", socket.display());
        let log = std::fs::File::create(dir.join("firewalld.log")).expect("log file");
        // `ip netns exec` (which execs, keeping the PID) also gives firewalld the
        // namespace's own view of /sys, as it expects.
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            host.ns.name(),
            FIREWALLD,
            "--nofork",
            "--nopid",
        ])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
        .stdout(log.try_clone().expect("log file"))
        .stderr(log);
        assert!(within_30s(|| socket.exists()), "no D-Bus socket after 30 s");
        let daemon = cmd.spawn().expect("firewalld (package firewalld)");
        let fwd = Firewalld {
            dir,
            address,
            bus,
            daemon,
        };
        if !within_30s(|| fwd.cmd(host, &["--state"]).trim() == "running") {
            let log = std::fs::read_to_string(fwd.dir.join("firewalld.log")).unwrap_or_default();
            let mut state = Command::new("firewall-cmd");
            state
                .arg("--state")
                .env("DBUS_SYSTEM_BUS_ADDRESS", &fwd.address);
            rcni_netns::command_in(&host.ns.netns(), &mut state);
            let state = state.output().expect("firewall-cmd");
            panic!(
                "firewalld is not running after 30 s: firewall-cmd --state: {state:?}; its log:\n{log}"
            );
        }
        fwd
    }

    /// `firewall-cmd ARGS` in the host namespace, on the test's bus; its stdout.
    fn cmd(&self, host: &Host, args: &[&str]) -> String {
        let mut cmd = Command::new("firewall-cmd");
        cmd.args(args).env("DBUS_SYSTEM_BUS_ADDRESS", &self.address);
        rcni_netns::command_in(&host.ns.netns(), &mut cmd);
        let out = cmd.output().expect("firewall-cmd");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn sources(&self, host: &Host, zone: &str) -> Vec<String> {
        self.cmd(host, &[&format!("--zone={zone}"), "--list-sources"])
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        for child in [&mut self.daemon, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
  <!-- permissive: only root on this machine reaches the socket -->
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// Polls `done` until it holds (true) or 30 s have passed (false).
fn within_30s(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > Duration::from_secs(30) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Whether the test can run: root, and firewalld installed (scripts/deps.sh installs it;
/// with RCNI_REQUIRE_ROOT=1 a missing firewalld is a failure, not a skip).
fn firewalld_ready() -> bool {
    if !ready() {
        return false;
    }
    if Path::new(FIREWALLD).exists() {
        return true;
    }
    assert!(
        std::env::var("RCNI_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{FIREWALLD} is missing: run scripts/deps.sh"
    );
    eprintln!("SKIP: {FIREWALLD} is missing");
    false
}

/// The pod: our bridge + host-local, which the firewall plugin is chained after.
fn pod(host: &Host, pod: &TestNetns) -> Value {
    let list = Conflist::new(json!({
        "cniVersion": "1.0.0",
        "name": "fwdnet",
        "plugins": [{"type": "bridge", "bridge": "cni-fwd0", "isGateway": true,
                     "ipam": {"type": "host-local", "dataDir": host.data_dir,
                              "subnet": "10.133.0.0/24"}}]
    }));
    let at = Attachment {
        container_id: "fwdpod",
        ifname: "eth0",
        netns: pod.path(),
    };
    list.add(host, &at)
        .unwrap_or_else(|o| panic!("bridge ADD: {o:?}"))
}

/// The pod's namespace and the result of its bridge ADD.
struct Pod {
    ns: TestNetns,
    prev: Value,
}

/// Runs the firewall plugin from `dir` with `extra` config keys on the pod's result.
fn firewall(
    host: &Host,
    fwd: &Firewalld,
    dir: &Path,
    command: &str,
    pod: &Pod,
    extra: &Value,
) -> Value {
    let prev = &pod.prev;
    let pod = &pod.ns;
    let mut conf = json!({"cniVersion": "1.0.0", "name": "fwdnet", "type": "firewall",
                          "prevResult": prev});
    if let (Some(conf), Some(extra)) = (conf.as_object_mut(), extra.as_object()) {
        conf.extend(extra.clone());
    }
    let netns = pod.path().display().to_string();
    let path = dir.display().to_string();
    let env = [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", "fwdpod"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
        ("DBUS_SYSTEM_BUS_ADDRESS", fwd.address.as_str()),
    ];
    host.run(dir, "firewall", &env, &conf).ok()
}

#[test]
fn firewalld_zone_gets_the_pod_and_loses_it_on_del_with_either_plugin() {
    if !firewalld_ready() {
        return;
    }
    let host = Host::new();
    let fwd = Firewalld::start(&host);
    let ns = TestNetns::new();
    let prev = pod(&host, &ns);
    let p = Pod { ns, prev };
    let (ns, prev) = (&p.ns, &p.prev);
    assert!(ping(ns, "10.133.0.1"), "pod -> gateway");
    let ours = our_plugins();
    let go = PathBuf::from(GO_PLUGINS);
    let none = json!({});

    // No backend key: firewalld is running, so it is the backend, zone "trusted".
    let result = firewall(&host, &fwd, &ours, "ADD", &p, &none);
    assert_eq!(result["ips"], prev["ips"], "prevResult passed on");
    assert_eq!(fwd.sources(&host, "trusted"), ["10.133.0.2/32"]);
    let ruleset = host
        .ns
        .exec_ok(&["nft", "list", "table", "inet", "firewalld"]);
    assert!(ruleset.contains("10.133.0.2"), "{ruleset}");
    firewall(&host, &fwd, &ours, "CHECK", &p, &none);
    assert!(ping(ns, "10.133.0.1"), "pod -> gateway with firewalld");
    // The Go plugin's DEL removes what ours added; ours succeeds on what is gone.
    firewall(&host, &fwd, &go, "DEL", &p, &none);
    assert!(fwd.sources(&host, "trusted").is_empty());
    firewall(&host, &fwd, &ours, "DEL", &p, &none);

    // The other way round, in another zone.
    let zone = json!({"backend": "firewalld", "firewalldZone": "internal"});
    firewall(&host, &fwd, &go, "ADD", &p, &zone);
    assert_eq!(fwd.sources(&host, "internal"), ["10.133.0.2/32"]);
    firewall(&host, &fwd, &ours, "CHECK", &p, &zone);
    firewall(&host, &fwd, &ours, "DEL", &p, &zone);
    assert!(fwd.sources(&host, "internal").is_empty());
    assert!(fwd.sources(&host, "trusted").is_empty());
}
