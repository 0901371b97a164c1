//! Handing out one address from a range set, as Go's `backend/allocator/allocator.go`:
//! round-robin from the address after the set's last reservation, across the set's ranges
//! in order and wrapping, skipping each range's gateway, until every address was tried.
//! A crash-looping container so does not see the same address again until the whole set
//! has been used.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rcni_types::{Error, IpConfig, Result};

use crate::range::{Range, RangeSet, next_ip};
use crate::store::HostLocalStore;

/// Allocates from range set number `index` of the config (the number names its
/// `last_reserved_ip.<index>` marker).
pub struct IpAllocator<'a> {
    set: &'a RangeSet,
    store: &'a HostLocalStore,
    index: usize,
}

impl<'a> IpAllocator<'a> {
    #[must_use]
    pub fn new(set: &'a RangeSet, store: &'a HostLocalStore, index: usize) -> IpAllocator<'a> {
        IpAllocator { set, store, index }
    }

    /// Reserves `requested`, or else the next free address, for (id, ifname). `held` is
    /// what the attachment already holds ([`HostLocalStore::get_by_id`]; read once per
    /// ADD, as the store stays locked and this ADD only adds to other sets).
    ///
    /// # Errors
    /// Go's messages: the requested address is the gateway, not in the set or taken; the
    /// attachment already holds an address in this set; the set is full; store failures.
    pub fn get(
        &self,
        id: &str,
        ifname: &str,
        requested: Option<IpAddr>,
        held: &[IpAddr],
    ) -> Result<IpConfig> {
        if let Some(ip) = requested {
            let Some(range) = self.set.range_for(ip) else {
                return Err(Error::internal(format!(
                    "{ip} not in range set {}",
                    self.set
                )));
            };
            if ip == range.gateway {
                return Err(Error::internal(format!(
                    "requested ip {ip} is subnet's gateway"
                )));
            }
            if !self.store.reserve(id, ifname, ip, self.index)? {
                return Err(Error::internal(format!(
                    "requested IP address {ip} is not available in range set {}",
                    self.set
                )));
            }
            return Ok(ip_config(ip, range));
        }

        // The spec forbids a second ADD for the same attachment.
        if let Some(held) = held.iter().find(|ip| self.set.contains(**ip)) {
            return Err(Error::internal(format!(
                "{held} has been allocated to {id}, duplicate allocation is not allowed"
            )));
        }

        for (ip, range) in RangeIter::new(self.set, self.store.last_reserved_ip(self.index)) {
            if self.store.reserve(id, ifname, ip, self.index)? {
                return Ok(ip_config(ip, range));
            }
        }
        Err(Error::internal(format!(
            "no IP addresses available in range set: {}",
            self.set
        )))
    }
}

fn ip_config(ip: IpAddr, range: &Range) -> IpConfig {
    // The prefix comes from a canonical subnet of the same family, so it always fits.
    let address = IpNetwork::new(ip, range.subnet.prefix()).unwrap_or(range.subnet);
    IpConfig::new(address, Some(range.gateway), None)
}

/// Go's `RangeIter`: walks a set once, starting after `last` when it is in the set, else
/// at the first range's start.
pub struct RangeIter<'a> {
    ranges: &'a [Range],
    index: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
}

