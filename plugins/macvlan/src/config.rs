//! The macvlan plugin's keys (reference §2.3): `master`, `mode`, `mtu`, `mac`,
//! `linkInContainer`, `bcqueuelen`, `ipam` (optional: layer 2 only without it), `dns`.
//!
//! [`Conf::decode`] fails only where Go's `json.Unmarshal` fails: enough for DEL, STATUS
//! and GC, so a DEL after a refused ADD still releases what it can. [`Conf::parse`] adds
//! the checks that need no kernel (mode, MAC, CNI_ARGS); the master and its MTU are judged
//! when ADD and CHECK look the master up ([`crate::setup::master_link`]). Errors carry
//! code 999 with the reference's wording, as the Go plugin's do.

use rcni_netlink::MacvlanMode;
use rcni_types::args::CniArgs;
use rcni_types::{Dns, Error, Result};
use serde::Deserialize;

use rcni_skel::Request;

#[derive(Debug, Clone, Default, Deserialize)]
struct MacOnly {
    #[serde(default)]
    mac: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CniArgsSection {
    #[serde(default)]
    cni: MacOnly,
}

/// The JSON keys, as Go's `NetConf` in plugins/main/macvlan declares them.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    mac: String,
    #[serde(default, rename = "linkInContainer")]
    link_in_container: bool,
    #[serde(default)]
    bcqueuelen: u32,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: MacOnly,
    #[serde(default)]
    args: CniArgsSection,
}

/// The configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub network: String,
    /// `None`: the interface of the first default route (in the container namespace with
    /// `linkInContainer`).
    pub master: Option<String>,
    /// `mode` as written (for the reference's messages).
    pub mode_name: String,
    pub mode: MacvlanMode,
    /// 0 is the kernel's default; valid values run up to the master's MTU.
    pub mtu: i64,
    /// runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC > mac.
    pub mac: Option<[u8; 6]>,
    /// The master is in the container namespace, and the macvlan is made there.
    pub link_in_container: bool,
    /// Broadcast queue length; `None` (0 in the config) leaves the kernel's default.
    pub bc_queue_len: Option<u32>,
    /// The delegated IPAM plugin's type; `None` means layer 2 only.
    pub ipam: Option<String>,
    /// `dns` from the config: the result's DNS, whatever IPAM says (as the reference).
    pub dns: Dns,
    /// The chosen MAC as written, until [`Conf::parse`] judges it.
    mac_text: String,
}

impl Conf {
    /// Decodes the keys without judging their values.
    ///
    /// # Errors
    /// A key of the wrong type.
    pub fn decode(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let mac_text = [
            raw.runtime_config.mac.as_str(),
            raw.args.cni.mac.as_str(),
            req.args.get("MAC").unwrap_or_default(),
            raw.mac.as_str(),
        ]
        .into_iter()
        .find(|m| !m.is_empty())
        .unwrap_or_default()
        .to_string();
        Ok(Conf {
            network: req.net.name.clone(),
            master: Some(raw.master).filter(|m| !m.is_empty()),
            mode: mode_from_name(&raw.mode).unwrap_or(MacvlanMode::Bridge),
            mode_name: raw.mode,
            mtu: raw.mtu,
            mac: None,
            link_in_container: raw.link_in_container,
            bc_queue_len: Some(raw.bcqueuelen).filter(|n| *n != 0),
            ipam: req
                .net
                .ipam
                .as_ref()
                .map(|i| i.kind.clone())
                .filter(|k| !k.is_empty()),
            dns: req.net.dns.clone().unwrap_or_default(),
            mac_text,
        })
    }

    /// Decodes and validates the keys ADD and CHECK need, without kernel contact.
    ///
    /// # Errors
    /// As [`Conf::decode`]; an unknown `mode`; a MAC that does not parse; CNI_ARGS with
    /// unknown keys (without `IgnoreUnknown`).
    pub fn parse(req: &Request) -> Result<Conf> {
        let mut conf = Conf::decode(req)?;
        check_args(&req.args)?;
        conf.mode = mode_from_name(&conf.mode_name).ok_or_else(|| {
            Error::internal(format!("unknown macvlan mode: {:?}", conf.mode_name))
        })?;
        if !conf.mac_text.is_empty() {
            let text = &conf.mac_text;
            conf.mac = Some(rcni_netlink::parse_mac(text).ok_or_else(|| {
                Error::internal(format!(
                    "invalid args {text} for MAC addr: address {text}: invalid MAC address"
                ))
            })?);
        }
        Ok(conf)
    }
}

/// Go's `MacEnvArgs`: `MAC` (and `IgnoreUnknown`); anything else is an error unless
/// `IgnoreUnknown` is set.
fn check_args(args: &CniArgs) -> Result<()> {
    args.check_known(&["MAC"])
}

