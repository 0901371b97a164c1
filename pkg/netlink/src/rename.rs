//! Links born under a temporary name and renamed where they land, the reference's flow for
//! macvlan, ipvlan, vlan and tap (`ip.RandomVethName` then `ip.RenameLink`).

use std::os::fd::BorrowedFd;

use crate::{Error, Link, LinkRef, Netlink, Result, random_veth_name};

/// Creates a link with `create` under a temporary `veth` + 8 hex name, then renames it to
/// `ifname` through `ctr`, a handle in the namespace the link lands in, and returns it.
///
/// `create` gets `ctr` (for links made inside that namespace) and the temporary name; it
/// creates through whichever handle it needs, with the target namespace in its spec. The
/// final name is not used at creation because a link made on the host and sent to the
/// container would clash with a host interface of the same name (`eth0`). A link whose
/// rename fails is deleted again.
///
/// # Errors
/// What `create` returns; the lookup or rename failing (`EEXIST` when `ifname` is taken).
pub fn create_renamed(
    ctr: &mut dyn Netlink,
    ifname: &str,
    create: impl FnOnce(&mut dyn Netlink, &str) -> Result<()>,
) -> Result<Link> {
    let temp = random_veth_name();
    create(ctr, &temp)?;
    let link = ctr
        .get_link(&LinkRef::from(temp.as_str()))
        .map_err(|e| e.context(format!("looking up the new link {temp}")))?;
    if let Err(e) = ctr.set_name(link.index, ifname) {
        let renaming = format!("renaming {temp} to {ifname}");
        return Err(match ctr.del_link(link.index) {
            Ok(()) => e.context(renaming),
            Err(undo) => Error::new(
                renaming,
                e.errno(),
                format!("{}; deleting it again also failed: {undo}", e.msg()),
            ),
        });
    }
    ctr.get_link(&LinkRef::Index(link.index))
        .map_err(|e| e.context(format!("looking up {ifname}")))
}

/// [`create_renamed`] for a link on a master (macvlan, ipvlan, vlan). With `in_container`
/// (`linkInContainer`) the master is in the container: `create` runs on `ctr` with no target
/// namespace. Otherwise it runs on `host` with `container` as the target namespace, so the
/// link is born there. `create` gets the handle, the temporary name and the target.
///
/// # Errors
/// As [`create_renamed`].
pub fn create_renamed_on_master(
    host: &mut dyn Netlink,
    ctr: &mut dyn Netlink,
    in_container: bool,
    container: BorrowedFd<'_>,
    ifname: &str,
    create: impl FnOnce(&mut dyn Netlink, &str, Option<BorrowedFd<'_>>) -> Result<()>,
) -> Result<Link> {
    create_renamed(ctr, ifname, |ctr, temp| {
        if in_container {
            create(ctr, temp, None)
        } else {
            create(host, temp, Some(container))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::{FakeNetlink, IpvlanMode, IpvlanSpec, Op, VlanSpec};

    fn own_netns() -> std::fs::File {
        std::fs::File::open("/proc/thread-self/ns/net").expect("own netns")
    }

    #[test]
    fn created_on_the_host_renamed_in_the_container() {
        let (mut host, mut ctr) = FakeNetlink::pair();
        let parent = host.seed_link("eth0", None).index;
        let ns = own_netns();
        let link = create_renamed(&mut ctr, "eth0", |_, name| {
            host.create_ipvlan(&IpvlanSpec {
                name: name.to_string(),
                parent,
                mode: IpvlanMode::L2,
                mtu: None,
                ns: Some(ns.as_fd()),
            })
        })
        .expect("created");
        assert_eq!(link.name, "eth0");
        assert_eq!(link.kind.as_deref(), Some("ipvlan"));
        let names: Vec<String> = ctr.link_list().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo", "eth0"]);
        let created = host.calls().iter().find_map(|c| match c {
            crate::Call::CreateIpvlan { name, .. } => Some(name.clone()),
            _ => None,
        });
        let temp = created.expect("created through the host handle");
        assert!(temp.starts_with("veth") && temp.len() == 12, "{temp}");
    }

    #[test]
    fn created_in_the_container_through_its_own_handle() {
        let mut ctr = FakeNetlink::new();
        let parent = ctr.seed_link("ens3", None).index;
        let link = create_renamed(&mut ctr, "net1", |ctr, name| {
            ctr.create_vlan(&VlanSpec {
                name: name.to_string(),
                parent,
                vlan_id: 10,
                mtu: None,
                ns: None,
            })
        })
        .expect("created");
        assert_eq!(link.name, "net1");
        assert_eq!(link.kind.as_deref(), Some("vlan"));
    }

    #[test]
    fn a_failed_rename_deletes_the_link() {
        let mut ctr = FakeNetlink::new();
        let parent = ctr.seed_link("ens3", None).index;
        ctr.fail_next(Op::SetName, libc::EEXIST);
        let e = create_renamed(&mut ctr, "net1", |ctr, name| {
            ctr.create_vlan(&VlanSpec {
                name: name.to_string(),
                parent,
                vlan_id: 10,
                mtu: None,
                ns: None,
            })
        })
        .expect_err("rename fails");
        assert!(e.is_exists(), "{e}");
        assert!(e.to_string().contains("to net1"), "{e}");
        let names: Vec<String> = ctr.link_list().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo", "ens3"], "the temporary link is gone");
    }

    #[test]
    fn a_failed_create_is_returned_as_is() {
        let mut ctr = FakeNetlink::new();
        let e = create_renamed(&mut ctr, "net1", |_, _| {
            Err(Error::with_ack(
                "creating ipvlan",
                libc::EOPNOTSUPP,
                Some("Unknown device type"),
            ))
        })
        .expect_err("create fails");
        assert!(e.is_unknown_link_kind());
        assert_eq!(ctr.link_list().len(), 1);
    }
}
