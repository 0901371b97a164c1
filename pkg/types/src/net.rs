//! Addresses as the reference plugins read them: Go's `net.ParseIP`, `net.ParseCIDR` and
//! `net.IP` text decoding, which CNI's `types.IPNet` and `types.Route` build on.
//!
//! Where Go and `std::net` differ, Go is followed:
//! - an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is an IPv4 address (`To4()` succeeds
//!   and it prints dotted); a CIDR written that way keeps its 128-bit mask, of which Go
//!   prints the last 32 bits (`::ffff:10.1.2.3/120` is `10.1.2.3/24`);
//! - a CIDR keeps its host bits (CNI's `types.ParseCIDR`): `10.1.2.3/24` stays as written;
//! - the prefix length is plain decimal (no sign), and zones (`fe80::1%eth0`) are refused.
//!
//! Errors are Go's texts ("invalid CIDR address: <s>", "invalid IP address: <s>"), so
//! plugins that mirror Go's messages can return them unchanged.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address Go treats it as;
/// every other address unchanged.
#[must_use]
pub fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    }
}

/// Go's `net.IP` text decoding (what a JSON string in a `net.IP` field goes through): `""`
/// is no address; anything else must be an address, an IPv4-mapped one becoming IPv4.
///
/// # Errors
/// Go's text: "invalid IP address: <s>".
pub fn parse_ip(s: &str) -> Result<Option<IpAddr>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<IpAddr>()
        .map(|ip| Some(unmap(ip)))
        .map_err(|_| format!("invalid IP address: {s}"))
}

/// Go's `net.ParseCIDR` with the host bits kept (CNI's `types.ParseCIDR`): the address and
/// the prefix as Go prints them. [`IpNet::parse`] also keeps the width of the mask.
///
/// # Errors
/// Go's text: "invalid CIDR address: <s>".
pub fn parse_cidr(s: &str) -> Result<IpNetwork, String> {
    IpNet::parse(s).map(IpNet::to_network)
}

/// A CIDR as Go's `net.ParseCIDR` reads it and CNI's `types.IPNet` holds it: the address
/// with its host bits and the prefix as Go prints them, plus the prefix as written and the
/// width of the mask (32 or 128, by how the address is written). An IPv4-mapped address
/// written in IPv6 syntax is an IPv4 address with a 128-bit mask, which some checks reject
/// (host-local's "IPNet IP and Mask version mismatch").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    network: IpNetwork,
    prefix: u8,
    mask_bits: u8,
}

impl IpNet {
    /// Reads `addr/prefix`: a decimal prefix no longer than the address as written.
    ///
    /// # Errors
    /// Go's text: "invalid CIDR address: <s>".
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let bad = || format!("invalid CIDR address: {s}");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let mask_bits = if addr.is_ipv4() { 32 } else { 128 };
        // All digits: only an overlong number fails, and it is too long for any family.
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if prefix > mask_bits {
            return Err(bad());
        }
        let ip = unmap(addr);
        // Go prints the last 32 bits of a mapped address's 128-bit mask.
        let shown = if ip.is_ipv4() && mask_bits == 128 {
            prefix.saturating_sub(96)
        } else {
            prefix
        };
        let network = IpNetwork::new(ip, shown).map_err(|_| bad())?;
        Ok(IpNet {
            network,
            prefix,
            mask_bits,
        })
    }

    /// The address as written, host bits included (IPv4 for an IPv4-mapped one).
    #[must_use]
    pub fn ip(&self) -> IpAddr {
        self.network.ip()
    }

    /// The prefix length as written (for a mapped address, of the 128-bit mask).
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The width of the mask: 32 for an address written as IPv4, 128 for IPv6 syntax.
    #[must_use]
    pub fn mask_bits(&self) -> u8 {
        self.mask_bits
    }

    /// The address with the prefix Go prints, host bits kept (what [`parse_cidr`] returns).
    #[must_use]
    pub fn to_network(self) -> IpNetwork {
        self.network
    }
}

