//! The tuning plugin's keys (reference §2.5, `plugins/meta/tuning/tuning.go`), parsed and
//! validated before any kernel contact: a bad key or value changes nothing.
//!
//! Sources, later ones winning as in the reference: the config keys, CNI_ARGS `MAC`,
//! `runtimeConfig.mac` (the `mac` capability), then `args.cni.{sysctl, mac, promisc, mtu,
//! allmulti, txQLen}`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rcni_skel::Request;
use rcni_types::{Error, Result};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};

use crate::names::{
    ALLOWLIST_FILE, CNI_ARGS_MAC, DEFAULT_DATA_DIR, IFNAME_PLACEHOLDER, NET_COMPONENT, PROC_SYS,
};

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    mac: String,
}

/// `args.cni`: every key optional, each one overriding the config's.
#[derive(Debug, Default, Deserialize)]
struct CniArgsConf {
    #[serde(default)]
    sysctl: Option<BTreeMap<String, String>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(default, rename = "txQLen")]
    tx_qlen: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct ArgsSection {
    #[serde(default)]
    cni: Option<CniArgsConf>,
}

/// The JSON keys, as Go's `TuningConf` declares them.
#[derive(Debug, Default, Deserialize)]
struct RawConf {
    #[serde(default, rename = "dataDir")]
    data_dir: String,
    #[serde(default)]
    sysctl: Option<BTreeMap<String, String>>,
    #[serde(default)]
    mac: String,
    #[serde(default)]
    promisc: bool,
    #[serde(default)]
    mtu: i64,
    #[serde(default, rename = "txQLen")]
    tx_qlen: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
    #[serde(default)]
    args: Option<ArgsSection>,
}

/// Only `dataDir`, for DEL: everything else is read from the backup file.
#[derive(Debug, Default, Deserialize)]
struct DataDirOnly {
    #[serde(default, rename = "dataDir")]
    data_dir: String,
}

/// One sysctl to set in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// The key as configured (what errors name).
    pub key: String,
    /// Its file, always under `/proc/sys/net/`.
    pub path: PathBuf,
    pub value: String,
}

/// A MAC address: the bytes, and the text Go's `HardwareAddr.String()` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&rcni_netlink::format_mac(self.0))
    }
}

/// The validated tuning request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub data_dir: PathBuf,
    pub sysctls: Vec<Sysctl>,
    pub mac: Option<Mac>,
    /// Only `true` does anything (the reference never turns promiscuous mode off).
    pub promisc: bool,
    pub mtu: Option<u32>,
    pub allmulti: Option<bool>,
    pub txqlen: Option<u32>,
}

impl Conf {
    /// Parses and validates the request for ADD and CHECK.
    ///
    /// # Errors
    /// Decoding failures (999, as Go's `json.Unmarshal`), CNI_ARGS problems (999), and
    /// invalid values: duplicated or non-`net.*` sysctl keys, sysctls the allow-list at
    /// `allowlist` refuses, bad MAC, MTU or queue length (7, naming the key).
    pub fn parse(req: &Request, allowlist: &Path) -> Result<Conf> {
        reject_duplicate_sysctls(&req.stdin)?;
        let raw: RawConf = req.plugin_config()?;

        let mut mac = raw.mac;
        if !req.raw_args.is_empty() {
            req.args.check_known(&[CNI_ARGS_MAC])?;
            if let Some(m) = req.args.get(CNI_ARGS_MAC).filter(|m| !m.is_empty()) {
                m.clone_into(&mut mac);
            }
        }
        if !raw.runtime_config.mac.is_empty() {
            mac = raw.runtime_config.mac;
        }
        let mut sysctl = raw.sysctl.unwrap_or_default();
        let mut promisc = raw.promisc;
        let mut mtu = raw.mtu;
        let mut allmulti = raw.allmulti;
        let mut tx_qlen = raw.tx_qlen;
        if let Some(cni) = raw.args.and_then(|a| a.cni) {
            sysctl.extend(cni.sysctl.unwrap_or_default());
            mac = cni.mac.unwrap_or(mac);
            promisc = cni.promisc.unwrap_or(promisc);
            mtu = cni.mtu.unwrap_or(mtu);
            allmulti = cni.allmulti.or(allmulti);
            tx_qlen = cni.tx_qlen.or(tx_qlen);
        }

        let mac = if mac.is_empty() {
            None
        } else {
            Some(parse_go_mac(&mac).ok_or_else(|| {
                Error::invalid_config(format!("invalid args {mac} for MAC addr")).with_details(
                    "a 6-byte MAC: aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabb.ccdd.eeff",
                )
            })?)
        };
        let mtu = match mtu {
            0 => None,
            m => Some(u32::try_from(m).map_err(|_| {
                Error::invalid_config(format!(
                    "invalid mtu {m}: must be between 0 and {}",
                    u32::MAX
                ))
            })?),
        };
        let txqlen = tx_qlen
            .map(|q| {
                u32::try_from(q).map_err(|_| {
                    Error::invalid_config(format!(
                        "invalid txQLen {q}: must be between 0 and {}",
                        u32::MAX
                    ))
                })
            })
            .transpose()?;

        let allowed = read_allowlist(allowlist)?;
        let mut sysctls = Vec::with_capacity(sysctl.len());
        for (key, value) in sysctl {
            if let Some(patterns) = &allowed {
                check_allowed(&key, patterns)?;
            }
            sysctls.push(resolve_sysctl(&key, &req.ifname, value)?);
        }

        Ok(Conf {
            data_dir: data_dir_or_default(raw.data_dir),
            sysctls,
            mac,
            promisc,
            mtu,
            allmulti,
            txqlen,
        })
    }

