//! Fuzz targets: one function per kind of input `ccr` and `ccr-sim` read from outside — files
//! people write, bytes peers send, files on a disk that a crash or a bad sector may have
//! damaged. Each takes arbitrary bytes and checks the rule every input must meet: bad input
//! ends in an error that names the file and the place, never in a panic, and never changes
//! what is already on disk.
//!
//! The same functions run under AFL++ (`cargo xtask fuzz`, through `src/bin/ccr-fuzz.rs`) and
//! as plain tests replaying the corpus (`tests/corpus.rs`, in `cargo xtask test`). [`seeds`]
//! gives each target valid inputs to start from.
//!
//! Not compiled under `--cfg madsim`: the real binary's frames and config files are not.
#![cfg(not(madsim))]

use std::collections::BTreeMap;
use std::path::Path;

use ccr::config::{HubFile, NodeFile};
use ccr::frame::{self, Key};
use ccr::wire::{AdminReply, AdminRequest, Wire};
use ccr_core::cluster::boot::{boot, Boot, BootError, PersistedState};
use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::node::{DB_FILE, INSPECT_DIR, LOG_DIR, STATE_FILE};
use ccr_core::disk::{execute_all, Disk, MemDisk};
use ccr_core::storage::database::Database;
use ccr_core::storage::names::closed_log_name;
use ccr_core::storage::record::Record;
use ccr_core::storage::writer::LogWriter;
use ccr_core::storage::MessageId;

pub type Target = fn(&[u8]);

/// Every target, by the name `cargo xtask fuzz` and the corpus folders use.
pub const TARGETS: &[(&str, Target)] = &[
    ("scenario_file", scenario_file),
    ("node_config", node_config),
    ("hub_config", hub_config),
    ("frame", frame_unauthenticated),
    ("frame_body", frame_authenticated),
    ("closed_log", closed_log),
    ("database_file", database_file),
    ("state_file", state_file),
];

pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|(n, _)| *n).collect()
}

/// The cluster key of the frame targets (any key of the allowed length would do).
const KEY: &str = "fuzzing-cluster-key-0123";

/// A scenario file: an error names `file:line:column`; a file that loads writes back (as
/// `ccr-sim shrink` writes scenarios) to a file that loads to the same scenario.
pub fn scenario_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_to_string refuses it, naming the file, before parsing starts
    };
    match ccr_sim::file::parse("fuzz.toml", text) {
        Err(e) => {
            assert_eq!(e.path, "fuzz.toml");
            assert!(e.line >= 1 && e.column >= 1, "no place in: {e}");
            assert!(e.to_string().starts_with("fuzz.toml:"), "{e}");
        }
        Ok(scenario) => {
            let written = ccr_sim::file::to_toml(&scenario, "");
            let again = ccr_sim::file::parse("written.toml", &written).unwrap_or_else(|e| {
                panic!("a loaded scenario wrote a file it refuses: {e}\n{written}")
            });
            assert_eq!(
                ccr_sim::file::to_toml(&again, ""),
                written,
                "writing and reading a scenario changed it"
            );
        }
    }
}

fn config_file<T: serde::de::DeserializeOwned>(name: &str, data: &[u8]) -> Option<T> {
    let text = std::str::from_utf8(data).ok()?;
    match ccr::config::parse::<T>(Path::new(name), text) {
        Err(e) => {
            assert!(e.starts_with(&format!("{name}:")), "{e}");
            None
        }
        Ok(file) => Some(file),
    }
}

/// `ccr node --config`: parsed, then validated as the node does before it starts.
pub fn node_config(data: &[u8]) {
    if let Some(file) = config_file::<NodeFile>("node.toml", data) {
        let _ = Key::new(&file.key);
        let _ = file.cluster.validate();
    }
}

/// `ccr hub --config`: parsed, then validated as the hub does before it starts.
pub fn hub_config(data: &[u8]) {
    if let Some(file) = config_file::<HubFile>("hub.toml", data) {
        let _ = Key::new(&file.key);
        let _ = file.cluster.validate();
    }
}

