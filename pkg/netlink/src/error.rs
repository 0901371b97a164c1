//! The facade's error: what was being done, to which interface, and the kernel's errno.

use std::fmt;
use std::io;

/// A failed netlink operation. Display reads "creating veth veth1234 (peer eth0): File
/// exists (os error 17)": the operation and interface, then the OS error (and the kernel's
/// extended-ack text, when it sent one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    op: String,
    errno: Option<i32>,
    msg: String,
    /// The kernel's extended-ack text, when it sent one (already part of `msg`).
    ack: Option<String>,
}

/// The facade's result.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error with an explicit message; `op` may be empty when `msg` says it all.
    #[must_use]
    pub fn new(op: impl Into<String>, errno: Option<i32>, msg: impl Into<String>) -> Error {
        Error {
            op: op.into(),
            errno,
            msg: msg.into(),
            ack: None,
        }
    }

    /// The kernel refused `op` with `errno` (positive, e.g. `libc::EEXIST`).
    #[must_use]
    pub fn from_errno(op: impl Into<String>, errno: i32) -> Error {
        Error::with_ack(op, errno, None)
    }

    /// As [`Error::from_errno`], with the kernel's extended-ack message if any.
    #[must_use]
    pub fn with_ack(op: impl Into<String>, errno: i32, ack: Option<&str>) -> Error {
        let os = io::Error::from_raw_os_error(errno).to_string();
        let msg = match ack {
            Some(text) if !text.is_empty() => format!("{os}: {text}"),
            _ => os,
        };
        Error {
            op: op.into(),
            errno: Some(errno),
            msg,
            ack: ack.filter(|text| !text.is_empty()).map(str::to_string),
        }
    }

    /// An I/O failure of the socket itself (or of entering a namespace) during `op`.
    #[must_use]
    pub fn from_io(op: impl Into<String>, e: &io::Error) -> Error {
        Error {
            op: op.into(),
            errno: e.raw_os_error(),
            msg: e.to_string(),
            ack: None,
        }
    }

    /// Go's netlink wording for a missing link (`LinkNotFoundError`), which callers wrap as
    /// `failed to lookup "eth0": Link not found`.
    #[must_use]
    pub fn link_not_found() -> Error {
        Error {
            op: String::new(),
            errno: Some(libc::ENODEV),
            msg: "Link not found".into(),
            ack: None,
        }
    }

    /// The same error, described as part of `op` (keeps the errno).
    #[must_use]
    pub fn context(mut self, op: impl Into<String>) -> Error {
        let op = op.into();
        self.op = if self.op.is_empty() {
            op
        } else {
            format!("{op}: {}", self.op)
        };
        self
    }

    /// The errno the kernel answered with, if the failure came from the kernel.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }

    /// What was being done (may be empty).
    #[must_use]
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The failure itself: the OS error text, the kernel's message, or our own.
    #[must_use]
    pub fn msg(&self) -> &str {
        &self.msg
    }

    /// The kernel's extended-ack message (`NLMSGERR_ATTR_MSG`), if it sent one.
    #[must_use]
    pub fn ack(&self) -> Option<&str> {
        self.ack.as_deref()
    }

    /// The kernel has no such link type: its module is neither built in nor loadable.
    /// rtnl_newlink answers `EOPNOTSUPP` with the ack "Unknown device type"; the errno
    /// alone is not enough, as a known kind refuses an unfit parent with `EOPNOTSUPP`
    /// too (ipvlan on `lo`, a VLAN on a VLAN-challenged device).
    #[must_use]
    pub fn is_unknown_link_kind(&self) -> bool {
        self.errno == Some(libc::EOPNOTSUPP) && self.ack.as_deref() == Some("Unknown device type")
    }

    /// `EEXIST`: the link, address or route is already there.
    #[must_use]
    pub fn is_exists(&self) -> bool {
        self.errno == Some(libc::EEXIST)
    }

    /// The object is already gone: `ENODEV`, `ENOENT`, `ESRCH` (route), `EADDRNOTAVAIL`
    /// (address), `ENXIO`. DEL treats these as success.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno,
            Some(libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENXIO)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.op.is_empty() {
            f.write_str(&self.msg)
        } else {
            write!(f, "{}: {}", self.op, self.msg)
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e.errno {
            Some(errno) => {
                io::Error::new(io::Error::from_raw_os_error(errno).kind(), e.to_string())
            }
            None => io::Error::other(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_operation_then_the_os_error() {
        let e = Error::from_errno("creating veth veth1234 (peer eth0)", libc::EEXIST);
        assert_eq!(
            e.to_string(),
            "creating veth veth1234 (peer eth0): File exists (os error 17)"
        );
        assert!(e.is_exists());
        assert!(!e.is_not_found());
        assert_eq!(e.errno(), Some(libc::EEXIST));
    }

    #[test]
    fn extended_ack_follows_the_os_error() {
        let e = Error::with_ack(
            "creating dummy d0",
            libc::EOPNOTSUPP,
            Some("Unknown device type"),
        );
        // The errno text is the C library's (glibc and musl word some differently).
        let os = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
        assert_eq!(
            e.to_string(),
            format!("creating dummy d0: {os}: Unknown device type")
        );
        assert_eq!(e.ack(), Some("Unknown device type"));
        assert!(e.is_unknown_link_kind());
        let e = e.context("in netns /run/netns/x");
        assert!(e.is_unknown_link_kind(), "context keeps the ack");
    }

    #[test]
    fn unsupported_without_the_unknown_kind_ack_is_something_else() {
        let e = Error::with_ack("creating ipvlan i0", libc::EOPNOTSUPP, None);
        assert!(!e.is_unknown_link_kind());
        assert_eq!(e.ack(), None);
        let e = Error::with_ack(
            "creating vlan v0",
            libc::EOPNOTSUPP,
            Some("VLANs not supported on device"),
        );
        assert!(!e.is_unknown_link_kind());
    }

    #[test]
    fn link_not_found_keeps_go_wording() {
        let e = Error::link_not_found();
        assert_eq!(e.to_string(), "Link not found");
        assert!(e.is_not_found());
        let e = e.context("looking up eth0");
        assert_eq!(e.to_string(), "looking up eth0: Link not found");
        assert!(e.is_not_found());
    }

    #[test]
    fn already_gone_classes() {
        for errno in [
            libc::ENODEV,
            libc::ENOENT,
            libc::ESRCH,
            libc::EADDRNOTAVAIL,
            libc::ENXIO,
        ] {
            assert!(Error::from_errno("x", errno).is_not_found(), "{errno}");
        }
        for errno in [libc::EEXIST, libc::EINVAL, libc::EPERM, libc::EBUSY] {
            assert!(!Error::from_errno("x", errno).is_not_found(), "{errno}");
        }
        assert!(!Error::new("x", None, "decoding").is_not_found());
    }

    #[test]
    fn converts_to_io_error_with_kind() {
        let e: io::Error = Error::from_errno("deleting link 7", libc::ENOENT).into();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
