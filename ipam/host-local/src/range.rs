//! Address ranges and range sets: defaults, validation and membership exactly as the Go
//! host-local's `range.go` and `range_set.go` (reference §2.4).
//!
//! A range is a subnet with an inclusive `rangeStart`..`rangeEnd` and a gateway; a range
//! set is a pool of ranges of one family from which one address is handed out per ADD.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;
use rcni_types::net::{self, IpNet, unmap};

/// An address or nothing, as the store's files and a requested `IP` are read: Go's
/// `net.ParseIP` ([`rcni_types::net::parse_ip`]; empty text is no address either).
#[must_use]
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    net::parse_ip(s).ok().flatten()
}

/// A range's `subnet` as Go's `types.IPNet` holds it: host bits kept, and the mask width,
/// which stays 128 for an IPv4-mapped IPv6 address written in IPv6 syntax (Go then rejects
/// the "version mismatch").
pub type SubnetSpec = IpNet;

/// One canonical range: every field set and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// The network address with its prefix.
    pub subnet: IpNetwork,
    /// First address handed out, inclusive.
    pub range_start: IpAddr,
    /// Last address handed out, inclusive.
    pub range_end: IpAddr,
    /// Never handed out; reported in the result.
    pub gateway: IpAddr,
}

/// A range as configured: any field may be missing until [`RangeSpec::canonicalize`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeSpec {
    pub subnet: Option<SubnetSpec>,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

impl RangeSpec {
    /// Go's `Range.Canonicalize`: checks the subnet and fills the defaults (gateway and
    /// rangeStart network+1, rangeEnd the broadcast-1 for IPv4 or the last address for
    /// IPv6). The gateway is not checked against the subnet, as in Go.
    ///
    /// # Errors
    /// Go's messages: "Network X too small to allocate from", "IPNet IP and Mask version
    /// mismatch", "Network has host bits set...", "RangeStart X not in network Y", ...
    pub fn canonicalize(&self) -> Result<Range, String> {
        let Some(spec) = self.subnet else {
            return Err("IP <nil> not v4 nor v6".to_string());
        };
        // No address left once the network (and, for IPv4, broadcast) address are out.
        if spec.prefix() > spec.mask_bits() - 2 {
            return Err(format!("Network {spec} too small to allocate from"));
        }
        if spec.ip().is_ipv4() != (spec.mask_bits() == 32) {
            return Err("IPNet IP and Mask version mismatch".to_string());
        }
        let subnet = IpNetwork::new(spec.ip(), spec.prefix()).map_err(|e| e.to_string())?;
        let network = subnet.network();
        if spec.ip() != network {
            return Err(format!(
                "Network has host bits set. For a subnet mask of length {} the network address is {network}",
                spec.prefix()
            ));
        }
        let subnet = IpNetwork::new(network, spec.prefix()).map_err(|e| e.to_string())?;
        let subnet_text = spec.to_string();
        let gateway = self.gateway.unwrap_or_else(|| next_ip(network));

        // Go checks each bound with `Contains` while the other may still be unset, so a
        // configured rangeStart after a configured rangeEnd fails on the start.
        let range_start = match self.range_start {
            Some(start) => {
                if !contains(subnet, Some(start), self.range_end, start) {
                    return Err(format!("RangeStart {start} not in network {subnet_text}"));
                }
                start
            }
            None => next_ip(network),
        };
        let range_end = match self.range_end {
            Some(end) => {
                if !contains(subnet, Some(range_start), Some(end), end) {
                    return Err(format!("RangeEnd {end} not in network {subnet_text}"));
                }
                end
            }
            None => last_ip(subnet),
        };
        Ok(Range {
            subnet,
            range_start,
            range_end,
            gateway,
        })
    }
}

