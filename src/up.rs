//! `ccr up`: node1, node2 and the hub as three processes on loopback, data in a folder.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{HubFile, NodeFile};
use crate::tls::throwaway_ca;
use crate::transport::{Addresses, MachineAddr};

/// The configuration files of a local cluster whose ports start at `base`; with `tls`, a
/// throwaway CA in `DIR/tls` and each machine's certificate for loopback.
pub fn write_configs(dir: &Path, base: u16, key: &str, tls: bool) -> Result<[PathBuf; 3], String> {
    let addr = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let machine = |port: u16| MachineAddr {
        public: addr(port),
        private: None,
    };
    let addresses = Addresses {
        hub: machine(base),
        node1: machine(base + 1),
        node2: machine(base + 2),
        more_hubs: Vec::new(),
    };
    write_configs_at(dir, key, addresses, [addr(base + 11), addr(base + 12)], tls)
}

/// The configuration files of a cluster at `addresses`, node1's and node2's admin endpoints at
/// `admin`; with `tls`, a throwaway CA in `DIR/tls` and each machine's certificate for the
/// addresses it listens on.
pub fn write_configs_at(
    dir: &Path,
    key: &str,
    addresses: Addresses,
    admin: [SocketAddr; 2],
    tls: bool,
) -> Result<[PathBuf; 3], String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ips = |m: &MachineAddr, extra: Option<SocketAddr>| -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = [Some(m.public), m.private, extra]
            .into_iter()
            .flatten()
            .map(|a| a.ip())
            .collect();
        ips.sort();
        ips.dedup();
        ips
    };
    let mut certs = if tls {
        let machines = [
            ("node1", ips(&addresses.node1, Some(admin[0]))),
            ("node2", ips(&addresses.node2, Some(admin[1]))),
            ("hub", ips(&addresses.hub, None)),
        ];
        throwaway_ca(&dir.join("tls"), &machines)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None, None, None]
    };
    let mut paths = Vec::new();
    for (i, node) in ccr_core::cluster::NodeId::ALL.into_iter().enumerate() {
        let file = NodeFile {
            node,
            data: dir.join(node.name()),
            key: key.to_string(),
            admin: admin[i],
            addresses: addresses.clone(),
            tls: certs[i].take(),
            cluster: Default::default(),
        };
        let path = dir.join(format!("{}.toml", node.name()));
        std::fs::write(&path, toml::to_string(&file).expect("serialises"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path);
    }
    let hub = HubFile {
        id: Default::default(),
        key: key.to_string(),
        data: Some(dir.join("hub")),
        addresses,
        tls: certs[2].take(),
        hub: Default::default(),
        cluster: Default::default(),
    };
    let path = dir.join("hub.toml");
    std::fs::write(&path, toml::to_string(&hub).expect("serialises"))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    paths.push(path);
    Ok([paths[0].clone(), paths[1].clone(), paths[2].clone()])
}
