//! The files `ccr node --config` and `ccr hub --config` read. Errors name the file and line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::HubConfig;
use ccr_core::cluster::NodeId;
use serde::{Deserialize, Serialize};

use crate::tls::TlsFiles;
use crate::transport::Addresses;

/// `ccr node --config node1.toml`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    pub node: NodeId,
    /// The node's data folder (logs, database, cluster state): created if missing.
    pub data: PathBuf,
    /// The cluster key every process shares (at least 16 characters).
    pub key: String,
    /// Where admin commands are accepted; loopback unless you say otherwise.
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    pub addresses: Addresses,
    /// TLS on every link of this process (to peers, the hub, admin tools); plain TCP without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub cluster: ClusterConfig,
}

fn default_admin() -> SocketAddr {
    "127.0.0.1:7100".parse().expect("valid")
}

/// `ccr hub --config hub.toml`: the hub transport, its dumpster, and the witness share.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubFile {
    /// Which hub this process is (1 when absent): hub1 also runs the file share witness.
    #[serde(default)]
    pub id: ccr_core::cluster::HubId,
    pub key: String,
    /// Where the hub keeps its queue, dumpster and witness state (`hub-state.json`), so a
    /// restart loses none of them; created if missing. Without it the hub keeps them in
    /// memory only.
    #[serde(default)]
    pub data: Option<PathBuf>,
    pub addresses: Addresses,
    /// TLS on every link of this process (nodes, clients); plain TCP without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    #[serde(default)]
    pub hub: HubConfig,
    #[serde(default)]
    pub cluster: ClusterConfig,
}

pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(path, &text)
}

/// Parses a config file's text; `path` only names it in errors (`path:line:column: …`).
pub fn parse<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                (line, col)
            })
            .unwrap_or((0, 0));
        format!("{}:{line}:{col}: {}", path.display(), e.message())
    })
}
