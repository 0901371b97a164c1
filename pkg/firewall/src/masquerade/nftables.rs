//! nftables masquerade, identical to the reference (`pkg/ip/ipmasq_nftables_linux.go`, v1.6+):
//!
//! ```text
//! table inet cni_plugins_masquerade {
//!     chain masq_checks {
//!         ip saddr <ip> ip daddr != <subnet> masquerade comment "<h16(net)>-<h16(if:cid)>, net: .."
//!     }
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip daddr 224.0.0.0/4 return
//!         ip6 daddr ff00::/8 return
//!         goto masq_checks
//!     }
//! }
//! ```
//!
//! A change is one read of `masq_checks` (to find the handles of our rules) plus one
//! `nft -f -` batch; nft can only delete a rule by handle.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde_json::Value;

use super::{Masquerade, MasqueradeRule, validate_all};
use crate::error::{Error, Result};
use crate::iptables::is_missing;
use crate::names::{
    self, IPV4_MULTICAST, IPV6_MULTICAST, NFT_FAMILY_INET, NFT_MASQ_CHAIN, NFT_MASQ_CHAIN_COMMENT,
    NFT_MASQ_TABLE, NFT_MASQ_TABLE_COMMENT, NFT_POSTROUTING_CHAIN,
};
use crate::nft::{self, Batch, ListedRule};

/// The nftables backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct NftablesMasquerade;

fn table() -> String {
    format!("{NFT_FAMILY_INET} {NFT_MASQ_TABLE}")
}

fn table_what() -> String {
    format!("table {}", table())
}

