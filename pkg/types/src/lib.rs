//! CNI spec types shared by every rcni crate.
//!
//! - [`error`]: the error document and its codes.
//! - [`result`]: results for every spec version and the conversions between them.
//! - [`conf`]: the config keys every plugin shares.
//! - [`json`]: decoding that behaves like Go's encoding/json (what the reference plugins use).
//! - [`net`]: IP and CIDR parsing that behaves like Go's `net` package (IPv4-mapped
//!   addresses, host bits kept).
//! - [`args`]: CNI_ARGS (`K=V;K=V`, `IgnoreUnknown`).
//! - [`version`]: supported versions and comparisons.

pub mod args;
pub mod conf;
pub mod error;
pub mod json;
pub mod net;
pub mod result;
pub mod version;

pub use conf::{Attachment, IpamConf, NetConf, RouteConf};
pub use error::{Code, Error, Result, ResultExt};
pub use result::{Dns, Interface, IpConfig, Route, Success};