/// Go's `Range.Contains` with bounds that may be unset (as during canonicalisation).
fn contains(subnet: IpNetwork, start: Option<IpAddr>, end: Option<IpAddr>, addr: IpAddr) -> bool {
    let addr = unmap(addr);
    if addr.is_ipv4() != subnet.is_ipv4() || !subnet.contains(addr) {
        return false;
    }
    // Bounds of the other family never compare (Go's `ip.Cmp` gives -2).
    let before_start = start.is_some_and(|s| s.is_ipv4() == addr.is_ipv4() && addr < s);
    let after_end = end.is_some_and(|e| e.is_ipv4() == addr.is_ipv4() && addr > e);
    !before_start && !after_end
}

impl Range {
    /// True when `addr` is in the subnet and between rangeStart and rangeEnd.
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        contains(
            self.subnet,
            Some(self.range_start),
            Some(self.range_end),
            addr,
        )
    }

    /// Go's `Range.Overlaps`: same family, and either contains a bound of the other.
    #[must_use]
    pub fn overlaps(&self, other: &Range) -> bool {
        self.range_start.is_ipv4() == other.range_start.is_ipv4()
            && (self.contains(other.range_start)
                || self.contains(other.range_end)
                || other.contains(self.range_start)
                || other.contains(self.range_end))
    }

    /// How many addresses the range hands out (its span, less the gateway if inside).
    #[must_use]
    pub fn capacity(&self) -> u128 {
        let span = ip_to_u128(self.range_end)
            .saturating_sub(ip_to_u128(self.range_start))
            .saturating_add(1);
        if self.contains(self.gateway) {
            span.saturating_sub(1)
        } else {
            span
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.range_start, self.range_end)
    }
}

/// A canonical range set: at least one range, one family, no overlaps inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet(Vec<Range>);

impl RangeSet {
    /// Go's `RangeSet.Canonicalize`: every range canonical, one family, no overlap.
    ///
    /// # Errors
    /// "empty range set", a range's own error, "mixed address families", "subnets A and B
    /// overlap".
    pub fn canonicalize(specs: &[RangeSpec]) -> Result<RangeSet, String> {
        let mut ranges: Vec<Range> = Vec::with_capacity(specs.len());
        for spec in specs {
            let range = spec.canonicalize()?;
            if let Some(first) = ranges.first()
                && first.range_start.is_ipv4() != range.range_start.is_ipv4()
            {
                return Err("mixed address families".to_string());
            }
            ranges.push(range);
        }
        if ranges.is_empty() {
            return Err("empty range set".to_string());
        }
        for (i, r1) in ranges.iter().enumerate() {
            for r2 in &ranges[i + 1..] {
                if r1.overlaps(r2) {
                    return Err(format!("subnets {r1} and {r2} overlap"));
                }
            }
        }
        Ok(RangeSet(ranges))
    }

    #[must_use]
    pub fn ranges(&self) -> &[Range] {
        &self.0
    }

    /// True for an IPv4 set (canonical sets hold one family).
    #[must_use]
    pub fn is_ipv4(&self) -> bool {
        self.0.first().is_some_and(|r| r.range_start.is_ipv4())
    }

    /// The first range that contains `addr`.
    #[must_use]
    pub fn range_for(&self, addr: IpAddr) -> Option<&Range> {
        self.0.iter().find(|r| r.contains(addr))
    }

    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.range_for(addr).is_some()
    }

    /// True when any range of one set overlaps any range of the other.
    #[must_use]
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.0
            .iter()
            .any(|r| other.0.iter().any(|r1| r.overlaps(r1)))
    }

    /// How many addresses the set can hand out in all.
    #[must_use]
    pub fn capacity(&self) -> u128 {
        self.0
            .iter()
            .fold(0u128, |n, r| n.saturating_add(r.capacity()))
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The next address (Go's `ip.NextIP`); the last address wraps, which a canonical range
/// never asks for.
#[must_use]
pub fn next_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(1))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6).wrapping_add(1))),
    }
}

