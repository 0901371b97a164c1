//! Delegated plugins (IPAM): find the binary on CNI_PATH, run it with the caller's
//! environment and stdin, read its result or pass its error up unchanged (libcni
//! `invoke`, reference §1.4).
//!
//! [`Delegate::start`] returns as soon as the process runs, so a plugin can create its
//! links while IPAM works ([`Running::wait`] collects the answer): DESIGN §7.
//!
//! In the multi-call binary, a delegate whose file on CNI_PATH is this very executable
//! (the `host-local -> cni` symlink of the multi-call layout) is run in this process
//! instead, through the same dispatcher and with the same environment and stdin: exec'ing
//! it would run the same code ([`run_own_delegates_in_process`]).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::OnceLock;

use rcni_skel::{Command, Env, Plugin, Request};
use rcni_types::{Error, Result, Success};

/// How the multi-call binary finds its plugins by name.
pub type FindPlugin = fn(&str) -> Option<Box<dyn Plugin>>;

static OWN_PLUGINS: OnceLock<FindPlugin> = OnceLock::new();

/// The delegates that may run in-process: file and socket work only, no namespace or
/// process state of their own.
const IN_PROCESS_KINDS: [&str; 2] = ["host-local", "static"];

/// Lets delegates that are this executable run in-process (see the module docs); called
/// by the multi-call binary before it dispatches.
pub fn run_own_delegates_in_process(find: FindPlugin) {
    let _ = OWN_PLUGINS.set(find);
}

/// A delegated plugin of a given `type`, resolved on CNI_PATH.
#[derive(Debug, Clone)]
pub struct Delegate {
    kind: String,
    binary: PathBuf,
}

impl Delegate {
    /// Finds `kind` in the request's CNI_PATH directories.
    ///
    /// # Errors
    /// Not found (Go's wording: `failed to find plugin "x" in path [...]`), or a `kind`
    /// that is not a plain file name.
    pub fn find(kind: &str, req: &Request) -> Result<Delegate> {
        find_in_path(kind, &req.path).map(|binary| Delegate {
            kind: kind.to_string(),
            binary,
        })
    }

    #[must_use]
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Starts the delegate for `command` with the request's env and stdin bytes.
    ///
    /// # Errors
    /// The process cannot be started or fed.
    pub fn start(&self, command: Command, req: &Request) -> Result<Running> {
        self.start_with_stdin(command, req, &req.stdin)
    }

    /// As [`Delegate::start`], with other stdin bytes (e.g. a config without prevResult).
    ///
    /// # Errors
    /// The process cannot be started or fed.
    pub fn start_with_stdin(
        &self,
        command: Command,
        req: &Request,
        stdin: &[u8],
    ) -> Result<Running> {
        let launch = match self.own_plugin() {
            Some(plugin) => Launch::Ran(run_in_process(plugin.as_ref(), command, req, stdin)),
            None => Launch::Started(self.spawn(command, req, stdin)?),
        };
        Ok(Running {
            kind: self.kind.clone(),
            command,
            launch,
            version: req.version().to_string(),
        })
    }

    /// The plugin this delegate runs, when its file is this executable and it may run
    /// in-process.
    fn own_plugin(&self) -> Option<Box<dyn Plugin>> {
        let find = OWN_PLUGINS.get()?;
        if !IN_PROCESS_KINDS.contains(&self.kind.as_str()) {
            return None;
        }
        let file = std::fs::metadata(&self.binary).ok()?;
        let own = std::fs::metadata("/proc/self/exe").ok()?;
        (file.dev() == own.dev() && file.ino() == own.ino())
            .then(|| find(&self.kind))
            .flatten()
    }

    /// Starts the delegate's process and writes its stdin.
    fn spawn(&self, command: Command, req: &Request, stdin: &[u8]) -> Result<Child> {
        let mut child = Process::new(&self.binary)
            .envs(delegate_vars(command, req))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::internal(format!(
                    "failed to run {} plugin {}: {e}",
                    self.kind,
                    self.binary.display()
                ))
            })?;
        // Configs are far below the pipe buffer; a plugin that exits without reading
        // gives EPIPE, which is its answer to read, not ours to report.
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(stdin);
        }
        Ok(child)
    }

    /// Runs ADD to completion and returns its result.
    ///
    /// # Errors
    /// The delegate's own error, unchanged, or a failure to run or parse it.
    pub fn add(&self, req: &Request) -> Result<Success> {
        self.start(Command::Add, req)?.wait_result()
    }

    /// Runs a verb without output (DEL, CHECK, STATUS, GC) to completion.
    ///
    /// # Errors
    /// The delegate's own error, unchanged, or a failure to run it.
    pub fn call(&self, command: Command, req: &Request) -> Result<()> {
        self.start(command, req)?.wait().map(|_| ())
    }
}

