//! The dummy plugin (reference `plugins/main/dummy`): a dummy link named CNI_IFNAME,
//! created directly in the container, with addresses from the delegated IPAM, which is
//! required. Traffic to its addresses stays in the container: it gives a pod addresses
//! that no interface of the host carries.
//!
//! ADD, top to bottom: check the config; open the container namespace and a netlink
//! socket inside it; start IPAM; create the dummy link; wait for IPAM; configure addresses
//! and routes. The link and the allocation are undone if a later step fails.

use rcni_ipam::{Allocation, Dad};
use rcni_netlink::{DummySpec, Link, LinkRef, Netlink};
use rcni_netns::NetNs;
use rcni_skel::{Command, Plugin, Request, Rollback};
use rcni_types::{Error, Interface, Result, Success};

pub struct Dummy;

impl Plugin for Dummy {
    fn name(&self) -> &'static str {
        "dummy"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        let kind = required_ipam(req)?;
        let netns = req.open_netns()?;
        let mut ctr = rcni_ipam::container_netlink(&netns)?;
        add(req, kind, &netns, &mut ctr)
    }

    /// IPAM's DEL while the dummy link is deleted.
    fn del(&self, req: &Request) -> Result<()> {
        rcni_ipam::del_container_interface(ipam_kind(req), req)
    }

    /// The reference's CHECK: IPAM's CHECK, then the container interface of `prevResult`:
    /// a dummy link, up, with its MAC, its addresses and the result's routes.
    fn check(&self, req: &Request) -> Result<()> {
        let kind = required_ipam(req)?;
        let netns = req.open_netns()?;
        rcni_ipam::forward(Some(kind), Command::Check, req)?;
        let prev = req
            .prev_result()?
            .ok_or_else(|| Error::internal("dummy: Required prevResult missing"))?;
        let iface = req.sandbox_interface(&prev)?;
        let mut ctr = rcni_ipam::container_netlink(&netns)?;
        check(&iface, &prev, &mut ctr)
    }

    fn status(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(ipam_kind(req), Command::Status, req)
    }

    fn gc(&self, req: &Request) -> Result<()> {
        rcni_ipam::forward(ipam_kind(req), Command::Gc, req)
    }
}

/// The config's IPAM type, if it has one.
fn ipam_kind(req: &Request) -> Option<&str> {
    req.net
        .ipam
        .as_ref()
        .map(|i| i.kind.as_str())
        .filter(|k| !k.is_empty())
}

/// The reference refuses ADD and CHECK without IPAM, before touching the kernel.
fn required_ipam(req: &Request) -> Result<&str> {
    ipam_kind(req).ok_or_else(|| Error::internal("dummy interface requires an IPAM configuration"))
}

/// ADD through `ctr`, a netlink handle inside `netns`.
///
/// # Errors
/// The interface exists already; the kernel has no dummy links; IPAM's error; a failed
/// address or route. Nothing is left behind.
pub fn add(req: &Request, kind: &str, netns: &NetNs, ctr: &mut dyn Netlink) -> Result<Success> {
    let ifname = req.ifname.as_str();
    // Refuse before IPAM allocates anything.
    if ctr.get_link(&LinkRef::from(ifname)).is_ok() {
        return Err(Error::internal(format!(
            "failed to create dummy: an interface named {ifname:?} already exists in netns {}",
            netns.path().display()
        )));
    }
    // IPAM runs in its own process while the link is made (DESIGN §7).
    let ipam = Allocation::start(kind, req)?;
    let mut rollback = Rollback::new();
    rollback.push(|| ipam.release());

    let spec = DummySpec {
        name: ifname.to_string(),
        mtu: None,
        mac: None,
        ns: None,
    };
    if let Err(e) = ctr.create_dummy(&spec) {
        return Err(rollback.fail(create_error(&e)));
    }
    let configured = ctr
        .get_link(&LinkRef::from(ifname))
        .map_err(|e| Error::internal(format!("failed to fetch dummy {ifname:?}: {e}")))
        .and_then(|link| configure(req, netns, ctr, &link, &ipam));
    match configured {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => {
            // Delete link if err to avoid a link leak in this netns (as the reference).
            let e = match rcni_netlink::del_link_by_name_addr(ctr, ifname) {
                Err(undo) => e.with_details(format!("deleting {ifname:?} also failed: {undo}")),
                Ok(_) => e,
            };
            Err(rollback.fail(e))
        }
    }
}

