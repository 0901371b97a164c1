//! The bandwidth plugin (reference `plugins/meta/bandwidth`, the tbf layout of v1.6.0 and
//! later, as Debian's 1.1.1): rate limits for a veth-attached pod.
//!
//! Keys, in bits per second and bits as the reference: `ingressRate` + `ingressBurst`
//! (traffic toward the pod) and `egressRate` + `egressBurst` (traffic from the pod). The
//! `bandwidth` capability (`runtimeConfig.bandwidth`, same four keys) is used only when
//! none of the four is set in the config. A rate needs its burst and a burst its rate;
//! burst/8 must stay under 4 GiB. All zero: `prevResult` passes through untouched.
//!
//! - Ingress: `tbf` (root, handle `1:`) on the host end of the pod's veth.
//! - Egress: an ifb named `bwp` + sha512(network + container id) in hex, cut to 15
//!   characters, with the host veth's MTU and queue length 0 (the reference since v1.6.0;
//!   Debian's 1.1.1 copied the veth's); the host veth's `ingress`
//!   qdisc (`ffff:`) redirects everything (u32 match-all, mirred egress redirect) to it
//!   (the Go plugin's filter carries a second, unreachable redirect action with `pass`,
//!   an artefact of its netlink library; ours has only the one that acts),
//!   and a `tbf` on the ifb shapes it. The ifb is appended to the result's interfaces, as
//!   the reference does.
//! - tbf parameters as the reference: rate in bytes/s, burst in bytes, latency 25 ms,
//!   limit = rate × 25 ms + burst.
//!
//! Processes: the qdiscs and the filter are made by `tc` from iproute2 (a tc netlink
//! encoder is not written yet), the ifb by `ip`: an ADD with both limits starts two
//! processes (`ip -batch`, `tc -batch`), with one limit one; DEL starts none (netlink);
//! CHECK starts one `tc -j qdisc show` per shaped device.
//!
//! - DEL: deletes the ifb (the veth's qdiscs go with the veth); needs neither the netns
//!   nor `prevResult`.
//! - CHECK: the tbf qdiscs exist with the configured rate.

use std::io::Write;
use std::process::{Command, Stdio};

use rcni_netlink::{LinkRef, Netlink, RealNetlink};
use rcni_skel::{Plugin, Request};
use rcni_types::{Error, Interface, Result, Success};
use serde::Deserialize;

/// Latency of the tbf queues (the reference's `latencyInMillis`).
pub const LATENCY_MS: u64 = 25;
const IFB_PREFIX: &str = "bwp";
const IFNAME_MAX: usize = 15;

/// The plugin.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bandwidth;

#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    ingress_rate: Option<u64>,
    #[serde(default)]
    ingress_burst: Option<u64>,
    #[serde(default)]
    egress_rate: Option<u64>,
    #[serde(default)]
    egress_burst: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    bandwidth: Option<RawEntry>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConf {
    #[serde(flatten)]
    entry: RawEntry,
    #[serde(default)]
    runtime_config: RuntimeConfig,
}

/// One direction's limit: rate in bits/s, burst in bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub rate: u64,
    pub burst: u64,
}

impl Limit {
    /// The rate in bytes/s, as the kernel's tbf holds it.
    #[must_use]
    pub fn rate_bytes(self) -> u64 {
        self.rate / 8
    }

    /// The burst in bytes.
    #[must_use]
    pub fn burst_bytes(self) -> u64 {
        self.burst / 8
    }

    /// The queue limit in bytes: rate × latency + burst (the reference's `limit`).
    #[must_use]
    pub fn limit_bytes(self) -> u64 {
        self.rate_bytes() * LATENCY_MS / 1000 + self.burst_bytes()
    }

    /// `tc qdisc add` arguments of the root tbf on `dev`.
    #[must_use]
    pub fn tbf_line(self, dev: &str) -> String {
        format!(
            "qdisc add dev {dev} root handle 1: tbf rate {}bps burst {}b limit {}b",
            self.rate_bytes(),
            self.burst_bytes(),
            self.limit_bytes()
        )
    }
}

