//! rtnetlink messages by hand: a builder for requests and an attribute walker for replies.
//!
//! Every plugin binary links this, so it is kept to what the facade sends and reads. A
//! generic rtnetlink crate decodes every message and link kind the kernel has, and that
//! code (~0.4 MiB of each binary, DESIGN §7) sat in every plugin for the dozen attributes
//! used here. The layouts are the kernel's UAPI (`linux/rtnetlink.h`, `if_link.h`,
//! `if_addr.h`, `fib_rules.h`); the constants below carry their names.

/// `struct nlmsghdr`.
pub(crate) const NLMSG_HDR_LEN: usize = 16;
const NLA_HDR_LEN: usize = 4;
/// Flag bits in `nla_type` (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;

// Message types.
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_SETLINK: u16 = 19;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_DELADDR: u16 = 21;
pub(crate) const RTM_GETADDR: u16 = 22;
pub(crate) const RTM_NEWROUTE: u16 = 24;
pub(crate) const RTM_DELROUTE: u16 = 25;
pub(crate) const RTM_GETROUTE: u16 = 26;
pub(crate) const RTM_NEWRULE: u16 = 32;
pub(crate) const RTM_DELRULE: u16 = 33;
pub(crate) const RTM_GETRULE: u16 = 34;

// Request flags.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// In an `NLMSG_ERROR` reply: the echoed request is only its header / TLVs follow.
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;

// Address families.
pub(crate) const AF_UNSPEC: u8 = 0;
pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_BRIDGE: u8 = 7;
pub(crate) const AF_INET6: u8 = 10;

// `struct ifinfomsg` flags.
pub(crate) const IFF_UP: u32 = 0x1;
pub(crate) const IFF_RUNNING: u32 = 0x40;
pub(crate) const IFF_PROMISC: u32 = 0x100;
pub(crate) const IFF_ALLMULTI: u32 = 0x200;

// Link attributes.
pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;
pub(crate) const IFLA_LINK: u16 = 5;
pub(crate) const IFLA_MASTER: u16 = 10;
pub(crate) const IFLA_TXQLEN: u16 = 13;
pub(crate) const IFLA_OPERSTATE: u16 = 16;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_IFALIAS: u16 = 20;
pub(crate) const IFLA_AF_SPEC: u16 = 26;
pub(crate) const IFLA_INET_CONF: u16 = 1;
pub(crate) const IFLA_NET_NS_FD: u16 = 28;
pub(crate) const IFLA_NUM_TX_QUEUES: u16 = 31;
pub(crate) const IFLA_NUM_RX_QUEUES: u16 = 32;
pub(crate) const IFLA_EXT_MASK: u16 = 29;
pub(crate) const IFLA_LINK_NETNSID: u16 = 37;
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_INFO_DATA: u16 = 2;
pub(crate) const IFLA_INFO_SLAVE_KIND: u16 = 4;
pub(crate) const IFLA_INFO_SLAVE_DATA: u16 = 5;
pub(crate) const VETH_INFO_PEER: u16 = 1;
pub(crate) const IFLA_MACVLAN_MODE: u16 = 1;
pub(crate) const IFLA_MACVLAN_BC_QUEUE_LEN: u16 = 7;
pub(crate) const IFLA_IPVLAN_MODE: u16 = 1;
pub(crate) const IFLA_VLAN_ID: u16 = 1;
pub(crate) const IFLA_VRF_TABLE: u16 = 1;
pub(crate) const IFLA_BR_VLAN_FILTERING: u16 = 7;
pub(crate) const IFLA_BRPORT_MODE: u16 = 4;
pub(crate) const IFLA_BRPORT_ISOLATED: u16 = 33;
pub(crate) const IFLA_BRIDGE_FLAGS: u16 = 0;
pub(crate) const IFLA_BRIDGE_VLAN_INFO: u16 = 2;
pub(crate) const BRIDGE_FLAGS_MASTER: u16 = 1;
pub(crate) const BRIDGE_VLAN_INFO_PVID: u16 = 0x2;
pub(crate) const BRIDGE_VLAN_INFO_UNTAGGED: u16 = 0x4;
pub(crate) const RTEXT_FILTER_BRVLAN: u32 = 0x2;
pub(crate) const RTEXT_FILTER_SKIP_STATS: u32 = 0x8;
pub(crate) const IF_OPER_UNKNOWN: u8 = 0;
pub(crate) const IF_OPER_UP: u8 = 6;
pub(crate) const MACVLAN_MODE_PRIVATE: u32 = 1;
pub(crate) const MACVLAN_MODE_VEPA: u32 = 2;
pub(crate) const MACVLAN_MODE_BRIDGE: u32 = 4;
pub(crate) const MACVLAN_MODE_PASSTHRU: u32 = 8;
pub(crate) const IPVLAN_MODE_L2: u16 = 0;
pub(crate) const IPVLAN_MODE_L3: u16 = 1;
pub(crate) const IPVLAN_MODE_L3S: u16 = 2;

