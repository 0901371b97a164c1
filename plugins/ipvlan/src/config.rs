//! The ipvlan plugin's keys (reference §2.3): `master`, `mode`, `mtu`, `linkInContainer`,
//! `ipam` (optional when chained after a plugin whose result has IPs) and `dns`.
//!
//! [`Conf::decode`] is all DEL, STATUS and GC need: it fails only where Go's
//! `json.Unmarshal` fails, so a DEL after a refused ADD still releases what it can (the
//! reference also resolves the master on DEL and fails when it cannot). [`Conf::parse`]
//! adds the checks ADD and CHECK make before touching the kernel. Errors carry code 999, as
//! the Go plugin's do.

use rcni_ipam::check_ifname;
use rcni_netlink::IpvlanMode;
use rcni_types::{Dns, Error, Result, Success};
use serde::Deserialize;

use rcni_skel::Request;

/// The JSON keys, as Go's `NetConf` in plugins/main/ipvlan declares them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: i64,
    #[serde(default, rename = "linkInContainer")]
    link_in_container: bool,
}

/// Where the ipvlan's parent comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// `master`, or the single interface of `prevResult` when chained.
    Named(String),
    /// Not configured and not chained: the interface of the first default route.
    DefaultRoute,
    /// Not configured, on a verb other than ADD: CHECK's `prevResult` is the final result,
    /// which names the ipvlan, not its parent.
    Unknown,
}

/// The configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub master: Master,
    pub mode: IpvlanMode,
    /// The raw `mtu`: 0 is the master's, the rest is judged against the master's MTU.
    pub mtu: i64,
    /// `master` (and the default route) are looked up in the container.
    pub link_in_container: bool,
    /// The delegated IPAM plugin's type; `None` when chained without one.
    pub ipam: Option<String>,
    /// `prevResult`, when chained.
    pub prev: Option<Success>,
    /// The config's `dns`: the result's DNS, whatever IPAM returned (as the reference).
    pub dns: Dns,
}

impl Conf {
    /// Decodes the keys without judging their values.
    ///
    /// # Errors
    /// A key of the wrong type.
    pub fn decode(req: &Request) -> Result<Conf> {
        Ok(Conf::from_raw(req, req.plugin_config()?).0)
    }

    fn from_raw(req: &Request, raw: RawConf) -> (Conf, RawConf) {
        let conf = Conf {
            master: Master::Unknown,
            mode: IpvlanMode::L2,
            mtu: raw.mtu,
            link_in_container: raw.link_in_container,
            ipam: req
                .net
                .ipam
                .as_ref()
                .map(|i| i.kind.clone())
                .filter(|k| !k.is_empty()),
            prev: None,
            dns: req.net.dns.clone().unwrap_or_default(),
        };
        (conf, raw)
    }

    /// Decodes and validates the keys for ADD and CHECK: the mode, the master's source
    /// (for ADD: chained without `master`, the single interface of `prevResult`), and
    /// where the addresses come from.
    ///
    /// # Errors
    /// As [`Conf::decode`]; an unknown `mode`; a bad `master` name; on ADD, a chained
    /// `prevResult` without exactly one named interface, or no IPs from IPAM nor
    /// `prevResult`.
    pub fn parse(req: &Request) -> Result<Conf> {
        let (mut conf, raw) = Conf::from_raw(req, req.plugin_config()?);
        conf.mode = mode_from_str(&raw.mode)?;
        conf.prev = req.prev_result().map_err(|e| {
            Error::internal(format!("could not parse prevResult: {}", e.msg))
                .with_details(e.details)
        })?;
        conf.master = if !raw.master.is_empty() {
            check_ifname("master", &raw.master)?;
            Master::Named(raw.master)
        } else if req.command != rcni_skel::Command::Add {
            Master::Unknown
        } else if let Some(prev) = &conf.prev {
            match prev.interfaces.as_slice() {
                [only] if !only.name.is_empty() => Master::Named(only.name.clone()),
                _ => {
                    return Err(Error::internal(
                        "chained master failure. PrevResult lacks a single named interface",
                    ));
                }
            }
        } else {
            Master::DefaultRoute
        };
        let chained_ips = conf.prev.as_ref().is_some_and(|p| !p.ips.is_empty());
        if req.command == rcni_skel::Command::Add && conf.ipam.is_none() && !chained_ips {
            return Err(Error::internal("no plugin name provided").with_details(
                "ipvlan needs an \"ipam\" section with a \"type\" unless chained after a plugin \
                 whose result has IPs",
            ));
        }
        Ok(conf)
    }

    /// Whether the addresses come from `prevResult` rather than IPAM (the reference: no
    /// `ipam` and a `prevResult` with IPs).
    #[must_use]
    pub fn uses_prev_ips(&self) -> bool {
        self.ipam.is_none() && self.prev.as_ref().is_some_and(|p| !p.ips.is_empty())
    }
}

/// The reference's mode names: exactly these, lowercase; empty is `l2`.
///
/// # Errors
/// Any other value, with Go's wording.
pub fn mode_from_str(s: &str) -> Result<IpvlanMode> {
    match s {
        "" | "l2" => Ok(IpvlanMode::L2),
        "l3" => Ok(IpvlanMode::L3),
        "l3s" => Ok(IpvlanMode::L3s),
        other => Err(Error::internal(format!("unknown ipvlan mode: {other:?}"))),
    }
}

