//! Netfilter rules for the CNI plugins: iptables (one `iptables-restore --noflush`
//! transaction per table and family) and nftables (one `nft -f` batch) backends.
//!
//! Every name written into netfilter is the reference plugins' own ([`names`]), so rules added
//! by the Go plugins are removed by ours and the other way round (DESIGN §3, §5).
//!
//! All tools run as children of the calling thread, in that thread's network namespace.

mod error;
mod exec;
mod forward;
mod iptables;
mod masquerade;
pub mod names;
pub mod nf;
mod nft;
mod portmap;
mod spoofcheck;
#[cfg(test)]
mod testutil;

pub use error::{Error, ErrorKind, Result};
pub use forward::{Firewalld, ForwardRules, IngressPolicy, Isolation, Prior};
pub use masquerade::{
    Backend, IptablesMasquerade, Masquerade, MasqueradeRule, NftablesMasquerade, backend, gc_all,
    masquerade, teardown_addresses, teardown_all, teardown_container,
};
pub use portmap::{
    IptablesPortmap, MarkChain, NftablesPortmap, PortMapper, PortMapping, PortmapSpec, Protocol,
    conditions_backend, portmap_backend, portmapper,
};
pub use spoofcheck::SpoofCheck;