/// A kernel without dummy links says so plainly instead of "operation not supported".
fn create_error(e: &rcni_netlink::Error) -> Error {
    if e.is_unknown_link_kind() {
        Error::internal(format!(
            "dummy: this kernel does not support dummy links ({})",
            e.ack().unwrap_or_default()
        ))
        .with_details(e.to_string())
    } else {
        Error::internal(format!("failed to create dummy: {e}"))
    }
}

fn configure(
    req: &Request,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    ipam: &Allocation<'_>,
) -> Result<Success> {
    // IPAM's DNS, as the reference.
    let result = rcni_ipam::container_result(req, netns, link, ipam.result()?);
    // Nothing else is on a dummy's "link": duplicate address detection has no one to ask.
    rcni_ipam::configure_interface(netns, ctr, link, &result, Dad::Off)?;
    Ok(result)
}

/// CHECK of the container side through `ctr`.
///
/// # Errors
/// The first thing that differs from `prev`, in the reference's wording.
pub fn check(iface: &Interface, prev: &Success, ctr: &mut dyn Netlink) -> Result<()> {
    let link = rcni_ipam::check_container_link(
        ctr,
        iface,
        Some(("dummy", "dummy")),
        rcni_ipam::Wording::GO,
    )?;
    if !link.up {
        return Err(Error::internal(format!("Interface {} is down", iface.name)));
    }
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink, Op, RouteSpec};
    use rcni_testkit::fake_ipam;
    use serde_json::json;

    use super::*;

    /// An ADD request with the fake IPAM, for a container id unique to this process.
    fn request(name: &str, ipam: bool) -> Request {
        let keys = if ipam {
            json!({"ipam": {"type": "fake-ipam"}})
        } else {
            json!({})
        };
        let mut req = rcni_testkit::request(Command::Add, "dummy", &keys);
        req.container_id = format!("{name}-{}", std::process::id());
        req.netns = Some("/run/netns/ctr".into());
        req.ifname = "dummy0".into();
        req.path = vec![fake_ipam::dir().to_path_buf()];
        req
    }

    fn run_add(req: &Request, ctr: &mut FakeNetlink) -> Result<Success> {
        let netns = NetNs::current().expect("own netns");
        add(req, required_ipam(req)?, &netns, ctr)
    }

    #[test]
    fn ipam_is_required_before_anything_happens() {
        let e = Dummy.add(&request("noipam", false)).expect_err("no ipam");
        assert_eq!(e.msg, "dummy interface requires an IPAM configuration");
        assert_eq!(e.code.number(), 999);
        assert_eq!(fake_ipam::log(&request("noipam", false).container_id), "");
    }

    #[test]
    fn add_creates_the_dummy_in_the_container_and_keeps_ipams_dns() {
        let mut ctr = FakeNetlink::new();
        let req = request("add-ok", true);
        let r = run_add(&req, &mut ctr).expect("ADD");
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, "dummy0");
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(
            r.dns.nameservers,
            ["10.1.2.53"],
            "IPAM's DNS, as the reference"
        );
        assert!(ctr.calls().iter().any(|c| matches!(
            c,
            Call::CreateDummy {
                in_other_ns: false,
                ..
            }
        )));
        let link = ctr.get_link(&"dummy0".into()).expect("created");
        assert!(link.up);
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\n");

        let mut prefix = RouteSpec::new("10.1.2.0/24".parse().expect("cidr"));
        prefix.oif = Some(link.index);
        ctr.add_route(&prefix).expect("the kernel's prefix route");
        check(&r.interfaces[0], &r, &mut ctr).expect("CHECK");
        ctr.set_down(link.index).expect("down");
        let e = check(&r.interfaces[0], &r, &mut ctr).expect_err("down");
        assert_eq!(e.msg, "Interface dummy0 is down");
    }

    #[test]
    fn a_failure_after_creation_deletes_the_link_and_releases_ipam() {
        let mut ctr = FakeNetlink::new();
        ctr.fail_next(Op::AddAddr, libc::EPERM);
        let req = request("fail", true);
        let e = run_add(&req, &mut ctr).expect_err("address");
        assert!(e.msg.contains("10.1.2.3/24"), "{e}");
        assert_eq!(ctr.link_list().len(), 1, "only lo is left");
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\nDEL\n");

        ctr.seed_link("dummy0", Some("veth"));
        let req = request("taken", true);
        let e = run_add(&req, &mut ctr).expect_err("taken");
        assert!(e.msg.contains("already exists"), "{e}");
        assert_eq!(fake_ipam::log(&req.container_id), "", "IPAM never ran");
    }
}
