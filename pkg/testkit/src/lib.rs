//! Throwaway namespaces and fixtures for rcni tests.
//!
//! Kernel tests never touch the host's namespace: each one either moves its own thread into
//! a fresh namespace ([`unshare_thread_netns`]) or works in a named throwaway namespace
//! ([`TestNetns`]) that disappears when the test ends, also when it panics.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use rcni_netns::NetNs;

pub mod fake_ipam;
mod lo;
mod plugin;
mod request;

pub use plugin::{PLUGIN_TIMEOUT, PluginOutput, run_plugin, run_plugin_in};
pub use request::request;

/// Set to `1` to turn skipped root-only tests into failures (CI runs as root).
pub const REQUIRE_ROOT_ENV: &str = "RCNI_REQUIRE_ROOT";
/// Where named namespaces are mounted, as `ip netns` does.
pub const NETNS_RUN_DIR: &str = "/run/netns";
/// Every namespace made by [`TestNetns`] has a name starting with this.
pub const TEST_NETNS_PREFIX: &str = "rcni-t-";

/// True when running as root; otherwise prints `SKIP <test>` and returns false, or panics
/// when `RCNI_REQUIRE_ROOT=1`.
#[must_use]
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_string();
    assert!(
        std::env::var(REQUIRE_ROOT_ENV).as_deref() != Ok("1"),
        "{test} needs root and {REQUIRE_ROOT_ENV}=1 forbids skipping it"
    );
    // Straight to stderr: the test harness captures print!/eprint! of passing tests, and
    // a skip must stay visible.
    let _ = writeln!(io::stderr(), "SKIP {test}: needs root");
    false
}

/// Moves the calling thread into a new, empty network namespace and brings `lo` up.
///
/// Each test runs on its own thread, so this isolates one test; child processes spawned
/// from this thread (`ip`, `iptables`) inherit the namespace.
///
/// # Panics
/// When the namespace cannot be created (not root) or `lo` cannot be brought up.
pub fn unshare_thread_netns() {
    unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET) needs root");
    lo::set_lo_up().expect("bringing lo up in the new netns");
}

/// The names in `dir`, sorted; none when it cannot be read.
#[must_use]
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `n` random bytes from the kernel, as lowercase hex.
#[must_use]
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A named network namespace under `/run/netns` (usable with `ip netns exec`) that lives
/// as long as the value; its `lo` is down, as after `ip netns add`.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
    path: PathBuf,
}

impl TestNetns {
    /// Creates `rcni-t-<random hex>` without changing the caller's namespace: a short-lived
    /// thread unshares and bind-mounts its namespace file onto `/run/netns/<name>`.
    ///
    /// # Panics
    /// When not root or the mount fails.
    #[must_use]
    pub fn new() -> TestNetns {
        prepare_run_dir();
        let (name, path) = loop {
            let name = format!("{TEST_NETNS_PREFIX}{}", random_hex(4));
            let path = Path::new(NETNS_RUN_DIR).join(&name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => break (name, path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating {}: {e}", path.display()),
            }
        };
        // From here on, Drop removes the file whatever happens next.
        let ns = TestNetns { name, path };
        let target = ns.path.clone();
        let mounted = std::thread::spawn(move || -> nix::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some(rcni_netns::THREAD_SELF_NETNS),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .expect("netns thread panicked");
        if let Err(e) = mounted {
            panic!("creating netns {}: {e}", ns.path.display());
        }
        ns
    }

    /// The namespace's name (for `ip netns exec <name>`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh handle on the namespace.
    ///
    /// # Panics
    /// When the namespace file cannot be opened.
    #[must_use]
    pub fn netns(&self) -> NetNs {
        NetNs::open(&self.path).unwrap_or_else(|e| panic!("opening {}: {e}", self.path.display()))
    }

    /// Runs `f` on the calling thread inside the namespace, then switches back.
    ///
    /// # Panics
    /// When the namespace cannot be entered.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        self.netns()
            .run(f)
            .unwrap_or_else(|e| panic!("entering {}: {e}", self.name))
    }

    /// Runs `argv` inside the namespace and returns its output (failures are in the
    /// status; only a failure to start panics).
    ///
    /// # Panics
    /// When `argv` is empty or the program cannot be started.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let (program, args) = argv.split_first().expect("exec needs a program");
        let mut cmd = Command::new(program);
        cmd.args(args);
        rcni_netns::command_in(&self.netns(), &mut cmd);
        cmd.output()
            .unwrap_or_else(|e| panic!("running {argv:?} in {}: {e}", self.name))
    }

