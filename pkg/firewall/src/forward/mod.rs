//! The firewall plugin's filter rules: accept forwarded traffic of a container's addresses
//! (`CNI-FORWARD`, with the administrator's `CNI-ADMIN` consulted first), optionally with
//! the docker-style bridge isolation of `ingressPolicy`.
//!
//! The layout is the reference's (`plugins/meta/firewall/{iptables,ingresspolicy}.go`), so
//! the Go plugin removes what we add and the other way round. In table `filter` of each
//! family that has an address:
//!
//! ```text
//! -A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD          (first)
//! -A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN (first)
//! -A CNI-FORWARD -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT        (per address)
//! -A CNI-FORWARD -s <ip>/32 -j ACCEPT                                                    (per address)
//! ```
//!
//! Chains and jumps are shared by every container and never removed; DEL removes only the
//! per-address rules. [`iptables`] explains how a change stays one process per family.
//! [`firewalld`] is the other backend of the plugin: the addresses go into a firewalld zone.

pub mod firewalld;
mod iptables;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::iptables::Family;
use crate::names::{
    FORWARD, FWD_ADMIN_COMMENT, FWD_CHAIN, FWD_CTSTATE, FWD_JUMP_COMMENT, INGRESS_ISOLATED,
    INGRESS_SAME_BRIDGE, IPTABLES_CHAIN_MAX, ISOLATION_DEFAULT_COMMENT, ISOLATION_STAGE_1,
    ISOLATION_STAGE_2, isolation_policy_comment,
};

pub use self::firewalld::Firewalld;

/// `ingressPolicy` other than `open`: which forwarded traffic may reach the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngressPolicy {
    /// Only from the same bridge (`same-bridge`).
    SameBridge,
    /// From nowhere, not even the same bridge (`isolated`).
    Isolated,
}

impl IngressPolicy {
    /// The config value, which is also part of the rules' comments.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            IngressPolicy::SameBridge => INGRESS_SAME_BRIDGE,
            IngressPolicy::Isolated => INGRESS_ISOLATED,
        }
    }
}

/// The isolation of one bridge (`ingressPolicy` `same-bridge` or `isolated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolation {
    /// The bridge: the reference takes the first interface of `prevResult`.
    pub bridge: String,
    pub policy: IngressPolicy,
}

/// What the caller knows about this attachment's own rules before an ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prior {
    /// No ADD of this attachment is known: its rules are appended without looking first.
    Absent,
    /// An earlier ADD of this attachment may have added them (a repeated ADD): they are
    /// only added where missing, so a repeat leaves one copy.
    MayExist,
}

/// One attachment's rules in the `filter` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardRules {
    admin_chain: String,
    addresses: Vec<IpAddr>,
    isolation: Option<Isolation>,
    /// The `CNI-FORWARD` part; off for [`ForwardRules::isolation_only`].
    forward: bool,
}

/// Where a wanted rule goes when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// `-I chain 1` (the reference's `Insert(.., 1, ..)` / `InsertUnique(.., true, ..)`).
    First,
    /// `-A chain` (`AppendUnique` / `InsertUnique(.., false, ..)`).
    Last,
}

/// One rule in `iptables-save` form.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    chain: String,
    args: String,
    placement: Placement,
    /// The attachment's own rule (removed by DEL) rather than shared plumbing.
    own: bool,
}

/// Everything one family needs, in the order the reference creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FamilyPlan {
    family: Family,
    chains: Vec<String>,
    rules: Vec<Wanted>,
}

impl FamilyPlan {
    fn own(&self) -> impl Iterator<Item = &Wanted> {
        self.rules.iter().filter(|r| r.own)
    }
}

impl ForwardRules {
    /// The rules for `addresses` (repeats dropped), with `admin_chain` as the admin
    /// override chain (`iptablesAdminChainName`, default `CNI-ADMIN`).
    ///
    /// # Errors
    /// A chain or bridge name that cannot be written into a rule.
    pub fn new(
        admin_chain: &str,
        addresses: &[IpAddr],
        isolation: Option<Isolation>,
    ) -> Result<ForwardRules> {
        validate_chain(admin_chain)?;
        if let Some(iso) = &isolation {
            validate_bridge(&iso.bridge)?;
        }
        let mut unique: Vec<IpAddr> = Vec::with_capacity(addresses.len());
        for ip in addresses {
            let ip = rcni_unmap(*ip);
            if !unique.contains(&ip) {
                unique.push(ip);
            }
        }
        Ok(ForwardRules {
            admin_chain: admin_chain.to_owned(),
            addresses: unique,
            isolation,
            forward: true,
        })
    }

    /// Only the ingress-policy isolation of `isolation.bridge`, in the families of
    /// `addresses`: what the reference adds with iptables when the backend is firewalld.
    ///
    /// # Errors
    /// A bridge name that cannot be written into a rule.
    pub fn isolation_only(addresses: &[IpAddr], isolation: Isolation) -> Result<ForwardRules> {
        let mut rules =
            ForwardRules::new(crate::names::FWD_ADMIN_CHAIN, addresses, Some(isolation))?;
        rules.forward = false;
        Ok(rules)
    }

    /// The addresses, each once.
    #[must_use]
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// One plan per family that has an address; no address, no plan, no process.
    fn plans(&self) -> Vec<FamilyPlan> {
        Family::ALL
            .into_iter()
            .filter(|f| self.addresses.iter().any(|ip| Family::of(*ip) == *f))
            .map(|f| self.plan(f))
            .collect()
    }

