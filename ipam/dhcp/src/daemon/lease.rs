//! One lease: a dedicated OS thread that enters the container's network namespace once,
//! owns a current-thread tokio runtime and runs a mozim DHCPv4 client there until the
//! lease is released (DESIGN §4: setns is per thread, so no pooled or multi-thread
//! runtime ever does this work).
//!
//! The thread answers its starter once (the result, or why there is none), then keeps
//! the lease: renew at T1 (unicast), rebind at T2 (broadcast), and, past expiry, set the
//! interface down and stop, as the reference does. Every new ACK is persisted.
//!
//! The first lease is asked for in attempts on the reference's retransmission schedule
//! (see [`windows`]): mozim's own DISCOVER schedule (3, 7, 15, 31, 62 s) cannot be
//! configured, so each attempt is a fresh client given one window.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use ipnetwork::{IpNetwork, Ipv4Network};
use mozim::{DhcpV4Client, DhcpV4Config, DhcpV4Lease, DhcpV4State};
use rcni_netlink::{LinkRef, Netlink, RealNetlink, scope};
use rcni_netns::NetNs;
use rcni_types::{Dns, Error, IpConfig, Result, Route, Success};
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::log;
use super::store::{self, RECORD_VERSION, Record, SavedLease, Store};
use crate::config::option;
use crate::protocol::{LeaseKey, LeaseOptions};

/// The daemon settings every lease needs.
#[derive(Debug)]
pub struct Ctx {
    /// Prepended to netns paths (`-hostprefix`).
    pub host_prefix: String,
    /// Bound on acquiring a lease (`-timeout`), what an ADD waits at most.
    pub timeout: Duration,
    /// Longest window of one acquisition attempt (`-resendmax`).
    pub resend_max: Duration,
    /// Bound on acquiring a lease (`-resendtimeout`), with `timeout`.
    pub resend_timeout: Duration,
    pub store: Store,
}

impl Ctx {
    /// How long acquiring a lease may take: the tighter of `-timeout` and
    /// `-resendtimeout`.
    #[must_use]
    pub fn acquire_bound(&self) -> Duration {
        self.timeout.min(self.resend_timeout)
    }
}

/// What to get a lease for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub key: LeaseKey,
    pub netns: String,
    pub options: LeaseOptions,
}

/// How long a failed client waits before it is rebuilt from the lease it holds.
const ERROR_PAUSE: Duration = Duration::from_secs(5);

/// How long the interface may take to appear and get its carrier.
const LINK_WAIT: Duration = Duration::from_secs(2);

/// How long a sent DHCPRELEASE is given to leave before DEL returns.
const RELEASE_DRAIN: Duration = Duration::from_millis(20);

/// How long DEL waits for the lease thread to send DHCPRELEASE.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

/// The reference's retransmission schedule (`plugins/ipam/dhcp/lease.go`): this many fast
/// attempts of `FAST_WINDOW` ± `FAST_JITTER`, ...
const FAST_ATTEMPTS: usize = 4;
const FAST_WINDOW: Duration = Duration::from_secs(2);
const FAST_JITTER: Duration = Duration::from_secs(1);
/// ... then windows from this one, doubling, each at most `-resendmax`.
const SLOW_START: Duration = Duration::from_secs(4);

/// The shortest window (but the last, cut to the time left), whatever `-resendmax` says:
/// a new mozim client waits up to 200 ms before its first DISCOVER, and the answer needs
/// time to come back.
const MIN_WINDOW: Duration = Duration::from_millis(500);

/// How long the last attempt goes on past the bound when the server made an offer and
/// the REQUEST is out: an ACK arriving then is released at once, so the server does not
/// keep a lease nobody holds.
const LATE_ACK_WAIT: Duration = Duration::from_secs(1);

/// The result's view of a lease, shared with the control side.
#[derive(Debug, Default)]
struct Shared {
    result: Value,
    expired: bool,
}

enum Cmd {
    /// Send DHCPRELEASE, forget the record, stop; the outcome goes back.
    Release(mpsc::Sender<std::result::Result<(), String>>),
}

