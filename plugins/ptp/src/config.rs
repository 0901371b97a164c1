//! The ptp plugin's keys (reference §2.3): `ipMasq`, `ipMasqBackend`, `mtu`, `ipam`
//! (required) and `dns`.
//!
//! [`Conf::decode`] is all that DEL, STATUS and GC need: it fails only where Go's
//! `json.Unmarshal` (or its missing IPAM) fails, so a DEL after an ADD that was refused
//! for a bad value still releases what it can. [`Conf::parse`] adds the checks ADD and
//! CHECK make before touching the kernel. Errors carry code 999, as the Go plugin's do.

use rcni_types::{Dns, Error, Result};
use serde::Deserialize;

use rcni_skel::Request;

/// The smallest MTU the kernel accepts on a veth (`ETH_MIN_MTU`).
pub const MIN_MTU: i64 = 68;
/// The largest (`ETH_MAX_MTU`).
pub const MAX_MTU: i64 = 65535;

/// The JSON keys, as Go's `NetConf` in plugins/main/ptp declares them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    ip_masq: bool,
    #[serde(default)]
    ip_masq_backend: Option<String>,
    #[serde(default)]
    mtu: i64,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub network: String,
    pub ip_masq: bool,
    pub ip_masq_backend: Option<String>,
    /// MTU of both veth ends; `None` is the kernel's default. Go sends only a positive
    /// value, so 0 and negative numbers mean the default there too.
    pub mtu: Option<u32>,
    /// The raw `mtu`, judged by [`Conf::parse`].
    raw_mtu: i64,
    /// The delegated IPAM plugin's type (ptp has no layer-2 mode).
    pub ipam: String,
    /// `dns` from the config, replacing the IPAM's when any field is set.
    pub dns: Option<Dns>,
}

impl Conf {
    /// Decodes the keys without judging their values.
    ///
    /// # Errors
    /// A key of the wrong type; no `ipam.type` (Go's invoke wording, "no plugin name
    /// provided", with the key named in the details).
    pub fn decode(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let ipam = req
            .net
            .ipam
            .as_ref()
            .map(|i| i.kind.clone())
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                Error::internal("no plugin name provided")
                    .with_details("ptp needs an \"ipam\" section with a \"type\"")
            })?;
        Ok(Conf {
            network: req.net.name.clone(),
            ip_masq: raw.ip_masq,
            ip_masq_backend: raw.ip_masq_backend,
            mtu: u32::try_from(raw.mtu).ok().filter(|m| *m > 0),
            raw_mtu: raw.mtu,
            ipam,
            dns: req.net.dns.clone().filter(|d| !d.is_empty()),
        })
    }

    /// Decodes and validates the keys for ADD and CHECK.
    ///
    /// # Errors
    /// As [`Conf::decode`]; an `mtu` no veth can have; an unknown `ipMasqBackend`.
    pub fn parse(req: &Request) -> Result<Conf> {
        let conf = Conf::decode(req)?;
        if conf.raw_mtu > 0 && !(MIN_MTU..=MAX_MTU).contains(&conf.raw_mtu) {
            return Err(Error::internal(format!(
                "invalid mtu {}: must be between {MIN_MTU} and {MAX_MTU}",
                conf.raw_mtu
            )));
        }
        if let Some(b) = &conf.ip_masq_backend
            && b != "iptables"
            && b != "nftables"
        {
            return Err(Error::internal(format!(
                "unknown ipMasqBackend {b:?} (must be \"iptables\" or \"nftables\")"
            )));
        }
        Ok(conf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcni_skel::Command;
    use serde_json::{Value, json};

    /// A request for `plugin` (the plugin's own keys) in a minimal network config with a
    /// host-local IPAM section.
    pub(crate) fn request(plugin: Value) -> Request {
        let mut keys = json!({"ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}});
        if let (Some(doc), Some(plugin)) = (keys.as_object_mut(), plugin.as_object()) {
            doc.extend(plugin.clone());
        }
        rcni_testkit::request(Command::Add, "ptp", &keys)
    }

    #[test]
    fn defaults_and_keys() {
        let c = Conf::parse(&request(json!({}))).expect("valid");
        assert_eq!(
            (c.ip_masq, c.mtu, c.ipam.as_str(), c.dns.is_none()),
            (false, None, "host-local", true)
        );
        let c = Conf::parse(&request(json!({"IPMASQ": true, "mtu": 1400,
            "ipMasqBackend": "nftables", "dns": {"nameservers": ["10.1.0.53"]}})))
        .expect("valid");
        assert!(c.ip_masq, "keys match case-insensitively, as in Go");
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.ip_masq_backend.as_deref(), Some("nftables"));
        assert_eq!(
            c.dns.map(|d| d.nameservers),
            Some(vec!["10.1.0.53".to_string()])
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (json!({"mtu": 100_000}), "invalid mtu 100000"),
            (json!({"mtu": 20}), "invalid mtu 20"),
            (
                json!({"ipMasqBackend": "pf"}),
                "unknown ipMasqBackend \"pf\"",
            ),
            (json!({"mtu": "x"}), "mtu"),
            (json!({"ipam": {}}), "no plugin name provided"),
            (json!({"ipam": null}), "no plugin name provided"),
        ];
        for (keys, says) in cases {
            let e = Conf::parse(&request(keys.clone())).expect_err("invalid");
            assert_eq!(e.code.number(), 999, "{keys}: {e}");
            assert!(e.to_string().contains(says), "{keys}: {e}");
        }
        let e = Conf::parse(&request(json!({"ipam": {}}))).expect_err("no ipam");
        assert!(e.details.contains("\"ipam\""), "{e:?}");
    }

    #[test]
    fn del_decodes_values_add_refuses() {
        for keys in [json!({"mtu": 100_000}), json!({"ipMasqBackend": "pf"})] {
            assert!(Conf::parse(&request(keys.clone())).is_err());
            assert!(Conf::decode(&request(keys)).is_ok());
        }
        // Go leaves a non-positive MTU out of the request: the kernel's default.
        let c = Conf::parse(&request(json!({"mtu": -1}))).expect("default");
        assert_eq!(c.mtu, None);
    }
}