/// Bytes from anyone on the network: length and tag are checked before anything is parsed,
/// so nothing but a frame signed with the key gets through.
pub fn frame_unauthenticated(data: &[u8]) {
    let key = Key::new(KEY).expect("key");
    if frame::decode::<Wire>(&key, data).is_ok() {
        assert!(
            data.len() >= 36 && data[4..36] == frame::tag(&key, &data[36..])[..],
            "an unauthenticated frame was accepted"
        );
    }
}

/// What a peer holding the key may send: any body, signed. Whatever parses must encode again
/// to a frame that parses to the same message.
pub fn frame_authenticated(body: &[u8]) {
    let key = Key::new(KEY).expect("key");
    // The body after the format version byte (a wrong version is refused before parsing).
    let versioned: Vec<u8> = std::iter::once(frame::FRAME_VERSION)
        .chain(body.iter().copied())
        .collect();
    let signed = frame::seal(&key, &versioned);
    if let Ok(wire) = frame::decode::<Wire>(&key, &signed) {
        let again: Wire = frame::decode(&key, &frame::encode(&key, &wire)).expect("re-encoded");
        assert_eq!(
            serde_json::to_value(&again).expect("json"),
            serde_json::to_value(&wire).expect("json")
        );
    }
    // The admin endpoint reads these.
    let _ = frame::decode::<AdminRequest>(&key, &signed);
    let _ = frame::decode::<AdminReply>(&key, &signed);
}

/// The copy a node has on disk before one of its files is replaced by the input: three
/// closed logs, an open one, the database (checkpoint at generation 1) and the cluster state.
pub fn healthy_disk(config: &ClusterConfig) -> MemDisk {
    let mut disk = MemDisk::default();
    let (mut writer, ops) = LogWriter::start(
        &ccr_core::storage::names::LogFolder::first(LOG_DIR),
        config.storage.log_size,
        config.signature,
        1,
        None,
        1_000,
    );
    execute_all(&mut disk, &ops).expect("fresh disk");
    let mut db = Database::new(config.storage.llr_depth);
    let mut id = 0;
    for generation in 1..=4u32 {
        let records: Vec<Record> = (0..3)
            .map(|i| {
                id += 1;
                if i == 2 && generation > 1 {
                    Record::Delete {
                        id: MessageId(id - 3),
                    }
                } else {
                    Record::Insert {
                        id: MessageId(id),
                        size: 1_000 + i,
                        body: vec![b'm'; i as usize * 7],
                    }
                }
            })
            .collect();
        execute_all(&mut disk, &[writer.append(&records), writer.sync_op()]).expect("append");
        if generation == 1 {
            db.apply_log(1, &records).expect("apply");
        }
        if generation < 4 {
            let rolled = writer.roll(1_000 + u64::from(generation));
            execute_all(&mut disk, &rolled.ops).expect("roll");
        }
    }
    execute_all(&mut disk, &db.persist_ops(DB_FILE)).expect("db");
    execute_all(&mut disk, &PersistedState::initial(config).persist_ops()).expect("state");
    disk
}

fn contents(disk: &mut MemDisk) -> BTreeMap<String, Vec<u8>> {
    disk.paths()
        .into_iter()
        .filter(|p| !p.starts_with(&format!("{INSPECT_DIR}/")))
        .map(|p| {
            let bytes = disk.read(&p).expect("listed file reads").value;
            (p, bytes)
        })
        .collect()
}

/// Boots a node whose `path` holds `data`. A boot that fails, or that finds its copy damaged,
/// leaves every byte on the disk as it was (a reseed replaces the files later, on the
/// administrator's word).
fn boot_with(path: &str, data: &[u8]) {
    check_boot(path, data, boot);
}

