//! Helpers for the kernel tests: each test runs on its own thread inside a private network
//! namespace (its own netfilter tables), so the host's rules are never touched. Without root
//! the tests print SKIP, or fail when `RCNI_REQUIRE_ROOT=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::sched::{CloneFlags, unshare};

use crate::exec::spawned_on_this_thread;

pub(crate) const GO_BRIDGE: &str = "/usr/lib/cni/bridge";

/// Runs `body` on a fresh thread that first moves into a new network namespace.
pub(crate) fn in_private_netns(test: &str, body: impl FnOnce() + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("RCNI_REQUIRE_ROOT").as_deref() != Ok("1"),
            "{test}: needs root and RCNI_REQUIRE_ROOT=1 is set"
        );
        eprintln!("SKIP {test}: needs root");
        return;
    }
    let thread = std::thread::spawn(move || {
        // Per thread: the tools we spawn from here inherit this namespace.
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare a private network namespace");
        body();
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Runs a tool that must succeed; its stdout.
pub(crate) fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `cmd` with `stdin` written to its input; its output.
pub(crate) fn feed(mut cmd: Command, stdin: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {:?}: {e}", cmd.get_program()));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Runs a tool that must succeed with `stdin` as its input; its stdout.
pub(crate) fn run_with_stdin(tool: &str, args: &[&str], stdin: &str) -> String {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    let out = feed(cmd, stdin);
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Whether a tool run succeeds (for checks expected to fail, such as a blocked ping).
pub(crate) fn succeeds(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("running {tool}: {e}"))
        .success()
}

/// Processes spawned by `f` on this thread.
pub(crate) fn spawns<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = spawned_on_this_thread();
    let value = f();
    (value, spawned_on_this_thread() - before)
}

pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rcni-fw-{tag}-{}", unique()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Differs between threads and test processes.
pub(crate) fn unique() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!(
        "{}-{:08x}",
        std::process::id(),
        RandomState::new().hash_one(std::thread::current().id()) as u32
    )
}

/// A named network namespace at /var/run/netns/<name>, created by the test and deleted on
/// drop.
pub(crate) struct ContainerNs(pub(crate) String);

impl ContainerNs {
    pub(crate) fn create(prefix: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{prefix}-{}-{}",
            unique(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_tool("ip", &["netns", "add", &name]);
        Self(name)
    }

    pub(crate) fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }

    pub(crate) fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for ContainerNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Runs the Go bridge plugin from this thread, so its host namespace is ours; its stdout.
pub(crate) fn go_bridge(command: &str, conf: &str, ns: &ContainerNs, cid: &str) -> String {
    let path = format!(
        "/usr/sbin:/usr/bin:/sbin:/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new(GO_BRIDGE);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", ns.path())
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .env("PATH", path);
    let out = feed(cmd, conf);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "Go bridge {command}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether the Go bridge is installed; a SKIP (or a failure with `RCNI_REQUIRE_ROOT=1`) if not.
pub(crate) fn require_go_bridge(test: &str) -> bool {
    if Path::new(GO_BRIDGE).exists() {
        return true;
    }
    assert!(
        std::env::var("RCNI_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{test}: {GO_BRIDGE} is missing and RCNI_REQUIRE_ROOT=1 is set"
    );
    eprintln!("SKIP {test}: {GO_BRIDGE} not installed");
    false
}