/// A running lease.
pub struct LeaseHandle {
    pub spec: Spec,
    shared: Arc<Mutex<Shared>>,
    cmd: UnboundedSender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

impl LeaseHandle {
    /// Starts the lease thread and waits until it holds a lease or gives up. With
    /// `resume`, a persisted lease is taken over instead of asking for a new one.
    ///
    /// # Errors
    /// The namespace or interface is missing, or no lease arrived within `-timeout`.
    pub fn start(ctx: Arc<Ctx>, spec: Spec, resume: Option<Record>) -> Result<LeaseHandle> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = unbounded_channel();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let worker = Worker {
            ctx,
            spec: spec.clone(),
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("dhcp-lease".into())
            .spawn(move || worker.run(resume, cmd_rx, &ready_tx))
            .map_err(|e| Error::internal(format!("starting a lease thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(LeaseHandle {
                spec,
                shared,
                cmd: cmd_tx,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::internal(format!(
                    "the lease thread of {} ended without an answer",
                    spec.key.client_id()
                )))
            }
        }
    }

    /// The result of the lease held now.
    #[must_use]
    pub fn result(&self) -> Value {
        lock(&self.shared).result.clone()
    }

    /// True once the lease expired without renewal (the interface was set down).
    #[must_use]
    pub fn expired(&self) -> bool {
        lock(&self.shared).expired
    }

