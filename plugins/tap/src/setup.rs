//! ADD and CHECK: the tap made in the container, its MTU, MAC and bridge, its addresses.

use std::io::Write as _;
use std::process::Command as Process;

use rcni_ipam::{Allocation, Dad};
use rcni_netlink::{Link, LinkRef, Netlink, TapSpec};
use rcni_netns::NetNs;
use rcni_skel::{Request, Rollback};
use rcni_types::{Error, Interface, Result, ResultExt, Success};

use crate::config::Conf;

/// Where a thread names the SELinux label of what it executes next (`setexeccon`).
const EXEC_LABEL: &str = "/proc/thread-self/attr/exec";

/// What a tap is made with.
pub fn tap_spec(conf: &Conf, ifname: &str) -> TapSpec {
    TapSpec {
        name: ifname.to_string(),
        multi_queue: conf.multi_queue,
        vnet_hdr: true,
        owner: conf.owner,
        group: conf.group,
    }
}

/// Makes the tap inside `netns`: through `/dev/net/tun`, or with a `selinuxContext`
/// through `ip tuntap` run under that label (a tun device takes the label of the task
/// that creates it, and only an exec can give a task a new label, which is why the
/// reference runs `ip` there too).
///
/// # Errors
/// The label cannot be set; the kernel or `ip` refuses.
pub fn create_in(netns: &NetNs, conf: &Conf, spec: &TapSpec) -> Result<()> {
    match &conf.selinux_context {
        None => netns
            .run(|| rcni_netlink::create_tap(spec))
            .or_internal(|| format!("entering netns {}", netns.path().display()))?
            .map_err(|e| Error::internal(format!("failed to create tap: {e}"))),
        Some(label) => create_labelled(netns, spec, label),
    }
}

fn create_labelled(netns: &NetNs, spec: &TapSpec, label: &str) -> Result<()> {
    set_exec_label(label).map_err(|e| {
        Error::internal(format!("failed set socket label: write {EXEC_LABEL}: {e}"))
    })?;
    let mut ip = Process::new("ip");
    ip.args(["tuntap", "add", "mode", "tap", "name", &spec.name]);
    if spec.multi_queue {
        ip.arg("multi_queue");
    }
    if spec.vnet_hdr {
        ip.arg("vnet_hdr");
    }
    if let Some(uid) = spec.owner {
        ip.args(["user", &uid.to_string()]);
    }
    if let Some(gid) = spec.group {
        ip.args(["group", &gid.to_string()]);
    }
    rcni_netns::command_in(netns, &mut ip);
    let out = ip.output();
    // The label applies to the next exec of this thread only: the child has taken it;
    // clear it for anything this process runs later (IPAM's DEL on a failure).
    let _ = set_exec_label("");
    let out = out.or_internal(|| "failed to run command ip tuntap add".into())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::internal(format!(
            "failed to run command {}: {}",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        )))
    }
}

fn set_exec_label(label: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(EXEC_LABEL)?;
    f.write_all(label.as_bytes())
}

/// ADD through `ctr`, a netlink handle inside `netns`; `create` makes the tap (named
/// CNI_IFNAME) in the container (it gets `ctr`, which tests make it through).
///
/// # Errors
/// The interface or the bridge; IPAM's error; the kernel refusing the tap, its MTU, MAC,
/// bridge, an address or a route. Nothing is left behind.
pub fn add(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    create: impl FnOnce(&mut dyn Netlink, &TapSpec) -> Result<()>,
) -> Result<Success> {
    let ifname = req.ifname.as_str();
    // Refuse before IPAM allocates anything.
    if ctr.get_link(&LinkRef::from(ifname)).is_ok() {
        return Err(Error::internal(format!(
            "failed to create tap: an interface named {ifname:?} already exists in netns {}",
            netns.path().display()
        )));
    }
    let bridge = match &conf.bridge {
        Some(name) => Some(
            ctr.get_link(&LinkRef::from(name.as_str()))
                .map_err(|e| Error::internal(format!("failed to get bridge {name}: {e}")))?,
        ),
        None => None,
    };
    // IPAM runs in its own process while the tap is made (DESIGN §7).
    let ipam = conf
        .ipam
        .as_deref()
        .map(|kind| Allocation::start(kind, req))
        .transpose()?;
    let mut rollback = Rollback::new();
    if let Some(ipam) = &ipam {
        rollback.push(move || ipam.release());
    }
    if let Err(e) = create(ctr, &tap_spec(conf, ifname)) {
        return Err(rollback.fail(e));
    }
    let made = ctr
        .get_link(&LinkRef::from(ifname))
        .map_err(|e| Error::internal(format!("failed to refetch tap {ifname:?}: {e}")));
    let link = match made {
        Ok(link) => link,
        Err(e) => return Err(rollback.fail(e)),
    };
    let configured = prepare(conf, ctr, &link, bridge.as_ref())
        .and_then(|link| configure(conf, req, netns, ctr, &link, ipam.as_ref()));
    match configured {
        Ok(result) => {
            rollback.commit();
            Ok(result)
        }
        Err(e) => Err(rollback.fail(rcni_ipam::undo_link(ctr, link.index, ifname, e))),
    }
}

