//! The tuning plugin (reference `plugins/meta/tuning`): a chained plugin that sets `net.*`
//! sysctls and link attributes (MAC, MTU, promiscuous and all-multicast mode, transmit
//! queue length) of the container interface CNI_IFNAME, and passes `prevResult` on with
//! that interface's new MAC.
//!
//! - ADD: validates everything first (a bad key changes nothing); writes only the sysctls
//!   whose value differs; saves the original link attributes it is about to change in the
//!   reference's backup file; changes them. A failure undoes what this ADD changed.
//! - DEL: restores the saved attributes (order mtu, mac, promisc, allmulti, txQLen) and
//!   removes the backup. Without a netns, without the link, or with an unreadable backup
//!   there is nothing to restore, and the backup is removed so it does not linger.
//! - CHECK: the sysctls and attributes still have the configured values.
//!
//! sysctls are neither saved nor restored (as in the reference): they live and die with the
//! container's namespace.

mod backup;
mod config;
mod names;

use std::path::{Path, PathBuf};

use rcni_netlink::{Link, LinkRef, Netlink, RealNetlink};
use rcni_netns::NetNs;
use rcni_skel::{Errors, Plugin, Request};
use rcni_types::{Error, Result, ResultExt, Success};

pub use backup::Backup;
pub use config::{Conf, Mac, Sysctl, parse_go_mac, resolve_sysctl};

/// The plugin. `allowlist` is the sysctl allow-list file (the reference's fixed
/// `/etc/cni/tuning/allowlist.conf`, replaceable for tests).
#[derive(Debug, Clone)]
pub struct Tuning {
    pub allowlist: PathBuf,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            allowlist: config::default_allowlist(),
        }
    }
}

impl Plugin for Tuning {
    fn name(&self) -> &'static str {
        "tuning"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let conf = Conf::parse(req, &self.allowlist)?;
        let mut result = req
            .prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let ns = req.open_netns()?;

        let written = in_netns(&ns, || write_sysctls(&conf.sysctls))??;
        if conf.changes_link() {
            let file = backup::path(&conf.data_dir, &req.container_id, &req.ifname);
            let tuned = container_netlink(&ns)
                .and_then(|mut nl| tune_link(&mut nl, &req.ifname, &conf, &file));
            if let Err(e) = tuned {
                // Best effort: the sysctls this ADD changed go back too.
                let _ = in_netns(&ns, || restore_sysctls(&written));
                return Err(e);
            }
        }
        if let Some(mac) = conf.mac {
            // As the reference: every interface of that name gets the new MAC.
            for iface in result
                .interfaces
                .iter_mut()
                .filter(|i| i.name == req.ifname)
            {
                iface.mac = mac.to_string();
            }
        }
        Ok(result)
    }

    fn del(&self, req: &Request) -> Result<()> {
        let file = backup::path(&Conf::data_dir(req)?, &req.container_id, &req.ifname);
        let text = match std::fs::read(&file) {
            Ok(text) => text,
            // No backup: ADD changed no link attribute, or DEL already ran.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("reading {}: {e}", file.display()))),
        };
        let remove = || {
            backup::remove(&file).or_code(rcni_types::Code::Io, || {
                format!("removing {}", file.display())
            })
        };
        let Some(saved) = Backup::parse(&text) else {
            return remove();
        };
        let Some(ns) = req.open_netns_if_exists()? else {
            return remove();
        };
        let mut nl = container_netlink(&ns)?;
        let link = match nl.get_link(&LinkRef::from(req.ifname.as_str())) {
            Ok(link) => link,
            Err(e) if e.is_not_found() => return remove(),
            Err(e) => {
                return Err(Error::internal(format!(
                    "failed to get {:?}: {e}",
                    req.ifname
                )));
            }
        };
        // Keep the backup when something could not be restored, so a retried DEL can.
        restore_link(&mut nl, &link, &saved)?;
        remove()
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Conf::parse(req, &self.allowlist)?;
        req.prev_result()?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        let ns = req.open_netns()?;
        in_netns(&ns, || check_sysctls(&conf.sysctls))??;
        let mut nl = container_netlink(&ns)?;
        check_link(&mut nl, &req.ifname, &conf)
    }
}

