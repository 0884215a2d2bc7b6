//! `ccr up`: node1, node2 and the hub as three processes on loopback, data in a folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{HubFile, NodeFile};
use crate::transport::{Addresses, MachineAddr};

/// The configuration files of a local cluster whose ports start at `base`.
pub fn write_configs(dir: &Path, base: u16, key: &str) -> Result<[PathBuf; 3], String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let addr = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let addresses = Addresses {
        hub: MachineAddr {
            public: addr(base),
            private: None,
        },
        node1: MachineAddr {
            public: addr(base + 1),
            private: None,
        },
        node2: MachineAddr {
            public: addr(base + 2),
            private: None,
        },
    };
    let mut paths = Vec::new();
    for (i, node) in ccr_core::cluster::NodeId::ALL.into_iter().enumerate() {
        let file = NodeFile {
            node,
            data: dir.join(node.name()),
            key: key.to_string(),
            admin: addr(base + 11 + i as u16),
            addresses: addresses.clone(),
            cluster: Default::default(),
        };
        let path = dir.join(format!("{}.toml", node.name()));
        std::fs::write(&path, toml::to_string(&file).expect("serialises"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path);
    }
    let hub = HubFile {
        key: key.to_string(),
        data: Some(dir.join("hub")),
        addresses,
        hub: Default::default(),
        cluster: Default::default(),
    };
    let path = dir.join("hub.toml");
    std::fs::write(&path, toml::to_string(&hub).expect("serialises"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    paths.push(path);
    Ok([paths[0].clone(), paths[1].clone(), paths[2].clone()])
}