/// What Go's `IPNet.String()` prints for it (`10.1.2.3/24`, host bits kept).
impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.network.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_follows_go() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("host bits kept", "10.1.2.3/24", Some("10.1.2.3/24")),
            (
                "ipv6 compressed on print",
                "3ffe:ffff:0:01ff::1/64",
                Some("3ffe:ffff:0:1ff::1/64"),
            ),
            (
                "longest zero run compressed",
                "2001:db8:0:0:1:0:0:1/128",
                Some("2001:db8::1:0:0:1/128"),
            ),
            (
                "v4-mapped becomes ipv4",
                "::ffff:10.1.2.3/120",
                Some("10.1.2.3/24"),
            ),
            (
                "v4-mapped short prefix",
                "::ffff:10.1.2.3/64",
                Some("10.1.2.3/0"),
            ),
            ("no prefix", "10.1.2.3", None),
            ("prefix too long", "10.1.2.3/33", None),
            ("ipv6 prefix too long", "fd00::1/129", None),
            ("signed prefix", "10.1.2.3/+24", None),
            ("empty prefix", "10.1.2.3/", None),
            ("zone", "fe80::1%eth0/64", None),
            ("leading zero octet", "010.1.2.3/24", None),
            ("empty", "", None),
            ("two slashes", "10.1.2.3/24/8", None),
        ];
        for (name, input, want) in cases {
            let got = parse_cidr(input).map(|n| n.to_string());
            match want {
                Some(w) => assert_eq!(got.as_deref(), Ok(*w), "{name}"),
                None => {
                    let e = got.expect_err(name);
                    assert_eq!(e, format!("invalid CIDR address: {input}"), "{name}");
                }
            }
        }
        // (case, input, printed back or Err when Go rejects it)
        type GatewayCase = (&'static str, &'static str, Result<Option<&'static str>, ()>);
        let gateways: &[GatewayCase] = &[
            ("empty is none", "", Ok(None)),
            ("ipv4", "10.1.2.1", Ok(Some("10.1.2.1"))),
            ("v4-mapped", "::ffff:10.1.2.1", Ok(Some("10.1.2.1"))),
            ("ipv6", "fd00:0::1", Ok(Some("fd00::1"))),
            ("with prefix", "10.1.2.1/24", Err(())),
            ("garbage", "gw", Err(())),
        ];
        for (name, input, want) in gateways {
            let got = parse_ip(input)
                .map(|g| g.map(|g| g.to_string()))
                .map_err(|_| ());
            assert_eq!(got, want.map(|w| w.map(str::to_owned)), "{name}");
        }
    }

    #[test]
    fn ipnet_keeps_the_mask_width_as_written() {
        // (input, ip, prefix as written, mask bits, printed)
        let cases: &[(&str, &str, u8, u8, &str)] = &[
            ("10.1.2.3/24", "10.1.2.3", 24, 32, "10.1.2.3/24"),
            ("fd00::1/64", "fd00::1", 64, 128, "fd00::1/64"),
            ("::ffff:10.1.2.0/120", "10.1.2.0", 120, 128, "10.1.2.0/24"),
            ("::ffff:10.1.2.0/90", "10.1.2.0", 90, 128, "10.1.2.0/0"),
        ];
        for (input, ip, prefix, mask_bits, printed) in cases {
            let net = IpNet::parse(input).expect(input);
            assert_eq!(
                net.ip(),
                ip.parse::<IpAddr>().expect("test address"),
                "{input}"
            );
            assert_eq!(
                (net.prefix(), net.mask_bits()),
                (*prefix, *mask_bits),
                "{input}"
            );
            assert_eq!(net.to_string(), *printed, "{input}");
            assert_eq!(net.to_network().to_string(), *printed, "{input}");
        }
        assert_eq!(
            IpNet::parse("10.0.0.0/33"),
            Err("invalid CIDR address: 10.0.0.0/33".to_string())
        );
    }
}