/// Runs `f` inside `ns` (only `/proc/sys` needs that: netlink uses a socket made there).
fn in_netns<T>(ns: &NetNs, f: impl FnOnce() -> T) -> Result<T> {
    ns.run(f)
        .or_internal(|| format!("entering netns {}", ns.path().display()))
}

fn container_netlink(ns: &NetNs) -> Result<RealNetlink> {
    in_netns(ns, RealNetlink::new)?
        .or_internal(|| format!("opening netlink in netns {}", ns.path().display()))
}

/// Reads a sysctl file without its trailing newline.
fn read_sysctl(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.trim_end_matches('\n').to_owned())
}

/// Same value for the kernel: multi-value sysctls read back tab-separated.
fn same_value(current: &str, wanted: &str) -> bool {
    current.split_whitespace().eq(wanted.split_whitespace())
}

/// Writes each sysctl whose value differs, in the calling thread's namespace; returns the
/// original values of those written. On a failure, puts back what it wrote and fails
/// naming the key.
fn write_sysctls(sysctls: &[Sysctl]) -> Result<Vec<(PathBuf, String)>> {
    let mut written: Vec<(PathBuf, String)> = Vec::new();
    for s in sysctls {
        let step = read_sysctl(&s.path).and_then(|current| {
            if same_value(&current, &s.value) {
                return Ok(None);
            }
            std::fs::write(&s.path, &s.value).map(|()| Some(current))
        });
        match step {
            Ok(Some(original)) => written.push((s.path.clone(), original)),
            Ok(None) => {}
            Err(e) => {
                let _ = restore_sysctls(&written);
                return Err(Error::internal(format!(
                    "failed to set sysctl {} to {:?}",
                    s.key, s.value
                ))
                .with_details(format!("{}: {e}", s.path.display())));
            }
        }
    }
    Ok(written)
}

fn restore_sysctls(written: &[(PathBuf, String)]) -> Result<()> {
    let mut errors = Errors::default();
    for (path, original) in written.iter().rev() {
        errors.note(
            std::fs::write(path, original).or_internal(|| format!("restoring {}", path.display())),
        );
    }
    errors.into_result()
}

fn check_sysctls(sysctls: &[Sysctl]) -> Result<()> {
    for s in sysctls {
        let current = read_sysctl(&s.path).or_internal(|| format!("reading sysctl {}", s.key))?;
        if !same_value(&current, &s.value) {
            return Err(Error::internal(format!(
                "Error: Tuning configured value of {} is {}, current value is {}",
                s.path.display(),
                s.value,
                current
            )));
        }
    }
    Ok(())
}

/// Saves the attributes `conf` changes to `file`, then changes them in the reference's
/// order (mac, promisc, mtu, allmulti, txQLen), skipping those already as asked. On a
/// failure the link and the backup are put back as they were.
///
/// A backup left by an earlier ADD of the same attachment keeps its values (they are the
/// originals; the link now has that ADD's); only attributes it lacks are added. The
/// reference overwrites it, so a repeated ADD loses the originals there.
fn tune_link(nl: &mut dyn Netlink, ifname: &str, conf: &Conf, file: &Path) -> Result<()> {
    let link = nl
        .get_link(&LinkRef::from(ifname))
        .map_err(|e| Error::internal(format!("failed to get {ifname:?}: {e}")))?;
    let current = Backup::of(&link, conf);
    let earlier = std::fs::read(file).ok().and_then(|t| Backup::parse(&t));
    let saved = match &earlier {
        Some(earlier) => earlier.or(&current),
        None => current.clone(),
    };
    if earlier.as_ref() != Some(&saved) {
        saved.write(file).map_err(|e| {
            Error::io(format!("failed to save file {}", file.display())).with_details(e.to_string())
        })?;
    }
    if let Err(e) = apply_link(nl, &link, conf) {
        // Compared with what the link has now, after the changes that did work.
        if let Ok(now) = nl.get_link(&LinkRef::Index(link.index)) {
            let _ = restore_link(nl, &now, &current);
        }
        let _ = match &earlier {
            Some(earlier) if *earlier != saved => earlier.write(file),
            Some(_) => Ok(()),
            None => backup::remove(file),
        };
        return Err(e);
    }
    Ok(())
}

