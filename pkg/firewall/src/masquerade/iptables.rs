//! iptables masquerade, byte-compatible with the reference (`pkg/ip/ipmasq_iptables_linux.go`):
//!
//! ```text
//! -A POSTROUTING -s <ip>/32 -m comment --comment "name: \"<net>\" id: \"<cid>\"" -j CNI-<hash>
//! -A CNI-<hash> -d <subnet> -m comment --comment "..." -j ACCEPT
//! -A CNI-<hash> ! -d 224.0.0.0/4 -m comment --comment "..." -j MASQUERADE
//! ```
//!
//! (`ff00::/8` and `/128` for IPv6, in the ip6tables `nat` table.) Each change is one
//! `iptables-restore --noflush` transaction per family; the family without addresses is not
//! touched at all.

use std::net::IpAddr;

use ipnetwork::IpNetwork;

use super::{Masquerade, MasqueradeRule, validate_all};
use crate::error::{Error, Result};
use crate::iptables::{self, Family, RestoreScript, SavedTable, is_missing};
use crate::names::{self, NAT_TABLE, POSTROUTING};

/// The iptables backend.
#[derive(Debug, Clone, Copy, Default)]
pub struct IptablesMasquerade;

/// One container's chain in one family: the reference keys it by network and container id
/// only, so all of a container's addresses of a family share it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContainerChain {
    family: Family,
    chain: String,
    /// The comment, already quoted as iptables-save prints it.
    comment: String,
    subnets: Vec<IpNetwork>,
    sources: Vec<IpAddr>,
    /// ipmasq's SNAT source of this family (MASQUERADE when unset).
    snat: Option<IpAddr>,
    /// ipmasq's extra destinations of this family left alone.
    exclude: Vec<IpNetwork>,
}

impl ContainerChain {
    /// Groups rules by family and container, keeping first-seen order and dropping repeats.
    fn plan(rules: &[MasqueradeRule]) -> Vec<ContainerChain> {
        let mut chains: Vec<ContainerChain> = Vec::new();
        for rule in rules {
            let family = Family::of(rule.ip());
            let chain = names::masquerade_chain(&rule.network, &rule.container_id);
            let at = match chains
                .iter()
                .position(|c| c.family == family && c.chain == chain)
            {
                Some(at) => at,
                None => {
                    chains.push(ContainerChain {
                        family,
                        chain,
                        comment: iptables::quote(&names::iptables_comment(
                            &rule.network,
                            &rule.container_id,
                        )),
                        subnets: Vec::new(),
                        sources: Vec::new(),
                        snat: None,
                        exclude: Vec::new(),
                    });
                    chains.len() - 1
                }
            };
            let entry = &mut chains[at];
            if !entry.subnets.contains(&rule.subnet()) {
                entry.subnets.push(rule.subnet());
            }
            if !entry.sources.contains(&rule.ip()) {
                entry.sources.push(rule.ip());
            }
            if let Some(snat) = rule.snat.filter(|s| Family::of(*s) == family) {
                entry.snat = Some(snat);
            }
            for net in &rule.exclude {
                if Family::of(net.ip()) == family && !entry.exclude.contains(net) {
                    entry.exclude.push(*net);
                }
            }
        }
        chains
    }

    /// The chain's rules (arguments after `-A <chain>`): every subnet is accepted before the
    /// single MASQUERADE. For one address this is exactly the reference's chain; with several
    /// addresses of one family the reference appends the second ACCEPT after the MASQUERADE,
    /// where it never matches, so we keep the ACCEPTs first.
    fn chain_rules(&self) -> Vec<String> {
        let mut rules: Vec<String> = self
            .subnets
            .iter()
            .map(|subnet| {
                format!(
                    "-d {subnet} -m comment --comment {} -j ACCEPT",
                    self.comment
                )
            })
            .collect();
        rules.extend(
            self.exclude
                .iter()
                .map(|net| format!("-d {net} -m comment --comment {} -j ACCEPT", self.comment)),
        );
        let target = match self.snat {
            Some(ip) => format!("SNAT --to-source {ip}"),
            None => "MASQUERADE".to_string(),
        };
        rules.push(format!(
            "! -d {} -m comment --comment {} -j {target}",
            self.family.multicast(),
            self.comment
        ));
        rules
    }