    /// Sends DHCPRELEASE, removes the record and ends the thread.
    ///
    /// # Errors
    /// The lease thread did not answer in time.
    pub fn release(mut self) -> Result<()> {
        let (tx, rx) = mpsc::channel();
        let outcome = if self.cmd.send(Cmd::Release(tx)).is_ok() {
            rx.recv_timeout(RELEASE_WAIT)
                .unwrap_or_else(|e| Err(format!("no answer from the lease thread: {e}")))
        } else {
            // The thread already ended (an expired lease): nothing left to send.
            Ok(())
        };
        if let Some(t) = self.thread.take()
            && outcome.is_ok()
        {
            let _ = t.join();
        }
        outcome.map_err(|e| {
            Error::internal(format!(
                "failed to release the DHCP lease of {}: {e}",
                self.spec.key.client_id()
            ))
        })
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The lease thread's state.
struct Worker {
    ctx: Arc<Ctx>,
    spec: Spec,
    shared: Arc<Mutex<Shared>>,
}

/// The interface the client runs on, found inside the namespace.
struct Iface {
    index: u32,
    mac: [u8; 6],
}

impl Worker {
    fn client_id(&self) -> String {
        self.spec.key.client_id()
    }

    fn run(
        self,
        resume: Option<Record>,
        cmds: UnboundedReceiver<Cmd>,
        ready: &mpsc::Sender<Result<()>>,
    ) {
        let path = format!("{}{}", self.ctx.host_prefix, self.spec.netns);
        let ns = match NetNs::open(Path::new(&path)) {
            Ok(ns) => ns,
            Err(e) => {
                let _ = ready.send(Err(Error::internal(format!(
                    "failed to open netns {path:?}: {e}"
                ))));
                return;
            }
        };
        // This thread stays in the container's namespace until it ends: its netlink
        // socket, the raw DHCP socket and the UDP sockets are all made here.
        let _inside = match ns.enter() {
            Ok(guard) => guard,
            Err(e) => {
                let _ = ready.send(Err(Error::internal(format!(
                    "failed to enter netns {path:?}: {e}"
                ))));
                return;
            }
        };
        let prepared = RealNetlink::new()
            .map_err(|e| Error::internal(format!("opening netlink in netns {path:?}: {e}")))
            .and_then(|mut nl| self.find_iface(&mut nl, &path).map(|iface| (nl, iface)));
        let (nl, iface) = match prepared {
            Ok(v) => v,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready.send(Err(Error::internal(format!(
                    "starting the DHCP client runtime: {e}"
                ))));
                return;
            }
        };
        runtime.block_on(self.keep(nl, &iface, resume, cmds, ready));
    }

    /// Finds `ifname`, brings it up if needed (the reference does), reads its MAC.
    ///
    /// A main plugin may start IPAM while it still creates the interface (ours overlap
    /// the two), so a missing interface is waited for, and then its carrier (a veth whose
    /// host end is not up yet drops the DISCOVER, which would cost a 3 s retransmission),
    /// each within [`LINK_WAIT`]. Link changes are rare here, so short polls suffice.
    fn find_iface(&self, nl: &mut RealNetlink, path: &str) -> Result<Iface> {
        let ifname = &self.spec.key.ifname;
        let deadline = Instant::now() + LINK_WAIT.min(self.ctx.timeout);
        let mut pause = Duration::from_millis(1);
        loop {
            match nl.get_link(&LinkRef::Name(ifname.clone())) {
                Ok(link) => {
                    if !link.up {
                        nl.set_up(link.index)
                            .map_err(|e| Error::internal(format!("setting {ifname} up: {e}")))?;
                    }
                    if link.oper_up || Instant::now() >= deadline {
                        let mac = link.mac.ok_or_else(|| {
                            Error::internal(format!(
                                "{ifname} in netns {path:?} has no Ethernet address, DHCP needs one"
                            ))
                        })?;
                        return Ok(Iface {
                            index: link.index,
                            mac,
                        });
                    }
                }
                Err(e) if e.is_not_found() && Instant::now() < deadline => {}
                Err(e) => {
                    return Err(Error::internal(format!(
                        "error looking up {ifname:?} in netns {path:?}: {e}"
                    )));
                }
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    fn config(&self, iface: &Iface) -> Result<DhcpV4Config> {
        let opts = &self.spec.options;
        let mut config = DhcpV4Config::new(&self.spec.key.ifname);
        config
            .set_iface_index(iface.index)
            .set_iface_mac_raw(&iface.mac)
            .map_err(|e| Error::internal(format!("DHCP client config: {e}")))?;
        // The reference's client identifier: type 0, then the text.
        config.set_client_id(0, self.client_id().as_bytes());
        for p in &opts.provide {
            match p.code {
                option::HOST_NAME => {
                    config.set_host_name(&p.value);
                }
                option::CLIENT_IDENTIFIER => {
                    // The value is the whole option, as the reference sends it.
                    let bytes = p.value.as_bytes();
                    if let Some((kind, rest)) = bytes.split_first() {
                        config.set_client_id(*kind, rest);
                    }
                }
                other => {
                    return Err(Error::unsupported_field(format!(
                        "provide: option {} cannot be sent by this dhcp daemon",
                        option::name(other)
                    )));
                }
            }
        }
        if opts.skip_default {
            let mut codes = opts.request.clone();
            codes.push(option::SUBNET_MASK);
            config.override_request_dhcp_opts(&codes);
        } else {
            let mut codes = opts.request.clone();
            // mozim's defaults lack the classful static routes the reference reads.
            codes.push(option::STATIC_ROUTES);
            config.request_extra_dhcp_opts(&codes);
        }
        // Timeouts are applied here, around whole exchanges (see `acquire`).
        config.set_timeout_sec(0);
        Ok(config)
    }

    /// Gets the first lease (or takes over `resume`), answers `ready`, then maintains the
    /// lease until released.
    async fn keep(
        self,
        mut nl: RealNetlink,
        iface: &Iface,
        resume: Option<Record>,
        mut cmds: UnboundedReceiver<Cmd>,
        ready: &mpsc::Sender<Result<()>>,
    ) {
        let first = self.first_lease(iface, resume).await;
        let (mut client, mut saved) = match first {
            Ok(v) => v,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));

        // Maintenance. `client.run()` returns at each state change; a command wins over
        // whatever the client is waiting for.
        let mut running = true;
        loop {
            let state = tokio::select! {
                cmd = cmds.recv() => {
                    match cmd {
                        Some(Cmd::Release(reply)) => {
                            let sent = self.release(&mut client, &saved).await;
                            let _ = reply.send(sent);
                        }
                        // The daemon is going away: keep the record, send nothing.
                        None => {}
                    }
                    return;
                }
                state = client.run(), if running => state,
            };
            match state {
                Ok(DhcpV4State::Done(lease)) => match self.bound(&lease) {
                    Ok(new) => {
                        if new.address != saved.address {
                            log(&format!(
                                "{}: the server moved the lease from {} to {}",
                                self.client_id(),
                                saved.address,
                                new.address
                            ));
                        }
                        log(&format!(
                            "{}: lease {} renewed for {} s",
                            self.client_id(),
                            new.address,
                            new.lease_time
                        ));
                        saved = new;
                    }
                    Err(e) => log(&format!("{}: {e}", self.client_id())),
                },
                Ok(DhcpV4State::InitReboot) => {
                    // Back to INIT: the lease expired (or the server refused it). The
                    // interface keeps an address nobody leases any more; the reference
                    // sets it down and stops.
                    log(&format!(
                        "{}: lease {} expired, setting {} down",
                        self.client_id(),
                        saved.address,
                        self.spec.key.ifname
                    ));
                    if let Err(e) = nl.set_down(iface.index) {
                        log(&format!("{}: {e}", self.client_id()));
                    }
                    lock(&self.shared).expired = true;
                    running = false;
                }
                Ok(_) => {}
                Err(e) => {
                    log(&format!("{}: DHCP client: {e}", self.client_id()));
                    tokio::time::sleep(ERROR_PAUSE).await;
                    match self.resumed_client(iface, &saved).await {
                        Ok(Some(c)) => client = c,
                        Ok(None) => {
                            lock(&self.shared).expired = true;
                            running = false;
                        }
                        Err(e) => log(&format!("{}: {e}", self.client_id())),
                    }
                }
            }
        }
    }

    /// The first lease: a persisted one still valid is taken over as it is, an expired
    /// one is asked for again (INIT-REBOOT), else DISCOVER; bounded by `-timeout` and
    /// `-resendtimeout`.
    async fn first_lease(
        &self,
        iface: &Iface,
        resume: Option<Record>,
    ) -> Result<(DhcpV4Client, SavedLease)> {
        if let Some(record) = &resume
            && let Some(client) = self.resumed_client(iface, &record.lease).await?
        {
            lock(&self.shared).result = record.result.clone();
            log(&format!(
                "{}: resumed lease {} ({} s left)",
                self.client_id(),
                record.lease.address,
                record.lease.remaining(store::now())
            ));
            return Ok((client, record.lease));
        }
        let previous = resume.map(|r| mozim_lease(&r.lease, 1));
        let (mut client, lease) = self.acquire(iface, previous).await?;
        match self.bound(&lease) {
            Ok(saved) => {
                log(&format!(
                    "{}: lease {} acquired for {} s",
                    self.client_id(),
                    saved.address,
                    saved.lease_time
                ));
                Ok((client, saved))
            }
            Err(e) => {
                // Do not keep an address we cannot hand out.
                let _ = client.release(&lease).await;
                Err(e)
            }
        }
    }

    /// Asks for a lease in attempts, one per window of [`windows`], until one is bound
    /// or [`Ctx::acquire_bound`] has passed. Each attempt is a new client (new xid, new
    /// raw socket), dropped before the next starts; the first asks for `previous` again
    /// (INIT-REBOOT) when there is one. Returns the client that holds the lease.
    async fn acquire(
        &self,
        iface: &Iface,
        mut previous: Option<DhcpV4Lease>,
    ) -> Result<(DhcpV4Client, DhcpV4Lease)> {
        let ifname = &self.spec.key.ifname;
        let config = self.config(iface)?;
        let bound = self.ctx.acquire_bound();
        let mut windows = windows(self.ctx.resend_max, bound, jitter).peekable();
        let mut attempts = 0u32;
        while let Some(window) = windows.next() {
            attempts += 1;
            let mut client = DhcpV4Client::init(config.clone(), previous.take())
                .await
                .map_err(|e| Error::internal(format!("starting the DHCP client: {e}")))?;
            let mut offered = false;
            match tokio::time::timeout(window, until_bound(&mut client, &mut offered)).await {
                Ok(Ok(lease)) => return Ok((client, lease)),
                Ok(Err(e)) => {
                    return Err(Error::internal(format!(
                        "DHCP client on {ifname} in netns {}: {e}",
                        self.spec.netns
                    )));
                }
                Err(_) if offered && windows.peek().is_none() => {
                    self.release_late_ack(&mut client).await;
                }
                // The next attempt starts over with a DISCOVER; the server offers an
                // address it committed to this client id again.
                Err(_) => {}
            }
        }
        log(&format!(
            "{}: no lease after {attempts} attempts in {bound:?}",
            self.client_id()
        ));
        Err(Error::try_again(format!(
            "no DHCP lease for {ifname} in netns {} within {bound:?}: no server answered",
            self.spec.netns
        ))
        .with_details(format!("client id {}", self.client_id())))
    }

    /// The bound ran out after an offer, with the REQUEST out: waits a moment for the
    /// ACK and releases what it grants, so the failed ADD leaves no lease at the server.
    async fn release_late_ack(&self, client: &mut DhcpV4Client) {
        let mut offered = true;
        let late = tokio::time::timeout(LATE_ACK_WAIT, until_bound(client, &mut offered)).await;
        if let Ok(Ok(lease)) = late {
            let sent = client.release(&lease).await;
            tokio::time::sleep(RELEASE_DRAIN).await;
            log(&format!(
                "{}: lease {} acknowledged after the bound, {}",
                self.client_id(),
                lease.yiaddr,
                match sent {
                    Ok(()) => "released".to_string(),
                    Err(e) => format!("DHCPRELEASE could not be sent: {e}"),
                }
            ));
        }
    }

    /// A client that holds `saved` with the time it has left, without asking the server;
    /// `None` when it has expired.
    async fn resumed_client(
        &self,
        iface: &Iface,
        saved: &SavedLease,
    ) -> Result<Option<DhcpV4Client>> {
        let elapsed = store::now().saturating_sub(saved.bound_at);
        if saved.remaining(store::now()) == 0 {
            return Ok(None);
        }
        let mut client = DhcpV4Client::init(self.config(iface)?, None)
            .await
            .map_err(|e| Error::internal(format!("starting the DHCP client: {e}")))?;
        client
            .done(mozim_lease(saved, elapsed))
            .map_err(|e| Error::internal(format!("taking over lease {}: {e}", saved.address)))?;
        Ok(Some(client))
    }

    /// Records a new ACK: the result, shared and persisted.
    fn bound(&self, lease: &DhcpV4Lease) -> Result<SavedLease> {
        let result = lease_result(lease, self.spec.options.priority)?;
        let result = result.to_json("1.1.0")?;
        let saved = SavedLease {
            address: lease.yiaddr,
            prefix: lease.prefix_length(),
            server_id: lease.srv_id,
            siaddr: lease.siaddr,
            t1: lease.t1_sec,
            t2: lease.t2_sec,
            lease_time: lease.lease_time_sec,
            bound_at: store::now(),
        };
        lock(&self.shared).result = result.clone();
        let record = Record {
            version: RECORD_VERSION,
            key: self.spec.key.clone(),
            netns: self.spec.netns.clone(),
            options: self.spec.options.clone(),
            lease: saved,
            result,
        };
        if let Err(e) = self.ctx.store.save(&record) {
            // The lease works; only a restart would lose it.
            log(&format!(
                "{}: cannot persist the lease: {e}",
                self.client_id()
            ));
        }
        Ok(saved)
    }

    /// Sends DHCPRELEASE. A release that cannot be sent (the interface is already gone)
    /// is logged, not returned, as the reference does: DEL is best effort, and the server
    /// frees the address when the lease runs out.
    async fn release(
        &self,
        client: &mut DhcpV4Client,
        saved: &SavedLease,
    ) -> std::result::Result<(), String> {
        let _ = self.ctx.store.remove(&self.client_id());
        if lock(&self.shared).expired {
            return Ok(());
        }
        match client.release(&mozim_lease(saved, 0)).await {
            Ok(()) => {
                // The datagram may still sit in the backlog of the veth peer; deleting the
                // interface right after DEL (which main plugins do) flushes that backlog,
                // and the server never sees the release. A moment lets it leave.
                tokio::time::sleep(RELEASE_DRAIN).await;
                log(&format!(
                    "{}: lease {} released",
                    self.client_id(),
                    saved.address
                ));
            }
            Err(e) => log(&format!(
                "{}: lease {} forgotten, but DHCPRELEASE could not be sent ({e}); \
                 was {} deleted before IPAM DEL?",
                self.client_id(),
                saved.address,
                self.spec.key.ifname
            )),
        }
        Ok(())
    }
}

/// Runs `client` until it is bound; `offered` is set once a server made an offer (the
/// REQUEST goes out next).
async fn until_bound(
    client: &mut DhcpV4Client,
    offered: &mut bool,
) -> std::result::Result<DhcpV4Lease, mozim::DhcpError> {
    loop {
        match client.run().await? {
            DhcpV4State::Done(lease) => return Ok(*lease),
            DhcpV4State::Selecting => *offered = true,
            _ => {}
        }
    }
}

/// The windows of the acquisition attempts, as the reference's retransmission schedule
/// (§3.10): `FAST_ATTEMPTS` of `FAST_WINDOW` ± `FAST_JITTER` (`jitter` gives the fraction
/// of `FAST_JITTER`, in -1..1), then `SLOW_START` doubling; each at most `resend_max`
/// (but at least `MIN_WINDOW`), the last cut to what is left of `bound`, so they add up
/// to `bound`. Within a window mozim retransmits only after 3 s, 7 s more, ..., so no two
/// DISCOVERs are further apart than the longest window (plus the up to 200 ms a new mozim
/// client waits before its first DISCOVER).
fn windows(
    resend_max: Duration,
    bound: Duration,
    mut jitter: impl FnMut() -> f64,
) -> impl Iterator<Item = Duration> {
    let cap = resend_max.max(MIN_WINDOW);
    let mut left = bound;
    let mut fast = 0;
    let mut slow = SLOW_START;
    std::iter::from_fn(move || {
        if left.is_zero() {
            return None;
        }
        let nominal = if fast < FAST_ATTEMPTS {
            fast += 1;
            let j = jitter();
            let j = if j.is_nan() { 0.0 } else { j.clamp(-1.0, 1.0) };
            if j < 0.0 {
                FAST_WINDOW.saturating_sub(FAST_JITTER.mul_f64(-j))
            } else {
                FAST_WINDOW.saturating_add(FAST_JITTER.mul_f64(j))
            }
        } else {
            let w = slow;
            slow = slow.saturating_mul(2);
            w
        };
        let window = nominal.min(cap).min(left);
        left -= window;
        Some(window)
    })
}

/// A fraction in -1..1 for the fast windows' jitter. The crate has no random number
/// generator of its own: std's randomly keyed hasher (new keys for every `RandomState`)
/// over the clock's nanoseconds serves.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    let bits = (h.finish() >> 32) as u32;
    f64::from(bits) / f64::from(u32::MAX) * 2.0 - 1.0
}

/// A mozim lease from saved fields, `elapsed` seconds after it was bound: the times are
/// shortened by what has passed, keeping mozim's rule 0 < T1 < T2 < lease time.
fn mozim_lease(saved: &SavedLease, elapsed: u64) -> DhcpV4Lease {
    let left = |t: u32| u32::try_from(u64::from(t).saturating_sub(elapsed)).unwrap_or(0);
    let t1 = left(saved.t1).max(1);
    let t2 = left(saved.t2).max(t1 + 1);
    let lease_time = left(saved.lease_time).max(t2 + 1);
    let mut lease = DhcpV4Lease::default();
    lease.yiaddr = saved.address;
    lease.siaddr = saved.siaddr;
    lease.srv_id = saved.server_id;
    lease.subnet_mask = prefix_mask(saved.prefix);
    lease.t1_sec = t1;
    lease.t2_sec = t2;
    lease.lease_time_sec = lease_time;
    lease
}

fn prefix_mask(prefix: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// The CNI result of a lease, as the reference builds it, plus DNS:
/// - the address with the subnet mask's prefix, the first router as gateway;
/// - routes: option 121 when present (entries without a router get scope link), else
///   option 33 (classful destinations) and a default route via the first router;
/// - `priority` as every route's metric;
/// - DNS from options 6, 15 and 119 (the reference returns none).
///
/// # Errors
/// The server sent no subnet mask (reference's message).
pub fn lease_result(lease: &DhcpV4Lease, priority: Option<u32>) -> Result<Success> {
    if lease.subnet_mask.is_unspecified() {
        return Err(Error::internal(
            "DHCP option Subnet Mask not found in DHCPACK",
        ));
    }
    let address = Ipv4Network::new(lease.yiaddr, lease.prefix_length())
        .map_err(|e| Error::internal(format!("lease address: {e}")))?;
    let gateway = lease
        .gateways
        .as_ref()
        .and_then(|g| g.first())
        .copied()
        .map(IpAddr::V4);

    let mut routes = Vec::new();
    match lease.classless_routes.as_ref().filter(|r| !r.is_empty()) {
        Some(classless) => {
            for r in classless {
                let dst = Ipv4Network::new(r.destination, r.prefix_length)
                    .map_err(|e| Error::internal(format!("option 121 route: {e}")))?;
                let mut route = Route::new(IpNetwork::V4(dst), None);
                if r.router.is_unspecified() {
                    route.scope = Some(scope::LINK);
                } else {
                    route.gw = Some(IpAddr::V4(r.router));
                }
                routes.push(route);
            }
        }
        None => {
            if let Some(raw) = lease.get_option_raw(option::STATIC_ROUTES) {
                routes.extend(static_routes(option_payload(&raw)));
            }
            if let Some(gw) = gateway {
                routes.push(Route::new(
                    IpNetwork::V4(
                        Ipv4Network::new(Ipv4Addr::UNSPECIFIED, 0)
                            .map_err(|e| Error::internal(format!("default route: {e}")))?,
                    ),
                    Some(gw),
                ));
            }
        }
    }
    for r in &mut routes {
        r.priority = priority.filter(|p| *p != 0);
    }

    let dns = Dns {
        nameservers: lease
            .dns_srvs
            .iter()
            .flatten()
            .map(ToString::to_string)
            .collect(),
        domain: lease.domain_name.clone().unwrap_or_default(),
        search: lease.domain_search.clone().unwrap_or_default(),
        options: Vec::new(),
    };
    Ok(Success {
        cni_version: "1.1.0".into(),
        interfaces: Vec::new(),
        ips: vec![IpConfig::new(IpNetwork::V4(address), gateway, None)],
        routes,
        dns,
    })
}

/// mozim returns an option with its code and length bytes in front.
fn option_payload(raw: &[u8]) -> &[u8] {
    raw.get(2..).unwrap_or_default()
}

/// Option 33: (destination, router) pairs, each destination with its classful mask.
fn static_routes(mut data: &[u8]) -> Vec<Route> {
    let mut routes = Vec::new();
    while let (Some(dst), Some(gw)) = (data.get(0..4), data.get(4..8)) {
        let dst = Ipv4Addr::new(dst[0], dst[1], dst[2], dst[3]);
        let gw = Ipv4Addr::new(gw[0], gw[1], gw[2], gw[3]);
        let prefix = match dst.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            _ => 24,
        };
        if let Ok(net) = Ipv4Network::new(dst, prefix) {
            routes.push(Route::new(IpNetwork::V4(net), Some(IpAddr::V4(gw))));
        }
        data = &data[8..];
    }
    routes
}

#[cfg(test)]
mod tests {
    use mozim::DhcpV4ClasslessRoute;

    use super::*;

    fn lease() -> DhcpV4Lease {
        let mut l = DhcpV4Lease::default();
        l.yiaddr = Ipv4Addr::new(10, 9, 0, 57);
        l.subnet_mask = Ipv4Addr::new(255, 255, 255, 0);
        l.gateways = Some(vec![Ipv4Addr::new(10, 9, 0, 1)]);
        l.dns_srvs = Some(vec![Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2)]);
        l.domain_name = Some("rcni.test".into());
        l.domain_search = Some(vec!["a.test".into()]);
        l
    }

    fn v(r: &Success) -> Value {
        r.to_json("1.1.0").expect("prints")
    }

    #[test]
    fn router_gives_gateway_and_default_route_and_dns() {
        let r = lease_result(&lease(), None).expect("result");
        assert_eq!(
            v(&r),
            serde_json::json!({
                "cniVersion": "1.1.0",
                "ips": [{"address": "10.9.0.57/24", "gateway": "10.9.0.1"}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.9.0.1"}],
                "dns": {"nameservers": ["10.9.0.1", "10.9.0.2"], "domain": "rcni.test",
                        "search": ["a.test"]}
            })
        );
    }

    #[test]
    fn classless_routes_win_and_on_link_entries_get_scope_link() {
        let mut l = lease();
        l.classless_routes = Some(vec![
            DhcpV4ClasslessRoute {
                destination: Ipv4Addr::new(192, 168, 77, 0),
                prefix_length: 24,
                router: Ipv4Addr::new(10, 9, 0, 1),
            },
            DhcpV4ClasslessRoute {
                destination: Ipv4Addr::new(10, 200, 0, 0),
                prefix_length: 16,
                router: Ipv4Addr::UNSPECIFIED,
            },
        ]);
        let r = lease_result(&l, Some(100)).expect("result");
        assert_eq!(
            v(&r)["routes"],
            serde_json::json!([
                {"dst": "192.168.77.0/24", "gw": "10.9.0.1", "priority": 100},
                {"dst": "10.200.0.0/16", "scope": 253, "priority": 100}
            ])
        );
        assert_eq!(v(&r)["ips"][0]["gateway"], "10.9.0.1");
    }

    #[test]
    fn static_routes_are_classful() {
        let data = [
            10, 0, 0, 0, 10, 9, 0, 1, 172, 16, 0, 0, 10, 9, 0, 1, 192, 168, 1, 0,
        ];
        let got: Vec<String> = static_routes(&data)
            .iter()
            .map(|r| format!("{} {:?}", r.dst, r.gw))
            .collect();
        assert_eq!(
            got,
            ["10.0.0.0/8 Some(10.9.0.1)", "172.16.0.0/16 Some(10.9.0.1)"]
        );
        assert_eq!(option_payload(&[33, 0]), &[] as &[u8]);
    }

    #[test]
    fn a_lease_without_mask_is_refused() {
        let mut l = lease();
        l.subnet_mask = Ipv4Addr::UNSPECIFIED;
        let e = lease_result(&l, None).expect_err("no mask");
        assert_eq!(e.msg, "DHCP option Subnet Mask not found in DHCPACK");
    }

    fn millis(w: &[Duration]) -> Vec<u128> {
        w.iter().map(Duration::as_millis).collect()
    }

    #[test]
    fn windows_follow_the_reference_schedule_and_add_up_to_the_bound() {
        let s = Duration::from_secs;
        // The reference's defaults, no jitter: 4 × 2 s, then 4, 8, 16, 32, 62, 62, ...
        let w: Vec<Duration> = windows(s(62), s(208), || 0.0).collect();
        assert_eq!(
            millis(&w),
            [
                2000, 2000, 2000, 2000, 4000, 8000, 16000, 32000, 62000, 62000, 16000
            ]
        );
        assert_eq!(w.iter().sum::<Duration>(), s(208));

        // Jitter moves the fast windows within 1..3 s and nothing else.
        let mut js = [-1.0, -0.5, 0.75, 1.0, 0.3, 0.3].into_iter();
        let w: Vec<Duration> = windows(s(62), s(30), || js.next().expect("4 asked")).collect();
        assert_eq!(millis(&w), [1000, 1500, 2750, 3000, 4000, 8000, 9750]);
        assert_eq!(w.iter().sum::<Duration>(), s(30));
        // Whatever the jitter source says.
        for j in [-7.0, 7.0, f64::NAN] {
            let fast: Vec<Duration> = windows(s(62), s(60), || j).take(4).collect();
            assert!(
                fast.iter().all(|w| (s(1)..=s(3)).contains(w)),
                "{j}: {fast:?}"
            );
        }
        for _ in 0..100 {
            let w: Vec<Duration> = windows(s(62), s(60), jitter).collect();
            assert!(w[..4].iter().all(|w| (s(1)..=s(3)).contains(w)), "{w:?}");
            assert_eq!(&w[4..6], [s(4), s(8)]);
            assert_eq!(w.iter().sum::<Duration>(), s(60));
        }
    }

    #[test]
    fn windows_are_capped_at_resend_max_and_cut_at_the_bound() {
        let s = Duration::from_secs;
        let w: Vec<Duration> = windows(s(5), s(30), || 0.9).collect();
        assert_eq!(millis(&w), [2900, 2900, 2900, 2900, 4000, 5000, 5000, 4400]);
        assert_eq!(w.iter().sum::<Duration>(), s(30));
        // -resendmax 1s: a DISCOVER every second.
        let w: Vec<Duration> = windows(s(1), s(6), || 0.5).collect();
        assert_eq!(w, vec![s(1); 6]);
        // A bound shorter than one window is the only window.
        let w: Vec<Duration> = windows(s(62), Duration::from_millis(1500), || 0.9).collect();
        assert_eq!(w, [Duration::from_millis(1500)]);
        // Windows too short for an answer are lengthened, but never past the bound.
        let w: Vec<Duration> = windows(Duration::from_millis(1), s(1), || 0.0).collect();
        assert_eq!(w, [MIN_WINDOW, MIN_WINDOW]);
        assert_eq!(windows(s(1), Duration::ZERO, || 0.0).count(), 0);
    }

    #[test]
    fn jitter_stays_in_range_and_varies() {
        let js: Vec<f64> = (0..200).map(|_| jitter()).collect();
        assert!(js.iter().all(|j| (-1.0..=1.0).contains(j)), "{js:?}");
        assert!(js.iter().any(|j| *j < -0.5) && js.iter().any(|j| *j > 0.5));
    }

    #[test]
    fn resumed_times_keep_their_order() {
        let saved = SavedLease {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix: 24,
            server_id: Ipv4Addr::new(10, 0, 0, 1),
            siaddr: Ipv4Addr::UNSPECIFIED,
            t1: 60,
            t2: 105,
            lease_time: 120,
            bound_at: 0,
        };
        let l = mozim_lease(&saved, 10);
        assert_eq!((l.t1_sec, l.t2_sec, l.lease_time_sec), (50, 95, 110));
        assert_eq!(l.subnet_mask, Ipv4Addr::new(255, 255, 255, 0));
        let l = mozim_lease(&saved, 100);
        assert_eq!((l.t1_sec, l.t2_sec, l.lease_time_sec), (1, 5, 20));
        let l = mozim_lease(&saved, 119);
        assert_eq!((l.t1_sec, l.t2_sec, l.lease_time_sec), (1, 2, 3));
        assert_eq!(prefix_mask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(prefix_mask(32), Ipv4Addr::BROADCAST);
    }
}
