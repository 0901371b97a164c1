//! The firewalld backend of the firewall plugin (`plugins/meta/firewall/firewalld.go`): each
//! container address (`ip/32`, `ip/128`) becomes a source of a firewalld zone (`trusted` by
//! default), over the system D-Bus.
//!
//! The calls go through `busctl` (systemd's D-Bus client), one process per call, with the
//! reference's method names and arguments:
//! `org.fedoraproject.FirewallD1.zone.addSource(zone, source)`, `removeSource`,
//! `querySource`. firewalld counts as running, as in the reference, when
//! `org.fedoraproject.FirewallD1` has an owner on the system bus; without a system bus
//! socket (and no `DBUS_SYSTEM_BUS_ADDRESS`) that is known without running anything.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::exec;
use crate::iptables::Family;
use crate::names::{
    BUSCTL, DBUS_GET_NAME_OWNER, DBUS_NAME, DBUS_PATH, DBUS_SYSTEM_BUS_ADDRESS_ENV,
    DBUS_SYSTEM_SOCKETS, FIREWALLD_ADD_SOURCE, FIREWALLD_NAME, FIREWALLD_PATH,
    FIREWALLD_QUERY_SOURCE, FIREWALLD_REMOVE_SOURCE, FIREWALLD_ZONE_ALREADY_SET,
    FIREWALLD_ZONE_INTERFACE,
};

/// Bound on one D-Bus call (busctl's own `--timeout` and ours around the process).
const CALL_TIMEOUT_SECS: u64 = 10;

/// The addresses of one attachment in a firewalld zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewalld {
    zone: String,
}

impl Firewalld {
    /// Sources go into `zone` (`firewalldZone`).
    ///
    /// # Errors
    /// An empty zone or one that cannot be passed as one argument.
    pub fn new(zone: &str) -> Result<Firewalld> {
        if zone.is_empty() || zone.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid(format!("invalid firewalld zone {zone:?}")));
        }
        Ok(Firewalld {
            zone: zone.to_owned(),
        })
    }

    /// Whether firewalld owns its name on the system bus (the reference's default-backend
    /// test). Anything that keeps us from asking means "not running".
    #[must_use]
    pub fn is_running() -> bool {
        let address_set = std::env::var_os(DBUS_SYSTEM_BUS_ADDRESS_ENV).is_some();
        if !address_set && !DBUS_SYSTEM_SOCKETS.iter().any(|s| Path::new(s).exists()) {
            return false;
        }
        busctl(&[
            DBUS_NAME,
            DBUS_PATH,
            DBUS_NAME,
            DBUS_GET_NAME_OWNER,
            "s",
            FIREWALLD_NAME,
        ])
        .is_ok_and(|done| done.success)
    }

    /// Adds every address to the zone; one already in it (`ZONE_ALREADY_SET`) is fine.
    ///
    /// # Errors
    /// The first address firewalld refused.
    pub fn add(&self, addresses: &[IpAddr]) -> Result<()> {
        for ip in addresses {
            let source = source(*ip);
            let done = self.zone_call(FIREWALLD_ADD_SOURCE, &source)?;
            if !done.success && !done.stderr.contains(FIREWALLD_ZONE_ALREADY_SET) {
                return Err(done.failure(format_args!(
                    "failed to add the address {source} to {} zone",
                    self.zone
                )));
            }
        }
        Ok(())
    }

    /// Removes every address from the zone. As in the reference, firewalld's answer is
    /// not judged (an address no longer in the zone is an error there); only a call that
    /// could not be made at all is.
    ///
    /// # Errors
    /// busctl is missing or could not be run.
    pub fn del(&self, addresses: &[IpAddr]) -> Result<()> {
        for ip in addresses {
            self.zone_call(FIREWALLD_REMOVE_SOURCE, &source(*ip))?;
        }
        Ok(())
    }

    /// Every address is a source of the zone.
    ///
    /// # Errors
    /// [`ErrorKind::CheckFailed`] naming the first address that is not.
    pub fn check(&self, addresses: &[IpAddr]) -> Result<()> {
        for ip in addresses {
            let source = source(*ip);
            let done = self.zone_call(FIREWALLD_QUERY_SOURCE, &source)?;
            // busctl prints a boolean reply as `b true`.
            if !done.success || done.stdout.split_whitespace().nth(1) != Some("true") {
                return Err(Error::check(format!(
                    "failed to find the address {source} in {} zone",
                    self.zone
                )));
            }
        }
        Ok(())
    }

    fn zone_call(&self, method: &str, source: &str) -> Result<exec::Finished> {
        busctl(&[
            FIREWALLD_NAME,
            FIREWALLD_PATH,
            FIREWALLD_ZONE_INTERFACE,
            method,
            "ss",
            &self.zone,
            source,
        ])
        .map_err(|e| e.context(format!("firewalld {method} {source}")))
    }
}

/// `ip/32` or `ip/128`, as the reference's `ipString`.
fn source(ip: IpAddr) -> String {
    format!("{ip}/{}", Family::of(ip).host_prefix())
}

/// `busctl --system call <args>`, bounded in time.
fn busctl(args: &[&str]) -> Result<exec::Finished> {
    let timeout = format!("--timeout={CALL_TIMEOUT_SECS}");
    let mut argv = vec!["--system", timeout.as_str(), "call"];
    argv.extend_from_slice(args);
    exec::run_with_timeout(
        BUSCTL,
        &argv,
        None,
        Duration::from_secs(CALL_TIMEOUT_SECS + 5),
    )
    .map_err(|e| {
        if e.kind() == ErrorKind::ToolMissing {
            e.context("the firewalld backend calls D-Bus with busctl (systemd)")
        } else {
            e
        }
    })
}