    /// The POSTROUTING jumps (arguments after `-A POSTROUTING`), one per address.
    fn jumps(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|ip| {
                format!(
                    "-s {ip}/{} -m comment --comment {} -j {}",
                    self.family.host_prefix(),
                    self.comment,
                    self.chain
                )
            })
            .collect()
    }
}

/// The chains of `family`, if any.
fn of_family(chains: &[ContainerChain], family: Family) -> Vec<&ContainerChain> {
    chains.iter().filter(|c| c.family == family).collect()
}

fn chain_list(chains: &[&ContainerChain]) -> String {
    let names: Vec<&str> = chains.iter().map(|c| c.chain.as_str()).collect();
    names.join(", ")
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// ADD for one family.
///
/// 1. Optimistic, one process: `-N` each chain, fill it, append the jumps. `-N` fails the whole
///    transaction when a chain exists (a repeated ADD, or leftovers), so then nothing changed.
/// 2. Otherwise read the table and rebuild: `:chain` creates or flushes each chain, which is
///    refilled; jumps to it are made exactly the wanted ones (missing added, others removed).
fn add_family(family: Family, chains: &[&ContainerChain]) -> Result<()> {
    let what = || {
        format!(
            "adding masquerade chain {} to {} table {NAT_TABLE}",
            chain_list(chains),
            family_name(family)
        )
    };
    let mut fresh = RestoreScript::new(NAT_TABLE);
    for c in chains {
        fresh.new_chain(&c.chain);
        for rule in c.chain_rules() {
            fresh.append(&c.chain, &rule);
        }
    }
    for c in chains {
        for jump in c.jumps() {
            fresh.append(POSTROUTING, &jump);
        }
    }
    if iptables::restore(family, &fresh)
        .map_err(|e| e.context(what()))?
        .is_ok()
    {
        return Ok(());
    }

    let saved = iptables::save(family, NAT_TABLE).map_err(|e| e.context(what()))?;
    let mut script = RestoreScript::new(NAT_TABLE);
    for c in chains {
        script.declare_chain(&c.chain);
        for rule in c.chain_rules() {
            script.append(&c.chain, &rule);
        }
    }
    for c in chains {
        let wanted = c.jumps();
        let mut present = vec![false; wanted.len()];
        for rule in saved.rules.iter().filter(|r| r.target() == Some(&c.chain)) {
            let keep = if rule.chain == POSTROUTING {
                wanted
                    .iter()
                    .zip(&present)
                    .position(|(w, seen)| !seen && *w == rule.args)
            } else {
                None
            };
            match keep {
                Some(at) => present[at] = true,
                None => script.delete(&rule.chain, &rule.args),
            }
        }
        for (jump, seen) in wanted.iter().zip(&present) {
            if !seen {
                script.append(POSTROUTING, jump);
            }
        }
    }
    iptables::restore(family, &script)
        .and_then(|applied| applied)
        .map_err(|e| e.context(what()))
}

/// The transaction removing `chains` and every rule jumping to them, as far as they exist.
fn removal_script(saved: &SavedTable, chains: &[&str]) -> RestoreScript {
    let mut script = RestoreScript::new(NAT_TABLE);
    for rule in &saved.rules {
        let jumps_to_ours = rule.target().is_some_and(|t| chains.contains(&t));
        if jumps_to_ours && !chains.contains(&rule.chain.as_str()) {
            script.delete(&rule.chain, &rule.args);
        }
    }
    for chain in chains {
        if saved.has_chain(chain) {
            script.flush_chain(chain);
            script.delete_chain(chain);
        }
    }
    script
}

/// The chains and the POSTROUTING jumps to them deleted over nf_tables netlink, where
/// iptables-nft holds them (see [`crate::nf::rules::delete_iptables_chain`]); false
/// leaves what is left to `iptables-restore`.
fn del_over_netlink(family: Family, chains: &[&ContainerChain]) -> bool {
    use crate::nf::rules::{Removed, delete_iptables_chain};
    chains.iter().all(|c| {
        matches!(
            delete_iptables_chain(family.table_family(), NAT_TABLE, POSTROUTING, &c.chain),
            Ok(Removed::Done)
        )
    })
}

/// DEL for one family.
///
/// 0. Where iptables-nft holds the rules: over nf_tables netlink, no process.
/// 1. Optimistic, one process: delete the jumps we (or the reference) add, flush and delete
///    the chain. Any part missing fails the whole transaction, which then changed nothing.
/// 2. Otherwise read the table and remove whatever is there: every rule jumping to the chain
///    (also the pre-v0.8 form `-s <ip/prefix>`), then the chain. Nothing there is success.
fn del_family(family: Family, chains: &[&ContainerChain]) -> Result<()> {
    if del_over_netlink(family, chains) {
        return Ok(());
    }
    let what = || {
        format!(
            "removing masquerade chain {} from {} table {NAT_TABLE}",
            chain_list(chains),
            family_name(family)
        )
    };
    let mut quick = RestoreScript::new(NAT_TABLE);
    for c in chains {
        for jump in c.jumps() {
            quick.delete(POSTROUTING, &jump);
        }
        quick.flush_chain(&c.chain);
        quick.delete_chain(&c.chain);
    }
    match iptables::restore(family, &quick) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(_)) => {}
        // No iptables at all: nothing of ours can exist (the reference ignores it too).
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    }
    let saved = iptables::save(family, NAT_TABLE).map_err(|e| e.context(what()))?;
    let names: Vec<&str> = chains.iter().map(|c| c.chain.as_str()).collect();
    let script = removal_script(&saved, &names);
    if script.is_empty() {
        return Ok(());
    }
    iptables::restore(family, &script)
        .and_then(|applied| applied)
        .map_err(|e| e.context(what()))
}