/// The reference's mode names; empty is the default, bridge.
#[must_use]
pub fn mode_from_name(name: &str) -> Option<MacvlanMode> {
    match name {
        "" | "bridge" => Some(MacvlanMode::Bridge),
        "private" => Some(MacvlanMode::Private),
        "vepa" => Some(MacvlanMode::Vepa),
        "passthru" => Some(MacvlanMode::Passthru),
        _ => None,
    }
}

/// The name the reference prints for a mode.
#[must_use]
pub fn mode_name(mode: MacvlanMode) -> &'static str {
    match mode {
        MacvlanMode::Bridge => "bridge",
        MacvlanMode::Private => "private",
        MacvlanMode::Vepa => "vepa",
        MacvlanMode::Passthru => "passthru",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcni_skel::Command;
    use serde_json::{Value, json};

    /// A request for `plugin` (the plugin's own keys) in a minimal network config, with
    /// CNI_ARGS `args`.
    pub(crate) fn request_with_args(plugin: Value, args: &str) -> Request {
        let mut req = rcni_testkit::request(Command::Add, "macvlan", &plugin);
        req.args = CniArgs::read(args);
        req.raw_args = args.to_string();
        req
    }

    pub(crate) fn request(plugin: Value) -> Request {
        request_with_args(plugin, "")
    }

    #[test]
    fn defaults() {
        let c = Conf::parse(&request(json!({}))).expect("valid");
        assert_eq!(c.master, None);
        assert_eq!(c.mode, MacvlanMode::Bridge);
        assert_eq!(
            (c.mtu, c.mac, c.link_in_container, c.bc_queue_len),
            (0, None, false, None)
        );
        assert_eq!(c.ipam, None, "layer 2 only");
        assert!(c.dns.is_empty());
    }

    #[test]
    fn every_key() {
        let c = Conf::parse(&request(
            json!({"master": "eth1", "mode": "passthru", "mtu": 1400,
            "mac": "02:00:00:00:00:01", "linkInContainer": true, "bcqueuelen": 100,
            "ipam": {"type": "static"}, "dns": {"nameservers": ["10.0.0.53"]}}),
        ))
        .expect("valid");
        assert_eq!(c.master.as_deref(), Some("eth1"));
        assert_eq!(c.mode, MacvlanMode::Passthru);
        assert_eq!(c.mtu, 1400);
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 1]));
        assert!(c.link_in_container);
        assert_eq!(c.bc_queue_len, Some(100));
        assert_eq!(c.ipam.as_deref(), Some("static"));
        assert_eq!(c.dns.nameservers, ["10.0.0.53"]);
        for mode in ["bridge", "private", "vepa", "passthru"] {
            let c = Conf::parse(&request(json!({ "mode": mode }))).expect("mode");
            assert_eq!(mode_name(c.mode), mode);
        }
    }

    #[test]
    fn mac_precedence() {
        let all = json!({"mac": "02:00:00:00:00:01",
            "args": {"cni": {"mac": "02:00:00:00:00:02"}},
            "runtimeConfig": {"mac": "02:00:00:00:00:03"}});
        let env = "MAC=02:00:00:00:00:04";
        let mac = |plugin: Value, args: &str| {
            Conf::parse(&request_with_args(plugin, args))
                .expect("valid")
                .mac
                .map(|m| m[5])
        };
        assert_eq!(mac(all.clone(), env), Some(3), "runtimeConfig first");
        let mut no_rc = all.clone();
        no_rc["runtimeConfig"] = json!({});
        assert_eq!(mac(no_rc.clone(), env), Some(2), "then args.cni.mac");
        no_rc["args"] = json!({});
        assert_eq!(mac(no_rc.clone(), env), Some(4), "then CNI_ARGS MAC");
        assert_eq!(mac(no_rc, ""), Some(1), "then mac");
    }

    #[test]
    fn bad_values_get_the_reference_wording() {
        let cases = [
            (
                json!({"mode": "weird"}),
                "",
                "unknown macvlan mode: \"weird\"",
            ),
            (
                json!({"mac": "zz"}),
                "",
                "invalid args zz for MAC addr: address zz: invalid MAC address",
            ),
            (json!({}), "FOO=bar", "ARGS: unknown args [\"FOO=bar\"]"),
            (
                json!({"mtu": "x"}),
                "",
                "failed to load netconf: mtu: invalid type",
            ),
            (
                json!({"bcqueuelen": -1}),
                "",
                "failed to load netconf: bcqueuelen",
            ),
        ];
        for (keys, args, says) in cases {
            let e = Conf::parse(&request_with_args(keys.clone(), args)).expect_err("invalid");
            assert_eq!(e.code.number(), 999, "{keys}: {e}");
            assert!(e.msg.starts_with(says), "{keys}: {e}");
        }
        // DEL judges none of the values.
        assert!(Conf::decode(&request(json!({"mode": "weird", "mac": "zz"}))).is_ok());
        assert!(Conf::decode(&request_with_args(json!({}), "FOO=bar")).is_ok());
        assert!(Conf::parse(&request_with_args(json!({}), "IgnoreUnknown=1;FOO=bar")).is_ok());
    }
}