impl<'a> RangeIter<'a> {
    #[must_use]
    pub fn new(set: &'a RangeSet, last: Option<IpAddr>) -> RangeIter<'a> {
        let ranges = set.ranges();
        // A marker from another range layout is not an error: round-robin restarts.
        match last.and_then(|ip| ranges.iter().position(|r| r.contains(ip)).zip(Some(ip))) {
            Some((index, ip)) => RangeIter {
                ranges,
                index,
                cur: Some(ip),
                start: None,
            },
            None => RangeIter {
                ranges,
                index: 0,
                cur: None,
                start: None,
            },
        }
    }
}

/// Candidates with their range; the walk ends once back where it began.
impl<'a> Iterator for RangeIter<'a> {
    type Item = (IpAddr, &'a Range);

    fn next(&mut self) -> Option<(IpAddr, &'a Range)> {
        loop {
            let mut range = self.ranges.get(self.index)?;
            let ip = match self.cur {
                // Fresh start: rangeStart is inclusive.
                None => {
                    self.start = Some(range.range_start);
                    range.range_start
                }
                Some(cur) => {
                    let ip = if cur == range.range_end {
                        self.index = (self.index + 1) % self.ranges.len();
                        range = self.ranges.get(self.index)?;
                        range.range_start
                    } else {
                        next_ip(cur)
                    };
                    match self.start {
                        None => self.start = Some(ip),
                        Some(start) if start == ip => return None,
                        Some(_) => {}
                    }
                    ip
                }
            };
            self.cur = Some(ip);
            if ip != range.gateway {
                return Some((ip, range));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::range::{RangeSpec, SubnetSpec};
    use crate::testdir::TestDir;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    /// `subnet[,start,end,gateway]` per range.
    fn set(ranges: &[&str]) -> RangeSet {
        let specs: Vec<RangeSpec> = ranges
            .iter()
            .map(|r| {
                let mut parts = r.split(',');
                let subnet = parts.next().expect("subnet");
                let mut opt = || parts.next().filter(|s| !s.is_empty()).map(ip);
                RangeSpec {
                    subnet: Some(SubnetSpec::parse(subnet).expect("subnet")),
                    range_start: opt(),
                    range_end: opt(),
                    gateway: opt(),
                }
            })
            .collect();
        RangeSet::canonicalize(&specs).expect("valid set")
    }

    fn walk(set: &RangeSet, last: Option<&str>) -> Vec<String> {
        let out: Vec<String> = RangeIter::new(set, last.map(ip))
            .take(1000)
            .map(|(ip, _)| ip.to_string())
            .collect();
        assert!(out.len() < 1000, "iterator must end");
        out
    }

    #[test]
    fn iteration_order_is_go_round_robin() {
        let cases: &[(&str, RangeSet, Option<&str>, &[&str])] = &[
            (
                "fresh start skips the gateway",
                set(&["10.0.0.0/29"]),
                None,
                &["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
            ),
            (
                "resume after the marker and wrap",
                set(&["10.0.0.0/29"]),
                Some("10.0.0.4"),
                &["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"],
            ),
            (
                "marker at the end wraps to the start",
                set(&["10.0.0.0/29"]),
                Some("10.0.0.6"),
                &["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
            ),
            (
                "marker outside the set restarts",
                set(&["10.0.0.0/29"]),
                Some("10.9.9.9"),
                &["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"],
            ),
            (
                "across ranges of a set",
                set(&["10.0.0.0/30", "10.0.1.0/24,10.0.1.10,10.0.1.11"]),
                Some("10.0.0.2"),
                &["10.0.1.10", "10.0.1.11", "10.0.0.2"],
            ),
            (
                "gateway inside the range elsewhere",
                set(&["10.0.0.0/29,10.0.0.1,10.0.0.4,10.0.0.3"]),
                None,
                &["10.0.0.1", "10.0.0.2", "10.0.0.4"],
            ),
            (
                "only the gateway",
                set(&["10.0.0.0/29,10.0.0.1,10.0.0.1"]),
                None,
                &[],
            ),
            (
                "explicit start at the network address is handed out (Go does)",
                set(&["10.0.0.0/30,10.0.0.0"]),
                None,
                &["10.0.0.0", "10.0.0.2"],
            ),
            (
                "ipv6 includes the last address",
                set(&["2001:db8::/126"]),
                Some("2001:db8::2"),
                &["2001:db8::3", "2001:db8::2"],
            ),
        ];
        for (name, set, last, want) in cases {
            assert_eq!(walk(set, *last), *want, "{name}");
        }
    }

    struct Fixture {
        _tmp: TestDir,
        store: HostLocalStore,
    }

    fn fixture(name: &str) -> Fixture {
        let tmp = TestDir::new(name);
        let store = HostLocalStore::open(tmp.path(), "net").expect("open store");
        Fixture { _tmp: tmp, store }
    }

    fn get(a: &IpAllocator, id: &str, req: Option<&str>) -> Result<String> {
        let held = a.store.get_by_id(id, "eth0");
        a.get(id, "eth0", req.map(ip), &held).map(|c| {
            format!(
                "{} gw {}",
                c.address,
                c.gateway.map(|g| g.to_string()).unwrap_or_default()
            )
        })
    }

    #[test]
    fn allocates_round_robin_and_reports_exhaustion() {
        let f = fixture("alloc-rr");
        let s = set(&["10.0.0.0/29"]);
        let a = IpAllocator::new(&s, &f.store, 0);
        assert_eq!(get(&a, "c1", None).expect("c1"), "10.0.0.2/29 gw 10.0.0.1");
        assert_eq!(get(&a, "c2", None).expect("c2"), "10.0.0.3/29 gw 10.0.0.1");
        f.store.release_by_id("c1", "eth0", 1).expect("release c1");
        // Round-robin continues after .3 instead of reusing .2 at once.
        assert_eq!(get(&a, "c3", None).expect("c3"), "10.0.0.4/29 gw 10.0.0.1");
        for id in ["c4", "c5", "c6"] {
            get(&a, id, None).expect(id);
        }
        assert_eq!(
            fs::read_to_string(f.store.dir().join("10.0.0.2")).expect("wrapped to .2"),
            "c6\r\neth0"
        );
        let e = get(&a, "c7", None).expect_err("full");
        assert_eq!(
            e.msg,
            "no IP addresses available in range set: 10.0.0.1-10.0.0.6"
        );
        let e = get(&a, "c6", None).expect_err("duplicate");
        assert_eq!(
            e.msg,
            "10.0.0.2 has been allocated to c6, duplicate allocation is not allowed"
        );
    }

    #[test]
    fn requested_addresses() {
        let f = fixture("alloc-req");
        let s = set(&["10.0.0.0/24", "10.0.5.0/24,10.0.5.10,10.0.5.20,10.0.5.1"]);
        let a = IpAllocator::new(&s, &f.store, 3);
        assert_eq!(
            get(&a, "c1", Some("10.0.5.15")).expect("requested"),
            "10.0.5.15/24 gw 10.0.5.1"
        );
        assert_eq!(
            fs::read_to_string(f.store.dir().join("last_reserved_ip.3")).expect("marker"),
            "10.0.5.15"
        );
        let cases = [
            (
                "taken",
                "10.0.5.15",
                "requested IP address 10.0.5.15 is not available in range set 10.0.0.1-10.0.0.254,10.0.5.10-10.0.5.20",
            ),
            (
                "gateway",
                "10.0.0.1",
                "requested ip 10.0.0.1 is subnet's gateway",
            ),
            (
                "outside the bounds",
                "10.0.5.21",
                "10.0.5.21 not in range set 10.0.0.1-10.0.0.254,10.0.5.10-10.0.5.20",
            ),
        ];
        for (name, req, want) in cases {
            let e = get(&a, "c2", Some(req)).expect_err(name);
            assert_eq!(e.msg, want, "{name}");
        }
        // A requested address skips the duplicate check, as in Go.
        assert_eq!(
            get(&a, "c1", Some("10.0.0.7")).expect("second requested"),
            "10.0.0.7/24 gw 10.0.0.1"
        );
        // And the next free address follows the marker.
        assert_eq!(
            get(&a, "c3", None).expect("after marker"),
            "10.0.0.8/24 gw 10.0.0.1"
        );
    }

    #[test]
    fn ipv6_set() {
        let f = fixture("alloc-v6");
        let s = set(&["2001:db8::/64,2001:db8::ffff:fffe"]);
        let a = IpAllocator::new(&s, &f.store, 1);
        assert_eq!(
            get(&a, "c1", None).expect("c1"),
            "2001:db8::ffff:fffe/64 gw 2001:db8::1"
        );
        assert_eq!(
            get(&a, "c2", None).expect("c2"),
            "2001:db8::ffff:ffff/64 gw 2001:db8::1"
        );
        assert_eq!(
            get(&a, "c3", None).expect("c3"),
            "2001:db8::1:0:0/64 gw 2001:db8::1"
        );
    }
}
