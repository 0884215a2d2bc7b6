//! The real `ccr` binary's pieces: the same CCR core and host the simulator tests, on TCP, real
//! files and the real clock.
//!
//! Rooms: `frame` (authenticated, length-limited frames), `wire` (what travels between
//! processes), `tls` (TLS on those links, and `ccr up`'s throwaway CA), `transport` (TCP network
//! for the host), `config` (node and hub files),
//! `node_proc` (a mailbox node process: node, log share, admin endpoint), `hub_proc` (hub,
//! dumpster and witness), `client` (mail submission and admin commands), `mail` (message bodies, the
//! client's receipts and checking them against a node's stored bytes), `up` (a whole local
//! cluster in one command), `local` (such a cluster as child processes, for the loopback
//! tests and `ccr bench`), `netns` (the three machines in network namespaces, for partitions and a WAN),
//! `wan_link` (an emulated WAN circuit where the kernel has no `tc netem`), `bench` (the real binary's benchmarks).
//!
//! Under `--cfg madsim` (the simulator build) none of this is compiled: it talks to real
//! sockets.

#[cfg(not(madsim))]
pub mod bench;
#[cfg(not(madsim))]
pub mod client;
#[cfg(not(madsim))]
pub mod config;
#[cfg(not(madsim))]
pub mod frame;
#[cfg(not(madsim))]
pub mod hub_proc;
#[cfg(not(madsim))]
pub mod local;
#[cfg(not(madsim))]
pub mod mail;
#[cfg(not(madsim))]
pub mod netns;
#[cfg(not(madsim))]
pub mod node_proc;
#[cfg(not(madsim))]
pub mod tls;
#[cfg(not(madsim))]
pub mod transport;
#[cfg(not(madsim))]
pub mod up;
#[cfg(not(madsim))]
pub mod wan_link;
#[cfg(not(madsim))]
pub mod wire;