/// The last address of `subnet`, less one for IPv4 (the broadcast address).
fn last_ip(subnet: IpNetwork) -> IpAddr {
    match subnet.broadcast() {
        IpAddr::V4(b) => IpAddr::V4(Ipv4Addr::from(u32::from(b).wrapping_sub(1))),
        v6 @ IpAddr::V6(_) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn spec(subnet: &str, start: &str, end: &str, gw: &str) -> RangeSpec {
        let opt = |s: &str| (!s.is_empty()).then(|| ip(s));
        RangeSpec {
            subnet: Some(SubnetSpec::parse(subnet).expect("test subnet")),
            range_start: opt(start),
            range_end: opt(end),
            gateway: opt(gw),
        }
    }

    #[test]
    fn canonicalize_fills_defaults_and_rejects_like_go() {
        struct Case {
            name: &'static str,
            spec: RangeSpec,
            want: Result<(&'static str, &'static str, &'static str), &'static str>,
        }
        let cases = [
            Case {
                name: "v4 defaults",
                spec: spec("10.1.2.0/24", "", "", ""),
                want: Ok(("10.1.2.1", "10.1.2.254", "10.1.2.1")),
            },
            Case {
                name: "v6 defaults end at the last address",
                spec: spec("2001:db8:1::/64", "", "", ""),
                want: Ok((
                    "2001:db8:1::1",
                    "2001:db8:1::ffff:ffff:ffff:ffff",
                    "2001:db8:1::1",
                )),
            },
            Case {
                name: "explicit bounds and gateway",
                spec: spec("10.1.2.0/24", "10.1.2.10", "10.1.2.20", "10.1.2.254"),
                want: Ok(("10.1.2.10", "10.1.2.20", "10.1.2.254")),
            },
            Case {
                name: "gateway outside the subnet is accepted",
                spec: spec("10.1.2.0/24", "", "", "192.168.0.1"),
                want: Ok(("10.1.2.1", "10.1.2.254", "192.168.0.1")),
            },
            Case {
                name: "/30 is the smallest v4",
                spec: spec("10.1.2.0/30", "", "", ""),
                want: Ok(("10.1.2.1", "10.1.2.2", "10.1.2.1")),
            },
            Case {
                name: "/31 too small",
                spec: spec("10.1.2.0/31", "", "", ""),
                want: Err("Network 10.1.2.0/31 too small to allocate from"),
            },
            Case {
                name: "/127 too small, printed with host bits",
                spec: spec("2001:db8::1/127", "", "", ""),
                want: Err("Network 2001:db8::1/127 too small to allocate from"),
            },
            Case {
                name: "host bits",
                spec: spec("10.1.2.3/24", "", "", ""),
                want: Err(
                    "Network has host bits set. For a subnet mask of length 24 the network address is 10.1.2.0",
                ),
            },
            Case {
                name: "mapped v4 in v6 syntax",
                spec: spec("::ffff:10.1.2.0/120", "", "", ""),
                want: Err("IPNet IP and Mask version mismatch"),
            },
            Case {
                name: "start outside",
                spec: spec("10.1.2.0/24", "10.1.3.1", "", ""),
                want: Err("RangeStart 10.1.3.1 not in network 10.1.2.0/24"),
            },
            Case {
                name: "end outside",
                spec: spec("10.1.2.0/24", "", "10.1.3.1", ""),
                want: Err("RangeEnd 10.1.3.1 not in network 10.1.2.0/24"),
            },
            Case {
                name: "start after end fails on the start",
                spec: spec("10.1.2.0/24", "10.1.2.50", "10.1.2.40", ""),
                want: Err("RangeStart 10.1.2.50 not in network 10.1.2.0/24"),
            },
            Case {
                name: "start of the other family",
                spec: spec("10.1.2.0/24", "2001:db8::1", "", ""),
                want: Err("RangeStart 2001:db8::1 not in network 10.1.2.0/24"),
            },
            Case {
                name: "missing subnet",
                spec: RangeSpec::default(),
                want: Err("IP <nil> not v4 nor v6"),
            },
        ];
        for case in cases {
            let got = case.spec.canonicalize();
            match (got, case.want) {
                (Ok(r), Ok((start, end, gw))) => {
                    assert_eq!(
                        (r.range_start, r.range_end, r.gateway),
                        (ip(start), ip(end), ip(gw)),
                        "{}",
                        case.name
                    );
                }
                (Err(e), Err(want)) => assert_eq!(e, want, "{}", case.name),
                (got, want) => panic!("{}: got {got:?}, want {want:?}", case.name),
            }
        }
    }

    #[test]
    fn range_sets_are_one_family_without_overlaps() {
        let cases: &[(&str, Vec<RangeSpec>, Result<&str, &str>)] = &[
            ("empty", vec![], Err("empty range set")),
            (
                "two pools",
                vec![
                    spec("10.1.2.0/24", "", "", ""),
                    spec("10.1.4.0/24", "", "", ""),
                ],
                Ok("10.1.2.1-10.1.2.254,10.1.4.1-10.1.4.254"),
            ),
            (
                "mixed families",
                vec![
                    spec("10.1.2.0/24", "", "", ""),
                    spec("2001:db8::/64", "", "", ""),
                ],
                Err("mixed address families"),
            ),
            (
                "overlap",
                vec![
                    spec("10.1.2.0/24", "", "", ""),
                    spec("10.1.2.0/25", "", "", ""),
                ],
                Err("subnets 10.1.2.1-10.1.2.254 and 10.1.2.1-10.1.2.126 overlap"),
            ),
            (
                "same subnet, disjoint bounds",
                vec![
                    spec("10.1.2.0/24", "10.1.2.1", "10.1.2.9", ""),
                    spec("10.1.2.0/24", "10.1.2.10", "10.1.2.20", ""),
                ],
                Ok("10.1.2.1-10.1.2.9,10.1.2.10-10.1.2.20"),
            ),
            (
                "a bad range names itself",
                vec![
                    spec("10.1.2.0/24", "", "", ""),
                    spec("10.1.3.0/32", "", "", ""),
                ],
                Err("Network 10.1.3.0/32 too small to allocate from"),
            ),
        ];
        for (name, specs, want) in cases {
            let got = RangeSet::canonicalize(specs).map(|s| s.to_string());
            let want = want.map(str::to_string).map_err(str::to_string);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn membership_and_capacity() {
        let set = RangeSet::canonicalize(&[
            spec("10.1.2.0/29", "", "", ""),
            spec("10.1.3.0/24", "10.1.3.10", "10.1.3.12", ""),
        ])
        .expect("valid set");
        assert!(set.contains(ip("10.1.2.6")));
        assert!(!set.contains(ip("10.1.2.7")), "broadcast");
        assert!(!set.contains(ip("10.1.2.0")), "network");
        assert!(set.contains(ip("::ffff:10.1.3.11")), "mapped is v4");
        assert!(!set.contains(ip("10.1.3.13")));
        assert_eq!(set.range_for(ip("10.1.3.10")), set.ranges().get(1));
        // .1-.6 less the gateway, plus .10-.12 (gateway .1 is outside that range).
        assert_eq!(set.capacity(), 5 + 3);
        assert_eq!(next_ip(ip("10.0.0.255")), ip("10.0.1.0"));
        assert_eq!(next_ip(ip("2001:db8::ffff")), ip("2001:db8::1:0"));
        assert_eq!(
            SubnetSpec::parse("10.0.0.0/33"),
            Err("invalid CIDR address: 10.0.0.0/33".to_string())
        );
        assert!(SubnetSpec::parse("10.0.0.0").is_err());
        assert!(SubnetSpec::parse("10.0.0.0/+8").is_err());
        assert_eq!(parse_ip("::ffff:1.2.3.4"), Some(ip("1.2.3.4")));
    }
}
