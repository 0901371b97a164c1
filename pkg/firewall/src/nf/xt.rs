//! `iptables-restore` transactions written over nf_tables netlink, as iptables-nft writes
//! them, without starting the tool.
//!
//! Only what our ADDs write is understood: `-N chain`, `-A chain ...`, `-I chain 1 ...` and
//! `-C chain ...` (checked against a dump of the chain, and the changes then committed only
//! at the generation that dump saw), with the address, protocol, port, comment,
//! multiport, mark, addrtype and conntrack matches and the ACCEPT, jump, MASQUERADE, SNAT,
//! DNAT and MARK targets, in the forms our rule builders print. Each rule is encoded expression for expression as
//! iptables-nft 1.8 encodes it (native payload/meta/cmp/bitwise where it uses them, xt
//! `match`/`target` with the same revision and info blob where it does not, a counter
//! before the verdict), so `iptables-save` prints it back as the same line and the
//! reference's `iptables -D` finds it; a kernel test compares the dumps of both ways.
//!
//! A transaction with anything else (a deletion, a `:chain` line, user-given
//! conditions), a host whose `iptables` is not iptables-nft, or a kernel refusal (a chain
//! that exists, a table iptables has not set up yet) leaves the transaction to
//! `iptables-restore`, which then does it, or fails it with its own words.

use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;

use ipnetwork::IpNetwork;

use crate::iptables::{Family, split_words};
use crate::nf::abi::*;
use crate::nf::rules::{dump_rules, generation, transact_at};
use crate::nf::socket::{NfSocket, attr, attr_str, attrs, find};

/// `NF_NAT_RANGE_MAP_IPS`, `NF_NAT_RANGE_PROTO_SPECIFIED`; the sizes of `struct
/// nf_nat_range` and (8-aligned) `struct nf_nat_range2`.
const NAT_MAP_IPS: u32 = 1;
const NAT_PROTO_SPECIFIED: u32 = 2;
const NAT_RANGE_LEN: usize = 40;
const NAT_RANGE2_LEN: usize = 48;
/// `XT_MULTIPORT_DESTINATION`; `XT_MULTI_PORTS`.
const MULTIPORT_DESTINATION: u8 = 1;
const MULTIPORT_MAX: usize = 15;
/// `XT_ADDRTYPE_LOCAL` (1 << RTN_LOCAL).
const ADDRTYPE_LOCAL: u16 = 1 << 2;
/// `XT_CONNTRACK_STATE`; `XT_CONNTRACK_STATE_BIT(IP_CT_ESTABLISHED)` and `(IP_CT_RELATED)`.
const CONNTRACK_STATE: u16 = 1;
const CT_ESTABLISHED: u16 = 1 << 1;
const CT_RELATED: u16 = 1 << 2;

/// True when the host's `iptables-restore` (or `ip6tables-restore`) is iptables-nft, whose
/// rules live in nf_tables; decided once per process from where the tool links to.
pub(crate) fn is_nft(family: Family) -> bool {
    static V4: OnceLock<bool> = OnceLock::new();
    static V6: OnceLock<bool> = OnceLock::new();
    let (cell, tool) = match family {
        Family::V4 => (&V4, crate::names::IPTABLES_RESTORE),
        Family::V6 => (&V6, crate::names::IP6TABLES_RESTORE),
    };
    *cell.get_or_init(|| {
        crate::exec::locate(tool)
            .and_then(|path| std::fs::canonicalize(path).ok())
            .and_then(|path| Some(path.file_name()?.to_str()?.contains("nft")))
            .unwrap_or(false)
    })
}

/// Applies the `-N`/`-A`/`-I 1`/`-C` lines of `table` over netlink in one nf_tables
/// transaction. `false`: not attempted (see the module docs), a checked rule missing, or
/// refused by the kernel, so nothing changed and the caller runs `iptables-restore`.
pub(crate) fn apply(family: Family, table: &str, lines: &[String]) -> bool {
    if crate::nf::rules::off() || !is_nft(family) {
        return false;
    }
    let Some(tx) = encode_lines(family, table, lines) else {
        return false;
    };
    let Ok(mut socket) = NfSocket::open() else {
        return false;
    };
    let done = commit(&mut socket, family, table, tx);
    crate::nf::linger::keep(socket);
    done.unwrap_or(false)
}