// Address attributes and flags.
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;
pub(crate) const IFA_BROADCAST: u16 = 4;
pub(crate) const IFA_FLAGS: u16 = 8;
pub(crate) const IFA_F_DADFAILED: u32 = 0x08;
pub(crate) const IFA_F_TENTATIVE: u32 = 0x40;
pub(crate) const IFA_F_PERMANENT: u32 = 0x80;

// Route attributes and header values.
pub(crate) const RTA_DST: u16 = 1;
pub(crate) const RTA_OIF: u16 = 4;
pub(crate) const RTA_GATEWAY: u16 = 5;
pub(crate) const RTA_PRIORITY: u16 = 6;
pub(crate) const RTA_PREFSRC: u16 = 7;
pub(crate) const RTA_METRICS: u16 = 8;
pub(crate) const RTA_TABLE: u16 = 15;
pub(crate) const RTAX_MTU: u16 = 2;
pub(crate) const RTAX_ADVMSS: u16 = 8;
pub(crate) const RTN_UNSPEC: u8 = 0;
pub(crate) const RTN_UNICAST: u8 = 1;
pub(crate) const RTPROT_UNSPEC: u8 = 0;
pub(crate) const RTPROT_BOOT: u8 = 3;
pub(crate) const RT_SCOPE_NOWHERE: u8 = 255;
pub(crate) const RT_TABLE_UNSPEC: u8 = 0;

// Rule attributes.
pub(crate) const FRA_SRC: u16 = 2;
pub(crate) const FRA_PRIORITY: u16 = 6;
pub(crate) const FRA_TABLE: u16 = 15;
pub(crate) const FR_ACT_TO_TBL: u8 = 1;

/// `struct ifinfomsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IfInfo {
    pub(crate) family: u8,
    pub(crate) index: u32,
    pub(crate) flags: u32,
    pub(crate) change: u32,
}

impl IfInfo {
    pub(crate) const LEN: usize = 16;

    pub(crate) fn index(index: u32) -> IfInfo {
        IfInfo {
            index,
            ..IfInfo::default()
        }
    }

    fn bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[0] = self.family;
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.change.to_ne_bytes());
        b
    }

    pub(crate) fn parse(payload: &[u8]) -> Option<(IfInfo, &[u8])> {
        let b = payload.get(..Self::LEN)?;
        Some((
            IfInfo {
                family: b[0],
                index: u32_at(b, 4)?,
                flags: u32_at(b, 8)?,
                change: u32_at(b, 12)?,
            },
            payload.get(Self::LEN..)?,
        ))
    }
}

/// `struct ifaddrmsg`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IfAddr {
    pub(crate) family: u8,
    pub(crate) prefix_len: u8,
    pub(crate) flags: u8,
    pub(crate) scope: u8,
    pub(crate) index: u32,
}

impl IfAddr {
    pub(crate) const LEN: usize = 8;

    fn bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..4].copy_from_slice(&[self.family, self.prefix_len, self.flags, self.scope]);
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b
    }

    pub(crate) fn parse(payload: &[u8]) -> Option<(IfAddr, &[u8])> {
        let b = payload.get(..Self::LEN)?;
        Some((
            IfAddr {
                family: b[0],
                prefix_len: b[1],
                flags: b[2],
                scope: b[3],
                index: u32_at(b, 4)?,
            },
            payload.get(Self::LEN..)?,
        ))
    }
}