fn check_family(family: Family, chains: &[&ContainerChain]) -> Result<()> {
    let saved = iptables::save(family, NAT_TABLE)
        .map_err(|e| e.context(format!("checking masquerade chain {}", chain_list(chains))))?;
    for c in chains {
        if !saved.has_chain(&c.chain) {
            return Err(Error::check(format!(
                "masquerade chain {} is missing from {} table {NAT_TABLE}",
                c.chain,
                family_name(family)
            )));
        }
        let has = |chain: &str, args: &str| saved.rules_in(chain).any(|r| r.args == args);
        for rule in c.chain_rules() {
            if !has(&c.chain, &rule) {
                return Err(Error::check(format!(
                    "masquerade chain {} lacks rule `{rule}`",
                    c.chain
                )));
            }
        }
        for jump in c.jumps() {
            if !has(POSTROUTING, &jump) {
                return Err(Error::check(format!(
                    "{POSTROUTING} lacks masquerade jump `{jump}`"
                )));
            }
        }
    }
    Ok(())
}

/// Chains of `network` whose container is not kept.
///
/// The chain name is a hash, but every rule carries `name: "<net>" id: "<cid>"`; a chain is
/// taken only if its name is the hash of exactly that network and id, so rules of other
/// networks, portmap's `dnat name: ...` rules and foreign chains are never touched. The
/// comment has no ifname: a container is kept if any of its attachments is.
fn stale_chains(saved: &SavedTable, network: &str, keep: &[(String, String)]) -> Vec<String> {
    let prefix = format!("name: {} id: ", names::go_quote(network));
    let mut stale: Vec<String> = Vec::new();
    for rule in &saved.rules {
        let Some(cid) = rule
            .comment()
            .and_then(|c| c.strip_prefix(&prefix))
            .and_then(names::go_unquote)
        else {
            continue;
        };
        if rule.chain != names::masquerade_chain(network, &cid)
            || keep.iter().any(|(kept, _)| *kept == cid)
            || stale.contains(&rule.chain)
        {
            continue;
        }
        stale.push(rule.chain.clone());
    }
    stale
}

fn gc_family(family: Family, network: &str, keep: &[(String, String)]) -> Result<()> {
    let what = || {
        format!(
            "removing stale masquerade chains of network {network:?} from {} table {NAT_TABLE}",
            family_name(family)
        )
    };
    let saved = match iptables::save(family, NAT_TABLE) {
        Ok(saved) => saved,
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    };
    let stale = stale_chains(&saved, network, keep);
    if stale.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = stale.iter().map(String::as_str).collect();
    iptables::restore(family, &removal_script(&saved, &names))
        .and_then(|applied| applied)
        .map_err(|e| e.context(what()))
}