/// The validated keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conf {
    pub network: String,
    pub ingress: Option<Limit>,
    pub egress: Option<Limit>,
}

fn limit(rate_key: &str, burst_key: &str, rate: u64, burst: u64) -> Result<Option<Limit>> {
    match (rate, burst) {
        (0, 0) => Ok(None),
        (_, 0) => Err(Error::invalid_config(format!(
            "if rate is set, burst must also be set: \"{rate_key}\" without \"{burst_key}\""
        ))),
        (0, _) => Err(Error::invalid_config(format!(
            "if burst is set, rate must also be set: \"{burst_key}\" without \"{rate_key}\""
        ))),
        (_, b) if b / 8 >= u64::from(u32::MAX) => Err(Error::invalid_config(format!(
            "burst cannot be more than 4GB: \"{burst_key}\" is {b}"
        ))),
        (rate, burst) => Ok(Some(Limit { rate, burst })),
    }
}

impl Conf {
    /// Parses and validates the keys; nothing is touched before this succeeds.
    ///
    /// # Errors
    /// A rate without its burst (or the reverse), or a burst over 4 GiB, naming the key
    /// (code 7).
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        let entry = if raw.entry == RawEntry::default() {
            raw.runtime_config.bandwidth.unwrap_or_default()
        } else {
            raw.entry
        };
        let v = |o: Option<u64>| o.unwrap_or(0);
        Ok(Conf {
            network: req.net.name.clone(),
            ingress: limit(
                "ingressRate",
                "ingressBurst",
                v(entry.ingress_rate),
                v(entry.ingress_burst),
            )?,
            egress: limit(
                "egressRate",
                "egressBurst",
                v(entry.egress_rate),
                v(entry.egress_burst),
            )?,
        })
    }
}

/// The ifb's name: `bwp` + sha512(network + container id) in hex, 15 characters.
#[must_use]
pub fn ifb_name(network: &str, container_id: &str) -> String {
    rcni_firewall::names::hash_with_prefix(
        IFNAME_MAX,
        IFB_PREFIX,
        &format!("{network}{container_id}"),
    )
}

fn internal(what: &str, e: impl std::fmt::Display) -> Error {
    Error::internal(format!("{what}: {e}"))
}