/// Runs the checks of `tx`, then, when every checked rule is there, its changes, at the
/// generation the checks saw. `Ok(false)`: a checked rule is missing; nothing changed.
fn commit(socket: &mut NfSocket, family: Family, table: &str, tx: Transaction) -> io::Result<bool> {
    let genid = if tx.checks.is_empty() {
        None
    } else {
        let genid = generation(socket)?;
        let mut dumped: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
        for (chain, wanted) in &tx.checks {
            if !dumped.iter().any(|(c, _)| c == chain) {
                let rules = dump_rules(socket, family.table_family(), table, chain)?
                    .into_iter()
                    .map(|(_, rule)| {
                        find(&rule, NFTA_RULE_EXPRESSIONS).map_or_else(Vec::new, zero_counters)
                    })
                    .collect();
                dumped.push((chain, rules));
            }
            let rules = dumped.iter().find(|(c, _)| c == chain).map(|(_, r)| r);
            if !rules.is_some_and(|r| r.contains(wanted)) {
                return Ok(false);
            }
        }
        Some(genid)
    };
    if tx.messages.is_empty() {
        return Ok(true);
    }
    transact_at(socket, family.table_family(), tx.messages, genid)?;
    Ok(true)
}

/// An expression list with every counter's values zeroed, as this module writes them.
fn zero_counters(list: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len());
    for (_, elem, whole) in attrs(list) {
        if find(elem, NFTA_EXPR_NAME) == Some(b"counter\0".as_slice()) {
            counter(&mut out);
        } else {
            out.extend_from_slice(whole);
            out.resize(crate::nf::socket::align(out.len()), 0);
        }
    }
    out
}

/// What a script asks: rules that must be there (`-C`: chain, expressions), and the
/// batch messages (kind, flags, body) of its changes.
#[derive(Default)]
struct Transaction {
    checks: Vec<(String, Vec<u8>)>,
    messages: Vec<(u16, u16, Vec<u8>)>,
}

/// The transaction of `lines`, or `None` when one of them is not understood.
fn encode_lines(family: Family, table: &str, lines: &[String]) -> Option<Transaction> {
    let mut tx = Transaction::default();
    for line in lines {
        let words = split_words(line)?;
        let (op, rest) = words.split_first()?;
        let (chain, args) = rest.split_first()?;
        match op.as_str() {
            "-N" if args.is_empty() => {
                let mut body = Vec::new();
                attr_str(&mut body, NFTA_CHAIN_TABLE, table);
                attr_str(&mut body, NFTA_CHAIN_NAME, chain);
                tx.messages
                    .push((NFT_NEWCHAIN, NLM_F_CREATE | NLM_F_EXCL, body));
            }
            "-A" => tx.messages.push((
                NFT_NEWRULE,
                NLM_F_CREATE | NLM_F_APPEND,
                rule(family, table, chain, args)?,
            )),
            "-I" if args.first().is_some_and(|p| p == "1") => {
                tx.messages.push((
                    NFT_NEWRULE,
                    NLM_F_CREATE,
                    rule(family, table, chain, &args[1..])?,
                ));
            }
            "-C" => tx
                .checks
                .push((chain.clone(), expressions(family, args)?.0)),
            _ => return None,
        }
    }
    Some(tx)
}