/// The tap's MTU, MAC and bridge, then up; returns it as it is now.
fn prepare(conf: &Conf, ctr: &mut dyn Netlink, link: &Link, bridge: Option<&Link>) -> Result<Link> {
    let ifname = link.name.as_str();
    if let Some(mtu) = conf.mtu {
        ctr.set_mtu(link.index, mtu).map_err(|e| {
            Error::internal(format!("failed to set MTU {mtu} on tap {ifname:?}: {e}"))
        })?;
    }
    if let Some(mac) = conf.mac {
        ctr.set_mac(link.index, mac).map_err(|e| {
            Error::internal(format!(
                "failed to set MAC {} on tap {ifname:?}: {e}",
                rcni_netlink::format_mac(mac)
            ))
        })?;
    }
    if let Some(bridge) = bridge {
        ctr.set_master(link.index, bridge.index).map_err(|e| {
            Error::internal(format!(
                "failed to set tap {ifname} as a port of bridge {}: {e}",
                bridge.name
            ))
        })?;
    }
    ctr.set_up(link.index)
        .map_err(|e| Error::internal(format!("failed to set tap interface up: {e}")))?;
    ctr.get_link(&LinkRef::Index(link.index))
        .map_err(|e| Error::internal(format!("failed to refetch tap {ifname:?}: {e}")))
}

/// The result, and with IPAM the addresses and routes.
fn configure(
    conf: &Conf,
    req: &Request,
    netns: &NetNs,
    ctr: &mut dyn Netlink,
    link: &Link,
    ipam: Option<&Allocation<'_>>,
) -> Result<Success> {
    let Some(ipam) = ipam else {
        let mut result = rcni_ipam::container_result(req, netns, link, Success::default());
        result.dns = conf.dns.clone();
        return Ok(result);
    };
    let mut result = rcni_ipam::container_result(req, netns, link, ipam.result()?);
    result.dns = conf.dns.clone();
    // Best effort, as in the reference.
    let _ = ctr.set_ipv4_conf(link.index, rcni_netlink::Ipv4Conf::ArpNotify, 1);
    // A tap has no carrier until something opens it: duplicate address detection could
    // not run, so IPv6 addresses are made usable at once.
    rcni_ipam::configure_interface(netns, ctr, link, &result, Dad::Off)?;
    Ok(result)
}

/// CHECK of the container side: the interface of `prev` is there with its MAC, its
/// addresses and the result's routes.
///
/// # Errors
/// The first thing that differs from `prev`, in the reference's wording.
pub fn check(iface: &Interface, prev: &Success, ctr: &mut dyn Netlink) -> Result<()> {
    let link = rcni_ipam::check_container_link(ctr, iface, None, rcni_ipam::Wording::GO)?;
    rcni_ipam::check_interface(ctr, &link, prev)
}

#[cfg(test)]
mod tests {
    use rcni_netlink::{Call, FakeNetlink, Op};
    use rcni_skel::Command;
    use rcni_testkit::fake_ipam;
    use serde_json::{Value, json};

    use super::*;
    use crate::config::tests::request;

    /// An interface name no test machine has: best-effort sysctl writes for it fail
    /// instead of changing a real interface.
    const IFNAME: &str = "rcnitst0";

    fn add_request(name: &str, keys: &Value, ipam: bool) -> Request {
        let mut plugin = keys.clone();
        if ipam {
            plugin["ipam"] = json!({"type": fake_ipam::NAME});
        }
        let mut req = request(Command::Add, &plugin, "");
        req.ifname = IFNAME.into();
        req.container_id = format!("{name}-{}", std::process::id());
        req.path = vec![fake_ipam::dir().to_path_buf()];
        req
    }