/// `struct rtmsg`, which `struct fib_rule_hdr` shares byte for byte (its `tos`, `table`,
/// `res1`, `res2`, `action` sit where a route's `tos`, `table`, `protocol`, `scope`,
/// `type` do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RtMsg {
    pub(crate) family: u8,
    pub(crate) dst_len: u8,
    pub(crate) src_len: u8,
    pub(crate) tos: u8,
    pub(crate) table: u8,
    pub(crate) protocol: u8,
    pub(crate) scope: u8,
    /// A route's type, a rule's action.
    pub(crate) kind: u8,
    pub(crate) flags: u32,
}

impl RtMsg {
    pub(crate) const LEN: usize = 12;

    fn bytes(self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        b[..8].copy_from_slice(&[
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            self.protocol,
            self.scope,
            self.kind,
        ]);
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b
    }

    pub(crate) fn parse(payload: &[u8]) -> Option<(RtMsg, &[u8])> {
        let b = payload.get(..Self::LEN)?;
        Some((
            RtMsg {
                family: b[0],
                dst_len: b[1],
                src_len: b[2],
                tos: b[3],
                table: b[4],
                protocol: b[5],
                scope: b[6],
                kind: b[7],
                flags: u32_at(b, 8)?,
            },
            payload.get(Self::LEN..)?,
        ))
    }
}

/// A request under construction: `nlmsghdr` (completed by [`Msg::finish`]), the family
/// header, then attributes, nests included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Msg {
    kind: u16,
    buf: Vec<u8>,
}

impl Msg {
    fn with_header(kind: u16, header: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.resize(NLMSG_HDR_LEN, 0);
        buf.extend_from_slice(header);
        pad(&mut buf);
        Msg { kind, buf }
    }

    pub(crate) fn link(kind: u16, header: IfInfo) -> Msg {
        Msg::with_header(kind, &header.bytes())
    }

    pub(crate) fn addr(kind: u16, header: IfAddr) -> Msg {
        Msg::with_header(kind, &header.bytes())
    }

    pub(crate) fn route(kind: u16, header: RtMsg) -> Msg {
        Msg::with_header(kind, &header.bytes())
    }

    #[cfg(test)]
    pub(crate) fn kind(&self) -> u16 {
        self.kind
    }

    pub(crate) fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Msg {
        let len = u16::try_from(NLA_HDR_LEN + value.len()).unwrap_or(u16::MAX);
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        pad(&mut self.buf);
        self
    }

    pub(crate) fn u8(&mut self, kind: u16, v: u8) -> &mut Msg {
        self.attr(kind, &[v])
    }

    pub(crate) fn u16(&mut self, kind: u16, v: u16) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    pub(crate) fn u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A C string attribute (NUL-terminated, as iproute2 sends names).
    pub(crate) fn str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(kind, &v)
    }

    pub(crate) fn ip(&mut self, kind: u16, ip: std::net::IpAddr) -> &mut Msg {
        match ip {
            std::net::IpAddr::V4(a) => self.attr(kind, &a.octets()),
            std::net::IpAddr::V6(a) => self.attr(kind, &a.octets()),
        }
    }

    /// Opens a nested attribute; attributes added until [`Msg::end`] go inside it.
    pub(crate) fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.attr(kind, &[]);
        at
    }

    /// Raw bytes inside an open nest (a peer's `ifinfomsg` in `VETH_INFO_PEER`).
    pub(crate) fn raw_link_header(&mut self, header: IfInfo) -> &mut Msg {
        self.buf.extend_from_slice(&header.bytes());
        self
    }

    pub(crate) fn end(&mut self, at: usize) {
        let len = u16::try_from(self.buf.len() - at).unwrap_or(u16::MAX);
        if let Some(field) = self.buf.get_mut(at..at + 2) {
            field.copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// The datagram: the header's length, type, flags and sequence filled in.
    pub(crate) fn finish(&self, flags: u16, seq: u32) -> Vec<u8> {
        let mut out = self.buf.clone();
        let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
        out[0..4].copy_from_slice(&len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.kind.to_ne_bytes());
        out[6..8].copy_from_slice(&flags.to_ne_bytes());
        out[8..12].copy_from_slice(&seq.to_ne_bytes());
        out
    }

    /// The payload after `nlmsghdr`, to read back what was built.
    #[cfg(test)]
    pub(crate) fn payload(&self) -> &[u8] {
        self.buf.get(NLMSG_HDR_LEN..).unwrap_or_default()
    }
}

fn pad(buf: &mut Vec<u8>) {
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// The attributes in `data`: (type without flag bits, value). Stops at the first
/// malformed one.
pub(crate) fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes([*data.first()?, *data.get(1)?]));
        if len < NLA_HDR_LEN {
            return None;
        }
        let kind = u16::from_ne_bytes([*data.get(2)?, *data.get(3)?]) & NLA_TYPE_MASK;
        let value = data.get(NLA_HDR_LEN..len)?;
        data = data.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some((kind, value))
    })
}

