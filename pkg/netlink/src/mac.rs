//! MAC addresses and host-side veth names.

use std::fmt::Write as _;

/// "aa:bb:cc:dd:ee:ff" (lowercase, as Go's `net.HardwareAddr` prints).
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    let mut out = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Parses six hex octets separated by `:` or `-` (either case); `None` otherwise.
#[must_use]
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut mac = [0u8; 6];
    let mut parts = s.split(sep);
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// "veth" + 8 lowercase hex digits from 4 random bytes, the reference's host veth names.
#[must_use]
pub fn random_veth_name() -> String {
    let bytes = random_bytes();
    let mut name = String::from("veth");
    for b in bytes {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// Four bytes from getrandom(2); a clock-and-counter mix if it fails, since a name that
/// collides is retried by the caller anyway.
fn random_bytes() -> [u8; 4] {
    let mut buf = [0u8; 4];
    // SAFETY: `buf` is a valid, writable 4-byte buffer for the duration of the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if usize::try_from(n).ok() == Some(buf.len()) {
        return buf;
    }
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    (nanos ^ std::process::id().rotate_left(16) ^ COUNTER.fetch_add(0x9e37_79b9, Ordering::Relaxed))
        .to_ne_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        let mac = [0x0a, 0x58, 0x0a, 0xf4, 0x00, 0xff];
        assert_eq!(format_mac(mac), "0a:58:0a:f4:00:ff");
        assert_eq!(parse_mac("0a:58:0a:f4:00:ff"), Some(mac));
        assert_eq!(parse_mac("0A-58-0A-F4-00-FF"), Some(mac));
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            "",
            "0a:58:0a:f4:00",
            "0a:58:0a:f4:00:ff:11",
            "0a:58:0a:f4:00:fg",
            "a:58:0a:f4:00:ff",
            "0a:58-0a:f4:00:ff",
            "0a5:8:0a:f4:00:ff",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }

    #[test]
    fn veth_names_are_veth_plus_8_hex() {
        let a = random_veth_name();
        let b = random_veth_name();
        for n in [&a, &b] {
            assert_eq!(n.len(), 12, "{n}");
            assert!(n.starts_with("veth"));
            assert!(
                n[4..]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
        assert_ne!(a, b);
    }
}
