//! The firewall plugin (reference `plugins/meta/firewall`): a chained plugin that lets the
//! container's forwarded traffic through the host firewall and passes `prevResult` on
//! unchanged.
//!
//! - iptables backend: the reference's `CNI-FORWARD` / `CNI-ADMIN` layout
//!   ([`rcni_firewall::ForwardRules`]), one `iptables-restore` per family and change.
//! - firewalld backend: the addresses become sources of a zone (`trusted` by default).
//! - `ingressPolicy` `same-bridge` / `isolated`: docker-style isolation of the bridge (the
//!   first interface of `prevResult`), always with iptables, as the reference.
//!
//! ADD records the backend and addresses under `dataDir` (see [`state`]), so DEL removes the
//! rules even without `prevResult` or netns, and GC removes those of attachments the runtime
//! no longer has.

mod config;
mod names;
mod state;

use std::net::IpAddr;

use rcni_firewall::nf::linger;
use rcni_firewall::nf::rules::{Removed, TableFamily, delete_forward_rules};
use rcni_firewall::{Firewalld, ForwardRules, Isolation, Prior};
use rcni_skel::{Errors, Plugin, Request};
use rcni_types::{Code, Error, Result, Success};

pub use config::{Backend, Conf};
pub use state::State;

/// The plugin.
pub struct Firewall;

/// The reference supports 0.4.0 and later (`VersionsStartingFrom("0.4.0")`).
const VERSIONS: &[&str] = &["0.4.0", "1.0.0", "1.1.0"];

/// A firewall library error as a CNI error: configuration problems are code 7, CHECK
/// mismatches and tool failures 999 (the reference's plain errors).
fn cni_error(e: &rcni_firewall::Error) -> Error {
    match e.kind() {
        rcni_firewall::ErrorKind::InvalidConfig => Error::invalid_config(e.message()),
        _ => Error::internal(e.message()),
    }
}

fn io_error(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::new(Code::Io, what).with_details(e.to_string())
}

/// The container's addresses in `prevResult` (all of them, as the reference).
fn addresses(result: &Success) -> Vec<IpAddr> {
    result.ips.iter().map(|ip| ip.address.ip()).collect()
}

/// The bridge of the ingress policy: the first interface of `prevResult`, as the reference.
fn isolation(conf: &Conf, result: &Success) -> Result<Option<Isolation>> {
    let Some(policy) = conf.ingress_policy else {
        return Ok(None);
    };
    let first = result.interfaces.first().ok_or_else(|| {
        Error::internal(format!(
            "interface needs to be set for ingress policy {:?}, make sure to chain \"firewall\" plugin with \"bridge\"",
            policy.as_str()
        ))
    })?;
    if first.name.is_empty() {
        return Err(Error::internal("got empty bridge name"));
    }
    Ok(Some(Isolation {
        bridge: first.name.clone(),
        policy,
    }))
}

/// Adds the rules of `addresses` with `backend`, plus the isolation (iptables either way).
fn add_rules(
    conf: &Conf,
    backend: Backend,
    addresses: &[IpAddr],
    iso: Option<Isolation>,
    prior: Prior,
) -> Result<()> {
    match backend {
        Backend::Iptables => ForwardRules::new(&conf.admin_chain, addresses, iso)
            .and_then(|rules| rules.add(prior))
            .map_err(|e| cni_error(&e)),
        Backend::Firewalld => {
            let zone = Firewalld::new(&conf.zone).map_err(|e| cni_error(&e))?;
            zone.add(addresses).map_err(|e| cni_error(&e))?;
            if let Some(iso) = iso {
                let added =
                    ForwardRules::isolation_only(addresses, iso).and_then(|rules| rules.add(prior));
                if let Err(e) = added {
                    let _ = zone.del(addresses);
                    return Err(cni_error(&e));
                }
            }
            Ok(())
        }
    }
}

/// The iptables DEL over nf_tables netlink where iptables-nft holds the rules (see
/// [`rcni_firewall::nf::rules::delete_forward_rules`]): true when every family with an
/// address had its rules found and deleted; otherwise the `iptables-restore` path decides
/// (iptables-legacy, rules already gone).
fn del_over_netlink(addresses: &[IpAddr]) -> bool {
    let unmapped: Vec<IpAddr> = addresses
        .iter()
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
            IpAddr::V4(_) => *ip,
        })
        .collect();
    let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = unmapped.iter().partition(|ip| ip.is_ipv4());
    [(TableFamily::Ip, v4), (TableFamily::Ip6, v6)]
        .into_iter()
        .filter(|(_, addrs)| !addrs.is_empty())
        .all(|(family, addrs)| {
            matches!(
                delete_forward_rules(
                    family,
                    rcni_firewall::names::FILTER_TABLE,
                    rcni_firewall::names::FWD_CHAIN,
                    &addrs,
                ),
                Ok(Removed::Done)
            )
        })
}

