//! Results. `Success` is the newest (1.1.0) shape; every other version is produced and
//! read through the conversions in this module (reference §1.7–1.8).
//!
//! The model is Go's plugin path: a result read in any version is converted to the current
//! type (`current.NewResultFromResult`), worked on, and printed converted to the config's
//! version (`types.PrintResult`). So `to_json(v)` is always "convert 1.1.0 -> v":
//!
//! | printed as | shape |
//! |---|---|
//! | 0.1.0, 0.2.0 | `ip4`/`ip6` (first IPv4 / first IPv6 address), each with the routes whose `dst` is of its family (only `dst`, `gw`); `dns` always printed; fails when there is no address |
//! | 0.3.0, 0.3.1, 0.4.0 | `interfaces` (`name`, `mac`, `sandbox` only), `ips[]` with `version` "4"/"6", `routes` with every field, `dns` always printed (`{}` when empty) |
//! | 1.0.0, 1.1.0 | everything; empty `dns` omitted; keys sorted at every level (Go re-marshals 1.x results through a map) |
//!
//! Reading (`from_json`) follows Go's `ParsePrevResult`: the result's own `cniVersion`, else
//! the config's; keys matched as Go does (see [`crate::json`]), duplicates resolved in
//! sorted key order as Go's map round trip does; route and interface MTU,
//! `advmss` and `priority` of 0 mean "unset" (Go's `int` with `omitempty`); an empty `gateway`
//! is no gateway; IPv4-mapped IPv6 addresses are IPv4 addresses (Go's `net.IP`).
//!
//! One Go behaviour is deliberately not modelled: Go's `Convert` returns the very same object
//! when the versions are equal, so a Go pass-through plugin that prints `prevResult` without
//! converting it (portmap without mappings) keeps oddities a conversion would fix, such as an
//! IPv6 route listed under a 0.2.0 `ip4`. Here such a result is normalised.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::json;
use crate::net::{parse_cidr, parse_ip};

/// An interface in a result (`interfaces[]`). `sandbox` is the netns path for container
/// interfaces and empty for host ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub socket_path: String,
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

/// An address in a result (`ips[]`): the address with its prefix length (host bits kept),
/// the gateway, and the index into `interfaces` it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub interface: Option<usize>,
    pub address: IpNetwork,
    pub gateway: Option<IpAddr>,
}

/// A route (`routes[]`). The 1.1.0 fields are kept for every version, as Go does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNetwork,
    pub gw: Option<IpAddr>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
}

impl Route {
    #[must_use]
    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Route {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

/// DNS settings in a result. Empty means "none" (omitted from 1.x output).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// A successful ADD result, in the newest shape. `cni_version` records the version it was
/// read in or is to be printed in; printing goes through `to_json(version)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Success {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

impl IpConfig {
    #[must_use]
    pub fn new(address: IpNetwork, gateway: Option<IpAddr>, interface: Option<usize>) -> IpConfig {
        IpConfig {
            interface,
            address,
            gateway,
        }
    }

    /// True for an IPv4 address (what the 0.x `version` "4" says).
    #[must_use]
    pub fn is_v4(&self) -> bool {
        self.address.is_ipv4()
    }

    /// The 0.3.x/0.4.0 `version` string: "4" or "6".
    #[must_use]
    pub fn version_label(&self) -> &'static str {
        if self.is_v4() { "4" } else { "6" }
    }
}

/// The shapes results come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// 0.1.0, 0.2.0: `ip4`/`ip6`.
    V02,
    /// 0.3.0, 0.3.1, 0.4.0: `ips[].version`.
    V04,
    /// 1.0.0, 1.1.0.
    V1,
}

fn family(version: &str) -> Option<Family> {
    match version {
        "0.1.0" | "0.2.0" => Some(Family::V02),
        "0.3.0" | "0.3.1" | "0.4.0" => Some(Family::V04),
        "1.0.0" | "1.1.0" => Some(Family::V1),
        _ => None,
    }
}

