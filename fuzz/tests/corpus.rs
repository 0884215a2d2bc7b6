//! Every fuzz target replays its seeds, its corpus (`fuzz/corpus/TARGET/`) and every input that
//! once crashed it (`fuzz/crashes/TARGET/`, kept as regressions) — as plain tests, so
//! `cargo xtask test` holds the code to what fuzzing found without running a fuzzer.
#![cfg(not(madsim))]

use std::path::Path;

fn replay(target: &str) {
    let run = ccr_fuzz::target(target).expect("a target");
    let mut inputs: Vec<(String, Vec<u8>)> = ccr_fuzz::seeds(target)
        .into_iter()
        .enumerate()
        .map(|(i, b)| (format!("seed {i}"), b))
        .collect();
    for folder in ["corpus", "crashes"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(folder)
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            inputs.push((f.display().to_string(), std::fs::read(&f).unwrap()));
        }
    }
    let failed: Vec<String> = inputs
        .iter()
        .filter(|(_, bytes)| std::panic::catch_unwind(|| run(bytes)).is_err())
        .map(|(name, _)| name.clone())
        .collect();
    assert!(failed.is_empty(), "{target} fails on: {failed:#?}");
    eprintln!("{target}: {} inputs replayed", inputs.len());
}

macro_rules! replays {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            replay(stringify!($name));
        })*

        #[test]
        fn every_target_is_replayed() {
            assert_eq!(ccr_fuzz::names(), [$(stringify!($name)),*]);
        }
    };
}

replays!(
    scenario_file,
    node_config,
    hub_config,
    frame,
    frame_body,
    closed_log,
    database_file,
    state_file,
);

/// The boot targets' check fires: a boot that refuses the disk after touching it is caught
/// (here one that "repairs" the damaged file by truncating it, then reports the damage).
#[test]
fn the_disk_check_fires_on_a_boot_that_writes_before_refusing() {
    let damaged = b"not a log at all";
    let caught = std::panic::catch_unwind(|| {
        ccr_fuzz::check_boot(
            "db/mailbox.edb",
            damaged,
            |disk: &mut dyn ccr_core::disk::Disk, config, now| {
                disk.remove("db/mailbox.edb").unwrap();
                ccr_core::cluster::boot::boot(disk, config, now)?;
                Err(ccr_core::cluster::boot::BootError::MissingLogs {
                    path: "logs".into(),
                    checkpoint: 1,
                    first: 3,
                })
            },
        )
    });
    let message = caught.expect_err("the check fires");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("changed it"), "{message}");
    // And the real boot keeps the rule on the same input.
    ccr_fuzz::target("database_file").unwrap()(damaged);
}
