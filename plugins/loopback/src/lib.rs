//! The loopback plugin: brings `lo` up in the container (reference `plugins/main/loopback`).
//!
//! Like the reference, it always works on `lo` whatever CNI_IFNAME says, refuses a `lo`
//! carrying a non-loopback address, passes a `prevResult` through unchanged, and reports
//! `lo`'s addresses otherwise.

use rcni_netlink::{LinkRef, Netlink, RealNetlink};
use rcni_netns::NetNs;
use rcni_skel::{Plugin, Request};
use rcni_types::{Error, Interface, IpConfig, Result, ResultExt, Success};

const LOOPBACK: &str = "lo";

pub struct Loopback;

/// Opens a netlink socket inside the request's namespace.
fn container_netlink(req: &Request) -> Result<Option<RealNetlink>> {
    let Some(path) = &req.netns else {
        return Ok(None);
    };
    let ns = match NetNs::open(path) {
        Ok(ns) => ns,
        Err(e) if rcni_netns::is_missing(&e) => return Ok(None),
        Err(e) => {
            return Err(Error::internal(format!(
                "failed to open netns {path:?}: {e}"
            )));
        }
    };
    let nl = ns
        .run(RealNetlink::new)
        .or_internal(|| format!("entering netns {}", path.display()))?
        .or_internal(|| format!("opening netlink in netns {}", path.display()))?;
    Ok(Some(nl))
}

impl Plugin for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let path = req
            .netns
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut nl = container_netlink(req)?.ok_or_else(|| {
            Error::internal(format!(
                "failed to open netns {path:?}: no such file or directory"
            ))
        })?;
        let lo = nl
            .get_link(&LinkRef::from(LOOPBACK))
            .or_internal(|| "looking up lo".into())?;
        nl.set_up(lo.index).or_internal(|| "setting lo up".into())?;
        let addrs = nl
            .addrs(Some(lo.index), None)
            .or_internal(|| "listing addresses of lo".into())?;
        if let Some(bad) = addrs.iter().find(|a| !a.address.ip().is_loopback()) {
            return Err(Error::internal(format!(
                "loopback interface found with non-loopback address {:?}",
                bad.address.ip().to_string()
            )));
        }

        if let Some(prev) = req.prev_result()? {
            return Ok(prev);
        }
        // First address of each family, as the reference reports them.
        let first = |v4: bool| addrs.iter().find(|a| a.address.is_ipv4() == v4);
        let ips = [first(true), first(false)]
            .into_iter()
            .flatten()
            .map(|a| IpConfig {
                interface: Some(0),
                address: a.address,
                gateway: None,
            })
            .collect();
        Ok(Success {
            cni_version: req.version().to_string(),
            interfaces: vec![Interface {
                name: LOOPBACK.into(),
                mac: "00:00:00:00:00:00".into(),
                sandbox: path,
                ..Interface::default()
            }],
            ips,
            ..Success::default()
        })
    }

    /// Sets `lo` down; a missing namespace is success.
    fn del(&self, req: &Request) -> Result<()> {
        let Some(mut nl) = container_netlink(req)? else {
            return Ok(());
        };
        match nl.get_link(&LinkRef::from(LOOPBACK)) {
            Ok(lo) => nl
                .set_down(lo.index)
                .or_internal(|| "setting lo down".into()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(Error::internal(format!("looking up lo: {e}"))),
        }
    }

    /// `lo` must exist and be up.
    fn check(&self, req: &Request) -> Result<()> {
        let mut nl =
            container_netlink(req)?.ok_or_else(|| Error::internal("netns does not exist"))?;
        let lo = nl
            .get_link(&LinkRef::from(LOOPBACK))
            .or_internal(|| "looking up lo".into())?;
        if lo.up {
            Ok(())
        } else {
            Err(Error::internal("loopback interface is down"))
        }
    }
}
