//! The host-local configuration: the `ipam` section, capability args (`runtimeConfig.ips`,
//! `runtimeConfig.ipRanges`), `args.cni.ips` and CNI_ARGS `IP=`, read and validated as Go's
//! `allocator.LoadIPAMConfig` does (reference §2.4).
//!
//! Every failure here is a plain error in Go, which its skel reports as code 999; the
//! messages are Go's.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::PathBuf;

use rcni_types::args::CniArgs;
use rcni_types::{Dns, Error, Result, Route, RouteConf, json, net, version};
use serde::Deserialize;
use serde_json::Value;

use crate::names;
use crate::range::{RangeSet, RangeSpec, SubnetSpec, parse_ip};

/// The CNI_ARGS keys host-local reads (besides `IgnoreUnknown`).
pub const ARG_IP: &str = "IP";

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    /// The network name: the store is `<data_dir>/<name>`.
    pub name: String,
    /// The config's `cniVersion` as written (empty when missing).
    pub cni_version: String,
    pub data_dir: PathBuf,
    /// `resolvConf`, read into the result's DNS on ADD.
    pub resolv_conf: Option<PathBuf>,
    /// Copied verbatim into the result.
    pub routes: Vec<Route>,
    /// `runtimeConfig.ipRanges`, then the legacy top-level range, then `ranges`.
    pub ranges: Vec<RangeSet>,
    /// CNI_ARGS `IP`, then `args.cni.ips`, then `runtimeConfig.ips`, in that order.
    pub requested_ips: Vec<IpAddr>,
}

// The JSON as Go's structs read it. Addresses stay strings here and are parsed afterwards,
// so the error texts are Go's own rather than the decoder's.

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NetFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    cni_version: String,
    #[serde(default)]
    ipam: Option<IpamFile>,
    #[serde(default)]
    runtime_config: RuntimeConfigFile,
    #[serde(default)]
    args: Option<ArgsFile>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct IpamFile {
    // The legacy single range, embedded at the top of `ipam`.
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    range_start: Option<String>,
    #[serde(default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    routes: Vec<Option<RouteConf>>,
    #[serde(default)]
    data_dir: String,
    #[serde(default)]
    resolv_conf: String,
    #[serde(default)]
    ranges: Vec<Vec<RangeFile>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RangeFile {
    #[serde(default)]
    subnet: Option<String>,
    #[serde(default)]
    range_start: Option<String>,
    #[serde(default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfigFile {
    #[serde(default)]
    ip_ranges: Vec<Vec<RangeFile>>,
    #[serde(default)]
    ips: Vec<Option<String>>,
}

#[derive(Deserialize, Default)]
struct ArgsFile {
    #[serde(default)]
    cni: Option<IpamArgsFile>,
}

#[derive(Deserialize, Default)]
struct IpamArgsFile {
    #[serde(default)]
    ips: Vec<Option<String>>,
}

fn plain(msg: impl Into<String>) -> Error {
    Error::internal(msg)
}

/// `net.IP` from JSON: missing or "" is no address; anything else must parse.
fn json_ip(s: Option<&str>) -> Result<Option<IpAddr>> {
    net::parse_ip(s.unwrap_or_default()).map_err(plain)
}

/// The plugins' `ip.IP` text form: `ip` or `ip/prefix`; "" is an empty (nil) address.
fn requested_ip(s: &str) -> std::result::Result<Option<IpAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let parsed = if s.contains('/') {
        net::parse_cidr(s).ok().map(|n| n.ip())
    } else {
        parse_ip(s)
    };
    parsed
        .map(Some)
        .ok_or_else(|| format!("invalid IP address {s}"))
}

impl RangeFile {
    fn spec(&self) -> Result<RangeSpec> {
        let subnet = match self.subnet.as_deref() {
            None => None,
            Some(s) => Some(SubnetSpec::parse(s).map_err(plain)?),
        };
        Ok(RangeSpec {
            subnet,
            range_start: json_ip(self.range_start.as_deref())?,
            range_end: json_ip(self.range_end.as_deref())?,
            gateway: json_ip(self.gateway.as_deref())?,
        })
    }
}

fn range_specs(sets: &[Vec<RangeFile>]) -> Result<Vec<Vec<RangeSpec>>> {
    sets.iter()
        .map(|set| set.iter().map(RangeFile::spec).collect())
        .collect()
}