    /// `dataDir` alone, for DEL: a config that ADD would refuse must not keep DEL from
    /// restoring and removing what an earlier ADD saved.
    ///
    /// # Errors
    /// `dataDir` of the wrong type.
    pub fn data_dir(req: &Request) -> Result<PathBuf> {
        let raw: DataDirOnly = req.plugin_config()?;
        Ok(data_dir_or_default(raw.data_dir))
    }

    /// Whether any link attribute is asked for (and so a backup is written).
    #[must_use]
    pub fn changes_link(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.txqlen.is_some()
    }
}

fn data_dir_or_default(dir: String) -> PathBuf {
    if dir.is_empty() {
        PathBuf::from(DEFAULT_DATA_DIR)
    } else {
        PathBuf::from(dir)
    }
}

/// The reference's key resolution, made strict: dots become slashes, the first `IFNAME`
/// becomes the interface name (after the dots, so `eth0.100` stays one component), and the
/// result must name a file under `/proc/sys/net/`. Unlike the reference, which only checks
/// the cleaned path's prefix, a key with an empty, `.` or `..` component is refused outright
/// (`net/../kernel/x` would clean to `/proc/sys/net/kernel/x` there), and so is a value with
/// control characters (a newline would end the write early) or an empty one.
///
/// # Errors
/// Code 7 naming the key.
pub fn resolve_sysctl(key: &str, ifname: &str, value: String) -> Result<Sysctl> {
    let invalid = |why: &str| {
        Error::invalid_config(format!("invalid net sysctl key: {key:?}")).with_details(why)
    };
    let slashed = key.replace('.', "/");
    let named = slashed.replacen(IFNAME_PLACEHOLDER, ifname, 1);
    let relative = named.strip_prefix('/').unwrap_or(&named);
    let parts: Vec<&str> = relative.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.chars().any(char::is_control))
    {
        return Err(invalid(&format!(
            "{relative:?} has an empty, \".\" or \"..\" component"
        )));
    }
    if parts.len() < 2 || parts.first() != Some(&NET_COMPONENT) {
        return Err(invalid(&format!(
            "{PROC_SYS}/{relative} is not under {PROC_SYS}/{NET_COMPONENT}/"
        )));
    }
    if value.trim().is_empty() || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(
            Error::invalid_config(format!("invalid value {value:?} for sysctl {key:?}"))
                .with_details("a sysctl value must be non-empty text without control characters"),
        );
    }
    Ok(Sysctl {
        key: key.to_owned(),
        path: Path::new(PROC_SYS).join(relative),
        value,
    })
}