/// `ip` or `ip6`, the payload protocol matching an address of this kind.
fn protocol(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// The rule text the reference passes to knftables for one address; for the ipmasq
/// plugin, with a `daddr !=` match per excluded subnet and `snat` instead of `masquerade`.
fn rule_body(rule: &MasqueradeRule) -> String {
    let proto = protocol(rule.ip());
    let mut body = format!(
        "{proto} saddr == {} {proto} daddr != {}",
        rule.ip(),
        rule.subnet()
    );
    for net in rule.exclude_of_family() {
        body.push_str(&format!(" {proto} daddr != {net}"));
    }
    match rule.snat_of_family() {
        Some(source) => body.push_str(&format!(" snat {proto} to {source}")),
        None => body.push_str(" masquerade"),
    }
    body
}

fn comment(rule: &MasqueradeRule) -> String {
    names::nft_masquerade_comment(&rule.network, &rule.ifname, &rule.container_id)
}

/// The distinct attachments (`<h16(net)>-<h16(if:cid)>` comment prefixes) among `rules`.
fn instance_hashes(rules: &[MasqueradeRule]) -> Vec<String> {
    let mut hashes: Vec<String> = Vec::new();
    for rule in rules {
        let hash = names::nft_instance_hash(&rule.network, &rule.ifname, &rule.container_id);
        if !hashes.contains(&hash) {
            hashes.push(hash);
        }
    }
    hashes
}

/// Handles of listed rules whose comment starts with one of `prefixes`.
fn handles_with_prefix(listed: &[ListedRule], prefixes: &[String]) -> Vec<u64> {
    listed
        .iter()
        .filter(|r| {
            r.comment
                .as_deref()
                .is_some_and(|c| prefixes.iter().any(|p| c.starts_with(p.as_str())))
        })
        .map(|r| r.handle)
        .collect()
}

/// The rules of `masq_checks`; an absent table or chain has none.
fn list_masq_checks() -> Result<Vec<ListedRule>> {
    Ok(nft::list(NFT_FAMILY_INET, NFT_MASQ_TABLE, Some(NFT_MASQ_CHAIN))?.unwrap_or_default())
}

/// The ADD batch: table and chains (created if missing), `postrouting` flushed and rebuilt,
/// `stale` rules deleted, one rule per address added.
fn add_batch(rules: &[MasqueradeRule], stale: &[u64]) -> Result<Batch> {
    let t = table();
    let mut batch = Batch::new();
    batch.push(format!(
        "add table {t} {{ comment {} ; }}",
        nft::quote(NFT_MASQ_TABLE_COMMENT)?
    ));
    batch.push(format!(
        "add chain {t} {NFT_MASQ_CHAIN} {{ comment {} ; }}",
        nft::quote(NFT_MASQ_CHAIN_COMMENT)?
    ));
    // After masq_checks exists, so the goto below resolves.
    batch.push(format!(
        "add chain {t} {NFT_POSTROUTING_CHAIN} {{ type nat hook postrouting priority srcnat ; }}"
    ));
    batch.push(format!("flush chain {t} {NFT_POSTROUTING_CHAIN}"));
    batch.push(format!(
        "add rule {t} {NFT_POSTROUTING_CHAIN} ip daddr == {IPV4_MULTICAST} return"
    ));
    batch.push(format!(
        "add rule {t} {NFT_POSTROUTING_CHAIN} ip6 daddr == {IPV6_MULTICAST} return"
    ));
    batch.push(format!(
        "add rule {t} {NFT_POSTROUTING_CHAIN} goto {NFT_MASQ_CHAIN}"
    ));
    for handle in stale {
        batch.push(format!("delete rule {t} {NFT_MASQ_CHAIN} handle {handle}"));
    }
    let mut added: Vec<(String, String)> = Vec::new();
    for rule in rules {
        let line = (rule_body(rule), comment(rule));
        if added.contains(&line) {
            continue;
        }
        batch.push(format!(
            "add rule {t} {NFT_MASQ_CHAIN} {} comment {}",
            line.0,
            nft::quote(&line.1)?
        ));
        added.push(line);
    }
    Ok(batch)
}

/// Deletes rules of `masq_checks` by handle.
fn delete_batch(handles: &[u64]) -> Batch {
    let t = table();
    let mut batch = Batch::new();
    for handle in handles {
        batch.push(format!("delete rule {t} {NFT_MASQ_CHAIN} handle {handle}"));
    }
    batch
}

/// Deletes listed rules, each from its own chain. Chain names come from our own table's
/// listing; a name that is not a plain identifier cannot be written back and is refused.
fn delete_listed_batch(rules: &[&ListedRule]) -> Result<Batch> {
    let t = table();
    let mut batch = Batch::new();
    for rule in rules {
        if !nft::is_identifier(&rule.chain) {
            return Err(Error::invalid(format!(
                "chain {:?} of {} cannot be named in an nft command",
                rule.chain,
                table_what()
            )));
        }
        batch.push(format!(
            "delete rule {t} {} handle {}",
            rule.chain, rule.handle
        ));
    }
    Ok(batch)
}

/// The right-hand side of the `<proto> <field>` match in a listed rule's expression.
/// The right-hand sides of the `op` matches on payload `field`, in rule order.
fn matches_of<'a>(expr: &'a Value, field: &str, op: &str) -> Vec<&'a Value> {
    expr.as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let m = e.get("match")?;
            let payload = m.get("left")?.get("payload")?;
            let wanted = payload.get("field")?.as_str()? == field
                && m.get("op").and_then(Value::as_str).unwrap_or("==") == op;
            wanted.then(|| m.get("right")).flatten()
        })
        .collect()
}

/// A listed address or prefix (`"10.1.2.3"` or `{"prefix": {"addr", "len"}}`).
fn network_of(v: &Value) -> Option<IpNetwork> {
    if let Some(addr) = v.as_str() {
        return addr.parse::<IpAddr>().ok().map(IpNetwork::from);
    }
    let p = v.get("prefix")?;
    let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
    IpNetwork::new(addr, u8::try_from(p.get("len")?.as_u64()?).ok()?).ok()
}

