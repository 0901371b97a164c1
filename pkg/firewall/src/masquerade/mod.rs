//! ipMasq: masquerade traffic leaving a container's subnet (bridge and ptp `ipMasq: true`).
//!
//! Two backends with the reference's exact layout (`pkg/ip/ipmasq_*_linux.go`), so Go plugins
//! and ours remove each other's rules:
//! - [`iptables`]: per-container chain `CNI-<hash>` in `nat`, jumped to from POSTROUTING;
//! - [`nftables`]: one rule per address in `inet cni_plugins_masquerade` chain `masq_checks`.

mod iptables;
mod nftables;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;

use ipnetwork::IpNetwork;

use crate::error::{Error, ErrorKind, Result};
use crate::exec;
use crate::names;

pub use self::iptables::IptablesMasquerade;
pub use self::nftables::NftablesMasquerade;

/// Masquerade one container address. Everything leaving `address`'s IP for a destination
/// outside `address`'s subnet (and not multicast) is masqueraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasqueradeRule {
    /// CNI network name (`name` in the config).
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`; only the nftables backend records it (the iptables layout predates it).
    pub ifname: String,
    /// The container address with its prefix, host bits kept, e.g. `10.1.2.3/24`.
    pub address: IpNetwork,
    /// SNAT to this source instead of masquerading, for addresses of its family (the
    /// ipmasq plugin's `snat`). `None` for bridge and ptp.
    pub snat: Option<IpAddr>,
    /// Further destinations left alone besides the own subnet (the ipmasq plugin's
    /// `excludeSubnets`; both backends). Empty for bridge and ptp.
    pub exclude: Vec<IpNetwork>,
}

impl MasqueradeRule {
    pub fn new(
        network: impl Into<String>,
        container_id: impl Into<String>,
        ifname: impl Into<String>,
        address: IpNetwork,
    ) -> Self {
        Self {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            address,
            snat: None,
            exclude: Vec::new(),
        }
    }

    /// The same rule with an SNAT source and extra excluded destinations (ipmasq).
    #[must_use]
    pub fn with_snat(mut self, snat: Option<IpAddr>, exclude: Vec<IpNetwork>) -> Self {
        self.snat = snat;
        self.exclude = exclude;
        self
    }

    /// The SNAT source for this rule's address, if one of its family was given.
    #[must_use]
    pub fn snat_of_family(&self) -> Option<IpAddr> {
        self.snat.filter(|s| s.is_ipv4() == self.ip().is_ipv4())
    }

    /// The excluded destinations of this rule's address family.
    pub fn exclude_of_family(&self) -> impl Iterator<Item = &IpNetwork> {
        let v4 = self.ip().is_ipv4();
        self.exclude.iter().filter(move |n| n.is_ipv4() == v4)
    }

    /// One rule per address of one attachment (what bridge and ptp set up for `ipMasq`).
    pub fn for_addresses(
        network: &str,
        container_id: &str,
        ifname: &str,
        addresses: impl IntoIterator<Item = IpNetwork>,
    ) -> Vec<Self> {
        addresses
            .into_iter()
            .map(|a| Self::new(network, container_id, ifname, a))
            .collect()
    }

    /// The container's own address.
    #[must_use]
    pub fn ip(&self) -> IpAddr {
        self.address.ip()
    }

    /// The subnet left alone: `address` with the host bits cleared.
    #[must_use]
    pub fn subnet(&self) -> IpNetwork {
        // The prefix came from a valid IpNetwork, so it is valid for the masked address too.
        IpNetwork::new(self.address.network(), self.address.prefix()).unwrap_or(self.address)
    }

    /// Names end up inside netfilter comments and tool input lines: a control character could
    /// end a line early and inject a command. libcni never passes one.
    fn validate(&self) -> Result<()> {
        for (what, value) in [
            ("network name", &self.network),
            ("container id", &self.container_id),
            ("interface name", &self.ifname),
        ] {
            if value.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "masquerade: {what} {value:?} contains control characters"
                )));
            }
        }
        Ok(())
    }
}

fn validate_all(rules: &[MasqueradeRule]) -> Result<()> {
    rules.iter().try_for_each(MasqueradeRule::validate)
}

/// One masquerade backend. Every method takes all addresses of one change at once so a
/// backend can apply them as a single transaction per table.
pub trait Masquerade {
    /// Installs the rules. Idempotent: adding the same rules again leaves one copy.
    fn add(&self, rules: &[MasqueradeRule]) -> Result<()>;
    /// Removes the rules of these attachments; rules that are already gone are fine.
    fn del(&self, rules: &[MasqueradeRule]) -> Result<()>;
    /// Errors with [`crate::ErrorKind::CheckFailed`] when a rule is missing.
    fn check(&self, rules: &[MasqueradeRule]) -> Result<()>;
    /// Removes every rule of `network` whose attachment is not in `keep`
    /// (`(container id, ifname)` pairs, from `cni.dev/valid-attachments`).
    fn gc(&self, network: &str, keep: &[(String, String)]) -> Result<()>;
    /// Removes every rule of one attachment without knowing its addresses, by the names
    /// derived from network, container id and (nftables only) interface name.
    fn del_attachment(&self, network: &str, container_id: &str, ifname: &str) -> Result<()>;
}

/// Which netfilter interface to program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Iptables,
    Nftables,
}

/// The backend for an `ipMasqBackend` value, or the default when it is unset.
///
/// Like the reference, the default is iptables unless iptables is unusable and nftables
/// works. We judge that by which tools are installed (no process is started): the reference
/// spends three to five processes on probing, and a broken iptables install still fails the
/// ADD with the tool's own message.
pub fn backend(requested: Option<&str>) -> Result<Backend> {
    match requested {
        Some(names::BACKEND_IPTABLES) => Ok(Backend::Iptables),
        Some(names::BACKEND_NFTABLES) => Ok(Backend::Nftables),
        Some(other) => Err(Error::invalid(format!(
            "unknown {} {other:?}: expected {:?} or {:?}",
            names::IPMASQ_BACKEND_KEY,
            names::BACKEND_IPTABLES,
            names::BACKEND_NFTABLES
        ))),
        None => Ok(default_backend(&exec::search_dirs(
            std::env::var_os("PATH").as_deref(),
        ))),
    }
}

fn default_backend(dirs: &[PathBuf]) -> Backend {
    if exec::locate_in(dirs, names::IPTABLES_RESTORE).is_none()
        && exec::locate_in(dirs, names::NFT).is_some()
    {
        Backend::Nftables
    } else {
        Backend::Iptables
    }
}

/// The implementation of `backend`.
#[must_use]
pub fn masquerade(backend: Backend) -> Box<dyn Masquerade> {
    match backend {
        Backend::Iptables => Box::new(IptablesMasquerade),
        Backend::Nftables => Box::new(NftablesMasquerade),
    }
}

/// Removes the rules with BOTH backends, as the reference's DEL does: the backend may have
/// changed between ADD and DEL, or the rules may come from an older plugin. Both always run.
pub fn teardown_all(rules: &[MasqueradeRule]) -> Result<()> {
    on_both_backends(|m| m.del(rules))
}

/// Removes everything masquerade-related of one attachment with BOTH backends, for DEL.
///
/// - `rules` known (the addresses came from `prevResult` or the container link): the cheap
///   [`teardown_all`] path. iptables: one `iptables-restore` per family with an address (plus a
///   save and a second restore only when the state is not exactly what ADD wrote); nftables:
///   one listing of `masq_checks`, one batch only if it holds rules of the attachment.
/// - `rules` empty (the netns is gone and there is no `prevResult`: the reference leaks its
///   rules then, plugins#810): everything found by name. iptables: one `iptables-save -t nat`
///   per family, then one `iptables-restore` per family that holds the chain
///   `CNI-<hash(network + container id)>` or a rule jumping to it (from any chain of `nat`);
///   nftables: one `nft -j list table inet cni_plugins_masquerade`, then one batch deleting
///   the rules whose comment starts with `<h16(network)>-<h16(ifname:container id)>` if any.
///   So 3 processes when nothing is left, 5 to 6 when something is. The iptables chain is
///   keyed by network and container id only, so it goes whatever `ifname` is, as in the
///   reference.
///
/// # Errors
/// Every failure of both backends, collected after both ran. Missing tools, tables and chains
/// are success, and so is any failure of a backend the host cannot use at all.
pub fn teardown_container(
    network: &str,
    container_id: &str,
    ifname: &str,
    rules: &[MasqueradeRule],
) -> Result<()> {
    let done = if rules.is_empty() {
        on_both_backends(|m| m.del_attachment(network, container_id, ifname))
    } else {
        teardown_all(rules)
    };
    // The nf_tables sockets used on the way are released a grace period later.
    crate::nf::linger::hand_off();
    done
}

/// DEL's `ipMasq` step of a bridge or ptp attachment: [`teardown_container`] with one rule per
/// distinct address of `addresses` (the container interface's and `prevResult`'s, which
/// overlap), or by the attachment's names when none is known.
///
/// # Errors
/// As [`teardown_container`].
pub fn teardown_addresses(
    network: &str,
    container_id: &str,
    ifname: &str,
    mut addresses: Vec<IpNetwork>,
) -> Result<()> {
    addresses.sort_unstable();
    addresses.dedup();
    let rules = MasqueradeRule::for_addresses(network, container_id, ifname, addresses);
    teardown_container(network, container_id, ifname, &rules)
}

/// [`Masquerade::gc`] with BOTH backends, as the reference's `GCIPMasqForNetwork`.
pub fn gc_all(network: &str, keep: &[(String, String)]) -> Result<()> {
    on_both_backends(|m| m.gc(network, keep))
}

/// Runs `op` on both backends at once, the nftables one on a second thread: each waits
/// for its own tool, and a transaction that deletes rules waits out an RCU grace period
/// in the kernel before its tool exits. The thread starts in the calling thread's network
/// namespace, so its tools do too.
fn on_both_backends(op: impl Fn(&dyn Masquerade) -> Result<()> + Sync) -> Result<()> {
    let on = |b: Backend| match op(masquerade(b).as_ref()) {
        Ok(()) => None,
        // Like the reference, a backend the host cannot use at all holds no rules, so its
        // failure is not ours to report (a host without nf_tables still has DEL succeed).
        // Probed only after a failure, so the usual case starts no extra process.
        Err(e) if e.kind() != ErrorKind::InvalidConfig && !usable(b) => None,
        Err(e) => Some(e),
    };
    let (iptables, nftables) = std::thread::scope(|s| {
        let nftables = std::thread::Builder::new()
            .name("nftables".into())
            .spawn_scoped(s, || {
                let failure = on(Backend::Nftables);
                (failure, exec::spawned_on_this_thread())
            });
        let iptables = on(Backend::Iptables);
        let nftables = match nftables {
            Ok(thread) => match thread.join() {
                Ok((failure, spawned)) => {
                    exec::credit_spawns(spawned);
                    failure
                }
                Err(_) => Some(Error::new(
                    ErrorKind::ToolFailed,
                    "the nftables thread panicked",
                )),
            },
            // No thread to be had: one after the other.
            Err(_) => on(Backend::Nftables),
        };
        (iptables, nftables)
    });
    Error::collect(iptables.into_iter().chain(nftables).collect())
}

/// Whether `backend` can talk to the kernel, probed like `utils.SupportsIPTables` (read a
/// table) and `utils.SupportsNFTables` (a dry-run `add table`).
fn usable(backend: Backend) -> bool {
    let probe = match backend {
        Backend::Iptables => exec::run(names::IPTABLES_SAVE, &["-t", "filter"], None),
        Backend::Nftables => exec::run(
            names::NFT,
            &["--check", "-f", "-"],
            Some(&format!("add table ip {}\n", names::NFT_PROBE_TABLE)),
        ),
    };
    probe.is_ok_and(|done| done.success)
}
