//! bridge + portmap run as a runtime runs them: real TCP connections and UDP exchanges from a
//! client namespace to a host port reach a server inside the pod namespace, over IPv4 and
//! IPv6, with both backends; hairpin and localhost; DEL leaves no rule and the port is
//! closed again; Go's portmap and ours remove each other's mappings.
//!
//! Topology, all namespaces made by the test: the client's `eth1` is a veth to the host's
//! `rcnipc<n>` (192.168.<n>.1/24 and fd77:<n>::1/64 on the host side); the pod hangs off the
//! bridge.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rcni_integration::{Attachment, Conflist, GO_PLUGINS, Host, our_plugins, ready, tag};
use rcni_testkit::TestNetns;
use serde_json::{Value, json};

const IO_TIMEOUT: Duration = Duration::from_secs(3);
const POD_TCP: u16 = 8080;
const POD_UDP: u16 = 5353;

/// A TCP and a UDP echo server on `[::]` (both families) inside a namespace, answering
/// `pod:<what they got>`, until dropped.
struct EchoServer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServer {
    fn start(ns: &TestNetns) -> EchoServer {
        let stop = Arc::new(AtomicBool::new(false));
        // Sockets stay in the namespace they were created in: make them there, serve them
        // from plain threads.
        let (tcp, udp) = ns.run(|| {
            let tcp = TcpListener::bind(("::", POD_TCP)).expect("bind TCP in the pod");
            let udp = UdpSocket::bind(("::", POD_UDP)).expect("bind UDP in the pod");
            (tcp, udp)
        });
        tcp.set_nonblocking(true).expect("nonblocking listener");
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("udp timeout");
        let tcp_stop = Arc::clone(&stop);
        let tcp_thread = std::thread::spawn(move || {
            while !tcp_stop.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
                        let mut buf = [0u8; 64];
                        if let Ok(n) = conn.read(&mut buf) {
                            let mut reply = b"pod:".to_vec();
                            reply.extend_from_slice(&buf[..n]);
                            let _ = conn.write_all(&reply);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        let udp_stop = Arc::clone(&stop);
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !udp_stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let mut reply = b"pod:".to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = udp.send_to(&reply, from);
                }
            }
        });
        EchoServer {
            stop,
            threads: vec![tcp_thread, udp_thread],
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What a TCP exchange with `addr` from inside `ns` gave: the reply, or the error kind.
fn tcp_exchange(ns: &TestNetns, addr: SocketAddr) -> Result<String, ErrorKind> {
    ns.run(|| {
        let mut conn = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.kind())?;
        conn.set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.kind())?;
        conn.write_all(b"hello").map_err(|e| e.kind())?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply).map_err(|e| e.kind())?;
        Ok(reply)
    })
}

/// One UDP datagram to `addr` from inside `ns` and its answer.
fn udp_exchange(ns: &TestNetns, addr: SocketAddr) -> Result<String, ErrorKind> {
    ns.run(|| {
        let any: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("addr")
        } else {
            "[::]:0".parse().expect("addr")
        };
        let socket = UdpSocket::bind(any).map_err(|e| e.kind())?;
        socket
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .map_err(|e| e.kind())?;
        socket.send_to(b"ping", addr).map_err(|e| e.kind())?;
        let mut buf = [0u8; 64];
        let (n, _) = socket.recv_from(&mut buf).map_err(|e| e.kind())?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// A host with a client namespace wired to it, a pod namespace, and a bridge + portmap
/// conflist.
struct Lab {
    host: Host,
    client: TestNetns,
    pod: TestNetns,
    /// The host's address on the client link, per family.
    host_v4: String,
    host_v6: String,
    net: String,
    n: u8,
}

impl Lab {
    /// `n` (1-99) keeps addresses, bridge and link names apart between tests.
    fn new(n: u8) -> Lab {
        let host = Host::new();
        let client = TestNetns::new();
        let pod = TestNetns::new();
        let (host_v4, host_v6) = (format!("192.168.{n}.1"), format!("fd77:{n}::1"));
        let link = format!("rcnipc{n}");
        let _ = host.sh(&[
            "ip",
            "link",
            "add",
            &link,
            "type",
            "veth",
            "peer",
            "name",
            "eth1",
            "netns",
            client.name(),
        ]);
        let _ = host.sh(&["ip", "addr", "add", &format!("{host_v4}/24"), "dev", &link]);
        let _ = host.sh(&[
            "ip",
            "addr",
            "add",
            &format!("{host_v6}/64"),
            "dev",
            &link,
            "nodad",
        ]);
        let _ = host.sh(&["ip", "link", "set", &link, "up"]);
        let _ = client.exec_ok(&["ip", "link", "set", "lo", "up"]);
        let _ = client.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("192.168.{n}.2/24"),
            "dev",
            "eth1",
        ]);
        let _ = client.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("fd77:{n}::2/64"),
            "dev",
            "eth1",
            "nodad",
        ]);
        let _ = client.exec_ok(&["ip", "link", "set", "eth1", "up"]);
        Lab {
            host,
            client,
            pod,
            host_v4,
            host_v6,
            net: format!("rcni-pm-{}", tag()),
            n,
        }
    }

    fn conflist(&self, backend: Option<&str>, mappings: Value) -> Conflist {
        let mut portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        if let Some(backend) = backend {
            portmap["backend"] = json!(backend);
        }
        let n = self.n;
        let mut list = Conflist::new(json!({
            "cniVersion": "1.0.0",
            "name": self.net,
            "plugins": [
                {
                    "type": "bridge", "bridge": format!("rcnipm{n}"), "isGateway": true,
                    "isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
                    "ipam": {
                        "type": "host-local", "dataDir": self.host.data_dir,
                        "ranges": [[{"subnet": format!("10.121.{n}.0/24")}],
                                   [{"subnet": format!("fd12:3457:{n}::/64")}]]
                    }
                },
                portmap
            ]
        }));
        list.capability_args = json!({"portMappings": mappings});
        list
    }

    fn attachment(&self) -> Attachment<'_> {
        Attachment {
            container_id: "pod1",
            ifname: "eth0",
            netns: self.pod.path(),
        }
    }

    fn addr(&self, v6: bool, port: u16) -> SocketAddr {
        let ip = if v6 { &self.host_v6 } else { &self.host_v4 };
        format!("{}:{port}", if v6 { format!("[{ip}]") } else { ip.clone() })
            .parse()
            .expect("socket address")
    }

    /// Rules naming the pod's container id or chain, in both nat tables and both nft
    /// tables.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .host
            .nat_rules()
            .into_iter()
            .filter(|r| r.contains("CNI-DN-") || r.contains("\"pod1\""))
            .collect();
        for family in ["ip", "ip6"] {
            let out = self
                .host
                .ns
                .exec(&["nft", "list", "table", family, "cni_hostport"]);
            left.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.contains("\"pod1\""))
                    .map(str::to_string),
            );
        }
        left
    }
}

