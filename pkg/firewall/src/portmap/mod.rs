//! portmap: forward host ports to a container (reference `plugins/meta/portmap`).
//!
//! Two backends with the reference's exact layout, so Go plugins and ours remove each other's
//! rules:
//! - [`iptables`]: `nat` chains `CNI-HOSTPORT-DNAT` (entry rules per container, jumped to from
//!   PREROUTING and OUTPUT), `CNI-DN-<hash>` (one per container), `CNI-HOSTPORT-SETMARK` and
//!   `CNI-HOSTPORT-MASQ` (hairpin and localhost masquerading);
//! - [`nftables`]: tables `ip cni_hostport` and `ip6 cni_hostport`, every per-container rule
//!   commented with the container id.
//!
//! The cost of a change does not grow with the rules already on the host (reference §4: the
//! Go plugin's ADD runs ~37 iptables processes, each listing chains): an ADD is one
//! transaction per family that has a container address, and the table is read only when
//! that transaction is refused (the first container, a repeated ADD, damaged state).

mod iptables;
mod nftables;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::error::{Error, Result};
use crate::iptables::Family;
use crate::masquerade::Backend;
use crate::names;

pub use self::iptables::IptablesPortmap;
pub use self::nftables::NftablesPortmap;

/// A mapping's transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The protocol for a `protocol` value, case-insensitively (runtimes send lowercase).
    #[must_use]
    pub fn parse(value: &str) -> Option<Protocol> {
        match value.to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "sctp" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name iptables and nft take; also the sort key of the entry rules.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One `portMappings` entry: traffic to `host_port` (on `host_ip`, or any local address)
/// goes to the container's `container_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// `None`, or an unspecified address, means every local address.
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// Whether the mapping applies to a container address of `family`: one with a host IP of
    /// the other family is skipped there, as in the reference.
    fn applies_to(&self, family: Family) -> bool {
        self.host_ip.is_none_or(|ip| Family::of(ip) == family)
    }

    /// The host IP to match, if the mapping names one that is not unspecified.
    fn destination(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }
}

/// Where hairpin and localhost traffic gets its masquerade mark (iptables only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkChain {
    /// `CNI-HOSTPORT-SETMARK` setting this bit (`markMasqBit`, 0-31), masqueraded by
    /// `CNI-HOSTPORT-MASQ`.
    Bit(u8),
    /// An existing chain that sets a mark someone else masquerades (`externalSetMarkChain`,
    /// e.g. `KUBE-MARK-MASQ`); portmap creates neither shared chain then.
    External(String),
}

impl Default for MarkChain {
    fn default() -> Self {
        MarkChain::Bit(names::PORTMAP_DEFAULT_MARK_BIT)
    }
}

impl MarkChain {
    /// `0x2000/0x2000` for bit 13, written as Go's `%#x/%#x`.
    fn mark(bit: u8) -> String {
        let value = 1u32 << bit;
        format!("{value:#x}/{value:#x}")
    }
}

/// Everything one container's port forwarding is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortmapSpec {
    /// CNI network name (`name`): part of the iptables chain name and comment.
    pub network: String,
    /// `CNI_CONTAINERID`: the iptables chain hash and comment, the nftables rule comment.
    pub container_id: String,
    pub mappings: Vec<PortMapping>,
    /// The container's IPv4 address with its prefix (host bits kept), if it has one.
    pub container_v4: Option<IpNetwork>,
    /// The container's IPv6 address, likewise.
    pub container_v6: Option<IpNetwork>,
    /// `snat`: mark hairpin and localhost traffic for masquerading (default true).
    pub snat: bool,
    /// `masqAll`: masquerade mapped traffic from any source, not only the container's own.
    pub masq_all: bool,
    pub mark: MarkChain,
    /// Extra match tokens (`conditionsV4`/`conditionsV6`) in the backend's own syntax.
    pub conditions_v4: Vec<String>,
    pub conditions_v6: Vec<String>,
}

impl PortmapSpec {
    /// A spec with the reference's defaults: `snat` on, default mark bit, no conditions.
    pub fn new(
        network: impl Into<String>,
        container_id: impl Into<String>,
        mappings: Vec<PortMapping>,
    ) -> Self {
        Self {
            network: network.into(),
            container_id: container_id.into(),
            mappings,
            container_v4: None,
            container_v6: None,
            snat: true,
            masq_all: false,
            mark: MarkChain::default(),
            conditions_v4: Vec::new(),
            conditions_v6: Vec::new(),
        }
    }

    /// The container address of `family`.
    fn container(&self, family: Family) -> Option<IpNetwork> {
        match family {
            Family::V4 => self.container_v4,
            Family::V6 => self.container_v6,
        }
    }

    fn conditions(&self, family: Family) -> &[String] {
        match family {
            Family::V4 => &self.conditions_v4,
            Family::V6 => &self.conditions_v6,
        }
    }

    /// Families with a container address, with the address.
    fn addressed(&self) -> Vec<(Family, IpNetwork)> {
        Family::ALL
            .into_iter()
            .filter_map(|f| self.container(f).map(|net| (f, net)))
            .collect()
    }

