//! The harness for the end-to-end tests in `tests/`: it runs the release binaries the way
//! a runtime does (env + stdin, a conflist run plugin by plugin with `prevResult`), with
//! the "host" itself a throwaway namespace so nothing outside the test is touched.
//!
//! Binaries come from `RCNI_BIN_DIR`, or `target/<triple>/release` for the triple these
//! tests are built for (built by `scripts/test.sh`). The Go reference plugins are in `/usr/lib/cni`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use rcni_testkit::TestNetns;
use serde_json::{Value, json};

/// Where the Go reference plugins live (Debian's containernetworking-plugins).
pub const GO_PLUGINS: &str = "/usr/lib/cni";

/// Our release binaries.
#[must_use]
pub fn our_plugins() -> PathBuf {
    if let Some(dir) = std::env::var_os("RCNI_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ has a parent");
    let triple = if cfg!(target_env = "musl") {
        "x86_64-unknown-linux-musl"
    } else {
        "x86_64-unknown-linux-gnu"
    };
    let dir = root.join("target").join(triple).join("release");
    assert!(
        dir.join("bridge").is_file(),
        "{} has no release binaries: run scripts/test.sh (or cargo build --release) first",
        dir.display()
    );
    dir
}

/// True when the test may run (root); prints SKIP otherwise (fails with RCNI_REQUIRE_ROOT=1).
#[must_use]
pub fn ready() -> bool {
    rcni_testkit::require_root()
}