/// Removes one container's chain and every rule jumping to it from one family's `nat` table:
/// one save, and one restore only if there is something to remove.
fn del_container_family(family: Family, network: &str, container_id: &str) -> Result<()> {
    let chain = names::masquerade_chain(network, container_id);
    let what = || {
        format!(
            "removing masquerade chain {chain} from {} table {NAT_TABLE}",
            family_name(family)
        )
    };
    let saved = match iptables::save(family, NAT_TABLE) {
        Ok(saved) => saved,
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    };
    let script = removal_script(&saved, &[chain.as_str()]);
    if script.is_empty() {
        return Ok(());
    }
    iptables::restore(family, &script)
        .and_then(|applied| applied)
        .map_err(|e| e.context(what()))
}

impl Masquerade for IptablesMasquerade {
    fn add(&self, rules: &[MasqueradeRule]) -> Result<()> {
        validate_all(rules)?;
        let chains = ContainerChain::plan(rules);
        for family in Family::ALL {
            let mine = of_family(&chains, family);
            if !mine.is_empty() {
                add_family(family, &mine)?;
            }
        }
        Ok(())
    }

    fn del(&self, rules: &[MasqueradeRule]) -> Result<()> {
        validate_all(rules)?;
        let chains = ContainerChain::plan(rules);
        let errors = Family::ALL
            .into_iter()
            .filter_map(|family| {
                let mine = of_family(&chains, family);
                if mine.is_empty() {
                    None
                } else {
                    del_family(family, &mine).err()
                }
            })
            .collect();
        Error::collect(errors)
    }

    fn check(&self, rules: &[MasqueradeRule]) -> Result<()> {
        validate_all(rules)?;
        let chains = ContainerChain::plan(rules);
        for family in Family::ALL {
            let mine = of_family(&chains, family);
            if !mine.is_empty() {
                check_family(family, &mine)?;
            }
        }
        Ok(())
    }

    fn gc(&self, network: &str, keep: &[(String, String)]) -> Result<()> {
        let errors = Family::ALL
            .into_iter()
            .filter_map(|family| gc_family(family, network, keep).err())
            .collect();
        Error::collect(errors)
    }

