//! Container-side link helpers every veth-based plugin (bridge, ptp) shares, after the
//! reference's `pkg/ip` (`SetupVeth`, `DelLinkByNameAddr`).

use std::os::fd::BorrowedFd;

use ipnetwork::IpNetwork;

use crate::{Error, Link, LinkRef, Netlink, Result, VethSpec, random_veth_name};

/// Random host names that collide are retried this many times (reference `makeVeth`).
pub const VETH_NAME_ATTEMPTS: usize = 10;

/// What [`create_veth_pair`] makes.
pub struct VethPair {
    /// The host end, in `host`'s namespace, named `veth` + 8 hex characters.
    pub host: Link,
    /// The container end, named as asked, in the container namespace.
    pub container: Link,
}

/// The pod's side of a [`create_veth_pair`] and where the host end goes.
#[derive(Debug, Clone, Copy)]
pub struct PodVeth<'a> {
    /// The container namespace, where the container end is born.
    pub netns: BorrowedFd<'a>,
    /// The container end's name (CNI_IFNAME).
    pub ifname: &'a str,
    /// MTU of both ends.
    pub mtu: Option<u32>,
    /// MAC of the container end.
    pub mac: Option<[u8; 6]>,
    /// Master the host end is a port of from its creation (bridge).
    pub master: Option<u32>,
}

/// Creates a veth pair through `host` with the container end born directly in
/// `pod.netns` (no move, no rename) and the host end already a port of `pod.master` if
/// given, and looks both ends up (`ctr` is a handle inside `pod.netns`).
///
/// # Errors
/// The container name already exists there (Go's wording), or the kernel refuses.
pub fn create_veth_pair(
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
    pod: &PodVeth<'_>,
) -> Result<VethPair> {
    let PodVeth {
        netns: peer_ns,
        ifname,
        mtu,
        mac,
        master,
    } = *pod;
    for _ in 0..VETH_NAME_ATTEMPTS {
        let name = random_veth_name();
        let spec = VethSpec {
            name: name.clone(),
            peer_name: ifname.to_string(),
            peer_ns: Some(peer_ns),
            mtu,
            peer_mac: mac,
            master,
        };
        match host.create_veth(&spec) {
            Ok(()) => {
                let host_end = host.get_link(&LinkRef::from(name.as_str()))?;
                let container = ctr.get_link(&LinkRef::from(ifname))?;
                return Ok(VethPair {
                    host: host_end,
                    container,
                });
            }
            // EEXIST: either the container name is taken (final) or the random host name.
            Err(e) if e.is_exists() => {
                if ctr.get_link(&LinkRef::from(ifname)).is_ok() {
                    return Err(Error::new(
                        format!("creating veth {name}"),
                        e.errno(),
                        format!(
                            "container veth name {ifname:?} peer provided ({name:?}) already exists"
                        ),
                    ));
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        "creating veth",
        None,
        "failed to find a free host veth name",
    ))
}

/// Deletes the link `ifname`, returning its universe-scope addresses (for the teardown of
/// rules that name them); `None` when there is no such link (DEL may run twice).
///
/// # Errors
/// The lookup or the deletion fails for another reason than "not found".
pub fn del_link_by_name_addr(nl: &mut dyn Netlink, ifname: &str) -> Result<Option<Vec<IpNetwork>>> {
    let Some((index, addrs)) = link_and_addresses(nl, ifname)? else {
        return Ok(None);
    };
    delete_if_there(nl, index)?;
    Ok(Some(addrs))
}

/// The index and universe-scope addresses of the link `ifname`; `None` when it is gone.
fn link_and_addresses(nl: &mut dyn Netlink, ifname: &str) -> Result<Option<(u32, Vec<IpNetwork>)>> {
    let link = match nl.get_link(&LinkRef::from(ifname)) {
        Ok(link) => link,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let addrs = nl
        .addrs(Some(link.index), None)?
        .iter()
        .filter(|a| a.scope == 0)
        .map(|a| a.address)
        .collect();
    Ok(Some((link.index, addrs)))
}

/// Deletes link `index`; already gone counts as done.
fn delete_if_there(nl: &mut dyn Netlink, index: u32) -> Result<()> {
    match nl.del_link(index) {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

/// [`del_link_by_name_addr`] inside `ns`, through a socket opened there for this one
/// deletion: how DEL removes the container interface (veth, macvlan, ipvlan, ...).
///
/// # Errors
/// The namespace cannot be entered, or the lookup or deletion fails for another reason
/// than "not found".
pub fn del_link_in(ns: &rcni_netns::NetNs, ifname: &str) -> Result<Option<Vec<IpNetwork>>> {
    let Some((addrs, deletion)) = start_del_link_in(ns, ifname)? else {
        return Ok(None);
    };
    deletion.wait()?;
    Ok(Some(addrs))
}

/// A link deletion under way on a thread of its own (see [`start_del_link_in`]).
#[must_use = "a deletion's outcome is known only from wait()"]
pub struct Deletion(std::thread::JoinHandle<Result<()>>);

impl Deletion {
    /// Waits for the kernel to finish the deletion; "not found" counts as done.
    ///
    /// # Errors
    /// The kernel refused the deletion.
    pub fn wait(self) -> Result<()> {
        self.0
            .join()
            .unwrap_or_else(|_| Err(Error::new("deleting a link", None, "the thread panicked")))
    }
}

/// Looks `ifname` up inside `ns`, takes its universe-scope addresses and starts deleting
/// it on a thread of its own, so the caller can do other teardown meanwhile: the kernel
/// answers a link deletion only after an RCU grace period (~15 ms here, most of a DEL),
/// and a firewall transaction that deletes rules waits out one of its own. `None` when
/// there is no such link.
///
/// # Errors
/// The namespace cannot be entered, the lookup fails for another reason than "not
/// found", or the thread cannot be started.
pub fn start_del_link_in(
    ns: &rcni_netns::NetNs,
    ifname: &str,
) -> Result<Option<(Vec<IpNetwork>, Deletion)>> {
    // The socket is opened inside `ns` and stays bound to it on any thread.
    let mut nl = ns
        .run(crate::RealNetlink::new)
        .map_err(|e| Error::from_io(format!("entering netns {}", ns.path().display()), &e))??;
    let Some((index, addrs)) = link_and_addresses(&mut nl, ifname)? else {
        return Ok(None);
    };
    let thread = std::thread::Builder::new()
        .name("del-link".into())
        .spawn(move || delete_if_there(&mut nl, index))
        .map_err(|e| Error::from_io("starting the link deletion", &e))?;
    Ok(Some((addrs, Deletion(thread))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeNetlink;

    #[test]
    fn taken_container_name_is_reported_with_go_wording() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        ctr.seed_link("eth0", Some("veth"));
        let ns = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        let pod = PodVeth {
            netns: std::os::fd::AsFd::as_fd(&ns),
            ifname: "eth0",
            mtu: None,
            mac: None,
            master: None,
        };
        let e = create_veth_pair(&mut host, &mut ctr, &pod)
            .err()
            .expect("eth0 exists");
        assert!(
            e.to_string()
                .contains("container veth name \"eth0\" peer provided"),
            "{e}"
        );
        assert!(e.is_exists());
    }

    #[test]
    fn deleting_a_missing_link_is_none() {
        let mut nl = FakeNetlink::new();
        assert_eq!(
            del_link_by_name_addr(&mut nl, "eth0").expect("not an error"),
            None
        );
    }
}
