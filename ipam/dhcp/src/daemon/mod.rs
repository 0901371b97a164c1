//! `dhcp daemon`: holds the DHCP leases of containers (reference §3.10).
//!
//! Threads, and why (DESIGN §4):
//! - the main thread parses flags, takes the socket, resumes persisted leases, then waits
//!   for SIGTERM/SIGINT (blocked in every thread, taken with `sigwait`) and cleans up;
//! - the control thread accepts on the unix socket; each connection gets a short-lived
//!   thread that reads one request, answers it and ends. These threads never change
//!   namespace;
//! - each lease has its own thread inside the container's namespace ([`lease`]).

pub mod flags;
pub mod lease;
pub mod store;

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rcni_types::{Error, Result};
use serde_json::{Value, json};

use crate::protocol::{self, AllocateArgs, Call, GcArgs, LeaseKey, Reply, Request, VERSION};
use flags::{Flags, USAGE};
use lease::{Ctx, LeaseHandle, Spec};
use store::Store;

/// How long a connection may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One line on stderr (journald adds the time).
pub fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "dhcp daemon: {msg}");
}

/// Runs the daemon with the arguments after `daemon`; returns the exit status.
#[must_use]
pub fn main(args: Vec<String>) -> i32 {
    let flags = match Flags::parse(&args) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{e}\n{USAGE}");
            return 2;
        }
    };
    match run(&flags) {
        Ok(()) => 0,
        Err(e) => {
            log(&e);
            1
        }
    }
}

fn run(flags: &Flags) -> std::result::Result<(), String> {
    // Before any thread exists, so every thread inherits the mask and only `sigwait`
    // below sees these signals.
    let signals = termination_signals();
    signals
        .thread_block()
        .map_err(|e| format!("blocking SIGTERM/SIGINT: {e}"))?;

    if let Some(pidfile) = &flags.pidfile {
        if !pidfile.is_absolute() {
            return Err(format!(
                "Error writing pidfile {:?}: path not absolute",
                pidfile.display().to_string()
            ));
        }
        std::fs::write(pidfile, std::process::id().to_string())
            .map_err(|e| format!("Error writing pidfile {}: {e}", pidfile.display()))?;
    }

    let (listener, owned_socket) = listener(flags)?;
    let state_dir = flags.on_host(&flags.state_dir);
    let store = Store::open(&state_dir)
        .map_err(|e| format!("opening state directory {}: {e}", state_dir.display()))?;
    let daemon = Arc::new(Daemon {
        ctx: Arc::new(Ctx {
            host_prefix: flags.host_prefix.clone(),
            timeout: flags.timeout,
            resend_max: flags.resend_max,
            resend_timeout: flags.resend_timeout,
            store,
        }),
        leases: Mutex::new(HashMap::new()),
    });
    daemon.resume_all();

    let control = Arc::clone(&daemon);
    std::thread::Builder::new()
        .name("dhcp-control".into())
        .spawn(move || control.serve(&listener))
        .map_err(|e| format!("starting the control thread: {e}"))?;
    log(&format!(
        "listening on {}",
        owned_socket.as_deref().map_or_else(
            || "the socket from systemd".into(),
            |p| p.display().to_string()
        )
    ));

    let signal = signals
        .wait()
        .map_err(|e| format!("waiting for signals: {e}"))?;
    log(&format!(
        "{signal:?}: stopping; leases stay persisted for the next start"
    ));
    // Leases are not released: the pods keep their addresses, and the next daemon
    // takes them over from the state directory.
    if let Some(path) = owned_socket {
        let _ = std::fs::remove_file(path);
    }
    if let Some(pidfile) = &flags.pidfile {
        let _ = std::fs::remove_file(pidfile);
    }
    Ok(())
}

fn termination_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set
}

