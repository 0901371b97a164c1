//! Running a plugin binary the way a runtime does, for tests that compare binaries (ours
//! against the Go reference) or drive one end to end without a namespace.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// How long [`run_plugin`] lets a plugin run before it kills it and fails the test.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(20);

/// What a plugin run left: its exit status (-1 when a signal ended it), stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl PluginOutput {
    /// stdout as JSON: the result, or the error document on failure.
    ///
    /// # Panics
    /// When stdout is not JSON.
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} stderr: {:?}",
                self.stdout, self.stderr
            )
        })
    }

    /// The error document's `code`, or `None` when the plugin succeeded (0 when a failed
    /// plugin printed no code).
    #[must_use]
    pub fn code(&self) -> Option<u64> {
        (self.status != 0).then(|| self.json()["code"].as_u64().unwrap_or(0))
    }

    /// The error document's `msg` (empty when there is none).
    #[must_use]
    pub fn msg(&self) -> String {
        self.json()["msg"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts that the plugin succeeded, naming `what` otherwise.
    ///
    /// # Panics
    /// When the exit status is not 0.
    pub fn ok(self, what: &str) -> PluginOutput {
        assert_eq!(self.status, 0, "{what}: {} {}", self.stdout, self.stderr);
        self
    }
}

/// Runs the plugin binary `bin` with an environment of exactly `env` (the `CNI_*`
/// variables) and `stdin` on its standard input, and collects what it prints. A plugin
/// that fails before reading its input may close stdin; that write error is ignored.
///
/// # Panics
/// When `bin` cannot be started, or runs longer than [`PLUGIN_TIMEOUT`] (it is killed).
pub fn run_plugin(bin: impl AsRef<Path>, env: &[(&str, &str)], stdin: &[u8]) -> PluginOutput {
    run_plugin_in(None, bin, env, stdin)
}

/// As [`run_plugin`], with the plugin started inside `netns` (the "host" namespace of a
/// test) instead of the caller's.
///
/// # Panics
/// As [`run_plugin`].
pub fn run_plugin_in(
    netns: Option<&rcni_netns::NetNs>,
    bin: impl AsRef<Path>,
    env: &[(&str, &str)],
    stdin: &[u8],
) -> PluginOutput {
    let bin = bin.as_ref();
    let mut cmd = Command::new(bin);
    if let Some(ns) = netns {
        rcni_netns::command_in(ns, &mut cmd);
    }
    let mut child = cmd
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in pid_t"));
    // Feeding stdin and draining stdout/stderr run side by side, off this thread: a plugin
    // that prints before it reads, or never reads, can neither block the other pipe nor
    // outlive the deadline. Dropping the pipe after the write is the plugin's EOF.
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let (done, finished) = mpsc::channel::<std::io::Result<Output>>();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let out = match finished.recv_timeout(PLUGIN_TIMEOUT) {
        Ok(out) => out.unwrap_or_else(|e| panic!("waiting for {}: {e}", bin.display())),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("{} ran longer than {PLUGIN_TIMEOUT:?}", bin.display());
        }
    };
    PluginOutput {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
