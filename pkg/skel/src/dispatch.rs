//! From process environment to a verb call and back to stdout (Go `skel.pluginMain`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rcni_types::args::CniArgs;
use rcni_types::{Error, NetConf, Result, json, version};
use serde::Serialize;

use crate::{Command, Plugin, Request};

/// Where skel reads CNI_* variables from: the process, or a map in tests.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
struct OsEnv;

impl Env for OsEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).cloned()
    }
}

impl Env for HashMap<&str, &str> {
    fn var(&self, key: &str) -> Option<String> {
        self.get(key).map(|v| (*v).to_string())
    }
}

/// Runs `plugin` as a CNI plugin process: env and stdin in, result or error on stdout,
/// exit status 0 or 1. Never returns.
pub fn run(plugin: &dyn Plugin) -> ! {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let status = run_with(
        plugin,
        &OsEnv,
        &mut stdin.lock(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    );
    std::process::exit(status)
}

/// The whole dispatcher with its environment and I/O injected; returns the exit status.
pub fn run_with(
    plugin: &dyn Plugin,
    env: &dyn Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let outcome = dispatch(plugin, env, stdin, stdout, stderr);
    let code = match outcome {
        Ok(()) => 0,
        Err(e) => {
            // Go's skel prints the error indented with 4 spaces and no trailing newline.
            let _ = stdout.write_all(e.to_json_string().as_bytes());
            1
        }
    };
    let _ = stdout.flush();
    code
}

fn var(env: &dyn Env, key: &str) -> String {
    env.var(key).unwrap_or_default()
}

fn dispatch(
    plugin: &dyn Plugin,
    env: &dyn Env,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<()> {
    let command_name = var(env, "CNI_COMMAND");
    if command_name.is_empty() {
        return about(plugin, stderr);
    }
    let command = Command::parse(&command_name)
        .ok_or_else(|| Error::invalid_env(format!("unknown CNI_COMMAND: {command_name}")))?;
    check_required_env(env, command)?;
    if command == Command::Version {
        return print_version(plugin, stdout);
    }

    let mut stdin_bytes = Vec::new();
    stdin
        .read_to_end(&mut stdin_bytes)
        .map_err(|e| Error::io(format!("error reading from stdin: {e}")))?;
    let request = build_request(command, env, stdin_bytes)?;
    check_version(plugin, &request)?;

    match command {
        Command::Add => {
            check_not_own_netns(env, &request)?;
            let result = plugin.add(&request)?;
            let text = result.to_json_string(request.version())?;
            stdout
                .write_all(text.as_bytes())
                .map_err(|e| Error::io(format!("writing result: {e}")))
        }
        Command::Del => {
            check_not_own_netns(env, &request)?;
            hold_termination_signals();
            plugin.del(&request)
        }
        Command::Check => plugin.check(&request),
        Command::Status => plugin.status(&request),
        Command::Gc => {
            hold_termination_signals();
            plugin.gc(&request)
        }
        Command::Version => Ok(()),
    }
}

/// DEL and GC must not be cut in half by a runtime's SIGTERM/SIGINT (a half-removed
/// attachment is worse than a slow one): the signals are blocked until the process exits,
/// when pending ones are simply dropped. Children inherit the mask, so an iptables-restore
/// in the middle of a transaction finishes too; their own time limits still apply.
fn hold_termination_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Failure leaves the default dispositions, which is how the reference plugins run.
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

fn about(plugin: &dyn Plugin, stderr: &mut dyn Write) -> Result<()> {
    let _ = writeln!(
        stderr,
        "CNI {} plugin v{} (rcni)\nCNI protocol versions supported: {}",
        plugin.name(),
        env!("CARGO_PKG_VERSION"),
        plugin.supported_versions().join(", ")
    );
    Ok(())
}

/// Which variables each verb needs (Go skel; CNI_PATH also for GC and STATUS, as skel ≥ 1.2).
fn check_required_env(env: &dyn Env, command: Command) -> Result<()> {
    use Command::{Add, Check, Del, Gc, Status};
    let required: &[(&str, &[Command])] = &[
        ("CNI_CONTAINERID", &[Add, Check, Del]),
        ("CNI_NETNS", &[Add, Check]),
        ("CNI_IFNAME", &[Add, Check, Del]),
        ("CNI_PATH", &[Add, Check, Del, Gc, Status]),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(name, verbs)| verbs.contains(&command) && var(env, name).is_empty())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionInfo<'a> {
    cni_version: &'a str,
    supported_versions: &'a [&'a str],
}

fn print_version(plugin: &dyn Plugin, stdout: &mut dyn Write) -> Result<()> {
    let info = VersionInfo {
        cni_version: version::CURRENT,
        supported_versions: plugin.supported_versions(),
    };
    let text = serde_json::to_string(&info).map_err(|e| Error::io(e.to_string()))?;
    writeln!(stdout, "{text}").map_err(|e| Error::io(format!("writing version: {e}")))
}

fn build_request(command: Command, env: &dyn Env, stdin: Vec<u8>) -> Result<Request> {
    let config = json::parse(&stdin)?;
    // From the bytes, not the Value: keys that differ only in case resolve in document
    // order, as in Go.
    // Go's skel reads only `cniVersion` and `name` (code 6 when that fails, which
    // `json::parse` covered); a bad type elsewhere is the plugin's error, code 999.
    let net: NetConf = json::from_slice(&stdin)
        .map_err(|e| Error::internal(format!("failed to load netconf: {e}")))?;
    validate_network_name(&net.name)?;

    let container_id = var(env, "CNI_CONTAINERID");
    let ifname = var(env, "CNI_IFNAME");
    if !matches!(command, Command::Gc | Command::Status) {
        validate_container_id(&container_id)?;
        validate_ifname(&ifname)?;
    }
    let raw_args = var(env, "CNI_ARGS");
    let args = CniArgs::read(&raw_args);
    let netns = Some(var(env, "CNI_NETNS"))
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let path = var(env, "CNI_PATH")
        .split(':')
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    Ok(Request {
        command,
        container_id,
        netns,
        ifname,
        args,
        raw_args,
        path,
        stdin,
        config,
        net,
    })
}

/// Exact membership in the plugin's list, and the per-verb minimums (Go skel).
fn check_version(plugin: &dyn Plugin, req: &Request) -> Result<()> {
    let v = req.version();
    let minimum = match req.command {
        Command::Check => Some(("0.4.0", "CHECK")),
        Command::Gc => Some(("1.1.0", "GC")),
        Command::Status => Some(("1.1.0", "STATUS")),
        _ => None,
    };
    if let Some((min, verb)) = minimum
        && !version::at_least(v, min)
    {
        return Err(Error::incompatible_version(format!(
            "config version does not allow {verb}"
        )));
    }
    let supported = plugin.supported_versions();
    if supported.contains(&v) {
        Ok(())
    } else {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        Err(
            Error::incompatible_version("incompatible CNI versions").with_details(format!(
                "config is {v:?}, plugin supports [{}]",
                list.join(" ")
            )),
        )
    }
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the rule for container ids and network names.
fn valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn validate_network_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_config("missing network name"));
    }
    if !valid_id(name) {
        return Err(
            Error::invalid_config("invalid characters found in network name").with_details(name),
        );
    }
    Ok(())
}

