//! The multi-call `cni` binary: every plugin linked once, chosen by the name it was
//! started under (a symlink `bridge -> cni`), or by `cni <plugin>` for direct calls.

use rcni_skel::Plugin;

/// Builds one plugin value.
type Make = fn() -> Box<dyn Plugin>;

/// Every plugin in the bundle, by its reference binary name.
pub const PLUGINS: &[(&str, Make)] = &[
    ("bandwidth", || Box::new(rcni_bandwidth::Bandwidth)),
    ("bridge", || Box::new(rcni_bridge::Bridge)),
    ("dhcp", || Box::new(rcni_dhcp::Dhcp)),
    ("dummy", || Box::new(rcni_dummy::Dummy)),
    ("firewall", || Box::new(rcni_firewall_plugin::Firewall)),
    ("host-device", || Box::new(rcni_host_device::HostDevice)),
    ("host-local", || Box::new(rcni_host_local::HostLocal)),
    ("ipmasq", || Box::new(rcni_ipmasq::IpMasq)),
    ("ipvlan", || Box::new(rcni_ipvlan::Ipvlan)),
    ("loopback", || Box::new(rcni_loopback::Loopback)),
    ("macvlan", || Box::new(rcni_macvlan::Macvlan)),
    ("portmap", || Box::new(rcni_portmap::Portmap)),
    ("ptp", || Box::new(rcni_ptp::Ptp)),
    ("sbr", || Box::new(rcni_sbr::Sbr)),
    ("static", || Box::new(rcni_static::Static)),
    ("tap", || Box::new(rcni_tap::Tap)),
    ("tuning", || Box::new(rcni_tuning::Tuning::default())),
    ("vlan", || Box::new(rcni_vlan::Vlan)),
    ("vrf", || Box::new(rcni_vrf::Vrf)),
];

/// The plugin called `name`.
#[must_use]
pub fn find(name: &str) -> Option<Box<dyn Plugin>> {
    PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, make)| make())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plugin_answers_to_its_reference_name() {
        for (name, make) in PLUGINS {
            assert_eq!(make().name(), *name);
            assert_eq!(find(name).map(|p| p.name()), Some(*name));
        }
        assert!(find("cni").is_none());
    }
}