/// Removes what `state` (or, without one, the config and `prevResult`) says was added.
/// Shared plumbing and isolation rules stay, as in the reference.
fn del_rules(state: &State, admin_chain: &str) -> Result<()> {
    match state.backend {
        Backend::Iptables => {
            let rules = ForwardRules::new(admin_chain, &state.addresses, None)
                .map_err(|e| cni_error(&e))?;
            if del_over_netlink(&state.addresses) {
                return Ok(());
            }
            rules.del().map_err(|e| cni_error(&e))
        }
        Backend::Firewalld => Firewalld::new(&state.zone)
            .and_then(|zone| zone.del(&state.addresses))
            .map_err(|e| cni_error(&e)),
    }
}

impl Plugin for Firewall {
    fn name(&self) -> &'static str {
        "firewall"
    }

    fn supported_versions(&self) -> &'static [&'static str] {
        VERSIONS
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let result = req
            .prev_result()?
            .ok_or_else(|| Error::internal("missing prevResult from earlier plugin"))?;
        let iso = isolation(&conf, &result)?;
        let backend = conf.backend();
        let addresses = addresses(&result);

        // 1. The record first: a DEL after a crash in step 2 still knows what to remove.
        let file = state::path(
            &conf.data_dir,
            &conf.network,
            &req.container_id,
            &req.ifname,
        );
        let earlier = State::read(&file);
        let prior = if earlier.is_some() {
            Prior::MayExist
        } else {
            Prior::Absent
        };
        let record = State {
            backend,
            zone: if backend == Backend::Firewalld {
                conf.zone.clone()
            } else {
                String::new()
            },
            addresses: addresses.clone(),
        };
        if earlier.as_ref() != Some(&record) {
            record
                .write(&file)
                .map_err(io_error(format!("writing {}", file.display())))?;
        }
        // 2. The rules.
        if let Err(e) = add_rules(&conf, backend, &addresses, iso, prior) {
            let _ = match &earlier {
                Some(earlier) => earlier.write(&file),
                None => state::remove(&file),
            };
            return Err(e);
        }
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let file = state::path(
            &conf.data_dir,
            &conf.network,
            &req.container_id,
            &req.ifname,
        );
        let recorded = State::read(&file);
        let mut errors = Errors::default();
        // What ADD recorded is what it did; `prevResult` covers attachments added by
        // another implementation (the Go plugin), with the backend chosen as it would.
        let from_result = match req.prev_result() {
            Ok(Some(result)) => Some(State {
                backend: recorded
                    .as_ref()
                    .map_or_else(|| conf.backend(), |s| s.backend),
                zone: conf.zone.clone(),
                addresses: addresses(&result),
            }),
            Ok(None) => None,
            Err(e) => {
                errors.note::<()>(Err(e));
                None
            }
        };
        let mut done: Vec<&State> = Vec::new();
        for s in [recorded.as_ref(), from_result.as_ref()]
            .into_iter()
            .flatten()
        {
            if done
                .iter()
                .any(|d| d.backend == s.backend && d.addresses == s.addresses)
            {
                continue;
            }
            errors.note(del_rules(s, &conf.admin_chain));
            done.push(s);
        }
        if errors.is_empty() {
            errors.note(
                state::remove(&file).map_err(io_error(format!("removing {}", file.display()))),
            );
        }
        linger::hand_off();
        errors.into_result()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let result = req
            .prev_result()?
            .ok_or_else(|| Error::internal("missing prevResult from earlier plugin"))?;
        let iso = isolation(&conf, &result)?;
        let addresses = addresses(&result);
        match conf.backend() {
            Backend::Iptables => ForwardRules::new(&conf.admin_chain, &addresses, iso)
                .and_then(|rules| rules.check())
                .map_err(|e| cni_error(&e)),
            Backend::Firewalld => {
                Firewalld::new(&conf.zone)
                    .and_then(|zone| zone.check(&addresses))
                    .map_err(|e| cni_error(&e))?;
                match iso {
                    Some(iso) => ForwardRules::isolation_only(&addresses, iso)
                        .and_then(|rules| rules.check())
                        .map_err(|e| cni_error(&e)),
                    None => Ok(()),
                }
            }
        }
    }

    /// Removes the rules of every recorded attachment of this network that the runtime no
    /// longer has (the reference implements no GC).
    fn gc(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req)?;
        let Some(valid) = req.net.gc_attachments() else {
            return Ok(());
        };
        let keep: Vec<String> = valid
            .iter()
            .map(|a| format!("{}_{}", a.container_id, a.ifname))
            .collect();
        let mut errors = Errors::default();
        for (file, stem) in state::list(&state::network_dir(&conf.data_dir, &conf.network)) {
            if keep.contains(&stem) {
                continue;
            }
            if let Some(recorded) = State::read(&file) {
                let removed = del_rules(&recorded, &conf.admin_chain);
                let failed = removed.is_err();
                errors.note(removed);
                if failed {
                    continue;
                }
            }
            errors.note(
                state::remove(&file).map_err(io_error(format!("removing {}", file.display()))),
            );
        }
        errors.into_result()
    }
}

#[cfg(test)]
mod tests;
