//! Open bugs the swarm found, as shrunk scenario files (`sim/tests/found/`). Ignored until
//! fixed: `-- --ignored` replays them; each must then pass.
#![cfg(madsim)]

#[test]
#[ignore = "open bugs found by the swarm; see sim/tests/found/README.md"]
fn the_found_bugs_are_fixed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/found");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut failing = Vec::new();
    for f in &files {
        let s = ccr_sim::file::load(f).unwrap();
        for seed in &s.seeds {
            let r = ccr_sim::run::run(&s, *seed, false);
            if let Some(v) = r.violation {
                failing.push(format!(
                    "{}: {}: {}",
                    f.display(),
                    v.invariant.name(),
                    v.message
                ));
            }
        }
    }
    assert!(failing.is_empty(), "{}", failing.join("\n"));
}

#[test]
fn the_found_files_still_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/found");
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            ccr_sim::file::load(&p).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
