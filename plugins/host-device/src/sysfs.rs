//! Finding a network device from its place in sysfs, as the reference does: under a kernel
//! device path, a PCI address (`/sys/bus/pci/devices/<id>/net/`, or a virtio child's) or
//! an auxiliary-bus device (`/sys/bus/auxiliary/devices/<id>/net/`); and whether a PCI
//! device is bound to a userspace (DPDK) driver.
//!
//! Paths are resolved under a root (`/` on a real system) so tests can lay out a tree of
//! their own: this machine has no PCI network card to try them on.

use std::path::{Path, PathBuf};

use rcni_types::{Error, Result};

/// Where PCI devices are listed.
pub const SYS_BUS_PCI: &str = "/sys/bus/pci/devices";
/// Where auxiliary-bus devices (e.g. SF ports of mlx5 cards) are listed.
pub const SYS_BUS_AUXILIARY: &str = "/sys/bus/auxiliary/devices";
/// Drivers that take a PCI NIC away from the kernel's network stack (DPDK): such a device
/// has no network interface to move, and is left where it is.
pub const USERSPACE_DRIVERS: &[&str] = &["vfio-pci", "uio_pci_generic", "igb_uio"];

/// The sysfs tree devices are looked up in.
#[derive(Debug, Clone)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    /// The running system's sysfs.
    #[must_use]
    pub fn system() -> Sysfs {
        Sysfs::at("/")
    }

    /// A tree rooted at `root` (`<root>/sys/...`), for tests.
    #[must_use]
    pub fn at(root: impl Into<PathBuf>) -> Sysfs {
        Sysfs { root: root.into() }
    }

    /// `path` (absolute, as the kernel shows it) under this tree's root.
    fn real(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// A device name taken from the config, as one path component under `bus`; `None`
    /// for what is not one ("..", "a/b"), which no bus lists.
    fn device_dir(bus: &str, id: &str) -> Option<PathBuf> {
        let plain = !id.is_empty() && id != "." && id != ".." && !id.contains('/');
        plain.then(|| Path::new(bus).join(id))
    }

    /// True when the PCI bus lists device `id`.
    #[must_use]
    pub fn is_pci_device(&self, id: &str) -> bool {
        Sysfs::device_dir(SYS_BUS_PCI, id).is_some_and(|d| self.real(&d).exists())
    }

    /// True when the auxiliary bus lists device `id`.
    #[must_use]
    pub fn is_aux_device(&self, id: &str) -> bool {
        Sysfs::device_dir(SYS_BUS_AUXILIARY, id).is_some_and(|d| self.real(&d).exists())
    }

    /// Whether PCI device `id` is bound to a userspace driver (Go `hasDpdkDriver`).
    ///
    /// # Errors
    /// The device or its `driver` link does not exist (an unbound device), with the path.
    pub fn has_userspace_driver(&self, id: &str) -> Result<bool> {
        let link = Sysfs::device_dir(SYS_BUS_PCI, id)
            .unwrap_or_else(|| Path::new(SYS_BUS_PCI).join(id))
            .join("driver");
        let driver = std::fs::canonicalize(self.real(&link)).map_err(|e| {
            Error::internal(format!("error with host device: {}: {e}", link.display()))
        })?;
        let name = driver.file_name().and_then(|n| n.to_str()).unwrap_or("");
        Ok(USERSPACE_DRIVERS.contains(&name))
    }

    /// The network device under a kernel device path (`<kernelpath>/net/`), which must be
    /// absolute and under `/sys/devices/`.
    ///
    /// # Errors
    /// A path outside `/sys/devices/`; no `net` directory or an empty one.
    pub fn kernelpath_netdev(&self, kernelpath: &str) -> Result<String> {
        let path = Path::new(kernelpath);
        if !path.is_absolute() || !kernelpath.starts_with("/sys/devices/") {
            return Err(Error::internal(format!(
                "kernel device path {kernelpath:?} must be absolute and begin with /sys/devices/"
            )));
        }
        self.first_netdev(&path.join("net"))
    }

    /// The network device of PCI device `id`: under its `net/`, or under the `net/` of a
    /// virtio child (`<id>/virtio*/net/`).
    ///
    /// # Errors
    /// No `net` directory in either place, or an empty one.
    pub fn pci_netdev(&self, id: &str) -> Result<String> {
        let no_net = || Error::internal(format!("no net directory under pci device {id}"));
        let dir = Sysfs::device_dir(SYS_BUS_PCI, id).ok_or_else(no_net)?;
        let net = dir.join("net");
        if std::fs::symlink_metadata(self.real(&net)).is_ok() {
            return self.first_netdev(&net);
        }
        // virtio-net: the PCI device carries a virtioN child holding the interface.
        let mut virtio: Vec<PathBuf> = std::fs::read_dir(self.real(&dir))
            .map_err(|_| no_net())?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("virtio"))
            .map(|n| dir.join(n).join("net"))
            .filter(|net| std::fs::symlink_metadata(self.real(net)).is_ok())
            .collect();
        virtio.sort();
        let first = virtio.into_iter().next().ok_or_else(no_net)?;
        self.first_netdev(&first)
    }

    /// The network device of auxiliary-bus device `id` (under its `net/`).
    ///
    /// # Errors
    /// No such device, no `net` directory, or an empty one.
    pub fn aux_netdev(&self, id: &str) -> Result<String> {
        let dir = Sysfs::device_dir(SYS_BUS_AUXILIARY, id)
            .unwrap_or_else(|| Path::new(SYS_BUS_AUXILIARY).join(id));
        self.first_netdev(&dir.join("net"))
    }

    /// The first entry of `dir` by name (Go's `os.ReadDir` sorts), the device's interface.
    fn first_netdev(&self, dir: &Path) -> Result<String> {
        let entries = std::fs::read_dir(self.real(dir)).map_err(|e| {
            Error::internal(format!(
                "failed to read directory {}: \"open {}: {e}\"",
                dir.display(),
                dir.display()
            ))
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.into_iter().next().ok_or_else(|| {
            Error::internal(format!(
                "failed to find network device in path {}",
                dir.display()
            ))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A sysfs tree under the workspace's `target/`, unique to `name` and this process:
    /// - PCI `0000:00:03.0` with interface `ens3` (bound to `virtio-pci`, net under a virtio
    ///   child), `0000:00:04.0` with `ens4` and `ens4d1` (driver `ixgbe`), `0000:00:05.0`
    ///   bound to `vfio-pci` (no interface), `0000:00:06.0` unbound, with an empty `net/`;
    /// - auxiliary `mlx5_core.sf.2` with `enp1s0f0s1`;
    /// - the kernel path `/sys/devices/pci0000:00/0000:00:04.0` (= the PCI device).
    pub(crate) fn tree(name: &str) -> Sysfs {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/tmp")
            .join(format!(
                "rcni-host-device-sysfs-{name}-{}",
                std::process::id()
            ));
        let _ = std::fs::remove_dir_all(&root);
        let mk = |p: &str| std::fs::create_dir_all(root.join(p)).expect("fixture dir");
        let link = |target: &str, at: &str| {
            std::os::unix::fs::symlink(target, root.join(at)).expect("fixture link");
        };
        for driver in ["virtio-pci", "ixgbe", "vfio-pci"] {
            mk(&format!("sys/bus/pci/drivers/{driver}"));
        }
        mk("sys/devices/pci0000:00/0000:00:03.0/virtio0/net/ens3");
        mk("sys/devices/pci0000:00/0000:00:04.0/net/ens4d1");
        mk("sys/devices/pci0000:00/0000:00:04.0/net/ens4");
        mk("sys/devices/pci0000:00/0000:00:05.0");
        mk("sys/devices/pci0000:00/0000:00:06.0/net");
        mk("sys/devices/pci0000:00/0000:00:07.0/mlx5_core.sf.2/net/enp1s0f0s1");
        mk("sys/bus/pci/devices");
        mk("sys/bus/auxiliary/devices");
        for (dev, driver) in [
            ("0000:00:03.0", Some("virtio-pci")),
            ("0000:00:04.0", Some("ixgbe")),
            ("0000:00:05.0", Some("vfio-pci")),
            ("0000:00:06.0", None),
        ] {
            link(
                &format!("../../../devices/pci0000:00/{dev}"),
                &format!("sys/bus/pci/devices/{dev}"),
            );
            if let Some(driver) = driver {
                link(
                    &format!("../../../bus/pci/drivers/{driver}"),
                    &format!("sys/devices/pci0000:00/{dev}/driver"),
                );
            }
        }
        link(
            "../../../devices/pci0000:00/0000:00:07.0/mlx5_core.sf.2",
            "sys/bus/auxiliary/devices/mlx5_core.sf.2",
        );
        Sysfs::at(root)
    }

    #[test]
    fn devices_are_found_where_the_reference_looks() {
        let sys = tree("find");
        assert_eq!(
            sys.pci_netdev("0000:00:04.0").expect("pci"),
            "ens4",
            "first by name"
        );
        assert_eq!(sys.pci_netdev("0000:00:03.0").expect("virtio"), "ens3");
        assert_eq!(
            sys.kernelpath_netdev("/sys/devices/pci0000:00/0000:00:04.0")
                .expect("kernelpath"),
            "ens4"
        );
        assert_eq!(sys.aux_netdev("mlx5_core.sf.2").expect("aux"), "enp1s0f0s1");
        assert!(sys.is_pci_device("0000:00:05.0"));
        assert!(!sys.is_pci_device("mlx5_core.sf.2"));
        assert!(sys.is_aux_device("mlx5_core.sf.2"));
        assert!(!sys.is_pci_device(".."), "not a device name");
    }

    #[test]
    fn what_is_not_there_is_named() {
        let sys = tree("missing");
        let e = sys.pci_netdev("0000:00:05.0").expect_err("no net dir");
        assert_eq!(e.msg, "no net directory under pci device 0000:00:05.0");
        let e = sys.pci_netdev("0000:00:06.0").expect_err("empty");
        assert_eq!(
            e.msg,
            "failed to find network device in path /sys/bus/pci/devices/0000:00:06.0/net"
        );
        let e = sys.pci_netdev("../../../etc").expect_err("not a name");
        assert_eq!(e.msg, "no net directory under pci device ../../../etc");
        for bad in ["sys/devices/x", "/proc/self", "/sys/class/net/eth0"] {
            let e = sys.kernelpath_netdev(bad).expect_err(bad);
            assert!(
                e.msg
                    .contains("must be absolute and begin with /sys/devices/"),
                "{e}"
            );
        }
        let e = sys
            .kernelpath_netdev("/sys/devices/nope")
            .expect_err("no dir");
        assert!(
            e.msg
                .starts_with("failed to read directory /sys/devices/nope/net: "),
            "{e}"
        );
    }

    #[test]
    fn userspace_drivers_are_dpdk() {
        let sys = tree("dpdk");
        assert!(sys.has_userspace_driver("0000:00:05.0").expect("vfio"));
        assert!(!sys.has_userspace_driver("0000:00:04.0").expect("ixgbe"));
        let e = sys
            .has_userspace_driver("0000:00:06.0")
            .expect_err("unbound");
        assert!(
            e.msg
                .starts_with("error with host device: /sys/bus/pci/devices/0000:00:06.0/driver"),
            "{e}"
        );
    }
}
