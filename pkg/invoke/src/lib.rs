//! Delegated plugins (IPAM): find the binary on CNI_PATH, run it with the caller's
//! environment and stdin, read its result or pass its error up unchanged (libcni
//! `invoke`, reference §1.4).
//!
//! [`Delegate::start`] returns as soon as the process runs, so a plugin can create its
//! links while IPAM works ([`Running::wait`] collects the answer): DESIGN §7.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};

use rcni_skel::{Command, Request};
use rcni_types::{Error, Result, Success};

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
        let netns = req
            .netns
            .as_deref()
            .map(Path::as_os_str)
            .unwrap_or_default();
        let path = std::env::join_paths(&req.path).unwrap_or_default();
        let mut child = Process::new(&self.binary)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &req.container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", &req.ifname)
            .env("CNI_ARGS", &req.raw_args)
            .env("CNI_PATH", path)
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
        Ok(Running {
            kind: self.kind.clone(),
            command,
            child,
            version: req.version().to_string(),
        })
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

/// A started delegate.
#[derive(Debug)]
pub struct Running {
    kind: String,
    command: Command,
    child: Child,
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
        let out = self
            .child
            .wait_with_output()
            .map_err(|e| Error::internal(format!("waiting for {kind} plugin ({verb}): {e}")))?;
        if out.status.success() {
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