#[must_use]
pub fn mode_name(mode: IpvlanMode) -> &'static str {
    match mode {
        IpvlanMode::L2 => "l2",
        IpvlanMode::L3 => "l3",
        IpvlanMode::L3s => "l3s",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcni_skel::Command;
    use serde_json::{Value, json};

    use super::*;

    /// A `command` request for `plugin` (the plugin's own keys) in a minimal config.
    pub(crate) fn request(command: Command, plugin: &Value) -> Request {
        let mut req = rcni_testkit::request(command, "ipvlan", plugin);
        req.netns = Some("/run/netns/ctr".into());
        req
    }

    fn parse(command: Command, plugin: &Value) -> Result<Conf> {
        Conf::parse(&request(command, plugin))
    }

    fn prev(interfaces: &Value) -> Value {
        json!({"cniVersion": "1.0.0", "interfaces": interfaces,
               "ips": [{"address": "10.1.2.3/24", "interface": 0}]})
    }

    #[test]
    fn master_comes_from_the_key_the_chain_or_the_default_route() {
        let ipam = json!({"type": "host-local"});
        let c = parse(Command::Add, &json!({"master": "eth1", "ipam": ipam})).expect("named");
        assert_eq!(c.master, Master::Named("eth1".into()));
        assert!(!c.uses_prev_ips());
        let c = parse(Command::Add, &json!({"ipam": ipam})).expect("default route");
        assert_eq!(c.master, Master::DefaultRoute);
        let c = parse(
            Command::Add,
            &json!({"prevResult": prev(&json!([{"name": "net0"}]))}),
        )
        .expect("chained");
        assert_eq!(c.master, Master::Named("net0".into()));
        assert!(c.uses_prev_ips(), "chained without ipam: prevResult's IPs");
        let c = parse(
            Command::Add,
            &json!({"ipam": ipam, "prevResult": prev(&json!([{"name": "net0"}]))}),
        )
        .expect("chained with ipam");
        assert!(!c.uses_prev_ips(), "an ipam section wins");
        // CHECK's prevResult is the final result: it names the ipvlan, not the master.
        let c = parse(
            Command::Check,
            &json!({"prevResult": prev(&json!([{"name": "eth0", "sandbox": "/x"}]))}),
        )
        .expect("check");
        assert_eq!(c.master, Master::Unknown);
    }

    #[test]
    fn chained_without_a_single_named_interface_fails_as_the_reference() {
        for interfaces in [
            json!([]),
            json!([{"name": "a"}, {"name": "b"}]),
            json!([{"name": ""}]),
        ] {
            let e = parse(Command::Add, &json!({"prevResult": prev(&interfaces)}))
                .expect_err("no single master");
            assert_eq!(
                e.msg,
                "chained master failure. PrevResult lacks a single named interface"
            );
            assert_eq!(e.code.number(), 999);
        }
    }

    #[test]
    fn addresses_must_come_from_somewhere() {
        let e = parse(Command::Add, &json!({"master": "eth1"})).expect_err("no ipam");
        assert_eq!(e.msg, "no plugin name provided");
        assert!(e.details.contains("ipam"), "{e:?}");
        let no_ips = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "net0"}]});
        parse(Command::Add, &json!({"prevResult": no_ips})).expect_err("prevResult has no IPs");
        // DEL only decodes: it must work whatever ADD refused.
        let conf = Conf::decode(&request(Command::Del, &json!({"mode": "bogus"}))).expect("del");
        assert_eq!(conf.ipam, None);
    }

    #[test]
    fn bad_values_name_the_key() {
        let ipam = json!({"type": "host-local"});
        let e = parse(Command::Add, &json!({"mode": "l4", "ipam": ipam})).expect_err("mode");
        assert_eq!(e.msg, "unknown ipvlan mode: \"l4\"");
        let e = parse(Command::Add, &json!({"master": "a/b", "ipam": ipam})).expect_err("name");
        assert!(e.msg.contains("master \"a/b\""), "{e}");
        let e = parse(Command::Add, &json!({"mtu": "1500", "ipam": ipam})).expect_err("type");
        assert!(e.msg.contains("mtu"), "{e}");
        assert_eq!(e.code.number(), 999);
    }

    #[test]
    fn modes_are_the_references() {
        assert_eq!(mode_from_str("").expect("default"), IpvlanMode::L2);
        assert_eq!(mode_from_str("l3s").expect("l3s"), IpvlanMode::L3s);
        for m in [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s] {
            assert_eq!(mode_from_str(mode_name(m)).expect("round trip"), m);
        }
        let e = mode_from_str("L3").expect_err("case matters, as in Go");
        assert_eq!(e.msg, "unknown ipvlan mode: \"L3\"");
        assert_eq!(e.code.number(), 999);
    }

    #[test]
    fn master_names_the_kernel_refuses() {
        check_ifname("master", "eth0").expect("fine");
        for bad in ["abcdefghijklmnop", "a/b", "a:b", "a b", ".", ".."] {
            let e = check_ifname("master", bad).expect_err(bad);
            assert!(e.msg.contains("master"), "{e}");
        }
    }
}
