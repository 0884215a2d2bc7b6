//! The `ccr` package: the real CCR binary arrives here with the real-binary issue. Until then
//! the package exists to hold the workspace's cross-crate integration tests (`tests/`).

pub use ccr_core as core;