/// Whether a listed rule masquerades (or SNATs) `rule`'s address for destinations outside
/// its subnet and its excluded subnets.
fn matches(listed: &ListedRule, rule: &MasqueradeRule) -> bool {
    let saddr = matches_of(&listed.expr, "saddr", "==")
        .first()
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse::<IpAddr>().ok());
    // The own subnet first, then the excluded ones in any order.
    let daddrs: Vec<Option<IpNetwork>> = matches_of(&listed.expr, "daddr", "!=")
        .into_iter()
        .map(network_of)
        .collect();
    let Some((first, rest)) = daddrs.split_first() else {
        return false;
    };
    let mut rest = rest.to_vec();
    rest.sort_unstable();
    let mut excluded: Vec<Option<IpNetwork>> =
        rule.exclude_of_family().copied().map(Some).collect();
    excluded.sort_unstable();
    let statements = listed
        .expr
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let acts = match rule.snat_of_family() {
        Some(source) => statements.iter().any(|e| {
            e.get("snat")
                .and_then(|s| s.get("addr"))
                .and_then(Value::as_str)
                .and_then(|a| a.parse::<IpAddr>().ok())
                == Some(source)
        }),
        None => statements.iter().any(|e| e.get("masquerade").is_some()),
    };
    saddr == Some(rule.ip()) && *first == Some(rule.subnet()) && rest == excluded && acts
}

fn goes_to_masq_checks(listed: &ListedRule) -> bool {
    listed.expr.as_array().is_some_and(|a| {
        a.iter().any(|e| {
            e.get("goto")
                .and_then(|g| g.get("target"))
                .and_then(Value::as_str)
                == Some(NFT_MASQ_CHAIN)
        })
    })
}

impl Masquerade for NftablesMasquerade {
    fn add(&self, rules: &[MasqueradeRule]) -> Result<()> {
        validate_all(rules)?;
        if rules.is_empty() {
            return Ok(());
        }
        let what = || format!("adding masquerade rules to {}", table_what());
        let listed = list_masq_checks().map_err(|e| e.context(what()))?;
        let stale = handles_with_prefix(&listed, &instance_hashes(rules));
        add_batch(rules, &stale)?.apply(&what())
    }

