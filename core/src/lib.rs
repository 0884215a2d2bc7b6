//! The CCR logic of Exchange Server 2007 cluster continuous replication, as sans-IO state
//! machines and plain data.
//!
//! Nothing here opens a socket, reads a clock or draws a random number on its own: the caller
//! passes time in, and storage goes through the [`disk::Disk`] trait, whose in-memory
//! implementation is deterministic. That is what lets the simulator, proptest and the real
//! binary run the very same code.

pub mod cluster;
pub mod disk;
pub mod host;
pub mod storage;