    fn plan(&self, family: Family) -> FamilyPlan {
        let shared = |chain: &str, args: String, placement| Wanted {
            chain: chain.to_owned(),
            args,
            placement,
            own: false,
        };
        let mut chains = Vec::new();
        let mut rules = Vec::new();
        if self.forward {
            chains.push(FWD_CHAIN.to_owned());
            chains.push(self.admin_chain.clone());
            rules.push(shared(
                FORWARD,
                comment_jump(FWD_JUMP_COMMENT, FWD_CHAIN),
                Placement::First,
            ));
            rules.push(shared(
                FWD_CHAIN,
                comment_jump(FWD_ADMIN_COMMENT, &self.admin_chain),
                Placement::First,
            ));
        }
        let own = self
            .addresses
            .iter()
            .filter(|ip| self.forward && Family::of(**ip) == family);
        for ip in own {
            let host = format!("{ip}/{}", family.host_prefix());
            for args in [
                format!("-d {host} -m conntrack --ctstate {FWD_CTSTATE} -j ACCEPT"),
                format!("-s {host} -j ACCEPT"),
            ] {
                rules.push(Wanted {
                    chain: FWD_CHAIN.to_owned(),
                    args,
                    placement: Placement::Last,
                    own: true,
                });
            }
        }
        if let Some(iso) = &self.isolation {
            let br = &iso.bridge;
            let policy = crate::iptables::quote(&isolation_policy_comment(iso.policy.as_str()));
            let default = crate::iptables::quote(ISOLATION_DEFAULT_COMMENT);
            chains.push(ISOLATION_STAGE_1.to_owned());
            chains.push(ISOLATION_STAGE_2.to_owned());
            rules.push(shared(
                FORWARD,
                comment_jump(ISOLATION_DEFAULT_COMMENT, ISOLATION_STAGE_1),
                Placement::First,
            ));
            rules.push(shared(
                ISOLATION_STAGE_1,
                format!("-i {br} ! -o {br} -m comment --comment {policy} -j {ISOLATION_STAGE_2}"),
                Placement::First,
            ));
            if iso.policy == IngressPolicy::Isolated {
                rules.push(shared(
                    ISOLATION_STAGE_1,
                    format!("-i {br} -o {br} -m comment --comment {policy} -j DROP"),
                    Placement::First,
                ));
            }
            rules.push(shared(
                ISOLATION_STAGE_1,
                format!("-m comment --comment {default} -j RETURN"),
                Placement::Last,
            ));
            rules.push(shared(
                ISOLATION_STAGE_2,
                format!("-o {br} -m comment --comment {default} -j DROP"),
                Placement::First,
            ));
            rules.push(shared(
                ISOLATION_STAGE_2,
                format!("-m comment --comment {default} -j RETURN"),
                Placement::Last,
            ));
        }
        FamilyPlan {
            family,
            chains,
            rules,
        }
    }

    /// ADD: makes sure the chains, the jumps and the isolation rules exist, and adds this
    /// attachment's rules. One `iptables-restore` per family when the shared plumbing is in
    /// place (every ADD after the host's first); see [`iptables`].
    ///
    /// # Errors
    /// The tool is missing or refused the change; a family already changed is undone.
    pub fn add(&self, prior: Prior) -> Result<()> {
        let plans = self.plans();
        for (done, plan) in plans.iter().enumerate() {
            if let Err(e) = iptables::add_family(plan, prior) {
                if prior == Prior::Absent {
                    for earlier in plans.iter().take(done) {
                        // Best effort: the error that matters is the one being returned.
                        let _ = iptables::del_family(earlier);
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// DEL: removes this attachment's rules (one copy each, as the reference), leaving the
    /// shared chains, jumps and isolation rules. Rules already gone are fine.
    ///
    /// # Errors
    /// Every family that could not be cleaned, after trying all.
    pub fn del(&self) -> Result<()> {
        let errors = self
            .plans()
            .iter()
            .filter_map(|plan| iptables::del_family(plan).err())
            .collect();
        Error::collect(errors)
    }

    /// CHECK: every chain, jump, isolation rule and own rule is there.
    ///
    /// # Errors
    /// [`crate::ErrorKind::CheckFailed`] naming the first thing missing.
    pub fn check(&self) -> Result<()> {
        self.plans().iter().try_for_each(iptables::check_family)
    }
}

/// `-m comment --comment <comment> -j <target>`, as iptables-save prints it.
fn comment_jump(comment: &str, target: &str) -> String {
    format!(
        "-m comment --comment {} -j {target}",
        crate::iptables::quote(comment)
    )
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses (Go's `To4`).
fn rcni_unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// A chain name iptables accepts and that reads back as one word.
fn validate_chain(chain: &str) -> Result<()> {
    let bad = chain.is_empty()
        || chain.len() > IPTABLES_CHAIN_MAX
        || chain.starts_with(['-', '!'])
        || chain
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'));
    if bad {
        return Err(Error::invalid(format!(
            "invalid iptables chain name {chain:?}: 1 to {IPTABLES_CHAIN_MAX} characters, \
             no spaces or quotes, not starting with - or !"
        )));
    }
    Ok(())
}

/// An interface name that goes into `-i`/`-o` unquoted (iptables-save prints it bare).
fn validate_bridge(bridge: &str) -> Result<()> {
    let bad = bridge.is_empty()
        || bridge.len() > 15
        || bridge.starts_with(['-', '!'])
        || bridge.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | '/' | ':')
        });
    if bad {
        return Err(Error::invalid(format!(
            "invalid bridge name {bridge:?} for the ingress policy"
        )));
    }
    Ok(())
}
