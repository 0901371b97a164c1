//! The dhcp IPAM plugin (reference `plugins/ipam/dhcp`): one binary with two roles.
//!
//! - As a plugin (the default), [`Dhcp`] asks the lease daemon over its unix socket and
//!   prints what it answers. This side is small and synchronous: one connection, one
//!   request line, one reply line ([`protocol`]); it starts no async runtime.
//! - As `dhcp daemon` ([`daemon`], feature `daemon`), it runs one DHCP client per
//!   (container, network, ifname) inside the container's namespace, renews in the
//!   background, persists leases so a restart keeps them, and releases on DEL and GC.
//!
//! The protocol and the daemon's flags are documented in `ipam/dhcp/README.md`.

pub mod config;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod protocol;

use std::path::Path;
use std::time::Duration;

use rcni_skel::{Plugin, Request};
use rcni_types::{Code, Error, Result, Success};

pub use config::Conf;
use protocol::{AllocateArgs, Call, CallError, GcArgs, KeepAttachment, LeaseKey};

/// How long the plugin waits for an answer. An ADD is bounded by the daemon's `-timeout`
/// (10 s by default); this only guards against a daemon that accepted and then hung.
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// The plugin value handed to skel.
pub struct Dhcp;

impl Dhcp {
    fn key(req: &Request) -> LeaseKey {
        LeaseKey {
            container_id: req.container_id.clone(),
            network: req.net.name.clone(),
            ifname: req.ifname.clone(),
        }
    }

    /// One exchange with the daemon. A daemon that is not there fails at once (connect
    /// gets ENOENT or ECONNREFUSED), with `unavailable` as the code.
    fn ask(socket: &Path, call: Call, unavailable: Code) -> Result<serde_json::Value> {
        let method = call.name();
        protocol::call(socket, call, REPLY_TIMEOUT).map_err(|e| match e {
            CallError::NotRunning(io) => Error::new(
                unavailable,
                format!(
                    "dhcp daemon is not running: cannot connect to {}: {io}",
                    socket.display()
                ),
            )
            .with_details(
                "start it with `dhcp daemon` (or the cni-dhcp.socket unit); \
                 ipam.daemonSocketPath selects another socket",
            ),
            CallError::Exchange(io) => Error::try_again(format!(
                "dhcp daemon at {} did not answer {method}: {io}",
                socket.display()
            )),
            CallError::Daemon(e) => e,
        })
    }
}

impl Plugin for Dhcp {
    fn name(&self) -> &'static str {
        "dhcp"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(&req.config, &req.args)?;
        let netns = req
            .netns
            .as_deref()
            .ok_or_else(|| Error::invalid_env("CNI_NETNS is required"))?;
        // The daemon may run in another working directory.
        let netns = std::path::absolute(netns)
            .map_err(|e| Error::invalid_env(format!("failed to make {netns:?} absolute: {e}")))?;
        let call = Call::Allocate(AllocateArgs {
            key: Self::key(req),
            netns: netns.display().to_string(),
            options: conf.options,
        });
        let result = Self::ask(&conf.socket_path, call, Code::TryAgainLater)?;
        Success::from_json(&result, "1.1.0")
            .map(|r| r.with_version(req.version()))
            .map_err(|e| e.context("reading the dhcp daemon's result"))
    }

    /// Stops maintaining the lease and sends DHCPRELEASE. A lease the daemon does not hold
    /// is success; a daemon that is not running is an error (its lease, persisted, would
    /// come back with it).
    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(&req.config, &req.args)?;
        Self::ask(
            &conf.socket_path,
            Call::Release(Self::key(req)),
            Code::TryAgainLater,
        )
        .map(drop)
    }

    /// The daemon must hold a live lease for the attachment, and its address must be in
    /// `prevResult` when there is one.
    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(&req.config, &req.args)?;
        let held = Self::ask(
            &conf.socket_path,
            Call::Check(Self::key(req)),
            Code::TryAgainLater,
        )?;
        let held = Success::from_json(&held, "1.1.0")?;
        let prev = req
            .prev_result()
            .map_err(|e| Error::internal(format!("could not parse prevResult: {}", e.msg)))?;
        if let Some(prev) = prev {
            for ip in &held.ips {
                if !prev.ips.iter().any(|p| p.address.ip() == ip.address.ip()) {
                    return Err(Error::internal(format!(
                        "dhcp: lease address {} of {} is not in prevResult",
                        ip.address, req.ifname
                    )));
                }
            }
        }
        Ok(())
    }

    /// Ready when the daemon answers; code 50 when it does not.
    fn status(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(&req.config, &req.args)?;
        Self::ask(&conf.socket_path, Call::Status, Code::NotAvailable).map(drop)
    }

    /// Releases the leases of this network whose attachment is not in
    /// `cni.dev/valid-attachments`. Without that key there is nothing to compare with, so
    /// nothing is released.
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(&req.config, &req.args)?;
        let Some(valid) = req.net.gc_attachments() else {
            return Ok(());
        };
        let keep = valid
            .iter()
            .map(|a| KeepAttachment {
                container_id: a.container_id.clone(),
                ifname: a.ifname.clone(),
            })
            .collect();
        let call = Call::Gc(GcArgs {
            network: req.net.name.clone(),
            keep,
        });
        Self::ask(&conf.socket_path, call, Code::TryAgainLater).map(drop)
    }
}

#[cfg(test)]
mod tests;
