//! The tap plugin's keys (reference §2.3): `mac` (also `runtimeConfig.mac` and CNI_ARGS
//! `MAC`), `mtu`, `multiQueue`, `owner`, `group`, `selinuxContext`, `bridge` (an existing
//! bridge of the container to attach the tap to), `args`, `ipam` (optional: layer 2
//! without it) and `dns`.
//!
//! [`Conf::decode`] fails only where Go's `json.Unmarshal` fails: all DEL, STATUS and GC
//! need. [`Conf::parse`] adds what ADD and CHECK judge before touching the kernel (the
//! MAC, the MTU's range, CNI_ARGS). Errors carry code 999, as the Go plugin's do.

use rcni_skel::Request;
use rcni_types::args::CniArgs;
use rcni_types::{Dns, Error, Result};
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
struct MacOnly {
    #[serde(default)]
    mac: String,
}

/// The JSON keys, as Go's `NetConf` in plugins/main/tap declares them.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConf {
    #[serde(default, rename = "multiQueue")]
    multi_queue: bool,
    #[serde(default)]
    mtu: i64,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    owner: Option<u32>,
    #[serde(default)]
    group: Option<u32>,
    #[serde(default, rename = "selinuxContext")]
    selinux_context: String,
    #[serde(default)]
    bridge: String,
    /// Go's `Args *struct{}`: any object (or null), nothing read from it.
    #[serde(default)]
    args: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: MacOnly,
}

/// The configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    /// runtimeConfig.mac > CNI_ARGS MAC > mac; `None`: the kernel's random one.
    pub mac: Option<[u8; 6]>,
    /// `None` (0 in the config): the kernel's default.
    pub mtu: Option<u32>,
    pub multi_queue: bool,
    /// The user allowed to open the tap; `None`: anyone with CAP_NET_ADMIN.
    pub owner: Option<u32>,
    /// The group allowed to open the tap.
    pub group: Option<u32>,
    /// The SELinux label the tap is made under (it takes its creator's).
    pub selinux_context: Option<String>,
    /// A bridge in the container to attach the tap to.
    pub bridge: Option<String>,
    /// The delegated IPAM plugin's type; `None` means layer 2 only.
    pub ipam: Option<String>,
    /// `dns` from the config: the result's DNS (as the reference, whatever IPAM says).
    pub dns: Dns,
    mac_text: String,
    mtu_raw: i64,
}

impl Conf {
    /// Decodes the keys without judging their values.
    ///
    /// # Errors
    /// A key of the wrong type (`owner` or `group` outside 0..2^32 included, as in Go).
    pub fn decode(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let _ = raw.args;
        let mac_text = [
            raw.runtime_config.mac.as_str(),
            req.args.get("MAC").unwrap_or_default(),
            raw.mac.as_str(),
        ]
        .into_iter()
        .find(|m| !m.is_empty())
        .unwrap_or_default()
        .to_string();
        Ok(Conf {
            mac: None,
            mtu: None,
            multi_queue: raw.multi_queue,
            owner: raw.owner,
            group: raw.group,
            selinux_context: Some(raw.selinux_context).filter(|s| !s.is_empty()),
            bridge: Some(raw.bridge).filter(|b| !b.is_empty()),
            ipam: req
                .net
                .ipam
                .as_ref()
                .map(|i| i.kind.clone())
                .filter(|k| !k.is_empty()),
            dns: req.net.dns.clone().unwrap_or_default(),
            mac_text,
            mtu_raw: raw.mtu,
        })
    }

    /// Decodes and validates what ADD and CHECK need, without kernel contact.
    ///
    /// # Errors
    /// As [`Conf::decode`]; CNI_ARGS with keys other than `MAC` (without
    /// `IgnoreUnknown`); a MAC that does not parse; a negative `mtu`; a `bridge` that is no
    /// interface name.
    pub fn parse(req: &Request) -> Result<Conf> {
        let mut conf = Conf::decode(req)?;
        if !req.raw_args.is_empty() {
            check_args(&req.args)?;
        }
        if !conf.mac_text.is_empty() {
            let text = &conf.mac_text;
            conf.mac = Some(rcni_netlink::parse_mac(text).ok_or_else(|| {
                Error::internal(format!(
                    "invalid args {text} for MAC addr: address {text}: invalid MAC address"
                ))
            })?);
        }
        conf.mtu = match u32::try_from(conf.mtu_raw) {
            Ok(0) => None,
            Ok(mtu) => Some(mtu),
            Err(_) => {
                return Err(Error::internal(format!(
                    "invalid MTU {}: must be 0 (the default) or positive",
                    conf.mtu_raw
                )));
            }
        };
        if let Some(bridge) = &conf.bridge {
            rcni_ipam::check_ifname("bridge", bridge)?;
        }
        Ok(conf)
    }
}

