//! The real libcni (Debian's golang-github-appc-cni-dev) as the runtime: it loads the
//! conflist from a directory, validates every plugin with VERSION, chains ADD, caches the
//! result, and feeds it back on CHECK and DEL.

use std::path::Path;
use std::process::Command;

use rcni_integration::{GO_PLUGINS, Host, addrs_in, libcni_driver, our_plugins, ping, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::json;

/// One runtime's view: its host, CNI_PATH, config dir and result cache.
struct Runtime<'a> {
    host: &'a Host,
    cni_path: String,
    conf_dir: &'a Path,
    cache: &'a Path,
}

impl Runtime<'_> {
    fn run(&self, verb: &str, net: &str, cid: &str, ns: &Path) -> String {
        let mut cmd = Command::new(libcni_driver());
        cmd.arg(verb)
            .arg(self.conf_dir)
            .args([net, cid])
            .arg(ns)
            .arg("eth0")
            .arg(self.cache)
            .env("CNI_PATH", &self.cni_path);
        let netns = rcni_netns::NetNs::open(self.host.ns.path()).expect("host netns");
        rcni_netns::command_in(&netns, &mut cmd);
        let out = cmd.output().expect("running the libcni driver");
        assert!(
            out.status.success(),
            "libcni {verb} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn libcni_runs_a_conflist_of_our_plugins_with_its_result_cache() {
    if !ready() {
        return;
    }
    let host = Host::new();
    let c1 = TestNetns::new();
    let net = format!("rcni-lc-{}", tag());
    let conf_dir = host.data_dir.join("net.d");
    let cache = host.data_dir.join("cache");
    std::fs::create_dir_all(&conf_dir).expect("conf dir");
    let conflist = json!({
        "cniVersion": "0.4.0",
        "name": net,
        "plugins": [
            {"type": "bridge", "bridge": "rcnilc0", "isGateway": true, "ipMasq": true,
             "ipam": {"type": "host-local", "dataDir": host.data_dir, "subnet": "10.120.30.0/24",
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "loopback"}
        ]
    });
    std::fs::write(conf_dir.join("10-rcni.conflist"), conflist.to_string()).expect("conflist");

    // Ours first on CNI_PATH, the Go plugins behind them (as a mixed /opt/cni/bin would be).
    let runtime = Runtime {
        host: &host,
        cni_path: format!("{}:{GO_PLUGINS}", our_plugins().display()),
        conf_dir: &conf_dir,
        cache: &cache,
    };
    runtime.run("validate", &net, "pod1", c1.path());
    let out = runtime.run("add", &net, "pod1", c1.path());
    let result: serde_json::Value = serde_json::from_str(&out).expect("result JSON");
    assert_eq!(result["ips"][0]["address"], "10.120.30.2/24", "{result}");
    assert_eq!(addrs_in(&c1, "eth0"), ["10.120.30.2/24"]);
    assert!(ping(&c1, "10.120.30.1"));
    let cached = cache.join("results").join(format!("{net}-pod1-eth0"));
    assert!(cached.is_file(), "libcni caches the final result");

    runtime.run("check", &net, "pod1", c1.path());
    runtime.run("del", &net, "pod1", c1.path());
    assert!(
        !cached.exists(),
        "libcni drops the cache after a successful DEL"
    );
    assert!(host.reservations(&net).is_empty());
    assert!(
        !host.nat_rules().iter().any(|l| l.contains("10.120.30.")),
        "{:?}",
        host.nat_rules()
    );
    assert_eq!(rcni_integration::links_in(&c1), ["lo"]);
}
