//! Running the netfilter tools (`iptables-restore`, `iptables-save`, `nft`).
//!
//! Children are spawned from the calling thread and so inherit its network namespace: a
//! caller that entered a container namespace on this thread configures that namespace.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{ErrorKind as IoErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::error::{Error, ErrorKind, Result};

/// Seconds `iptables-restore` waits for the xtables lock. The reference waits forever
/// (`--wait` with no value), which can hang a CNI call behind a stuck process.
pub(crate) const LOCK_WAIT_SECS: &str = "10";

/// How long any tool may run before it is killed: well past [`LOCK_WAIT_SECS`], below the
/// 55 s the reference gives `nft` for reading a chain (plugins#852: huge rulesets are slow).
pub(crate) const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Searched after `PATH`: runtimes sometimes start plugins with a `PATH` lacking the sbin
/// directories, where Debian and Fedora install the netfilter tools.
const FALLBACK_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/sbin",
    "/sbin",
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
];

thread_local! {
    static SPAWNED: Cell<usize> = const { Cell::new(0) };
}

/// Processes this thread has started through [`run`]; tests pin the count per operation.
pub(crate) fn spawned_on_this_thread() -> usize {
    SPAWNED.with(Cell::get)
}

/// Counts processes that a helper thread started on behalf of this one (see
/// [`spawned_on_this_thread`]), so an operation's count does not depend on its threads.
pub(crate) fn credit_spawns(n: usize) {
    SPAWNED.with(|c| c.set(c.get() + n));
}

/// Directories searched for a tool: `PATH`, then [`FALLBACK_DIRS`].
pub(crate) fn search_dirs(path_var: Option<&OsStr>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path_var
        .map(|p| {
            std::env::split_paths(p)
                .filter(|d| d.is_absolute())
                .collect()
        })
        .unwrap_or_default();
    dirs.extend(FALLBACK_DIRS.iter().map(PathBuf::from));
    dirs
}

/// The first executable file called `tool` in `dirs`.
pub(crate) fn locate_in(dirs: &[PathBuf], tool: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(tool)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub(crate) fn locate(tool: &str) -> Option<PathBuf> {
    locate_in(&search_dirs(std::env::var_os("PATH").as_deref()), tool)
}

/// A finished tool run; `success` is false for a non-zero exit.
#[derive(Debug)]
pub(crate) struct Finished {
    command: String,
    pub(crate) success: bool,
    status: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Finished {
    /// stdout on success, otherwise an error naming `what`, the command and its stderr.
    pub(crate) fn into_stdout(self, what: impl std::fmt::Display) -> Result<String> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(self.failure(what))
        }
    }

    pub(crate) fn failure(&self, what: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::ToolFailed,
            format!(
                "{what}: `{}` failed ({}): {}",
                self.command,
                self.status,
                self.stderr.trim()
            ),
        )
    }
}

/// Runs `tool args`, feeding `stdin` if given, and waits for it at most [`TOOL_TIMEOUT`].
///
/// `Err` only when the tool could not be run at all ([`ErrorKind::ToolMissing`] when it is not
/// installed) or was killed for overrunning; a non-zero exit is a [`Finished`] with
/// `success == false`.
pub(crate) fn run(tool: &str, args: &[&str], stdin: Option<&str>) -> Result<Finished> {
    run_with_timeout(tool, args, stdin, TOOL_TIMEOUT)
}