/// The listening socket: systemd's (socket activation, exactly one fd), else one made at
/// `-hostprefix` + `-socketpath` (returned as the second value, removed at exit).
fn listener(flags: &Flags) -> std::result::Result<(UnixListener, Option<PathBuf>), String> {
    let mut fds = listenfd::ListenFd::from_env();
    match fds.len() {
        0 => {}
        1 => {
            let l = fds
                .take_unix_listener(0)
                .map_err(|e| format!("LISTEN_FDS=1 but fd 3 is not a unix socket: {e}"))?
                .ok_or("LISTEN_FDS=1 but no FD found")?;
            return Ok((l, None));
        }
        n => {
            return Err(format!(
                "Too many ({n}) FDs passed through socket activation"
            ));
        }
    }
    let path = flags.on_host(&flags.socket_path);
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("Error getting listener: creating {}: {e}", dir.display()))?;
    }
    let bound = match UnixListener::bind(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            // A socket file is there: another daemon, or one left by a crash.
            if UnixStream::connect(&path).is_ok() {
                return Err(format!(
                    "Error getting listener: a daemon already listens on {}",
                    path.display()
                ));
            }
            let _ = std::fs::remove_file(&path);
            UnixListener::bind(&path)
        }
        other => other,
    };
    let l = bound.map_err(|e| {
        format!(
            "Error getting listener: listening on {}: {e}",
            path.display()
        )
    })?;
    Ok((l, Some(path)))
}

/// A lease slot: operations on one attachment are serialized by its mutex.
type Slot = Arc<Mutex<Option<LeaseHandle>>>;