    /// A `create` that makes a link of the tap's name in the fake (a dummy: the fake
    /// has no taps, and nothing here looks at the kind).
    fn fake_create(nl: &mut dyn Netlink, spec: &TapSpec) -> Result<()> {
        let dummy = rcni_netlink::DummySpec {
            name: spec.name.clone(),
            mtu: None,
            mac: None,
            ns: None,
        };
        nl.create_dummy(&dummy)
            .map_err(|e| Error::internal(e.to_string()))
    }

    fn run_add(req: &Request, ctr: &mut FakeNetlink) -> Result<Success> {
        let conf = Conf::parse(req)?;
        let netns = NetNs::current().expect("own netns");
        add(&conf, req, &netns, ctr, fake_create)
    }

    #[test]
    fn layer_2_tap_with_mtu_mac_and_bridge() {
        let mut ctr = FakeNetlink::new();
        let br = ctr.seed_link("br0", Some("bridge"));
        let req = add_request(
            "l2",
            &json!({"mtu": 1400, "mac": "02:00:00:00:00:07", "bridge": "br0",
                    "multiQueue": true, "owner": 1000,
                    "dns": {"nameservers": ["10.0.0.53"]}}),
            false,
        );
        let r = run_add(&req, &mut ctr).expect("ADD");
        assert_eq!(r.interfaces.len(), 1);
        assert_eq!(r.interfaces[0].name, IFNAME);
        assert_eq!(r.interfaces[0].mac, "02:00:00:00:00:07");
        assert!(r.ips.is_empty());
        assert_eq!(r.dns.nameservers, ["10.0.0.53"], "the config's dns");
        let tap = ctr.get_link(&IFNAME.into()).expect("made");
        assert!(tap.up);
        assert_eq!(tap.mtu, 1400);
        assert_eq!(tap.master, Some(br.index));
        let spec = tap_spec(&Conf::parse(&req).expect("conf"), IFNAME);
        assert!(spec.multi_queue && spec.vnet_hdr);
        assert_eq!((spec.owner, spec.group), (Some(1000), None));
    }

    #[test]
    fn layer_3_tap_gets_ipams_addresses() {
        let mut ctr = FakeNetlink::new();
        let req = add_request("l3", &json!({}), true);
        let r = run_add(&req, &mut ctr).expect("ADD");
        assert_eq!(r.ips[0].address.to_string(), "10.1.2.3/24");
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\n");
        let tap = ctr.get_link(&IFNAME.into()).expect("made");
        assert!(ctr.calls().contains(&Call::AddAddr(
            tap.index,
            "10.1.2.3/24".parse().expect("cidr")
        )));
        let mut prefix = rcni_netlink::RouteSpec::new("10.1.2.0/24".parse().expect("cidr"));
        prefix.oif = Some(tap.index);
        ctr.add_route(&prefix).expect("the kernel's prefix route");
        check(&r.interfaces[0], &r, &mut ctr).expect("CHECK");
    }

    #[test]
    fn failures_leave_nothing_behind() {
        // A refused MTU after creation: the tap goes, IPAM releases.
        let mut ctr = FakeNetlink::new();
        ctr.fail_next(Op::SetMtu, libc::EINVAL);
        let req = add_request("mtu", &json!({"mtu": 70000}), true);
        let e = run_add(&req, &mut ctr).expect_err("mtu");
        assert!(e.msg.starts_with("failed to set MTU 70000 on tap"), "{e}");
        assert_eq!(ctr.link_list().len(), 1, "only lo");
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\nDEL\n");

        // No such bridge, a taken name: refused before IPAM and the tap.
        let req = add_request("bridge", &json!({"bridge": "br9"}), true);
        let e = run_add(&req, &mut ctr).expect_err("bridge");
        assert_eq!(e.msg, "failed to get bridge br9: Link not found");
        assert_eq!(fake_ipam::log(&req.container_id), "");
        ctr.seed_link(IFNAME, Some("veth"));
        let req = add_request("taken", &json!({}), true);
        let e = run_add(&req, &mut ctr).expect_err("taken");
        assert!(e.msg.contains("already exists"), "{e}");
        assert_eq!(fake_ipam::log(&req.container_id), "");

        // The kernel refusing the tap: IPAM releases.
        let mut ctr = FakeNetlink::new();
        let req = add_request("create", &json!({}), true);
        let conf = Conf::parse(&req).expect("conf");
        let netns = NetNs::current().expect("own netns");
        let e = add(&conf, &req, &netns, &mut ctr, |_, _| {
            Err(Error::internal("no tun"))
        })
        .expect_err("create");
        assert_eq!(e.msg, "no tun");
        assert_eq!(fake_ipam::log(&req.container_id), "ADD\nDEL\n");
    }
}
