//! The static IPAM plugin (reference `plugins/ipam/static`): hands out exactly the
//! addresses, routes and DNS settings it is given, from the config, `CNI_ARGS`, `args.cni.ips`
//! or the `ips` capability (precedence in [`config`]).
//!
//! It reserves nothing, so DEL and GC have nothing to free and STATUS is always ready.

pub mod config;
#[cfg(test)]
mod tests;

use rcni_skel::{Plugin, Request};
use rcni_types::{Error, Result, Success};

pub use config::Conf;

/// The plugin value handed to skel.
pub struct Static;

impl Conf {
    /// The ADD result, labelled `version` (skel prints it in that version).
    #[must_use]
    pub fn result(&self, version: &str) -> Success {
        Success {
            cni_version: version.to_owned(),
            ips: self.addresses.clone(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
            ..Success::default()
        }
    }

    /// CHECK as the reference does it: every configured address that appears in `prev`
    /// must carry the configured gateway there (when one is configured). An address
    /// missing from `prev` is not an error in the reference, so it is not here either.
    ///
    /// # Errors
    /// The first address whose gateway differs (code 999, the reference's message).
    pub fn check(&self, prev: &Success, ifname: &str) -> Result<()> {
        for want in &self.addresses {
            let want_ip = want.address.ip();
            // The first entry with the same address decides.
            let Some(got) = prev.ips.iter().find(|ip| ip.address.ip() == want_ip) else {
                continue;
            };
            if want.gateway.is_some() && want.gateway != got.gateway {
                return Err(Error::internal(format!(
                    "static: Failed to match addr {want_ip} on interface {ifname}"
                )));
            }
        }
        Ok(())
    }
}

impl Static {
    fn conf(req: &Request) -> Result<Conf> {
        Conf::parse(&req.stdin, &req.args)
    }
}

impl Plugin for Static {
    fn name(&self) -> &'static str {
        "static"
    }

    fn add(&self, req: &Request) -> Result<Success> {
        Ok(Self::conf(req)?.result(req.version()))
    }

    /// Nothing was reserved: DEL always succeeds, without reading the config (as the
    /// reference, so a DEL with a config that no longer parses still cleans up).
    fn del(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    fn check(&self, req: &Request) -> Result<()> {
        let conf = Self::conf(req)?;
        let prev = req
            .prev_result()
            .map_err(|e| Error::internal(format!("could not parse prevResult: {}", e.msg)))?
            .ok_or_else(|| Error::internal("Required prevResult missing"))?;
        conf.check(&prev, &req.ifname)
    }

    /// Always ready: static needs no pool and no daemon.
    fn status(&self, _req: &Request) -> Result<()> {
        Ok(())
    }

    /// Nothing is ever reserved, so nothing is left to collect.
    fn gc(&self, _req: &Request) -> Result<()> {
        Ok(())
    }
}
