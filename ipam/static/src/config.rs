//! The static plugin's configuration: the `ipam` keys, `CNI_ARGS` `IP`/`GATEWAY`,
//! `args.cni.ips` and `runtimeConfig.ips`, combined as the reference does
//! (`plugins/ipam/static/main.go`, `LoadIPAMConfig`).
//!
//! Sources, later ones winning:
//! 1. `ipam.addresses` (each with an optional `gateway`);
//! 2. `CNI_ARGS` `IP=` (comma-separated CIDRs) are **appended**; each `CNI_ARGS` `GATEWAY=`
//!    (comma-separated) becomes the gateway of every `CNI_ARGS` address whose subnet holds it
//!    (in Go the config addresses are not parsed yet at that point, so they never match);
//! 3. `args.cni.ips`, when not empty, **replaces** every address (gateways included);
//! 4. `runtimeConfig.ips` (the `ips` capability), when not empty, replaces them again.
//!
//! Every failure is code 999, as the reference's plain errors come out of Go's skel, with
//! the reference's message. Two inputs the reference turns into output no reader can parse
//! are refused instead: a route without `dst` (Go prints `"dst":"<nil>"`) and an address
//! given as Go's `IPNet` object under the key spelled exactly `Address`.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rcni_types::args::CniArgs;
use rcni_types::net::{parse_cidr, parse_ip};
use rcni_types::{Dns, Error, IpConfig, Result, Route, RouteConf, json, version};
use serde::Deserialize;

/// `CNI_ARGS` keys the plugin reads (Go `IPAMEnvArgs`); `IgnoreUnknown` is always known.
const ARG_IP: &str = "IP";
const ARG_GATEWAY: &str = "GATEWAY";

/// The parsed configuration: everything ADD prints and CHECK compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// `cniVersion` exactly as written (empty when missing), for the reference's message.
    pub cni_version: String,
    /// The result's addresses (host bits kept), with their gateways; no interface index.
    pub addresses: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

// ---------------------------------------------------------------------------------------
// The stdin document, as Go's `Net` / `IPAMConfig` decode it. Keys match case-insensitively
// and unknown keys are ignored (rcni_types::json); a value of the wrong type is an error.

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NetDoc {
    #[serde(default)]
    cni_version: String,
    #[serde(default)]
    ipam: Option<IpamDoc>,
    #[serde(default)]
    runtime_config: RuntimeConfigDoc,
    #[serde(default)]
    args: Option<ArgsDoc>,
}

#[derive(Deserialize, Default)]
struct IpamDoc {
    /// Go's untagged `Name` field: unused, but a non-string value fails to decode.
    #[serde(default, rename = "Name")]
    _name: String,
    #[serde(default, rename = "type")]
    _kind: String,
    #[serde(default)]
    routes: Vec<RouteConf>,
    #[serde(default)]
    addresses: Vec<AddressDoc>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Deserialize, Default)]
struct AddressDoc {
    #[serde(default)]
    address: String,
    #[serde(default)]
    gateway: String,
    /// Go's untagged `Address net.IPNet` field, which the key spelled exactly `Address`
    /// fills (other spellings fold to `address`, declared first). Go then decodes a string
    /// there as an error; an object with an `IP` is refused here (see [`Conf::parse`]).
    #[serde(default, rename = "Address")]
    ipnet: Option<IpNetDoc>,
    /// Go's untagged `Version` field: ignored, but a non-string value fails to decode.
    #[serde(default, rename = "Version")]
    _version: String,
}

/// Go's `net.IPNet` as encoding/json sees it: `IP` as text, `Mask` as base64 bytes.
#[derive(Deserialize, Default)]
struct IpNetDoc {
    #[serde(default, rename = "IP")]
    ip: String,
    #[serde(default, rename = "Mask")]
    _mask: Option<String>,
}

/// `runtimeConfig`: only the `ips` capability matters here.
#[derive(Deserialize, Default)]
struct RuntimeConfigDoc {
    #[serde(default)]
    ips: Vec<String>,
}

/// `args`: only `args.cni.ips` matters here.
#[derive(Deserialize, Default)]
struct ArgsDoc {
    #[serde(default)]
    cni: Option<CniArgsDoc>,
}

#[derive(Deserialize, Default)]
struct CniArgsDoc {
    #[serde(default)]
    ips: Vec<String>,
}

/// An address on its way through the sources. Config addresses stay text until the end:
/// one replaced by `args.cni.ips` or `runtimeConfig.ips` is never judged (as in Go).
struct Pending {
    text: String,
    parsed: Option<IpNetwork>,
    gateway: Option<IpAddr>,
}