/// A `NEWRULE` body for `-A chain args`.
fn rule(family: Family, table: &str, chain: &str, args: &[String]) -> Option<Vec<u8>> {
    let (exprs, proto) = expressions(family, args)?;
    let mut body = Vec::new();
    attr_str(&mut body, NFTA_RULE_TABLE, table);
    attr_str(&mut body, NFTA_RULE_CHAIN, chain);
    nest(&mut body, NFTA_RULE_EXPRESSIONS, |list| {
        list.extend_from_slice(&exprs)
    });
    // The protocol xt matches check against (multiport needs tcp or udp), as the
    // `struct ipt_entry` they were written for would carry it; no dump shows it.
    if let Some(proto) = proto {
        nest(&mut body, NFTA_RULE_COMPAT, |c| {
            u32_attr(c, NFTA_RULE_COMPAT_PROTO, u32::from(proto));
            u32_attr(c, NFTA_RULE_COMPAT_FLAGS, 0);
        });
    }
    Some(body)
}

/// What one rule says, in the order iptables-nft encodes it: protocol, source,
/// destination, matches in the order given, counter, target.
#[derive(Default)]
struct Parsed {
    proto: Option<u8>,
    src: Option<(IpNetwork, bool)>,
    dst: Option<(IpNetwork, bool)>,
    matches: Vec<Vec<u8>>,
    target: Option<Vec<u8>>,
}

/// The rule's expressions, and its protocol when it names one.
fn expressions(family: Family, args: &[String]) -> Option<(Vec<u8>, Option<u8>)> {
    let mut p = Parsed::default();
    let mut words = args.iter().map(String::as_str).peekable();
    let mut invert = false;
    while let Some(word) = words.next() {
        match word {
            "!" => {
                invert = true;
                continue;
            }
            "-s" | "-d" => {
                let net: IpNetwork = words.next()?.parse().ok()?;
                if Family::of(net.ip()) != family {
                    return None;
                }
                let slot = if word == "-s" { &mut p.src } else { &mut p.dst };
                *slot = Some((net, invert));
            }
            "-p" if !invert => {
                p.proto = Some(match words.next()? {
                    "tcp" => 6,
                    "udp" => 17,
                    _ => return None,
                });
            }
            "-m" if !invert => {
                let m = match_expr(words.next()?, &mut words, p.proto)?;
                p.matches.push(m);
            }
            "-j" if !invert => p.target = Some(target(family, &mut words)?),
            _ => return None,
        }
        invert = false;
    }
    if invert {
        return None;
    }
    let mut out = Vec::new();
    if let Some(proto) = p.proto {
        expr(&mut out, "meta", |d| {
            u32_attr(d, 2, NFT_META_L4PROTO);
            u32_attr(d, 1, REG_1);
        });
        cmp(&mut out, false, &[proto]);
    }
    let (src_at, dst_at) = match family {
        Family::V4 => (12, 16),
        Family::V6 => (8, 24),
    };
    for (at, side) in [(src_at, p.src), (dst_at, p.dst)] {
        if let Some((net, invert)) = side {
            address(&mut out, at, net, invert);
        }
    }
    for m in &p.matches {
        out.extend_from_slice(m);
    }
    counter(&mut out);
    out.extend_from_slice(&p.target?);
    Some((out, p.proto))
}

/// `-s`/`-d`: the prefix's whole bytes compared as they are, any partial byte masked
/// first; `/0` matches everything and is left out, as iptables does.
fn address(out: &mut Vec<u8>, offset: u32, net: IpNetwork, invert: bool) {
    let bytes = match net.network() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    let prefix = usize::from(net.prefix());
    if prefix == 0 {
        return;
    }
    if prefix % 8 == 0 {
        let len = prefix / 8;
        payload(out, NFT_PAYLOAD_NETWORK_HEADER, offset, len);
        cmp(out, invert, &bytes[..len]);
    } else {
        let len = bytes.len();
        payload(out, NFT_PAYLOAD_NETWORK_HEADER, offset, len);
        let mask: Vec<u8> = (0..len)
            .map(|i| {
                let bits = prefix.saturating_sub(i * 8).min(8);
                (0xffu16 << (8 - bits)) as u8
            })
            .collect();
        bitwise(out, &mask, len);
        cmp(out, invert, &bytes);
    }
}