struct Daemon {
    ctx: Arc<Ctx>,
    /// By client id.
    leases: Mutex<HashMap<String, Slot>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Daemon {
    fn slot(&self, client_id: &str) -> Slot {
        Arc::clone(lock(&self.leases).entry(client_id.to_string()).or_default())
    }

    /// Drops the slot of `client_id` when it is empty and nobody else holds it.
    fn tidy(&self, client_id: &str, slot: &Slot) {
        let mut map = lock(&self.leases);
        // Clones are made only under the map lock: 2 = the map's and ours.
        if Arc::strong_count(slot) == 2 && lock(slot).is_none() {
            map.remove(client_id);
        }
    }

    /// Takes over every persisted lease before answering anyone, each on its own thread.
    fn resume_all(&self) {
        let (records, problems) = self.ctx.store.load();
        for p in problems {
            log(&format!("ignoring state file {p}"));
        }
        let mut starting = Vec::new();
        for record in records {
            let client_id = record.key.client_id();
            let spec = Spec {
                key: record.key.clone(),
                netns: record.netns.clone(),
                options: record.options.clone(),
            };
            let ctx = Arc::clone(&self.ctx);
            let slot = self.slot(&client_id);
            starting.push(std::thread::spawn(move || {
                let mut held = lock(&slot);
                match LeaseHandle::start(Arc::clone(&ctx), spec, Some(record)) {
                    Ok(h) => *held = Some(h),
                    Err(e) => {
                        // The pod is gone (no netns, no interface) or the lease is lost:
                        // nothing to maintain any more.
                        log(&format!("{client_id}: not resumed: {e}"));
                        let _ = ctx.store.remove(&client_id);
                    }
                }
            }));
        }
        for t in starting {
            let _ = t.join();
        }
    }

    fn serve(self: Arc<Self>, listener: &UnixListener) {
        for conn in listener.incoming() {
            match conn {
                Ok(stream) => {
                    let daemon = Arc::clone(&self);
                    let spawned = std::thread::Builder::new()
                        .name("dhcp-request".into())
                        .spawn(move || daemon.handle(&stream));
                    if let Err(e) = spawned {
                        log(&format!("cannot start a request thread: {e}"));
                    }
                }
                Err(e) => {
                    log(&format!("accept: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn handle(&self, stream: &UnixStream) {
        let _ = stream.set_read_timeout(Some(REQUEST_READ_TIMEOUT));
        let reply = match protocol::read_line::<Value>(stream) {
            Ok(doc) => self.answer(doc),
            Err(e) => Reply::from_result(Err(Error::decoding(format!("reading the request: {e}")))),
        };
        if let Err(e) = protocol::write_line(stream, &reply) {
            log(&format!("writing a reply: {e}"));
        }
    }

    fn answer(&self, doc: Value) -> Reply {
        let version = doc.get("version").and_then(Value::as_u64);
        if version != Some(u64::from(VERSION)) {
            return Reply::from_result(Err(Error::incompatible_version(format!(
                "dhcp daemon protocol version {} is not supported; this daemon speaks {VERSION}",
                version.map_or_else(|| "(none)".to_string(), |v| v.to_string())
            ))
            .with_details("the dhcp plugin and daemon must come from the same release")));
        }
        let request: Request = match serde_json::from_value(doc) {
            Ok(r) => r,
            Err(e) => {
                return Reply::from_result(Err(Error::decoding(format!("malformed request: {e}"))));
            }
        };
        Reply::from_result(match request.call {
            Call::Allocate(a) => self.allocate(a),
            Call::Check(key) => self.check(&key),
            Call::Release(key) => self.release(&key).map(|()| Value::Null),
            Call::Status => Ok(Value::Null),
            Call::Gc(g) => self.gc(&g),
        })
    }

    /// ADD: the held lease when there is a live one (as the reference), else a new one.
    fn allocate(&self, args: AllocateArgs) -> Result<Value> {
        if !Path::new(&args.netns).is_absolute() {
            return Err(Error::invalid_env(format!(
                "netns path {:?} is not absolute",
                args.netns
            )));
        }
        let client_id = args.key.client_id();
        let slot = self.slot(&client_id);
        let outcome = {
            let mut held = lock(&slot);
            match held.take() {
                Some(h) if !h.expired() => {
                    let result = h.result();
                    *held = Some(h);
                    Ok(result)
                }
                stale => {
                    if let Some(h) = stale {
                        let _ = h.release();
                    }
                    let spec = Spec {
                        key: args.key,
                        netns: args.netns,
                        options: args.options,
                    };
                    LeaseHandle::start(Arc::clone(&self.ctx), spec, None).map(|h| {
                        let result = h.result();
                        *held = Some(h);
                        result
                    })
                }
            }
        };
        self.tidy(&client_id, &slot);
        outcome
    }

    fn check(&self, key: &LeaseKey) -> Result<Value> {
        let client_id = key.client_id();
        let slot = self.slot(&client_id);
        let outcome = match &*lock(&slot) {
            Some(h) if h.expired() => Err(Error::internal(format!(
                "the DHCP lease of {client_id} expired; {} was set down",
                key.ifname
            ))),
            Some(h) => Ok(h.result()),
            None => Err(Error::internal(format!(
                "no DHCP lease is held for {client_id}"
            ))),
        };
        self.tidy(&client_id, &slot);
        outcome
    }

    /// DEL: release when held; not held is success.
    fn release(&self, key: &LeaseKey) -> Result<()> {
        let client_id = key.client_id();
        let slot = self.slot(&client_id);
        let taken = lock(&slot).take();
        let outcome = taken.map_or(Ok(()), LeaseHandle::release);
        self.tidy(&client_id, &slot);
        outcome
    }

    /// GC: release every lease of the network whose attachment is not kept.
    fn gc(&self, args: &GcArgs) -> Result<Value> {
        let slots: Vec<(String, Slot)> = lock(&self.leases)
            .iter()
            .map(|(id, s)| (id.clone(), Arc::clone(s)))
            .collect();
        let mut released = Vec::new();
        let mut failures = Vec::new();
        for (client_id, slot) in slots {
            let stale = {
                let mut held = lock(&slot);
                let is_stale = held.as_ref().is_some_and(|h| {
                    let k = &h.spec.key;
                    k.network == args.network
                        && !args
                            .keep
                            .iter()
                            .any(|a| a.container_id == k.container_id && a.ifname == k.ifname)
                });
                if is_stale { held.take() } else { None }
            };
            if let Some(h) = stale {
                match h.release() {
                    Ok(()) => released.push(client_id.clone()),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            self.tidy(&client_id, &slot);
        }
        if !released.is_empty() {
            log(&format!("gc of {}: released {released:?}", args.network));
        }
        if failures.is_empty() {
            Ok(json!({ "released": released }))
        } else {
            Err(Error::internal(format!(
                "gc of {}: {}",
                args.network,
                failures.join("; ")
            )))
        }
    }
}
