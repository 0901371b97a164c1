//! The vlan plugin's keys (reference §2.3): `master` (required), `vlanId`, `mtu`,
//! `linkInContainer`, `ipam` (required in effect: the reference execs an IPAM plugin with
//! an empty name otherwise) and `dns`.
//!
//! [`Conf::decode`] is all DEL, STATUS and GC need: it fails only where Go's
//! `json.Unmarshal` fails, so DEL works after a refused ADD and when the master is gone
//! (the reference looks the master up on every verb and fails DEL without it).
//! [`Conf::parse`] adds the checks ADD and CHECK make before touching the kernel; the
//! MTU is judged against the master's once it is looked up. Errors carry code 999, as
//! the Go plugin's do.

use rcni_ipam::check_ifname;
use rcni_types::{Dns, Error, Result};
use serde::Deserialize;

use rcni_skel::Request;

/// The largest VLAN id (4095 is reserved).
pub const MAX_VLAN_ID: i64 = 4094;

/// The JSON keys, as Go's `NetConf` in plugins/main/vlan declares them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    master: String,
    #[serde(default, rename = "vlanId")]
    vlan_id: i64,
    #[serde(default)]
    mtu: i64,
    #[serde(default, rename = "linkInContainer")]
    link_in_container: bool,
}

/// The configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub master: String,
    pub vlan_id: u16,
    /// The raw `mtu`: 0 is the master's, the rest is judged against the master's MTU.
    pub mtu: i64,
    /// `master` is looked up in the container and the VLAN made there.
    pub link_in_container: bool,
    /// The delegated IPAM plugin's type.
    pub ipam: Option<String>,
    /// The config's `dns`: the result's DNS, whatever IPAM returned (as the reference).
    pub dns: Dns,
}

impl Conf {
    /// Decodes the keys without judging their values.
    ///
    /// # Errors
    /// A key of the wrong type.
    pub fn decode(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        Ok(Conf {
            master: raw.master,
            vlan_id: u16::try_from(raw.vlan_id).unwrap_or_default(),
            mtu: raw.mtu,
            link_in_container: raw.link_in_container,
            ipam: req
                .net
                .ipam
                .as_ref()
                .map(|i| i.kind.clone())
                .filter(|k| !k.is_empty()),
            dns: req.net.dns.clone().unwrap_or_default(),
        })
    }

    /// Decodes and validates the keys for ADD and CHECK.
    ///
    /// # Errors
    /// As [`Conf::decode`]; no `master` or one no interface can be named; `vlanId`
    /// outside 0-4094; no `ipam` type.
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        if raw.master.is_empty() {
            return Err(Error::internal(
                "\"master\" field is required. It specifies the host interface name to create the VLAN for",
            ));
        }
        check_ifname("master", &raw.master)?;
        if !(0..=MAX_VLAN_ID).contains(&raw.vlan_id) {
            return Err(Error::internal(format!(
                "invalid VLAN ID {} (vlanId must be between 0 and {MAX_VLAN_ID})",
                raw.vlan_id
            )));
        }
        let conf = Conf::decode(req)?;
        if conf.ipam.is_none() {
            return Err(Error::internal("no plugin name provided")
                .with_details("vlan needs an \"ipam\" section with a \"type\""));
        }
        Ok(conf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcni_skel::Command;
    use serde_json::{Value, json};

    use super::*;

    /// A `command` request for `plugin` (the plugin's own keys) in a minimal config.
    pub(crate) fn request(command: Command, plugin: &Value) -> Request {
        let mut req = rcni_testkit::request(command, "vlan", plugin);
        req.netns = Some("/run/netns/ctr".into());
        req
    }

    fn parse(plugin: &Value) -> Result<Conf> {
        Conf::parse(&request(Command::Add, plugin))
    }

    #[test]
    fn keys_are_checked_as_the_reference_does() {
        let ipam = json!({"type": "host-local"});
        let c = parse(&json!({"master": "eth1", "vlanId": 4094, "mtu": 1400, "ipam": ipam}))
            .expect("valid");
        assert_eq!((c.master.as_str(), c.vlan_id, c.mtu), ("eth1", 4094, 1400));
        parse(&json!({"master": "eth1", "ipam": ipam})).expect("vlanId 0 is allowed");

        let e = parse(&json!({"vlanId": 5, "ipam": ipam})).expect_err("no master");
        assert!(e.msg.starts_with("\"master\" field is required"), "{e}");
        for id in [-1, 4095, 70000] {
            let e = parse(&json!({"master": "eth1", "vlanId": id, "ipam": ipam}))
                .expect_err("out of range");
            assert_eq!(
                e.msg,
                format!("invalid VLAN ID {id} (vlanId must be between 0 and 4094)")
            );
            assert_eq!(e.code.number(), 999);
        }
        let e = parse(&json!({"master": "eth1", "vlanId": 5})).expect_err("no ipam");
        assert_eq!(e.msg, "no plugin name provided");
        let e = parse(&json!({"master": "eth1", "vlanId": "5", "ipam": ipam})).expect_err("type");
        assert!(e.msg.contains("vlanId"), "{e}");

        // DEL only decodes: it works whatever ADD refused.
        let c = Conf::decode(&request(Command::Del, &json!({"vlanId": 9999}))).expect("del");
        assert_eq!(c.ipam, None);
    }

    #[test]
    fn master_names_the_kernel_refuses() {
        check_ifname("master", "eth0.100").expect("fine");
        for bad in ["abcdefghijklmnop", "a/b", "a:b", "a b", ".", ".."] {
            let e = check_ifname("master", bad).expect_err(bad);
            assert!(e.msg.contains("master"), "{e}");
        }
    }
}
