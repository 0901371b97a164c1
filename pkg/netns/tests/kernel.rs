//! Root-only tests in throwaway namespaces: entering and leaving, exec, per-thread sysctl.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;

use rcni_netns::{NetNs, command_in, sysctl};
use rcni_testkit::{TestNetns, require_root, unshare_thread_netns};

fn link_names(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn run_restores_the_namespace_after_a_panic() {
    if !require_root() {
        return;
    }
    unshare_thread_netns();
    let home = NetNs::current().expect("current");
    let other = TestNetns::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        other.netns().run(|| panic!("inside")).expect("enter");
    }));
    assert!(result.is_err());
    assert!(
        NetNs::current().expect("after").same_as(&home),
        "thread left in the other netns"
    );
}

#[test]
fn guard_switches_back_on_drop() {
    if !require_root() {
        return;
    }
    unshare_thread_netns();
    let home = NetNs::current().expect("current");
    let other = TestNetns::new();
    let target = other.netns();
    {
        let _guard = target.enter().expect("enter");
        assert!(NetNs::current().expect("inside").same_as(&target));
    }
    assert!(NetNs::current().expect("after").same_as(&home));
}

#[test]
fn command_in_runs_the_child_in_the_namespace() {
    if !require_root() {
        return;
    }
    unshare_thread_netns();
    Command::new("ip")
        .args(["link", "add", "rcnihere0", "type", "bridge"])
        .status()
        .expect("ip link add");
    let other = TestNetns::new();
    let mut cmd = Command::new("ip");
    cmd.args(["-o", "link", "show"]);
    // The handle is dropped before spawning: command_in keeps its own copy of the fd.
    command_in(&other.netns(), &mut cmd);
    let inside = link_names(&cmd.output().expect("ip in netns"));
    assert!(!inside.contains("rcnihere0"), "{inside}");
    assert_eq!(inside.lines().count(), 1, "{inside}");
    let here = link_names(
        &Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .expect("ip"),
    );
    assert!(here.contains("rcnihere0"), "{here}");
}

#[test]
fn sysctl_writes_land_in_the_thread_namespace() {
    if !require_root() {
        return;
    }
    unshare_thread_netns();
    let key = "net/ipv4/conf/lo/arp_notify";
    let other = TestNetns::new();
    let before = sysctl::read(key).expect("read here");
    other
        .run(|| sysctl::write(key, if before == "1" { "0" } else { "1" }))
        .expect("write in the other netns");
    assert_eq!(
        sysctl::read(key).expect("read here again"),
        before,
        "leaked into this netns"
    );
    let there = other.run(|| sysctl::read(key)).expect("read there");
    assert_ne!(there, before);
    // The dotted form names the same file.
    assert_eq!(
        other
            .run(|| sysctl::read("net.ipv4.conf.lo.arp_notify"))
            .expect("dotted"),
        there
    );
}

#[test]
fn run_returns_sockets_bound_in_the_namespace() {
    if !require_root() {
        return;
    }
    unshare_thread_netns();
    let other = TestNetns::new();
    let inside = other
        .netns()
        .run(|| NetNs::current().expect("inside"))
        .expect("enter");
    assert!(inside.same_as(&other.netns()));
    assert!(!NetNs::current().expect("here").same_as(&inside));
}
