//! nf_tables and ctnetlink over a plain `NETLINK_NETFILTER` socket, without processes:
//! the message plumbing ([`socket`]), rule lookups and deletions by handle ([`rules`]),
//! and releasing the sockets after a grace period ([`linger`]).

pub mod abi;
pub mod linger;
pub mod rules;
pub mod socket;
pub mod xt;
