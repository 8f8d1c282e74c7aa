//! `bank torture`: a Jepsen-style test of a whole consortium on a real (namespaced) network.
//!
//! - [`net`]: the namespaces, the bridge and the nftables partitions.

pub mod check;
pub mod history;
pub mod nemesis;
pub mod net;
pub mod procs;