impl Conf {
    /// Reads the config from the stdin bytes and `CNI_ARGS`.
    ///
    /// # Errors
    /// Code 999 with the reference's message: a key of the wrong type, a missing `ipam`,
    /// bad `CNI_ARGS`, an address that is not a CIDR, a gateway that is not an IP, or more
    /// than one address per family with a `cniVersion` below 0.3.0.
    pub fn parse(stdin: &[u8], cni_args: &CniArgs) -> Result<Conf> {
        let doc: NetDoc = json::from_slice(stdin).map_err(|e| Error::internal(e.to_string()))?;
        let Some(ipam) = doc.ipam else {
            return Err(Error::internal("IPAM config missing 'ipam' key"));
        };

        // Go decodes gateways and routes with the document, before any other check.
        let mut addresses = ipam
            .addresses
            .into_iter()
            .map(|a| {
                // Go would use such an `IPNet` instead of `address`; its output for a
                // malformed mask is not a CIDR anyone can read, so this form is refused.
                if let Some(ipnet) = &a.ipnet
                    && parse_ip(&ipnet.ip).map_err(Error::internal)?.is_some()
                {
                    return Err(Error::internal(
                        "the 'Address' object form is not supported, use 'address' in CIDR notation",
                    ));
                }
                Ok(Pending {
                    gateway: parse_ip(&a.gateway).map_err(Error::internal)?,
                    text: a.address,
                    parsed: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let routes = ipam
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| route(i, r))
            .collect::<Result<Vec<_>>>()?;

        add_cni_args(&mut addresses, cni_args)?;
        if let Some(ips) = doc.args.and_then(|a| a.cni).map(|c| c.ips)
            && !ips.is_empty()
        {
            addresses = replace_with(&ips)?;
        }
        if !doc.runtime_config.ips.is_empty() {
            addresses = replace_with(&doc.runtime_config.ips)?;
        }

        let addresses = addresses
            .into_iter()
            .map(|p| {
                let address = match p.parsed {
                    Some(net) => net,
                    None => parse_cidr(&p.text).map_err(|_| {
                        Error::internal(format!(
                            "the 'address' field is expected to be in CIDR notation, got: '{}'",
                            p.text
                        ))
                    })?,
                };
                Ok(IpConfig::new(address, p.gateway, None))
            })
            .collect::<Result<Vec<_>>>()?;

        // Results before 0.3.0 hold one `ip4` and one `ip6`.
        let v4 = addresses.iter().filter(|a| a.address.is_ipv4()).count();
        let v6 = addresses.len() - v4;
        if (v4 > 1 || v6 > 1) && !version::at_least(&doc.cni_version, "0.3.0") {
            return Err(Error::internal(format!(
                "CNI version {} does not support more than 1 address per family",
                doc.cni_version
            )));
        }

        Ok(Conf {
            cni_version: doc.cni_version,
            addresses,
            routes,
            dns: ipam.dns,
        })
    }
}

/// `CNI_ARGS` `IP=` and `GATEWAY=`: appended addresses, and gateways given to the appended
/// addresses whose subnet holds them (the last matching gateway wins).
fn add_cni_args(addresses: &mut Vec<Pending>, cni_args: &CniArgs) -> Result<()> {
    cni_args.check_known(&[ARG_IP, ARG_GATEWAY])?;
    if let Some(ips) = cni_args.get(ARG_IP).filter(|v| !v.is_empty()) {
        for item in ips.split(',') {
            let text = item.trim();
            let net = parse_cidr(text).map_err(|_| {
                Error::internal(format!(
                    "the 'ip' field is expected to be in CIDR notation, got: '{text}'"
                ))
            })?;
            addresses.push(Pending {
                text: text.to_owned(),
                parsed: Some(net),
                gateway: None,
            });
        }
    }
    if let Some(gateways) = cni_args.get(ARG_GATEWAY).filter(|v| !v.is_empty()) {
        for item in gateways.split(',') {
            // Unlike a JSON gateway, an empty item is an error here (Go's net.ParseIP).
            let Ok(Some(gw)) = parse_ip(item.trim()) else {
                return Err(Error::internal(format!("invalid gateway address: {item}")));
            };
            for a in addresses.iter_mut() {
                if a.parsed.is_some_and(|net| net.contains(gw)) {
                    a.gateway = Some(gw);
                }
            }
        }
    }
    Ok(())
}

/// `args.cni.ips` or `runtimeConfig.ips`: the whole address list, without gateways.
fn replace_with(ips: &[String]) -> Result<Vec<Pending>> {
    ips.iter()
        .map(|text| {
            let net = parse_cidr(text).map_err(|_| {
                Error::internal(format!(
                    "an entry in the 'ips' field is NOT in CIDR notation, got: '{text}'"
                ))
            })?;
            Ok(Pending {
                text: text.clone(),
                parsed: Some(net),
                gateway: None,
            })
        })
        .collect()
}

/// One `routes` entry. Go prints a route without `dst` as `"dst":"<nil>"`, which no reader
/// of the result can parse; it is refused here instead.
fn route(index: usize, r: &RouteConf) -> Result<Route> {
    if r.dst.is_none() {
        return Err(Error::internal(format!("route {index}: missing 'dst'")));
    }
    r.to_route().map_err(Error::internal)
}
