//! A validated invocation: the verb, its environment and the decoded config.

use std::path::PathBuf;

use rcni_types::args::CniArgs;
use rcni_types::{NetConf, Result, Success};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The CNI verbs (CNI_COMMAND).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    #[must_use]
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }
}

/// Everything a verb needs. Env values a verb does not require may be empty.
#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    /// CNI_CONTAINERID (empty for STATUS/GC).
    pub container_id: String,
    /// CNI_NETNS; `None` when unset or empty (allowed for DEL).
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS, split but not judged: plugins that read them call `check_known`.
    pub args: CniArgs,
    /// The raw CNI_ARGS string, passed on unchanged to delegated plugins.
    pub raw_args: String,
    /// CNI_PATH directories, in order.
    pub path: Vec<PathBuf>,
    /// The stdin bytes exactly as received (delegated plugins get the same bytes).
    pub stdin: Vec<u8>,
    /// stdin decoded as JSON.
    pub config: Value,
    /// The common keys of the config.
    pub net: NetConf,
}

impl Request {
    /// Decodes the plugin's own keys from the config, the way Go's encoding/json would.
    ///
    /// # Errors
    /// A key with the wrong type, naming it; code 999, as the Go plugins' `json.Unmarshal`
    /// failures are.
    pub fn plugin_config<T: DeserializeOwned>(&self) -> Result<T> {
        rcni_types::json::from_value(&self.config)
            .map_err(|e| rcni_types::Error::internal(format!("failed to load netconf: {e}")))
    }

    /// `prevResult`, read in the config's version when it carries none; `None` when absent.
    ///
    /// # Errors
    /// A `prevResult` that does not parse as a result (code 6).
    pub fn prev_result(&self) -> Result<Option<Success>> {
        match &self.net.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Success::from_json(v, self.net.version()).map(Some),
        }
    }

    /// Opens CNI_NETNS, with the reference's wording when it cannot be opened.
    ///
    /// # Errors
    /// Unset, missing or not a network namespace.
    pub fn open_netns(&self) -> Result<rcni_netns::NetNs> {
        let path = self
            .netns
            .as_deref()
            .unwrap_or_else(|| std::path::Path::new(""));
        rcni_netns::NetNs::open(path).map_err(|e| {
            rcni_types::Error::internal(format!(
                "failed to open netns {:?}: {e}",
                path.display().to_string()
            ))
        })
    }

    /// Opens CNI_NETNS for a DEL: `None` when it is unset or already gone (both success
    /// for DEL, spec §2).
    ///
    /// # Errors
    /// It exists but cannot be opened.
    pub fn open_netns_if_exists(&self) -> Result<Option<rcni_netns::NetNs>> {
        match &self.netns {
            None => Ok(None),
            Some(_) => match self.open_netns() {
                Ok(ns) => Ok(Some(ns)),
                Err(_) if self.netns.as_deref().is_some_and(|p| !p.exists()) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    /// The interface of `prev` that is this attachment's: named CNI_IFNAME, with CNI_NETNS
    /// as its sandbox (what CHECK verifies, reference `current.Result` checks).
    ///
    /// # Errors
    /// No such interface, with the reference's wording.
    pub fn sandbox_interface(&self, prev: &Success) -> Result<rcni_types::Interface> {
        let netns = self
            .netns
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        prev.interfaces
            .iter()
            .find(|i| i.name == self.ifname && i.sandbox == netns)
            .cloned()
            .ok_or_else(|| {
                rcni_types::Error::internal(format!(
                    "Sandbox in prevResult  doesn't match configured netns: {netns}"
                ))
            })
    }

    /// The config's `cniVersion` (with the implicit 0.1.0 for a missing one).
    #[must_use]
    pub fn version(&self) -> &str {
        self.net.version()
    }
}
