//! `ccr up`: node1, node2 and the hubs as processes on loopback, data in a folder.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{HubFile, NodeFile};
use ccr_core::cluster::HubId;

use crate::tls::{throwaway_ca, TlsFiles};
use crate::transport::{Addresses, MachineAddr};

/// The most hubs `ccr up` starts: their ports lie between the nodes' and the admin endpoints'.
pub const MAX_LOCAL_HUBS: u8 = 8;

/// The configuration files of a local cluster with `hubs` hubs whose ports start at `base`
/// (hub1 = base, node1 and node2 base+1 and +2, hub2… base+3…, admin base+11 and +12); with
/// `tls`, a throwaway CA in `DIR/tls` and each machine's certificate for loopback.
pub fn write_configs(
    dir: &Path,
    base: u16,
    key: &str,
    tls: bool,
    hubs: u8,
) -> Result<Configs, String> {
    if !(1..=MAX_LOCAL_HUBS).contains(&hubs) {
        return Err(format!(
            "--hubs {hubs}: a local cluster has 1 to {MAX_LOCAL_HUBS} hubs"
        ));
    }
    let addr = |port: u16| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], port)) };
    let machine = |port: u16| MachineAddr {
        public: addr(port),
        private: None,
    };
    let addresses = Addresses {
        hub: machine(base),
        node1: machine(base + 1),
        node2: machine(base + 2),
        more_hubs: (2..=u16::from(hubs))
            .map(|h| machine(base + h + 1))
            .collect(),
    };
    write_configs_at(dir, key, addresses, [addr(base + 11), addr(base + 12)], tls)
}

/// Where `write_configs` put each process's file.
#[derive(Debug, Clone)]
pub struct Configs {
    pub node1: PathBuf,
    pub node2: PathBuf,
    /// hub1's first (it hosts the witness), then hub2's, ….
    pub hubs: Vec<PathBuf>,
}

impl Configs {
    pub fn node(&self, n: ccr_core::cluster::NodeId) -> &Path {
        match n {
            ccr_core::cluster::NodeId::Node1 => &self.node1,
            ccr_core::cluster::NodeId::Node2 => &self.node2,
        }
    }

    /// hub1's file: the one `ccr client` and the witness's tools read.
    pub fn hub(&self) -> &Path {
        &self.hubs[0]
    }
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
) -> Result<Configs, String> {
    addresses.check()?;
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
    let hub_names: Vec<String> = HubId::all(addresses.hub_count())
        .map(hub_file_name)
        .collect();
    let hub_machines: Vec<&MachineAddr> = std::iter::once(&addresses.hub)
        .chain(&addresses.more_hubs)
        .collect();
    let mut certs: Vec<Option<TlsFiles>> = if tls {
        let mut machines = vec![
            ("node1", ips(&addresses.node1, Some(admin[0]))),
            ("node2", ips(&addresses.node2, Some(admin[1]))),
        ];
        for (name, m) in hub_names.iter().zip(&hub_machines) {
            machines.push((name.as_str(), ips(m, None)));
        }
        throwaway_ca(&dir.join("tls"), &machines)?
            .into_iter()
            .map(Some)
            .collect()
    } else {
        vec![None; 2 + hub_names.len()]
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
    let mut hubs = Vec::new();
    for (i, (id, name)) in HubId::all(addresses.hub_count())
        .zip(&hub_names)
        .enumerate()
    {
        let hub = HubFile {
            id,
            key: key.to_string(),
            data: Some(dir.join(name)),
            addresses: addresses.clone(),
            tls: certs[2 + i].take(),
            hub: Default::default(),
            cluster: Default::default(),
        };
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, toml::to_string(&hub).expect("serialises"))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        hubs.push(path);
    }
    Ok(Configs {
        node1: paths[0].clone(),
        node2: paths[1].clone(),
        hubs,
    })
}

/// hub1 keeps the name a one-hub cluster has always had (`hub.toml`, `hub/`); the others are
/// `hub2`, `hub3`, ….
pub fn hub_file_name(id: HubId) -> String {
    if id == HubId::FIRST {
        "hub".to_string()
    } else {
        id.to_string()
    }
}