/// Runs `tool -batch -` with `lines` on stdin.
fn batch(tool: &str, lines: &[String]) -> Result<()> {
    let mut child = Command::new(tool)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| internal(&format!("running {tool}"), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let text = lines.join("\n") + "\n";
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| internal(&format!("writing to {tool}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| internal(&format!("waiting for {tool}"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "{tool} failed ({}): {}",
            lines.join("; "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The host end of the pod's veth CNI_IFNAME, as named in `prev` (sandbox empty).
fn host_interface(req: &Request, prev: &Success, host: &mut RealNetlink) -> Result<String> {
    if prev.interfaces.is_empty() {
        return Err(Error::internal("no interfaces provided"));
    }
    let ns = req.open_netns()?;
    let mut ctr = rcni_ipam::container_netlink(&ns)?;
    let peer = ctr
        .get_link(&LinkRef::from(req.ifname.as_str()))
        .ok()
        .and_then(|l| l.peer_index)
        .ok_or_else(|| {
            Error::internal(format!(
                "container interface {} has no veth peer",
                req.ifname
            ))
        })?;
    let link = host
        .get_link(&LinkRef::Index(peer))
        .map_err(|_| Error::internal(format!("veth peer with index {peer} is not in host ns")))?;
    prev.interfaces
        .iter()
        .find(|i| i.sandbox.is_empty() && i.name == link.name)
        .map(|i| i.name.clone())
        .ok_or_else(|| Error::internal("no veth peer of container interface found in host ns"))
}

fn del_ifb(host: &mut RealNetlink, name: &str) -> Result<()> {
    match host.get_link(&LinkRef::from(name)) {
        Ok(link) => match host.del_link(link.index) {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(internal(&format!("deleting {name}"), e)),
        },
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(internal(&format!("looking up {name}"), e)),
    }
}

/// Best-effort undo of a failed ADD: the ifb and the veth's qdiscs.
fn undo(host: &mut RealNetlink, veth: &str, ifb: Option<&str>) {
    if let Some(ifb) = ifb {
        let _ = del_ifb(host, ifb);
    }
    let _ = batch(
        "tc",
        &[
            format!("qdisc del dev {veth} root"),
            format!("qdisc del dev {veth} ingress"),
        ],
    );
}

impl Plugin for Bandwidth {
    fn name(&self) -> &'static str {
        "bandwidth"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let mut result = req
            .prev_result()?
            .ok_or_else(|| Error::internal("must be called as chained plugin"))?;
        if conf.ingress.is_none() && conf.egress.is_none() {
            return Ok(result);
        }
        let mut host = RealNetlink::new().map_err(|e| internal("opening netlink", e))?;
        let veth = host_interface(req, &result, &mut host)?;
        let mut tc = Vec::new();
        if let Some(l) = conf.ingress {
            tc.push(l.tbf_line(&veth));
        }
        let mut ifb = None;
        if let Some(l) = conf.egress {
            let name = ifb_name(&conf.network, &req.container_id);
            let v = host
                .get_link(&LinkRef::from(veth.as_str()))
                .map_err(|e| internal(&format!("looking up {veth}"), e))?;
            batch(
                "ip",
                &[
                    // Queue length 0 as the reference since v1.6.0 (its netlink library
                    // cannot yet set the ifb's queue counts to match, plugins#1097).
                    format!("link add name {name} mtu {} txqueuelen 0 type ifb", v.mtu),
                    format!("link set {name} up"),
                ],
            )
            .inspect_err(|_| {
                let _ = del_ifb(&mut host, &name);
            })?;
            tc.push(format!("qdisc add dev {veth} handle ffff: ingress"));
            tc.push(format!(
                "filter add dev {veth} parent ffff: protocol all prio 1 u32 match u32 0 0 \
                 flowid 1:1 action mirred egress redirect dev {name}"
            ));
            tc.push(l.tbf_line(&name));
            ifb = Some(name);
        }
        if let Err(e) = batch("tc", &tc) {
            undo(&mut host, &veth, ifb.as_deref());
            return Err(e);
        }
        if let Some(name) = ifb {
            let link = host
                .get_link(&LinkRef::from(name.as_str()))
                .map_err(|e| internal(&format!("looking up {name}"), e))?;
            result.interfaces.push(Interface {
                name,
                mac: link.mac.map(rcni_netlink::format_mac).unwrap_or_default(),
                ..Interface::default()
            });
        }
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let mut host = RealNetlink::new().map_err(|e| internal("opening netlink", e))?;
        del_ifb(&mut host, &ifb_name(&conf.network, &req.container_id))
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("must be called as a chained plugin"))?;
        let mut host = RealNetlink::new().map_err(|e| internal("opening netlink", e))?;
        let veth = host_interface(req, &prev, &mut host)?;
        if let Some(l) = conf.ingress {
            check_tbf(&veth, l)?;
        }
        if let Some(l) = conf.egress {
            check_tbf(&ifb_name(&conf.network, &req.container_id), l)?;
        }
        Ok(())
    }
}

/// The root tbf of `dev` has the rate of `l` (from `tc -j qdisc show`).
fn check_tbf(dev: &str, l: Limit) -> Result<()> {
    let out = Command::new("tc")
        .args(["-j", "qdisc", "show", "dev", dev])
        .output()
        .map_err(|e| internal("running tc", e))?;
    if !out.status.success() {
        return Err(Error::internal(format!(
            "listing qdiscs of {dev}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| internal("reading tc output", e))?;
    let tbf = doc
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "tbf" && q["root"] == true)
        .ok_or_else(|| Error::internal(format!("Failed to find qdisc tbf on {dev}")))?;
    let rate = tbf["options"]["rate"].as_u64().unwrap_or_default();
    if rate != l.rate_bytes() {
        return Err(Error::internal(format!(
            "Rate does not match for device {dev} ({rate} != {})",
            l.rate_bytes()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rcni_skel::Command as Verb;
    use rcni_testkit::request;
    use rcni_types::Code;
    use serde_json::json;

    use super::*;

    fn conf(keys: &serde_json::Value) -> Result<Conf> {
        Conf::parse(&request(Verb::Add, "bandwidth", keys))
    }

    #[test]
    fn static_keys() {
        let c = conf(
            &json!({"ingressRate": 8000, "ingressBurst": 800, "egressRate": 16000,
                             "egressBurst": 1600}),
        )
        .expect("ok");
        assert_eq!(
            c.ingress,
            Some(Limit {
                rate: 8000,
                burst: 800
            })
        );
        assert_eq!(
            c.egress,
            Some(Limit {
                rate: 16000,
                burst: 1600
            })
        );
    }

    #[test]
    fn capability_only_when_no_static_key() {
        let rc = json!({"bandwidth": {"egressRate": 8000, "egressBurst": 800}});
        let c = conf(&json!({"runtimeConfig": rc})).expect("ok");
        assert_eq!(
            c.egress,
            Some(Limit {
                rate: 8000,
                burst: 800
            })
        );
        let c =
            conf(&json!({"ingressRate": 80, "ingressBurst": 8, "runtimeConfig": rc})).expect("ok");
        assert_eq!(c.egress, None);
        assert!(c.ingress.is_some());
    }

    #[test]
    fn nothing_set_is_no_limit() {
        assert_eq!(
            conf(&json!({})).expect("ok"),
            Conf {
                network: "net".into(),
                ..Conf::default()
            }
        );
    }

    #[test]
    fn rate_without_burst_names_the_key() {
        let e = conf(&json!({"ingressRate": 8000})).expect_err("bad");
        assert_eq!(e.code, Code::InvalidConfig);
        assert!(
            e.msg.contains("\"ingressRate\" without \"ingressBurst\""),
            "{}",
            e.msg
        );
        let e = conf(&json!({"egressBurst": 8000})).expect_err("bad");
        assert!(
            e.msg.contains("\"egressBurst\" without \"egressRate\""),
            "{}",
            e.msg
        );
        let rc = json!({"bandwidth": {"egressRate": 8000}});
        assert!(conf(&json!({"runtimeConfig": rc})).is_err());
    }

    #[test]
    fn burst_over_4gb() {
        let e = conf(&json!({"egressRate": 8, "egressBurst": 8u64 * u64::from(u32::MAX)}))
            .expect_err("bad");
        assert!(
            e.msg.contains("4GB") && e.msg.contains("egressBurst"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn tbf_parameters_as_the_reference() {
        let l = Limit {
            rate: 1_000_000,
            burst: 80_000,
        };
        assert_eq!(l.rate_bytes(), 125_000);
        assert_eq!(l.limit_bytes(), 3125 + 10_000);
        assert_eq!(
            l.tbf_line("veth0"),
            "qdisc add dev veth0 root handle 1: tbf rate 125000bps burst 10000b limit 13125b"
        );
    }

    #[test]
    fn ifb_name_is_bwp_and_hash() {
        let n = ifb_name("net", "ctr");
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("bwp"));
        assert_eq!(n, ifb_name("net", "ctr"));
        assert_ne!(n, ifb_name("net", "ctr2"));
    }

    #[test]
    fn add_without_prev_result_fails() {
        let req = request(Verb::Add, "bandwidth", &json!({}));
        assert!(Bandwidth.add(&req).is_err());
    }
}