fn match_expr<'a>(
    name: &str,
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    proto: Option<u8>,
) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match name {
        "tcp" | "udp" => {
            if proto != Some(if name == "tcp" { 6 } else { 17 }) || words.next()? != "--dport" {
                return None;
            }
            let port: u16 = words.next()?.parse().ok()?;
            payload(&mut out, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
            cmp(&mut out, false, &port.to_be_bytes());
        }
        "comment" => {
            if words.next()? != "--comment" {
                return None;
            }
            let text = words.next()?.as_bytes();
            // XT_MAX_COMMENT_LEN, NUL included.
            if text.len() >= 256 {
                return None;
            }
            let mut info = vec![0u8; 256];
            info[..text.len()].copy_from_slice(text);
            xt(&mut out, "match", "comment", 0, &info);
        }
        "multiport" => {
            if words.next()? != "--dports" {
                return None;
            }
            let ports: Vec<u16> = words
                .next()?
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            if ports.is_empty() || ports.len() > MULTIPORT_MAX {
                return None;
            }
            // struct xt_multiport_v1: flags, count, ports[15], pflags[15], invert.
            let mut info = vec![0u8; 48];
            info[0] = MULTIPORT_DESTINATION;
            info[1] = u8::try_from(ports.len()).ok()?;
            for (i, port) in ports.iter().enumerate() {
                info[2 + 2 * i..4 + 2 * i].copy_from_slice(&port.to_ne_bytes());
            }
            xt(&mut out, "match", "multiport", 1, &info);
        }
        "mark" => {
            if words.next()? != "--mark" {
                return None;
            }
            let (mark, mask) = mark_and_mask(words.next()?)?;
            expr(&mut out, "meta", |d| {
                u32_attr(d, 2, NFT_META_MARK);
                u32_attr(d, 1, REG_1);
            });
            bitwise(&mut out, &mask.to_ne_bytes(), 4);
            cmp(&mut out, false, &mark.to_ne_bytes());
        }
        "addrtype" => {
            if words.next()? != "--dst-type" || words.next()? != "LOCAL" {
                return None;
            }
            // struct xt_addrtype_info_v1: source, dest, flags.
            let mut info = vec![0u8; 8];
            info[2..4].copy_from_slice(&ADDRTYPE_LOCAL.to_ne_bytes());
            xt(&mut out, "match", "addrtype", 1, &info);
        }
        "conntrack" => {
            if words.next()? != "--ctstate" || words.next()? != "RELATED,ESTABLISHED" {
                return None;
            }
            // struct xt_conntrack_mtinfo3: eight addresses and masks, expiry, ports, then
            // match_flags (146), invert_flags, state_mask (150), ...
            let mut info = vec![0u8; 168];
            info[146..148].copy_from_slice(&CONNTRACK_STATE.to_ne_bytes());
            info[150..152].copy_from_slice(&(CT_ESTABLISHED | CT_RELATED).to_ne_bytes());
            xt(&mut out, "match", "conntrack", 3, &info);
        }
        _ => return None,
    }
    Some(out)
}