    fn del_attachment(&self, network: &str, container_id: &str, _ifname: &str) -> Result<()> {
        let errors = Family::ALL
            .into_iter()
            .filter_map(|family| del_container_family(family, network, container_id).err())
            .collect();
        Error::collect(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cid: &str, address: &str) -> MasqueradeRule {
        MasqueradeRule::new(
            "podman",
            cid,
            "eth0",
            address.parse().expect("valid address"),
        )
    }

    #[test]
    fn snat_and_excluded_subnets_of_the_family_only() {
        let snat = |r: MasqueradeRule| {
            r.with_snat(
                Some("192.0.2.9".parse().expect("ip")),
                vec![
                    "198.51.100.0/24".parse().expect("net"),
                    "fd99::/16".parse().expect("net"),
                ],
            )
        };
        let chains = ContainerChain::plan(&[
            snat(rule("abc", "10.1.2.2/24")),
            snat(rule("abc", "fd00:1::2/64")),
        ]);
        let comment = r#""name: \"podman\" id: \"abc\"""#;
        assert_eq!(
            chains[0].chain_rules(),
            [
                format!("-d 10.1.2.0/24 -m comment --comment {comment} -j ACCEPT"),
                format!("-d 198.51.100.0/24 -m comment --comment {comment} -j ACCEPT"),
                format!(
                    "! -d 224.0.0.0/4 -m comment --comment {comment} -j SNAT --to-source 192.0.2.9"
                ),
            ]
        );
        assert_eq!(
            chains[1].chain_rules(),
            [
                format!("-d fd00:1::/64 -m comment --comment {comment} -j ACCEPT"),
                format!("-d fd99::/16 -m comment --comment {comment} -j ACCEPT"),
                format!("! -d ff00::/8 -m comment --comment {comment} -j MASQUERADE"),
            ]
        );
    }

    #[test]
    fn plan_produces_the_reference_rule_text() {
        let chains =
            ContainerChain::plan(&[rule("abc", "10.1.2.2/24"), rule("abc", "fd00:1::2/64")]);
        assert_eq!(chains.len(), 2);
        let v4 = &chains[0];
        assert_eq!(v4.family, Family::V4);
        let comment = r#""name: \"podman\" id: \"abc\"""#;
        assert_eq!(
            v4.chain_rules(),
            [
                format!("-d 10.1.2.0/24 -m comment --comment {comment} -j ACCEPT"),
                format!("! -d 224.0.0.0/4 -m comment --comment {comment} -j MASQUERADE"),
            ]
        );
        assert_eq!(
            v4.jumps(),
            [format!(
                "-s 10.1.2.2/32 -m comment --comment {comment} -j CNI-514f2d63f742a896f7a7f9d8"
            )]
        );
        let v6 = &chains[1];
        assert_eq!(v6.chain, v4.chain);
        assert_eq!(
            v6.chain_rules(),
            [
                format!("-d fd00:1::/64 -m comment --comment {comment} -j ACCEPT"),
                format!("! -d ff00::/8 -m comment --comment {comment} -j MASQUERADE"),
            ]
        );
        assert_eq!(
            v6.jumps(),
            [format!(
                "-s fd00:1::2/128 -m comment --comment {comment} -j CNI-514f2d63f742a896f7a7f9d8"
            )]
        );
    }

    #[test]
    fn plan_groups_per_container_and_drops_repeats() {
        let chains = ContainerChain::plan(&[
            rule("abc", "10.1.2.2/24"),
            rule("abc", "10.1.2.2/24"),
            rule("abc", "10.1.3.2/24"),
            rule("def", "10.1.2.3/24"),
        ]);
        assert_eq!(chains.len(), 2);
        assert_eq!(chains[0].subnets.len(), 2);
        assert_eq!(chains[0].sources.len(), 2);
        let rules = chains[0].chain_rules();
        assert!(rules[0].contains("-j ACCEPT") && rules[1].contains("-j ACCEPT"));
        assert!(rules[2].ends_with("-j MASQUERADE"));
        assert_eq!(chains[1].chain, names::masquerade_chain("podman", "def"));
    }

    #[test]
    fn stale_chains_only_of_this_network_and_unkept_containers() {
        let chain = |net: &str, cid: &str| names::masquerade_chain(net, cid);
        let line = |chain: &str, net: &str, cid: &str| {
            format!(
                "-A {chain} ! -d 224.0.0.0/4 -m comment --comment {} -j MASQUERADE\n",
                iptables::quote(&names::iptables_comment(net, cid))
            )
        };
        let mut text = String::from("*nat\n");
        for (net, cid) in [("podman", "gone"), ("podman", "kept"), ("other", "gone")] {
            text.push_str(&format!(":{} - [0:0]\n", chain(net, cid)));
            text.push_str(&line(&chain(net, cid), net, cid));
        }
        // A chain whose comment claims a container but whose name is not its hash.
        text.push_str(&line("CNI-forged", "podman", "forged"));
        text.push_str(&format!(
            "-A CNI-HOSTPORT-DNAT -m comment --comment {} -j X\n",
            iptables::quote("dnat name: \"podman\" id: \"gone\"")
        ));
        text.push_str("COMMIT\n");
        let saved = SavedTable::parse(&text, NAT_TABLE).expect("valid save text");
        let keep = [("kept".to_owned(), "eth1".to_owned())];
        assert_eq!(
            stale_chains(&saved, "podman", &keep),
            [chain("podman", "gone")]
        );
    }

    #[test]
    fn removal_script_deletes_every_jump_then_the_chain() {
        let text = "*nat\n:POSTROUTING ACCEPT [0:0]\n:CNI-a - [0:0]\n:CNI-b - [0:0]\n\
            -A POSTROUTING -s 10.1.2.2/32 -j CNI-a\n-A POSTROUTING -s 10.1.2.0/24 -j CNI-a\n\
            -A POSTROUTING -s 10.1.2.3/32 -j CNI-b\n-A CNI-a -j MASQUERADE\nCOMMIT\n";
        let saved = SavedTable::parse(text, NAT_TABLE).expect("valid save text");
        assert_eq!(
            removal_script(&saved, &["CNI-a", "CNI-missing"]).render(),
            "*nat\n-D POSTROUTING -s 10.1.2.2/32 -j CNI-a\n-D POSTROUTING -s 10.1.2.0/24 -j CNI-a\n\
             -F CNI-a\n-X CNI-a\nCOMMIT\n"
        );
    }
}