/// [`run`] with an explicit bound on the whole run (input, output and exit).
pub(crate) fn run_with_timeout(
    tool: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Finished> {
    let command = if args.is_empty() {
        tool.to_owned()
    } else {
        format!("{tool} {}", args.join(" "))
    };
    let Some(path) = locate(tool) else {
        return Err(Error::new(
            ErrorKind::ToolMissing,
            format!("`{tool}` not found in PATH or the sbin directories"),
        ));
    };
    let io_error = |e: std::io::Error| {
        let kind = if e.kind() == IoErrorKind::NotFound {
            ErrorKind::ToolMissing
        } else {
            ErrorKind::ToolFailed
        };
        Error::new(kind, format!("`{command}`: {e}"))
    };
    let deadline = Instant::now() + timeout;
    SPAWNED.with(|n| n.set(n.get() + 1));
    let mut child = Command::new(&path)
        .args(args)
        // nft reports a missing table with strerror(), which is translated; we recognise it.
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_error)?;
    let (stdout, stderr) = match communicate(&mut child, stdin.unwrap_or_default(), deadline) {
        Ok(output) => output,
        Err(stop) => {
            // Killing our own, not yet reaped child cannot hit another process.
            let _ = child.kill();
            let _ = child.wait();
            return Err(match stop {
                Stop::TimedOut => Error::new(
                    ErrorKind::ToolFailed,
                    format!(
                        "`{command}` did not finish within {} s and was killed",
                        timeout.as_secs_f32()
                    ),
                ),
                Stop::Io(e) => io_error(e),
            });
        }
    };
    // Both output pipes are closed: the tool has exited or is exiting.
    let status = child.wait().map_err(io_error)?;
    Ok(Finished {
        command,
        success: status.success(),
        status: status.to_string(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Why [`communicate`] gave up on a child.
enum Stop {
    TimedOut,
    Io(std::io::Error),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Self {
        Stop::Io(e.into())
    }
}

/// Feeds `input` to the child and collects its stdout and stderr until both are closed, or
/// until `deadline`. One thread, one `poll` loop: the tool may write before it has read all
/// its input (errors are printed as lines are parsed) and a stuck tool (a held xtables lock,
/// an nft walking a huge ruleset) must not hang the plugin, so no step may block for good.
fn communicate(
    child: &mut Child,
    input: &str,
    deadline: Instant,
) -> std::result::Result<(Vec<u8>, Vec<u8>), Stop> {
    let mut stdin = child.stdin.take();
    if let Some(pipe) = &stdin {
        let flags = OFlag::from_bits_truncate(fcntl(pipe, FcntlArg::F_GETFL)?);
        fcntl(pipe, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    }
    let mut pending = input.as_bytes();
    let mut outputs = [
        (child.stdout.take().map(Output::Out), Vec::new()),
        (child.stderr.take().map(Output::Err), Vec::new()),
    ];
    let mut buf = [0u8; 8192];
    loop {
        if pending.is_empty() {
            // Dropping the pipe is the tool's end of input.
            stdin = None;
        }
        if stdin.is_none() && outputs.iter().all(|(pipe, _)| pipe.is_none()) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::TimedOut);
        }
        // Round up so the last fraction of a millisecond is slept, not spun.
        let timeout =
            PollTimeout::try_from(left.as_millis().saturating_add(1)).unwrap_or(PollTimeout::MAX);
        let (stdin_ready, ready) = {
            let mut fds = Vec::with_capacity(3);
            if let Some(pipe) = &stdin {
                fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLOUT));
            }
            for (pipe, _) in &outputs {
                if let Some(pipe) = pipe {
                    fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
                }
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let mut revents = fds.iter().map(|fd| fd.any().unwrap_or(true));
            let stdin_ready = stdin.is_some() && revents.next().unwrap_or(false);
            let mut ready = [false; 2];
            for (slot, (pipe, _)) in ready.iter_mut().zip(&outputs) {
                if pipe.is_some() {
                    *slot = revents.next().unwrap_or(false);
                }
            }
            (stdin_ready, ready)
        };
        if stdin_ready && let Some(pipe) = stdin.as_mut() {
            match pipe.write(pending) {
                Ok(n) => pending = pending.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == IoErrorKind::WouldBlock => {}
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                // The tool exited or closed its input early; its status tells why.
                Err(e) if e.kind() == IoErrorKind::BrokenPipe => pending = &[],
                Err(e) => return Err(e.into()),
            }
        }
        for ((pipe, collected), is_ready) in outputs.iter_mut().zip(ready) {
            let Some(open) = pipe.as_mut().filter(|_| is_ready) else {
                continue;
            };
            // Readable (or hung up) per poll, so this read returns without blocking.
            match open.read(&mut buf) {
                Ok(0) => *pipe = None,
                Ok(n) => collected.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let [(_, stdout), (_, stderr)] = outputs;
    Ok((stdout, stderr))
}

/// A child's stdout or stderr.
enum Output {
    Out(ChildStdout),
    Err(ChildStderr),
}

impl Output {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Output::Out(pipe) => pipe.as_fd(),
            Output::Err(pipe) => pipe.as_fd(),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Output::Out(pipe) => pipe.read(buf),
            Output::Err(pipe) => pipe.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_dirs_keep_path_order_then_fallbacks() {
        let dirs = search_dirs(Some(OsStr::new("/a:relative:/b")));
        assert_eq!(dirs[0], PathBuf::from("/a"));
        assert_eq!(dirs[1], PathBuf::from("/b"));
        assert_eq!(dirs[2], PathBuf::from(FALLBACK_DIRS[0]));
        assert_eq!(search_dirs(None).len(), FALLBACK_DIRS.len());
    }

    #[test]
    fn large_input_and_output_do_not_deadlock() {
        // Far more than a pipe holds, in both directions at once.
        let input = "0123456789abcdef\n".repeat(64 * 1024);
        let done = run("cat", &[], Some(&input)).expect("cat runs");
        assert!(done.success);
        assert_eq!(done.stdout, input);
    }

    #[test]
    fn stderr_and_status_are_kept() {
        let done = run("sh", &["-c", "echo out; echo err >&2; exit 3"], None).expect("sh runs");
        assert!(!done.success);
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        assert!(done.failure("doing x").to_string().contains("err"));
    }

    #[test]
    fn a_hanging_tool_is_killed_at_the_deadline() {
        let started = Instant::now();
        let err = run_with_timeout(
            "sleep",
            &["20"],
            Some("ignored"),
            Duration::from_millis(200),
        )
        .expect_err("sleep overruns");
        assert_eq!(err.kind(), ErrorKind::ToolFailed);
        assert!(err.to_string().contains("killed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_tool_that_ignores_its_input_is_fine() {
        let input = "x".repeat(1 << 20);
        let done = run("true", &[], Some(&input)).expect("true runs");
        assert!(done.success);
    }

    #[test]
    fn missing_tool_is_tool_missing() {
        let err = run("rcni-no-such-tool", &[], None).expect_err("tool does not exist");
        assert_eq!(err.kind(), ErrorKind::ToolMissing);
    }
}