fn apply_link(nl: &mut dyn Netlink, link: &Link, conf: &Conf) -> Result<()> {
    let name = &link.name;
    let fail = |what: &str, e: rcni_netlink::Error| {
        Error::internal(format!("failed to set {what} of {name}: {e}"))
    };
    if let Some(mac) = conf.mac
        && link.mac != Some(mac.0)
    {
        nl.set_mac(link.index, mac.0)
            .map_err(|e| fail("MAC address", e))?;
    }
    if conf.promisc && !link.promisc {
        nl.set_promisc(link.index, true)
            .map_err(|e| fail("promiscuous mode", e))?;
    }
    if let Some(mtu) = conf.mtu
        && link.mtu != mtu
    {
        nl.set_mtu(link.index, mtu).map_err(|e| fail("MTU", e))?;
    }
    if let Some(on) = conf.allmulti
        && link.allmulti != on
    {
        nl.set_allmulti(link.index, on)
            .map_err(|e| fail("all-multicast mode", e))?;
    }
    if let Some(qlen) = conf.txqlen
        && link.txqlen != qlen
    {
        nl.set_txqlen(link.index, qlen)
            .map_err(|e| fail("transmit queue length", e))?;
    }
    Ok(())
}

/// Puts back what `saved` records, in the reference's order (mtu, mac, promisc, allmulti,
/// txQLen), trying every attribute.
fn restore_link(nl: &mut dyn Netlink, link: &Link, saved: &Backup) -> Result<()> {
    let mut errors = Errors::default();
    let name = link.name.as_str();
    let fail = |what: &'static str| {
        move |e: rcni_netlink::Error| {
            Error::internal(format!("failed to restore {what} of {name}: {e}"))
        }
    };
    if let Ok(mtu) = u32::try_from(saved.mtu)
        && mtu != 0
        && mtu != link.mtu
    {
        errors.note(nl.set_mtu(link.index, mtu).map_err(fail("MTU")));
    }
    if let Some(mac) = saved.mac()
        && link.mac != Some(mac.0)
    {
        errors.note(nl.set_mac(link.index, mac.0).map_err(fail("MAC address")));
    }
    if let Some(on) = saved.promisc
        && on != link.promisc
    {
        errors.note(
            nl.set_promisc(link.index, on)
                .map_err(fail("promiscuous mode")),
        );
    }
    if let Some(on) = saved.allmulti
        && on != link.allmulti
    {
        errors.note(
            nl.set_allmulti(link.index, on)
                .map_err(fail("all-multicast mode")),
        );
    }
    if let Some(qlen) = saved.tx_qlen.and_then(|q| u32::try_from(q).ok())
        && qlen != link.txqlen
    {
        errors.note(
            nl.set_txqlen(link.index, qlen)
                .map_err(fail("transmit queue length")),
        );
    }
    errors.into_result()
}

fn check_link(nl: &mut dyn Netlink, ifname: &str, conf: &Conf) -> Result<()> {
    let link = nl
        .get_link(&LinkRef::from(ifname))
        .map_err(|_| Error::internal(format!("Cannot find container link {ifname}")))?;
    let current_mac = link.mac.map(|m| Mac(m).to_string()).unwrap_or_default();
    if let Some(mac) = conf.mac
        && link.mac != Some(mac.0)
    {
        return Err(Error::internal(format!(
            "Error: Tuning configured Ethernet of {ifname} is {mac}, current value is {current_mac}"
        )));
    }
    // As the reference: promiscuous mode must be on when asked for and off otherwise.
    if conf.promisc != link.promisc {
        return Err(Error::internal(format!(
            "Error: Tuning link {ifname} configured promisc is {}, current value is {}",
            conf.promisc,
            u8::from(link.promisc)
        )));
    }
    if let Some(mtu) = conf.mtu
        && mtu != link.mtu
    {
        return Err(Error::internal(format!(
            "Error: Tuning configured MTU of {ifname} is {mtu}, current value is {}",
            link.mtu
        )));
    }
    if let Some(on) = conf.allmulti
        && on != link.allmulti
    {
        return Err(Error::internal(format!(
            "Error: Tuning configured all-multicast mode of {ifname} is {on}, current value is {}",
            link.allmulti
        )));
    }
    if let Some(qlen) = conf.txqlen
        && qlen != link.txqlen
    {
        return Err(Error::internal(format!(
            "Error: Tuning configured Transmit Queue Length of {ifname} is {qlen}, current value is {}",
            link.txqlen
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
