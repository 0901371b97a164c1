//! The `filter` table transactions of [`super::ForwardRules`], one `iptables-restore
//! --noflush` process per family in the common case.
//!
//! The reference runs a process per check and per rule (~10 per ADD). Here:
//!
//! - ADD, step 1 (every ADD once the host has had one): `-C` the shared plumbing and `-A` the
//!   container's rules, one transaction. `-C` fails the whole transaction when something
//!   is missing, so a failure changed nothing. With [`Prior::MayExist`] the container's rules
//!   are checked (`-C`) instead of appended, so a repeated ADD adds no second copy.
//! - ADD, step 2 (the host's first ADD): `-N` every chain, insert the jumps, append the
//!   rules. `-N` fails when a chain exists, so again all or nothing.
//! - ADD, step 3 (anything else: plumbing partly removed, a new bridge for the ingress
//!   policy, a repeated ADD, a race with another ADD): read the table once and write exactly
//!   what is missing. Retried when a concurrent change makes the transaction fail.
//! - DEL: `-D` the container's rules in one transaction; when some are already gone, read
//!   the table and delete those still there.
//! - CHECK: `-C` everything in one transaction; the table is read only to name what is
//!   missing.

use crate::error::{Error, ErrorKind, Result};
use crate::iptables::{self, Family, RestoreScript, SavedTable, is_missing};
use crate::names::FILTER_TABLE;

use super::{FamilyPlan, Placement, Prior};

/// Attempts of step 3 when concurrent ADDs keep changing the table under us.
const REPAIR_ATTEMPTS: usize = 3;

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

pub(super) fn add_family(plan: &FamilyPlan, prior: Prior) -> Result<()> {
    let what = || {
        format!(
            "adding firewall rules to {} table {FILTER_TABLE}",
            family_name(plan.family)
        )
    };
    // Step 1: the plumbing is in place.
    let mut steady = RestoreScript::new(FILTER_TABLE);
    for rule in &plan.rules {
        if rule.own && prior == Prior::Absent {
            steady.append(&rule.chain, &rule.args);
        } else {
            steady.check(&rule.chain, &rule.args);
        }
    }
    if iptables::restore(plan.family, &steady)
        .map_err(|e| e.context(what()))?
        .is_ok()
    {
        return Ok(());
    }
    // Step 2: nothing of ours exists yet.
    let mut fresh = RestoreScript::new(FILTER_TABLE);
    for chain in &plan.chains {
        fresh.new_chain(chain);
    }
    for rule in &plan.rules {
        place(&mut fresh, rule.placement, &rule.chain, &rule.args);
    }
    if iptables::restore(plan.family, &fresh)
        .map_err(|e| e.context(what()))?
        .is_ok()
    {
        return Ok(());
    }
    // Step 3: add what is missing.
    let mut last = None;
    for _ in 0..REPAIR_ATTEMPTS {
        let saved = iptables::save(plan.family, FILTER_TABLE).map_err(|e| e.context(what()))?;
        let script = repair_script(plan, &saved);
        if script.is_empty() {
            return Ok(());
        }
        match iptables::restore(plan.family, &script).map_err(|e| e.context(what()))? {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e.context(what())),
        }
    }
    Err(last.unwrap_or_else(|| Error::new(ErrorKind::ToolFailed, what())))
}

fn place(script: &mut RestoreScript, placement: Placement, chain: &str, args: &str) {
    match placement {
        Placement::First => script.insert(chain, 1, args),
        Placement::Last => script.append(chain, args),
    }
}

/// The transaction adding whatever of `plan` is not in `saved`, in the reference's order
/// (so rules inserted first end up in the same relative order as the Go plugin's).
fn repair_script(plan: &FamilyPlan, saved: &SavedTable) -> RestoreScript {
    let mut script = RestoreScript::new(FILTER_TABLE);
    for chain in &plan.chains {
        if !saved.has_chain(chain) {
            script.new_chain(chain);
        }
    }
    for rule in &plan.rules {
        let present = saved
            .rules_in(&rule.chain)
            .any(|saved| saved.args == rule.args);
        if !present {
            place(&mut script, rule.placement, &rule.chain, &rule.args);
        }
    }
    script
}

pub(super) fn del_family(plan: &FamilyPlan) -> Result<()> {
    let what = || {
        format!(
            "removing firewall rules from {} table {FILTER_TABLE}",
            family_name(plan.family)
        )
    };
    let mut quick = RestoreScript::new(FILTER_TABLE);
    for rule in plan.own() {
        quick.delete(&rule.chain, &rule.args);
    }
    match iptables::restore(plan.family, &quick) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(_)) => {}
        // No iptables at all: nothing of ours can exist.
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e.context(what())),
    }
    let saved = iptables::save(plan.family, FILTER_TABLE).map_err(|e| e.context(what()))?;
    let script = removal_script(plan, &saved);
    if script.is_empty() {
        return Ok(());
    }
    iptables::restore(plan.family, &script)
        .and_then(|applied| applied)
        .map_err(|e| e.context(what()))
}

/// `-D` for each own rule still in `saved`, one copy each.
fn removal_script(plan: &FamilyPlan, saved: &SavedTable) -> RestoreScript {
    let mut script = RestoreScript::new(FILTER_TABLE);
    let mut taken = vec![false; saved.rules.len()];
    for rule in plan.own() {
        let found = saved
            .rules
            .iter()
            .enumerate()
            .position(|(i, s)| !taken[i] && s.chain == rule.chain && s.args == rule.args);
        if let Some(i) = found {
            taken[i] = true;
            script.delete(&rule.chain, &rule.args);
        }
    }
    script
}

pub(super) fn check_family(plan: &FamilyPlan) -> Result<()> {
    let what = || {
        format!(
            "checking firewall rules in {} table {FILTER_TABLE}",
            family_name(plan.family)
        )
    };
    let mut script = RestoreScript::new(FILTER_TABLE);
    for rule in &plan.rules {
        script.check(&rule.chain, &rule.args);
    }
    let failure = match iptables::restore(plan.family, &script).map_err(|e| e.context(what()))? {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    // Name what is missing; the tool's own message only gives a line number.
    let saved = iptables::save(plan.family, FILTER_TABLE).map_err(|e| e.context(what()))?;
    for chain in &plan.chains {
        if !saved.has_chain(chain) {
            return Err(Error::check(format!(
                "chain {chain} is missing from {} table {FILTER_TABLE}",
                family_name(plan.family)
            )));
        }
    }
    for rule in &plan.rules {
        if !saved.rules_in(&rule.chain).any(|s| s.args == rule.args) {
            return Err(Error::check(format!(
                "expected {} rule `-A {} {}` not found",
                family_name(plan.family),
                rule.chain,
                rule.args
            )));
        }
    }
    // Everything reads back as present, yet the check failed (the tool and this code
    // disagree on a rule's text): report the tool's answer.
    Err(Error::check(failure.message().to_owned()))
}
