//! The CNI dispatcher (libcni's `skel`): reads the environment and stdin, validates them,
//! checks the config's version, calls the plugin's verb and prints the result or error.
//!
//! Plugins never read env vars, print or exit: they get a [`Request`] and return a
//! `Result`. [`run_with`] takes the environment and I/O as parameters so the whole
//! dispatcher is tested in-process; [`run`] binds it to the real process.

pub mod alloc;
mod dispatch;
mod request;
mod teardown;
#[cfg(test)]
mod tests;

pub use dispatch::{Env, run, run_with};
pub use request::{Command, Request};
pub use teardown::{Errors, Rollback};

use rcni_types::{Result, Success, version};

/// Every binary that links the dispatcher allocates through [`alloc::KeepFreed`].
#[global_allocator]
static ALLOCATOR: alloc::KeepFreed = alloc::KeepFreed;

/// A CNI plugin: one method per verb (spec §2). Verbs a plugin does not implement answer
/// as the Go skel does for a missing handler: STATUS and GC succeed with no output.
pub trait Plugin {
    /// The reference binary name ("bridge", "host-local"), used in the about text.
    fn name(&self) -> &'static str;

    /// Versions accepted in `cniVersion` (exact string match).
    fn supported_versions(&self) -> &'static [&'static str] {
        version::ALL
    }

    /// ADD: attach the container and return the result (amended `prevResult` when chained).
    ///
    /// # Errors
    /// Any failure; nothing created by this call may be left behind.
    fn add(&self, req: &Request) -> Result<Success>;

    /// DEL: best effort, idempotent; already-gone is success (spec §2 DEL).
    ///
    /// # Errors
    /// Failures to remove what still exists, all of them, after trying every step.
    fn del(&self, req: &Request) -> Result<()>;

    /// CHECK (config ≥ 0.4.0): verify the attachment still matches `prevResult`.
    ///
    /// # Errors
    /// The first mismatch found.
    fn check(&self, req: &Request) -> Result<()>;

    /// STATUS (config ≥ 1.1.0): is the plugin ready to service ADD?
    ///
    /// # Errors
    /// Code 50/51 when not available.
    fn status(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    /// GC (config ≥ 1.1.0): release everything not in `cni.dev/valid-attachments`.
    ///
    /// # Errors
    /// Every failure, after trying every release.
    fn gc(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
}