    fn del(&self, rules: &[MasqueradeRule]) -> Result<()> {
        validate_all(rules)?;
        if rules.is_empty() {
            return Ok(());
        }
        let what = || format!("removing masquerade rules from {}", table_what());
        // Usually the table is not there at all (the iptables backend is the default): one
        // dump says so without an `nft` process.
        if crate::nf::rules::chain_is_empty(
            crate::nf::rules::TableFamily::Inet,
            NFT_MASQ_TABLE,
            crate::names::NFT_MASQ_CHAIN,
        )
        .unwrap_or(false)
        {
            return Ok(());
        }
        let listed = match list_masq_checks() {
            Ok(listed) => listed,
            // No nft at all: nothing of ours can exist (the reference ignores it too).
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e.context(what())),
        };
        let handles = handles_with_prefix(&listed, &instance_hashes(rules));
        if handles.is_empty() {
            return Ok(());
        }
        delete_batch(&handles).apply(&what())
    }

    fn check(&self, rules: &[MasqueradeRule]) -> Result<()> {
        validate_all(rules)?;
        if rules.is_empty() {
            return Ok(());
        }
        let what = format!("checking masquerade rules in {}", table_what());
        let Some(listed) =
            nft::list(NFT_FAMILY_INET, NFT_MASQ_TABLE, None).map_err(|e| e.context(&what))?
        else {
            return Err(Error::check(format!("{} does not exist", table_what())));
        };
        if !listed
            .iter()
            .any(|r| r.chain == NFT_POSTROUTING_CHAIN && goes_to_masq_checks(r))
        {
            return Err(Error::check(format!(
                "chain {NFT_POSTROUTING_CHAIN} of {} does not go to {NFT_MASQ_CHAIN}",
                table_what()
            )));
        }
        for rule in rules {
            let expected = comment(rule);
            let found = listed.iter().any(|r| {
                r.chain == NFT_MASQ_CHAIN
                    && r.comment.as_deref() == Some(expected.as_str())
                    && matches(r, rule)
            });
            if !found {
                return Err(Error::check(format!(
                    "chain {NFT_MASQ_CHAIN} of {} lacks `{}` with comment {expected:?}",
                    table_what(),
                    rule_body(rule)
                )));
            }
        }
        Ok(())
    }

    fn gc(&self, network: &str, keep: &[(String, String)]) -> Result<()> {
        let what = || {
            format!(
                "removing stale masquerade rules of network {network:?} from {}",
                table_what()
            )
        };
        let listed = match list_masq_checks() {
            Ok(listed) => listed,
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e.context(what())),
        };
        let prefix = format!("{}-", names::nft_network_hash(network));
        let valid: Vec<String> = keep
            .iter()
            .map(|(cid, ifname)| names::nft_masquerade_comment(network, ifname, cid))
            .collect();
        let stale: Vec<u64> = listed
            .iter()
            .filter(|r| {
                r.comment
                    .as_deref()
                    .is_some_and(|c| c.starts_with(&prefix) && !valid.iter().any(|v| v == c))
            })
            .map(|r| r.handle)
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        delete_batch(&stale).apply(&what())
    }

    /// One listing of the whole table (our rules belong in `masq_checks`, but a rule carrying
    /// the attachment's comment is removed from any chain), one batch if anything matched.
    fn del_attachment(&self, network: &str, container_id: &str, ifname: &str) -> Result<()> {
        let what = || {
            format!(
                "removing masquerade rules of container {container_id:?} interface {ifname:?} \
                 from {}",
                table_what()
            )
        };
        let listed = match nft::list(NFT_FAMILY_INET, NFT_MASQ_TABLE, None) {
            Ok(Some(listed)) => listed,
            Ok(None) => return Ok(()),
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(e.context(what())),
        };
        let prefix = names::nft_instance_hash(network, ifname, container_id);
        let ours: Vec<&ListedRule> = listed
            .iter()
            .filter(|r| r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix)))
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        delete_listed_batch(&ours)
            .map_err(|e| e.context(what()))?
            .apply(&what())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_batch_is_the_reference_transaction() {
        let rules = [
            MasqueradeRule::new("podman", "abc", "eth0", "10.1.2.2/24".parse().expect("ip")),
            MasqueradeRule::new("podman", "abc", "eth0", "fd00:1::2/64".parse().expect("ip")),
        ];
        let batch = add_batch(&rules, &[7]).expect("valid names");
        let t = "inet cni_plugins_masquerade";
        let c = "1d8721804f16f412-e65086f8a75535c6, net: podman, if: eth0, id: abc";
        assert_eq!(
            batch.text(),
            format!(
                "add table {t} {{ comment \"{NFT_MASQ_TABLE_COMMENT}\" ; }}\n\
                 add chain {t} masq_checks {{ comment \"{NFT_MASQ_CHAIN_COMMENT}\" ; }}\n\
                 add chain {t} postrouting {{ type nat hook postrouting priority srcnat ; }}\n\
                 flush chain {t} postrouting\n\
                 add rule {t} postrouting ip daddr == 224.0.0.0/4 return\n\
                 add rule {t} postrouting ip6 daddr == ff00::/8 return\n\
                 add rule {t} postrouting goto masq_checks\n\
                 delete rule {t} masq_checks handle 7\n\
                 add rule {t} masq_checks ip saddr == 10.1.2.2 ip daddr != 10.1.2.0/24 masquerade comment \"{c}\"\n\
                 add rule {t} masq_checks ip6 saddr == fd00:1::2 ip6 daddr != fd00:1::/64 masquerade comment \"{c}\"\n"
            )
        );
    }

    #[test]
    fn prefix_selects_only_this_attachment() {
        let listed = |handle, comment: &str| ListedRule {
            chain: NFT_MASQ_CHAIN.to_owned(),
            handle,
            comment: Some(comment.to_owned()),
            expr: Value::Null,
        };
        let rules = [MasqueradeRule::new(
            "n",
            "c",
            "eth0",
            "10.0.0.2/8".parse().expect("ip"),
        )];
        let ours = names::nft_masquerade_comment("n", "eth0", "c");
        let other_if = names::nft_masquerade_comment("n", "eth1", "c");
        let all = [listed(1, &ours), listed(2, &other_if), listed(3, "foreign")];
        assert_eq!(handles_with_prefix(&all, &instance_hashes(&rules)), [1]);
    }
}
