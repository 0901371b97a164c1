//! Deleting stale UDP conntrack entries over ctnetlink (no `conntrack` process).
//!
//! A UDP flow to a host port keeps its conntrack entry, and so its NAT decision, as long as
//! packets keep coming: a client that sent to the port before the mapping existed (or while
//! it pointed at a container that is gone) stays blackholed (plugins#123). The reference
//! deletes the entries of each mapped UDP port after ADD; we also do it after DEL (its
//! open PR plugins#1277), limited to flows answered by the deleted container when its
//! address is known, so another container that took over the port keeps its flows.
//!
//! One filtered dump per port (`CTA_FILTER`, Linux 5.9+: the kernel returns only UDP
//! entries with that original destination port; older kernels ignore the filter and we
//! filter here), then one `IPCTNL_MSG_CT_DELETE` per entry, by its original tuple and id.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcni_firewall::nf::socket::{
    NFGEN_HDR_LEN, NLM_F_ACK, NLM_F_DUMP, NLMSG_DONE, NLMSG_ERROR, NfSocket, attr, attrs,
    check_ack, find, nested,
};

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_*`.
const CT_NEW: u16 = 0x0100;
const CT_GET: u16 = 0x0101;
const CT_DELETE: u16 = 0x0102;

/// `enum ctattr_type`, `ctattr_tuple`, `ctattr_ip`, `ctattr_l4proto`, `ctattr_filter`.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_FILTER: u16 = 25;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_FILTER_ORIG_FLAGS: u16 = 1;
/// `CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT`.
const FILTER_PROTO_AND_DST_PORT: u32 = (1 << 3) | (1 << 5);

const IPPROTO_UDP: u8 = 17;

/// An open ctnetlink socket in the calling thread's network namespace.
pub struct Conntrack {
    socket: NfSocket,
}

impl Conntrack {
    /// The socket, for [`rcni_firewall::nf::linger`].
    pub(crate) fn into_socket(self) -> NfSocket {
        self.socket
    }
}

/// One dumped entry: what deleting it takes, and what it is filtered by.
#[derive(Debug)]
struct Entry {
    /// The raw `CTA_TUPLE_ORIG`, `CTA_ZONE` and `CTA_ID` attributes, sent back to delete it.
    key: Vec<u8>,
    protocol: Option<u8>,
    dst_port: Option<u16>,
    reply_source: Option<IpAddr>,
}

impl Conntrack {
    /// Opens the socket.
    ///
    /// # Errors
    /// The socket cannot be created or bound.
    pub fn open() -> io::Result<Conntrack> {
        Ok(Conntrack {
            socket: NfSocket::open()?,
        })
    }

    /// Deletes the UDP entries of `family` whose original destination port is `port`, and,
    /// when `reply_source` is given, whose replies come from that address; returns how many.
    ///
    /// # Errors
    /// The kernel refused the dump or a delete (an entry that expired meanwhile is fine).
    pub fn delete_udp_port(
        &mut self,
        family: IpAddr,
        port: u16,
        reply_source: Option<IpAddr>,
    ) -> io::Result<usize> {
        let af = family_of(family);
        let entries = self.dump_udp_port(af, port)?;
        let mut deleted = 0;
        for entry in entries {
            let wanted = entry.protocol == Some(IPPROTO_UDP)
                && entry.dst_port == Some(port)
                && reply_source.is_none_or(|src| entry.reply_source == Some(src));
            if !wanted {
                continue;
            }
            match self.delete(af, &entry.key) {
                Ok(()) => deleted += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    fn dump_udp_port(&mut self, af: u8, port: u16) -> io::Result<Vec<Entry>> {
        let mut body = Vec::new();
        nested(&mut body, CTA_TUPLE_ORIG, |tuple| {
            nested(tuple, CTA_TUPLE_PROTO, |proto| {
                attr(proto, CTA_PROTO_NUM, &[IPPROTO_UDP]);
                attr(proto, CTA_PROTO_DST_PORT, &port.to_be_bytes());
            });
        });
        nested(&mut body, CTA_FILTER, |filter| {
            attr(
                filter,
                CTA_FILTER_ORIG_FLAGS,
                &FILTER_PROTO_AND_DST_PORT.to_ne_bytes(),
            );
        });
        let seq = self.socket.send(CT_GET, NLM_F_DUMP, af, &body)?;
        let mut entries = Vec::new();
        loop {
            for (header, payload) in self.socket.recv()? {
                if header.seq != seq {
                    continue;
                }
                match header.kind {
                    NLMSG_DONE => return Ok(entries),
                    NLMSG_ERROR => {
                        check_ack(&payload)?;
                        return Ok(entries);
                    }
                    CT_NEW => entries.push(parse_entry(&payload)),
                    _ => {}
                }
            }
        }
    }

    fn delete(&mut self, af: u8, key: &[u8]) -> io::Result<()> {
        let seq = self.socket.send(CT_DELETE, NLM_F_ACK, af, key)?;
        self.socket.ack(seq)
    }
}

fn family_of(ip: IpAddr) -> u8 {
    let af = match ip {
        IpAddr::V4(_) => libc::AF_INET,
        IpAddr::V6(_) => libc::AF_INET6,
    };
    u8::try_from(af).unwrap_or(0)
}

fn parse_entry(payload: &[u8]) -> Entry {
    let body = payload.get(NFGEN_HDR_LEN..).unwrap_or_default();
    let mut entry = Entry {
        key: Vec::new(),
        protocol: None,
        dst_port: None,
        reply_source: None,
    };
    for (kind, value, whole) in attrs(body) {
        match kind {
            CTA_TUPLE_ORIG | CTA_ZONE | CTA_ID => {
                entry.key.extend_from_slice(whole);
                entry
                    .key
                    .resize(rcni_firewall::nf::socket::align(entry.key.len()), 0);
                if kind == CTA_TUPLE_ORIG
                    && let Some(proto) = find(value, CTA_TUPLE_PROTO)
                {
                    entry.protocol = find(proto, CTA_PROTO_NUM).and_then(|p| p.first().copied());
                    entry.dst_port = find(proto, CTA_PROTO_DST_PORT)
                        .and_then(|p| Some(u16::from_be_bytes([*p.first()?, *p.get(1)?])));
                }
            }
            CTA_TUPLE_REPLY => {
                let ip = find(value, CTA_TUPLE_IP);
                entry.reply_source = ip.and_then(|ip| {
                    if let Some(v4) = find(ip, CTA_IP_V4_SRC) {
                        let octets: [u8; 4] = v4.try_into().ok()?;
                        Some(IpAddr::V4(Ipv4Addr::from(octets)))
                    } else {
                        let octets: [u8; 16] = find(ip, CTA_IP_V6_SRC)?.try_into().ok()?;
                        Some(IpAddr::V6(Ipv6Addr::from(octets)))
                    }
                });
            }
            _ => {}
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::process::Command;

    use super::*;

    fn run(args: &[&str]) {
        let ok = Command::new(args[0])
            .args(&args[1..])
            .status()
            .expect("run tool")
            .success();
        assert!(ok, "{args:?}");
    }

    /// Sends one datagram from `from` to `to`, which creates a conntrack entry.
    fn flow(from: &str, to: &str) {
        let socket = UdpSocket::bind(from).expect("bind");
        socket.send_to(b"x", to).expect("send");
    }

    #[test]
    fn deletes_only_the_udp_entries_of_the_port() {
        if !rcni_testkit::require_root() {
            return;
        }
        std::thread::spawn(|| {
            rcni_testkit::unshare_thread_netns();
            // Conntrack only tracks a namespace that has a hook using it.
            run(&["nft", "add table inet t; add chain inet t c { type filter hook output priority 0 ; }; add rule inet t c ct state new counter"]);
            flow("127.0.0.1:40001", "127.0.0.1:5353");
            flow("127.0.0.1:40002", "127.0.0.1:5353");
            flow("127.0.0.1:40003", "127.0.0.1:5354");
            flow("[::1]:40001", "[::1]:5353");
            let mut ct = Conntrack::open().expect("ctnetlink");
            let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
            // Replies from another address: none of these.
            let other = Some("10.9.9.9".parse().expect("ip"));
            assert_eq!(ct.delete_udp_port(v4, 5353, other).expect("delete"), 0);
            assert_eq!(ct.delete_udp_port(v4, 5353, Some(v4)).expect("delete"), 2);
            assert_eq!(ct.delete_udp_port(v4, 5353, None).expect("delete"), 0);
            assert_eq!(ct.delete_udp_port(v4, 5354, None).expect("delete"), 1);
            assert_eq!(ct.delete_udp_port(v6, 5353, None).expect("delete"), 1);
            assert_eq!(ct.delete_udp_port(v6, 5353, None).expect("delete"), 0);
        })
        .join()
        .expect("test thread");
    }
}
