//! The host-device plugin's keys (reference §2.3): one of `device`, `hwaddr`, `kernelpath`
//! or `pciBusID` (or the `deviceID` capability, a PCI or auxiliary-bus device) picks the
//! device; `ipam` (optional) and `dns`. The reference also decodes `DPDKMode` (a field
//! without a JSON tag), which marks a device that is not to be moved; it is accepted here
//! with the same effect.
//!
//! [`Conf::decode`] fails only where Go's `json.Unmarshal` fails: all DEL, STATUS and GC
//! need, so DEL works whatever ADD refused. [`Conf::parse`] resolves the selection the
//! way the reference's `loadConf` does (which looks at sysfs). Errors carry code 999, as
//! the Go plugin's do.

use rcni_skel::Request;
use rcni_types::{Dns, Error, Result};
use serde::Deserialize;

use crate::sysfs::Sysfs;

#[derive(Debug, Clone, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default, rename = "deviceID")]
    device_id: String,
}

/// The JSON keys, as Go's `NetConf` in plugins/main/host-device declares them.
#[derive(Debug, Clone, Default, Deserialize)]
struct RawConf {
    #[serde(default)]
    device: String,
    #[serde(default)]
    hwaddr: String,
    #[serde(default, rename = "DPDKMode")]
    dpdk_mode: bool,
    #[serde(default)]
    kernelpath: String,
    #[serde(default, rename = "pciBusID")]
    pci_bus_id: String,
    #[serde(default, rename = "runtimeConfig")]
    runtime_config: RuntimeConfig,
}

/// How the device to move is found, in the reference's order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `device`: an interface name in the host namespace.
    Device(String),
    /// `hwaddr`: the interface with this MAC address.
    HwAddr(String),
    /// `kernelpath`: the interface under `<path>/net/` in sysfs.
    KernelPath(String),
    /// `pciBusID` or a PCI `deviceID`: the interface of that PCI device.
    Pci(String),
    /// An auxiliary-bus `deviceID`: the interface of that device.
    Aux(String),
}

/// The configuration.
#[derive(Debug, Clone)]
pub struct Conf {
    pub selector: Selector,
    /// The device is bound to a userspace driver (or `DPDKMode` is set): it has no
    /// interface to move; ADD only runs IPAM.
    pub dpdk: bool,
    /// The delegated IPAM plugin's type; `None`: no addresses.
    pub ipam: Option<String>,
    /// `dns` from the config: the result's DNS (as the reference, whatever IPAM says).
    pub dns: Dns,
}

/// What DEL, STATUS and GC need: the keys decoded, nothing resolved.
#[derive(Debug, Clone)]
pub struct Decoded {
    raw: RawConf,
    pub ipam: Option<String>,
}

impl Decoded {
    /// Whether the device was left out of the container on ADD because a userspace driver
    /// owns it (so DEL has nothing to move back). Resolution failures count as "no": DEL
    /// then looks for the interface, and a missing one is fine.
    #[must_use]
    pub fn dpdk(&self, sys: &Sysfs) -> bool {
        if self.raw.dpdk_mode {
            return true;
        }
        let id = &self.raw.runtime_config.device_id;
        let pci = if !id.is_empty() && sys.is_pci_device(id) {
            id
        } else {
            &self.raw.pci_bus_id
        };
        !pci.is_empty() && sys.has_userspace_driver(pci).unwrap_or(false)
    }
}

impl Conf {
    /// Decodes the keys without judging them.
    ///
    /// # Errors
    /// A key of the wrong type.
    pub fn decode(req: &Request) -> Result<Decoded> {
        let raw: RawConf = req.plugin_config()?;
        Ok(Decoded {
            raw,
            ipam: req
                .net
                .ipam
                .as_ref()
                .map(|i| i.kind.clone())
                .filter(|k| !k.is_empty()),
        })
    }