/// The values of `key` in an object, matched as Go matches keys (ignoring case).
fn fields<'a>(v: &'a Value, key: &'a str) -> impl Iterator<Item = &'a Value> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Go's `types.IPNet` decodes `null` as "" and fails, where every other address key
/// treats `null` as absent; the Go-like decoder drops nulls, so look at the document.
fn reject_null_subnets(config: &Value) -> Result<()> {
    let null_subnet = |range: &Value| fields(range, "subnet").any(Value::is_null);
    let in_sets = |sets: &Value| {
        sets.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .any(null_subnet)
    };
    let ipam =
        fields(config, "ipam").any(|ipam| null_subnet(ipam) || fields(ipam, "ranges").any(in_sets));
    let runtime = fields(config, "runtimeConfig").any(|rc| fields(rc, "ipRanges").any(in_sets));
    if ipam || runtime {
        Err(plain("invalid CIDR address: "))
    } else {
        Ok(())
    }
}

impl Conf {
    /// Reads the plugin config (the whole stdin document) and CNI_ARGS.
    ///
    /// # Errors
    /// Everything Go's `LoadIPAMConfig` rejects, with its messages, as code 999.
    pub fn load(config: &Value, args: &CniArgs) -> Result<Conf> {
        let file: NetFile = json::from_value(config).map_err(|e| plain(e.to_string()))?;
        reject_null_subnets(config)?;
        let Some(ipam) = &file.ipam else {
            return Err(plain("IPAM config missing 'ipam' key"));
        };

        // Addresses, in the order Go's decoder meets them.
        let legacy = RangeFile {
            subnet: ipam.subnet.clone(),
            range_start: ipam.range_start.clone(),
            range_end: ipam.range_end.clone(),
            gateway: ipam.gateway.clone(),
        }
        .spec()?;
        let routes = ipam
            .routes
            .iter()
            .flatten()
            .map(|r| r.to_route().map_err(plain))
            .collect::<Result<Vec<_>>>()?;
        let configured = range_specs(&ipam.ranges)?;
        let runtime = range_specs(&file.runtime_config.ip_ranges)?;
        let ip_list = |list: &[Option<String>]| -> Result<Vec<Option<IpAddr>>> {
            list.iter()
                .map(|s| requested_ip(s.as_deref().unwrap_or_default()).map_err(plain))
                .collect()
        };
        let from_args = ip_list(
            file.args
                .as_ref()
                .and_then(|a| a.cni.as_ref())
                .map_or(&[], |c| c.ips.as_slice()),
        )?;
        let from_runtime = ip_list(&file.runtime_config.ips)?;

        // CNI_ARGS `IP=` (an empty value requests nothing), then the JSON sources.
        let mut requested: Vec<Option<IpAddr>> = Vec::new();
        args.check_known(&[ARG_IP])?;
        if let Some(value) = args.get(ARG_IP) {
            let ip = requested_ip(value).map_err(|e| {
                plain(format!(
                    "ARGS: error parsing value of pair \"{ARG_IP}={value}\": {e}"
                ))
            })?;
            requested.extend(ip.map(Some));
        }
        requested.extend(from_args);
        requested.extend(from_runtime);
        let requested_ips = requested
            .into_iter()
            .map(|ip| ip.ok_or_else(|| plain("cannot understand ip: IP <nil> not v4 nor v6")))
            .collect::<Result<Vec<_>>>()?;

        // The legacy range counts only with a subnet; capability ranges go first.
        let mut specs = runtime;
        if legacy.subnet.is_some() {
            specs.push(vec![legacy]);
        }
        specs.extend(configured);
        if specs.is_empty() {
            return Err(plain("no IP ranges specified"));
        }
        let ranges = specs
            .iter()
            .enumerate()
            .map(|(i, set)| {
                RangeSet::canonicalize(set)
                    .map_err(|e| plain(format!("invalid range set {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;

        // 0.1.0/0.2.0 results hold one address per family.
        let v4 = ranges.iter().filter(|s| s.is_ipv4()).count();
        if (v4 > 1 || ranges.len() - v4 > 1) && !version::at_least(&file.cni_version, "0.3.0") {
            return Err(plain(format!(
                "CNI version {} does not support more than 1 address per family",
                file.cni_version
            )));
        }
        for (i, s1) in ranges.iter().enumerate() {
            for (j, s2) in ranges.iter().enumerate().skip(i + 1) {
                if s1.overlaps(s2) {
                    return Err(plain(format!("range set {i} overlaps with {j}")));
                }
            }
        }

        let data_dir = if ipam.data_dir.is_empty() {
            PathBuf::from(names::DEFAULT_DATA_DIR)
        } else {
            PathBuf::from(&ipam.data_dir)
        };
        Ok(Conf {
            name: file.name,
            cni_version: file.cni_version.clone(),
            data_dir,
            resolv_conf: (!ipam.resolv_conf.is_empty()).then(|| PathBuf::from(&ipam.resolv_conf)),
            routes,
            ranges,
            requested_ips,
        })
    }
}

/// Reads a resolv.conf into result DNS: `nameserver` (one each), `domain` (the last
/// wins), `search` and `options` (all words, accumulated). Comments (`#`, `;`) and lines
/// with fewer than two words are skipped, as Go's `parseResolvConf`.
///
/// # Errors
/// The file cannot be opened or read (Go's "open <path>: ..." text).
pub fn parse_resolv_conf(path: &std::path::Path) -> Result<Dns> {
    let go_err =
        |op: &str, e: &std::io::Error| plain(format!("{op} {}: {}", path.display(), os_text(e)));
    let file = File::open(path).map_err(|e| go_err("open", &e))?;
    let mut dns = Dns::default();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| go_err("read", &e))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(key), Some(first)) = (fields.first(), fields.get(1)) else {
            continue;
        };
        let rest = fields.iter().skip(1).map(|s| (*s).to_string());
        match *key {
            "nameserver" => dns.nameservers.push((*first).to_string()),
            "domain" => dns.domain = (*first).to_string(),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    Ok(dns)
}

/// An OS error as Go prints it: the errno text in lower case, without "(os error N)".
pub(crate) fn os_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = nix::errno::Errno::from_raw(n).desc();
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |c| {
                c.to_lowercase().chain(chars).collect::<String>()
            })
        }
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn load(config: &Value, args: &str) -> Result<Conf> {
        Conf::load(config, &CniArgs::read(args))
    }

    fn conf(version: &str, ipam: &Value) -> Value {
        json!({"cniVersion": version, "name": "net1", "type": "bridge", "ipam": ipam})
    }

    #[test]
    fn loads_keys_defaults_and_sources_in_go_order() {
        let config = json!({
            "cniVersion": "1.0.0",
            "name": "net1",
            "ipam": {
                "type": "host-local",
                "subnet": "10.1.2.0/24",
                "RangeStart": "10.1.2.9",
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.1.2.5", "mtu": 0}],
                "ranges": [[{"subnet": "2001:db8:1::/64", "gateway": ""}], [{"subnet": "10.7.0.0/16"}]],
                "resolvConf": "/etc/resolv.conf"
            },
            "runtimeConfig": {"ipRanges": [[{"subnet": "10.8.0.0/24"}]], "ips": ["10.8.0.9/24"]},
            "args": {"cni": {"ips": ["2001:db8:1::9"]}}
        });
        let c = load(&config, "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.1.2.20").expect("valid");
        assert_eq!(c.name, "net1");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/cni/networks"));
        assert_eq!(c.resolv_conf, Some(PathBuf::from("/etc/resolv.conf")));
        let sets: Vec<String> = c.ranges.iter().map(ToString::to_string).collect();
        assert_eq!(
            sets,
            [
                "10.8.0.1-10.8.0.254",
                "10.1.2.9-10.1.2.254",
                "2001:db8:1::1-2001:db8:1:0:ffff:ffff:ffff:ffff",
                "10.7.0.1-10.7.255.254",
            ]
        );
        assert_eq!(
            c.requested_ips,
            [ip("10.1.2.20"), ip("2001:db8:1::9"), ip("10.8.0.9")]
        );
        assert_eq!(
            c.routes,
            [
                Route::new("0.0.0.0/0".parse().expect("net"), None),
                Route::new("10.9.0.0/16".parse().expect("net"), Some(ip("10.1.2.5"))),
            ]
        );
    }

    #[test]
    fn rejects_what_go_rejects() {
        let r = |subnet: &str| json!([{"subnet": subnet}]);
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (
                "no ipam",
                json!({"cniVersion": "0.4.0", "name": "n"}),
                "",
                "IPAM config missing 'ipam' key",
            ),
            (
                "no ranges",
                conf("0.4.0", &json!({"type": "host-local"})),
                "",
                "no IP ranges specified",
            ),
            (
                "overlapping sets",
                conf(
                    "0.4.0",
                    &json!({"ranges": [r("10.0.0.0/24"), r("10.0.0.0/16")]}),
                ),
                "",
                "range set 0 overlaps with 1",
            ),
            (
                "overlapping legacy and ranges",
                conf(
                    "0.4.0",
                    &json!({"subnet": "10.0.0.0/24", "ranges": [r("10.1.0.0/24"), r("10.0.0.128/25")]}),
                ),
                "",
                "range set 0 overlaps with 2",
            ),
            (
                "two v4 sets at 0.2.0",
                conf(
                    "0.2.0",
                    &json!({"ranges": [r("10.0.0.0/24"), r("10.1.0.0/24")]}),
                ),
                "",
                "CNI version 0.2.0 does not support more than 1 address per family",
            ),
            (
                "two v6 sets without a version",
                json!({"name": "n", "ipam": {"ranges": [r("2001:db8::/64"), r("2001:db9::/64")]}}),
                "",
                "CNI version  does not support more than 1 address per family",
            ),
            (
                "host bits",
                conf("0.4.0", &json!({"subnet": "10.0.0.5/24"})),
                "",
                "invalid range set 0: Network has host bits set. For a subnet mask of length 24 the network address is 10.0.0.0",
            ),
            (
                "too small",
                conf(
                    "0.4.0",
                    &json!({"ranges": [r("10.0.0.0/24"), r("10.1.0.0/31")]}),
                ),
                "",
                "invalid range set 1: Network 10.1.0.0/31 too small to allocate from",
            ),
            (
                "empty set",
                conf("0.4.0", &json!({"ranges": [[]]})),
                "",
                "invalid range set 0: empty range set",
            ),
            (
                "range without subnet",
                conf("0.4.0", &json!({"ranges": [[{"rangeStart": "10.0.0.1"}]]})),
                "",
                "invalid range set 0: IP <nil> not v4 nor v6",
            ),
            (
                "bad cidr",
                conf("0.4.0", &json!({"subnet": "10.0.0.0/33"})),
                "",
                "invalid CIDR address: 10.0.0.0/33",
            ),
            (
                "empty cidr",
                conf("0.4.0", &json!({"subnet": ""})),
                "",
                "invalid CIDR address: ",
            ),
            (
                "null subnet",
                conf(
                    "0.4.0",
                    &json!({"subnet": null, "ranges": [[{"subnet": "10.0.0.0/24"}]]}),
                ),
                "",
                "invalid CIDR address: ",
            ),
            (
                "null subnet in a capability range",
                json!({"name": "n", "runtimeConfig": {"ipRanges": [[{"Subnet": null}]]}, "ipam": {"subnet": "10.0.0.0/24"}}),
                "",
                "invalid CIDR address: ",
            ),
            (
                "bad gateway",
                conf("0.4.0", &json!({"subnet": "10.0.0.0/24", "gateway": "x"})),
                "",
                "invalid IP address: x",
            ),
            (
                "bad route",
                conf(
                    "0.4.0",
                    &json!({"subnet": "10.0.0.0/24", "routes": [{"dst": "10.0.0.0"}]}),
                ),
                "",
                "invalid CIDR address: 10.0.0.0",
            ),
            (
                "unknown CNI_ARGS",
                conf("0.4.0", &json!({"subnet": "10.0.0.0/24"})),
                "FOO=bar",
                "ARGS: unknown args *",
            ),
            (
                "malformed CNI_ARGS",
                conf("0.4.0", &json!({"subnet": "10.0.0.0/24"})),
                "IP",
                "ARGS: invalid pair \"IP\"",
            ),
            (
                "bad IP in CNI_ARGS",
                conf("0.4.0", &json!({"subnet": "10.0.0.0/24"})),
                "IP=foo",
                "ARGS: error parsing value of pair \"IP=foo\": invalid IP address foo",
            ),
            (
                "empty requested ip",
                json!({"cniVersion": "0.4.0", "name": "n", "args": {"cni": {"ips": [""]}}, "ipam": {"subnet": "10.0.0.0/24"}}),
                "",
                "cannot understand ip: IP <nil> not v4 nor v6",
            ),
            (
                "bad runtimeConfig ip",
                json!({"cniVersion": "0.4.0", "name": "n", "runtimeConfig": {"ips": ["10.0.0.300"]}, "ipam": {"subnet": "10.0.0.0/24"}}),
                "",
                "invalid IP address 10.0.0.300",
            ),
            (
                "ranges of the wrong type",
                conf("0.4.0", &json!({"ranges": "x"})),
                "",
                "ipam.ranges*",
            ),
        ];
        // A trailing `*` marks a prefix: the rest of those texts is not Go's.
        for (name, config, args, want) in cases {
            let e = load(&config, args).expect_err(name);
            assert_eq!(e.code.number(), 999, "{name}: {e}");
            match want.strip_suffix('*') {
                Some(prefix) => assert!(e.msg.starts_with(prefix), "{name}: {e}"),
                None => assert_eq!(e.msg, want, "{name}"),
            }
        }
    }