fn validate_container_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::unknown_container("missing containerID"));
    }
    if !valid_id(id) {
        return Err(Error::invalid_env("invalid characters in containerID").with_details(id));
    }
    Ok(())
}

/// Linux interface name rules (Go `utils.ValidateInterfaceName`).
fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_env("interface name is empty"));
    }
    if name.len() > 15 {
        return Err(Error::invalid_env("interface name is too long")
            .with_details("interface name should be less than 16 characters"));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid_env("interface name is . or ..").with_details(name));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(
            Error::invalid_env("interface name contains / or : or whitespace characters")
                .with_details(name),
        );
    }
    Ok(())
}

/// A plugin must never configure its own namespace as if it were the container's.
fn check_not_own_netns(env: &dyn Env, req: &Request) -> Result<()> {
    let Some(path) = &req.netns else {
        return Ok(());
    };
    let (Ok(target), Ok(own)) = (
        std::fs::metadata(path),
        std::fs::metadata("/proc/thread-self/ns/net"),
    ) else {
        // A missing path is for the plugin to judge (DEL tolerates it, ADD fails on open).
        return Ok(());
    };
    let overridden = matches!(
        var(env, "CNI_NETNS_OVERRIDE").to_ascii_lowercase().as_str(),
        "1" | "true"
    );
    if !overridden && target.dev() == own.dev() && target.ino() == own.ino() {
        return Err(Error::new(
            rcni_types::Code::InvalidNetNs,
            "plugin's netns and netns from CNI_NETNS should not be the same",
        ));
    }
    Ok(())
}