fn mappings(tcp: u16, udp: u16) -> Value {
    json!([
        {"hostPort": tcp, "containerPort": POD_TCP, "protocol": "tcp"},
        {"hostPort": udp, "containerPort": POD_UDP, "protocol": "udp"}
    ])
}

/// The whole story for one backend: ADD, traffic over both families, hairpin, localhost,
/// CHECK, DEL, traffic refused.
fn forwards_and_cleans_up(n: u8, backend: Option<&str>) {
    let lab = Lab::new(n);
    let (tcp, udp) = (30_000 + u16::from(n), 31_000 + u16::from(n));
    let list = lab.conflist(backend, mappings(tcp, udp));
    let at = lab.attachment();
    let result = list.add(&lab.host, &at).expect("ADD");
    let server = EchoServer::start(&lab.pod);

    for v6 in [false, true] {
        assert_eq!(
            tcp_exchange(&lab.client, lab.addr(v6, tcp)).as_deref(),
            Ok("pod:hello"),
            "{backend:?} TCP over {}",
            if v6 { "IPv6" } else { "IPv4" }
        );
        assert_eq!(
            udp_exchange(&lab.client, lab.addr(v6, udp)).as_deref(),
            Ok("pod:ping"),
            "{backend:?} UDP over {}",
            if v6 { "IPv6" } else { "IPv4" }
        );
    }
    // Hairpin: the pod reaches itself through the host port on the host's address.
    assert_eq!(
        tcp_exchange(&lab.pod, lab.addr(false, tcp)).as_deref(),
        Ok("pod:hello"),
        "{backend:?} hairpin"
    );
    // Localhost on the host: OUTPUT DNAT, masqueraded from 127.0.0.1 (route_localnet).
    let localhost: SocketAddr = format!("127.0.0.1:{tcp}").parse().expect("addr");
    assert_eq!(
        tcp_exchange(&lab.host.ns, localhost).as_deref(),
        Ok("pod:hello"),
        "{backend:?} localhost"
    );

    list.verb(&lab.host, &at, "CHECK", Some(&result))
        .expect("CHECK over both families");
    list.verb(&lab.host, &at, "DEL", Some(&result))
        .expect("DEL");
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
    drop(server);
    // Nothing listens on the host itself: refused, not forwarded.
    for v6 in [false, true] {
        assert_eq!(
            tcp_exchange(&lab.client, lab.addr(v6, tcp)),
            Err(ErrorKind::ConnectionRefused),
            "{backend:?} after DEL"
        );
    }
    list.verb(&lab.host, &at, "DEL", Some(&result))
        .expect("second DEL");
}

#[test]
fn iptables_forwards_tcp_and_udp_over_both_families() {
    if !ready() {
        return;
    }
    forwards_and_cleans_up(31, Some("iptables"));
}

#[test]
fn nftables_forwards_tcp_and_udp_over_both_families() {
    if !ready() {
        return;
    }
    forwards_and_cleans_up(32, Some("nftables"));
}

#[test]
fn default_backend_is_iptables_here() {
    if !ready() {
        return;
    }
    forwards_and_cleans_up(33, None);
}