    /// Decodes the keys and picks the device as the reference's `loadConf` does: a
    /// `deviceID` capability replaces `pciBusID` (or names an auxiliary-bus device), one
    /// selector is required, and a PCI device bound to a userspace driver is not moved.
    ///
    /// # Errors
    /// As [`Conf::decode`]; a `deviceID` that is neither a PCI nor an auxiliary-bus
    /// device; no selector at all; a PCI device without a driver.
    pub fn parse(req: &Request, sys: &Sysfs) -> Result<Conf> {
        let Decoded { raw, ipam } = Conf::decode(req)?;
        let mut pci = raw.pci_bus_id.clone();
        let mut aux = String::new();
        let id = &raw.runtime_config.device_id;
        if !id.is_empty() {
            if sys.is_pci_device(id) {
                pci.clone_from(id);
            } else if sys.is_aux_device(id) {
                pci.clear();
                aux.clone_from(id);
            } else {
                return Err(Error::internal(format!(
                    "runtime config DeviceID {id} not found or unsupported"
                )));
            }
        }
        let mut dpdk = raw.dpdk_mode;
        if !pci.is_empty() {
            dpdk = sys.has_userspace_driver(&pci)?;
        }
        let selector = if !raw.device.is_empty() {
            Selector::Device(raw.device)
        } else if !raw.hwaddr.is_empty() {
            Selector::HwAddr(raw.hwaddr)
        } else if !raw.kernelpath.is_empty() {
            Selector::KernelPath(raw.kernelpath)
        } else if !pci.is_empty() {
            Selector::Pci(pci)
        } else if !aux.is_empty() {
            Selector::Aux(aux)
        } else {
            return Err(Error::internal(
                r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#,
            ));
        };
        Ok(Conf {
            selector,
            dpdk,
            ipam,
            dns: req.net.dns.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use rcni_skel::Command;
    use rcni_types::args::CniArgs;
    use serde_json::{Value, json};

    use super::*;
    use crate::sysfs::tests::tree;

    /// A `command` request for `plugin` (the plugin's own keys) in a minimal config.
    pub(crate) fn request(command: Command, plugin: &Value) -> Request {
        let mut config = json!({"cniVersion": "1.0.0", "name": "net", "type": "host-device"});
        if let (Some(doc), Some(keys)) = (config.as_object_mut(), plugin.as_object()) {
            doc.extend(keys.clone());
        }
        let stdin = config.to_string().into_bytes();
        Request {
            command,
            container_id: "ctr".into(),
            netns: Some("/run/netns/ctr".into()),
            ifname: "net1".into(),
            args: CniArgs::read(""),
            raw_args: String::new(),
            path: Vec::new(),
            net: serde_json::from_slice(&stdin).expect("network config"),
            stdin,
            config,
        }
    }

    fn parse(plugin: &Value, sys: &Sysfs) -> Result<Conf> {
        Conf::parse(&request(Command::Add, plugin), sys)
    }

    #[test]
    fn selectors_in_the_references_order() {
        let sys = tree("conf-order");
        let all = json!({"device": "eth1", "hwaddr": "02:00:00:00:00:01",
                         "kernelpath": "/sys/devices/x", "pciBusID": "0000:00:04.0"});
        let c = parse(&all, &sys).expect("all");
        assert_eq!(c.selector, Selector::Device("eth1".into()));
        assert!(!c.dpdk);
        let mut rest = all.clone();
        rest["device"] = json!("");
        assert_eq!(
            parse(&rest, &sys).expect("hwaddr").selector,
            Selector::HwAddr("02:00:00:00:00:01".into())
        );
        rest["hwaddr"] = json!(null);
        assert_eq!(
            parse(&rest, &sys).expect("kernelpath").selector,
            Selector::KernelPath("/sys/devices/x".into())
        );
        let pci = json!({"pciBusID": "0000:00:04.0"});
        assert_eq!(
            parse(&pci, &sys).expect("pci").selector,
            Selector::Pci("0000:00:04.0".into())
        );
    }

    #[test]
    fn the_device_id_capability_replaces_pci_bus_id() {
        let sys = tree("conf-deviceid");
        let c = parse(
            &json!({"pciBusID": "0000:00:04.0",
                    "runtimeConfig": {"deviceID": "0000:00:03.0"}}),
            &sys,
        )
        .expect("pci deviceID");
        assert_eq!(c.selector, Selector::Pci("0000:00:03.0".into()));
        let c = parse(
            &json!({"pciBusID": "0000:00:04.0",
                    "runtimeConfig": {"deviceID": "mlx5_core.sf.2"}}),
            &sys,
        )
        .expect("aux deviceID");
        assert_eq!(c.selector, Selector::Aux("mlx5_core.sf.2".into()));
        let e = parse(
            &json!({"runtimeConfig": {"deviceID": "0000:09:00.0"}}),
            &sys,
        )
        .expect_err("unknown");
        assert_eq!(
            e.msg,
            "runtime config DeviceID 0000:09:00.0 not found or unsupported"
        );
        assert_eq!(e.code.number(), 999);
    }

    #[test]
    fn dpdk_devices_are_recognised() {
        let sys = tree("conf-dpdk");
        let c = parse(&json!({"pciBusID": "0000:00:05.0"}), &sys).expect("vfio");
        assert!(c.dpdk);
        let c = parse(&json!({"device": "eth1", "dpdkMode": true}), &sys).expect("key");
        assert!(
            c.dpdk,
            "DPDKMode is a key of the reference too (case-insensitive)"
        );
        let e = parse(&json!({"pciBusID": "0000:00:06.0"}), &sys).expect_err("unbound");
        assert!(e.msg.starts_with("error with host device: "), "{e}");
        let d = Conf::decode(&request(Command::Del, &json!({"pciBusID": "0000:00:05.0"})))
            .expect("decode");
        assert!(d.dpdk(&sys));
        let d = Conf::decode(&request(Command::Del, &json!({"pciBusID": "0000:00:06.0"})))
            .expect("decode");
        assert!(!d.dpdk(&sys), "an unresolvable device is looked for");
    }

    #[test]
    fn bad_input_names_the_key() {
        let sys = tree("conf-bad");
        let e = parse(&json!({}), &sys).expect_err("nothing");
        assert_eq!(
            e.msg,
            r#"specify either "device", "hwaddr", "kernelpath" or "pciBusID""#
        );
        let e = parse(&json!({"device": 5}), &sys).expect_err("type");
        assert!(
            e.msg.starts_with("failed to load netconf:") && e.msg.contains("device"),
            "{e}"
        );
        let e = parse(&json!({"runtimeConfig": {"deviceID": 1}}), &sys).expect_err("type");
        assert!(e.msg.contains("deviceID"), "{e}");
        // DEL only decodes.
        Conf::decode(&request(Command::Del, &json!({}))).expect("del");
    }
}