/// A unique, short tag for names in one test (interfaces are limited to 15 characters).
#[must_use]
pub fn tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{:x}{:x}",
        std::process::id() % 0xfff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One plugin run: exit status, stdout parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct Outcome {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout as JSON (a result or an error document).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} stderr: {:?}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts success and returns the result JSON (or Null for empty output).
    pub fn ok(&self) -> Value {
        assert_eq!(
            self.status, 0,
            "plugin failed: {} {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts failure and returns the error document.
    #[must_use]
    pub fn err(&self) -> Value {
        assert_eq!(
            self.status, 1,
            "plugin should have failed: {} {}",
            self.stdout, self.stderr
        );
        self.json()
    }
}

/// A test's private "host": a network namespace where plugins run, plus a data dir.
pub struct Host {
    pub ns: TestNetns,
    pub data_dir: PathBuf,
}

impl Host {
    #[must_use]
    pub fn new() -> Host {
        let ns = TestNetns::new();
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        let data_dir = std::env::temp_dir().join(format!("rcni-it-{}", ns.name()));
        std::fs::create_dir_all(&data_dir).expect("data dir");
        Host { ns, data_dir }
    }

    /// Runs `plugin` from `dir` inside this host namespace with the CNI env and stdin.
    #[must_use]
    pub fn run(&self, dir: &Path, plugin: &str, env: &[(&str, &str)], stdin: &Value) -> Outcome {
        self.run_raw(dir, plugin, env, stdin.to_string().as_bytes())
    }

    /// As [`Host::run`] with raw stdin bytes (for malformed input).
    #[must_use]
    pub fn run_raw(&self, dir: &Path, plugin: &str, env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
        let mut env = env.to_vec();
        env.push(("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"));
        let ns = rcni_netns::NetNs::open(self.ns.path()).expect("open host netns");
        let out = rcni_testkit::run_plugin_in(Some(&ns), dir.join(plugin), &env, stdin);
        Outcome {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// Runs a shell-free command inside the host namespace; returns stdout (asserts success).
    #[must_use]
    pub fn sh(&self, argv: &[&str]) -> String {
        let out = self.ns.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The nat table as iptables-save prints it, without counters and comments lines.
    #[must_use]
    pub fn nat_rules(&self) -> Vec<String> {
        let mut rules = Vec::new();
        for tool in ["iptables-save", "ip6tables-save"] {
            let out = self.ns.exec(&[tool, "-t", "nat"]);
            rules.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.starts_with("-A") || (l.starts_with(':') && l.contains("CNI-")))
                    .map(str::to_string),
            );
        }
        rules
    }

    /// Names of the links in the host namespace.
    #[must_use]
    pub fn links(&self) -> Vec<String> {
        links_in(&self.ns)
    }

    /// IPAM reservation files of `network` under this host's data dir.
    #[must_use]
    pub fn reservations(&self, network: &str) -> Vec<String> {
        rcni_testkit::dir_names(&self.data_dir.join(network))
            .into_iter()
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
            .collect()
    }

    /// host-local's owner index entries of `network` (`.rcni-index/<network>#...`). An
    /// entry outlives a reservation the Go plugin released until the next rcni verb on
    /// that network, so only a network rcni alone served must have none left.
    #[must_use]
    pub fn index_entries(&self, network: &str) -> Vec<String> {
        rcni_testkit::dir_names(&self.data_dir.join(".rcni-index"))
            .into_iter()
            .filter(|n| n.starts_with(&format!("{network}#")))
            .collect()
    }
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Links of a namespace, by name.
#[must_use]
pub fn links_in(ns: &TestNetns) -> Vec<String> {
    let out = ns.exec(&["ip", "-j", "link", "show"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    doc.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Global addresses ("10.1.2.3/24") of `ifname` in `ns`.
#[must_use]
pub fn addrs_in(ns: &TestNetns, ifname: &str) -> Vec<String> {
    let out = ns.exec(&["ip", "-j", "addr", "show", "dev", ifname]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let mut addrs = Vec::new();
    for link in doc.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] == "global" {
                addrs.push(format!(
                    "{}/{}",
                    a["local"].as_str().unwrap_or(""),
                    a["prefixlen"]
                ));
            }
        }
    }
    addrs
}

/// `ip -j route show` (family "-4" or "-6") in `ns`, as "dst via gw dev X" lines.
#[must_use]
pub fn routes_in(ns: &TestNetns, family: &str) -> Vec<String> {
    let out = ns.exec(&["ip", family, "route", "show"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// One ping from `ns` to `addr`; true when answered.
#[must_use]
pub fn ping(ns: &TestNetns, addr: &str) -> bool {
    ns.exec(&["ping", "-c", "1", "-W", "2", addr])
        .status
        .success()
}

/// An attachment as a runtime sees it: container, ifname, namespace.
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub ifname: &'a str,
    pub netns: &'a Path,
}

impl Attachment<'_> {
    fn env<'b>(&'b self, command: &'b str, netns: &'b str) -> Vec<(&'b str, &'b str)> {
        vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", self.container_id),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", self.ifname),
        ]
    }
}

/// A network configuration list run the way libcni runs it (`buildOneConfig`): `name`
/// and `cniVersion` injected, `prevResult` chained on ADD, the final ADD result given to
/// every plugin on CHECK/DEL (DEL in reverse), `runtimeConfig` from capabilities.
pub struct Conflist {
    pub doc: Value,
    /// Which plugin directory each plugin type is taken from (default: ours).
    pub dirs: HashMap<String, PathBuf>,
    pub default_dir: PathBuf,
    /// CNI_PATH for every plugin (default: the plugin's own directory), so a plugin from
    /// one directory can delegate to an IPAM from another.
    pub cni_path: Option<PathBuf>,
    pub capability_args: Value,
}

impl Conflist {
    #[must_use]
    pub fn new(doc: Value) -> Conflist {
        Conflist {
            doc,
            dirs: HashMap::new(),
            default_dir: our_plugins(),
            cni_path: None,
            capability_args: json!({}),
        }
    }

    /// Takes plugin `kind` from `dir` instead of the default.
    #[must_use]
    pub fn with_dir(mut self, kind: &str, dir: &Path) -> Conflist {
        self.dirs.insert(kind.to_string(), dir.to_path_buf());
        self
    }

    fn plugins(&self) -> Vec<Value> {
        self.doc["plugins"].as_array().cloned().unwrap_or_default()
    }

    fn one_config(&self, plugin: &Value, prev: Option<&Value>) -> Value {
        let mut conf = plugin.clone();
        conf["name"] = self.doc["name"].clone();
        conf["cniVersion"] = self.doc["cniVersion"].clone();
        if let Some(prev) = prev {
            conf["prevResult"] = prev.clone();
        }
        let mut rc = serde_json::Map::new();
        if let Some(caps) = plugin["capabilities"].as_object() {
            for (cap, on) in caps {
                if on.as_bool() == Some(true)
                    && let Some(v) = self.capability_args.get(cap)
                {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
        conf
    }

    /// Delegated plugins are looked up in `dir` instead of each plugin's own directory.
    #[must_use]
    pub fn with_cni_path(mut self, dir: &Path) -> Conflist {
        self.cni_path = Some(dir.to_path_buf());
        self
    }

    fn dir_for(&self, kind: &str) -> &Path {
        self.dirs.get(kind).unwrap_or(&self.default_dir)
    }

    fn path_for(&self, kind: &str) -> String {
        self.cni_path
            .as_deref()
            .unwrap_or_else(|| self.dir_for(kind))
            .display()
            .to_string()
    }

    /// ADD through the list; the final result, or the first failure.
    pub fn add(&self, host: &Host, at: &Attachment) -> Result<Value, Outcome> {
        let netns = at.netns.display().to_string();
        let mut prev: Option<Value> = None;
        for plugin in self.plugins() {
            let kind = plugin["type"].as_str().unwrap_or_default().to_string();
            let dir = self.dir_for(&kind);
            let mut env = at.env("ADD", &netns);
            let path = self.path_for(&kind);
            env.push(("CNI_PATH", &path));
            let out = host.run(dir, &kind, &env, &self.one_config(&plugin, prev.as_ref()));
            if out.status != 0 {
                return Err(out);
            }
            prev = Some(out.json());
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// CHECK (or DEL, in reverse) with the cached final result; the first failure.
    pub fn verb(
        &self,
        host: &Host,
        at: &Attachment,
        command: &str,
        result: Option<&Value>,
    ) -> Result<(), Outcome> {
        let netns = at.netns.display().to_string();
        let mut plugins = self.plugins();
        if command == "DEL" {
            plugins.reverse();
        }
        for plugin in plugins {
            let kind = plugin["type"].as_str().unwrap_or_default().to_string();
            let dir = self.dir_for(&kind);
            let mut env = at.env(command, &netns);
            let path = self.path_for(&kind);
            env.push(("CNI_PATH", &path));
            let out = host.run(dir, &kind, &env, &self.one_config(&plugin, result));
            if out.status != 0 {
                return Err(out);
            }
        }
        Ok(())
    }
}

/// The libcni test driver (`integration/libcni-driver/main.go`), built once with Debian's
/// Go and libcni sources (packages golang-go, golang-github-appc-cni-dev) into `target/`.
#[must_use]
pub fn libcni_driver() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let here = Path::new(env!("CARGO_MANIFEST_DIR"));
            let out_dir = here
                .parent()
                .expect("workspace")
                .join("target/libcni-driver");
            std::fs::create_dir_all(&out_dir).expect("target/libcni-driver");
            let out = out_dir.join(format!("rcni-libcni-{}", std::process::id()));
            let status = Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(here.join("libcni-driver"))
                .env("GO111MODULE", "off")
                .env("GOPATH", "/usr/share/gocode")
                .env("GOCACHE", out_dir.join("gocache"))
                .env("GOFLAGS", "")
                .status()
                .expect("running go build (package golang-go)");
            assert!(status.success(), "building the libcni driver failed");
            out
        })
        .clone()
}