impl Success {
    /// An empty result labelled `version`.
    #[must_use]
    pub fn new(version: &str) -> Success {
        Success {
            cni_version: version.to_owned(),
            ..Success::default()
        }
    }

    /// The same result relabelled as `version`; nothing is dropped (printing converts).
    #[must_use]
    pub fn with_version(&self, version: &str) -> Success {
        Success {
            cni_version: version.to_owned(),
            ..self.clone()
        }
    }

    /// The result as Go would hold it after converting it to `version` and back: what a
    /// runtime that caches the printed result will send as `prevResult`.
    ///
    /// # Errors
    /// As [`Success::to_json`].
    pub fn convert(&self, version: &str) -> Result<Success> {
        Success::from_json(&self.to_json(version)?, version)
    }

    /// Reads a result (a `prevResult`, or what a delegated IPAM plugin printed) in any
    /// version. Its own `cniVersion` decides the shape; without one, `default_version` (the
    /// config's, as Go's `ParsePrevResult` injects it); without both, 0.1.0. Unlike Go, a
    /// result whose own version is of another family than the config's (a 0.4.0 result in a
    /// 1.0.0 config) is read, not rejected: libcni always converts cached results to the
    /// config's version first, so only hand-made input differs.
    ///
    /// # Errors
    /// Code 1 for a `cniVersion` no spec defines; code 6 when the document does not decode
    /// (not an object, a field of the wrong type, an address that is not a CIDR).
    pub fn from_json(v: &Value, default_version: &str) -> Result<Success> {
        if !v.is_object() {
            return Err(Error::decoding(
                "decoding CNI result: expected a JSON object",
            ));
        }
        let label: VersionLabel = json::from_value_sorted(v)
            .map_err(|e| Error::decoding(format!("decoding CNI result: {e}")))?;
        let version = [label.cni_version.as_str(), default_version]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or(crate::version::IMPLICIT)
            .to_owned();
        let Some(fam) = family(&version) else {
            return Err(Error::incompatible_version(format!(
                "unsupported CNI result version {version:?}"
            )));
        };
        let decoding =
            |e: serde_json::Error| Error::decoding(format!("decoding CNI {version} result: {e}"));
        let mut success = match fam {
            Family::V02 => Success::from_020(json::from_value_sorted(v).map_err(decoding)?),
            Family::V04 => Success::from_040(json::from_value_sorted(v).map_err(decoding)?),
            Family::V1 => Success::from_100(json::from_value_sorted(v).map_err(decoding)?),
        };
        success.cni_version = version;
        Ok(success)
    }

    /// The result as Go prints it in `version` (an empty version means 0.1.0, as in Go).
    ///
    /// # Errors
    /// Code 1 for a version no spec defines; code 999 ("cannot convert: no valid IP
    /// addresses") for 0.1.0/0.2.0 when the result has no address.
    pub fn to_json(&self, version: &str) -> Result<Value> {
        let printed = match self.wire(version)? {
            Wire::V02(r) => serde_json::to_value(r),
            Wire::V04(r) => serde_json::to_value(r),
            // Go's 1.x MarshalJSON round-trips through map[string]interface{}, which sorts
            // the keys at every level.
            Wire::V1(r) => serde_json::to_value(r).map(|mut v| {
                json::sort_keys(&mut v);
                v
            }),
        };
        printed.map_err(|e| Error::internal(format!("encoding CNI {version} result: {e}")))
    }

    /// The exact text a Go plugin prints for this result in `version`: indented with four
    /// spaces, keys in Go's order (struct order for 0.x, sorted for 1.x), `<`, `>` and `&`
    /// escaped, no trailing newline.
    ///
    /// # Errors
    /// As [`Success::to_json`].
    pub fn to_json_string(&self, version: &str) -> Result<String> {
        let printed = match self.wire(version)? {
            Wire::V02(r) => json::to_string_pretty(&r),
            Wire::V04(r) => json::to_string_pretty(&r),
            Wire::V1(_) => json::to_string_pretty(&self.to_json(version)?),
        };
        printed.map_err(|e| Error::internal(format!("encoding CNI {version} result: {e}")))
    }

