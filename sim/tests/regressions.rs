//! Bugs the swarm found, as shrunk scenario files (`sim/tests/regressions/`): each must pass.
#![cfg(madsim)]

fn failures_in(folder: &str) -> (usize, Vec<String>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut failing = Vec::new();
    for f in &files {
        let s = ccr_sim::file::load(f).unwrap_or_else(|e| panic!("{e}"));
        for seed in &s.seeds {
            let r = ccr_sim::run::run(&s, *seed, false);
            if let Some(v) = r.violation {
                failing.push(format!(
                    "{} seed {seed}: {}: {}",
                    f.display(),
                    v.invariant.name(),
                    v.message
                ));
            }
        }
    }
    (files.len(), failing)
}

#[test]
fn the_bugs_the_swarm_found_stay_fixed() {
    let (files, failing) = failures_in("tests/regressions");
    assert!(files >= 10);
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

#[test]
#[ignore = "open bugs: see sim/tests/open/README.md"]
fn the_open_bugs_are_fixed() {
    let (_, failing) = failures_in("tests/open");
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

#[test]
fn the_open_bugs_still_fail() {
    // Keeps the open list honest: a file that passes belongs in regressions/.
    let (files, failing) = failures_in("tests/open");
    assert_eq!(failing.len(), files, "{failing:?}");
}