/// Go's `net.ParseMAC` for 6-byte addresses: `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff`,
/// `aabb.ccdd.eeff`, hex digits of either case. (Go also reads 8- and 20-byte addresses;
/// no link the plugins configure has one.)
#[must_use]
pub fn parse_go_mac(s: &str) -> Option<Mac> {
    if s.len() == 14 && s.as_bytes().get(4) == Some(&b'.') {
        let groups: Vec<&str> = s.split('.').collect();
        if groups.len() != 3 || groups.iter().any(|g| g.len() != 4) {
            return None;
        }
        let mut mac = [0u8; 6];
        for (i, group) in groups.iter().enumerate() {
            let hi = group.get(..2)?;
            let lo = group.get(2..)?;
            mac[2 * i] = hex_byte(hi)?;
            mac[2 * i + 1] = hex_byte(lo)?;
        }
        return Some(Mac(mac));
    }
    if s.len() != 17 {
        return None;
    }
    let sep = if s.as_bytes().get(2) == Some(&b'-') {
        '-'
    } else {
        ':'
    };
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for byte in &mut mac {
        *byte = hex_byte(parts.next()?)?;
    }
    parts.next().is_none().then_some(Mac(mac))
}

fn hex_byte(s: &str) -> Option<u8> {
    if s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u8::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// The allow-list's patterns; `None` when the file does not exist (no restriction).
fn read_allowlist(path: &Path) -> Result<Option<Vec<(String, regex_lite::Regex)>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::internal(format!(
                "reading sysctl allow-list {}: {e}",
                path.display()
            )));
        }
    };
    let mut patterns = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let re = regex_lite::Regex::new(line).map_err(|e| {
            Error::invalid_config(format!(
                "invalid pattern {line:?} in sysctl allow-list {}: {e}",
                path.display()
            ))
        })?;
        patterns.push((line.to_owned(), re));
    }
    Ok(Some(patterns))
}

/// As the reference: the key (as configured) must match one pattern anywhere in it.
fn check_allowed(key: &str, patterns: &[(String, regex_lite::Regex)]) -> Result<()> {
    if patterns.iter().any(|(_, re)| re.is_match(key)) {
        return Ok(());
    }
    let list: Vec<&str> = patterns.iter().map(|(p, _)| p.as_str()).collect();
    Err(Error::invalid_config(format!(
        "Sysctl {key} is not allowed. Only the following sysctls are allowed: [{}]",
        list.join(" ")
    )))
}

/// The path of the default allow-list, for [`crate::Tuning::default`].
#[must_use]
pub fn default_allowlist() -> PathBuf {
    PathBuf::from(ALLOWLIST_FILE)
}

/// The reference refuses a `sysctl` object naming a key twice (its decoded map would keep
/// only the last); serde's map keeps only the last too, so the check reads stdin itself.
/// Only keys of top-level `sysctl` objects count (matched case-insensitively, as Go does).
fn reject_duplicate_sysctls(stdin: &[u8]) -> Result<()> {
    let mut de = serde_json::Deserializer::from_slice(stdin);
    match de::Deserializer::deserialize_map(&mut de, TopLevel) {
        Ok(None) => Ok(()),
        Ok(Some(key)) => Err(
            Error::invalid_config("duplicated sysctl keys are not allowed")
                .with_details(format!("key {key:?} is given twice")),
        ),
        // Malformed JSON is reported by the config decoder, with Go's wording.
        Err(_) => Ok(()),
    }
}

/// Visits the top-level object; yields the first repeated sysctl key.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        let mut repeated = None;
        while let Some(key) = map.next_key::<String>()? {
            if key.eq_ignore_ascii_case("sysctl") {
                if let Some(k) = map.next_value_seed(SysctlKeys(&mut seen))? {
                    repeated.get_or_insert(k);
                }
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(repeated)
    }
}

/// The keys of one `sysctl` object, added to a list shared by every such object.
struct SysctlKeys<'a>(&'a mut Vec<String>);

impl<'de> DeserializeSeed<'de> for SysctlKeys<'_> {
    type Value = Option<String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SysctlKeys<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sysctl object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut repeated = None;
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            if self.0.contains(&key) {
                repeated.get_or_insert(key);
            } else {
                self.0.push(key);
            }
        }
        Ok(repeated)
    }

    // Any other value (null, a wrong type) is for the config decoder to judge.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}