/// The first attribute of type `kind`.
pub(crate) fn find(data: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(data).find_map(|(k, v)| (k == kind).then_some(v))
}

pub(crate) fn u8_of(v: &[u8]) -> Option<u8> {
    v.first().copied()
}

pub(crate) fn u16_of(v: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?))
}

pub(crate) fn u32_of(v: &[u8]) -> Option<u32> {
    u32_at(v, 0)
}

fn u32_at(v: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

/// A C string attribute, without its NUL.
pub(crate) fn str_of(v: &[u8]) -> String {
    let text = v.split(|b| *b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

/// An address attribute of 4 or 16 bytes.
pub(crate) fn ip_of(v: &[u8]) -> Option<std::net::IpAddr> {
    match v.len() {
        4 => Some(<[u8; 4]>::try_from(v).ok()?.into()),
        16 => Some(<[u8; 16]>::try_from(v).ok()?.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nests_and_padding_have_the_kernel_layout() {
        let mut m = Msg::link(RTM_NEWLINK, IfInfo::index(3));
        m.str(IFLA_IFNAME, "ab");
        let at = m.begin(IFLA_LINKINFO);
        m.str(IFLA_INFO_KIND, "veth");
        m.end(at);
        let bytes = m.finish(NLM_F_REQUEST | NLM_F_ACK, 9);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(u32_of(&bytes).map(|l| l as usize), Some(bytes.len()));
        assert_eq!(u16_of(&bytes[4..]), Some(RTM_NEWLINK));
        assert_eq!(u16_of(&bytes[6..]), Some(NLM_F_REQUEST | NLM_F_ACK));
        assert_eq!(u32_of(&bytes[8..]), Some(9));
        let (hdr, rest) = IfInfo::parse(&bytes[NLMSG_HDR_LEN..]).expect("ifinfomsg");
        assert_eq!(hdr.index, 3);
        // "ab\0" is 7 bytes with its header, padded to 8.
        assert_eq!(&rest[..8], &[7, 0, 3, 0, b'a', b'b', 0, 0]);
        let info = find(rest, IFLA_LINKINFO).expect("linkinfo");
        assert_eq!(info.len(), 12);
        assert_eq!(
            find(info, IFLA_INFO_KIND).map(str_of).as_deref(),
            Some("veth")
        );
    }

    #[test]
    fn attrs_stop_at_malformed_data_and_mask_flag_bits() {
        let data = [8, 0, 0x01, 0x80, 1, 2, 3, 4, 200, 0, 1, 0];
        let got: Vec<_> = attrs(&data).collect();
        assert_eq!(got, vec![(1, &[1u8, 2, 3, 4][..])]);
        assert_eq!(attrs(&[]).count(), 0);
        assert_eq!(attrs(&[3, 0, 1, 0]).count(), 0);
    }

    #[test]
    fn headers_round_trip() {
        let h = RtMsg {
            family: AF_INET6,
            dst_len: 64,
            table: 254,
            protocol: RTPROT_BOOT,
            kind: RTN_UNICAST,
            flags: 7,
            ..RtMsg::default()
        };
        assert_eq!(RtMsg::parse(&h.bytes()).map(|(h, _)| h), Some(h));
        let a = IfAddr {
            family: AF_INET,
            prefix_len: 24,
            flags: 0x80,
            scope: 0,
            index: 5,
        };
        assert_eq!(IfAddr::parse(&a.bytes()).map(|(a, _)| a), Some(a));
        let l = IfInfo {
            family: AF_BRIDGE,
            index: 2,
            flags: IFF_UP,
            change: IFF_UP,
        };
        assert_eq!(IfInfo::parse(&l.bytes()).map(|(l, _)| l), Some(l));
        assert_eq!(ip_of(&[10, 0, 0, 1]), Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(ip_of(&[1, 2, 3]), None);
    }
}
