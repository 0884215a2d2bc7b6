//! The scenario library: every file in `scenarios/` validates (both builds), opens with a
//! comment telling the real-world situation, and — under madsim — passes at its default seeds.

use std::path::PathBuf;

fn library() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the library has {} files", files.len());
    files
}

#[test]
fn every_library_file_validates_and_explains_itself() {
    for path in library() {
        let scenario = ccr_sim::file::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# "),
            "{} must open with a comment on the real-world situation",
            path.display()
        );
        assert_eq!(
            path.file_stem().unwrap().to_str().unwrap(),
            scenario.name,
            "file name and scenario name differ"
        );
    }
}

#[cfg(madsim)]
#[test]
fn every_library_scenario_passes_at_its_default_seeds() {
    for path in library() {
        let scenario = ccr_sim::file::load(&path).unwrap();
        for &seed in &scenario.seeds {
            let r = ccr_sim::run::run(&scenario, seed, false);
            assert!(
                r.passed(),
                "{} seed {seed}: {:?}",
                scenario.name,
                r.violation
            );
        }
    }
}

/// What each library scenario does at its first seed, reviewed as a snapshot: an intended
/// behaviour change shows up as a diff to accept (`cargo insta review`), never unnoticed.
#[cfg(madsim)]
#[test]
fn library_outcomes_match_their_snapshots() {
    for path in library() {
        let scenario = ccr_sim::file::load(&path).unwrap();
        let record = ccr_sim::run::run(&scenario, scenario.seeds[0], false);
        insta::assert_snapshot!(scenario.name.clone(), record.summary());
    }
}
