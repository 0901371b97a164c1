//! portmap's keys (reference §2.5), parsed and validated before any kernel contact.
//!
//! Invalid values fail with code 7 and a message naming the key
//! (`runtimeConfig.portMappings[1].hostPort`); the reference reports most of them as 999
//! ("Invalid host port number: 0") and lets iptables reject an unknown protocol halfway
//! through an ADD.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rcni_firewall::{Backend, MarkChain, PortMapping, PortmapSpec, Protocol};
use rcni_skel::Request;
use rcni_types::{Error, Result, Success};
use serde::Deserialize;

/// Where the mappings come from in the config.
const MAPPINGS_KEY: &str = "runtimeConfig.portMappings";

/// One `portMappings` entry as the runtime sends it (CONVENTIONS.md). Numbers are wide so
/// that out-of-range values reach our check instead of a decoding error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawMapping {
    #[serde(default)]
    host_port: i64,
    #[serde(default)]
    container_port: i64,
    #[serde(default)]
    protocol: String,
    #[serde(default, rename = "hostIP")]
    host_ip: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<RawMapping>,
}

/// The JSON keys, as Go's `PortMapConf` declares them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    backend: Option<String>,
    #[serde(default)]
    snat: Option<bool>,
    #[serde(default, rename = "conditionsV4")]
    conditions_v4: Option<Vec<String>>,
    #[serde(default, rename = "conditionsV6")]
    conditions_v6: Option<Vec<String>>,
    #[serde(default)]
    masq_all: bool,
    #[serde(default)]
    mark_masq_bit: Option<i64>,
    #[serde(default)]
    external_set_mark_chain: Option<String>,
    #[serde(default)]
    runtime_config: RawRuntimeConfig,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub backend: Backend,
    /// Everything but the container addresses, which come from `prevResult`.
    pub spec: PortmapSpec,
}

impl Conf {
    /// Parses and validates the config of `req`.
    ///
    /// # Errors
    /// Wrong JSON types (999, as the reference's decoding errors), invalid values (7).
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let mark = match (raw.mark_masq_bit, raw.external_set_mark_chain) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_config(
                    "Cannot specify externalSetMarkChain and markMasqBit",
                ));
            }
            (_, Some(chain)) => MarkChain::External(chain),
            (Some(bit), None) => match u8::try_from(bit) {
                Ok(bit) if bit <= 31 => MarkChain::Bit(bit),
                _ => {
                    return Err(Error::invalid_config(format!(
                        "invalid markMasqBit {bit}: must be between 0 and 31"
                    )));
                }
            },
            (None, None) => MarkChain::default(),
        };
        let conditions_v4 = raw.conditions_v4.unwrap_or_default();
        let conditions_v6 = raw.conditions_v6.unwrap_or_default();
        let backend = rcni_firewall::portmap_backend(
            raw.backend.as_deref(),
            matches!(mark, MarkChain::External(_)),
            &conditions_v4,
            &conditions_v6,
        )
        .map_err(|e| Error::invalid_config(e.to_string()))?;
        let mappings = raw
            .runtime_config
            .port_mappings
            .iter()
            .enumerate()
            .map(|(i, m)| mapping(i, m))
            .collect::<Result<Vec<_>>>()?;
        let mut spec = PortmapSpec::new(req.net.name.clone(), req.container_id.clone(), mappings);
        spec.snat = raw.snat.unwrap_or(true);
        spec.masq_all = raw.masq_all;
        spec.mark = mark;
        spec.conditions_v4 = conditions_v4;
        spec.conditions_v6 = conditions_v6;
        Ok(Conf { backend, spec })
    }

    /// The spec with the container addresses of `prev` (see [`container_addresses`]).
    #[must_use]
    pub fn spec_for(&self, prev: Option<&Success>, ifname: &str) -> PortmapSpec {
        let mut spec = self.spec.clone();
        if let Some(prev) = prev {
            (spec.container_v4, spec.container_v6) = container_addresses(prev, ifname);
        }
        spec
    }
}

fn port(i: usize, key: &str, value: i64) -> Result<u16> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| {
            Error::invalid_config(format!(
                "invalid {MAPPINGS_KEY}[{i}].{key} {value}: must be 1-65535"
            ))
        })
}

fn mapping(i: usize, raw: &RawMapping) -> Result<PortMapping> {
    let host_port = port(i, "hostPort", raw.host_port)?;
    let container_port = port(i, "containerPort", raw.container_port)?;
    // An absent protocol is TCP, as in Kubernetes and CONVENTIONS.md's examples; the
    // reference passes "" to iptables, which fails the ADD.
    let protocol = if raw.protocol.is_empty() {
        Protocol::Tcp
    } else {
        Protocol::parse(&raw.protocol).ok_or_else(|| {
            Error::invalid_config(format!(
                "invalid {MAPPINGS_KEY}[{i}].protocol {:?}: must be tcp, udp or sctp",
                raw.protocol
            ))
        })?
    };
    let host_ip = if raw.host_ip.is_empty() {
        None
    } else {
        let ip = rcni_types::net::parse_ip(&raw.host_ip)
            .ok()
            .flatten()
            .ok_or_else(|| {
                Error::invalid_config(format!(
                    "invalid {MAPPINGS_KEY}[{i}].hostIP {:?}: not an IP address",
                    raw.host_ip
                ))
            })?;
        Some(ip)
    };
    Ok(PortMapping {
        host_port,
        container_port,
        protocol,
        host_ip,
    })
}

/// The container's first IPv4 and first IPv6 address in `prev`, as the reference picks
/// them: an address qualifies unless it names an interface of the result that is not
/// `ifname` or has no sandbox (an out-of-range index qualifies, as in Go).
#[must_use]
pub fn container_addresses(prev: &Success, ifname: &str) -> (Option<IpNetwork>, Option<IpNetwork>) {
    let mut v4 = None;
    let mut v6 = None;
    for ip in &prev.ips {
        let is_v4 = matches!(rcni_types::net::unmap(ip.address.ip()), IpAddr::V4(_));
        if (is_v4 && v4.is_some()) || (!is_v4 && v6.is_some()) {
            continue;
        }
        if let Some(iface) = ip.interface.and_then(|i| prev.interfaces.get(i))
            && (iface.name != ifname || iface.sandbox.is_empty())
        {
            continue;
        }
        if is_v4 {
            v4 = Some(ip.address);
        } else {
            v6 = Some(ip.address);
        }
    }
    (v4, v6)
}