fn target<'a>(
    family: Family,
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
) -> Option<Vec<u8>> {
    let name = words.next()?;
    let mut out = Vec::new();
    match name {
        "ACCEPT" => verdict(&mut out, NF_ACCEPT, None),
        "MASQUERADE" => {
            let (rev, info) = match family {
                Family::V4 => (0, nat_v4_compat(None)),
                Family::V6 => (0, nat_range(None, None, NAT_RANGE_LEN)),
            };
            xt(&mut out, "target", "MASQUERADE", rev, &info);
        }
        "SNAT" => {
            if words.next()? != "--to-source" {
                return None;
            }
            let (rev, info) = match (family, words.next()?.parse().ok()?) {
                (Family::V4, IpAddr::V4(ip)) => (0, nat_v4_compat(Some(ip))),
                (Family::V6, ip @ IpAddr::V6(_)) => (1, nat_range(Some(ip), None, NAT_RANGE_LEN)),
                _ => return None,
            };
            xt(&mut out, "target", "SNAT", rev, &info);
        }
        "DNAT" => {
            if words.next()? != "--to-destination" {
                return None;
            }
            let (host, port) = words.next()?.rsplit_once(':')?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            let ip: IpAddr = host.parse().ok()?;
            if Family::of(ip) != family {
                return None;
            }
            let info = nat_range(Some(ip), Some(port.parse().ok()?), NAT_RANGE2_LEN);
            xt(&mut out, "target", "DNAT", 2, &info);
        }
        "MARK" => {
            if words.next()? != "--set-xmark" {
                return None;
            }
            let (mark, mask) = mark_and_mask(words.next()?)?;
            // struct xt_mark_tginfo2: mark, mask.
            let mut info = Vec::with_capacity(8);
            info.extend_from_slice(&mark.to_ne_bytes());
            info.extend_from_slice(&mask.to_ne_bytes());
            xt(&mut out, "target", "MARK", 2, &info);
        }
        chain if chain.starts_with("CNI-") => verdict(&mut out, NFT_JUMP, Some(chain)),
        _ => return None,
    }
    // Options after the target are not ours.
    if words.peek().is_some() {
        return None;
    }
    Some(out)
}

/// `struct nf_nat_ipv4_multi_range_compat` with one range (v4 MASQUERADE and SNAT): the
/// address, when given, as its minimum and maximum.
fn nat_v4_compat(ip: Option<std::net::Ipv4Addr>) -> Vec<u8> {
    let mut info = vec![0u8; 24];
    info[..4].copy_from_slice(&1u32.to_ne_bytes());
    if let Some(ip) = ip {
        info[4..8].copy_from_slice(&NAT_MAP_IPS.to_ne_bytes());
        info[8..12].copy_from_slice(&ip.octets());
        info[12..16].copy_from_slice(&ip.octets());
    }
    info
}

/// `struct nf_nat_range` (`len` [`NAT_RANGE_LEN`]) or `nf_nat_range2` (one more port,
/// padded: [`NAT_RANGE2_LEN`]): flags, the address as minimum and maximum, the port as
/// minimum and maximum (network order).
fn nat_range(ip: Option<IpAddr>, port: Option<u16>, len: usize) -> Vec<u8> {
    let mut info = vec![0u8; len];
    let mut flags = 0;
    if let Some(ip) = ip {
        flags |= NAT_MAP_IPS;
        // `union nf_inet_addr`: an IPv4 address in its first four bytes.
        let addr = match ip {
            IpAddr::V4(v4) => {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&v4.octets());
                a
            }
            IpAddr::V6(v6) => v6.octets(),
        };
        info[4..20].copy_from_slice(&addr);
        info[20..36].copy_from_slice(&addr);
    }
    if let Some(port) = port {
        flags |= NAT_PROTO_SPECIFIED;
        info[36..38].copy_from_slice(&port.to_be_bytes());
        info[38..40].copy_from_slice(&port.to_be_bytes());
    }
    info[..4].copy_from_slice(&flags.to_ne_bytes());
    info
}

/// `0x2000/0x2000`.
fn mark_and_mask(text: &str) -> Option<(u32, u32)> {
    let (mark, mask) = text.split_once('/')?;
    let hex = |s: &str| u32::from_str_radix(s.strip_prefix("0x")?, 16).ok();
    Some((hex(mark)?, hex(mask)?))
}

fn expr(out: &mut Vec<u8>, name: &str, data: impl FnOnce(&mut Vec<u8>)) {
    nest(out, NFTA_LIST_ELEM, |e| {
        attr_str(e, NFTA_EXPR_NAME, name);
        nest(e, NFTA_EXPR_DATA, data);
    });
}

/// A nested attribute as the kernel dumps rules: without `NLA_F_NESTED`, so a rule
/// written here has the bytes of its dump (which `-C` compares).
fn nest(buf: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    attr(buf, kind, &inner);
}