    /// Runs `argv` inside the namespace, asserts it succeeded and returns its stdout.
    ///
    /// # Panics
    /// When the program cannot be started or exits unsuccessfully.
    #[must_use]
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Default for TestNetns {
    fn default() -> Self {
        TestNetns::new()
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // As `ip netns delete`: detach the bind mount (the namespace dies with its last
        // user), then remove the file. Errors are reported, not raised: this also runs while
        // a failing test unwinds.
        if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH)
            && e != nix::errno::Errno::EINVAL
        {
            let _ = writeln!(io::stderr(), "unmounting {}: {e}", self.path.display());
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            let _ = writeln!(io::stderr(), "removing {}: {e}", self.path.display());
        }
    }
}

/// Makes `/run/netns` a shared mount point, as `ip netns add` does, so that namespace
/// mounts made here are seen by mount namespaces created later (and vice versa).
fn prepare_run_dir() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::fs::create_dir_all(NETNS_RUN_DIR).expect("creating /run/netns");
        let make_shared = || {
            mount(
                None::<&str>,
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
        };
        if make_shared() == Err(nix::errno::Errno::EINVAL) {
            // Not a mount point yet: bind it onto itself first (iproute2 does the same).
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .expect("bind-mounting /run/netns onto itself");
            make_shared().expect("making /run/netns shared");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_two_chars_per_byte() {
        let h = random_hex(4);
        assert_eq!(h.len(), 8);
        assert!(
            h.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }

    #[test]
    fn test_netns_is_separate_and_removed_on_drop() {
        if !require_root() {
            return;
        }
        let before = NetNs::current().expect("current netns");
        let path = {
            let ns = TestNetns::new();
            assert!(ns.name().starts_with(TEST_NETNS_PREFIX));
            assert_eq!(ns.name().len(), TEST_NETNS_PREFIX.len() + 8);
            assert!(!ns.netns().same_as(&before), "must be a new namespace");
            assert!(
                NetNs::current().expect("current").same_as(&before),
                "caller moved"
            );
            let links = ns.exec_ok(&["ip", "-o", "link", "show"]);
            assert_eq!(links.lines().count(), 1, "only lo: {links}");
            assert!(
                links.contains("lo:") && links.contains("state DOWN"),
                "{links}"
            );
            let listed = Command::new("ip")
                .args(["netns", "list"])
                .output()
                .expect("ip netns");
            assert!(String::from_utf8_lossy(&listed.stdout).contains(ns.name()));
            ns.path().to_path_buf()
        };
        assert!(!path.exists(), "{} left behind", path.display());
    }

    #[test]
    fn test_netns_is_removed_when_the_test_panics() {
        if !require_root() {
            return;
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let result = std::thread::spawn(move || {
            let ns = TestNetns::new();
            tx.send(ns.path().to_path_buf()).expect("send path");
            panic!("deliberate");
        })
        .join();
        assert!(result.is_err());
        let path = rx.recv().expect("path");
        assert!(!path.exists(), "{} left behind", path.display());
    }

    #[test]
    fn unshared_thread_has_only_lo_up() {
        if !require_root() {
            return;
        }
        let host = NetNs::current().expect("current netns");
        unshare_thread_netns();
        assert!(!NetNs::current().expect("current").same_as(&host));
        let out = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .expect("ip link");
        let links = String::from_utf8_lossy(&out.stdout);
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(
            links.contains("lo:") && links.contains("LOOPBACK,UP"),
            "{links}"
        );
    }

    #[test]
    fn run_enters_and_leaves() {
        if !require_root() {
            return;
        }
        let ns = TestNetns::new();
        let host = NetNs::current().expect("current netns");
        let inside = ns.run(|| NetNs::current().expect("inside"));
        assert!(inside.same_as(&ns.netns()));
        assert!(NetNs::current().expect("after").same_as(&host));
    }
}