/// Go's `MacEnvArgs`: `MAC` (and `IgnoreUnknown`); anything else is an error unless
/// `IgnoreUnknown` is set.
fn check_args(args: &CniArgs) -> Result<()> {
    args.check_known(&["MAC"])
}

#[cfg(test)]
pub(crate) mod tests {
    use rcni_skel::Command;
    use serde_json::{Value, json};

    use super::*;

    /// A `command` request for `plugin` (the plugin's own keys) in a minimal config.
    pub(crate) fn request(command: Command, plugin: &Value, args: &str) -> Request {
        let mut config = json!({"cniVersion": "1.0.0", "name": "net", "type": "tap"});
        if let (Some(doc), Some(keys)) = (config.as_object_mut(), plugin.as_object()) {
            doc.extend(keys.clone());
        }
        let stdin = config.to_string().into_bytes();
        Request {
            command,
            container_id: "ctr".into(),
            netns: Some("/run/netns/ctr".into()),
            ifname: "tap0".into(),
            args: CniArgs::read(args),
            raw_args: args.to_string(),
            path: Vec::new(),
            net: serde_json::from_slice(&stdin).expect("network config"),
            stdin,
            config,
        }
    }

    fn parse(plugin: Value, args: &str) -> Result<Conf> {
        Conf::parse(&request(Command::Add, &plugin, args))
    }

    #[test]
    fn every_key_of_the_reference() {
        let c = parse(
            json!({"mac": "02:00:00:00:00:01", "mtu": 1400, "multiQueue": true,
                   "owner": 1000, "group": 0, "selinuxContext": "system_u:object_r:x:s0",
                   "bridge": "br0", "args": {"cni": {}}}),
            "",
        )
        .expect("parse");
        assert_eq!(c.mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(c.mtu, Some(1400));
        assert!(c.multi_queue);
        assert_eq!(
            (c.owner, c.group),
            (Some(1000), Some(0)),
            "group 0 is a group"
        );
        assert_eq!(c.selinux_context.as_deref(), Some("system_u:object_r:x:s0"));
        assert_eq!(c.bridge.as_deref(), Some("br0"));
        let c = parse(json!({}), "").expect("defaults");
        assert_eq!((c.mac, c.mtu, c.owner, c.group), (None, None, None, None));
        assert!(c.ipam.is_none() && c.bridge.is_none() && c.selinux_context.is_none());
    }

    #[test]
    fn mac_precedence_as_the_reference() {
        let all = json!({"mac": "02:00:00:00:00:01",
                         "runtimeConfig": {"mac": "02:00:00:00:00:03"}});
        let env = "MAC=02:00:00:00:00:04";
        let mac = |plugin: Value, args: &str| parse(plugin, args).expect("parse").mac.map(|m| m[5]);
        assert_eq!(mac(all.clone(), env), Some(3), "runtimeConfig first");
        assert_eq!(
            mac(json!({"mac": "02:00:00:00:00:01"}), env),
            Some(4),
            "then CNI_ARGS"
        );
        assert_eq!(
            mac(json!({"mac": "02:00:00:00:00:01"}), ""),
            Some(1),
            "then mac"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse(json!({"mac": "zz"}), "").expect_err("mac");
        assert_eq!(
            e.msg,
            "invalid args zz for MAC addr: address zz: invalid MAC address"
        );
        let e = parse(json!({"mtu": -1}), "").expect_err("mtu");
        assert!(e.msg.starts_with("invalid MTU -1"), "{e}");
        for (key, value) in [
            ("owner", json!(-1)),
            ("group", json!(4_294_967_296_u64)),
            ("multiQueue", json!("yes")),
            ("args", json!("x")),
            ("mtu", json!("1400")),
        ] {
            let e = parse(json!({key: value}), "").expect_err(key);
            assert!(e.msg.contains(key), "{key}: {e}");
            assert_eq!(e.code.number(), 999);
        }
        let e = parse(json!({}), "FOO=bar").expect_err("unknown CNI_ARGS");
        assert_eq!(e.msg, r#"ARGS: unknown args ["FOO=bar"]"#);
        parse(json!({}), "IgnoreUnknown=1;FOO=bar").expect("ignored");
        // DEL only decodes.
        Conf::decode(&request(
            Command::Del,
            &json!({"mac": "zz", "mtu": -5}),
            "FOO=1",
        ))
        .expect("del");
    }
}