fn counter(out: &mut Vec<u8>) {
    expr(out, "counter", |d| {
        attr(d, 1, &0u64.to_be_bytes());
        attr(d, 2, &0u64.to_be_bytes());
    });
}

fn u32_attr(buf: &mut Vec<u8>, kind: u16, value: u32) {
    attr(buf, kind, &value.to_be_bytes());
}

fn payload(out: &mut Vec<u8>, base: u32, offset: u32, len: usize) {
    expr(out, "payload", |d| {
        u32_attr(d, 1, REG_1);
        u32_attr(d, 2, base);
        u32_attr(d, 3, offset);
        u32_attr(d, 4, u32::try_from(len).unwrap_or(0));
    });
}

fn cmp(out: &mut Vec<u8>, invert: bool, value: &[u8]) {
    expr(out, "cmp", |d| {
        u32_attr(d, 1, REG_1);
        u32_attr(d, 2, u32::from(invert));
        nest(d, 3, |v| attr(v, NFTA_DATA_VALUE, value));
    });
}

fn bitwise(out: &mut Vec<u8>, mask: &[u8], len: usize) {
    expr(out, "bitwise", |d| {
        u32_attr(d, 1, REG_1);
        u32_attr(d, 2, REG_1);
        u32_attr(d, 3, u32::try_from(len).unwrap_or(0));
        // NFT_BITWISE_BOOL, where the kernel's dump has it.
        u32_attr(d, 6, 0);
        nest(d, 4, |v| attr(v, NFTA_DATA_VALUE, mask));
        nest(d, 5, |v| attr(v, NFTA_DATA_VALUE, &vec![0u8; len]));
    });
}

fn xt(out: &mut Vec<u8>, kind: &str, name: &str, rev: u32, info: &[u8]) {
    expr(out, kind, |d| {
        attr_str(d, 1, name);
        u32_attr(d, 2, rev);
        attr(d, 3, info);
    });
}

fn verdict(out: &mut Vec<u8>, code: i32, chain: Option<&str>) {
    expr(out, "immediate", |d| {
        u32_attr(d, 1, REG_VERDICT);
        nest(d, 2, |data| {
            nest(data, NFTA_DATA_VERDICT, |v| {
                attr(v, NFTA_VERDICT_CODE, &code.to_be_bytes());
                if let Some(chain) = chain {
                    attr_str(v, NFTA_VERDICT_CHAIN, chain);
                }
            });
        });
    });
}