    fn wire(&self, version: &str) -> Result<Wire> {
        let version = if version.is_empty() {
            crate::version::IMPLICIT
        } else {
            version
        };
        match family(version) {
            Some(Family::V02) => self.to_020(version).map(Wire::V02),
            Some(Family::V04) => Ok(Wire::V04(self.to_040(version))),
            Some(Family::V1) => Ok(Wire::V1(self.to_100(version))),
            None => Err(Error::incompatible_version(format!(
                "no converter for CNI result version {} to {version}",
                self.cni_version
            ))),
        }
    }

    fn from_020(r: Result020) -> Success {
        let mut success = Success {
            dns: r.dns,
            ..Success::default()
        };
        for ip in [r.ip4, r.ip6].into_iter().flatten() {
            success.ips.push(IpConfig::new(ip.ip.0, ip.gateway.0, None));
            success
                .routes
                .extend(ip.routes.into_iter().map(Route::from));
        }
        success
    }

    fn from_040(r: Result040) -> Success {
        Success {
            cni_version: String::new(),
            interfaces: r
                .interfaces
                .into_iter()
                .map(|i| Interface {
                    name: i.name,
                    mac: i.mac,
                    sandbox: i.sandbox,
                    ..Interface::default()
                })
                .collect(),
            ips: r
                .ips
                .into_iter()
                .map(|ip| IpConfig::new(ip.address.0, ip.gateway.0, ip.interface))
                .collect(),
            routes: r.routes.into_iter().map(Route::from).collect(),
            dns: r.dns,
        }
    }

    fn from_100(r: Result100) -> Success {
        Success {
            cni_version: String::new(),
            interfaces: r
                .interfaces
                .into_iter()
                .map(|i| Interface {
                    name: i.name,
                    mac: i.mac,
                    mtu: i.mtu.filter(|m| *m != 0),
                    sandbox: i.sandbox,
                    socket_path: i.socket_path,
                    pci_id: i.pci_id,
                })
                .collect(),
            ips: r
                .ips
                .into_iter()
                .map(|ip| IpConfig::new(ip.address.0, ip.gateway.0, ip.interface))
                .collect(),
            routes: r.routes.into_iter().map(Route::from).collect(),
            dns: r.dns,
        }
    }

