//! Persistent tap devices, made through `/dev/net/tun` (`TUNSETIFF`) as `ip tuntap add`
//! does: netlink can read a tun/tap link but not create one.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};

/// A tap device for [`create_tap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSpec {
    /// Name (at most 15 bytes).
    pub name: String,
    /// One queue per opener (`IFF_MULTI_QUEUE`), for a VM with several vCPUs.
    pub multi_queue: bool,
    /// Frames carry a `virtio_net_hdr` (`IFF_VNET_HDR`).
    pub vnet_hdr: bool,
    /// The user allowed to attach to it (`TUNSETOWNER`); `None`: no owner.
    pub owner: Option<u32>,
    /// The group allowed to attach to it (`TUNSETGROUP`); `None`: no group.
    pub group: Option<u32>,
}

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (a `short`) at the start
/// of the 24-byte union.
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// Creates the tap device `spec.name` in the calling thread's network namespace (a tun
/// device belongs to the namespace `/dev/net/tun` was opened in), persistent so that it
/// outlives this call, down, without carrier until someone attaches to it.
///
/// The device is made exclusively (`IFF_TUN_EXCL`): an existing device of that name is
/// `EBUSY`, not joined. Flags: `IFF_TAP | IFF_NO_PI`, plus `IFF_VNET_HDR` and
/// `IFF_MULTI_QUEUE` when asked.
///
/// # Errors
/// `/dev/net/tun` cannot be opened (`ENOENT` without the tun module, `EPERM` without
/// CAP_NET_ADMIN); a name that is too long (`EINVAL`); a refused ioctl.
pub fn create_tap(spec: &TapSpec) -> Result<()> {
    let what = || format!("creating tap {}", spec.name);
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _rest: [0; 22],
    };
    let name = spec.name.as_bytes();
    // One byte stays for the terminating NUL.
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(&0) {
        return Err(Error::from_errno(what(), libc::EINVAL));
    }
    req.name[..name.len()].copy_from_slice(name);
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
    if spec.vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if spec.multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    // The flags are all below 0x8000 but IFF_TUN_EXCL, which is the sign bit of a short:
    // the kernel reads the same 16 bits either way.
    req.flags = i16::from_ne_bytes(u16::try_from(flags).unwrap_or_default().to_ne_bytes());

    let tun = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| Error::from_io(format!("{}: opening /dev/net/tun", what()), &e))?;
    let fd = tun.as_raw_fd();
    // SAFETY: TUNSETIFF reads (and writes back the name into) a `struct ifreq`; `req` has
    // its layout and size (40 bytes) and lives across the call; `fd` is open (owned by
    // `tun`).
    check(
        unsafe { libc::ioctl(fd, libc::TUNSETIFF, &raw mut req) },
        what,
    )?;
    // From here on the device exists while `tun` is open, and goes away with it unless
    // it is made persistent last: a failure below leaves nothing behind.
    if let Some(uid) = spec.owner {
        // SAFETY: TUNSETOWNER takes the uid by value; `fd` is open.
        check(
            unsafe { libc::ioctl(fd, libc::TUNSETOWNER, libc::c_ulong::from(uid)) },
            || format!("{}: setting owner {uid}", what()),
        )?;
    }
    if let Some(gid) = spec.group {
        // SAFETY: TUNSETGROUP takes the gid by value; `fd` is open.
        check(
            unsafe { libc::ioctl(fd, libc::TUNSETGROUP, libc::c_ulong::from(gid)) },
            || format!("{}: setting group {gid}", what()),
        )?;
    }
    // SAFETY: TUNSETPERSIST takes a flag by value; `fd` is open.
    check(
        unsafe { libc::ioctl(fd, libc::TUNSETPERSIST, libc::c_ulong::from(1u8)) },
        || format!("{}: making it persistent", what()),
    )
}

fn check(ret: libc::c_int, what: impl FnOnce() -> String) -> Result<()> {
    if ret < 0 {
        let e = std::io::Error::last_os_error();
        Err(Error::from_io(what(), &e))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernels_size() {
        assert_eq!(std::mem::size_of::<IfReqFlags>(), 40);
    }

    #[test]
    fn bad_names_are_refused_before_the_kernel() {
        for name in ["", "abcdefghijklmnop", "a\0b"] {
            let spec = TapSpec {
                name: name.into(),
                multi_queue: false,
                vnet_hdr: false,
                owner: None,
                group: None,
            };
            let e = create_tap(&spec).expect_err(name);
            assert_eq!(e.errno(), Some(libc::EINVAL), "{name:?}");
        }
    }
}