#[test]
fn result_is_passed_on_unchanged_and_bad_input_changes_nothing() {
    if !ready() {
        return;
    }
    let lab = Lab::new(34);
    let at = lab.attachment();
    // No mappings: portmap prints the bridge's result as it got it.
    let bridge_only = Conflist::new(json!({
        "cniVersion": "1.0.0", "name": lab.net,
        "plugins": [lab.conflist(None, json!([])).doc["plugins"][0].clone()]
    }));
    let mut bridge_only = bridge_only;
    bridge_only.capability_args = json!({});
    let first = bridge_only.add(&lab.host, &at).expect("bridge ADD");
    let portmap_conf = json!({
        "cniVersion": "1.0.0", "name": lab.net, "type": "portmap",
        "capabilities": {"portMappings": true}, "prevResult": first
    });
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "pod1"),
        ("CNI_NETNS", lab.pod.path().to_str().expect("utf-8 path")),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ];
    let out = lab.host.run(&our_plugins(), "portmap", &env, &portmap_conf);
    assert_eq!(out.ok(), first, "prevResult passed on unchanged");

    let rules_before = lab.host.nat_rules();
    for (mapping, key) in [
        (
            json!({"hostPort": 0, "containerPort": 80, "protocol": "tcp"}),
            "hostPort",
        ),
        (
            json!({"hostPort": 80, "containerPort": 70000, "protocol": "tcp"}),
            "containerPort",
        ),
        (
            json!({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}),
            "protocol",
        ),
    ] {
        let mut conf = portmap_conf.clone();
        conf["runtimeConfig"] = json!({"portMappings": [
            {"hostPort": 81, "containerPort": 81, "protocol": "tcp"}, mapping
        ]});
        let err = lab.host.run(&our_plugins(), "portmap", &env, &conf).err();
        assert_eq!(err["code"], 7, "{err}");
        let msg = err["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains(&format!("runtimeConfig.portMappings[1].{key}")),
            "{msg}"
        );
    }
    assert_eq!(lab.host.nat_rules(), rules_before, "nothing changed");
}

#[test]
fn del_without_netns_and_prev_result_removes_the_rules() {
    if !ready() {
        return;
    }
    let lab = Lab::new(35);
    let (tcp, udp) = (30_035, 31_035);
    let list = lab.conflist(Some("iptables"), mappings(tcp, udp));
    list.add(&lab.host, &lab.attachment()).expect("ADD");
    assert!(!lab.leftovers().is_empty());
    // As after a reboot: the netns is gone and libcni has no cached result, but the runtime
    // still passes the port mappings.
    let conf = json!({
        "cniVersion": "1.0.0", "name": lab.net, "type": "portmap",
        "runtimeConfig": {"portMappings": mappings(tcp, udp)}
    });
    let env = [
        ("CNI_COMMAND", "DEL"),
        ("CNI_CONTAINERID", "pod1"),
        ("CNI_NETNS", "/var/run/netns/rcni-gone"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent"),
    ];
    lab.host.run(&our_plugins(), "portmap", &env, &conf).ok();
    assert!(lab.leftovers().is_empty(), "{:?}", lab.leftovers());
}

/// Port mappings written by one implementation are removed by the other (iptables: the
/// only backend of Debian's Go portmap 1.1.1).
#[test]
fn go_and_rcni_remove_each_others_port_mappings() {
    if !ready() {
        return;
    }
    let go = Path::new(GO_PLUGINS);
    let ours = our_plugins();
    for (n, adder, deleter, label) in [
        (36u8, go, ours.as_path(), "Go ADD, our DEL"),
        (37u8, ours.as_path(), go, "our ADD, Go DEL"),
    ] {
        let lab = Lab::new(n);
        let (tcp, udp) = (30_000 + u16::from(n), 31_000 + u16::from(n));
        let base = lab.conflist(None, mappings(tcp, udp));
        let adding = Conflist::new(base.doc.clone()).with_dir("portmap", adder);
        let adding = Conflist {
            capability_args: base.capability_args.clone(),
            ..adding
        };
        let deleting = Conflist::new(base.doc.clone()).with_dir("portmap", deleter);
        let deleting = Conflist {
            capability_args: base.capability_args.clone(),
            ..deleting
        };
        let at = lab.attachment();
        let result = adding
            .add(&lab.host, &at)
            .unwrap_or_else(|o| panic!("{label}: {o:?}"));
        let server = EchoServer::start(&lab.pod);
        assert_eq!(
            tcp_exchange(&lab.client, lab.addr(false, tcp)).as_deref(),
            Ok("pod:hello"),
            "{label}: forwarded"
        );
        deleting
            .verb(&lab.host, &at, "DEL", Some(&result))
            .unwrap_or_else(|o| panic!("{label}: DEL {o:?}"));
        assert!(lab.leftovers().is_empty(), "{label}: {:?}", lab.leftovers());
        drop(server);
        assert_eq!(
            tcp_exchange(&lab.client, lab.addr(false, tcp)),
            Err(ErrorKind::ConnectionRefused),
            "{label}: after DEL"
        );
    }
}