/// [`boot_with`] with the boot function as a parameter, so a test can show the check firing
/// on a boot that breaks the rule.
pub fn check_boot(
    path: &str,
    data: &[u8],
    boot: impl FnOnce(&mut dyn Disk, &ClusterConfig, u64) -> Result<Boot, BootError>,
) {
    let config = ClusterConfig::default();
    let mut disk = healthy_disk(&config);
    disk.remove(path).expect("the file exists");
    execute_all(
        &mut disk,
        &[
            ccr_core::disk::DiskOp::Create { path: path.into() },
            ccr_core::disk::DiskOp::Append {
                path: path.into(),
                data: data.to_vec(),
            },
            ccr_core::disk::DiskOp::Sync { path: path.into() },
        ],
    )
    .expect("write the input");
    let before = contents(&mut disk);
    let outcome = boot(&mut disk, &config, 2_000);
    let refused = match &outcome {
        Err(e) => Some(e.to_string()),
        Ok(b) => b.damaged().map(str::to_string),
    };
    if let Some(why) = refused {
        let after = contents(&mut disk);
        assert!(
            before == after,
            "a boot that refused the disk ({why}) changed it: {:?}",
            changed(&before, &after)
        );
        let dir = path.rsplit_once('/').map_or(path, |(d, _)| d);
        assert!(
            why.contains(dir),
            "the refusal does not name the file or its folder ({path}): {why}"
        );
    }
}

fn changed(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut paths: Vec<&String> = before.keys().chain(after.keys()).collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect()
}

/// A closed log (the second generation) replaced by the input.
pub fn closed_log(data: &[u8]) {
    boot_with(&format!("{LOG_DIR}/{}", closed_log_name(2)), data);
}

/// The database file replaced by the input.
pub fn database_file(data: &[u8]) {
    boot_with(DB_FILE, data);
}

/// The cluster state file replaced by the input.
pub fn state_file(data: &[u8]) {
    boot_with(STATE_FILE, data);
}

/// Valid inputs for `target`, for a fresh corpus (the fuzzer mutates from these).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let config = ClusterConfig::default();
    let key = Key::new(KEY).expect("key");
    let messages = || {
        vec![
            Wire::Submit {
                id: 7,
                size: 1_200,
                body: b"a body".to_vec(),
            },
            Wire::Acked { id: 7 },
            Wire::Admin(AdminRequest::Status),
            Wire::Admin(AdminRequest::Move {
                target: ccr_core::cluster::NodeId::ALL[1],
                comment: "patch Tuesday".into(),
            }),
            Wire::Admin(AdminRequest::Missing { ids: vec![1, 2, 3] }),
            Wire::AdminReply(AdminReply::Refused("copy is suspended".into())),
        ]
    };
    let on_disk = |path: &str| {
        let mut disk = healthy_disk(&config);
        vec![disk.read(path).expect("seeded file").value]
    };
    match target {
        "scenario_file" => ccr_sim::scenario::BUILTINS
            .iter()
            .filter_map(|n| ccr_sim::scenario::builtin(n))
            .map(|s| ccr_sim::file::to_toml(&s, "").into_bytes())
            .collect(),
        "node_config" | "hub_config" => {
            let dir = tempfile::tempdir().expect("a temporary folder");
            // With and without a [tls] section.
            [false, true]
                .into_iter()
                .map(|tls| {
                    let configs =
                        ccr::up::write_configs(dir.path(), 7400, KEY, tls, 1).expect("configs");
                    let path = if target == "node_config" {
                        &configs.node1
                    } else {
                        configs.hub()
                    };
                    std::fs::read(path).expect("written")
                })
                .collect()
        }
        "frame" => messages().iter().map(|m| frame::encode(&key, m)).collect(),
        // What follows the version byte in a frame: the JSON's length, the JSON, bulk bytes.
        "frame_body" => messages()
            .iter()
            .map(|m| frame::encode(&key, m)[frame::BODY_START + 1..].to_vec())
            .collect(),
        "closed_log" => on_disk(&format!("{LOG_DIR}/{}", closed_log_name(2))),
        "database_file" => on_disk(DB_FILE),
        "state_file" => on_disk(STATE_FILE),
        other => panic!("no target {other}"),
    }
}