    fn to_020(&self, version: &str) -> Result<Result020> {
        let first = |v4: bool| {
            self.ips.iter().find(|ip| ip.is_v4() == v4).map(|ip| Ip020 {
                ip: Cidr(ip.address),
                gateway: Gateway(ip.gateway),
                routes: Vec::new(),
            })
        };
        let (mut ip4, mut ip6) = (first(true), first(false));
        for route in &self.routes {
            let slot = if route.dst.is_ipv4() {
                ip4.as_mut()
            } else {
                ip6.as_mut()
            };
            if let Some(slot) = slot {
                slot.routes
                    .push(WireRoute::from(&Route::new(route.dst, route.gw)));
            }
        }
        if ip4.is_none() && ip6.is_none() {
            return Err(Error::internal("cannot convert: no valid IP addresses"));
        }
        Ok(Result020 {
            cni_version: version.to_owned(),
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }

    fn to_040(&self, version: &str) -> Result040 {
        Result040 {
            cni_version: version.to_owned(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Interface040 {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    sandbox: i.sandbox.clone(),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| Ip040 {
                    version: ip.version_label().to_owned(),
                    interface: ip.interface,
                    address: Cidr(ip.address),
                    gateway: Gateway(ip.gateway),
                })
                .collect(),
            routes: self.routes.iter().map(WireRoute::from).collect(),
            dns: self.dns.clone(),
        }
    }

    fn to_100(&self, version: &str) -> Result100 {
        Result100 {
            cni_version: version.to_owned(),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| Interface100 {
                    name: i.name.clone(),
                    mac: i.mac.clone(),
                    mtu: i.mtu.filter(|m| *m != 0),
                    sandbox: i.sandbox.clone(),
                    socket_path: i.socket_path.clone(),
                    pci_id: i.pci_id.clone(),
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| Ip100 {
                    interface: ip.interface,
                    address: Cidr(ip.address),
                    gateway: Gateway(ip.gateway),
                })
                .collect(),
            routes: self.routes.iter().map(WireRoute::from).collect(),
            dns: self.dns.clone(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shapes on the wire, one set per version family, fields in Go's struct order.

enum Wire {
    V02(Result020),
    V04(Result040),
    V1(Result100),
}

#[derive(Deserialize)]
struct VersionLabel {
    #[serde(default, rename = "cniVersion")]
    cni_version: String,
}

#[derive(Serialize, Deserialize)]
struct Result020 {
    #[serde(
        default,
        rename = "cniVersion",
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<Ip020>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<Ip020>,
    /// Always printed: Go's `omitempty` does nothing for a struct.
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct Ip020 {
    ip: Cidr,
    #[serde(default, skip_serializing_if = "Gateway::is_none")]
    gateway: Gateway,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
}

#[derive(Serialize, Deserialize)]
struct Result040 {
    #[serde(
        default,
        rename = "cniVersion",
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface040>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<Ip040>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
    /// Always printed (`"dns":{}`): the 0.4.0 type has no empty-DNS fixup.
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct Interface040 {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sandbox: String,
}

#[derive(Serialize, Deserialize)]
struct Ip040 {
    /// Read and ignored: the family of `address` decides (as every conversion from 1.x does).
    #[serde(default)]
    version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: Cidr,
    #[serde(default, skip_serializing_if = "Gateway::is_none")]
    gateway: Gateway,
}

#[derive(Serialize, Deserialize)]
struct Result100 {
    #[serde(
        default,
        rename = "cniVersion",
        skip_serializing_if = "String::is_empty"
    )]
    cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface100>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<Ip100>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<WireRoute>,
    /// Omitted when empty (Go's 1.x `MarshalJSON` fixup, libcni >= 1.2.0).
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Interface100 {
    #[serde(default)]
    name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
    #[serde(default, skip_serializing_if = "is_unset")]
    mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    sandbox: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    socket_path: String,
    #[serde(default, rename = "pciID", skip_serializing_if = "String::is_empty")]
    pci_id: String,
}

#[derive(Serialize, Deserialize)]
struct Ip100 {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: Cidr,
    #[serde(default, skip_serializing_if = "Gateway::is_none")]
    gateway: Gateway,
}

/// Go's `types.Route` JSON, shared by every version.
#[derive(Serialize, Deserialize)]
struct WireRoute {
    dst: Cidr,
    #[serde(default, skip_serializing_if = "Gateway::is_none")]
    gw: Gateway,
    #[serde(default, skip_serializing_if = "is_unset")]
    mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "is_unset")]
    advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "is_unset")]
    priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<u8>,
}

/// Go's `int` with `omitempty`: 0 is "unset".
#[allow(clippy::ref_option)] // the signature serde's skip_serializing_if calls
fn is_unset(v: &Option<u32>) -> bool {
    v.is_none_or(|n| n == 0)
}

impl From<WireRoute> for Route {
    fn from(r: WireRoute) -> Route {
        Route {
            dst: r.dst.0,
            gw: r.gw.0,
            mtu: r.mtu.filter(|n| *n != 0),
            advmss: r.advmss.filter(|n| *n != 0),
            priority: r.priority.filter(|n| *n != 0),
            table: r.table,
            scope: r.scope,
        }
    }
}

impl From<&Route> for WireRoute {
    fn from(r: &Route) -> WireRoute {
        WireRoute {
            dst: Cidr(r.dst),
            gw: Gateway(r.gw),
            mtu: r.mtu,
            advmss: r.advmss,
            priority: r.priority,
            table: r.table,
            scope: r.scope,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Addresses as Go's net.ParseCIDR / net.ParseIP read them (crate::net) and net.IPNet / net.IP
// print them.

/// An address with its prefix length, host bits kept ("10.1.2.3/24").
struct Cidr(IpNetwork);

/// A gateway: a plain IP; absent, `null` and `""` all mean none (Go's `net.IP`).
#[derive(Default)]
struct Gateway(Option<IpAddr>);

impl Gateway {
    fn is_none(&self) -> bool {
        self.0.is_none()
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        parse_cidr(&s).map(Cidr).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Gateway {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.0 {
            Some(ip) => s.collect_str(ip),
            None => s.serialize_str(""),
        }
    }
}

impl<'de> Deserialize<'de> for Gateway {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Gateway, D::Error> {
        let s = String::deserialize(d)?;
        parse_ip(&s).map(Gateway).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Code;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test network")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn version_comes_from_the_result_then_the_config_then_0_1_0() {
        let ip4 = json!({"ip4": {"ip": "10.0.0.2/24"}});
        let table: &[(&str, Value, &str, &str)] = &[
            (
                "result's own",
                json!({"cniVersion": "1.0.0"}),
                "0.4.0",
                "1.0.0",
            ),
            ("config's when absent", json!({"ips": []}), "0.4.0", "0.4.0"),
            (
                "config's when empty",
                json!({"cniVersion": "", "ips": []}),
                "1.1.0",
                "1.1.0",
            ),
            (
                "key in other case",
                json!({"CNIVersion": "0.3.1"}),
                "",
                "0.3.1",
            ),
            ("implicit 0.1.0", ip4.clone(), "", "0.1.0"),
            (
                "null version",
                json!({"cniVersion": null, "ip4": {"ip": "10.0.0.2/24"}}),
                "",
                "0.1.0",
            ),
        ];
        for (name, doc, config, want) in table {
            let r = Success::from_json(doc, config).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(r.cni_version, *want, "{name}");
        }
    }

    #[test]
    fn bad_results_are_rejected_with_the_right_code() {
        let table: &[(&str, Value, Code, &[&str])] = &[
            (
                "unknown version",
                json!({"cniVersion": "0.5.0"}),
                Code::IncompatibleVersion,
                &["unsupported CNI result version \"0.5.0\""],
            ),
            (
                "not an object",
                json!(["10.0.0.1/24"]),
                Code::Decoding,
                &["expected a JSON object"],
            ),
            (
                "version not a string",
                json!({"cniVersion": 1.0}),
                Code::Decoding,
                &["cniVersion", "string"],
            ),
            (
                "address without prefix",
                json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.1"}]}),
                Code::Decoding,
                &["ips[0].address", "invalid CIDR address: 10.0.0.1"],
            ),
            (
                "missing address",
                json!({"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}),
                Code::Decoding,
                &["ips[0]", "missing field `address`"],
            ),
            (
                "bad gateway",
                json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1/24"}]}),
                Code::Decoding,
                &["ips[0].gateway", "invalid IP address"],
            ),
            (
                "interface index as text",
                json!({"cniVersion": "1.0.0", "ips": [{"interface": "0", "address": "10.0.0.2/24"}]}),
                Code::Decoding,
                &["ips[0].interface", "string"],
            ),
            (
                "route without dst",
                json!({"cniVersion": "1.1.0", "routes": [{"gw": "10.0.0.1"}]}),
                Code::Decoding,
                &["routes[0]", "dst"],
            ),
            (
                "mtu as float",
                json!({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": 1500.5}]}),
                Code::Decoding,
                &["interfaces[0].mtu"],
            ),
            (
                "0.2.0 ip4 without ip",
                json!({"cniVersion": "0.2.0", "ip4": {"gateway": "10.0.0.1"}}),
                Code::Decoding,
                &["ip4", "missing field `ip`"],
            ),
        ];
        for (name, doc, code, needles) in table {
            let e = Success::from_json(doc, "1.0.0").expect_err(name);
            assert_eq!(e.code, *code, "{name}: {e}");
            for needle in *needles {
                assert!(e.msg.contains(needle), "{name}: {e} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn reads_prev_results_as_runtimes_send_them() {
        // An IPAM result: no interfaces, no interface index.
        let ipam = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
                          "routes": [{"dst": "0.0.0.0/0"}]});
        let r = Success::from_json(&ipam, "1.0.0").expect("ipam result");
        assert!(r.interfaces.is_empty());
        assert_eq!(
            r.ips,
            [IpConfig::new(
                net("10.0.0.2/24"),
                Some(ip("10.0.0.1")),
                None
            )]
        );
        assert_eq!(r.routes, [Route::new(net("0.0.0.0/0"), None)]);

        // A main plugin's result, with the runtime's additions Go ignores and Go's zero values.
        let full = json!({"cniVersion": "1.1.0",
            "interfaces": [{"name": "veth1", "mac": "aa:aa:aa:aa:aa:aa", "mtu": 0},
                           {"name": "eth0", "sandbox": "/var/run/netns/a", "mtu": 1450, "socketPath": "/s", "pciID": "p"}],
            "ips": [{"interface": 1, "address": "fd00::2/64", "gateway": "", "version": "6"}],
            "routes": [{"dst": "::/0", "gw": "fd00::1", "mtu": 0, "advmss": 0, "priority": 0, "table": 0, "scope": 0}],
            "dns": {"nameservers": null, "domain": "d"}});
        let r = Success::from_json(&full, "1.1.0").expect("full result");
        assert_eq!(r.interfaces[0].mtu, None, "Go's 0 is unset");
        assert_eq!(r.interfaces[1].mtu, Some(1450));
        assert_eq!(r.interfaces[1].socket_path, "/s");
        assert_eq!(r.interfaces[1].pci_id, "p");
        assert_eq!(r.ips[0].interface, Some(1));
        assert_eq!(r.ips[0].gateway, None, "an empty gateway is none");
        let route = &r.routes[0];
        assert_eq!(
            (route.mtu, route.advmss, route.priority),
            (None, None, None)
        );
        assert_eq!(
            (route.table, route.scope),
            (Some(0), Some(0)),
            "pointers in Go: 0 is set"
        );
        assert_eq!(
            r.dns,
            Dns {
                domain: "d".into(),
                ..Dns::default()
            }
        );
        let printed = r.to_json("1.1.0").expect("print");
        assert_eq!(
            printed["routes"][0],
            json!({"dst": "::/0", "gw": "fd00::1", "table": 0, "scope": 0})
        );
        assert!(printed["interfaces"][0].get("mtu").is_none());
    }

    fn sample() -> Success {
        Success {
            cni_version: "1.1.0".into(),
            interfaces: vec![Interface {
                name: "eth0".into(),
                mac: "0a:58:0a:00:00:02".into(),
                mtu: Some(1400),
                sandbox: "/var/run/netns/x".into(),
                socket_path: "/sock".into(),
                pci_id: String::new(),
            }],
            ips: vec![
                IpConfig::new(net("fd00::2/64"), None, Some(0)),
                IpConfig::new(net("10.0.0.2/24"), Some(ip("10.0.0.1")), Some(0)),
                IpConfig::new(net("10.0.1.2/24"), None, Some(0)),
            ],
            routes: vec![
                Route {
                    mtu: Some(1300),
                    ..Route::new(net("0.0.0.0/0"), Some(ip("10.0.0.1")))
                },
                Route::new(net("::/0"), None),
            ],
            dns: Dns::default(),
        }
    }

    #[test]
    fn prints_each_version_family() {
        let r = sample();
        let v1 = r.to_json("1.0.0").expect("1.0.0");
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert_eq!(
            v1["interfaces"][0]["mtu"], 1400,
            "1.1.0 -> 1.0.0 keeps the 1.1 fields"
        );
        assert!(v1.get("dns").is_none(), "empty dns omitted in 1.x");
        assert!(v1["ips"][0].get("version").is_none());

        let v04 = r.to_json("0.4.0").expect("0.4.0");
        assert_eq!(v04["dns"], json!({}), "empty dns printed in 0.x");
        assert_eq!(
            v04["interfaces"][0],
            json!({"name": "eth0", "mac": "0a:58:0a:00:00:02", "sandbox": "/var/run/netns/x"})
        );
        assert_eq!(v04["ips"][0]["version"], "6");
        assert_eq!(v04["ips"][1]["version"], "4");
        assert_eq!(
            v04["routes"][0]["mtu"], 1300,
            "route fields kept in 0.4.0, as Go's shared struct"
        );

        let v02 = r.to_json("0.2.0").expect("0.2.0");
        assert_eq!(
            v02,
            json!({"cniVersion": "0.2.0",
            "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]},
            "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "::/0"}]},
            "dns": {}})
        );
        assert_eq!(
            r.to_json("").expect("empty means 0.1.0")["cniVersion"],
            "0.1.0"
        );

        let e = r.to_json("2.0.0").expect_err("unknown version");
        assert_eq!(e.code, Code::IncompatibleVersion);
        assert!(e.msg.contains("2.0.0"), "{e}");
        let e = Success::new("1.0.0")
            .to_json("0.2.0")
            .expect_err("no address");
        assert_eq!(
            (e.code, e.msg.as_str()),
            (Code::Internal, "cannot convert: no valid IP addresses")
        );
    }

    #[test]
    fn go_key_order_in_printed_text() {
        let r = sample();
        let text = r.to_json_string("0.4.0").expect("0.4.0");
        let order: Vec<usize> = [
            "\"cniVersion\"",
            "\"interfaces\"",
            "\"ips\"",
            "\"routes\"",
            "\"dns\"",
        ]
        .iter()
        .map(|k| text.find(k).expect("key printed"))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(text.contains("\"version\": \"6\",\n            \"interface\": 0,\n            \"address\": \"fd00::2/64\""), "{text}");
        let text = r.to_json_string("1.1.0").expect("1.1.0");
        assert!(text.starts_with("{\n    \"cniVersion\": \"1.1.0\",\n    \"interfaces\": [\n        {\n            \"mac\""), "{text}");
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn helpers() {
        let r = sample();
        assert!(!r.ips[0].is_v4());
        assert!(r.ips[1].is_v4());
        assert_eq!(r.ips[1].version_label(), "4");
        let relabelled = r.with_version("0.3.1");
        assert_eq!(relabelled.cni_version, "0.3.1");
        assert_eq!(
            relabelled.interfaces, r.interfaces,
            "relabelling drops nothing"
        );
        let converted = r.convert("0.3.1").expect("convert");
        assert_eq!(converted.cni_version, "0.3.1");
        assert_eq!(
            converted.interfaces[0].mtu, None,
            "0.x has no interface mtu"
        );
        assert_eq!(converted.ips, r.ips);
        assert_eq!(converted.routes, r.routes);
        let down = r.convert("0.2.0").expect("convert");
        assert_eq!(down.ips.len(), 2, "first address of each family");
        assert!(down.interfaces.is_empty());
        assert_eq!(Success::new("1.0.0").cni_version, "1.0.0");
    }
}