/// The CNI_* variables a delegate is given for `command`.
fn delegate_vars(command: Command, req: &Request) -> [(&'static str, OsString); 6] {
    [
        ("CNI_COMMAND", command.as_str().into()),
        ("CNI_CONTAINERID", req.container_id.clone().into()),
        (
            "CNI_NETNS",
            req.netns.clone().map(OsString::from).unwrap_or_default(),
        ),
        ("CNI_IFNAME", req.ifname.clone().into()),
        ("CNI_ARGS", req.raw_args.clone().into()),
        (
            "CNI_PATH",
            std::env::join_paths(&req.path).unwrap_or_default(),
        ),
    ]
}

/// A delegate's environment in this process: [`delegate_vars`], and anything else from
/// this process's environment, as an exec'd delegate inherits it; read as
/// `std::env::var` reads (a value that is not UTF-8 is no value).
struct DelegateEnv([(&'static str, OsString); 6]);

impl Env for DelegateEnv {
    fn var(&self, key: &str) -> Option<String> {
        match self.0.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => v.to_str().map(str::to_owned),
            None => std::env::var(key).ok(),
        }
    }
}

/// Runs `plugin` as the delegate's process would run: same dispatcher, environment and
/// stdin; returns its exit status and output.
fn run_in_process(plugin: &dyn Plugin, command: Command, req: &Request, stdin: &[u8]) -> Ran {
    let env = DelegateEnv(delegate_vars(command, req));
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let status = rcni_skel::run_with(plugin, &env, &mut &stdin[..], &mut stdout, &mut stderr);
    Ran {
        success: status == 0,
        stdout,
        stderr,
    }
}

/// A delegate that ran in this process.
#[derive(Debug)]
struct Ran {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The delegate's process, or what it answered in this process.
#[derive(Debug)]
enum Launch {
    Started(Child),
    Ran(Ran),
}

/// A started delegate.
#[derive(Debug)]
pub struct Running {
    kind: String,
    command: Command,
    launch: Launch,
    version: String,
}

impl Running {
    /// Waits for the delegate; returns its stdout on success.
    ///
    /// # Errors
    /// Its error document unchanged (libcni passes `*types.Error` up), or
    /// `netplugin failed` with its output when it printed none.
    pub fn wait(self) -> Result<Vec<u8>> {
        let kind = self.kind;
        let verb = self.command.as_str();
        let out = match self.launch {
            Launch::Started(child) => {
                let out = child.wait_with_output().map_err(|e| {
                    Error::internal(format!("waiting for {kind} plugin ({verb}): {e}"))
                })?;
                Ran {
                    success: out.status.success(),
                    stdout: out.stdout,
                    stderr: out.stderr,
                }
            }
            Launch::Ran(ran) => ran,
        };
        if out.success {
            return Ok(out.stdout);
        }
        if let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&out.stdout)
            && let Some(e) = Error::from_json(&doc)
        {
            return Err(e);
        }
        let text = if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        };
        Err(Error::internal(format!(
            "netplugin failed: {:?}",
            String::from_utf8_lossy(text).trim_end()
        )))
    }

    /// Waits for an ADD and parses its result (in the config's version).
    ///
    /// # Errors
    /// As [`Running::wait`], or a result that does not parse.
    pub fn wait_result(self) -> Result<Success> {
        let kind = self.kind.clone();
        let version = self.version.clone();
        let stdout = self.wait()?;
        let doc: serde_json::Value = serde_json::from_slice(&stdout)
            .map_err(|e| Error::decoding(format!("decoding result of {kind} plugin: {e}")))?;
        Success::from_json(&doc, &version)
    }
}

/// First `dir/kind` that is a file, in CNI_PATH order.
///
/// # Errors
/// Not found, with Go's wording.
pub fn find_in_path(kind: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    if kind.is_empty() || kind.contains('/') {
        return Err(Error::invalid_config(format!(
            "invalid plugin type {kind:?}"
        )));
    }
    if dirs.is_empty() {
        return Err(Error::invalid_env(format!(
            "no paths provided to find plugin {kind:?}"
        )));
    }
    dirs.iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            Error::internal(format!(
                "failed to find plugin {kind:?} in path [{}]",
                list.join(" ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use rcni_types::IpConfig;

    use super::*;

    /// Stands in for the multi-call binary's `static`: answers ADD, refuses DEL.
    struct Answers;

    impl Plugin for Answers {
        fn name(&self) -> &'static str {
            "static"
        }

        fn add(&self, req: &Request) -> Result<Success> {
            Ok(Success {
                cni_version: req.version().to_string(),
                ips: vec![IpConfig::new(
                    "10.9.8.7/24".parse().expect("cidr"),
                    None,
                    None,
                )],
                ..Success::default()
            })
        }

        fn del(&self, req: &Request) -> Result<()> {
            Err(Error::internal(format!(
                "refused in this process for {} on {}",
                req.container_id, req.ifname
            )))
        }

        fn check(&self, _req: &Request) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_delegate_that_is_this_executable_runs_in_process_through_the_dispatcher() {
        run_own_delegates_in_process(|kind| {
            (kind == "static").then(|| Box::new(Answers) as Box<dyn Plugin>)
        });
        // Exec'ing the test binary could not answer as a plugin: only the in-process
        // path gives these results.
        let exe = std::env::current_exe().expect("own executable");
        let mut req = rcni_testkit::request(Command::Add, "bridge", &serde_json::json!({}));
        req.netns = Some("/run/netns/rcni-invoke-test-none".into());
        req.path = vec![exe.parent().expect("directory").to_path_buf()];
        let delegate = Delegate {
            kind: "static".into(),
            binary: exe.clone(),
        };
        let result = delegate.add(&req).expect("ADD in process");
        assert_eq!(result.ips[0].address.to_string(), "10.9.8.7/24");
        let e = delegate.call(Command::Del, &req).expect_err("DEL refused");
        assert_eq!(e.msg, "refused in this process for ctr on eth0");
        // Another file of the same name is not this executable: it would be exec'd.
        let other = Delegate {
            kind: "static".into(),
            binary: PathBuf::from("/bin/sh"),
        };
        assert!(other.own_plugin().is_none());
        let not_allowed = Delegate {
            kind: "bridge".into(),
            binary: exe,
        };
        assert!(not_allowed.own_plugin().is_none());
    }
}