    #[test]
    fn accepts_what_go_accepts() {
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "gateway outside the subnet",
                conf(
                    "0.4.0",
                    &json!({"subnet": "10.0.0.0/24", "gateway": "10.1.0.1"}),
                ),
                "",
            ),
            (
                "dual stack at 0.2.0",
                conf(
                    "0.2.0",
                    &json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "2001:db8::/64"}]]}),
                ),
                "",
            ),
            (
                "empty IP in CNI_ARGS",
                conf("0.4.0", &json!({"subnet": "10.0.0.0/24"})),
                "IP=",
            ),
            (
                "ranges null",
                conf(
                    "0.4.0",
                    &json!({"subnet": "10.0.0.0/24", "ranges": null, "routes": null}),
                ),
                "",
            ),
            (
                "legacy keys without subnet are ignored",
                conf(
                    "0.4.0",
                    &json!({"rangeStart": "10.9.9.9", "ranges": [[{"subnet": "10.0.0.0/24"}]]}),
                ),
                "",
            ),
            (
                "case-insensitive keys",
                json!({"cniVersion": "0.4.0", "Name": "n", "IPAM": {"Ranges": [[{"SUBNET": "10.0.0.0/24"}]], "DATADIR": "/x"}}),
                "",
            ),
            (
                "mapped requested ip",
                json!({"cniVersion": "0.4.0", "name": "n", "runtimeConfig": {"ips": ["::ffff:10.0.0.5/24"]}, "ipam": {"subnet": "10.0.0.0/24"}}),
                "",
            ),
        ];
        for (name, config, args) in cases {
            let c = load(&config, args).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name == "case-insensitive keys" {
                assert_eq!(c.data_dir, PathBuf::from("/x"));
            }
            if name == "mapped requested ip" {
                assert_eq!(c.requested_ips, [ip("10.0.0.5")]);
            }
            if name == "empty IP in CNI_ARGS" {
                assert!(c.requested_ips.is_empty());
            }
        }
    }

    #[test]
    fn resolv_conf_becomes_result_dns() {
        let dir = crate::testdir::TestDir::new("resolv");
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# comment\nnameserver 1.1.1.1\n  nameserver   8.8.8.8 extra\n; other\ndomain a.example\n\
             domain b.example\nsearch x.example y.example\nsearch z.example\noptions ndots:5 rotate\nnameserver\n",
        )
        .expect("write resolv.conf");
        let dns = parse_resolv_conf(&path).expect("parses");
        assert_eq!(dns.nameservers, ["1.1.1.1", "8.8.8.8"]);
        assert_eq!(dns.domain, "b.example");
        assert_eq!(dns.search, ["x.example", "y.example", "z.example"]);
        assert_eq!(dns.options, ["ndots:5", "rotate"]);
        let e = parse_resolv_conf(&dir.path().join("missing")).expect_err("missing file");
        assert_eq!(
            e.msg,
            format!(
                "open {}: no such file or directory",
                dir.path().join("missing").display()
            )
        );
    }
}
