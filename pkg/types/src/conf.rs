//! The keys every plugin configuration shares (spec §1, reference §1.5), and the `routes`
//! entry IPAM configs share. A plugin reads its own keys from the same JSON into its own
//! struct with [`crate::json::from_value`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::net::{parse_cidr, parse_ip};
use crate::result::{Dns, Route};

/// The delegated IPAM section: only `type` is common; the rest belongs to the IPAM plugin.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct IpamConf {
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A `routes` entry of a plugin config (Go's `types.Route`, with the 1.1.0 fields), its
/// addresses still text: [`RouteConf::to_route`] parses them once the whole document has
/// decoded, so a bad address fails with Go's own message rather than the decoder's.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct RouteConf {
    #[serde(default)]
    pub dst: Option<String>,
    #[serde(default)]
    pub gw: Option<String>,
    /// Go's `int`s: 0 is unset.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub advmss: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    /// Go's `*int`s: 0 is set.
    #[serde(default)]
    pub table: Option<u32>,
    #[serde(default)]
    pub scope: Option<u8>,
}

impl RouteConf {
    /// The route: `dst` a CIDR with its host bits kept (a missing one reads as `""`, which
    /// fails), `gw` an address or, when missing or empty, none ([`crate::net`]).
    ///
    /// # Errors
    /// Go's text for the first bad address, `dst` first: "invalid CIDR address: <dst>",
    /// "invalid IP address: <gw>".
    pub fn to_route(&self) -> Result<Route, String> {
        let dst = parse_cidr(self.dst.as_deref().unwrap_or_default())?;
        let gw = parse_ip(self.gw.as_deref().unwrap_or_default())?;
        Ok(Route {
            mtu: self.mtu.filter(|n| *n != 0),
            advmss: self.advmss.filter(|n| *n != 0),
            priority: self.priority.filter(|n| *n != 0),
            table: self.table,
            scope: self.scope,
            ..Route::new(dst, gw)
        })
    }
}

/// A (containerID, ifname) pair from `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    #[serde(default, rename = "containerID")]
    pub container_id: String,
    #[serde(default)]
    pub ifname: String,
}

/// The common part of a plugin's stdin config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub capabilities: BTreeMap<String, bool>,
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    #[serde(default)]
    pub dns: Option<Dns>,
    /// Raw: it is parsed with the config's version as default (see `Success::from_json`).
    #[serde(default)]
    pub prev_result: Option<Value>,
    #[serde(default)]
    pub runtime_config: Option<Value>,
    #[serde(default)]
    pub args: Option<Value>,
    /// GC only. libcni ≥ 1.2.3 sends both keys; the legacy one is read when the new is absent.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    #[serde(default, rename = "cni.dev/attachments")]
    pub legacy_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// The attachments GC must keep; `None` when the runtime sent neither key.
    #[must_use]
    pub fn gc_attachments(&self) -> Option<&[Attachment]> {
        self.valid_attachments
            .as_deref()
            .or(self.legacy_attachments.as_deref())
    }

    /// The config's version, with the spec's implicit default for a missing one.
    #[must_use]
    pub fn version(&self) -> &str {
        if self.cni_version.is_empty() {
            crate::version::IMPLICIT
        } else {
            &self.cni_version
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn route(doc: &Value) -> Result<Route, String> {
        crate::json::from_value::<RouteConf>(doc)
            .expect("decodes")
            .to_route()
    }

    #[test]
    fn routes_decode_as_go_types_route() {
        let doc = json!({"dst": "::ffff:10.1.2.3/120", "gw": "::ffff:10.1.2.1",
                         "mtu": 0, "advmss": 1400, "priority": 0, "table": 0, "scope": 0});
        let r = route(&doc).expect("valid route");
        assert_eq!(
            r.dst.to_string(),
            "10.1.2.3/24",
            "host bits kept, mapped is v4"
        );
        assert_eq!(r.gw, Some("10.1.2.1".parse().expect("test address")));
        assert_eq!(
            (r.mtu, r.advmss, r.priority),
            (None, Some(1400), None),
            "0 is unset"
        );
        assert_eq!(
            (r.table, r.scope),
            (Some(0), Some(0)),
            "pointers in Go: 0 is set"
        );
        let r = route(&json!({"dst": "0.0.0.0/0", "gw": ""})).expect("empty gateway");
        assert_eq!(
            r,
            Route::new("0.0.0.0/0".parse().expect("test network"), None)
        );

        // (document, error) with Go's texts; `dst` is parsed first.
        let errors = [
            (json!({"gw": "10.0.0.1"}), "invalid CIDR address: "),
            (json!({"dst": "10.0.0.0"}), "invalid CIDR address: 10.0.0.0"),
            (json!({"dst": "x", "gw": "y"}), "invalid CIDR address: x"),
            (
                json!({"dst": "10.0.0.0/8", "gw": "y"}),
                "invalid IP address: y",
            ),
        ];
        for (doc, want) in errors {
            assert_eq!(route(&doc), Err(want.to_string()), "{doc}");
        }
    }
}
