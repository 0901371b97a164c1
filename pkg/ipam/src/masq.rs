//! `ipMasq` of a veth attachment (bridge, ptp): masquerade rules for the addresses a
//! result gave the container, undone by the ADD's rollback, and their removal on DEL.

use ipnetwork::IpNetwork;
use rcni_firewall::MasqueradeRule;
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Result, ResultExt, Success};

/// Masquerades traffic from `result`'s addresses with the backend `ipMasqBackend` names
/// (by default the one the host uses), and has `rollback` remove the rules again.
///
/// # Errors
/// An unknown backend, or the rules cannot be written (the reference's wording).
pub fn add_masquerade<'a>(
    network: &'a str,
    backend: Option<&str>,
    req: &'a Request,
    result: &Success,
    rollback: &mut Rollback<'a>,
) -> Result<()> {
    let rules = MasqueradeRule::for_addresses(
        network,
        &req.container_id,
        &req.ifname,
        result.ips.iter().map(|ip| ip.address),
    );
    let backend =
        rcni_firewall::backend(backend).or_internal(|| "choosing the ipMasq backend".into())?;
    rcni_firewall::masquerade(backend)
        .add(&rules)
        .map_err(|e| Error::internal(format!("failed to set up IP masquerade: {e}")))?;
    rollback.push(move || {
        rcni_firewall::teardown_container(network, &req.container_id, &req.ifname, &rules)
            .or_internal(|| "removing ipMasq rules".into())
    });
    Ok(())
}

/// Removes the attachment's masquerade rules on DEL, from both backends: found from
/// `addresses` (the interface's) and prevResult's, or by the attachment's chain name when
/// neither is left, so they go even when the namespace is already gone (the reference
/// leaks them then: plugins#810).
///
/// # Errors
/// A tool failed.
pub fn del_masquerade(network: &str, req: &Request, mut addresses: Vec<IpNetwork>) -> Result<()> {
    if let Ok(Some(prev)) = req.prev_result() {
        addresses.extend(prev.ips.iter().map(|ip| ip.address));
    }
    rcni_firewall::teardown_addresses(network, &req.container_id, &req.ifname, addresses)
        .or_internal(|| "tearing down ipMasq".into())
}