    /// Families DEL has to clean: those with a container address, or both when none is
    /// known (no `prevResult`, as after a reboot): the rules are found by name then.
    fn families_to_clean(&self) -> Vec<Family> {
        let known: Vec<Family> = self.addressed().into_iter().map(|(f, _)| f).collect();
        if known.is_empty() {
            Family::ALL.to_vec()
        } else {
            known
        }
    }

    /// Names and tokens end up in tool input lines: a line break would end a command early
    /// and let the rest be read as another one. libcni never passes one.
    fn validate(&self) -> Result<()> {
        let mut values: Vec<(&str, &str)> = vec![
            ("network name", &self.network),
            ("container id", &self.container_id),
        ];
        if let MarkChain::External(chain) = &self.mark {
            values.push(("externalSetMarkChain", chain));
        }
        values.extend(
            self.conditions_v4
                .iter()
                .map(|c| ("conditionsV4", c.as_str())),
        );
        values.extend(
            self.conditions_v6
                .iter()
                .map(|c| ("conditionsV6", c.as_str())),
        );
        for (what, value) in values {
            if value.chars().any(char::is_control) {
                return Err(Error::invalid(format!(
                    "portmap: {what} {value:?} contains control characters"
                )));
            }
        }
        if let MarkChain::Bit(bit) = self.mark
            && bit > 31
        {
            return Err(Error::invalid(format!(
                "portmap: markMasqBit {bit} must be between 0 and 31"
            )));
        }
        if let MarkChain::External(chain) = &self.mark
            && (chain.is_empty() || chain.contains(char::is_whitespace))
        {
            return Err(Error::invalid(format!(
                "portmap: externalSetMarkChain {chain:?} is not a chain name"
            )));
        }
        Ok(())
    }
}

/// One portmap backend. Each method takes one container's whole spec so a backend can apply
/// it as one transaction per family.
pub trait PortMapper {
    /// Forwards the ports to every container address in `spec`. Adding the same spec again
    /// leaves the state as after one ADD.
    fn add(&self, spec: &PortmapSpec) -> Result<()>;
    /// Removes the container's rules; rules that are already gone are fine. Works without
    /// container addresses (both families are then searched by name).
    fn del(&self, spec: &PortmapSpec) -> Result<()>;
    /// Errors with [`crate::ErrorKind::CheckFailed`] when a rule of `spec` is missing.
    fn check(&self, spec: &PortmapSpec) -> Result<()>;
    /// Removes the rules of every container of `network` that is not in `keep`
    /// (`(container id, ifname)` pairs from `cni.dev/valid-attachments`).
    fn gc(&self, network: &str, keep: &[(String, String)]) -> Result<()>;
}

/// The implementation of `backend`.
#[must_use]
pub fn portmapper(backend: Backend) -> Box<dyn PortMapper> {
    match backend {
        Backend::Iptables => Box::new(IptablesPortmap),
        Backend::Nftables => Box::new(NftablesPortmap),
    }
}

/// Which backend the conditions are written for: iptables tokens start with `-` or `!`
/// (`-s`, `--sport`, `! -d`), nft expressions never do. `None` when there are none.
#[must_use]
pub fn conditions_backend(conditions: &[String]) -> Option<Backend> {
    let first = conditions.first().filter(|c| !c.is_empty())?;
    if first.starts_with('-') || first.starts_with('!') {
        Some(Backend::Iptables)
    } else {
        Some(Backend::Nftables)
    }
}

/// The backend for portmap's `backend` value, as the reference's `ensureBackend`:
/// unset means iptables unless only nft is installed ([`crate::backend`]); options of the
/// other backend (`externalSetMarkChain` is iptables-only; conditions are either) are an
/// error naming them.
///
/// # Errors
/// An unknown backend, or options written for the other backend.
pub fn portmap_backend(
    requested: Option<&str>,
    external_set_mark_chain: bool,
    conditions_v4: &[String],
    conditions_v6: &[String],
) -> Result<Backend> {
    let backend = match requested {
        Some(names::BACKEND_IPTABLES) => Backend::Iptables,
        Some(names::BACKEND_NFTABLES) => Backend::Nftables,
        Some(other) => {
            return Err(Error::invalid(format!(
                "unrecognized {} {other:?}: expected {:?} or {:?}",
                names::PORTMAP_BACKEND_KEY,
                names::BACKEND_IPTABLES,
                names::BACKEND_NFTABLES
            )));
        }
        None => crate::masquerade::backend(None)?,
    };
    let mut wrong = Vec::new();
    if external_set_mark_chain && backend == Backend::Nftables {
        wrong.push("externalSetMarkChain");
    }
    for (key, conditions) in [
        ("conditionsV4", conditions_v4),
        ("conditionsV6", conditions_v6),
    ] {
        if conditions_backend(conditions).is_some_and(|b| b != backend) {
            wrong.push(key);
        }
    }
    if wrong.is_empty() {
        return Ok(backend);
    }
    let (name, other) = match backend {
        Backend::Iptables => (names::BACKEND_IPTABLES, names::BACKEND_NFTABLES),
        Backend::Nftables => (names::BACKEND_NFTABLES, names::BACKEND_IPTABLES),
    };
    Err(Error::invalid(format!(
        "{name} backend was requested but configuration contains {other}-specific options [{}]",
        wrong.join(" ")
    )))
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}
