//! The vrf plugin's keys (reference §2.5): `vrfname` (required) and `table` (optional: the
//! first table id no VRF of the namespace uses). Errors carry code 999, as the Go
//! plugin's do.

use rcni_skel::Request;
use rcni_types::{Error, Result};
use serde::Deserialize;

/// The JSON keys, as Go's `VRFNetConf` declares them.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConf {
    #[serde(default)]
    vrfname: String,
    #[serde(default)]
    table: u32,
}

/// The configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// The VRF device CNI_IFNAME is enslaved to (created when missing).
    pub name: String,
    /// Its routing table; 0: the VRF's own when it exists, else the first free one.
    pub table: u32,
}

impl Conf {
    /// Decodes the keys without judging them (DEL with no name has nothing to do).
    ///
    /// # Errors
    /// A key of the wrong type (a negative or fractional `table` included, as in Go).
    pub fn decode(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        Ok(Conf {
            name: raw.vrfname,
            table: raw.table,
        })
    }

    /// Decodes and validates the keys for ADD and CHECK.
    ///
    /// # Errors
    /// As [`Conf::decode`]; no `vrfname`, or one the kernel cannot name a device.
    pub fn parse(req: &Request) -> Result<Conf> {
        let conf = Conf::decode(req)?;
        if conf.name.is_empty() {
            return Err(Error::internal(
                "configuration is expected to have a valid vrf name",
            ));
        }
        rcni_ipam::check_ifname("vrfname", &conf.name)?;
        Ok(conf)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcni_skel::Command;
    use rcni_types::args::CniArgs;
    use serde_json::{Value, json};

    use super::*;

    /// A `command` request for `plugin` (the plugin's own keys) in a minimal config.
    pub(crate) fn request(command: Command, plugin: &Value) -> Request {
        let mut config = json!({"cniVersion": "1.0.0", "name": "net", "type": "vrf"});
        if let (Some(doc), Some(keys)) = (config.as_object_mut(), plugin.as_object()) {
            doc.extend(keys.clone());
        }
        let stdin = config.to_string().into_bytes();
        Request {
            command,
            container_id: "ctr".into(),
            netns: Some("/run/netns/ctr".into()),
            ifname: "eth0".into(),
            args: CniArgs::read(""),
            raw_args: String::new(),
            path: Vec::new(),
            net: serde_json::from_slice(&stdin).expect("network config"),
            stdin,
            config,
        }
    }

    #[test]
    fn vrfname_is_required_and_table_optional() {
        let c = Conf::parse(&request(Command::Add, &json!({"vrfname": "blue"}))).expect("ok");
        assert_eq!(
            c,
            Conf {
                name: "blue".into(),
                table: 0
            }
        );
        let c = Conf::parse(&request(
            Command::Add,
            &json!({"vrfname": "blue", "table": 42}),
        ))
        .expect("table");
        assert_eq!(c.table, 42);
        let e = Conf::parse(&request(Command::Add, &json!({}))).expect_err("no name");
        assert_eq!(e.msg, "configuration is expected to have a valid vrf name");
        assert_eq!(e.code.number(), 999);
        let e = Conf::parse(&request(Command::Add, &json!({"vrfname": "a/b"}))).expect_err("name");
        assert!(e.msg.contains("vrfname"), "{e}");
        for table in [json!(-1), json!(1.5), json!("7"), json!(4_294_967_296_u64)] {
            let e = Conf::parse(&request(
                Command::Add,
                &json!({"vrfname": "v", "table": table}),
            ))
            .expect_err("table type");
            assert!(e.msg.contains("table"), "{e}");
        }
        assert_eq!(
            Conf::decode(&request(Command::Del, &json!({})))
                .expect("del")
                .name,
            ""
        );
    }
}
