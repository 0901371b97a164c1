//! The firewall plugin's keys (reference §2.5, `plugins/meta/firewall/firewall.go`), parsed
//! and validated before anything is changed.

use std::path::PathBuf;

use rcni_firewall::names::{
    BACKEND_IPTABLES, FIREWALLD_DEFAULT_ZONE, FWD_ADMIN_CHAIN, INGRESS_ISOLATED, INGRESS_OPEN,
    INGRESS_SAME_BRIDGE,
};
use rcni_firewall::{Firewalld, IngressPolicy};
use rcni_skel::Request;
use rcni_types::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::names::{BACKEND_FIREWALLD, DEFAULT_DATA_DIR};

/// The JSON keys, as Go's `FirewallNetConf` declares them, plus `dataDir` (ours).
#[derive(Debug, Default, Deserialize)]
struct RawConf {
    #[serde(default)]
    backend: String,
    #[serde(default, rename = "iptablesAdminChainName")]
    admin_chain: String,
    #[serde(default, rename = "firewalldZone")]
    zone: String,
    #[serde(default, rename = "ingressPolicy")]
    ingress_policy: String,
    #[serde(default, rename = "dataDir")]
    data_dir: String,
}

/// Where the container's addresses are let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Iptables,
    Firewalld,
}

impl Backend {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Iptables => BACKEND_IPTABLES,
            Backend::Firewalld => BACKEND_FIREWALLD,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conf {
    pub network: String,
    /// `None`: choose as the reference does, firewalld when it is running.
    pub backend: Option<Backend>,
    pub admin_chain: String,
    pub zone: String,
    /// `None` for `open`.
    pub ingress_policy: Option<IngressPolicy>,
    /// Where each attachment's addresses and backend are recorded (ours; the reference
    /// keeps nothing, so its DEL without `prevResult` removes nothing).
    pub data_dir: PathBuf,
}

impl Conf {
    /// # Errors
    /// Keys of the wrong type (999, as Go's `json.Unmarshal`); an unknown ingress policy,
    /// an admin chain or zone that cannot be written (7).
    pub fn parse(req: &Request) -> Result<Conf> {
        let raw: RawConf = req.plugin_config()?;
        // As the reference, a value other than these two means "choose".
        let backend = match raw.backend.as_str() {
            BACKEND_IPTABLES => Some(Backend::Iptables),
            BACKEND_FIREWALLD => Some(Backend::Firewalld),
            _ => None,
        };
        let ingress_policy = match raw.ingress_policy.as_str() {
            "" | INGRESS_OPEN => None,
            INGRESS_SAME_BRIDGE => Some(IngressPolicy::SameBridge),
            INGRESS_ISOLATED => Some(IngressPolicy::Isolated),
            other => {
                return Err(Error::invalid_config(format!(
                    "unknown ingress policy: {other:?}"
                ))
                .with_details(format!(
                    "ingressPolicy is {INGRESS_OPEN:?}, {INGRESS_SAME_BRIDGE:?} or {INGRESS_ISOLATED:?}"
                )));
            }
        };
        let admin_chain = if raw.admin_chain.is_empty() {
            FWD_ADMIN_CHAIN.to_owned()
        } else {
            raw.admin_chain
        };
        // Validated here so that a bad name fails before anything changes.
        rcni_firewall::ForwardRules::new(&admin_chain, &[], None).map_err(|e| {
            Error::invalid_config(format!("iptablesAdminChainName: {}", e.message()))
        })?;
        let zone = if raw.zone.is_empty() {
            FIREWALLD_DEFAULT_ZONE.to_owned()
        } else {
            raw.zone
        };
        Firewalld::new(&zone)
            .map_err(|e| Error::invalid_config(format!("firewalldZone: {}", e.message())))?;
        Ok(Conf {
            network: req.net.name.clone(),
            backend,
            admin_chain,
            zone,
            ingress_policy,
            data_dir: if raw.data_dir.is_empty() {
                PathBuf::from(DEFAULT_DATA_DIR)
            } else {
                PathBuf::from(raw.data_dir)
            },
        })
    }

    /// The configured backend, or the reference's choice: firewalld when it owns its name on
    /// the system bus (a `busctl` call, skipped when there is no system bus), iptables
    /// otherwise.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend.unwrap_or_else(|| {
            if Firewalld::is_running() {
                Backend::Firewalld
            } else {
                Backend::Iptables
            }
        })
    }
}