/// Whether `lines` are within what this module writes (tests).
#[cfg(test)]
pub(crate) fn understood(family: Family, table: &str, lines: &[String]) -> bool {
    encode_lines(family, table, lines).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nf::rules::dump_rules;
    use crate::nf::socket::attrs;
    use crate::testutil::{in_private_netns, run_tool, succeeds as run_tool_ok};

    /// Every rule form our ADDs write, as our rule builders print them.
    fn nat_v4() -> Vec<String> {
        [
            "-N CNI-abc",
            r#"-A CNI-abc -d 10.237.0.0/24 -m comment --comment "name: \"n\" id: \"c\"" -j ACCEPT"#,
            r#"-A CNI-abc ! -d 224.0.0.0/4 -m comment --comment "name: \"n\" id: \"c\"" -j MASQUERADE"#,
            r#"-A CNI-abc ! -d 224.0.0.0/4 -m comment --comment "x" -j SNAT --to-source 192.0.2.9"#,
            "-A CNI-abc -d 10.1.0.0/20 -j ACCEPT",
            r#"-A POSTROUTING -s 10.237.0.2/32 -m comment --comment "name: \"n\" id: \"c\"" -j CNI-abc"#,
            "-N CNI-HOSTPORT-SETMARK",
            "-N CNI-HOSTPORT-MASQ",
            "-N CNI-HOSTPORT-DNAT",
            "-N CNI-DN-x",
            r#"-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000"#,
            "-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE",
            "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
            "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
            r#"-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ"#,
            "-A CNI-DN-x -s 10.237.0.0/24 -p tcp -m tcp --dport 18080 -j CNI-HOSTPORT-SETMARK",
            "-A CNI-DN-x -s 127.0.0.1/32 -p tcp -m tcp --dport 18080 -j CNI-HOSTPORT-SETMARK",
            "-A CNI-DN-x -d 192.0.2.1/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.237.0.2:5353",
            "-A CNI-DN-x -p tcp -m tcp --dport 18080 -j DNAT --to-destination 10.237.0.2:80",
            r#"-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"n\" id: \"c\"" -m multiport --dports 18080,18081 -j CNI-DN-x"#,
            r#"-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \"n\" id: \"c\"" -m multiport --dports 53 -j CNI-DN-x"#,
        ]
        .map(String::from)
        .to_vec()
    }

    fn nat_v6() -> Vec<String> {
        [
            "-N CNI-abc",
            r#"-A CNI-abc -d fd00:1::/64 -m comment --comment "c" -j ACCEPT"#,
            r#"-A CNI-abc ! -d ff00::/8 -m comment --comment "c" -j MASQUERADE"#,
            "-A CNI-abc -d fd00:2::/60 -j ACCEPT",
            "-A CNI-abc ! -d ff00::/8 -j SNAT --to-source fd00::9",
            r#"-A POSTROUTING -s fd00:1::2/128 -m comment --comment "c" -j CNI-abc"#,
            "-N CNI-DN-x",
            "-A CNI-DN-x -s fd00:1::/64 -p tcp -m tcp --dport 8080 -j CNI-abc",
            "-A CNI-DN-x -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:1::2]:80",
        ]
        .map(String::from)
        .to_vec()
    }

    fn filter_v4() -> Vec<String> {
        [
            "-N CNI-FORWARD",
            "-N CNI-ADMIN",
            r#"-I FORWARD 1 -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD"#,
            r#"-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN"#,
            "-A CNI-FORWARD -d 10.237.0.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "-A CNI-FORWARD -s 10.237.0.2/32 -j ACCEPT",
        ]
        .map(String::from)
        .to_vec()
    }

    fn chains(table: &str, lines: &[String]) -> Vec<String> {
        let mut out: Vec<String> = match table {
            "nat" => ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"].as_slice(),
            _ => ["INPUT", "FORWARD", "OUTPUT"].as_slice(),
        }
        .iter()
        .map(|c| (*c).to_string())
        .collect();
        for line in lines {
            if let Some(chain) = line.strip_prefix("-N ") {
                out.push(chain.to_string());
            }
        }
        out
    }

    /// A rule as dumped: its chain and attributes (type, payload).
    type Dumped = (String, Vec<(u16, Vec<u8>)>);

    /// Every rule of `chains`, in order, without its handle and position.
    fn dump(family: Family, table: &str, chains: &[String]) -> Vec<Dumped> {
        let mut socket = NfSocket::open().expect("netfilter socket");
        let mut out = Vec::new();
        for chain in chains {
            for (_, rule) in
                dump_rules(&mut socket, family.table_family(), table, chain).expect("dump")
            {
                let kept = attrs(&rule)
                    .into_iter()
                    .filter(|(kind, _, _)| !matches!(kind, 3 | 6))
                    .map(|(kind, value, _)| (kind, value.to_vec()))
                    .collect();
                out.push((chain.clone(), kept));
            }
        }
        out
    }

    fn save(family: Family, table: &str) -> Vec<String> {
        let tool = match family {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        };
        run_tool(tool, &["-t", table])
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(String::from)
            .collect()
    }

    fn same_as_iptables_nft(family: Family, table: &'static str, lines: Vec<String>) {
        in_private_netns("same_as_iptables_nft", move || {
            if !is_nft(family) {
                eprintln!("SKIP: iptables is not iptables-nft here");
                return;
            }
            assert!(understood(family, table, &lines), "{lines:?}");
            let (restore, tool) = match family {
                Family::V4 => ("iptables-restore", "iptables"),
                Family::V6 => ("ip6tables-restore", "ip6tables"),
            };
            let script = format!("*{table}\n{}\nCOMMIT\n", lines.join("\n"));
            crate::testutil::run_with_stdin(restore, &["--noflush"], &script);
            let chains = chains(table, &lines);
            let (theirs, their_text) = (dump(family, table, &chains), save(family, table));
            // Only ours go: iptables-nft makes a base chain when a rule first needs it,
            // and `-F`/`-X` of the whole table would remove them too.
            for chain in &chains {
                run_tool_ok(tool, &["-t", table, "-F", chain]);
            }
            for chain in chains.iter().filter(|c| c.starts_with("CNI-")) {
                run_tool(tool, &["-t", table, "-X", chain]);
            }
            assert!(apply(family, table, &lines), "written over netlink");
            let ours = dump(family, table, &chains);
            assert_eq!(ours.len(), theirs.len());
            for (ours, theirs) in ours.iter().zip(&theirs) {
                let hex = |r: &Dumped| {
                    let mut t = r.0.clone();
                    for (k, v) in &r.1 {
                        t.push_str(&format!(" {k}:"));
                        t.extend(v.iter().map(|b| format!("{b:02x}")));
                    }
                    t
                };
                assert_eq!(hex(ours), hex(theirs));
            }
            assert_eq!(save(family, table), their_text);
            // Our own `-C` finds every rule, and not one that is not there.
            let checks: Vec<String> = lines
                .iter()
                .filter(|l| !l.starts_with("-N"))
                .map(|l| {
                    let words = split_words(l).expect("words");
                    let at = if words[0] == "-I" { 3 } else { 2 };
                    format!(
                        "-C {} {}",
                        words[1],
                        l.splitn(at + 1, ' ').nth(at).unwrap_or("")
                    )
                })
                .collect();
            assert!(apply(family, table, &checks), "{checks:?}");
            let missing = format!("{} -m comment --comment nothing-like-it", checks[0]);
            assert!(!apply(family, table, &[missing]));
            // And the tool reads ours back: `iptables -C` finds every rule.
            for line in lines.iter().filter(|l| !l.starts_with("-N")) {
                let words = split_words(line).expect("words");
                let (chain, args) = match words[0].as_str() {
                    "-I" => (&words[1], &words[3..]),
                    _ => (&words[1], &words[2..]),
                };
                let mut check = vec!["-t", table, "-C", chain.as_str()];
                check.extend(args.iter().map(String::as_str));
                run_tool(tool, &check);
            }
        });
    }

    #[test]
    fn nat_rules_are_written_as_iptables_nft_writes_them() {
        same_as_iptables_nft(Family::V4, "nat", nat_v4());
        same_as_iptables_nft(Family::V6, "nat", nat_v6());
    }

    #[test]
    fn filter_rules_are_written_as_iptables_nft_writes_them() {
        same_as_iptables_nft(Family::V4, "filter", filter_v4());
    }

    #[test]
    fn anything_else_is_left_to_the_tool() {
        for line in [
            "-D CNI-x -j ACCEPT",
            ":CNI-x - [0:0]",
            "-A CNI-x -p sctp -m sctp --dport 1 -j ACCEPT",
            "-A CNI-x -m comment --comment x -j DROP",
            "-A CNI-x -s 10.0.0.1/32 -j MASQUERADE --to-ports 1",
            "-A CNI-x -s fd00::1/128 -j ACCEPT",
            "-A CNI-x -i eth0 -j ACCEPT",
            "-I CNI-x 2 -j ACCEPT",
            "-A CNI-x ! -p tcp -j ACCEPT",
        ] {
            assert!(
                !understood(Family::V4, "nat", &[line.to_string()]),
                "{line}"
            );
        }
        assert!(understood(
            Family::V4,
            "nat",
            &["-A CNI-x -j ACCEPT".to_string()]
        ));
    }
}
